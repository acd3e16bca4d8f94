"""Benchmarks and fault campaigns of airflow-provider-liveresponse, run against the bundled MDE simulator.

Run them with ``bash scripts/bench.sh`` (or ``python -m benchmarks``); see ``benchmarks/README.md``.
"""
