"""gs:// for Airflow's ObjectStoragePath in the tests, without the Google provider.

Airflow finds a file system for a URL scheme among the providers' registered ``filesystems``; gs:// is registered by
apache-airflow-providers-google (``airflow.providers.google.cloud.fs.gcs``), which users need for gs:// destinations.
That provider does not resolve beside this project's locked dependencies (protobuf, tenacity) and would add over a
hundred distributions, so the tests register this module's :func:`get_fs` for ``gs`` instead: like the provider's, it
builds a gcsfs file system from the connection, here anonymous against the emulator the connection names
(``extra.endpoint_url``). The transfer and verify code paths are the same: they only ask ObjectStoragePath for the
file system of ``gs``.
"""

from __future__ import annotations

from typing import Any

#: The schemes this module serves, as the provider's module declares them.
schemes = ["gs", "gcs"]


def gcs_file_system(endpoint_url: str, project: str) -> Any:
    """An anonymous gcsfs file system on ``endpoint_url``.

    gcsfs's core class: its default class (GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT) first asks Storage Control over gRPC
    for the bucket's layout, which the emulator does not serve, and waits 60 s for it on every bucket.
    """
    from gcsfs.core import GCSFileSystem

    return GCSFileSystem(endpoint_url=endpoint_url, token="anon", project=project, skip_instance_cache=True)


def get_fs(conn_id: str | None, storage_options: dict[str, Any] | None = None) -> Any:
    """The file system of ``conn_id`` (an Airflow connection whose extra holds ``endpoint_url`` and ``project``)."""
    from airflow.sdk import BaseHook

    if conn_id is None:
        raise ValueError("gs:// in the tests needs a connection naming the emulator (gs://conn_id@bucket/...)")
    extra = BaseHook.get_connection(conn_id).extra_dejson
    return gcs_file_system(str(extra["endpoint_url"]), str(extra.get("project", "test")))


def register() -> None:
    """Make ``gs``/``gcs`` known to Airflow's ObjectStoragePath in this process (as the provider would)."""
    from airflow.sdk.io import fs

    for scheme in schemes:
        fs._BUILTIN_SCHEME_TO_FS[scheme] = get_fs
    fs._register_filesystems.cache_clear()


def unregister() -> None:
    """Undo :func:`register`."""
    from airflow.sdk.io import fs

    for scheme in schemes:
        fs._BUILTIN_SCHEME_TO_FS.pop(scheme, None)
    fs._register_filesystems.cache_clear()
