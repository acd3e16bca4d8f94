"""LiveResponseLibraryUploadOperator: ship a script or tool to the live-response library before running it."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID, LIBRARY_FILE_MAX_BYTES
from airflow_provider_liveresponse.operators.base import DEFAULT_MAX_RETRY_WAIT, LiveResponseHookMixin

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import timedelta

    from airflow.sdk import Context


class LiveResponseLibraryUploadOperator(BaseOperator, LiveResponseHookMixin):
    """Upload a local or object-storage file to the MDE live-response library (at most 20 MB).

    Safe to rerun: when the library already holds a file of that name with the same SHA-256, nothing is
    uploaded; a file of that name with other content is an error unless ``override_if_exists`` is set.
    Returns the library entry (name, SHA-256, description) through XCom.

    :param source: a local path, or an object-storage URL / ``ObjectStoragePath`` (``s3://``, ``gs://``,
        ``abfs://``, ``file://``; templated).
    :param file_name: the name in the library (templated); default: the source's base name.
    :param description: the library entry's description (templated).
    :param parameters_description: how to call the script, shown in the portal (templated); setting it marks
        the script as taking parameters unless ``has_parameters`` says otherwise.
    :param has_parameters: whether the script takes parameters (default: whether ``parameters_description``
        is given).
    :param override_if_exists: replace a library file of the same name with different content.
    :param mde_conn_id: the ``mde_live_response`` connection.
    :param max_retry_wait: seconds one API call may wait out 429s and transient errors.
    """

    template_fields: Sequence[str] = ("source", "file_name", "description", "parameters_description")
    ui_color = "#d0e4f5"

    def __init__(
        self,
        *,
        source: Any,
        file_name: str | None = None,
        description: str | None = None,
        parameters_description: str | None = None,
        has_parameters: bool | None = None,
        override_if_exists: bool = False,
        mde_conn_id: str = DEFAULT_CONN_ID,
        max_retry_wait: float | timedelta = DEFAULT_MAX_RETRY_WAIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.file_name = file_name
        self.description = description
        self.parameters_description = parameters_description
        self.has_parameters = validation.optional_flag(has_parameters, "has_parameters")
        self.override_if_exists = validation.flag(override_if_exists, "override_if_exists")
        self._set_connection(mde_conn_id, max_retry_wait)

    def _texts(self) -> tuple[str | None, str | None]:
        """The rendered description and parameters description, checked before any API call."""
        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError

        try:
            return (
                validation.optional_text(self.description, "description", empty_allowed=True),
                validation.optional_text(self.parameters_description, "parameters_description", empty_allowed=True),
            )
        except LiveResponseConfigError as exc:
            raise type(exc)(f"Task {self.task_id}: {exc}") from None

    def _read_source(self) -> tuple[bytes, str]:
        """The file's bytes and its library name; errors name the field and the fix."""
        from pathlib import Path

        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
        from airflow_provider_liveresponse.models import check_library_file_name

        source = self.source
        if isinstance(source, str) and not source.strip():
            raise LiveResponseConfigError(f"Task {self.task_id}: source is empty: give a local path or a storage URL")
        path: Any
        if isinstance(source, str) and "://" in source:
            from airflow.sdk import ObjectStoragePath

            path = ObjectStoragePath(source)
        elif isinstance(source, str) or hasattr(source, "__fspath__"):
            path = Path(source)
        elif hasattr(source, "read_bytes") and hasattr(source, "stat"):
            path = source  # an ObjectStoragePath
        else:
            raise LiveResponseConfigError(
                f"Task {self.task_id}: source {source!r} is neither a path nor a storage URL / ObjectStoragePath"
            )
        name = path.name if self.file_name in (None, "") else self.file_name
        try:
            validation.text(name, "file_name", hint="the file's name in the live-response library")
            check_library_file_name("file_name", name)
        except ValueError as exc:  # LiveResponseConfigError and its TypeError subclass keep their class
            kind = type(exc) if isinstance(exc, LiveResponseConfigError) else LiveResponseConfigError
            raise kind(f"Task {self.task_id}: {exc}") from None
        try:
            if not path.is_file():
                raise LiveResponseConfigError(
                    f"Task {self.task_id}: source {str(source)!r} is not a file: check the path (it is read on "
                    "the worker) or the storage URL"
                )
            size = path.stat().st_size
        except OSError as exc:
            raise LiveResponseConfigError(
                f"Task {self.task_id}: cannot read source {str(source)!r} ({type(exc).__name__}: {exc})"
            ) from None
        if size > LIBRARY_FILE_MAX_BYTES:
            raise LiveResponseConfigError(
                f"Task {self.task_id}: source {str(source)!r} is {size} bytes; the live-response library takes at "
                "most 20 MB: compress it, or collect with a smaller script that downloads the tool itself"
            )
        content = path.read_bytes()
        return content, name

    def execute(self, context: Context) -> Any:
        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError

        description, parameters_description = self._texts()
        content, name = self._read_source()
        digest = hashlib.sha256(content).hexdigest()
        hook = self._hook()
        existing = next((f for f in hook.list_library_files() if f.file_name.lower() == name.lower()), None)
        if existing is not None and (existing.sha256 or "").lower() == digest:
            self.log.info(
                "The library already holds %s with the same content (SHA-256 %s); not uploading it again", name, digest
            )
            return existing.model_dump(mode="json", exclude_none=True)
        if existing is not None and not self.override_if_exists:
            raise LiveResponseConfigError(
                f"Task {self.task_id}: the live-response library already holds {existing.file_name!r} with other "
                f"content (SHA-256 {existing.sha256}, ours {digest}); nothing was uploaded. Set "
                "override_if_exists=True to replace it, or upload under another file_name"
            )
        self.log.info("Uploading %s (%d bytes, SHA-256 %s) to the live-response library", name, len(content), digest)
        uploaded = hook.upload_library_file(
            content,
            file_name=name,
            description=description,
            parameters_description=parameters_description,
            has_parameters=self.has_parameters,
            override_if_exists=existing is not None,
        )
        if uploaded.sha256 and uploaded.sha256.lower() != digest:
            from airflow_provider_liveresponse.exceptions import ResultIntegrityError

            raise ResultIntegrityError(
                f"MDE stored {name!r} with SHA-256 {uploaded.sha256}, but we sent {digest}: upload it again"
            )
        return uploaded.model_dump(mode="json", exclude_none=True)
