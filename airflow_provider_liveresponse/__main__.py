"""``python -m airflow_provider_liveresponse verify DESTINATION``: check a stored case from the command line.

Exit status: 0 when everything holds, 1 when anything does not (each item is listed by its path), 2 when the
check could not run (bad usage, a destination that does not exist or cannot be listed, a bad key). The report
goes to standard output (``--json``: one JSON document), progress and errors to standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from typing import IO, TYPE_CHECKING, Any, NoReturn

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseError
from airflow_provider_liveresponse.secrets import redact
from airflow_provider_liveresponse.signing import public_key_from_connection, public_key_from_file
from airflow_provider_liveresponse.verify import Progress, human_size, verify

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from _typeshed import SupportsWrite

    from airflow_provider_liveresponse.verify import Problem, Report

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
PROGRAM = "python -m airflow_provider_liveresponse"
#: Seconds between progress lines on standard error.
PROGRESS_INTERVAL = 10.0
_LABELS = {
    "missing": "MISSING",
    "extra": "EXTRA",
    "changed": "CHANGED",
    "unsigned": "UNSIGNED",
    "bad_signature": "BAD SIGNATURE",
    "unsafe_path": "UNSAFE PATH",
    "link": "LINK",
    "bad_entry": "BAD ENTRY",
    "bad_manifest": "BAD MANIFEST",
    "unreadable": "UNREADABLE",
    "no_manifest": "NO MANIFEST",
}


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse, writing to the streams it is given and raising instead of exiting (so ``run`` returns 2)."""

    out: IO[str] = sys.stdout
    err: IO[str] = sys.stderr

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if message:
            (self.err if file is sys.stderr else self.out).write(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self.err.write(message)
        raise _Exit(status)


def build_parser(out: IO[str], err: IO[str]) -> argparse.ArgumentParser:
    """The command line's parser (``verify`` is its one command)."""
    parser = _Parser(prog=PROGRAM, description="Tools of the MDE Live Response provider for Apache Airflow.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        help="check every manifest, object and signature under a destination",
        description=(
            "Re-read every object that the manifests under DESTINATION list, recompute its SHA-256 and size, check "
            "each manifest's signature, and list every missing, extra, changed and unsigned item by path. "
            "Exit 0 when everything holds, 1 when anything does not, 2 when the check could not run."
        ),
    )
    verify.add_argument(
        "destination",
        metavar="DESTINATION",
        help="the transfer's destination or a folder beneath it: a local folder, file:///..., "
        "s3://[conn_id@]bucket/prefix, abfs://[conn_id@]container/prefix or gs://[conn_id@]bucket/prefix",
    )
    key = verify.add_mutually_exclusive_group()
    key.add_argument("--public-key", metavar="FILE", help="the signing key's public half, PEM (BEGIN PUBLIC KEY)")
    key.add_argument(
        "--conn-id", metavar="ID", help="the Airflow connection holding the signing key (its public half is used)"
    )
    verify.add_argument(
        "--dest-conn-id", metavar="ID", help="the destination's Airflow connection, when the URL does not name one"
    )
    verify.add_argument("--json", action="store_true", help="print one machine-readable JSON report")
    for each in (parser, verify):
        each.out, each.err = out, err  # type: ignore[attr-defined]
    return parser


def run(
    argv: Sequence[str],
    *,
    stdout: IO[str],
    stderr: IO[str],
    clock: Callable[[], float] = time.monotonic,
    progress_interval: float = PROGRESS_INTERVAL,
) -> int:
    """Run the command line ``argv`` (without the program name); returns the exit status."""
    try:
        args = build_parser(stdout, stderr).parse_args(list(argv))
    except _Exit as exc:
        return exc.status
    try:
        public_key = _public_key(args)
        report = verify(
            args.destination,
            public_key=public_key,
            dest_conn_id=args.dest_conn_id,
            progress=ProgressLines(stderr, interval=progress_interval, clock=clock),
        )
    except LiveResponseError as exc:
        stderr.write(f"{PROGRAM} verify: error: {redact(str(exc))}\n")
        return EXIT_USAGE
    if args.json:
        stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        stdout.write(render(report))
    return EXIT_OK if report.ok else EXIT_PROBLEMS


class ProgressLines(Progress):
    """Progress written to ``stream`` as one line at most every ``interval`` seconds of ``clock``."""

    def __init__(self, stream: IO[str], *, interval: float, clock: Callable[[], float]) -> None:
        super().__init__()
        self._stream = stream
        self._interval = validation.duration(interval, "progress interval")
        self._clock = clock
        self._started = self._last = 0.0

    def begin(self, objects: int, size: int) -> None:
        super().begin(objects, size)
        self._started = self._last = self._clock()

    def report(self) -> None:
        now = self._clock()
        if now - self._last < self._interval:
            return
        self._last = now
        share = f" ({100 * self.size // self.total_size}%)" if self.total_size else ""
        rate = self.size / (now - self._started) if now > self._started else 0.0
        self._stream.write(
            f"verify: {self.objects} of {self.total_objects} objects, {human_size(self.size)} of "
            f"{human_size(self.total_size)}{share}, {human_size(int(rate))}/s\n"
        )
        self._stream.flush()


def _public_key(args: argparse.Namespace) -> Any:
    if args.public_key is not None:
        return public_key_from_file(args.public_key)
    if args.conn_id is not None:
        return public_key_from_connection(args.conn_id)
    return None


def shown(text: str) -> str:
    """``text`` with control and invisible characters escaped: a name from the store cannot forge a line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def render(report: Report) -> str:
    """The report as text for a person: what was checked, each manifest, each problem, the verdict."""
    lines = [
        f"Destination: {shown(report.destination)}",
        f"Checked: {len(report.manifests)} manifest(s), {report.objects_checked} object(s) re-read and hashed "
        f"({human_size(report.bytes_checked)})",
        f"Signatures: checked with key {report.key_fingerprint}"
        if report.signatures_checked
        else "Signatures: not checked (give --public-key FILE or --conn-id ID to check them)",
    ]
    for manifest in report.manifests:
        lines.append(
            f"  {shown(manifest.path)}: {manifest.files} file(s), {human_size(manifest.size)}, "
            f"{_signature_text(manifest.signature, manifest.signed_by)}"
        )
    lines.extend(_problem_line(report, problem) for problem in report.problems)
    failing = Counter(p.kind for p in report.problems if report.fails(p))
    if failing:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(failing.items()))
        lines.append(f"FAILED: {failing.total()} problem(s) ({counts})")
    else:
        signed = ", every signature valid" if report.signatures_checked else ""
        unsigned = sum(1 for m in report.manifests if m.signature == "unsigned")
        note = f" ({unsigned} manifest(s) unsigned)" if unsigned else ""
        lines.append(f"OK: every listed object is present and unchanged, nothing extra{signed}{note}")
    return "\n".join(lines) + "\n"


def _signature_text(status: str, signed_by: str | None) -> str:
    if status == "valid":
        return "signature valid"
    if status == "invalid":
        return "signature INVALID"
    if status == "not checked":
        return f"signature not checked (it names key {shown(signed_by)})" if signed_by else "signature not checked"
    return status


def _problem_line(report: Report, problem: Problem) -> str:
    """One problem: its label, its path and what is wrong; the manifest when it is not the folder's own."""
    path = shown(problem.path) or shown(report.destination)
    manifest = problem.manifest
    own = manifest is None or manifest == problem.path or manifest.rpartition("/")[0] == path.rpartition("/")[0]
    where = "" if own else f" (in {shown(manifest or '')})"
    note = "" if report.fails(problem) else " (does not fail the check without a key)"
    return f"{_LABELS[problem.kind]:<13} {path}: {shown(problem.detail)}{where}{note}"


def _quiet_airflow_logging() -> None:
    """Airflow logs to standard output by default: send its warnings to standard error, drop its info lines."""
    try:
        from airflow.sdk.log import configure_logging

        configure_logging(output=sys.stderr, log_level="WARNING")
    except Exception:  # noqa: S110 - a logging set-up that differs in another Airflow is not worth failing for
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m airflow_provider_liveresponse`` entry point."""
    _quiet_airflow_logging()
    return run(sys.argv[1:] if argv is None else argv, stdout=sys.stdout, stderr=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
