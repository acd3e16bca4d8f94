#!/usr/bin/env bash
# The demo: builds the newest supported Airflow environment from the lock file, starts the bundled MDE
# simulator, and runs a forensic collection end to end through LiveResponseHook. Evidence lands in
# ./evidence (or the folder given as the first argument).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
line="${AIRFLOW_LINES##* }"
bootstrap_uv
make_venv "$line"
exec "$VENV_ROOT/airflow-$line/bin/python" scripts/demo.py "$@"
