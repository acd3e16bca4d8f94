"""Size limits of the product code: no module outside the simulator and the test kit over about 500 lines, no
function over about 60 (the project's guide). A module or function that grows past them is split, not exempted."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflow_provider_liveresponse

PACKAGE = Path(airflow_provider_liveresponse.__file__).parent
#: Folders of the package the limits do not cover: the simulator (an extra, a test double) and the test kit.
EXEMPT = ("simulator", "testing")
MAX_MODULE_LINES = 520
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] not in EXEMPT)


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


MODULES = [pytest.param(path, id=_name(path)) for path in _modules()]


def test_the_package_has_modules_to_check() -> None:
    assert len(MODULES) > 10


@pytest.mark.parametrize("path", MODULES)
def test_a_module_is_at_most_520_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines: split it (at most {MAX_MODULE_LINES})"


@pytest.mark.parametrize("path", MODULES)
def test_every_function_is_at_most_60_lines(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    long = [
        f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno} lines"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_name(path)}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
