#!/usr/bin/env bash
# The release check (run by scripts/test.sh): builds the sdist and, from it, the wheel; runs twine check --strict
# on both; installs the wheel WITHOUT extras into a fresh virtual environment (versions from the lock) and
# imports every module of the provider there; then adds the wheel's dev extra to that environment, unpacks the
# sdist, checks it holds what its tests need, collects its tests and runs tests/packaging from the unpacked
# folder (nothing of this checkout on sys.path, as where a distribution builds and tests the sdist).
# Usage: bash scripts/check_dist.sh [LINE]   (LINE: the Airflow line whose lock to use; the newest by default)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
bootstrap_uv
line="${1:-${AIRFLOW_LINES##* }}"
tools_venv="$PWD/$VENV_ROOT/airflow-$line"
lock="$PWD/requirements/airflow-$line.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "==> build: sdist, then the wheel from the sdist"
"$UV" build --quiet --python "$PYTHON" --out-dir "$work/dist" .
sdist=("$work"/dist/*.tar.gz)
wheel=("$work"/dist/*.whl)
[ "${#sdist[@]}" -eq 1 ] && [ "${#wheel[@]}" -eq 1 ] || { echo "expected one sdist and one wheel" >&2; exit 1; }
echo "    $(basename "${sdist[0]}"), $(basename "${wheel[0]}")"

echo "==> twine check --strict"
NO_COLOR=1 "$tools_venv/bin/twine" check --strict "${sdist[0]}" "${wheel[0]}"

echo "==> the wheel without extras, in a fresh environment: every provider module imports"
"$UV" venv --quiet --python "$PYTHON" "$work/wheel-venv"
VIRTUAL_ENV="$work/wheel-venv" "$UV" pip install --quiet --constraint "$lock" "${wheel[0]}"
AIRFLOW_HOME="$work/airflow-home" AIRFLOW__CORE__LOAD_EXAMPLES=False "$work/wheel-venv/bin/python" - <<'EOF'
import importlib
import importlib.metadata as md
import pkgutil

import airflow_provider_liveresponse as package

skipped = ("airflow_provider_liveresponse.simulator", "airflow_provider_liveresponse.testing")
names = [
    module.name
    for module in pkgutil.walk_packages(package.__path__, "airflow_provider_liveresponse.")
    if not module.name.startswith(skipped) and not module.name.endswith(".__main__")
]
for name in names:
    importlib.import_module(name)
(entry_point,) = [e for e in md.entry_points(group="apache_airflow_provider") if e.value.startswith(package.__name__)]
info = entry_point.load()()
distribution = md.distribution("airflow-provider-liveresponse")
assert info["versions"] == [distribution.version], info["versions"]
assert "simulator" in (distribution.metadata.get_all("Provides-Extra") or []), "no simulator extra"
licenses = [str(f) for f in distribution.files or () if str(f).endswith("licenses/LICENSE")]
assert licenses, "the wheel has no LICENSE"
print(f"    {len(names)} modules imported; provider {info['package-name']} {distribution.version}; {licenses[0]}")
EOF

echo "==> the sdist: what its tests need; its tests collect, with the wheel and its dev extra installed"
VIRTUAL_ENV="$work/wheel-venv" "$UV" pip install --quiet --constraint "$lock" "${wheel[0]}[dev]"
mkdir "$work/sdist"
tar -xzf "${sdist[0]}" -C "$work/sdist"
root=("$work"/sdist/*/)
for needed in LICENSE CHANGELOG.md README.md pyproject.toml tests/conftest.py example_dags \
    airflow_provider_liveresponse/testing/airflow_system.py airflow_provider_liveresponse/simulator/pytest_plugin.py; do
    [ -e "${root[0]}$needed" ] || { echo "the sdist lacks $needed" >&2; exit 1; }
done
(
    cd "${root[0]}"
    export AIRFLOW_HOME="$work/sdist-airflow-home" AIRFLOW__CORE__LOAD_EXAMPLES=False
    "$work/wheel-venv/bin/python" -m pytest --collect-only -q -p no:cacheprovider | tail -n 1
    "$work/wheel-venv/bin/python" -m pytest -q -p no:cacheprovider tests/packaging | tail -n 1
)
