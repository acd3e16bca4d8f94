"""Log redaction of result links: what the provider's scrubbing adds to every log record of a task process.

Once a task has seen a result link, :func:`airflow_provider_liveresponse.secrets.install_redaction` has wrapped
the standard library's log record factory (every record is scrubbed as it is made) and structlog's last processor
(every event value is scrubbed before it is rendered), so every log line of the process pays for it, whoever
logs it. Both paths are timed here side by side in one process with ``time.perf_counter``: records of a typical
provider message (``"Action %s: %s, %d of %d file(s)"``) through a stdlib logger whose handler writes to an
``io.StringIO`` with Airflow's classic format, and events through a structlog logger (log level, ISO timestamp,
JSON renderer) writing to an ``io.StringIO``; each plain, and with the redaction installed. A second message
carries a signed link, which must come out scrubbed (and, plain, does leak: the check can fail).

The size is the records per case, in repetitions of equal batches; within a repetition every case runs plain and
then redacted, one after the other, so the load of the shared machine weighs on both alike. The garbage collector
is off while a batch runs (as ``timeit`` does). The figures are medians over the repetitions: microseconds per
record, and the median of the per-repetition ratios redacted / plain. The thread's CPU time
(``time.thread_time``) is shown beside the wall time: on a loaded machine the wall time also counts the time other
processes held the CPU. The process's record factory and structlog's configuration are restored afterwards.
"""

from __future__ import annotations

import gc
import io
import logging
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmarks.core import Result, benchmark

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: The redacted path may cost at most this many times the plain path per record (messages without a link).
TARGET_RATIO = 2.0
#: Repetitions (batches) each case's records are split into (the median is taken); fewer with ``--quick``.
REPETITIONS = 10
QUICK_REPETITIONS = 5
#: Records of each case run once before the repetitions, not counted (regular expressions, caches).
WARM_UP = 1_000
#: A signed result link as MDE hands it out (an Azure SAS URL); its signature must never reach a log line.
SIGNED_LINK = "https://x.blob.core.windows.net/c/f.zip?sv=2021&se=2026-12-31T00%3A00%3A00Z&sp=r&sig=abc%2Bdef%3D"
#: What must not appear in the output once redaction is installed (and does appear without it).
SIGNATURE = "sig=abc"
#: What the scrubbed link reads as.
SCRUBBED = "f.zip?***"
#: Airflow's classic log format (``[logging] log_format``).
LOG_FORMAT = "[%(asctime)s] {%(filename)s:%(lineno)d} %(levelname)s - %(message)s"
ACTION_ID = "7c3a9e1f-0b6d-4f2e-9a1c-5d8e2b4f6a10"
MACHINE_ID = "1e5c9a3b7d2f4e6a8c0b1d3f5a7c9e2b4d6f8a0c"
LOGGER_NAME = "airflow_provider_liveresponse.benchmark.log_redaction"

STDLIB = "stdlib logging"
STRUCTLOG = "structlog (JSON)"
PLAIN = "plain message"
SIGNED = "message with a signed link"
#: (framework, message) of every case, in the order of the table.
CASES = ((STDLIB, PLAIN), (STDLIB, SIGNED), (STRUCTLOG, PLAIN), (STRUCTLOG, SIGNED))


@dataclass
class Timed:
    """One batch: wall seconds, the thread's CPU seconds, and what the logger wrote."""

    wall: float
    cpu: float
    output: str


def _stdlib_logger() -> tuple[logging.Logger, logging.StreamHandler[io.StringIO]]:
    """A logger of its own (not propagating to Airflow's root handlers) with one handler writing to a StringIO."""
    logger = logging.getLogger(LOGGER_NAME)
    handler: logging.StreamHandler[io.StringIO] = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.disabled = False
    return logger, handler


def _plain_factory() -> Callable[..., logging.LogRecord]:
    """The process's record factory without the provider's redaction (an earlier benchmark may have installed it)."""
    factory: Any = logging.getLogRecordFactory()
    while getattr(factory, "redacts_links", False):
        factory = factory.inner
    return factory  # type: ignore[no-any-return]


def _timed(info: Callable[..., Any], signed: bool, records: int, **fields: str) -> tuple[float, float]:
    """Log ``records`` messages through ``info`` with the collector off: (wall seconds, CPU seconds)."""
    gc.disable()
    try:
        if signed:
            wall, cpu = time.perf_counter(), time.thread_time()
            for n in range(records):
                info("Action %s: downloading file %d from %s", ACTION_ID, n, SIGNED_LINK, **fields)
            return time.perf_counter() - wall, time.thread_time() - cpu
        wall, cpu = time.perf_counter(), time.thread_time()
        for n in range(records):
            info("Action %s: %s, %d of %d file(s)", ACTION_ID, "InProgress", n, records, **fields)
        return time.perf_counter() - wall, time.thread_time() - cpu
    finally:
        gc.enable()


def _stdlib_run(redacted: bool, signed: bool, records: int, base: Callable[..., logging.LogRecord]) -> Timed:
    """``records`` records through a stdlib logger, made by the plain factory or by the one redaction installs."""
    from airflow_provider_liveresponse.secrets import install_redaction

    logging.setLogRecordFactory(base)
    try:
        if redacted:
            install_redaction()
            if not getattr(logging.getLogRecordFactory(), "redacts_links", False):
                raise RuntimeError("install_redaction() did not wrap the log record factory")
        logger, handler = _stdlib_logger()
        wall, cpu = _timed(logger.info, signed, records)
    finally:
        logging.setLogRecordFactory(base)
    return Timed(wall, cpu, handler.stream.getvalue())


def _structlog_run(redacted: bool, signed: bool, records: int) -> Timed:
    """``records`` events through a structlog logger rendering JSON, with or without the wrapped renderer."""
    import structlog

    from airflow_provider_liveresponse.secrets import install_redaction

    stream = io.StringIO()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    if redacted:
        install_redaction()
        if not getattr(structlog.get_config()["processors"][-1], "redacts_links", False):
            raise RuntimeError("install_redaction() did not wrap structlog's renderer")
    log = structlog.get_logger().bind(logger=LOGGER_NAME)
    wall, cpu = _timed(log.info, signed, records, machine_id=MACHINE_ID)
    return Timed(wall, cpu, stream.getvalue())


@benchmark(
    "log-redaction",
    "Log redaction of result links: per-record cost of the scrubbing record factory and structlog renderer",
    sizes=(100_000,),
    quick_sizes=(20_000,),
    sizes_mean=f"log records per case, in {REPETITIONS} repetitions ({QUICK_REPETITIONS} with --quick)",
)
def log_redaction(sizes: Sequence[int], quick: bool) -> Result:
    import structlog

    result = Result()
    repetitions = QUICK_REPETITIONS if quick else REPETITIONS
    original_factory = logging.getLogRecordFactory()
    base = _plain_factory()
    previous_structlog = structlog.get_config()
    logger = logging.getLogger(LOGGER_NAME)
    saved_logger = (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
    try:
        for records in sizes:
            _measure(result, max(1, records // repetitions), repetitions, base)
    finally:
        logging.setLogRecordFactory(original_factory)
        # structlog.reset_defaults() alone would also drop what Airflow and the runner configured (the runner's
        # level filter keeps the provider's logs out of the other benchmarks' output): put that back too.
        structlog.reset_defaults()
        structlog.configure(**previous_structlog)
        logger.handlers, logger.level, logger.propagate, logger.disabled = saved_logger
    return result


def _measure(result: Result, batch: int, repetitions: int, base: Callable[..., logging.LogRecord]) -> None:
    def run(case: tuple[str, str], redacted: bool, records: int) -> Timed:
        if case[0] == STDLIB:
            return _stdlib_run(redacted, case[1] == SIGNED, records, base)
        return _structlog_run(redacted, case[1] == SIGNED, records)

    for case in CASES:
        for redacted in (False, True):
            run(case, redacted, WARM_UP)
    gc.collect()  # once: a full collection of Airflow's heap takes about 0.1 s, more than some batches
    timed: dict[tuple[tuple[str, str], bool], list[Timed]] = {
        (case, redacted): [] for case in CASES for redacted in (False, True)
    }
    for _ in range(repetitions):
        for case in CASES:
            for redacted in (False, True):
                one = run(case, redacted, batch)
                lines = one.output.count("\n")
                if lines != batch:  # every record written: nothing filtered or dropped
                    raise RuntimeError(f"{case} (redacted={redacted}): {lines} lines written of {batch}")
                timed[(case, redacted)].append(one)

    records = batch * repetitions
    table = result.table(
        f"Per-record cost: {records:,} records per case in {repetitions} interleaved repetitions of {batch:,} "
        "(medians; us = microseconds)",
        [
            "logging",
            "message",
            "plain us",
            "redacted us",
            "added us",
            "redacted / plain",
            "CPU: plain us",
            "redacted us",
            "redacted / plain",
        ],
    )
    for case in CASES:
        plain, scrubbing = timed[(case, False)], timed[(case, True)]
        plain_us = statistics.median(t.wall for t in plain) / batch * 1e6
        redacted_us = statistics.median(t.wall for t in scrubbing) / batch * 1e6
        ratio = statistics.median(r.wall / p.wall for r, p in zip(scrubbing, plain, strict=True))
        cpu_plain_us = statistics.median(t.cpu for t in plain) / batch * 1e6
        cpu_redacted_us = statistics.median(t.cpu for t in scrubbing) / batch * 1e6
        cpu_ratios = [r.cpu / p.cpu for r, p in zip(scrubbing, plain, strict=True) if p.cpu > 0]
        cpu_ratio = statistics.median(cpu_ratios) if cpu_ratios else float("nan")
        table.add(
            case[0],
            case[1],
            f"{plain_us:.2f}",
            f"{redacted_us:.2f}",
            f"{redacted_us - plain_us:.2f}",
            f"{ratio:.2f}x",
            f"{cpu_plain_us:.2f}",
            f"{cpu_redacted_us:.2f}",
            f"{cpu_ratio:.2f}x",
        )
        if case[1] == PLAIN:
            result.check(
                f"{case[0]}: redacted / plain wall time per record, plain message",
                f"{ratio:.2f}x ({redacted_us:.2f} / {plain_us:.2f} us; CPU {cpu_ratio:.2f}x)",
                f"<= {TARGET_RATIO:g}x",
                ratio <= TARGET_RATIO,
            )
            continue
        leaked = sum(t.output.count(SIGNATURE) for t in scrubbing)
        leaked_plain = sum(t.output.count(SIGNATURE) for t in plain)
        scrubbed = sum(t.output.count(SCRUBBED) for t in scrubbing)
        result.check(
            f"{case[0]}: {SIGNATURE!r} in the redacted output (the plain one leaks it)",
            f"{leaked} of {records:,} lines (plain {leaked_plain:,}; {SCRUBBED!r} {scrubbed:,})",
            f"0 (plain {records:,}; {SCRUBBED!r} {records:,})",
            leaked == 0 and leaked_plain == records and scrubbed == records,
        )
    result.notes.append(
        "plain: the process's own record factory, and a structlog configuration without the wrapper; redacted: "
        "the same after install_redaction(). stdlib: a logger of its own (not propagating) with one StreamHandler "
        f"to an io.StringIO, format {LOG_FORMAT!r}; structlog: add_log_level, TimeStamper(iso), JSONRenderer, "
        "WriteLoggerFactory to an io.StringIO, a shorter chain than Airflow's (so a larger ratio than a task's)"
    )
