"""Reading an mde_live_response connection: cloud hosts, overrides, credentials, and clear errors."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import Connection

from airflow_provider_liveresponse.connection import ConnectionSettings
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from tests.certificates import self_signed_certificate, sha1_thumbprint

if TYPE_CHECKING:
    from pathlib import Path

TENANT = "11111111-2222-3333-4444-555555555555"


def make(extra: dict[str, Any] | None = None, login: str | None = "app-id", password: str | None = "s3cret") -> Any:
    return Connection(
        conn_id="mde_test",
        conn_type="mde_live_response",
        login=login,
        password=password,
        extra=json.dumps({"tenant_id": TENANT, **(extra or {})}),
    )


@pytest.mark.parametrize(
    ("cloud", "authority", "api", "scope"),
    [
        (
            "commercial",
            "https://login.microsoftonline.com",
            "https://api.security.microsoft.com",
            "https://api.securitycenter.microsoft.com/.default",
        ),
        (
            "gcc",
            "https://login.microsoftonline.com",
            "https://api-gcc.securitycenter.microsoft.us",
            "https://api-gcc.securitycenter.microsoft.us/.default",
        ),
        (
            "gcc_high",
            "https://login.microsoftonline.us",
            "https://api-gov.securitycenter.microsoft.us",
            "https://securitycenter.onmicrosoft.us/windowsatpservice/.default",
        ),
        (
            "DoD",
            "https://login.microsoftonline.us",
            "https://api-gov.securitycenter.microsoft.us",
            "https://securitycenter.onmicrosoft.us/windowsatpservice/.default",
        ),
    ],
)
def test_each_cloud_picks_its_hosts_and_scope(cloud: str, authority: str, api: str, scope: str) -> None:
    settings = ConnectionSettings.from_connection(make({"cloud": cloud}))
    assert settings.authority == f"{authority}/{TENANT}"
    assert settings.api_url == api
    assert settings.scope == scope
    assert not settings.custom_authority


def test_overrides_win_over_the_cloud_defaults() -> None:
    settings = ConnectionSettings.from_connection(
        make(
            {
                "api_url": "https://eu.api.security.microsoft.com/",
                "authority_url": "https://login.example",
                "scope": "https://x/.default",
            }
        )
    )
    assert settings.api_url == "https://eu.api.security.microsoft.com"
    assert settings.authority == f"https://login.example/{TENANT}"
    assert settings.scope == "https://x/.default"
    assert settings.custom_authority


def test_the_secret_never_shows_in_repr() -> None:
    settings = ConnectionSettings.from_connection(make())
    assert "s3cret" not in repr(settings)
    assert settings.verify is True


@pytest.mark.parametrize(
    ("conn", "fragment"),
    [
        (make(login=None), "login is empty"),
        (Connection(conn_id="c", conn_type="mde_live_response", login="a", password="b"), "tenant_id is missing"),
        (make({"tenant_id": "not a tenant/"}), "tenant_id 'not a tenant/'"),
        (make({"cloud": "moon"}), "cloud 'moon' is unknown"),
        (make({"api_url": "http://insecure"}), "api_url 'http://insecure' must be an https:// URL"),
        (make({"authority_url": "login.microsoftonline.com"}), "authority_url"),
        (make({"scope": "https://api.securitycenter.microsoft.com"}), "must end with '/.default'"),
        (make(password=None), "no credential"),
        (make({"certificate_pem": "-----BEGIN PRIVATE KEY-----\nx"}), "both a password"),
        (make({"certificate_path": "/nonexistent.pem"}, password=None), "cannot be read"),
        (make({"certificate_pem": "no key here"}, password=None), "holds no PEM private key"),
        (make({"certificate_pem": "-----BEGIN PRIVATE KEY-----\nx"}, password=None), "thumbprint is missing"),
        (
            make({"certificate_pem": "-----BEGIN PRIVATE KEY-----\nx", "certificate_thumbprint": "12"}, password=None),
            "not a SHA-1 thumbprint",
        ),
        (make({"ca_bundle": "/nonexistent-ca.pem"}), "ca_bundle '/nonexistent-ca.pem' is not a readable file"),
    ],
)
def test_bad_connections_name_the_field(conn: Any, fragment: str) -> None:
    with pytest.raises(LiveResponseConfigError) as info:
        ConnectionSettings.from_connection(conn)
    assert fragment in str(info.value)
    assert "s3cret" not in str(info.value)


def _self_signed(tmp_path: Path) -> tuple[Path, str]:
    key_pem, cert_pem = self_signed_certificate()
    path = tmp_path / "app.pem"
    path.write_text(key_pem + cert_pem)
    return path, sha1_thumbprint(cert_pem).upper()


def test_certificate_thumbprint_is_computed_from_the_pem(tmp_path: Path) -> None:
    path, thumbprint = _self_signed(tmp_path)
    settings = ConnectionSettings.from_connection(make({"certificate_path": str(path)}, password=None))
    assert settings.uses_certificate
    assert settings.client_secret is None
    assert settings.certificate_thumbprint == thumbprint
    assert "PRIVATE KEY" not in repr(settings)


def test_ca_bundle_becomes_verify(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert ConnectionSettings.from_connection(make({"ca_bundle": str(ca)})).verify == str(ca)


def test_read_share_defaults_to_all_of_mdes_read_limits() -> None:
    assert ConnectionSettings.from_connection(make()).read_share == 1.0
    assert ConnectionSettings.from_connection(make({"read_share": None})).read_share == 1.0
    assert ConnectionSettings.from_connection(make({"read_share": ""})).read_share == 1.0


@pytest.mark.parametrize(("given", "share"), [(0.5, 0.5), (1, 1.0), ("0.25", 0.25), (" 1 ", 1.0)])
def test_read_share_is_a_number_or_the_text_of_one_as_airflow_31s_form_stores_it(given: Any, share: float) -> None:
    assert ConnectionSettings.from_connection(make({"read_share": given})).read_share == share


def refused(extra: dict[str, Any]) -> str:
    """The message of the error a connection with ``extra`` is refused with."""
    with pytest.raises(LiveResponseConfigError) as info:
        ConnectionSettings.from_connection(make(extra))
    return str(info.value)


@pytest.mark.parametrize(("given", "conn_id"), [(None, None), ("", None), ("  ", None), (" lr_limiter ", "lr_limiter")])
def test_submission_limiter_conn_id_is_a_connection_id_or_none(given: Any, conn_id: str | None) -> None:
    extra = {} if given is None else {"submission_limiter_conn_id": given}
    assert ConnectionSettings.from_connection(make(extra)).submission_limiter_conn_id == conn_id


@pytest.mark.parametrize("bad", [42, ["lr"], "postgres://u:p@db/x", "two words"])
def test_a_bad_submission_limiter_conn_id_names_the_field_and_the_fix(bad: Any) -> None:
    message = refused({"submission_limiter_conn_id": bad})
    assert message.startswith("Connection 'mde_test': extra field submission_limiter_conn_id")
    assert "is not an Airflow connection id" in message
    assert "postgres connection that every worker reaches" in message
    assert "u:p" not in message


def test_the_tenant_key_is_the_api_host_and_the_tenant() -> None:
    settings = ConnectionSettings.from_connection(make())
    assert settings.tenant_key == f"api.security.microsoft.com/{settings.tenant_id}"


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", "half", "nan", True, [0.5]])
def test_a_bad_read_share_names_the_field_and_the_fix(bad: Any) -> None:
    message = refused({"read_share": bad})
    assert message.startswith("Connection 'mde_test': extra field read_share must be a number more than 0")
    assert "1 / (the triggerers + fleet sweeps that may run at once on this tenant)" in message
    assert "s3cret" not in message


def test_simulator_speed_defaults_to_real_time_and_the_bundled_simulator_sets_its_own() -> None:
    from airflow_provider_liveresponse.simulator.server import Simulator

    assert ConnectionSettings.from_connection(make()).simulator_speed == 1.0
    assert ConnectionSettings.from_connection(make({"simulator_speed": "60"})).simulator_speed == 60.0
    assert Simulator(speed=25.0).connection_extra()["simulator_speed"] == 25.0


@pytest.mark.parametrize("bad", [0, -2, "fast", "inf", True])
def test_a_bad_simulator_speed_names_the_field_and_says_it_is_for_a_simulator(bad: Any) -> None:
    with pytest.raises(LiveResponseConfigError) as info:
        ConnectionSettings.from_connection(make({"simulator_speed": bad}))
    message = str(info.value)
    assert message.startswith("Connection 'mde_test': extra field simulator_speed must be")
    assert "remove it for Microsoft Defender for Endpoint" in message
