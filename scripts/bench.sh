#!/usr/bin/env bash
# The benchmarks and fault campaigns (benchmarks/README.md), in the newest Airflow environment, built from the
# committed lock file as scripts/test.sh does. Arguments go to `python -m benchmarks`, for example:
#   bash scripts/bench.sh                          # everything, published sizes
#   bash scripts/bench.sh --only polling --size polling=10,100,500
#   bash scripts/bench.sh --quick                  # small sizes: a smoke run
#   bash scripts/bench.sh --list
# Exits non-zero when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
LINE="${BENCH_AIRFLOW_LINE:-3.3}"
bootstrap_uv
make_venv "$LINE"
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT
AIRFLOW_HOME="$home" AIRFLOW__CORE__LOAD_EXAMPLES=False \
    "$VENV_ROOT/airflow-$LINE/bin/python" -m benchmarks "$@"
