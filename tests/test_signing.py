"""Ed25519 manifest signatures: signing the exact bytes, the signature document, keys from a connection or a file,
and bad keys failing with the field and the fix, never the key."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.secrets import redact
from airflow_provider_liveresponse.signing import (
    ManifestSigner,
    check_signature,
    fingerprint,
    private_key_from_connection,
    private_key_from_pem,
    public_key_from_connection,
    public_key_from_file,
    signature_name,
)
from tests.verify.cases import private_pem, signing_connection, write_public_key

if TYPE_CHECKING:
    from pathlib import Path

MANIFEST = b'{\n  "manifest_version": 1,\n  "files": []\n}\n'
CONN = "manifest_signing"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def signer(key: Ed25519PrivateKey) -> ManifestSigner:
    return ManifestSigner(key, clock=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


def set_connection(monkeypatch: pytest.MonkeyPatch, password: str | None) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "generic", "password": password}))


def body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


# -- signing ------------------------------------------------------------------------------------------------


def test_a_signature_holds_for_the_exact_bytes_signed(signer: ManifestSigner) -> None:
    check = check_signature(MANIFEST, signer.sign(MANIFEST), signer.public_key)
    assert check.valid
    assert check.detail == f"signed by {signer.fingerprint}"


def test_one_changed_byte_breaks_the_signature(signer: ManifestSigner) -> None:
    document = signer.sign(MANIFEST)
    changed = MANIFEST.replace(b"[]", b"[ ]")
    check = check_signature(changed, document, signer.public_key)
    assert check.status == "invalid"
    assert "the manifest changed after it was signed" in check.detail


def test_the_signature_document_names_the_key_the_manifest_and_the_time(
    signer: ManifestSigner, key: Ed25519PrivateKey
) -> None:
    document = json.loads(signer.sign(MANIFEST, "manifest.json"))
    raw_public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert document == {
        "signature_version": 1,
        "algorithm": "ed25519",
        "key_fingerprint": "SHA256:" + hashlib.sha256(raw_public).hexdigest(),
        "manifest": "manifest.json",
        "manifest_size": len(MANIFEST),
        "manifest_sha256": hashlib.sha256(MANIFEST).hexdigest(),
        "signature": document["signature"],
        "signed_at": "2026-01-02T03:04:05+00:00",
    }
    key.public_key().verify(base64.b64decode(document["signature"]), MANIFEST)  # a plain Ed25519 signature


def test_the_signature_is_stored_beside_the_manifest_under_its_name() -> None:
    assert signature_name("manifest.json") == "manifest.json.sig"


def test_a_signature_by_another_key_is_invalid_and_names_both_keys(signer: ManifestSigner) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    check = check_signature(MANIFEST, signer.sign(MANIFEST), other)
    assert check.status == "invalid"
    assert signer.fingerprint in check.detail
    assert fingerprint(other) in check.detail


def test_a_signature_whose_fingerprint_was_rewritten_is_still_checked_by_the_key(signer: ManifestSigner) -> None:
    document = json.loads(signer.sign(MANIFEST))
    document["key_fingerprint"] = "SHA256:" + "0" * 64
    assert check_signature(MANIFEST, json.dumps(document).encode(), signer.public_key).valid


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: b"not json", "malformed"),
        (lambda d: json.dumps({**d, "signature_version": 2}).encode(), "malformed"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "signature"}).encode(), "malformed"),
        (lambda d: json.dumps({**d, "algorithm": "rsa"}).encode(), "not ed25519"),
        (lambda d: json.dumps({**d, "signature": "!!not base64!!"}).encode(), "not base64"),
        (lambda d: json.dumps({**d, "signature": base64.b64encode(b"x" * 64).decode()}).encode(), "altered"),
        (lambda d: b"[" * 100_000, "malformed"),
    ],
    ids=["not-json", "version", "no-signature", "algorithm", "base64", "forged", "deep"],
)
def test_a_malformed_or_forged_signature_document_is_invalid_and_never_raises(
    signer: ManifestSigner, change: object, reason: str
) -> None:
    document = json.loads(signer.sign(MANIFEST))
    check = check_signature(MANIFEST, change(document), signer.public_key)  # type: ignore[operator]
    assert check.status == "invalid"
    assert reason in check.detail


def test_the_signer_shows_its_fingerprint_never_its_key(signer: ManifestSigner, key: Ed25519PrivateKey) -> None:
    assert repr(signer) == f"ManifestSigner({signer.fingerprint})"
    for line in body_lines(private_pem(key)):
        assert line not in repr(signer)


# -- keys from a connection ---------------------------------------------------------------------------------


def test_the_private_key_comes_from_the_connection_password(
    monkeypatch: pytest.MonkeyPatch, key: Ed25519PrivateKey
) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", signing_connection(key))
    signer = ManifestSigner.from_connection(CONN)
    assert signer.fingerprint == fingerprint(key.public_key())
    assert fingerprint(public_key_from_connection(CONN)) == signer.fingerprint


def test_a_key_pasted_on_one_line_with_escaped_newlines_is_read(
    monkeypatch: pytest.MonkeyPatch, key: Ed25519PrivateKey
) -> None:
    set_connection(monkeypatch, private_pem(key).replace("\n", "\\n"))
    assert fingerprint(private_key_from_connection(CONN).public_key()) == fingerprint(key.public_key())


def test_the_key_is_masked_as_soon_as_it_is_read(key: Ed25519PrivateKey) -> None:
    pem = private_pem(key)
    private_key_from_pem(pem, "the test's key")
    assert "PRIVATE KEY" not in redact(f"key: {pem}")
    for line in body_lines(pem):  # a log line might hold one line of the PEM: each is masked too
        assert line not in redact(f"a log line holding {line} alone")


def _rsa_pem() -> str:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return rsa_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def _ec_traditional_pem() -> str:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return ec_key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()).decode()


def _encrypted_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"passphrase")).decode()


def _public_pem() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def _garbled_pem() -> str:
    pem = private_pem(Ed25519PrivateKey.generate())
    return pem.replace(body_lines(pem)[0], "MC4CAQAwBQYDK2VwBCIEI" + "A" * 10)


@pytest.mark.parametrize(
    ("make_password", "says"),
    [
        (lambda: "", "is empty"),
        (lambda: None, "is empty"),
        (lambda: "   \n", "is empty"),
        (_encrypted_pem, "encrypted private key"),
        (_rsa_pem, "holds a RSA key, not an Ed25519 one"),
        (_ec_traditional_pem, "'EC PRIVATE KEY' PEM, not PKCS#8"),
        (_public_pem, "holds a public key, not a private key"),
        (_garbled_pem, "is not a readable PEM private key"),
        (lambda: "hunter2-not-a-key", "is not a readable PEM private key"),
    ],
    ids=["empty", "none", "blank", "encrypted", "rsa", "ec-traditional", "public", "garbled", "text"],
)
def test_a_bad_key_fails_naming_the_connection_field_and_the_fix_never_the_key(
    monkeypatch: pytest.MonkeyPatch, make_password: object, says: str
) -> None:
    password = make_password()  # type: ignore[operator]
    set_connection(monkeypatch, password)
    with pytest.raises(LiveResponseConfigError) as info:
        ManifestSigner.from_connection(CONN)
    message = str(info.value)
    assert f"the password of connection {CONN!r}" in message
    assert says in message
    assert "openssl" in message
    for line in body_lines(password or ""):
        assert line not in message
    assert info.value.__cause__ is None  # no chained error from the key parser is shown in a traceback
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_an_unknown_signing_connection_is_named() -> None:
    with pytest.raises(LiveResponseConfigError, match="the signing connection 'no_such_signing_conn' cannot be read"):
        ManifestSigner.from_connection("no_such_signing_conn")


@pytest.mark.parametrize("conn_id", ["", "  ", None, 5])
def test_a_signing_connection_id_must_be_text(conn_id: object) -> None:
    with pytest.raises(LiveResponseConfigError, match="signing_conn_id"):
        ManifestSigner.from_connection(conn_id)  # type: ignore[arg-type]


# -- public keys from a file --------------------------------------------------------------------------------


def test_the_public_key_comes_from_a_pem_file(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = write_public_key(key, tmp_path / "signing-key.pub.pem")
    assert fingerprint(public_key_from_file(path)) == fingerprint(key.public_key())


def test_a_private_key_given_as_the_public_key_is_refused_without_echoing_it(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    path = tmp_path / "oops.pem"
    path.write_text(private_pem(key))
    with pytest.raises(LiveResponseConfigError, match="holds a private key: give the public key") as info:
        public_key_from_file(path)
    for line in body_lines(private_pem(key)):
        assert line not in str(info.value)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "is not a PEM public key"),
        (b"ssh-ed25519 AAAA", "is not a PEM public key"),
        (b"x" * 100_000, "is larger than"),
    ],
    ids=["empty", "ssh", "huge"],
)
def test_a_file_that_is_not_a_pem_public_key_is_refused(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    with pytest.raises(LiveResponseConfigError, match=says) as info:
        public_key_from_file(path)
    assert str(path) in str(info.value)


def test_an_rsa_public_key_is_refused(tmp_path: Path) -> None:
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    path = tmp_path / "rsa.pub.pem"
    path.write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(LiveResponseConfigError, match="holds a RSA public key, not an Ed25519 one"):
        public_key_from_file(path)


def test_a_missing_public_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(LiveResponseConfigError, match="cannot be read") as info:
        public_key_from_file(tmp_path / "absent.pem")
    assert "absent.pem" in str(info.value)
