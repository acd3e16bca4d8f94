"""The provider is registered with Airflow: entry point, connection type, hook and form fields."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

import airflow
import pytest
from packaging.version import Version

from airflow_provider_liveresponse import __version__
from airflow_provider_liveresponse.connection import EXTRA_FIELDS
from airflow_provider_liveresponse.get_provider_info import CONN_FIELDS, get_provider_info
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook


def test_entry_point_returns_the_provider_info() -> None:
    (entry_point,) = [
        ep
        for ep in md.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_liveresponse")
    ]
    info = entry_point.load()()
    assert info["package-name"] == "airflow-provider-liveresponse"
    assert info["versions"] == [__version__]
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "mde_live_response"
    assert conn_type["hook-name"] == "Microsoft Defender for Endpoint Live Response"


def test_the_version_lives_in_one_place() -> None:
    assert md.version("airflow-provider-liveresponse") == __version__


def test_form_fields_are_the_fields_the_connection_reads() -> None:
    assert set(CONN_FIELDS) == set(EXTRA_FIELDS)
    assert CONN_FIELDS["certificate_pem"]["schema"]["format"] == "password"


def test_providers_manager_knows_the_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-liveresponse" in manager.providers
    hook = manager.hooks["mde_live_response"]
    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_liveresponse.hooks.live_response.LiveResponseHook"
    assert hook.connection_id_attribute_name == "mde_conn_id"
    assert hook.connection_testable


@pytest.mark.skipif(Version(airflow.__version__) < Version("3.2"), reason="conn-fields metadata is read by 3.2+")
def test_airflow_32_reads_the_declarative_form_fields() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    assert {f"extra__mde_live_response__{name}" for name in CONN_FIELDS} <= set(widgets)
    assert widgets["extra__mde_live_response__certificate_pem"].is_sensitive
    behaviour = manager.field_behaviours["mde_live_response"]
    assert behaviour["relabeling"]["login"] == "Application (client) ID"


def test_ui_field_behaviour_matches_the_metadata() -> None:
    behaviour = LiveResponseHook.get_ui_field_behaviour()
    info = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    assert behaviour["hidden_fields"] == info["hidden-fields"]
    assert behaviour["relabeling"] == info["relabeling"]


def test_airflow_cli_lists_the_provider_and_connection_type(tmp_path) -> None:
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    airflow_bin = [sys.executable, "-m", "airflow"]
    providers = subprocess.run(
        [*airflow_bin, "providers", "list", "-o", "plain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert "airflow-provider-liveresponse" in providers.stdout
    hooks = subprocess.run(
        [*airflow_bin, "providers", "hooks", "-o", "plain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    line = next(line for line in hooks.stdout.splitlines() if line.startswith("mde_live_response"))
    assert "LiveResponseHook" in line
    assert "mde_conn_id" in line


def test_hook_form_widgets_carry_the_same_fields() -> None:
    widgets = LiveResponseHook.get_connection_form_widgets()
    assert set(widgets) == set(CONN_FIELDS)


@pytest.mark.skipif(Version(airflow.__version__) >= Version("3.2"), reason="3.2+ reads conn-fields instead")
def test_airflow_31_builds_the_form_from_the_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    assert {f"extra__mde_live_response__{name}" for name in CONN_FIELDS} <= set(widgets)


def test_every_registered_module_imports_without_msal_or_the_simulator() -> None:
    """DAG files import operators constantly: the registered modules must not pull in msal, aiohttp, requests
    (the hooks' HTTP clients), the simulator or the test kit at import time (checked in a fresh interpreter)."""
    info = get_provider_info()
    modules = sorted(
        {m for section in ("operators", "sensors", "triggers") for e in info[section] for m in e["python-modules"]}
        | {link.rsplit(".", 1)[0] for link in info["extra-links"]}
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('msal', 'aiohttp', 'requests') "
        "or m.startswith(('airflow_provider_liveresponse.simulator', 'airflow_provider_liveresponse.testing')))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", result.stdout
    assert "airflow_provider_liveresponse.operators.live_response_library" in modules
    assert "airflow_provider_liveresponse.operators.fleet" in modules
