"""A worker that dies cheaply: a process that imports Airflow and the DAG once, then forks one child per task
run (``dag.test()`` of one logical date), optionally with a fault patched in that SIGKILLs the child at a point.

A kill must end a process, and starting Python and Airflow costs seconds; a fork of a process that has already
imported everything costs milliseconds, so a campaign can afford hundreds of killed workers. The parent imports
modules only (no database connection, no thread) before forking; Airflow disposes of the ORM engine in a fork.

Protocol (JSON lines): the campaign writes ``{"date": ISO, "conf": {...}, "kill": point or null, "log": path}``
on stdin; the worker answers ``{"exit": code, "states": {task: state} or null, "seconds": s}`` on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime
from typing import Any

#: Kill points, in the order a task meets them.
KILL_POINTS = ("before_submit", "during_submit", "after_submit_before_xcom", "while_waiting", "during_transfer")
#: Real seconds after the submit request leaves before the worker dies (the simulator delays its answer more).
SUBMIT_KILL_AFTER = 0.1


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def patch(point: str) -> None:
    """Arrange for this process to be SIGKILLed at ``point``."""
    if point == "before_submit":
        from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

        def run_live_response(self: Any, *args: Any, **kwargs: Any) -> Any:
            _die()

        LiveResponseHook.run_live_response = run_live_response  # type: ignore[method-assign]
    elif point == "during_submit":
        import threading

        from requests.adapters import HTTPAdapter

        send = HTTPAdapter.send

        def send_and_die(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if request.method == "POST" and str(request.url).endswith("/runliveresponse"):
                threading.Timer(SUBMIT_KILL_AFTER, _die).start()
            return send(self, request, *args, **kwargs)

        HTTPAdapter.send = send_and_die  # type: ignore[method-assign]
    elif point == "during_submit_committed":
        from requests.adapters import HTTPAdapter

        send = HTTPAdapter.send

        def send_or_die(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return send(self, request, *args, **kwargs)
            except BaseException:
                if request.method == "POST" and str(request.url).endswith("/runliveresponse"):
                    _die()  # MDE created the action; its answer was lost, and the worker dies with it
                raise

        HTTPAdapter.send = send_or_die  # type: ignore[method-assign]
    elif point == "after_submit_before_xcom":
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        push = RuntimeTaskInstance.xcom_push

        def xcom_push(self: Any, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
            if key == "action_id":
                _die()
            return push(self, key, value, *args, **kwargs)

        RuntimeTaskInstance.xcom_push = xcom_push  # type: ignore[method-assign]
    elif point == "while_waiting":
        from airflow_provider_liveresponse.hooks.action_workflow import ActionWorkflowMixin

        wait = ActionWorkflowMixin.wait_for_action

        def wait_and_die(self: Any, *args: Any, **kwargs: Any) -> Any:
            return wait(self, *args, **{**kwargs, "sleep": lambda seconds: _die()})  # at the wait's first sleep

        ActionWorkflowMixin.wait_for_action = wait_and_die  # type: ignore[method-assign]
    elif point == "during_transfer":
        from airflow_provider_liveresponse.transfers import live_response_to_object_storage as transfer

        feed = transfer._Decoder.feed

        def feed_and_die(self: Any, data: Any) -> Any:
            for number, piece in enumerate(feed(self, data)):
                if number:
                    _die()  # the previous piece has been written to the temporary object
                yield piece

        transfer._Decoder.feed = feed_and_die  # type: ignore[method-assign]
    else:
        raise ValueError(f"unknown kill point {point!r}")


def _run_child(dag: Any, order: dict[str, Any]) -> None:
    log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    code = 0
    try:
        _after_fork()
        if order.get("kill"):
            patch(order["kill"])
        date = datetime.fromisoformat(order["date"])
        run = dag.test(logical_date=date, run_after=date, run_conf=order.get("conf"))
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        with open(order["log"] + ".states", "w") as out:
            json.dump(states, out)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 3
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


WARM_UP_DAG = """
import datetime as dt
from airflow.sdk import DAG, task

with DAG("bench_fork_warm_up", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
    task(lambda: None, task_id="nothing")()
"""


def _prewarm(folder: str) -> None:
    """Run a trivial ``dag.test()`` once before forking: the first one in a process builds the in-process
    execution API and imports what running a task needs (seconds of work). A fork keeps all of it but the
    execution API's event-loop thread, which :func:`_after_fork` replaces."""
    import importlib.util

    path = os.path.join(folder, "bench_fork_warm_up.py")
    with open(path, "w") as out:
        out.write(WARM_UP_DAG)
    spec = importlib.util.spec_from_file_location("bench_fork_warm_up", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.dag.test()
    os.unlink(path)


def _after_fork() -> None:
    """Threads do not survive a fork: make the in-process execution API start a new loop thread on first use."""
    import contextlib

    from airflow.sdk.execution_time.supervisor import in_process_api_server

    with contextlib.suppress(AttributeError):
        del in_process_api_server().transport  # an attrs slot; made again on first use


def main() -> None:
    """Load the DAG file in ``argv[1]``, then serve orders from stdin until it closes."""
    import importlib.util

    from benchmarks.support import prepare_environment

    # The answers go to the original stdout; anything else printed (Airflow's logs) goes to stderr.
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    prepare_environment()
    import airflow.sdk  # noqa: F401 - imported once, before forking

    from airflow_provider_liveresponse.operators import live_response  # noqa: F401
    from airflow_provider_liveresponse.transfers import live_response_to_object_storage  # noqa: F401

    _prewarm(os.path.dirname(sys.argv[1]))
    spec = importlib.util.spec_from_file_location("campaign_dag", sys.argv[1])
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(json.dumps({"ready": True}), file=protocol, flush=True)
    for line in sys.stdin:
        order = json.loads(line)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _run_child(module.dag, order)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        states = None
        try:
            with open(order["log"] + ".states") as handle:
                states = json.load(handle)
            os.unlink(order["log"] + ".states")
        except FileNotFoundError:
            pass
        answer = {"exit": code, "states": states, "seconds": time.monotonic() - started}
        print(json.dumps(answer), file=protocol, flush=True)


if __name__ == "__main__":
    main()
