"""What a destination holds, read without trusting it: every object listed without following links (a local
folder, or an object store through Airflow's ObjectStoragePath), and each opened for reading.

Used by :mod:`airflow_provider_liveresponse.verify`; a destination's URL is read as the transfer operator reads it
(``s3://conn_id@bucket/prefix`` names the Airflow connection).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Literal
from urllib.parse import urlsplit

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Bytes an object store reads ahead per request when an object is opened.
READ_BLOCK_SIZE = 1024 * 1024

# -- stores --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    """One object under the destination: its key (relative, ``/``-separated), size, kind and link count."""

    key: str
    size: int
    kind: Literal["file", "link", "special"] = "file"
    links: int = 1
    target: str | None = None


class LocalStore:
    """A folder on this machine, walked without following links."""

    def __init__(self, root: str, shown: str) -> None:
        self.root = os.path.realpath(root)
        self.shown = shown
        if not os.path.isdir(self.root):
            what = "is not a folder" if os.path.exists(self.root) else "does not exist"
            raise LiveResponseConfigError(f"destination {shown} {what}: give the folder the transfer stored into")

    def list(self) -> Iterator[StoredObject]:
        pending = [""]
        while pending:
            folder = pending.pop()
            with os.scandir(os.path.join(self.root, folder) if folder else self.root) as entries:
                for entry in entries:
                    key = f"{folder}/{entry.name}" if folder else entry.name
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(key)
                    elif stat.S_ISLNK(info.st_mode):
                        yield StoredObject(key, 0, "link", target=_readlink(entry.path))
                    elif stat.S_ISREG(info.st_mode):
                        yield StoredObject(key, info.st_size, links=info.st_nlink)
                    else:
                        yield StoredObject(key, 0, "special")

    def open(self, key: str) -> BinaryIO:
        path = os.path.join(self.root, *key.split("/"))
        if os.path.realpath(path) != path:
            raise OSError(f"{key} now passes through a link; not followed")
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        return os.fdopen(os.open(path, flags), "rb")


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)[:300]
    except OSError:
        return None


class FsspecStore:
    """An object store reached through Airflow's ObjectStoragePath (s3://, abfs://, gs://...)."""

    def __init__(self, path: Any) -> None:
        self.shown = str(path)
        self.fs = path.fs
        self.root = str(path.path).rstrip("/")

    def list(self) -> Iterator[StoredObject]:
        self.fs.invalidate_cache(self.root)
        found = self.fs.find(self.root, withdirs=False, detail=True)
        if not found and not self.fs.exists(self.root):
            raise LiveResponseConfigError(
                f"destination {self.shown} does not exist (no bucket or container by that name, or nothing "
                "stored under that prefix): give the destination the transfer stored into"
            )
        prefix = self.root + "/"
        for name, info in sorted(found.items()):
            name = str(name).lstrip("/")
            if info.get("type") == "directory" or not name.startswith(prefix):
                continue
            yield StoredObject(name[len(prefix) :], int(info.get("size") or 0))

    def open(self, key: str) -> BinaryIO:
        handle: BinaryIO = self.fs.open(f"{self.root}/{key}", "rb", block_size=READ_BLOCK_SIZE)
        return handle


Store = LocalStore | FsspecStore


def open_destination(destination: str, dest_conn_id: str | None = None) -> Store:
    """The store at ``destination``: a local folder (a path or ``file://``), or a URL Airflow's ObjectStoragePath
    knows (``s3://conn_id@bucket/prefix`` names the connection, as for the transfer operator)."""
    text = validation.text(destination, "destination", hint="a folder or a URL such as s3://bucket/evidence")
    dest_conn_id = validation.optional_text(dest_conn_id, "--dest-conn-id", hint="an Airflow connection id")
    if "://" not in text:
        return LocalStore(os.path.abspath(text), os.path.abspath(text))
    parts = urlsplit(text)
    if parts.query or parts.fragment or ":" in parts.netloc.rpartition("@")[0]:
        raise LiveResponseConfigError(
            f"destination {_without_userinfo(text)} holds a query, a fragment or a password: give the bucket and "
            "prefix only, and put credentials in an Airflow connection (scheme://conn_id@bucket/prefix)"
        )
    if parts.scheme in {"file", "local"}:
        if parts.netloc not in {"", "localhost"}:
            raise LiveResponseConfigError(f"destination {text} names a host: use file:///absolute/folder")
        return LocalStore(parts.path, text)
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import has_fs

    if not has_fs(parts.scheme):
        raise LiveResponseConfigError(
            f"no file system is registered for {parts.scheme}:// (destination {text}): install the Airflow "
            "provider that brings it (s3: apache-airflow-providers-amazon[s3fs]; abfs: "
            "apache-airflow-providers-microsoft-azure; gs: apache-airflow-providers-google)"
        )
    try:
        path = ObjectStoragePath(text, conn_id=dest_conn_id) if dest_conn_id else ObjectStoragePath(text)
    except ValueError as exc:
        raise LiveResponseConfigError(f"destination {text} cannot be used: {exc}") from None
    if not str(path.path).strip("/"):
        raise LiveResponseConfigError(f"destination {text} names no bucket or container")
    return FsspecStore(path)


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def read_error(exc: Exception) -> OSError:
    """An OSError for a failed read, whatever raised it (an object store raises its own errors)."""
    if isinstance(exc, OSError):
        return exc
    return OSError(f"{type(exc).__name__}: {str(exc)[:300]}")


__all__ = ["FsspecStore", "LocalStore", "Store", "StoredObject", "open_destination", "read_error"]
