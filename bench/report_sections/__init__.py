"""The report's sections, one module per measure, each turning its part of ``results.json`` into blocks.

Every measure module offers ``checks(results)`` (its rows of the summary, judged against
:mod:`bench.report_sections.targets`) and ``section(results, out)`` (its blocks, writing its
charts into ``out``); :mod:`bench.build_report` orders them and renders the whole once.
"""
