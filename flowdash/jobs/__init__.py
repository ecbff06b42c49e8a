"""The job layer: every kind of job through one queue, every status change in one place.

Importable without dash. The API the pages, scripts, workers and Celery
tasks use:

* :func:`submit` ``(store, kind, values, name=None) -> run_id`` — check the
  values with the kind's rules (:class:`SettingsError` per setting) and
  queue a run. :func:`cancel` ``(store, run_id)`` — a queued run is
  cancelled at once, a running one stops at its next check.
* :func:`observe` ``(store, run_id) -> record`` and :func:`annotate`
  ``(store, records)`` — what the pages show (a queued run's place in line;
  a dead worker's run is interrupted first). :func:`reap` ``(store)``
  interrupts every run whose worker's heartbeat is stale. :func:`wait`
  blocks until a run is final.
* :func:`execute` ``(store, run_id)`` runs a queued run in the calling
  process; :class:`LocalPool` runs N warm worker processes on a store
  (``python app.py`` and ``python -m flowdash.worker`` start one), and
  :mod:`flowdash.tasks` runs every kind as a Celery task when
  ``FLOWDASH_BROKER`` is set.
* :func:`continue_run` ``(store, run_id, more_epochs) -> record`` — a done,
  cancelled or interrupted fit goes back to queued and appends more epochs
  from its checkpoint (optimizer state included).
* Model selections (:mod:`flowdash.jobs.selection`): :func:`submit_selection`
  ``(store, values, name=None) -> selection id`` queues two fits of two
  halves; :func:`cancel_selection`, :func:`continue_selection`,
  :func:`pair_runs` (a selection of two existing fits).
* Job kinds: :func:`register_kind` ``(name, check, run, warm=None)`` (see
  :mod:`flowdash.jobs.kinds`); built in: ``"generation"``, ``"fit"``.

From a script::

    from flowdash import jobs
    from flowdash.store import open_store

    store = open_store("flowdash-store")
    with jobs.LocalPool(store, workers=2):
        run_id = jobs.submit(store, "fit", settings)
        record = jobs.wait(store, run_id)
"""
from .data import (build_model, finite_list, fit_initial_spec, load_dataset, model_arrays,
                   random_split, spikedata_from_bytes, spikedata_to_bytes, split_of,
                   split_samples, train_val, truth_arrays, truth_model)
from .kinds import JobKind, register as register_kind
from .lifecycle import (HEARTBEAT_SECONDS, STALE_SECONDS, annotate, can_continue, cancel,
                        continue_run, finish, live_workers, observe, reap, submit, wait)
from .pool import LocalPool
from .selection import cancel_selection, continue_selection, pair_runs, submit_selection
from .runner import Hooks, Interrupted, JobFailed, Stopped, Worker, execute
from ..settings import SettingsError

__all__ = [
    "submit", "cancel", "continue_run", "can_continue", "observe", "annotate", "reap", "wait", "execute",
    "finish", "submit_selection", "cancel_selection", "continue_selection", "pair_runs",
    "live_workers", "LocalPool", "register_kind", "JobKind", "Hooks",
    "Worker", "Stopped", "JobFailed", "Interrupted", "SettingsError", "HEARTBEAT_SECONDS",
    "STALE_SECONDS", "build_model", "finite_list", "fit_initial_spec", "load_dataset",
    "model_arrays", "random_split", "spikedata_from_bytes", "spikedata_to_bytes", "split_of",
    "split_samples", "train_val", "truth_arrays", "truth_model",
]
