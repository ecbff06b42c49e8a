"""Workers that take queued runs from the run store and run them.

    python -m flowdash.worker --store FOLDER|redis://HOST:PORT/DB [--workers N]

starts N warm worker processes (default: the number of cores) on the store
and runs until Ctrl-C or SIGTERM; each runs one job at a time. ``python
app.py`` starts the same pool itself (``--workers``); run this command
beside a server that does not (gunicorn), or to add workers on a store.

Each worker is a fresh ``python -m flowdash.worker --one`` process: it
never imports the module that started it (a script without an ``if
__name__ == "__main__":`` guard is not re-run), loads the numerical kernels
once at start, then polls the store for the oldest queued run it knows the
kind of, claims it, runs it and writes its heartbeat every second.
"""
from __future__ import annotations

import argparse
import logging
import os
import time

log = logging.getLogger("flowdash.worker")

#: How often an idle worker looks for a queued run, s.
POLL_SECONDS = 0.05


def next_queued(store, known) -> str | None:
    """The oldest queued run whose kind this worker knows, or None."""
    for record in store.get_runs(store.active_runs()):   # two reads
        if record["status"] == "queued" and record["kind"] in known:
            return record["id"]
    return None


def serve(location: str, parent_pid: int | None = None) -> None:
    """One worker: warm up, then run queued runs one at a time until told to stop."""
    from flowdash.jobs import kinds
    from flowdash.jobs.runner import Interrupted, Worker, execute, handle_signals
    from flowdash.store import open_store

    store = open_store(location)
    worker = Worker(store, parent_pid=parent_pid)
    handle_signals(worker)
    _one_blas_thread()
    t0 = time.perf_counter()
    known = set(kinds.load())
    kinds.warm_all()
    log.info("worker %s ready in %.1f s (kinds: %s)", worker.id, time.perf_counter() - t0,
             ", ".join(sorted(known)))
    worker.start()   # beats, and interrupts the runs of dead workers
    try:
        while not worker.shutdown.is_set():
            run_id = next_queued(store, known)
            if run_id is None:
                worker.shutdown.wait(POLL_SECONDS)
                continue
            execute(store, run_id, worker)
    except Interrupted:  # a second signal while idle: just leave
        pass
    finally:
        worker.stop()
        store.close()


def _one_blas_thread() -> None:
    """One BLAS thread per worker: the core parallelises itself (PERF_NOTES)."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except Exception:  # pragma: no cover - threadpoolctl is optional here
        pass


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flowdash.worker",
                                     description="flowdash workers on a run store")
    parser.add_argument("--store", default=os.environ.get("FLOWDASH_STORE", "flowdash-store"),
                        help="the run store: a folder or redis://host:port/db (default "
                             "$FLOWDASH_STORE or ./flowdash-store)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes, each running one job at a time "
                             "(default: the number of cores)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.one:
        serve(args.store, args.parent_pid)
        return
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    from flowdash.jobs.pool import LocalPool
    from flowdash.store import StoreError

    try:
        pool = LocalPool(args.store, workers=args.workers)
    except (StoreError, ValueError, TypeError) as exc:  # say why, no traceback
        parser.exit(2, f"flowdash.worker: {exc}\n")
    pool.run_forever()


if __name__ == "__main__":
    main()
