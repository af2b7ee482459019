"""The report's sections, one module per measure, each turning its part of ``results.json`` into numbers and verdicts.

Every measure module offers ``checks(results)`` (its rows of the summary, judged against
:mod:`bench.report_sections.targets`) and ``section(results, out)`` (its Markdown, from its
template in ``bench/templates/``, writing its charts into ``out``); :mod:`bench.build_report`
orders them.
"""
