"""Safe, stable object names for collected evidence: a device path or script name in, one path segment out.

A GetFile path comes from a device (or from whoever started the action) and is not trusted: it may hold
``..``, drive letters, both kinds of separator, Windows device names, control or bidirectional-override
characters, characters that object stores and fsspec treat specially, or thousands of characters.
:func:`safe_name` turns any of it into one segment that is valid on POSIX and Windows file systems, as an S3
key part and as an Azure blob name part, and that is the same for the same input on every run.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Final

#: The longest name :func:`safe_name` returns, in UTF-8 bytes: room under the usual 255-byte file-name limit
#: for the ``{index}_`` prefix, a ``.gz`` or ``.transcript.json`` suffix and a temporary name around it.
MAX_NAME_BYTES: Final = 160
#: The name of a GetFile result whose path has no usable base name.
FALLBACK_NAME: Final = "file"
#: Suffix of a stored RunScript transcript.
TRANSCRIPT_SUFFIX: Final = ".transcript.json"

_RESERVED: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{base}{digit}" for base in ("COM", "LPT") for digit in "0123456789¹²³"}
)
#: ASCII punctuation kept as is; everything else that is not a letter, digit or combining mark becomes ``_``.
_KEPT_PUNCTUATION: Final = frozenset("._-+=,@()")
_RUNS: Final = re.compile(r"_{2,}")
_SEPARATORS: Final = re.compile(r"[\\/]+")


def base_name(device_path: str) -> str:
    """The last segment of a Windows or POSIX device path (drive letters and trailing separators dropped)."""
    segments = [s for s in _SEPARATORS.split(device_path.strip()) if s]
    last = segments[-1] if segments else ""
    if len(last) >= 2 and last[1] == ":" and last[0].isascii() and last[0].isalpha():
        last = last[2:]  # "C:" or "C:name" (a drive-relative path)
    return last


def _clean_character(char: str) -> str:
    if char in _KEPT_PUNCTUATION:
        return char
    if char.isascii():
        return char if char.isalnum() else "_"
    category = unicodedata.category(char)
    return char if category[0] in "LNM" else "_"


def _truncate_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", errors="ignore")


def safe_name(name: str, *, fallback: str = FALLBACK_NAME) -> str:
    """One safe path segment for ``name`` (a base name, not a path: see :func:`base_name`).

    NFC-normalised; letters, digits and combining marks of any script kept, as are ``._-+=,@()``; every other
    character (separators, ``:``, wildcards, ``#``, ``%``, whitespace, control and format characters such as
    bidirectional overrides) becomes ``_``, runs of ``_`` become one; leading dots and trailing dots removed; a Windows
    device name (``CON``, ``nul.txt``, ``COM1``...) gets a leading ``_``; an empty result becomes ``fallback``.
    A name longer than :data:`MAX_NAME_BYTES` keeps its start and extension around ``~`` and 12 hex digits of
    the original name's SHA-256, so two long names that differ only at the end stay different.
    """
    normalized = unicodedata.normalize("NFC", name)
    cleaned = "".join(_clean_character(char) for char in normalized.strip().rstrip(". "))
    cleaned = _RUNS.sub("_", cleaned).lstrip(".").rstrip(". ")
    if not cleaned.strip("_"):
        cleaned = fallback
    stem = cleaned.split(".", 1)[0]
    if stem.upper() in _RESERVED:
        cleaned = f"_{cleaned}"
    if len(cleaned.encode("utf-8")) > MAX_NAME_BYTES:
        tag = "~" + hashlib.sha256(normalized.encode("utf-8", errors="surrogatepass")).hexdigest()[:12]
        head, dot, extension = cleaned.rpartition(".")
        if not dot or not head or len(extension.encode("utf-8")) > 16:
            head, extension = cleaned, ""
        suffix = f"{tag}.{extension}" if extension else tag
        cleaned = _truncate_utf8(head, MAX_NAME_BYTES - len(suffix.encode("utf-8"))).rstrip(". ") + suffix
    return cleaned


def getfile_name(index: int, device_path: str, served_name: str | None = None) -> str:
    """``{index}_{name}`` for a GetFile result: the device path's base name, else the served name without
    ``.gz``, else :data:`FALLBACK_NAME`."""
    name = base_name(device_path)
    if not name.strip(" ._") and served_name:
        name = base_name(served_name).removesuffix(".gz")
    return f"{index}_{safe_name(name)}"


def transcript_name(index: int, script_name: str) -> str:
    """``{index}_{script}.transcript.json`` for a RunScript result."""
    return f"{index}_{safe_name(base_name(script_name), fallback='script')}{TRANSCRIPT_SUFFIX}"
