"""Without the ``simulator`` extra the provider works and the simulator says how to get it: in a fresh interpreter
where the extra's packages cannot be imported, every module of the provider (hooks, operators, sensors, triggers,
transfers) imports, and the simulator's command line fails in one line naming the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.packaging.project_metadata import INSTALL_HINT, PACKAGE, ROOT, requirements, top_level_modules

#: The top-level modules of the simulator extra's distributions (starlette, uvicorn, httptools, jwt, pytest, ...).
BLOCKED = sorted({module for r in requirements("simulator") for module in top_level_modules(r.name)})

#: Runs first in the child: makes the extra's packages unimportable, as in an install without the extra.
BLOCKER = textwrap.dedent(
    f"""
    import sys
    from importlib.abc import MetaPathFinder

    BLOCKED = {set(BLOCKED)!r}
    for name in list(sys.modules):
        assert name.partition(".")[0] not in BLOCKED, name

    class WithoutTheExtra(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, WithoutTheExtra())
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_the_extra_is_blocked_in_the_child() -> None:
    assert {"starlette", "uvicorn", "httptools", "jwt", "pytest"} <= set(BLOCKED)
    result = _run("import starlette")
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'starlette'" in result.stderr


def test_every_provider_module_imports_without_the_extra() -> None:
    result = _run(
        f"""
        import importlib, pkgutil
        import {PACKAGE} as package

        skipped = ("{PACKAGE}.simulator", "{PACKAGE}.testing")
        names = [
            module.name
            for module in pkgutil.walk_packages(package.__path__, "{PACKAGE}.")
            if not module.name.startswith(skipped) and not module.name.endswith(".__main__")
        ]
        for name in names:
            importlib.import_module(name)
        print("\\n".join(names))
        """
    )
    assert result.returncode == 0, result.stderr
    imported = set(result.stdout.split())
    for subpackage in ("hooks", "operators", "sensors", "triggers", "transfers"):
        assert any(name.startswith(f"{PACKAGE}.{subpackage}.") for name in imported), subpackage


def test_the_simulator_command_fails_in_one_line_naming_the_extra() -> None:
    result = _run(
        f"""
        import runpy, sys

        sys.argv = ["python -m {PACKAGE}.simulator"]
        runpy.run_module("{PACKAGE}.simulator", run_name="__main__", alter_sys=True)
        """
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert INSTALL_HINT in lines[0]
    assert "starlette" in lines[0]


def test_the_simulator_class_raises_an_import_error_naming_the_extra() -> None:
    result = _run(
        f"""
        try:
            from {PACKAGE}.simulator import Simulator
        except ModuleNotFoundError as error:
            print(type(error).__name__, error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("SimulatorExtraMissing ")
    assert INSTALL_HINT in result.stdout
