#!/usr/bin/env bash
# The whole test suite, as CI runs it: builds one virtual environment per supported Airflow line from the
# committed lock files (the lowest, 3.1, and the newest, 3.3), then runs ruff once, and mypy and pytest on each
# line, and the release check (scripts/check_dist.sh: the sdist and wheel build, pass twine check --strict, the
# wheel imports without extras, the sdist's tests collect), the system test (pytest -m system: a real Airflow
# running the example DAGs) and the distributed test (pytest -m distributed: CeleryExecutor on Redis and Postgres,
# every component twice, killed during 100-device sweeps) on the newest. Tests marked `scale` (many tasks in one DAG run) run on the newest line
# only: the older line runs the same code paths in the smaller tests, and there each task takes seconds to start.
#
# The two lines run side by side (each line's output prefixed with its name), then the release check, the system
# test and the distributed test side by side: most of a test waits on loopback HTTP, a real Airflow or a storage server, so two at once finish in
# little more than the longer one (about 60% of one core each, measured). LIVERESPONSE_TEST_JOBS=1 runs them one
# after the other instead. Extra arguments go to pytest (for example: scripts/test.sh -k hook -x).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
bootstrap_uv
for line in $AIRFLOW_LINES; do
    make_venv "$line"
done
newest="${AIRFLOW_LINES##* }"
jobs="${LIVERESPONSE_TEST_JOBS:-2}"
started=$SECONDS

echo "==> ruff (Airflow $newest environment)"
"$VENV_ROOT/airflow-$newest/bin/ruff" check .
"$VENV_ROOT/airflow-$newest/bin/ruff" format --check .

# line_suite LINE: mypy, then pytest without the system test, in that line's environment.
line_suite() {
    local line="$1" venv="$VENV_ROOT/airflow-$1" markers="not system and not distributed" home rc=0
    [ "$line" = "$newest" ] || markers="not system and not distributed and not scale"
    home="$(mktemp -d)"
    echo "==> mypy (Airflow $line)"
    MYPY_CACHE_DIR="$home/.mypy_cache" "$venv/bin/mypy" || rc=1
    echo "==> pytest -m \"$markers\" (Airflow $("$venv/bin/python" -c 'import airflow; print(airflow.__version__)'))"
    AIRFLOW_HOME="$home" AIRFLOW__CORE__LOAD_EXAMPLES=False \
        "$venv/bin/python" -m pytest -m "$markers" -o cache_dir="$home/.pytest_cache" "${pytest_args[@]}" || rc=1
    rm -rf "$home"
    return $rc
}

# system_suite: the system test on the newest line (exit 5, no test selected by the arguments, is not a failure).
system_suite() {
    local home rc=0
    home="$(mktemp -d)"
    echo "==> pytest -m system (a real Airflow $newest: API server, scheduler, triggerer, DAG processor)"
    AIRFLOW_HOME="$home" AIRFLOW__CORE__LOAD_EXAMPLES=False \
        "$VENV_ROOT/airflow-$newest/bin/python" -m pytest -m system -o cache_dir="$home/.pytest_cache" \
        "${pytest_args[@]}" || rc=$?
    rm -rf "$home"
    [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ]
}

# distributed_suite: the distributed system test on the newest line (CeleryExecutor, Redis and Postgres from their
# wheels, two schedulers, triggerers and workers, components killed during two 100-device sweeps).
distributed_suite() {
    local home rc=0
    home="$(mktemp -d)"
    echo "==> pytest -m distributed (Airflow $newest on Celery, Redis and Postgres; components killed mid-sweep)"
    AIRFLOW_HOME="$home" AIRFLOW__CORE__LOAD_EXAMPLES=False \
        "$VENV_ROOT/airflow-$newest/bin/python" -m pytest -m distributed -o cache_dir="$home/.pytest_cache" \
        "${pytest_args[@]}" || rc=$?
    rm -rf "$home"
    [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ]
}

release_check() {
    echo "==> release check: sdist and wheel built, twine check, the wheel without extras, the sdist's tests"
    bash scripts/check_dist.sh "$newest"
}

# side_by_side "NAME COMMAND..."...: run each command with its output prefixed by [NAME], at most $jobs at once
# (all at once, or one after the other); says when each ended and fails when any of them failed.
side_by_side() {
    local pids=() names=() spec status=0 i
    for spec in "$@"; do
        if [ "$jobs" -le 1 ]; then
            run_prefixed $spec || status=1
        else
            run_prefixed $spec &
            pids+=("$!")
            names+=("${spec%% *}")
        fi
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || status=1
    done
    return $status
}

run_prefixed() {
    local name="$1" rc
    shift
    set +e
    "$@" 2>&1 | sed -u "s/^/[$name] /"
    rc="${PIPESTATUS[0]}"
    set -e
    echo "==> $name $([ "$rc" -eq 0 ] && echo passed || echo FAILED) ($((SECONDS - started)) s since the start)"
    return "$rc"
}

pytest_args=("$@")
status=0
specs=()
for line in $AIRFLOW_LINES; do
    specs+=("$line line_suite $line")
done
side_by_side "${specs[@]}" || status=1
side_by_side "release release_check" "system system_suite" "distributed distributed_suite" || status=1
echo "==> the whole suite took $((SECONDS - started)) s: $([ "$status" -eq 0 ] && echo passed || echo FAILED)"
exit "$status"
