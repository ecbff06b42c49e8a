"""The embedded worker pool: N warm ``python -m flowdash.worker`` processes.

At most N runs of a store run at once per pool; the others wait as queued,
in order. The pool belongs to the process that starts it (``python app.py``,
``python -m flowdash.worker``, or a script's ``with LocalPool(store):``);
a WSGI server (gunicorn) never starts one.

Workers are started as ``python -m flowdash.worker`` subprocesses, never
with ``multiprocessing``: the caller's ``__main__`` is never imported again,
so a script without an ``if __name__ == "__main__":`` guard runs once.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("flowdash.jobs")

#: The folder that holds the ``flowdash`` package (put on the workers' path).
ROOT = str(Path(__file__).resolve().parents[2])

SPAWN_GUARD = (
    "a flowdash worker pool was started inside a multiprocessing child process: the "
    "script that starts it is being re-run by the 'spawn' start method because it has no "
    "`if __name__ == \"__main__\":` guard. Put the code that starts work under such a guard.")


class LocalPool:
    """N worker processes that run the queued runs of one store.

    Parameters
    ----------
    store : RunStore or str
        The store (or its location).
    workers : int, optional
        How many runs may run at once (default: the number of cores).
    """

    def __init__(self, store, workers: int | None = None):
        if multiprocessing.parent_process() is not None:
            raise RuntimeError(SPAWN_GUARD)
        if isinstance(store, (str, os.PathLike)):
            from ..store import open_store
            opened = open_store(store)
            self.location = opened.location
            opened.close()
        else:
            self.location = store.location
        self.workers = int(workers or os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        self.procs: list[subprocess.Popen] = []
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- start and stop --------------------------------------------------------
    def _spawn(self) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
        # a session of its own: Ctrl-C reaches the owner, which stops the workers in order
        return subprocess.Popen([sys.executable, "-m", "flowdash.worker", "--one",
                                 "--store", self.location, "--parent-pid", str(os.getpid())],
                                env=env, start_new_session=True)

    def start(self) -> "LocalPool":
        with self._lock:
            self.procs = [self._spawn() for _ in range(self.workers)]
        self._monitor = threading.Thread(target=self._watch, name="flowdash-pool", daemon=True)
        self._monitor.start()
        log.info("started %d worker(s) on %s", self.workers, self.location)
        return self

    def _watch(self) -> None:
        """Replace a worker that died (its run is interrupted by the heartbeat rule)."""
        deaths: list[float] = []
        while not self._stopping.wait(1.0):
            with self._lock:
                for i, proc in enumerate(self.procs):
                    if proc.poll() is None or self._stopping.is_set():
                        continue
                    now = time.time()
                    deaths = [t for t in deaths if now - t < 60] + [now]
                    if len(deaths) > 3 * self.workers:
                        log.error("workers keep dying (%d in a minute); not restarting "
                                  "worker %d (exit code %s)", len(deaths), proc.pid,
                                  proc.returncode)
                        continue
                    log.warning("worker %d exited with code %s; starting another", proc.pid,
                                proc.returncode)
                    self.procs[i] = self._spawn()

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def ready(self, timeout: float = 60.0) -> bool:
        """Wait until every worker has loaded its kernels and beats; False on timeout."""
        from ..store import open_store

        store = open_store(self.location)
        try:
            t0 = time.time()
            while time.time() - t0 < timeout:
                beating = {b.get("pid") for b in store.heartbeats().values()}
                if set(self.pids()) <= beating:
                    return True
                time.sleep(0.05)
            return False
        finally:
            store.close()

    def stop(self, grace: float = 5.0) -> None:
        """Stop the workers: each stops its run at the next epoch or trial and keeps
        it (interrupted, with its final arrays); after ``grace`` s a second signal
        stops them at once; after 2 s more they are killed."""
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join(5)
        with self._lock:
            procs = [p for p in self.procs if p.poll() is None]
        for step, wait in ((signal.SIGTERM, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            for p in procs:
                if p.poll() is None:
                    try:
                        p.send_signal(step)
                    except ProcessLookupError:
                        pass
            end = time.time() + wait
            for p in procs:
                try:
                    p.wait(max(0.0, end - time.time()))
                except subprocess.TimeoutExpired:
                    pass
            procs = [p for p in procs if p.poll() is None]
            if not procs:
                break
        log.info("workers stopped")

    def run_forever(self) -> None:
        """Start, then wait for Ctrl-C or SIGTERM, then stop (``python -m flowdash.worker``)."""
        def on_term(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, on_term)
        self.start()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> "LocalPool":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
