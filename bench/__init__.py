"""``make bench``: fluke-airflow against fluke-api 0.5.0 and Airflow's amazon provider.

Everything runs on loopback emulators (moto's SQS server and Azurite) behind counting
proxies (:mod:`devtools.proxy`), and writes its report to ``docs/benchmarks/``.
Run ``python -m bench --help`` for the options. This package is imported by the
benchmark's worker subprocesses too, so it stays import-light.
"""
