"""LiveResponseToObjectStorageOperator: stream the results of a finished MDE live-response action into object
storage, whole or not at all, with a chain-of-custody manifest.

Layout under the destination (every name made safe by :mod:`~airflow_provider_liveresponse.transfers.naming`)::

    {destination}/{machine_id}/{action_id}/{index}_{name}                    a GetFile's collected file
    {destination}/{machine_id}/{action_id}/{index}_{name}.gz                 ... with keep_compressed=True
    {destination}/{machine_id}/{action_id}/{index}_{script}.transcript.json  a RunScript's transcript
    {destination}/{machine_id}/{action_id}/manifest.json                     written last

While a result streams it lives under a temporary name (``.{final name}.{12 hex}.partial`` in the same
folder); it is moved to its final name only once complete and verified, so a failed or killed transfer leaves
no object under a final name, and the next run removes the leftovers and completes it. (So two tasks must not
copy the same action to the same destination at the same time: each would remove the other's temporary objects.)

The operator checks its parameters and reads the action; :mod:`.collect` stores its results (the same code a fleet
sweep runs per device). Each concern has its own module: :mod:`.settings` (parameter checks),
:mod:`.destination` (local files and object stores), :mod:`.gzip_stream` (the copy), :mod:`.progress` (log
lines), :mod:`.manifest` (the manifest's model), :mod:`.transcript` (RunScript summaries), :mod:`.naming`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.transfers.collect import (
    CopyOptions,
    ResultCollector,
    StoredAction,
    asset_event_extra,
)
from airflow_provider_liveresponse.transfers.gzip_stream import Decoder
from airflow_provider_liveresponse.transfers.lineage import LineageRecord, operator_lineage, record
from airflow_provider_liveresponse.transfers.manifest import MANIFEST_NAME, MANIFEST_VERSION
from airflow_provider_liveresponse.transfers.retention import check_supported, lock_case
from airflow_provider_liveresponse.transfers.settings import TransferSettings, check_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import timedelta

    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.hooks.result_reader import ResultReader
    from airflow_provider_liveresponse.transfers.destination import Target
    from airflow_provider_liveresponse.transfers.gzip_stream import Streamed

__all__ = ["DEFAULT_CHUNK_SIZE", "MANIFEST_NAME", "MANIFEST_VERSION", "LiveResponseToObjectStorageOperator"]

DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
#: The stream's decoder under its former name here (the fault benchmarks patch ``_Decoder.feed``).
_Decoder = Decoder


class LiveResponseToObjectStorageOperator(BaseOperator):
    """Copy each result of a finished live-response action into object storage, with a manifest.

    GetFile results are stored decompressed by default (MDE serves them gzip-compressed), RunScript
    transcripts as returned. Each result streams through a temporary name and is moved to its final name only
    once complete and verified (length, Content-MD5, gzip CRC and length, stored size). The task returns the
    manifest (never a download link) and pushes the RunScript outcomes under the XCom key ``transcripts``.
    Each ``Asset`` among its ``outlets`` gets the action's asset event with extra ``{machine_id, host, action_id,
    manifest, files: [{path, size, sha256}]}`` (``manifest`` the manifest's URL): a DAG scheduled on that asset
    learns that evidence arrived, and where, without polling the bucket. With the OpenLineage provider installed
    (the ``[openlineage]`` extra), each successful run reports its inputs (the action's results, namespace
    ``mde://<tenant id>``) and outputs (every stored object) from what the run already holds, with no extra call
    (see :mod:`.lineage`).

    :param action_id: the machine action whose results to copy (templated), typically
        ``"{{ ti.xcom_pull(task_ids='collect', key='action_id') }}"``.
    :param destination: where to store them: a URL (``file:///evidence``, ``s3://bucket/prefix``,
        ``abfs://container/prefix``, ``gs://...``; ``s3://conn_id@bucket/prefix`` names the connection) or an
        ``ObjectStoragePath`` (templated). Results go under ``{machine_id}/{action_id}/`` beneath it.
    :param dest_conn_id: the destination's Airflow connection, when the URL does not name one.
    :param command_indexes: the commands to copy (templated); default: every command that produced a result.
    :param overwrite: replace an existing object whose content differs. When False (the default) an existing
        object with the same SHA-256 is kept (an idempotent rerun) and one with a different SHA-256 fails the
        task, changing nothing. ``manifest.json`` is rewritten by every successful run.
    :param keep_compressed: store GetFile results as served (``.gz``) instead of decompressed; the manifest
        records the digests of both forms either way (but see ``content_digests``).
    :param content_digests: with ``keep_compressed=True``, also decompress each blob as it streams, to check its
        gzip CRC and length and record the collected file's size, SHA-256 and MD5 (the manifest's ``content``).
        ``False`` stores the blob at the speed of a plain copy (its length and Content-MD5 still checked, its
        digests recorded) and leaves ``content`` null. The collected file, when it is what is stored, is always
        hashed.
    :param mde_conn_id: the ``mde_live_response`` connection.
    :param chunk_size: bytes read from the blob host per step (memory use is a few times this).
    :param max_resumes: resumes after broken connections allowed per result before failing.
    :param max_retry_wait: seconds one MDE API call may wait out 429s and transient errors.
    :param progress_interval: seconds between progress lines in the task log (a line is also logged at each
        further tenth of a large result, at most every 5 seconds).
    :param transcript_lines: how many first lines of a transcript's output and errors go to the log and XCom.
    :param signing_conn_id: an Airflow connection whose password holds an Ed25519 private key (PEM, PKCS#8): the
        manifest is then signed over its exact bytes and ``manifest.json.sig`` written right after it (see
        :mod:`airflow_provider_liveresponse.signing`). The key is read before any API call (a bad key fails the
        task, naming the connection, before anything is copied) and never reaches a log, XCom or the manifest.
        Without it the manifest is unsigned, and a signature left by an earlier run is removed.
    :param retention_days: put every object of the case (results, manifest, signature) under a retention lock for
        this many days once stored (see :mod:`.retention`): S3 Object Lock on ``s3://`` (the bucket must have
        Object Lock enabled), a blob immutability policy on ``abfs://`` (the container must have version-level
        immutability). Whether the store supports it is checked before any API call; ``file://`` and ``gs://``
        are refused. A rerun locks again what it finds. Default: no lock.
    :param retention_mode: ``"governance"`` (the default: S3 GOVERNANCE, an Azure ``Unlocked`` policy; privileged
        users can still shorten it) or ``"compliance"`` (S3 COMPLIANCE, an Azure ``Locked`` policy: no one can
        remove the object before the date).

    Durations (``max_retry_wait``, ``progress_interval``) are seconds or a ``timedelta``. Every parameter is
    checked when the task starts, before any API call; an error names the field. The attribute ``clock``
    (``time.monotonic``) times the progress lines and the log, and ``wall_clock`` (now, in UTC) dates the retention
    locks: a test hands in its own.
    """

    template_fields: Sequence[str] = ("action_id", "destination", "dest_conn_id", "command_indexes")
    ui_color = "#e8f1d5"

    def __init__(
        self,
        *,
        action_id: str,
        destination: str | ObjectStoragePath,
        dest_conn_id: str | None = None,
        command_indexes: Sequence[int] | None = None,
        overwrite: bool = False,
        keep_compressed: bool = False,
        content_digests: bool = True,
        mde_conn_id: str = DEFAULT_CONN_ID,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_resumes: int = 8,
        max_retry_wait: float | timedelta = 600.0,
        progress_interval: float | timedelta = 30.0,
        transcript_lines: int = 10,
        signing_conn_id: str | None = None,
        retention_days: int | None = None,
        retention_mode: str = "governance",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action_id = action_id
        self.destination = destination
        self.dest_conn_id = dest_conn_id
        self.command_indexes = command_indexes
        self.overwrite = overwrite
        self.keep_compressed = keep_compressed
        self.content_digests = content_digests
        self.mde_conn_id = mde_conn_id
        self.chunk_size = chunk_size
        self.max_resumes = max_resumes
        self.max_retry_wait = max_retry_wait
        self.progress_interval = progress_interval
        self.transcript_lines = transcript_lines
        self.signing_conn_id = signing_conn_id
        self.retention_days = retention_days
        self.retention_mode = retention_mode
        self.clock: Callable[[], float] = time.monotonic
        self.wall_clock: Callable[[], datetime] = _utc_now
        self._settings: TransferSettings | None = None
        self._collector: ResultCollector | None = None
        self._lineage: LineageRecord | None = None

    # -- parameters (checked before any API call) -------------------------------------------------------------

    def _checked(self) -> TransferSettings:
        """Every parameter, checked (see :mod:`.settings`); the error names the task and the field."""
        try:
            return check_settings(self)
        except LiveResponseConfigError as exc:
            raise type(exc)(f"Task {self.task_id}: {exc}") from None

    @property
    def _run(self) -> TransferSettings:
        """The parameters checked at the start of this run (checked now when called outside a run)."""
        return self._settings if self._settings is not None else self._checked()

    def _hook(self) -> LiveResponseHook:
        from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

        return LiveResponseHook(self._run.mde_conn_id, max_retry_wait=self._run.max_retry_wait)

    # -- execute ----------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_liveresponse.signing import ManifestSigner

        self._settings = settings = self._checked()
        signer = ManifestSigner.for_task(settings.signing_conn_id, self.task_id, "nothing was copied")
        self._check_retention(settings)
        hook = self._hook()
        action = hook.get_machine_action(settings.action_id)
        collector = self._collector = ResultCollector(
            CopyOptions.of(settings), self.log, f"Task {self.task_id}", clock=self.clock, stream=self._stream
        )
        folder = settings.destination / validation.machine_id(action.machine_id, "the action's machineId") / action.id
        stored = collector.store(hook, action, folder, settings.command_indexes, signer=signer)
        self._lock(stored, settings)
        ti: Any = context.get("ti")
        if ti is not None:
            ti.xcom_push(key="transcripts", value=stored.transcripts)
        self._emit_asset_events(context, stored)
        self._lineage = record(hook.settings.tenant_id, stored)
        return stored.manifest.to_json_dict()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The run's OpenLineage inputs and outputs (called by the OpenLineage provider after a success)."""
        return operator_lineage(self._lineage)

    def _emit_asset_events(self, context: Context, stored: StoredAction) -> None:
        """Give each Asset among the outlets this action's event extra (see :func:`.collect.asset_event_extra`)."""
        from airflow.sdk import Asset

        assets = [outlet for outlet in self.outlets if isinstance(outlet, Asset)]
        events: Any = context.get("outlet_events")
        if not assets or events is None:
            return
        extra = asset_event_extra(stored)
        for asset in assets:
            events[asset].extra.update(extra)

    def _check_retention(self, settings: TransferSettings) -> None:
        """Fail, naming retention_days and the fix, when the destination cannot lock objects (no MDE call yet)."""
        try:
            check_supported(settings.destination, settings.retention)
        except LiveResponseConfigError as exc:
            raise type(exc)(f"Task {self.task_id}: {exc}") from None

    def _lock(self, stored: StoredAction, settings: TransferSettings) -> None:
        """Put the stored case under the retention lock of ``retention_days`` (nothing without it)."""
        if settings.retention is None:
            return
        now = self.wall_clock()
        locked = lock_case(stored, settings.retention, now)
        until = settings.retention.until(now).isoformat(timespec="seconds")
        self.log.info("Locked %d objects for %s until %s", len(locked), settings.retention.describe(), until)

    def _stream(self, reader: ResultReader, temp: Target, described: str, *, keep_transcript: bool) -> Streamed:
        """The copy of one blob (see :meth:`.collect.ResultCollector.stream`; a benchmark wraps it)."""
        collector = self._collector
        if collector is None:
            collector = ResultCollector(CopyOptions.of(self._run), self.log, f"Task {self.task_id}", clock=self.clock)
        return collector.stream(reader, temp, described, keep_transcript=keep_transcript)

    def on_kill(self) -> None:
        """Remove the temporary object of the transfer in progress (a killed transfer keeps no partial)."""
        temp = self._collector.current_temp if self._collector is not None else None
        if temp is not None:
            temp.remove_quietly()


def _utc_now() -> datetime:
    return datetime.now(UTC)
