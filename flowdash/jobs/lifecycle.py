"""The run lifecycle: every status change of a run happens here.

::

    submit ─▶ queued ──claim──▶ running ──finish──▶ done | cancelled | failed | interrupted
                 └──cancel──▶ cancelled         └──reap (worker's heartbeat stale)──▶ interrupted
      ▲                                                       │
      └────────────── continue (a fit: more epochs) ──────────┘  (done, cancelled, interrupted)

Pages, scripts, workers and Celery tasks call these functions; none of them
sets a status itself. A page *asks* (:func:`observe`, :func:`annotate`); the
answer may carry a transition that was due (a dead worker's run becomes
interrupted), but the rule lives here.

Heartbeats: every process that runs jobs writes its heartbeat to the store
every :data:`HEARTBEAT_SECONDS` (:class:`flowdash.jobs.runner.Worker`). A
running run whose worker has not beaten for :data:`STALE_SECONDS` is
interrupted by whoever looks first (a page, a worker's reaper), on any
machine that shares the store. Clocks of the machines must agree to within
a second or two (NTP).
"""
from __future__ import annotations

import io
import json
import logging
import os
import socket
import time

import numpy as np

from .. import names
from ..settings import SettingsError
from ..store import (ACTIVE_STATUSES, CANCELLED, DONE, FINAL_STATUSES, INTERRUPTED, QUEUED,
                     RUNNING)
from . import kinds

log = logging.getLogger("flowdash.jobs")

#: How often a worker writes its heartbeat, s.
HEARTBEAT_SECONDS = 1.0
#: A running run whose worker's heartbeat is older than this is interrupted, s.
STALE_SECONDS = 6.0
#: Heartbeats of workers gone for this long are dropped from the store, s.
FORGET_SECONDS = 600.0


# ---------------------------------------------------------------------------
# transitions
# ---------------------------------------------------------------------------
def submit(store, kind: str, values: dict, name: str | None = None) -> str:
    """Check ``values`` with the kind's rules, record a queued run, hand it on.

    Raises :class:`flowdash.settings.SettingsError` (a message per setting;
    ``name`` for the run name, checked by :func:`flowdash.names.validate_name`
    like every name) before anything is recorded. A blank name gives the
    kind's default name. Embedded workers take queued runs from the store;
    with ``FLOWDASH_BROKER`` set the run is also sent to Celery. If the broker
    cannot be reached the run is recorded as failed, with why. Returns the
    run id.
    """
    job = kinds.get(kind)
    errors = {}
    given = name.strip() if isinstance(name, str) else name
    if given:  # checked with the settings, so that the page shows every message at once
        try:
            given = names.validate_name(given, "run", names.MAX_RUN_NAME_LENGTH)
        except ValueError as exc:
            errors["name"] = str(exc)
    try:
        settings, refs, default_name = job.check(values, store)
    except SettingsError as exc:
        raise SettingsError({**exc.errors, **errors}) from None
    if errors:
        raise SettingsError(errors)
    run_id = store.create_run(kind, given or default_name[:names.MAX_RUN_NAME_LENGTH],
                              settings, refs=refs)
    _hand_on(store, run_id)
    return run_id


def _hand_on(store, run_id: str) -> None:
    """A queued run goes to Celery too when ``FLOWDASH_BROKER`` is set (the
    embedded workers take it from the store)."""
    broker = os.environ.get("FLOWDASH_BROKER")
    if broker:
        from .. import tasks
        try:
            tasks.send(broker, store.location, run_id)
        except Exception as exc:  # the broker is down: say so on the run itself
            log.exception("could not send run %s to %s", run_id, broker)
            finish(store, run_id, "failed", message="failed",
                   error=f"the task queue at FLOWDASH_BROKER could not be reached "
                         f"({type(exc).__name__}: {exc})")


#: The final statuses from which a fit can continue (a failed fit would fail again).
CONTINUABLE = (DONE, CANCELLED, INTERRUPTED)


def checkpoint_epoch(blob: bytes) -> int:
    """The epoch of a fit checkpoint's bytes (its JSON meta only: no numerics loaded).

    Raises ValueError if the bytes are not a checkpoint.
    """
    try:
        with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"][()]))
        epoch = meta["epoch"]
    except Exception as exc:  # anything unreadable is "not a checkpoint"
        raise ValueError(f"not a fit checkpoint ({type(exc).__name__})") from None
    if not isinstance(epoch, int) or epoch < 0:
        raise ValueError("not a fit checkpoint (no epoch)")
    return epoch


def continue_run(store, run_id: str, more_epochs) -> dict:
    """A finished fit goes back to queued, to run ``more_epochs`` more epochs.

    The transition *continue*: done, cancelled or interrupted → queued. The
    same run appends its next epochs to its log (its NLL curve reads as one
    curve), resuming from its checkpoint with the optimizer's state (the fit
    kind finds the checkpoint and passes it to ``fit(..., resume=)``); its
    ``max_epochs`` becomes the checkpoint's epoch + ``more_epochs``, and the
    record's ``continued`` list says when and from where. (A line search on
    ``{'log': n}`` epochs spreads over the new total.)

    Raises :class:`SettingsError` (``more_epochs``, or ``run`` for the run
    itself) when it cannot continue: not a fit, not final (or failed), no
    checkpoint (a worker killed in its first seconds), a total beyond the
    epoch limit, or its dataset (or initial model spec) is gone. Returns the
    queued record.
    """
    return requeue_checked(store, *continue_checks(store, run_id, more_epochs))


def can_continue(record: dict | None) -> bool:
    """Whether *continue* may be asked of a run as ``record`` stands: a fit that is
    done, cancelled or interrupted (not queued or running, not failed). Pages
    enable their Continue buttons with it; :func:`continue_run` still checks the
    rest (the checkpoint, the new total, the dataset) and says what is wrong."""
    return record is not None and record.get("kind") == "fit" \
        and record.get("status") in CONTINUABLE


def continue_checks(store, run_id: str, more_epochs) -> tuple:
    """The checks of :func:`continue_run`, changing nothing; returns what
    :func:`requeue_checked` needs (``run_id, record, total, note``)."""
    from ..settings import core_limits, parse_number

    record = store.get_run(run_id) if names.is_run_id(run_id) else None
    if record is None:
        raise SettingsError({"run": f"there is no run {str(run_id)[:40]!r}"})
    if record["kind"] != "fit":
        raise SettingsError({"run": f"only fits continue; “{record['name']}” is a "
                                    f"{record['kind']} run"})
    if record["status"] not in CONTINUABLE:
        why = ("it is still " + record["status"]) if record["status"] in ACTIVE_STATUSES else \
            f"it {record['status']}" + (f" ({record['error']})" if record.get("error") else "") + \
            "; start a new fit with other settings"
        raise SettingsError({"run": f"“{record['name']}” cannot continue: {why}"})
    limit = core_limits()["FIT_LIMITS"]["max_epochs"]
    try:
        more = parse_number(more_epochs, limit)
    except ValueError as exc:
        raise SettingsError({"more_epochs": str(exc)}) from None
    blob = store.get_checkpoint(run_id)
    if blob is None:
        raise SettingsError({"run": f"“{record['name']}” has no saved state to continue from "
                                    "(its worker was killed before it saved one); start a new "
                                    "fit"})
    try:
        done = checkpoint_epoch(blob)
    except ValueError as exc:
        raise SettingsError({"run": f"the saved state of “{record['name']}” is {exc}"}) from None
    total = done + more
    if not limit.allows(total):
        raise SettingsError({"more_epochs": f"epoch {done} + {more} = {total} epochs in all; "
                                            f"the total must be {limit.describe()}"})
    dataset = record["settings"].get("dataset")
    if not store.has_dataset(dataset):
        raise SettingsError({"run": f"the dataset “{dataset}” of this fit was deleted; "
                                    "it cannot continue"})
    if not (record.get("refs") or {}).get("model_spec") and \
            not store.has_model(record["settings"].get("init_model")):
        raise SettingsError({"run": "the initial model of this fit was deleted; it cannot "
                                    "continue"})
    note = {"at": time.time(), "from_epoch": done, "to_epoch": total,
            "after": record["status"]}
    return run_id, record, total, note


def requeue_checked(store, run_id: str, record: dict, total: int, note: dict) -> dict:
    """The *continue* transition itself, after :func:`continue_checks`."""
    queued = store.requeue_run(run_id, CONTINUABLE, {"max_epochs": total}, note)
    if queued is None:   # someone else continued (or deleted) it meanwhile
        raise SettingsError({"run": f"“{record['name']}” changed meanwhile; look again"})
    _hand_on(store, run_id)
    return queued


def cancel(store, run_id: str) -> dict | None:
    """Ask a run to stop; returns its record (None: no such run).

    A queued run is cancelled at once (it never starts); a running one stops
    at its next check (between epochs or trials) and keeps what it has.
    A malformed id is treated as an unknown run (None; nothing is stored).
    """
    if not names.is_run_id(run_id):
        return None
    record = store.get_run(run_id)
    if record is None or record["status"] in FINAL_STATUSES:
        return record
    store.request_cancel(run_id)  # atomic: a queued run becomes cancelled here
    return store.get_run(run_id)


def claim(store, run_id: str, worker) -> bool:
    """queued -> running for ``worker``; False if the run is not queued (any more).

    A run is claimed once: a retried or duplicated task finds it running or
    final and does nothing, so no epoch is ever computed twice.
    """
    return store.start_run(run_id, worker.pid, worker.started, message="starting")


def finish(store, run_id: str, status: str, error: str | None = None,
           message: str | None = None, attempts: int = 5) -> dict | None:
    """Set a final status (the first one wins), retrying a store that is busy."""
    for attempt in range(attempts):
        try:
            return store.finish_run(run_id, status, error=error, message=message)
        except Exception:  # a locked or briefly unreachable store: the status must land
            if attempt == attempts - 1:
                log.exception("could not record run %s as %s", run_id, status)
                raise
            time.sleep(0.2 * 2 ** attempt)
    return None


# ---------------------------------------------------------------------------
# heartbeats and the reaper
# ---------------------------------------------------------------------------
def worker_of(record: dict) -> str:
    """The id of the worker that runs (or ran) a run: ``host:pid``."""
    return f"{record.get('host')}:{record.get('pid')}"


def live_workers(store, now: float | None = None) -> dict:
    """worker id -> heartbeat of the workers that beat within STALE_SECONDS."""
    now = time.time() if now is None else now
    return {w: b for w, b in store.heartbeats().items()
            if now - float(b.get("time", 0)) <= STALE_SECONDS}


def _alive_here(beat: dict) -> bool:
    """Whether a worker whose heartbeat is late is a live process on this machine
    (the same pid and start time, not a zombie): a worker starved of CPU on a
    loaded machine is late, not dead. Workers on other machines have only their
    heartbeat to show."""
    if beat.get("host") != socket.gethostname() or not beat.get("pid"):
        return False
    try:
        import psutil

        process = psutil.Process(int(beat["pid"]))
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        since = beat.get("since")
        return since is None or abs(process.create_time() - float(since)) < 1.0
    except Exception:  # no such process (or psutil cannot tell): the heartbeat decides
        return False


def _why_dead(record: dict, beats: dict, now: float) -> str | None:
    """Why a running run has no live worker, or None if it has one."""
    wid = worker_of(record)
    beat = beats.get(wid)
    since = now - float(record.get("started") or record["created"])
    if beat is None:
        return (f"its worker ({wid}) stopped without a word (no heartbeat)"
                if since > STALE_SECONDS else None)
    age = now - float(beat.get("time", 0))
    if age > STALE_SECONDS and not _alive_here(beat):
        return (f"its worker ({wid}) stopped: no heartbeat for {age:.0f} s (killed, out of "
                "memory, or its machine stopped)")
    if beat.get("run") != record["id"] and since > STALE_SECONDS:
        return f"its worker ({wid}) is alive but no longer running it"
    return None


def _interrupt(store, record: dict, why: str) -> dict | None:
    log.warning("run %s interrupted: %s", record["id"], why)
    return finish(store, record["id"], INTERRUPTED, message="interrupted",
                  error=f"{why}; what it computed so far is kept")


def reap(store, now: float | None = None) -> list[str]:
    """Interrupt every running run whose worker is dead; returns their ids.

    Called by the workers every few seconds and by the pages when they list
    runs; cheap (three reads: the active index, their records, the heartbeats).
    """
    now = time.time() if now is None else now
    beats, marked = store.heartbeats(), []
    for record in store.get_runs(store.active_runs()):
        if record["status"] != RUNNING:
            continue
        why = _why_dead(record, beats, now)
        if why and _interrupt(store, record, why) is not None:
            marked.append(record["id"])
    for wid, beat in beats.items():
        if now - float(beat.get("time", 0)) > FORGET_SECONDS:
            store.forget_worker(wid)
    return marked


# ---------------------------------------------------------------------------
# what the pages ask
# ---------------------------------------------------------------------------
def observe(store, run_id) -> dict | None:
    """A run's record as the pages show it; None if there is no such run.

    A running run whose worker is dead is interrupted first; a queued run's
    ``message`` says where it is in the queue (``queue_position`` too).
    """
    record = store.get_run(run_id)   # None for a malformed id too (the store is not read)
    if record is None:
        return None
    if record["status"] == RUNNING:
        why = _why_dead(record, store.heartbeats(), time.time())
        if why:
            record = _interrupt(store, record, why) or store.get_run(run_id)
    return annotate(store, [record])[0] if record["status"] == QUEUED else record


def annotate(store, records: list[dict]) -> list[dict]:
    """Copies of ``records`` in which each queued run says where it waits."""
    if not any(r["status"] == QUEUED for r in records):
        return records
    queued = [r["id"] for r in store.get_runs(store.active_runs()) if r["status"] == QUEUED]
    workers = live_workers(store)
    busy = sum(1 for b in workers.values() if b.get("run"))
    out = []
    for r in records:
        if r["status"] == QUEUED and r["id"] in queued:
            k = queued.index(r["id"]) + 1
            r = dict(r, queue_position=k, message=queue_message(k, len(workers), busy))
        out.append(r)
    return out


def queue_message(position: int, workers: int, busy: int) -> str:
    """What a queued run's page says: its place in line and why it waits."""
    if os.environ.get("FLOWDASH_BROKER") and not workers:
        return f"queued: {_ordinal(position)} in line (waiting for a Celery worker)"
    if not workers:
        return (f"queued: {_ordinal(position)} in line; no worker is running (start "
                "`python app.py`, or `python -m flowdash.worker --store …` beside the server)")
    return f"queued: {_ordinal(position)} in line ({busy} of {workers} workers busy)"


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def wait(store, run_id: str, timeout: float | None = None, poll: float = 0.1) -> dict:
    """Block until a run is final; returns its record (scripts and tests).

    Raises TimeoutError after ``timeout`` seconds, and RuntimeError if the
    run stays queued while no worker takes runs from this store.
    """
    t0 = time.time()
    idle_since = None
    while True:
        record = observe(store, run_id)
        if record is None:
            raise ValueError(f"no run {run_id!r} in the store at {store.location}")
        if record["status"] not in ACTIVE_STATUSES:
            return record
        now = time.time()
        if record["status"] == QUEUED and not live_workers(store, now) \
                and not os.environ.get("FLOWDASH_BROKER"):
            idle_since = idle_since or now
            if now - idle_since > 2 * STALE_SECONDS:
                raise RuntimeError(
                    f"run {run_id} is queued but no worker takes runs from the store at "
                    f"{store.location}: run it inside `with jobs.LocalPool(store):`, or start "
                    "`python app.py --store …` or `python -m flowdash.worker --store …`")
        else:
            idle_since = None
        if timeout is not None and now - t0 > timeout:
            raise TimeoutError(f"run {run_id} is still {record['status']} after {timeout} s")
        time.sleep(poll)


__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "submit", "cancel", "claim", "finish", "reap",
           "continue_run", "continue_checks", "requeue_checked", "checkpoint_epoch",
           "CONTINUABLE", "can_continue",
           "observe", "annotate", "wait", "live_workers", "worker_of",
           "queue_message"]
