#!/usr/bin/env bash
# The demo: builds the newest supported Airflow environment from the lock file (it holds the dev extra, and so the
# simulator extra), starts the bundled MDE simulator, and runs a forensic collection end to end through
# LiveResponseHook. Evidence lands in ./evidence (or the folder given as the first argument).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
line="${AIRFLOW_LINES##* }"
bootstrap_uv
make_venv "$line"
# Airflow reads its config from AIRFLOW_HOME: keep the demo's inside .venv, not in ~/airflow.
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/$VENV_ROOT/demo-airflow-home}"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
exec "$VENV_ROOT/airflow-$line/bin/python" scripts/demo.py "$@"
