"""Ed25519 signatures of manifests: sign a manifest's exact bytes with the key in an Airflow connection, store the
signature beside it, and check one with a public key.

The signature of ``manifest.json`` is ``manifest.json.sig``, a small JSON document::

    {"signature_version": 1, "algorithm": "ed25519", "key_fingerprint": "SHA256:<64 hex>",
     "manifest": "manifest.json", "manifest_size": 1834, "manifest_sha256": "<64 hex>",
     "signature": "<base64 of the 64-byte signature>", "signed_at": "2026-01-01T00:00:00+00:00"}

What is signed is the manifest file's bytes, nothing else: the other fields are a reader's help (which key, which
manifest) and are not trusted when checking. The key fingerprint is ``SHA256:`` and the hex SHA-256 of the raw
32-byte public key, the same as ``openssl pkey -pubin -in public.pem -outform DER | tail -c 32 | sha256sum``.

The private key lives in the connection's password as PEM (PKCS#8, ``-----BEGIN PRIVATE KEY-----``, as
``openssl genpkey -algorithm ed25519`` writes it). It is registered with Airflow's secrets masker as soon as it is
read and never appears in a log, an XCom, a manifest or an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.secrets import mask

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "ed25519"
SIGNATURE_VERSION: Literal[1] = 1
#: The signature of ``manifest.json`` is stored as ``manifest.json.sig``.
SIGNATURE_SUFFIX = ".sig"
#: A signature document larger than this is not one.
MAX_SIGNATURE_BYTES = 64 * 1024

_MAKE_KEY = (
    "make one with `openssl genpkey -algorithm ed25519 -out signing-key.pem` and put the whole file, "
    "BEGIN and END lines included, in the connection's password"
)
_PEM_LABEL = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_HEX64 = r"^[0-9a-fA-F]{64}$"


class ManifestSignature(BaseModel):
    """The signature document stored beside a manifest (``<manifest name>.sig``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    signature_version: Literal[1]
    algorithm: str
    key_fingerprint: str = Field(max_length=200)
    manifest: str = Field(max_length=1000)
    manifest_size: int = Field(ge=0, strict=True)
    manifest_sha256: str = Field(pattern=_HEX64)
    signature: str = Field(max_length=200)
    signed_at: str = Field(max_length=100)


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome of checking one manifest's signature: ``valid`` or ``invalid``, with what a person should know."""

    status: Literal["valid", "invalid"]
    detail: str
    #: The fingerprint the signature document names (not trusted: the check is cryptographic).
    named_fingerprint: str | None = None

    @property
    def valid(self) -> bool:
        return self.status == "valid"


def signature_name(manifest_name: str) -> str:
    """The name of the signature stored beside ``manifest_name``."""
    return manifest_name + SIGNATURE_SUFFIX


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """``SHA256:`` and the hex SHA-256 of the raw 32-byte public key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo), to hand to whoever checks the signatures."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


# -- private keys --------------------------------------------------------------------------------------------


def _mask_pem(pem: str) -> None:
    """Mask the PEM text and each of its base64 lines (a log line might hold one line of it)."""
    mask(pem)
    for line in pem.splitlines():
        if line.strip() and not line.startswith("-----"):
            mask(line.strip())


def _normalised_pem(text: str) -> str:
    text = text.strip()
    if "\\n" in text and "\n" not in text:  # pasted from a one-line JSON or environment value
        text = text.replace("\\n", "\n")
    return text.replace("\r\n", "\n")


def private_key_from_pem(pem: str | None, where: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``pem`` (PKCS#8, unencrypted); ``where`` names the field in errors (for example
    ``"the password of connection 'manifest_signing'"``). The errors never quote the key."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if pem is None or not pem.strip():
        raise LiveResponseConfigError(f"{where} is empty: it must hold an Ed25519 private key in PEM; {_MAKE_KEY}")
    _mask_pem(pem)
    text = _normalised_pem(pem)
    _mask_pem(text)
    label = _PEM_LABEL.search(text)
    kind = label.group(1) if label else None
    if kind == "ENCRYPTED PRIVATE KEY":
        raise LiveResponseConfigError(
            f"{where} holds an encrypted private key: store it unencrypted (the connection's password is kept "
            "encrypted by Airflow or your secrets backend), for example `openssl pkey -in key.pem -out plain.pem`"
        )
    if kind in {"PUBLIC KEY", "CERTIFICATE"}:
        raise LiveResponseConfigError(
            f"{where} holds a {kind.lower()}, not a private key: the password must hold the Ed25519 private key "
            "(the public key goes to whoever checks the signatures); " + _MAKE_KEY
        )
    if kind is not None and kind != "PRIVATE KEY":
        raise LiveResponseConfigError(
            f"{where} holds a '{kind}' PEM, not PKCS#8 ('PRIVATE KEY'): an Ed25519 key must be in PKCS#8; " + _MAKE_KEY
        )
    try:
        key = load_pem_private_key(text.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError):
        raise LiveResponseConfigError(f"{where} is not a readable PEM private key; {_MAKE_KEY}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LiveResponseConfigError(
            f"{where} holds a {_key_kind(key)} key, not an Ed25519 one: manifests are signed with Ed25519; " + _MAKE_KEY
        )
    return key


def _key_kind(key: object) -> str:
    name = type(key).__name__.lstrip("_")
    for kind in ("RSA", "EllipticCurve", "DSA", "Ed448", "X25519", "X448"):
        if kind in name:
            return "elliptic-curve (ECDSA)" if kind == "EllipticCurve" else kind
    return name


def private_key_from_connection(conn_id: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in the password of the Airflow connection ``conn_id``."""
    from airflow.sdk import BaseHook

    conn_id = validation.text(
        conn_id, "signing_conn_id", hint="the id of the Airflow connection holding the signing key"
    )
    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise LiveResponseConfigError(
            f"the signing connection {conn_id!r} cannot be read ({type(exc).__name__}): create it (any connection "
            "type) with the Ed25519 private key in its password; " + _MAKE_KEY
        ) from None
    return private_key_from_pem(connection.password, f"the password of connection {conn_id!r}")


# -- signing -------------------------------------------------------------------------------------------------


class ManifestSigner:
    """Signs manifests with one Ed25519 private key; :meth:`sign` returns the signature document's bytes.

    Build it with :meth:`from_connection` before any API call, so that a bad key fails the task at once. It holds
    the key object only (never the PEM text), and its ``repr`` shows the fingerprint.
    """

    def __init__(self, private_key: Ed25519PrivateKey, *, clock: Callable[[], datetime] | None = None) -> None:
        self._key = private_key
        self._clock = clock or (lambda: datetime.now(UTC))
        self.public_key: Ed25519PublicKey = private_key.public_key()
        self.fingerprint = fingerprint(self.public_key)

    @classmethod
    def from_connection(cls, conn_id: str, *, clock: Callable[[], datetime] | None = None) -> ManifestSigner:
        """The signer whose key is in the password of the Airflow connection ``conn_id``."""
        return cls(private_key_from_connection(conn_id), clock=clock)

    @classmethod
    def for_task(cls, conn_id: str | None, task_id: str, consequence: str) -> ManifestSigner | None:
        """A task's signer of ``signing_conn_id`` (None without one); a bad key fails naming the task, the
        parameter and ``consequence`` (what did not happen), never the key."""
        if conn_id is None:
            return None
        try:
            return cls.from_connection(conn_id)
        except LiveResponseConfigError as exc:
            raise type(exc)(f"Task {task_id}: signing_conn_id: {exc}; {consequence}") from None

    def __repr__(self) -> str:
        return f"ManifestSigner({self.fingerprint})"

    def sign(self, manifest: bytes, manifest_name: str = "manifest.json") -> bytes:
        """The signature document (JSON bytes) of the manifest whose exact bytes are ``manifest``."""
        document = ManifestSignature(
            signature_version=SIGNATURE_VERSION,
            algorithm=ALGORITHM,
            key_fingerprint=self.fingerprint,
            manifest=manifest_name,
            manifest_size=len(manifest),
            manifest_sha256=hashlib.sha256(manifest).hexdigest(),
            signature=base64.b64encode(self._key.sign(manifest)).decode("ascii"),
            signed_at=self._clock().isoformat(),
        )
        return (json.dumps(document.model_dump(), indent=2) + "\n").encode("utf-8")


# -- public keys and checking --------------------------------------------------------------------------------


def public_key_from_pem(pem: bytes | str, where: str) -> Ed25519PublicKey:
    """The Ed25519 public key in ``pem`` (SubjectPublicKeyInfo, ``-----BEGIN PUBLIC KEY-----``)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = pem.decode("utf-8", errors="replace") if isinstance(pem, bytes) else pem
    label = _PEM_LABEL.search(text)
    if label and "PRIVATE KEY" in label.group(1):
        raise LiveResponseConfigError(
            f"{where} holds a private key: give the public key instead (keep the private key secret), made with "
            "`openssl pkey -in signing-key.pem -pubout -out signing-key.pub.pem`"
        )
    try:
        key = load_pem_public_key(_normalised_pem(text).encode("utf-8"))
    except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError):
        raise LiveResponseConfigError(
            f"{where} is not a PEM public key ('-----BEGIN PUBLIC KEY-----'): make it from the signing key with "
            "`openssl pkey -in signing-key.pem -pubout -out signing-key.pub.pem`"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise LiveResponseConfigError(f"{where} holds a {_key_kind(key)} public key, not an Ed25519 one")
    return key


def public_key_from_file(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file at ``path``."""
    where = f"the public key file {str(path)!r}"
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_SIGNATURE_BYTES + 1)
    except OSError as exc:
        raise LiveResponseConfigError(f"{where} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_SIGNATURE_BYTES:
        raise LiveResponseConfigError(f"{where} is larger than {MAX_SIGNATURE_BYTES} bytes: it is not a PEM key")
    return public_key_from_pem(data, where)


def public_key_from_connection(conn_id: str) -> Ed25519PublicKey:
    """The public half of the Ed25519 private key in the password of the Airflow connection ``conn_id``."""
    return private_key_from_connection(conn_id).public_key()


def check_signature(manifest: bytes, document: bytes, public_key: Ed25519PublicKey) -> SignatureCheck:
    """Whether ``document`` (a signature document's bytes) is a valid Ed25519 signature of the exact bytes
    ``manifest`` by ``public_key``. Malformed documents are ``invalid``, with the reason; nothing raises."""
    from cryptography.exceptions import InvalidSignature

    expected = fingerprint(public_key)
    try:
        if len(document) > MAX_SIGNATURE_BYTES:
            raise ValueError(f"larger than {MAX_SIGNATURE_BYTES} bytes")
        parsed = ManifestSignature.model_validate(json.loads(document.decode("utf-8")))
    except (ValueError, UnicodeDecodeError, ValidationError) as exc:
        return SignatureCheck("invalid", f"the signature document is malformed ({_short_reason(exc)})")
    if parsed.algorithm != ALGORITHM:
        return SignatureCheck(
            "invalid", f"the signature uses {parsed.algorithm[:40]!r}, not {ALGORITHM}", parsed.key_fingerprint
        )
    try:
        raw = base64.b64decode(parsed.signature, validate=True)
    except (binascii.Error, ValueError):
        return SignatureCheck("invalid", "the signature is not base64", parsed.key_fingerprint)
    try:
        public_key.verify(raw, manifest)
    except InvalidSignature:
        return SignatureCheck("invalid", _why_invalid(manifest, parsed, expected), parsed.key_fingerprint)
    return SignatureCheck("valid", f"signed by {expected}", parsed.key_fingerprint)


def _why_invalid(manifest: bytes, parsed: ManifestSignature, expected: str) -> str:
    if parsed.key_fingerprint != expected:
        return f"the signature names key {parsed.key_fingerprint[:80]}, not the given key {expected}"
    if parsed.manifest_sha256.lower() != hashlib.sha256(manifest).hexdigest():
        return (
            f"the manifest changed after it was signed (it was signed with SHA-256 {parsed.manifest_sha256}, "
            f"it now has {hashlib.sha256(manifest).hexdigest()})"
        )
    return "the signature does not match the manifest: it was altered"


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'document'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} at line {exc.lineno}"
    return str(exc)[:200]


__all__ = [
    "ALGORITHM",
    "SIGNATURE_SUFFIX",
    "ManifestSignature",
    "ManifestSigner",
    "SignatureCheck",
    "check_signature",
    "fingerprint",
    "private_key_from_connection",
    "private_key_from_pem",
    "public_key_from_connection",
    "public_key_from_file",
    "public_key_from_pem",
    "public_key_pem",
    "signature_name",
]
