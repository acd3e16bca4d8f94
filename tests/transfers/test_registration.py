"""The transfer is registered with Airflow and stays cheap to import in DAG files."""

from __future__ import annotations

import subprocess
import sys

from airflow_provider_liveresponse.get_provider_info import get_provider_info

MODULE = "airflow_provider_liveresponse.transfers.live_response_to_object_storage"


def test_the_transfer_is_in_the_provider_info() -> None:
    (transfer,) = get_provider_info()["transfers"]
    assert transfer == {
        "source-integration-name": "Microsoft Defender for Endpoint Live Response",
        "target-integration-name": "Common IO",
        "python-module": MODULE,
    }


def test_the_providers_manager_accepts_the_provider_info() -> None:
    from airflow.providers_manager import ProvidersManager

    assert "airflow-provider-liveresponse" in ProvidersManager().providers


def test_importing_the_operator_loads_no_hook_client_library_or_file_system() -> None:
    code = (
        f"import {MODULE}\n"
        "import sys\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('msal', 'aiohttp', 's3fs', 'adlfs', 'boto3') "
        "or m.startswith(('airflow_provider_liveresponse.simulator', 'airflow_provider_liveresponse.hooks')))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", result.stdout
