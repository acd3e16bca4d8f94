"""Where results are stored: the action's folder on a local file system or in an fsspec object store.

Both kinds answer the same small interface (:class:`Destination`): write under a name, check, move, remove, list.
What they share is written once on top of it: a result streams to a temporary name
(``.{final name}.{12 hex}.partial``, in the same folder) and is moved to its final name only when complete, so
no reader ever finds a partial object under a final name; :meth:`Destination.remove_leftovers` clears the
temporary objects of an interrupted run.

- :class:`LocalFolder`: files created exclusively, flushed with ``fsync`` before they are closed, moved with
  ``os.replace`` (atomic on POSIX and Windows), then the folder itself is fsynced so the rename survives a crash.
- :class:`ObjectStoreFolder`: objects written through fsspec (s3://, abfs://, gs://...) under a temporary key and
  moved (``fs.mv``) to the final key; fsspec's listing cache is invalidated before every check.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from airflow.sdk import ObjectStoragePath

#: Protocols of ``ObjectStoragePath`` that are the local file system.
LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
#: A temporary name: ``.{final name}.{12 hex}.partial``.
PARTIAL = re.compile(r"^\.(?P<final>.+)\.[0-9a-f]{12}\.partial$")
_HASH_CHUNK = 4 * 1024 * 1024


def is_local(path: ObjectStoragePath) -> bool:
    """Whether ``path`` is on the local file system (``file://``, ``local://`` or no protocol)."""
    return (path.protocol or "file") in LOCAL_PROTOCOLS


def shown(path: ObjectStoragePath) -> str:
    """The path as a URL for logs and the manifest (it holds a connection id, never a credential)."""
    return str(path)


def temporary_name(final_name: str) -> str:
    """A new temporary name for ``final_name`` (see :data:`PARTIAL`)."""
    return f".{final_name}.{uuid.uuid4().hex[:12]}.partial"


class Destination(ABC):
    """The action's folder at the destination: the store's primitives by name, and what is built on them."""

    def __init__(self, path: ObjectStoragePath) -> None:
        self.path = path

    @staticmethod
    def at(path: ObjectStoragePath) -> Destination:
        """The folder at ``path``: a :class:`LocalFolder` or an :class:`ObjectStoreFolder`."""
        return LocalFolder(path) if is_local(path) else ObjectStoreFolder(path)

    # -- the store's primitives -----------------------------------------------------------------------------

    @abstractmethod
    def prepare(self) -> None:
        """Make the folder usable (create it, where folders exist)."""

    @abstractmethod
    def names(self) -> list[str]:
        """The names in the folder (none if it does not exist)."""

    @abstractmethod
    def open_write(self, name: str) -> AbstractContextManager[BinaryIO]:
        """A new object or file ``name``, open for writing; complete (and durable) once the context exits."""

    @abstractmethod
    def open_read(self, name: str) -> AbstractContextManager[BinaryIO]:
        """Object or file ``name``, open for reading."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether ``name`` exists (read afresh, not from a cache)."""

    @abstractmethod
    def size(self, name: str) -> int:
        """The size of ``name`` in bytes, as the store reports it now."""

    @abstractmethod
    def move(self, name: str, final_name: str) -> None:
        """Move ``name`` to ``final_name``, replacing it."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Remove ``name``."""

    # -- built on them ----------------------------------------------------------------------------------------

    def child(self, name: str) -> ObjectStoragePath:
        """The path of ``name`` in the folder."""
        return self.path / name

    def key(self, name: str) -> str:
        """The file-system path or object key of ``name``."""
        return str(self.child(name).path)

    def target(self, name: str) -> Target:
        """A handle on ``name``."""
        return Target(self, name)

    def temporary(self, final_name: str) -> Target:
        """A handle on a new temporary name for ``final_name``."""
        return self.target(temporary_name(final_name))

    def sha256(self, name: str) -> str:
        """The hex SHA-256 of ``name``'s bytes, read back from the store."""
        digest = hashlib.sha256()
        with self.open_read(name) as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def remove_quietly(self, name: str) -> None:
        """Remove ``name`` if possible (best effort: the next run removes leftovers)."""
        with contextlib.suppress(Exception):
            self.remove(name)

    def remove_leftovers(self) -> list[str]:
        """Remove temporary objects left by an interrupted run; returns what was removed (as URLs)."""
        removed = []
        for name in self.names():
            if PARTIAL.match(name):
                self.remove_quietly(name)
                removed.append(shown(self.child(name)))
        return removed

    def read(self, name: str, limit: int) -> bytes | None:
        """At most ``limit`` bytes of ``name``, or None if it does not exist or cannot be read."""
        try:
            if not self.exists(name):
                return None
            with self.open_read(name) as handle:
                return handle.read(limit)
        except OSError:
            return None

    def write_atomically(self, name: str, data: bytes) -> None:
        """Write ``data`` under a temporary name and move it to ``name``: readers see all of it or none."""
        temp = self.temporary(name)
        try:
            with temp.open_write() as sink:
                sink.write(data)
            temp.move_to(self.target(name))
        except BaseException:
            temp.remove_quietly()
            raise


@dataclass(frozen=True)
class Target:
    """One object or file in a :class:`Destination`, by name."""

    folder: Destination
    name: str

    @property
    def path(self) -> ObjectStoragePath:
        """Its path (see :func:`shown` for logs)."""
        return self.folder.child(self.name)

    def open_write(self) -> AbstractContextManager[BinaryIO]:
        """Open it for writing (see :meth:`Destination.open_write`)."""
        return self.folder.open_write(self.name)

    def exists(self) -> bool:
        """Whether it exists."""
        return self.folder.exists(self.name)

    def size(self) -> int:
        """Its size in bytes, as the store reports it."""
        return self.folder.size(self.name)

    def sha256(self) -> str:
        """The hex SHA-256 of its bytes, read back."""
        return self.folder.sha256(self.name)

    def move_to(self, final: Target) -> None:
        """Move it to ``final`` (in the same folder), replacing what is there."""
        self.folder.move(self.name, final.name)

    def remove_quietly(self) -> None:
        """Remove it, ignoring errors."""
        self.folder.remove_quietly(self.name)


class LocalFolder(Destination):
    """A folder on the local file system: exclusive create, fsync, ``os.replace``, directory fsync."""

    def prepare(self) -> None:
        os.makedirs(str(self.path.path), exist_ok=True)

    def names(self) -> list[str]:
        try:
            return os.listdir(str(self.path.path))
        except FileNotFoundError:
            return []

    def open_write(self, name: str) -> AbstractContextManager[BinaryIO]:
        return DurableLocalFile(self.key(name))

    def open_read(self, name: str) -> AbstractContextManager[BinaryIO]:
        return open(self.key(name), "rb")

    def exists(self, name: str) -> bool:
        return os.path.isfile(self.key(name))

    def size(self, name: str) -> int:
        return os.path.getsize(self.key(name))

    def move(self, name: str, final_name: str) -> None:
        final = self.key(final_name)
        os.replace(self.key(name), final)
        fsync_directory(os.path.dirname(final))

    def remove(self, name: str) -> None:
        os.unlink(self.key(name))


class ObjectStoreFolder(Destination):
    """A prefix in an fsspec object store (s3://, abfs://, gs://...): temporary key, then ``fs.mv``."""

    @property
    def _fs(self) -> Any:
        return self.path.fs

    def prepare(self) -> None:
        """Nothing to do: object stores have no folders."""

    def names(self) -> list[str]:
        key = str(self.path.path)
        fs = self._fs
        fs.invalidate_cache(key)
        try:
            entries = fs.ls(key, detail=False)
        except FileNotFoundError:
            return []
        return [str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries]

    def open_write(self, name: str) -> AbstractContextManager[BinaryIO]:
        handle: AbstractContextManager[BinaryIO] = self._fs.open(self.key(name), "wb")
        return handle

    def open_read(self, name: str) -> AbstractContextManager[BinaryIO]:
        handle: AbstractContextManager[BinaryIO] = self._fs.open(self.key(name), "rb")
        return handle

    def exists(self, name: str) -> bool:
        fs, key = self._fs, self.key(name)
        fs.invalidate_cache(key)
        return bool(fs.exists(key))

    def size(self, name: str) -> int:
        fs, key = self._fs, self.key(name)
        fs.invalidate_cache(key)
        return int(fs.size(key))

    def move(self, name: str, final_name: str) -> None:
        fs, final = self._fs, self.key(final_name)
        fs.mv(self.key(name), final)
        fs.invalidate_cache(final)

    def remove(self, name: str) -> None:
        self._fs.rm(self.key(name))


class DurableLocalFile:
    """A new local file (created exclusively) opened for writing, flushed to disk (fsync) before it is closed."""

    def __init__(self, path: str) -> None:
        self._handle = open(path, "xb")  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> BinaryIO:
        return self._handle

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self._handle.flush()
                os.fsync(self._handle.fileno())
        finally:
            self._handle.close()


def fsync_directory(path: str) -> None:
    """Flush a directory's entries to disk (where the platform allows it), so a rename in it is durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
