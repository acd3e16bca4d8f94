# Shared by scripts/test.sh, scripts/demo.sh and scripts/lock.sh: builds the virtual environments from the
# committed lock files with uv (bootstrapped from PyPI with pip), compiling bytecode at install time.
# shellcheck shell=bash
AIRFLOW_LINES="${AIRFLOW_LINES:-3.1 3.3}"
UV_VERSION="0.13.9"
VENV_ROOT="${VENV_ROOT:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
export UV_PYTHON_DOWNLOADS=never
export UV_LINK_MODE=copy

bootstrap_uv() {
    UV="$VENV_ROOT/tools/bin/uv"
    if [ ! -x "$UV" ] || ! "$UV" --version 2>/dev/null | grep -q "$UV_VERSION"; then
        echo "==> bootstrapping uv $UV_VERSION into $VENV_ROOT/tools"
        "$PYTHON" -m venv "$VENV_ROOT/tools"
        "$VENV_ROOT/tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    fi
}

# make_venv LINE: create or refresh $VENV_ROOT/airflow-LINE from requirements/airflow-LINE.txt.
make_venv() {
    local line="$1" venv="$VENV_ROOT/airflow-$1" lock="requirements/airflow-$1.txt"
    local stamp="$venv/.lock-sha256"
    local want
    want="$(cat "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "==> installing Airflow $line environment into $venv (from $lock)"
    rm -f "$stamp"
    { [ -x "$venv/bin/python" ] || "$UV" venv --quiet --python "$PYTHON" "$venv"; } &&
        VIRTUAL_ENV="$venv" "$UV" pip sync --quiet --compile-bytecode "$lock" &&
        VIRTUAL_ENV="$venv" "$UV" pip install --quiet --compile-bytecode --no-deps -e . &&
        echo "$want" > "$stamp"
}
