"""Provider metadata read by Airflow's providers manager (the ``apache_airflow_provider`` entry point).

Kept import-cheap: Airflow calls it in every process that lists providers.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_liveresponse import __version__
from airflow_provider_liveresponse.constants import CONN_TYPE, HOOK_NAME, PACKAGE_NAME

#: Extra fields of the ``mde_live_response`` connection form (Airflow 3.2+ reads them from here; the hook's
#: ``get_connection_form_widgets`` builds the same fields for Airflow 3.1).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "tenant_id": {
        "label": "Tenant ID",
        "description": "Directory (tenant) id of the Entra app registration. Required.",
        "schema": {"type": ["string", "null"]},
    },
    "cloud": {
        "label": "Cloud",
        "description": "commercial, gcc, gcc_high or dod: picks the login host, API host and token scope.",
        "schema": {
            "type": ["string", "null"],
            "default": "commercial",
            "enum": ["commercial", "gcc", "gcc_high", "dod"],
        },
    },
    "api_url": {
        "label": "API URL",
        "description": "Override of the API host: a regional host (https://eu.api.security.microsoft.com) "
        "or the bundled simulator.",
        "schema": {"type": ["string", "null"]},
    },
    "authority_url": {
        "label": "Authority URL",
        "description": "Override of the login host (https://login.microsoftonline.com); the tenant is appended.",
        "schema": {"type": ["string", "null"]},
    },
    "scope": {
        "label": "Token scope",
        "description": "Override of the token scope; the cloud's default is right for almost everyone.",
        "schema": {"type": ["string", "null"]},
    },
    "certificate_path": {
        "label": "Certificate path",
        "description": "PEM file with the private key and certificate, for certificate auth instead of a "
        "secret (leave the password empty).",
        "schema": {"type": ["string", "null"]},
    },
    "certificate_pem": {
        "label": "Certificate PEM",
        "description": "The PEM private key and certificate themselves, instead of certificate_path.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "certificate_thumbprint": {
        "label": "Certificate thumbprint",
        "description": "SHA-1 thumbprint (40 hex characters) of the certificate uploaded to the app; "
        "computed from the PEM when it holds the certificate.",
        "schema": {"type": ["string", "null"]},
    },
    "ca_bundle": {
        "label": "CA bundle",
        "description": "PEM file of CA certificates to trust for the API, login and blob hosts "
        "(a TLS-inspecting proxy, or the simulator).",
        "schema": {"type": ["string", "null"]},
    },
    "read_share": {
        "label": "Read share",
        "description": "Fraction (more than 0, at most 1; default 1) of MDE's per-tenant read limits (100 calls "
        "a minute, 1,500 an hour) that one polling process (each triggerer, each fleet sweep) may use: "
        "1 / (triggerers + fleet sweeps that may run at once on this tenant).",
        "schema": {"type": ["number", "null"], "default": 1, "exclusiveMinimum": 0, "maximum": 1},
    },
    "submission_limiter_conn_id": {
        "label": "Submission limiter connection",
        "description": "Id of a postgres connection that every worker reaches (needs the shared-limiter extra): "
        "every process of the deployment takes its turn there before submitting, so the whole deployment sends "
        "at most 10 live responses a minute. Empty: each process paces itself and MDE's 429s do the rest.",
        "schema": {"type": ["string", "null"]},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "host", "extra"],
    "relabeling": {"login": "Application (client) ID", "password": "Client secret"},
    "placeholders": {
        "login": "00000000-0000-0000-0000-000000000000",
        "password": "client secret (empty for certificate auth)",
        "tenant_id": "00000000-0000-0000-0000-000000000000",
        "cloud": "commercial",
        "api_url": "https://api.security.microsoft.com",
        "authority_url": "https://login.microsoftonline.com",
        "certificate_path": "/opt/airflow/secrets/mde-app.pem",
        "certificate_thumbprint": "40 hex characters",
        "ca_bundle": "/etc/ssl/certs/corporate-ca.pem",
        "read_share": "1 (or 1 / (triggerers + fleet sweeps))",
        "submission_limiter_conn_id": "liveresponse_limiter",
    },
}


def _modules_of_the_integration(*modules: str) -> list[dict[str, Any]]:
    """One entry of the provider's integration listing ``modules`` (operators, sensors, hooks, triggers)."""
    return [{"integration-name": HOOK_NAME, "python-modules": list(modules)}]


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata for Airflow's providers manager."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Microsoft Defender for Endpoint Live Response",
        "description": "Run Microsoft Defender for Endpoint live response (PutFile, RunScript, GetFile) from "
        "Airflow, wait for it cheaply, and stream the evidence into object storage with a manifest.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": HOOK_NAME,
                "external-doc-url": "https://learn.microsoft.com/en-us/defender-endpoint/api/run-live-response",
                "tags": ["service"],
            }
        ],
        "operators": _modules_of_the_integration(
            "airflow_provider_liveresponse.operators.live_response",
            "airflow_provider_liveresponse.operators.live_response_library",
            "airflow_provider_liveresponse.operators.fleet",
        ),
        "sensors": _modules_of_the_integration("airflow_provider_liveresponse.sensors.machine_action"),
        "hooks": _modules_of_the_integration(
            "airflow_provider_liveresponse.hooks.live_response",
            "airflow_provider_liveresponse.hooks.live_response_async",
        ),
        "triggers": _modules_of_the_integration("airflow_provider_liveresponse.triggers.machine_action"),
        "transfers": [
            {
                "source-integration-name": HOOK_NAME,
                "target-integration-name": "Common IO",
                "python-module": "airflow_provider_liveresponse.transfers.live_response_to_object_storage",
            }
        ],
        "extra-links": ["airflow_provider_liveresponse.links.MachineActionLink"],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_liveresponse.hooks.live_response.LiveResponseHook",
                "hook-name": HOOK_NAME,
                "connection-type": CONN_TYPE,
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
