#!/usr/bin/env bash
# Re-resolve the committed lock files, one per supported Airflow line (3.1 lowest, 3.3 newest).
# Run after changing dependencies in pyproject.toml; commit the results.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
bootstrap_uv
for line in $AIRFLOW_LINES; do
    "$UV" pip compile pyproject.toml "requirements/airflow-$line.in" --extra dev \
        --python-version 3.11 --universal --quiet -o "requirements/airflow-$line.txt"
    echo "locked requirements/airflow-$line.txt"
done
