"""Hosts, scopes, limits and names of the MDE Live Response API, kept in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from airflow_provider_liveresponse import __version__

CONN_TYPE: Final = "mde_live_response"
DEFAULT_CONN_ID: Final = "mde_live_response_default"
HOOK_NAME: Final = "Microsoft Defender for Endpoint Live Response"
PACKAGE_NAME: Final = "airflow-provider-liveresponse"

#: Partner integrations identify themselves with ``MdePartner-{Company}-{Product}/{Version}``.
USER_AGENT: Final = f"MdePartner-AirflowProvider-LiveResponse/{__version__}"


@dataclass(frozen=True)
class CloudEndpoints:
    """The login host, API host and token scope of one Microsoft cloud."""

    authority_host: str
    api_url: str
    scope: str


#: Hosts and scopes per cloud (contract, "Hosts and authentication"). A connection may override each.
CLOUDS: Final[dict[str, CloudEndpoints]] = {
    "commercial": CloudEndpoints(
        authority_host="https://login.microsoftonline.com",
        api_url="https://api.security.microsoft.com",
        scope="https://api.securitycenter.microsoft.com/.default",
    ),
    "gcc": CloudEndpoints(
        authority_host="https://login.microsoftonline.com",
        api_url="https://api-gcc.securitycenter.microsoft.us",
        scope="https://api-gcc.securitycenter.microsoft.us/.default",
    ),
    "gcc_high": CloudEndpoints(
        authority_host="https://login.microsoftonline.us",
        api_url="https://api-gov.securitycenter.microsoft.us",
        scope="https://securitycenter.onmicrosoft.us/windowsatpservice/.default",
    ),
    "dod": CloudEndpoints(
        authority_host="https://login.microsoftonline.us",
        api_url="https://api-gov.securitycenter.microsoft.us",
        scope="https://securitycenter.onmicrosoft.us/windowsatpservice/.default",
    ),
}
DEFAULT_CLOUD: Final = "commercial"

# Documented limits (the seeds' figures; Microsoft's newest page says 50 sessions and a 2-hour queue).
RUN_LIVE_RESPONSE_CALLS_PER_MINUTE: Final = 10
CONCURRENT_SESSIONS: Final = 25
OFFLINE_QUEUE_SECONDS: Final = 3 * 24 * 3600
RUN_SCRIPT_TIMEOUT_SECONDS: Final = 10 * 60
READ_CALLS_PER_MINUTE: Final = 100
READ_CALLS_PER_HOUR: Final = 1500
RESULT_LINK_LIFETIME_SECONDS: Final = 30 * 60
LIBRARY_FILE_MAX_BYTES: Final = 20 * 1024 * 1024
MACHINE_ID_LENGTH: Final = 40

#: MDE portal page of a machine action (the operator extra link).
PORTAL_ACTION_URL: Final = "https://security.microsoft.com/action-center/history?actionId={action_id}"
