"""What the packaging tests read: the project's declared requirements, the imports of its files, and which installed
distribution provides a module (found from each distribution's list of files, so namespace packages such as
``airflow`` and ``azure`` resolve to the distribution of the submodule imported)."""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "airflow_provider_liveresponse"
PROJECT = "airflow-provider-liveresponse"
INSTALL_HINT = f"pip install '{PROJECT}[simulator]'"
#: What the hook imports, inside a function, to build the connection form's widgets on Airflow 3.1: where the UI
#: builds the form they are there, and Airflow's providers manager skips the widgets when they are missing (as for
#: apache-airflow-providers-http, which does the same).
UI_ONLY_MODULES = frozenset({"flask_appbuilder", "flask_babel", "wtforms"})
#: What the provider (or the test kit) imports inside a function only, from an optional extra (module prefix:
#: extra): that extra must declare it. The function is called only by the package itself (the OpenLineage provider calls
#: get_openlineage_facets_on_complete), so the provider works without the extra.
OPTIONAL_MODULES = {
    "airflow.providers.openlineage": "openlineage",
    "psycopg2": "distributed",
    "redis": "distributed",
    "sqlalchemy": "shared-limiter",
}


@dataclass(frozen=True)
class Import:
    """One ``import`` or ``from ... import`` of a third-party module, where it is written."""

    module: str
    file: Path
    line: int
    extra: str | None = None
    """The optional extra that declares it (see :data:`OPTIONAL_MODULES`), for an import inside a function."""

    def __str__(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line} imports {self.module}"


def pyproject() -> dict[str, object]:
    """The parsed pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements(group: str | None = None) -> list[Requirement]:
    """The requirements of ``group``: None for the dependencies, else the extra of that name, as written."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    texts = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(text) for text in texts]


def declared(*groups: str) -> set[str]:
    """Canonical names of the dependencies plus the extras ``groups``, following the project's own extras."""
    names: set[str] = set()
    pending: list[str | None] = [None, *groups]
    seen: set[str | None] = set()
    while pending:
        group = pending.pop()
        if group in seen:
            continue
        seen.add(group)
        for requirement in requirements(group):
            if canonicalize_name(requirement.name) == PROJECT:
                pending.extend(requirement.extras)
            else:
                names.add(canonicalize_name(requirement.name))
    return names


def files(*parts: str, exclude: tuple[str, ...] = ()) -> list[Path]:
    """The Python files under ``ROOT/<part>`` (a folder or a file), less those under the ``exclude`` folders."""
    found: list[Path] = []
    for part in parts:
        path = ROOT / part
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for candidate in candidates:
            relative = candidate.relative_to(ROOT).as_posix()
            if not any(relative.startswith(f"{folder}/") for folder in exclude):
                found.append(candidate)
    return found


class _Collector(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[str, int, str | None]] = []
        self._depth = 0

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        """``if TYPE_CHECKING:`` imports are for the type checker only: like a function's, they may be optional."""
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            self._depth += 1
            self.generic_visit(node)
            self._depth -= 1
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self._add([alias.name for alias in node.names], node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self._add([node.module], node.lineno)

    def _add(self, modules: list[str], line: int) -> None:
        for module in modules:
            if not (self._depth and module.partition(".")[0] in UI_ONLY_MODULES):
                extras = [
                    e for prefix, e in OPTIONAL_MODULES.items() if module == prefix or module.startswith(prefix + ".")
                ]
                self.found.append((module, line, extras[0] if self._depth and extras else None))


@cache
def _helper_modules() -> frozenset[str]:
    """The repository's own helper modules that tests import as top-level names (pytest puts each test folder on
    sys.path): every module under tests/ and benchmarks/."""
    return frozenset(path.stem for folder in ("tests", "benchmarks") for path in (ROOT / folder).rglob("*.py"))


def third_party_imports(paths: list[Path]) -> list[Import]:
    """Every import in ``paths`` of a module that is neither the standard library nor this repository's."""
    first_party = {PACKAGE, "tests", "benchmarks"}
    standard = sys.stdlib_module_names | {"__future__", "_typeshed"}  # _typeshed: the stdlib's stubs, for typing
    found: list[Import] = []
    for path in paths:
        collector = _Collector()
        collector.visit(ast.parse(path.read_text(), str(path)))
        for module, line, extra in collector.found:
            top = module.partition(".")[0]
            if top in standard or top in first_party or top in _helper_modules():
                continue
            found.append(Import(module, path, line, extra))
    return found


@cache
def _owners_by_file() -> dict[str, frozenset[str]]:
    owners: dict[str, set[str]] = {}
    for distribution in md.distributions():
        name = canonicalize_name(distribution.metadata["Name"])
        for file in distribution.files or ():
            owners.setdefault(file.as_posix(), set()).add(name)
    return {path: frozenset(names) for path, names in owners.items()}


@cache
def distributions_of(module: str) -> frozenset[str]:
    """The installed distributions that provide ``module`` (its longest dotted prefix that one provides)."""
    owners = _owners_by_file()
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        base = "/".join(parts[:end])
        for candidate in (f"{base}/__init__.py", f"{base}.py"):
            if candidate in owners:
                return owners[candidate]
        extension = [names for path, names in owners.items() if path.startswith(f"{base}.") and path.endswith(".so")]
        if extension:
            return frozenset().union(*extension)
    return frozenset(canonicalize_name(name) for name in md.packages_distributions().get(parts[0], ()))


def _has_modules(distribution: str) -> bool:
    return any(str(file).endswith(".py") for file in md.distribution(distribution).files or ())


def satisfied_by(names: set[str]) -> set[str]:
    """``names`` plus the components of each meta-distribution among them (one that ships no module itself,
    such as apache-airflow, which stands for apache-airflow-core and apache-airflow-task-sdk)."""
    result = set(names)
    for name in names:
        if not _has_modules(name):
            for text in md.requires(name) or ():
                requirement = Requirement(text)
                if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                    result.add(canonicalize_name(requirement.name))
    return result


def top_level_modules(distribution: str) -> set[str]:
    """The top-level modules an installed distribution provides."""
    wanted = canonicalize_name(distribution)
    return {
        module
        for module, names in md.packages_distributions().items()
        if wanted in {canonicalize_name(name) for name in names}
    }
