"""Every kind of job as one Celery task, for workers on any number of machines.

Start the workers of one machine with one command (one task per core)::

    FLOWDASH_BROKER=redis://HOST:6379/0 celery -A flowdash.tasks worker --concurrency <cores>

and start the web server with the same ``FLOWDASH_BROKER``: :func:`flowdash.jobs.submit`
then sends each queued run here. The run store must be one that every machine reaches
(``FLOWDASH_STORE=redis://…``; a store folder works for workers on the server's machine),
and the task carries the location of the store the run was submitted to.

* ``task_acks_late`` and ``worker_prefetch_multiplier=1``: a worker process takes one
  task at a time and acknowledges it when it ends, so a long fit never holds other tasks
  back and a task whose worker machine vanishes is not lost.
* A task only runs a *queued* run (:func:`flowdash.jobs.execute` claims it atomically):
  a redelivered or duplicated task does nothing, so no epoch is computed twice. A run
  whose worker died is interrupted by the heartbeat rule and keeps its epochs.
* Cancel is the store's flag, checked between epochs; never ``control.terminate``.
  Stopping a worker (SIGTERM: warm shutdown) stops its running fits at their next
  epoch; they are recorded as interrupted, with their final arrays.
* Each worker process loads the numerical kernels when it starts.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

from celery import Celery, signals

log = logging.getLogger("flowdash.tasks")

TASK = "flowdash.run"
QUEUE = "flowdash"
#: A fit may run for days: the broker must never hand a running task to another worker.
VISIBILITY_TIMEOUT = 7 * 24 * 3600

_apps: dict[tuple, Celery] = {}


def celery_app(broker: str, sender: bool = False) -> Celery:
    """The Celery app of a broker URL (one per URL and role and process).

    A sender (the web server) gives up on an unreachable broker within about a
    second, so that a click gets an answer; a worker keeps reconnecting.
    """
    if (broker, sender) not in _apps:
        app = Celery("flowdash", broker=broker)
        transport = {"visibility_timeout": VISIBILITY_TIMEOUT}
        if sender:
            transport.update(max_retries=2, interval_start=0, interval_step=0.3, interval_max=0.5)
        app.conf.update(
            task_acks_late=True,
            worker_prefetch_multiplier=1,
            task_reject_on_worker_lost=False,   # a dead worker's run is interrupted, not re-run
            task_ignore_result=True,            # the run store holds every status
            task_default_queue=QUEUE,
            task_track_started=False,
            broker_connection_retry_on_startup=True,
            broker_transport_options=transport,
            worker_hijack_root_logger=False,
        )
        app.task(name=TASK)(run)
        _apps[broker, sender] = app
    return _apps[broker, sender]


def send(broker: str, location: str, run_id: str) -> None:
    """Queue the task of a run (raises within about a second if the broker is down)."""
    celery_app(broker, sender=True).send_task(TASK, args=[location, run_id], queue=QUEUE)


# ---------------------------------------------------------------------------
# the worker side
# ---------------------------------------------------------------------------
_workers: dict = {}   # store location -> this process's Worker (heartbeat) on it


def _worker_for(location: str):
    from flowdash.jobs.runner import Worker
    from flowdash.store import open_store

    if location not in _workers:
        _workers[location] = Worker(open_store(location)).start()
    return _workers[location]


def run(location: str, run_id: str) -> str | None:
    """The task: run the queued run ``run_id`` of the store at ``location``."""
    from flowdash.jobs.runner import Interrupted, execute
    from flowdash.store import open_store

    worker = _worker_for(location)
    main = threading.current_thread() is threading.main_thread()   # prefork, solo
    previous = signal.getsignal(signal.SIGTERM) if main else None

    def on_term(signum, frame):  # stop at the next epoch; a second SIGTERM at once
        if worker.shutdown.is_set():
            raise Interrupted("SIGTERM again")
        worker.request_shutdown("the Celery worker was stopped (SIGTERM)")
    if main:
        signal.signal(signal.SIGTERM, on_term)
    store = open_store(location)
    try:
        return execute(store, run_id, worker)
    finally:
        store.close()
        if main:
            signal.signal(signal.SIGTERM, previous)
        worker.shutdown.clear()   # the process goes on with its next task
        worker.shutdown_reason = None


@signals.worker_process_init.connect
def _warm(**_):
    """Load the job kinds and the numerical kernels in each new worker process."""
    from flowdash.jobs import kinds

    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)   # one BLAS thread per process: the core parallelises itself
    except Exception:  # pragma: no cover
        pass
    kinds.warm_all()


@signals.worker_shutting_down.connect
def _stop_running_fits(**_):
    """Warm shutdown: ask each process that runs a task to stop it at its next epoch."""
    from celery.worker import state

    for request in list(state.active_requests):
        if request.worker_pid:
            try:
                os.kill(request.worker_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


#: The app that ``celery -A flowdash.tasks worker`` runs.
app = celery_app(os.environ.get("FLOWDASH_BROKER", "redis://localhost:6379/0"))
