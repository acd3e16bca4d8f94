"""Every package the code imports is declared in pyproject.toml, where the code that imports it is installed: the
provider's (and the example DAGs') in the dependencies, the simulator's and the test kit's in the ``simulator``
extra, the tests' and benchmarks' in ``dev``; both lock files satisfy every declared bound; the provider never
imports the simulator or the test kit."""

from __future__ import annotations

import importlib.metadata as md
import re

import pytest
from packaging.utils import canonicalize_name

from tests.packaging.project_metadata import (
    PACKAGE,
    PROJECT,
    ROOT,
    declared,
    distributions_of,
    files,
    requirements,
    satisfied_by,
    third_party_imports,
)

#: (what, its files, the extras that install what it needs)
AREAS = {
    "the provider": (files(PACKAGE, exclude=(f"{PACKAGE}/simulator", f"{PACKAGE}/testing")), ()),
    "the example DAGs": (files("example_dags"), ()),
    "the simulator and the test kit": (files(f"{PACKAGE}/simulator", f"{PACKAGE}/testing"), ("simulator",)),
    "the tests, benchmarks and scripts": (files("tests", "benchmarks", "scripts"), ("dev",)),
}
LOCKS = sorted((ROOT / "requirements").glob("airflow-*.txt"))


@pytest.mark.parametrize("area", list(AREAS))
def test_every_import_is_declared(area: str) -> None:
    paths, extras = AREAS[area]
    allowed = satisfied_by(declared(*extras))
    undeclared = []
    for found in third_party_imports(paths):
        owners = distributions_of(found.module)
        if not owners & (satisfied_by(declared(*extras, found.extra)) if found.extra else allowed):
            undeclared.append(f"{found} (from {', '.join(sorted(owners)) or 'no installed distribution'})")
    where = "dependencies" + "".join(f" + [{extra}]" for extra in extras)
    assert not undeclared, f"{area}: imports not declared in pyproject.toml ({where}):\n" + "\n".join(undeclared)


def test_the_areas_hold_the_files_they_name() -> None:
    assert {path.name for path in AREAS["the simulator and the test kit"][0]} >= {"server.py", "fault_matrix.py"}
    assert not [path for path in AREAS["the provider"][0] if "simulator" in path.parts or "testing" in path.parts]


def test_the_dev_extra_includes_the_simulator_extra() -> None:
    assert declared("simulator") <= declared("dev")
    assert any(canonicalize_name(r.name) == PROJECT and r.extras == {"simulator"} for r in requirements("dev")), (
        "dev should require airflow-provider-liveresponse[simulator]"
    )


def test_the_provider_never_imports_the_simulator_or_the_test_kit() -> None:
    offending = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in AREAS["the provider"][0]
        for line in path.read_text().splitlines()
        if re.match(rf"\s*(from|import) {PACKAGE}\.(simulator|testing)\b", line)
    ]
    assert not offending, offending


def _locked(lock: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lock.splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if match:
            pins[canonicalize_name(match[1])] = match[2]
    return pins


@pytest.mark.skipif(not LOCKS, reason="the lock files are in the repository, not in the sdist")
@pytest.mark.parametrize("lock", [path.name for path in LOCKS])
def test_the_lock_satisfies_every_declared_bound(lock: str) -> None:
    pins = _locked((ROOT / "requirements" / lock).read_text())
    groups = [None, *pyproject_extras()]
    wrong = [
        f"{requirement} (locked: {pins.get(canonicalize_name(requirement.name), 'missing')})"
        for group in groups
        for requirement in requirements(group)
        if canonicalize_name(requirement.name) != PROJECT
        and not requirement.specifier.contains(pins.get(canonicalize_name(requirement.name), "0"), prereleases=True)
    ]
    assert not wrong, f"{lock} does not satisfy: {wrong}; re-lock with bash scripts/lock.sh"


def test_the_installed_versions_satisfy_every_declared_bound() -> None:
    wrong = [
        f"{requirement} (installed: {md.version(requirement.name)})"
        for group in [None, *pyproject_extras()]
        for requirement in requirements(group)
        if canonicalize_name(requirement.name) != PROJECT
        and not requirement.specifier.contains(md.version(requirement.name), prereleases=True)
    ]
    assert not wrong, wrong


def pyproject_extras() -> list[str]:
    from tests.packaging.project_metadata import pyproject

    project = pyproject()["project"]
    assert isinstance(project, dict)
    return sorted(project["optional-dependencies"])
