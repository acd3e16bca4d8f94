"""Check a stored case months later: every manifest under a destination, every object it lists re-read and hashed,
every signature checked, and every missing, extra, changed, unsigned or suspicious item named by its path.

A manifest is untrusted input here: a path that leaves its case folder (``..``, absolute, a backslash, a drive
letter, NUL or another control character), a symbolic link, an absurd size, malformed JSON or a wrong schema is
reported, never followed. Objects are read in chunks, so memory stays bounded whatever their size. The command
line is ``python -m airflow_provider_liveresponse verify`` (see :mod:`airflow_provider_liveresponse.__main__`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseError
from airflow_provider_liveresponse.signing import (
    MAX_SIGNATURE_BYTES,
    SIGNATURE_SUFFIX,
    check_signature,
    fingerprint,
    signature_name,
)
from airflow_provider_liveresponse.stored_objects import open_destination, read_error
from airflow_provider_liveresponse.transfers.manifest import (
    MANIFEST_NAME,
    MANIFEST_VERSION,
    MAX_MANIFEST_BYTES,
    Manifest,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from airflow_provider_liveresponse.stored_objects import Store, StoredObject

#: A listed size above this (1 TiB) is absurd for one collected file (MDE's GetFile limit is 3 GB).
MAX_OBJECT_SIZE = 1024**4
MAX_PATH_CHARS = 1024
DEFAULT_CHUNK_SIZE = 1024 * 1024

#: Kinds of problem. ``unsigned`` fails the check only when a public key was given.
Kind = Literal[
    "missing",
    "extra",
    "changed",
    "unsigned",
    "bad_signature",
    "unsafe_path",
    "link",
    "bad_entry",
    "bad_manifest",
    "unreadable",
    "no_manifest",
]
_DRIVE = re.compile(r"^[A-Za-z]:")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold, named by its path under the destination (or as the manifest gives it)."""

    kind: Kind
    path: str
    detail: str
    manifest: str | None = None


@dataclass
class ManifestResult:
    """One manifest: its signature's status (``valid``, ``invalid``, ``not checked``, ``unsigned``) and size."""

    path: str
    signature: Literal["valid", "invalid", "not checked", "unsigned", "unreadable"]
    signed_by: str | None = None
    files: int = 0
    size: int = 0


@dataclass
class Report:
    """What :func:`verify` found; ``ok`` when everything holds."""

    destination: str
    key_fingerprint: str | None
    manifests: list[ManifestResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    objects_checked: int = 0
    bytes_checked: int = 0

    @property
    def signatures_checked(self) -> bool:
        return self.key_fingerprint is not None

    def fails(self, problem: Problem) -> bool:
        """Whether ``problem`` fails the check (an unsigned manifest does only when a key was given)."""
        return problem.kind != "unsigned" or self.signatures_checked

    @property
    def ok(self) -> bool:
        return not any(self.fails(p) for p in self.problems)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(p.kind for p in self.problems).items()))

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON-ready document (what ``--json`` prints)."""
        return {
            "destination": self.destination,
            "ok": self.ok,
            "signatures": "checked" if self.signatures_checked else "not checked",
            "key_fingerprint": self.key_fingerprint,
            "checked": {
                "manifests": len(self.manifests),
                "objects": self.objects_checked,
                "bytes": self.bytes_checked,
            },
            "counts": self.counts(),
            "manifests": [vars(m) for m in self.manifests],
            "problems": [{**vars(p), "fails": self.fails(p)} for p in self.problems],
        }


class Progress:
    """Counts the objects and bytes checked against the totals planned; :meth:`report` is called after each step
    and does nothing here (the command line's progress prints a line now and then)."""

    def __init__(self) -> None:
        self.objects = self.size = self.total_objects = self.total_size = 0

    def begin(self, objects: int, size: int) -> None:
        self.total_objects, self.total_size = objects, size

    def advance(self, *, size: int = 0, objects: int = 0) -> None:
        self.objects += objects
        self.size += size
        self.report()

    def report(self) -> None:
        """Show the counts (nothing here)."""


def human_size(count: int) -> str:
    """``count`` bytes as B, KiB, MiB, GiB or TiB."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, unit = float(count), units.pop(0)
    while value >= 1024 and units:
        value, unit = value / 1024, units.pop(0)
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"


# -- manifests -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    key: str
    size: int
    sha256: str
    manifest: str


@dataclass
class ParsedManifest:
    """What one manifest lists: the objects to check, every key it names safely, and its problems."""

    planned: list[_Planned] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


def unsafe_path_reason(path: str) -> str | None:
    """Why a manifest's file path must not be followed, or None when it names an object inside the case folder."""
    if not path:
        return "is empty"
    if "\x00" in path:
        return "holds a NUL character"
    if any(not char.isprintable() for char in path):
        return "holds a control or invisible formatting character"
    if "\\" in path:
        return "holds a backslash"
    if path.startswith("/"):
        return "is absolute"
    if _DRIVE.match(path):
        return "starts with a drive letter"
    if len(path) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    segments = path.split("/")
    if ".." in segments:
        return "leaves the case folder (..)"
    if any(segment in {"", "."} for segment in segments):
        return "has an empty or '.' segment"
    if path in {MANIFEST_NAME, signature_name(MANIFEST_NAME)}:
        return "names the manifest or its signature"
    return None


def _schema_errors(document: Any) -> tuple[list[str], dict[int, list[str]]]:
    """The manifest model's complaints: those about the manifest as a whole, and those about each ``files[i]``."""
    try:
        Manifest.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors()
    else:
        return [], {}
    whole: list[str] = []
    entries: dict[int, list[str]] = {}
    for error in errors:
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] == "files" and isinstance(loc[1], int):
            entries.setdefault(loc[1], []).append(f"{'.'.join(map(str, loc[2:])) or 'entry'}: {error['msg']}")
        else:
            whole.append(f"{'.'.join(map(str, loc)) or 'manifest'}: {error['msg']}")
    return whole, entries


def _size_reason(size: Any) -> str | None:
    if not isinstance(size, int) or isinstance(size, bool):
        return f"size {str(size)[:40]!r} is not a whole number of bytes"
    if not 0 <= size <= MAX_OBJECT_SIZE:
        return f"size {size} is absurd (not from 0 to {human_size(MAX_OBJECT_SIZE)})"
    return None


def parse_manifest(data: bytes, manifest_key: str) -> ParsedManifest:
    """Read a manifest (untrusted): what it lists as keys under the destination, and what is wrong with it.

    The manifest is checked against the transfer's model (:class:`~airflow_provider_liveresponse.transfers.
    manifest.Manifest`); each entry of ``files`` is judged on its own, so one bad entry does not hide the others.
    """
    parsed = ParsedManifest()
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        parsed.problems.append(Problem("bad_manifest", manifest_key, f"is not JSON ({str(exc)[:200]})", manifest_key))
        return parsed
    whole, entry_errors = _schema_errors(document)
    if whole:
        detail = f"is not a version-{MANIFEST_VERSION} manifest ({'; '.join(whole[:8])})"
        parsed.problems.append(Problem("bad_manifest", manifest_key, detail, manifest_key))
    files = document.get("files") if isinstance(document, dict) else None
    for index, raw in enumerate(files if isinstance(files, list) else []):
        _parse_entry(parsed, manifest_key, index, raw, entry_errors.get(index, []))
    return parsed


def _parse_entry(parsed: ParsedManifest, manifest_key: str, index: int, raw: Any, errors: list[str]) -> None:
    """One entry of ``files``: followed only when its path is safe; checked when its size and SHA-256 are sound
    (other fields the model wants are reported, but do not stop the object's check)."""
    entry = raw if isinstance(raw, dict) else {}
    path, where = entry.get("path"), f"files[{index}]"
    if not isinstance(path, str):
        detail = f"{where} has no path ({'; '.join(errors[:3]) or 'not an object'}); not checked"
        parsed.problems.append(Problem("bad_entry", where, detail, manifest_key))
        return
    reason = unsafe_path_reason(path)
    if reason is not None:
        detail = f"{where} path {reason}; not followed"
        parsed.problems.append(Problem("unsafe_path", path[:MAX_PATH_CHARS], detail, manifest_key))
        return
    folder = manifest_key.rpartition("/")[0]
    key = f"{folder}/{path}" if folder else path
    if key in parsed.listed:
        parsed.problems.append(Problem("bad_entry", key, f"{where} lists this path a second time", manifest_key))
        return
    parsed.listed.add(key)
    sha256 = entry.get("sha256")
    sha256 = sha256.lower() if isinstance(sha256, str) and _SHA256.match(sha256) else None
    unsound = _size_reason(entry.get("size")) or (None if sha256 else "sha256 is not 64 hexadecimal digits")
    if unsound is not None:
        parsed.problems.append(Problem("bad_entry", key, f"{where}: {unsound}; not checked", manifest_key))
        return
    if errors:
        parsed.problems.append(Problem("bad_entry", key, f"{where}: {'; '.join(errors[:3])}", manifest_key))
    parsed.planned.append(_Planned(key, entry["size"], str(sha256), manifest_key))


# -- the check -----------------------------------------------------------------------------------------------


@dataclass
class _Run:
    store: Store
    objects: dict[str, StoredObject]
    report: Report
    public_key: Ed25519PublicKey | None
    chunk_size: int
    progress: Progress

    def problem(self, kind: Kind, path: str, detail: str, manifest: str | None = None) -> None:
        self.report.problems.append(Problem(kind, path, detail, manifest))

    def read_small(self, key: str, limit: int) -> bytes:
        """The whole object, or OSError when it is larger than ``limit`` or cannot be read."""
        try:
            with self.store.open(key) as handle:
                data = handle.read(limit + 1)
        except Exception as exc:
            raise read_error(exc) from None
        if len(data) > limit:
            raise OSError(f"larger than {human_size(limit)}")
        return data


def verify(
    destination: str,
    *,
    public_key: Ed25519PublicKey | None = None,
    dest_conn_id: str | None = None,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Report:
    """Check every manifest under ``destination`` and every object it lists; with ``public_key``, every signature.

    Raises :class:`~airflow_provider_liveresponse.exceptions.LiveResponseConfigError` for a destination that
    cannot be checked at all (bad or missing); everything found in it is reported, never raised.
    """
    chunk_size = validation.count(chunk_size, "chunk_size", minimum=4096)
    store = open_destination(destination, dest_conn_id)
    try:
        objects = {obj.key: obj for obj in store.list()}
    except LiveResponseError:
        raise
    except Exception as exc:
        raise LiveResponseError(
            f"cannot list {store.shown} ({type(exc).__name__}: {str(exc)[:300]}): check the connection, the "
            "bucket or container and its permissions"
        ) from None
    report = Report(store.shown, fingerprint(public_key) if public_key is not None else None)
    run = _Run(store, objects, report, public_key, chunk_size, progress or Progress())
    manifests = sorted(k for k in objects if k.rpartition("/")[2] == MANIFEST_NAME)
    if not manifests:
        run.problem("no_manifest", "", f"no {MANIFEST_NAME} anywhere under {store.shown}: nothing to check")
    planned: list[_Planned] = []
    listed: set[str] = set()
    for key in manifests:
        parsed = _check_manifest(run, key)
        planned.extend(parsed.planned)
        listed.update(parsed.listed)
    _report_unlisted(run, listed, set(manifests))
    _check_objects(run, planned)
    report.problems.sort(key=lambda p: (p.path, p.kind))
    return report


def _check_manifest(run: _Run, key: str) -> ParsedManifest:
    """Read one manifest, check its signature, and return what it lists."""
    obj = run.objects[key]
    if obj.kind != "file":
        run.problem("link", key, _not_followed(obj), key)
        run.report.manifests.append(ManifestResult(key, "unreadable"))
        return ParsedManifest()
    try:
        data = run.read_small(key, MAX_MANIFEST_BYTES)
    except OSError as exc:
        run.problem("unreadable", key, f"cannot be read ({exc})", key)
        run.report.manifests.append(ManifestResult(key, "unreadable"))
        return ParsedManifest()
    result = _check_signature(run, key, data)
    parsed = parse_manifest(data, key)
    run.report.problems.extend(parsed.problems)
    result.files, result.size = len(parsed.listed), sum(p.size for p in parsed.planned)
    run.report.manifests.append(result)
    return parsed


def _check_signature(run: _Run, key: str, data: bytes) -> ManifestResult:
    sig_key = signature_name(key)
    sig = run.objects.get(sig_key)
    if sig is None:
        run.problem("unsigned", key, f"has no signature ({sig_key.rpartition('/')[2]} is missing)", key)
        return ManifestResult(key, "unsigned")
    if sig.kind != "file":
        run.problem("link", sig_key, _not_followed(sig), key)
        return ManifestResult(key, "invalid")
    try:
        document = run.read_small(sig_key, MAX_SIGNATURE_BYTES)
    except OSError as exc:
        run.problem("unreadable", sig_key, f"cannot be read ({exc})", key)
        return ManifestResult(key, "invalid")
    if run.public_key is None:
        return ManifestResult(key, "not checked", _named_fingerprint(document))
    check = check_signature(data, document, run.public_key)
    if not check.valid:
        run.problem("bad_signature", key, check.detail, key)
    return ManifestResult(key, check.status, check.named_fingerprint)


def _named_fingerprint(document: bytes) -> str | None:
    try:
        value = json.loads(document).get("key_fingerprint")
    except (ValueError, AttributeError, RecursionError):
        return None
    return value[:80] if isinstance(value, str) else None


def _not_followed(obj: StoredObject) -> str:
    if obj.kind == "link":
        return f"is a symbolic link (to {obj.target!r}); not followed"
    return "is not a regular file (a device, socket or pipe); not read"


def _report_unlisted(run: _Run, listed: set[str], manifests: set[str]) -> None:
    """Objects no manifest lists (other than the manifests and their signatures) are extra."""
    for key, obj in run.objects.items():
        if key in listed or key in manifests:
            continue
        if key.endswith(SIGNATURE_SUFFIX) and key.removesuffix(SIGNATURE_SUFFIX) in manifests:
            continue
        where = key.rpartition("/")[0]
        beside = f"{where}/{MANIFEST_NAME}" if where else MANIFEST_NAME
        if obj.kind != "file":
            run.problem("link", key, _not_followed(obj) + "; no manifest lists it")
        elif _is_partial(key):
            run.problem("extra", key, "a temporary object left by an interrupted transfer; no manifest lists it")
        elif beside in manifests:
            run.problem("extra", key, f"{human_size(obj.size)}, not listed by the {MANIFEST_NAME} beside it", beside)
        else:
            run.problem("extra", key, f"{human_size(obj.size)}, in no case folder (no {MANIFEST_NAME} beside it)")


def _is_partial(key: str) -> bool:
    name = key.rpartition("/")[2]
    return name.startswith(".") and name.endswith(".partial")


def _check_objects(run: _Run, planned: list[_Planned]) -> None:
    run.progress.begin(len(planned), sum(p.size for p in planned))
    for item in planned:
        _check_object(run, item)
        run.progress.advance(objects=1)


def _check_object(run: _Run, item: _Planned) -> None:
    obj = run.objects.get(item.key)
    if obj is None:
        run.problem("missing", item.key, f"listed ({human_size(item.size)}) but not stored", item.manifest)
        return
    if obj.kind != "file":
        run.problem("link", item.key, _not_followed(obj), item.manifest)
        return
    if obj.links > 1:
        run.problem("link", item.key, f"has {obj.links} hard links: another name can change it", item.manifest)
    if obj.size != item.size:
        detail = f"size is {obj.size} bytes, the manifest says {item.size}"
        run.problem("changed", item.key, detail, item.manifest)
        return
    try:
        size, sha256 = _hash(run, item.key)
    except OSError as exc:
        run.problem("unreadable", item.key, f"cannot be read ({exc})", item.manifest)
        return
    run.report.objects_checked += 1
    run.report.bytes_checked += size
    if size != item.size:
        run.problem("changed", item.key, f"{size} bytes were read, the manifest says {item.size}", item.manifest)
    elif sha256 != item.sha256:
        run.problem("changed", item.key, f"SHA-256 is {sha256}, the manifest says {item.sha256}", item.manifest)


def _hash(run: _Run, key: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    try:
        with run.store.open(key) as handle:
            while chunk := handle.read(run.chunk_size):
                digest.update(chunk)
                size += len(chunk)
                run.progress.advance(size=len(chunk))
    except Exception as exc:
        raise read_error(exc) from None
    return size, digest.hexdigest()


__all__ = [
    "MANIFEST_NAME",
    "Problem",
    "Progress",
    "Report",
    "human_size",
    "parse_manifest",
    "unsafe_path_reason",
    "verify",
]
