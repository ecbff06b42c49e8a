"""Running one queued run: the worker's identity and heartbeat, the hooks a
job kind gets, and the mapping of what the kind did to a final status.

The same :func:`execute` runs a run in an embedded worker
(:mod:`flowdash.worker`), in a Celery task (:mod:`flowdash.tasks`) or in the
calling process (scripts, tests).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

from ..store import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED
from . import kinds
from .data import reason
from .lifecycle import HEARTBEAT_SECONDS, claim, finish, reap

#: How often each worker looks for runs of dead workers, s.
REAP_SECONDS = 2.0

log = logging.getLogger("flowdash.jobs")


class Stopped(Exception):
    """A kind stopped early because :meth:`Hooks.should_stop` said so.

    Its message says what was kept (e.g. "cancelled after 3 of 10 trials; no
    dataset was saved"); the status (cancelled or interrupted) comes from
    why it stopped.
    """


class JobFailed(Exception):
    """A kind's failure with a message for the user (no traceback is logged)."""


class Interrupted(BaseException):
    """The worker must stop now (a second SIGTERM/SIGINT). A BaseException, so a
    kind's ``except Exception`` does not swallow it."""


def _process_started() -> float | None:
    try:
        import psutil
        return psutil.Process(os.getpid()).create_time()
    except Exception:  # pragma: no cover - psutil missing or refused
        return None


class Worker:
    """A process that runs jobs: its id (``host:pid``) and heartbeat thread.

    ``shutdown`` is set when the process must stop (a signal, or the server
    that started it is gone): the current run then stops at its next check
    and is recorded as interrupted, with ``shutdown_reason``.
    """

    def __init__(self, store, parent_pid: int | None = None):
        self.store = store
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.id = f"{self.host}:{self.pid}"
        self.started = _process_started()
        self.parent_pid = parent_pid
        self.run: str | None = None
        self.shutdown = threading.Event()
        self.shutdown_reason: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Worker":
        self.beat()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.id}",
                                        daemon=True)
        self._thread.start()
        return self

    def _loop(self):
        last_reap = 0.0
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if self.parent_pid and os.getppid() != self.parent_pid:
                self.request_shutdown("the server that started this worker stopped")
            try:
                self.beat()
                if time.monotonic() - last_reap > REAP_SECONDS:  # any worker reaps the dead
                    last_reap = time.monotonic()
                    reap(self.store)
            except Exception:  # a busy store: the next beat will do
                log.warning("worker %s could not write its heartbeat", self.id, exc_info=True)

    def beat(self) -> None:
        self.store.beat(self.id, {"time": time.time(), "host": self.host, "pid": self.pid,
                                  "run": self.run, "since": self.started})

    def set_run(self, run_id: str | None) -> None:
        """The run this worker is about to run (or None); written at once."""
        self.run = run_id
        self.beat()

    def request_shutdown(self, why: str) -> None:
        if not self.shutdown.is_set():
            self.shutdown_reason = why
            self.shutdown.set()

    def stop(self) -> None:
        """Stop beating and drop the heartbeat (a clean exit is not a death)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self.store.forget_worker(self.id)
        except Exception:  # pragma: no cover - the store is gone: nothing to forget
            pass


def handle_signals(worker: Worker) -> None:
    """SIGTERM/SIGINT in a worker's main thread: the first stops the current run
    at its next check (it keeps everything and its final arrays, and is
    recorded as interrupted), a second one stops it at once."""
    def on_signal(signum, frame):
        name = signal.Signals(signum).name
        if worker.shutdown.is_set():
            raise Interrupted(f"{name} again")
        worker.request_shutdown(f"the worker was stopped ({name}: the server or the "
                                "worker pool shut down)")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)


class Hooks:
    """What a job kind's ``run(store, run_id, hooks)`` uses to talk to its run.

    Attributes
    ----------
    run_id : str
    record : dict
        The run record as claimed (``settings``, ``refs``, ``name``, ...).
    settings : dict
        ``record["settings"]``: the checked settings of the run.
    stopped : str or None
        ``"cancelled"`` or ``"interrupted"`` once :meth:`should_stop` said
        True (sticky), else None.
    """

    def __init__(self, store, record: dict, worker: Worker):
        self.store, self.record, self.worker = store, record, worker
        self.run_id, self.settings = record["id"], record["settings"]
        self.stopped: str | None = None
        self.t0 = time.time()

    def progress(self, fraction: float | None = None, message: str | None = None,
                 **fields) -> None:
        """Record progress (0..1) and a short message; extra JSON-able fields too."""
        if fraction is not None:
            fields["progress"] = float(fraction)
        if message is not None:
            fields["message"] = message
        self.store.update_run(self.run_id, elapsed=time.time() - self.t0, **fields)

    def should_stop(self) -> bool:
        """True once the run was cancelled or the worker must shut down.

        Call it between units of work (epochs, trials): it reads the cancel flag
        and the run's status (a reaper may have given the run up). Safe from any
        thread.
        """
        if self.stopped is None:
            if self.store.cancel_requested(self.run_id):
                self.stopped = CANCELLED
            elif self.worker.shutdown.is_set() or not self._still_mine():
                self.stopped = INTERRUPTED
        return self.stopped is not None

    def _still_mine(self) -> bool:
        """False once the run has a final status (a reaper that took this worker for dead)."""
        record = self.store.get_run(self.run_id)
        return record is not None and record["status"] == "running"

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` (a lecture's pace) unless the run is stopped; True if stopped."""
        end = time.monotonic() + seconds
        while not self.should_stop():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.worker.shutdown.wait(min(left, 0.2))
        return True


def execute(store, run_id: str, worker: Worker | None = None) -> str | None:
    """Run the queued run ``run_id`` here and record its final status.

    A run that is not queued (cancelled, or already taken: a retried or
    duplicated task) is left alone, so nothing is ever run twice. Without a
    ``worker`` a temporary one beats for the run's duration (scripts,
    tests). Returns the run's status (None: no such run).
    """
    record = store.get_run(run_id)   # None for a malformed id (the store is not read)
    if record is None:
        return None
    if record["status"] != QUEUED:
        return record["status"]
    try:
        job = kinds.get(record["kind"])
    except ValueError as exc:  # a worker without the kind's module
        finish(store, run_id, FAILED, error=str(exc), message="failed")
        return FAILED
    own = worker is None
    if own:
        worker = Worker(store).start()
    worker.set_run(run_id)
    try:
        if not claim(store, run_id, worker):
            return (store.get_run(run_id) or {}).get("status")
        hooks = Hooks(store, store.get_run(run_id), worker)
        try:
            status, error, message = _outcome(job, store, run_id, hooks)
        except KeyboardInterrupt:  # Ctrl-C in a script that runs a job in-process
            finish(store, run_id, INTERRUPTED, message="interrupted",
                   error="Ctrl-C in the process that ran it")
            raise
        finish(store, run_id, status, error=error, message=message)
        return status
    finally:
        worker.set_run(None)
        if own:
            worker.stop()


def _outcome(job, store, run_id: str, hooks: Hooks):
    """(status, error, message) of running ``job`` on the run."""
    try:
        summary = job.run(store, run_id, hooks)
    except Stopped as exc:
        summary = str(exc) or None
        hooks.stopped = hooks.stopped or CANCELLED
    except JobFailed as exc:
        return FAILED, str(exc), "failed"
    except Interrupted:
        hooks.stopped = INTERRUPTED
        summary = None
    except Exception as exc:  # the reason goes to the run, the traceback to the log
        log.exception("%s run %s failed", job.name, run_id)
        return FAILED, reason(exc), "failed"
    status = hooks.stopped or DONE
    error = None
    if status == INTERRUPTED:
        error = hooks.worker.shutdown_reason or "the worker was stopped"
    return status, error, summary or status
