"""Reads and validates an ``mde_live_response`` Airflow connection into the settings the hooks use."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.constants import CLOUDS, DEFAULT_CLOUD, READ_CALLS_PER_HOUR, READ_CALLS_PER_MINUTE
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,252}$")
_THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")

#: Connection extra fields this provider understands; the form metadata and the docs list the same names.
EXTRA_FIELDS = (
    "tenant_id",
    "cloud",
    "api_url",
    "authority_url",
    "scope",
    "certificate_path",
    "certificate_pem",
    "certificate_thumbprint",
    "ca_bundle",
    "read_share",
    "submission_limiter_conn_id",
)
#: Extra fields for a simulator only (not in the connection form): ``simulator_speed``, how many times faster than
#: real time its clock runs, set by the bundled simulator's connection.
SIMULATOR_FIELDS = ("simulator_speed",)
#: ``read_share`` when the connection does not set it: one polling process may use all of MDE's read limits.
DEFAULT_READ_SHARE = 1.0


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to authenticate and reach MDE, validated, from one Airflow connection."""

    conn_id: str
    client_id: str
    tenant_id: str
    cloud: str
    api_url: str
    authority: str
    scope: str
    custom_authority: bool
    client_secret: str | None = field(default=None, repr=False)
    certificate_pem: str | None = field(default=None, repr=False)
    certificate_thumbprint: str | None = None
    ca_bundle: str | None = None
    #: The fraction of MDE's per-tenant read limits one polling process (a triggerer, a fleet sweep) may use.
    read_share: float = DEFAULT_READ_SHARE
    #: How many times faster than real time the API's clock runs: 1 for MDE; a simulator running fast sets its
    #: speed, so that budgets of MDE's per-minute and per-hour limits are counted on its clock.
    simulator_speed: float = 1.0
    #: The Airflow connection (a database every worker reaches) where every process of the deployment takes its
    #: turn before a submission (:mod:`~airflow_provider_liveresponse.hooks.submission_turns`); None: none.
    submission_limiter_conn_id: str | None = None

    @property
    def tenant_key(self) -> str:
        """The key of this tenant's limits shared by a deployment: the API host and the tenant id."""
        return f"{urlsplit(self.api_url).netloc}/{self.tenant_id}"

    @property
    def verify(self) -> str | bool:
        """The ``verify`` argument for every request: the connection's CA file, or the system store."""
        return self.ca_bundle or True

    @property
    def uses_certificate(self) -> bool:
        """Whether the app authenticates with a certificate rather than a client secret."""
        return self.certificate_pem is not None

    def fingerprint(self) -> tuple[str, ...]:
        """A key that identifies the identity (for sharing one token cache per process)."""
        import hashlib

        secret = self.client_secret or self.certificate_pem or ""
        return (
            self.authority,
            self.client_id,
            self.scope,
            hashlib.sha256(secret.encode()).hexdigest(),
            str(self.ca_bundle),
        )

    @classmethod
    def from_connection(cls, conn: Any) -> ConnectionSettings:
        """Validate ``conn`` (an Airflow Connection); every error names the field and the fix."""
        conn_id = getattr(conn, "conn_id", None) or "<unnamed>"
        extra: Mapping[str, Any] = conn.extra_dejson or {}
        where = f"Connection {conn_id!r}"

        client_id = (conn.login or "").strip()
        if not client_id:
            raise LiveResponseConfigError(
                f"{where}: login is empty. Set it to the application (client) id of the Entra app "
                "registration that has the WindowsDefenderATP permissions."
            )

        tenant_id = _tenant_id(where, extra)
        cloud = _cloud(where, extra)
        endpoints = CLOUDS[cloud]
        api_url = _url(where, "api_url", extra.get("api_url")) or _host_url(conn) or endpoints.api_url
        authority_override = _url(where, "authority_url", extra.get("authority_url"))
        authority_host = authority_override or endpoints.authority_host
        scope = str(extra.get("scope") or endpoints.scope).strip()
        if not scope.endswith("/.default"):
            raise LiveResponseConfigError(
                f"{where}: extra field scope {scope!r} must end with '/.default' (client-credentials flow), "
                f"for example {endpoints.scope!r}."
            )

        secret, cert_pem, thumbprint = _credential(where, conn.password or None, extra)
        ca_bundle = _ca_bundle(where, extra)
        read_share = _read_share(where, extra)
        simulator_speed = _simulator_speed(where, extra)
        limiter = _submission_limiter(where, extra)
        return cls(
            conn_id=conn_id,
            client_id=client_id,
            tenant_id=tenant_id,
            cloud=cloud,
            api_url=api_url.rstrip("/"),
            authority=f"{authority_host.rstrip('/')}/{tenant_id}",
            scope=scope,
            custom_authority=authority_override is not None,
            client_secret=None if cert_pem else secret,
            certificate_pem=cert_pem,
            certificate_thumbprint=thumbprint.upper() if thumbprint else None,
            ca_bundle=str(Path(ca_bundle).expanduser()) if ca_bundle else None,
            read_share=read_share,
            simulator_speed=simulator_speed,
            submission_limiter_conn_id=limiter,
        )


def _tenant_id(where: str, extra: Mapping[str, Any]) -> str:
    tenant_id = str(extra.get("tenant_id") or "").strip()
    if not tenant_id:
        raise LiveResponseConfigError(
            f"{where}: extra field tenant_id is missing. Set it to the directory (tenant) id, "
            "a GUID shown on the app registration's overview page."
        )
    if not _TENANT.match(tenant_id):
        raise LiveResponseConfigError(
            f"{where}: extra field tenant_id {tenant_id!r} is not a tenant id or domain: use the GUID "
            "from the app registration's overview page (or the tenant's *.onmicrosoft.com domain)."
        )
    return tenant_id


def _cloud(where: str, extra: Mapping[str, Any]) -> str:
    cloud = str(extra.get("cloud") or DEFAULT_CLOUD).strip().lower().replace("-", "_").replace(" ", "_")
    if cloud not in CLOUDS:
        raise LiveResponseConfigError(
            f"{where}: extra field cloud {extra.get('cloud')!r} is unknown; use one of "
            f"{', '.join(CLOUDS)} (default {DEFAULT_CLOUD})."
        )
    return cloud


def _credential(where: str, secret: str | None, extra: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """The client secret, or the certificate's PEM and thumbprint (read from certificate_path if given)."""
    cert_path = str(extra.get("certificate_path") or "").strip() or None
    cert_pem = str(extra.get("certificate_pem") or "").strip() or None
    thumbprint = str(extra.get("certificate_thumbprint") or "").replace(":", "").replace(" ", "") or None
    if cert_path and cert_pem:
        raise LiveResponseConfigError(f"{where}: both certificate_path and certificate_pem are set; keep one of them.")
    if (cert_path or cert_pem) and secret:
        raise LiveResponseConfigError(
            f"{where}: both a password (client secret) and a certificate are set; clear the password to "
            "authenticate with the certificate, or remove certificate_path / certificate_pem."
        )
    if cert_path:
        path = Path(cert_path).expanduser()
        try:
            cert_pem = path.read_text()
        except OSError as exc:
            raise LiveResponseConfigError(
                f"{where}: extra field certificate_path {cert_path!r} cannot be read ({exc.strerror}); "
                "point it at a PEM file holding the private key (and certificate) readable by the worker."
            ) from None
    if cert_pem is not None:
        if "PRIVATE KEY-----" not in cert_pem:
            raise LiveResponseConfigError(
                f"{where}: the certificate (certificate_path or certificate_pem) holds no PEM private key; "
                "give the PEM with '-----BEGIN PRIVATE KEY-----' and the certificate."
            )
        thumbprint = thumbprint or _thumbprint_from_pem(cert_pem)
        if not thumbprint:
            raise LiveResponseConfigError(
                f"{where}: extra field certificate_thumbprint is missing and the PEM holds no certificate "
                "to compute it from; set it to the SHA-1 thumbprint shown on the app's 'Certificates & "
                "secrets' page."
            )
        if not _THUMBPRINT.match(thumbprint):
            raise LiveResponseConfigError(
                f"{where}: extra field certificate_thumbprint {thumbprint!r} is not a SHA-1 thumbprint "
                "(40 hex characters, as shown on the app's 'Certificates & secrets' page)."
            )
    elif not secret:
        raise LiveResponseConfigError(
            f"{where}: no credential. Set the password to the app's client secret, or set the extra fields "
            "certificate_path (or certificate_pem) and certificate_thumbprint for certificate auth."
        )
    return secret, cert_pem, thumbprint


def _ca_bundle(where: str, extra: Mapping[str, Any]) -> str | None:
    ca_bundle = str(extra.get("ca_bundle") or "").strip() or None
    if ca_bundle is not None and not Path(ca_bundle).expanduser().is_file():
        raise LiveResponseConfigError(
            f"{where}: extra field ca_bundle {ca_bundle!r} is not a readable file; point it at a PEM file "
            "of the CA certificates to trust, or remove it to use the system's store."
        )
    return ca_bundle


def _read_share(where: str, extra: Mapping[str, Any]) -> float:
    """The extra field read_share: a number, or its text (Airflow 3.1's form stores text); default 1."""
    value = extra.get("read_share")
    if isinstance(value, str):
        value = validation.rendered_number(value)
    if value is None:
        return DEFAULT_READ_SHARE
    try:
        return validation.fraction(value, "extra field read_share")
    except LiveResponseConfigError as exc:
        raise type(exc)(
            f"{where}: {exc}. It is the fraction of MDE's per-tenant read limits ({READ_CALLS_PER_MINUTE} a "
            f"minute, {READ_CALLS_PER_HOUR:,} an hour) one polling process may use: set it to 1 / (the triggerers "
            "+ fleet sweeps that may run at once on this tenant), for example 0.25 for two triggerers and two "
            "sweeps, or remove it for 1."
        ) from None


def _submission_limiter(where: str, extra: Mapping[str, Any]) -> str | None:
    """The extra field submission_limiter_conn_id: an Airflow connection id, or None (empty) for none."""
    value = extra.get("submission_limiter_conn_id")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,250}", value.strip()):
        raise LiveResponseConfigError(
            # The value is not echoed: a URL with a password pasted here must not reach a log.
            f"{where}: extra field submission_limiter_conn_id is not an Airflow connection id (letters, digits, "
            f"'_', '.', '-'; got a {type(value).__name__} of {len(str(value))} characters). Set it to the id of a "
            "postgres connection that every worker reaches (the deployment's submissions take turns there), not "
            "its URL, or remove it."
        )
    return value.strip()


def _simulator_speed(where: str, extra: Mapping[str, Any]) -> float:
    """The extra field simulator_speed (only for a simulator whose clock runs fast): a positive number; default 1."""
    value = extra.get("simulator_speed")
    if isinstance(value, str):
        value = validation.rendered_number(value)
    if value is None:
        return 1.0
    try:
        return validation.duration(value, "extra field simulator_speed")
    except LiveResponseConfigError as exc:
        raise type(exc)(
            f"{where}: {exc}. It is only for a simulator whose clock runs that many times faster than real time "
            "(the bundled simulator's connection sets it); remove it for Microsoft Defender for Endpoint."
        ) from None


def _url(where: str, name: str, value: Any) -> str | None:
    text = str(value or "").strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.netloc:
        raise LiveResponseConfigError(
            f"{where}: extra field {name} {text!r} must be an https:// URL such as "
            f"'https://api.security.microsoft.com' (TLS is always verified)."
        )
    return text.rstrip("/")


def _host_url(conn: Any) -> str | None:
    host = (getattr(conn, "host", None) or "").strip()
    if not host:
        return None
    if "://" not in host:
        host = f"https://{host}"
    port = getattr(conn, "port", None)
    if port and urlsplit(host).port is None:
        host = f"{host}:{port}"
    return _url("Connection", "host", host)


def _thumbprint_from_pem(pem: str) -> str | None:
    if "-----BEGIN CERTIFICATE-----" not in pem:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    start = pem.index("-----BEGIN CERTIFICATE-----")
    cert = x509.load_pem_x509_certificate(pem[start:].encode())
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra's thumbprint is SHA-1
