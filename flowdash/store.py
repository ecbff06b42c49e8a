"""The persistent run store.

One folder holds everything the dashboard keeps between requests and across
server restarts: runs (data generation and fits), their per-epoch logs, saved
models and saved datasets. It is a :class:`diskcache.Cache`, which is safe to
share between processes (the server, its background-callback jobs and the
fit workers).

Keys
----
``run:<id>``          run record (dict, see :meth:`RunStore.create_run`)
``runs:index``        list of run ids, oldest first
``epochs:<id>:<k>``   the k-th epoch record of a run (k = 0, 1, ...)
``nepochs:<id>``      how many epoch records a run has
``latest:<id>``       parameters of the most recent epoch (overwritten)
``cancel:<id>``       present when a cancel was requested
``models:<name>``     saved model spec (JSON-able dict)
``datasets:<name>``   saved dataset: ``{"meta": dict, "npz": [bytes, ...]}``
``latent:<name>``     latent trajectories of a synthetic dataset

Spike data is kept as the bytes of ``SpikeData.save_npz`` (never a pickle of a
user file); the store pickles only values built by flowdash itself.
"""
from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import diskcache

from .core.limits import InvalidValue

#: Run statuses.
QUEUED, RUNNING, DONE, CANCELLED, FAILED, INTERRUPTED = (
    "queued", "running", "done", "cancelled", "failed", "interrupted")
ACTIVE_STATUSES = (QUEUED, RUNNING)
FINAL_STATUSES = (DONE, CANCELLED, FAILED, INTERRUPTED)
RUN_KINDS = ("generation", "fit")


def open_cache(path) -> diskcache.Cache:
    """A diskcache folder that never evicts: runs, models and datasets are data,
    not a cache (diskcache's default culls the oldest items past 1 GiB)."""
    return diskcache.Cache(str(path), eviction_policy="none")


class NameTaken(ValueError):
    """A model or dataset of that name exists (saving never overwrites)."""

    field = "name"  # like InvalidValue: the setting at fault, as data


class RunActive(ValueError):
    """The run is queued or running (cancel it first)."""


def _validate_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue("name", f"{what} name must be a non-empty string, got {name!r}")
    name = name.strip()
    if len(name) > 80:
        raise InvalidValue("name", f"{what} name is too long ({len(name)} > 80 characters)")
    return name


class RunStore:
    """Runs, epoch logs, models and datasets in one diskcache folder.

    Parameters
    ----------
    path : str or Path
        The store's folder; created if missing.
    """

    def __init__(self, path):
        self.path = str(Path(path))
        Path(self.path).mkdir(parents=True, exist_ok=True)
        self.cache = open_cache(Path(self.path) / "runs")

    # -- runs -------------------------------------------------------------
    def create_run(self, kind: str, name: str, settings: dict, refs: dict | None = None) -> str:
        """Create a queued run and return its id.

        The record holds ``id, kind, name, status, settings, refs, created,
        started, finished, error, pid, progress`` (0..1), ``message``.
        """
        if kind not in RUN_KINDS:
            raise ValueError(f"kind must be one of {RUN_KINDS}, got {kind!r}")
        run_id = uuid.uuid4().hex[:12]
        record = dict(id=run_id, kind=kind, name=str(name or run_id), status=QUEUED,
                      settings=dict(settings), refs=dict(refs or {}), created=time.time(),
                      started=None, finished=None, error=None, pid=None, pid_started=None,
                      progress=0.0, message="queued")
        with self.cache.transact():
            self.cache.set(f"run:{run_id}", record)
            self.cache.set(f"nepochs:{run_id}", 0)
            index = self.cache.get("runs:index", [])
            self.cache.set("runs:index", index + [run_id])
        return run_id

    def get_run(self, run_id: str) -> dict | None:
        """The run record, or None if there is no such run."""
        if not run_id:
            return None
        return self.cache.get(f"run:{run_id}")

    def update_run(self, run_id: str, **changes) -> dict | None:
        """Change fields of an active run record atomically; return the record.

        A record with a final status is never changed (a late progress
        message cannot undo a cancel); None if there is no such run.
        """
        with self.cache.transact():
            record = self.cache.get(f"run:{run_id}")
            if record is None or record["status"] in FINAL_STATUSES:
                return record
            record.update(changes)
            self.cache.set(f"run:{run_id}", record)
        return record

    def start_run(self, run_id: str, pid: int, pid_started: float | None,
                  message: str = "starting") -> bool:
        """queued -> running for the process ``pid``, only if still queued.

        Returns False (and changes nothing) if the run was cancelled,
        interrupted or started meanwhile.
        """
        with self.cache.transact():
            record = self.cache.get(f"run:{run_id}")
            if record is None or record["status"] != QUEUED:
                return False
            record.update(status=RUNNING, started=time.time(), pid=pid, pid_started=pid_started,
                          host=socket.gethostname(), message=message)
            self.cache.set(f"run:{run_id}", record)
        return True

    def finish_run(self, run_id: str, status: str, error: str | None = None,
                   message: str | None = None) -> dict | None:
        """Set a final status unless the run already has one (first wins)."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, got {status!r}")
        with self.cache.transact():
            record = self.cache.get(f"run:{run_id}")
            if record is None or record["status"] in FINAL_STATUSES:
                return record
            record.update(status=status, finished=time.time(), error=error,
                          message=message or status)
            self.cache.set(f"run:{run_id}", record)
        return record

    def list_runs(self, kind: str | None = None) -> list[dict]:
        """All run records, newest first (optionally of one kind)."""
        out = []
        for run_id in reversed(self.cache.get("runs:index", [])):
            record = self.get_run(run_id)
            if record is not None and (kind is None or record["kind"] == kind):
                out.append(record)
        return out

    def delete_run(self, run_id: str) -> None:
        """Remove a finished run, its epoch log and its results.

        Raises RunActive for a queued or running run: its worker would keep
        writing; cancel it first.
        """
        with self.cache.transact():
            record = self.cache.get(f"run:{run_id}")
            if record is not None and record["status"] in ACTIVE_STATUSES:
                raise RunActive(f"the run “{record['name']}” is {record['status']}; "
                                "cancel it first, then delete it")
            n = self.cache.get(f"nepochs:{run_id}", 0)
            self.cache.set("runs:index",
                           [r for r in self.cache.get("runs:index", []) if r != run_id])
            for key in ([f"epochs:{run_id}:{k}" for k in range(n)]
                        + [f"run:{run_id}", f"nepochs:{run_id}", f"latest:{run_id}",
                           f"cancel:{run_id}", f"result:{run_id}"]):
                self.cache.delete(key)

    # -- epoch log ----------------------------------------------------------
    def append_epoch(self, run_id: str, record: dict) -> int:
        """Append one epoch record; return its index."""
        with self.cache.transact():
            k = self.cache.get(f"nepochs:{run_id}", 0)
            self.cache.set(f"epochs:{run_id}:{k}", record)
            self.cache.set(f"nepochs:{run_id}", k + 1)
        return k

    def n_epochs(self, run_id: str) -> int:
        return self.cache.get(f"nepochs:{run_id}", 0)

    def read_epochs(self, run_id: str, start: int = 0) -> list[dict]:
        """Epoch records ``start, start+1, ...`` that exist now."""
        n = self.n_epochs(run_id)
        out = []
        for k in range(max(0, int(start)), n):
            rec = self.cache.get(f"epochs:{run_id}:{k}")
            if rec is None:
                break
            out.append(rec)
        return out

    def read_epoch(self, run_id: str, k: int) -> dict | None:
        """The k-th epoch record (one key), or None."""
        return self.cache.get(f"epochs:{run_id}:{int(k)}")

    def set_latest(self, run_id: str, params: dict) -> None:
        self.cache.set(f"latest:{run_id}", params)

    def get_latest(self, run_id: str) -> dict | None:
        return self.cache.get(f"latest:{run_id}")

    def set_result(self, run_id: str, result: dict) -> None:
        self.cache.set(f"result:{run_id}", result)

    def get_result(self, run_id: str) -> dict | None:
        return self.cache.get(f"result:{run_id}")

    # -- cancel ---------------------------------------------------------------
    def request_cancel(self, run_id: str) -> None:
        """Ask a running job to stop at its next check (between epochs)."""
        with self.cache.transact():
            self.cache.set(f"cancel:{run_id}", time.time())
            record = self.get_run(run_id)
            if record is not None and record["status"] == QUEUED:
                self.finish_run(run_id, CANCELLED, message="cancelled before it started")

    def cancel_requested(self, run_id: str) -> bool:
        return f"cancel:{run_id}" in self.cache

    # -- crash recovery -------------------------------------------------------
    def mark_interrupted(self, is_alive=None) -> list[str]:
        """Mark queued/running runs whose process is gone as ``interrupted``.

        ``is_alive(record) -> bool`` decides; by default the recorded pid and
        its start time are checked with psutil. Returns the ids marked.
        """
        is_alive = is_alive or process_alive
        marked = []
        for record in self.list_runs():
            if record["status"] in ACTIVE_STATUSES and not is_alive(record):
                self.finish_run(record["id"], INTERRUPTED,
                                error="the server or the worker stopped while the run was active",
                                message="interrupted")
                marked.append(record["id"])
        return marked

    # -- models ---------------------------------------------------------------
    def _add(self, key: str, value, what: str, name: str, overwrite: bool) -> None:
        if overwrite:
            self.cache.set(key, value)
        elif not self.cache.add(key, value):
            raise NameTaken(f"a {what} named “{name}” exists; choose another name "
                            f"or delete the old {what} first")

    def save_model(self, name: str, spec: dict, overwrite: bool = False) -> str:
        """Save a model spec under ``name``; raises NameTaken if it exists."""
        name = _validate_name(name, "model")
        with self.cache.transact():
            self._add(f"models:{name}", dict(spec, saved=time.time()), "model", name, overwrite)
        return name

    def get_model(self, name: str) -> dict | None:
        return self.cache.get(f"models:{name}") if name else None

    def list_models(self) -> list[str]:
        return sorted(k[len("models:"):] for k in self.cache.iterkeys()
                      if isinstance(k, str) and k.startswith("models:"))

    def delete_model(self, name: str) -> None:
        self.cache.delete(f"models:{name}")

    # -- datasets -------------------------------------------------------------
    def save_dataset(self, name: str, npz_blobs: list[bytes], meta: dict,
                     latent: dict | None = None, overwrite: bool = False,
                     unless_cancelled: str | None = None) -> str | None:
        """Save a dataset: one ``SpikeData.save_npz`` blob per datasample.

        Raises NameTaken if a dataset of that name exists (unless ``overwrite``).
        With ``unless_cancelled=run_id`` nothing is saved (and None returned)
        once a cancel of that run was requested: a cancel either sees the
        dataset or prevents it.
        """
        name = _validate_name(name, "dataset")
        with self.cache.transact():
            if unless_cancelled and self.cancel_requested(unless_cancelled):
                return None
            self._add(f"datasets:{name}", {"meta": dict(meta, name=name, saved=time.time()),
                                           "npz": list(npz_blobs)},
                      "dataset", name, overwrite)
            if latent is not None:
                self.cache.set(f"latent:{name}", latent)
            else:
                self.cache.delete(f"latent:{name}")
        return name

    def get_dataset(self, name: str) -> dict | None:
        return self.cache.get(f"datasets:{name}") if name else None

    def get_latent(self, name: str) -> dict | None:
        return self.cache.get(f"latent:{name}") if name else None

    def list_datasets(self) -> list[str]:
        return sorted(k[len("datasets:"):] for k in self.cache.iterkeys()
                      if isinstance(k, str) and k.startswith("datasets:"))

    def delete_dataset(self, name: str) -> None:
        with self.cache.transact():
            self.cache.delete(f"datasets:{name}")
            self.cache.delete(f"latent:{name}")

    def has_model(self, name: str) -> bool:
        return bool(name) and f"models:{name}" in self.cache

    def has_dataset(self, name: str) -> bool:
        return bool(name) and f"datasets:{name}" in self.cache

    def close(self) -> None:
        self.cache.close()


def process_alive(record: dict) -> bool:
    """True if the process recorded in a run record still runs."""
    import psutil

    pid = record.get("pid")
    if record.get("host") not in (None, socket.gethostname()):
        return True  # a worker on another machine (Celery): its pid cannot be checked here
    if not pid:
        # queued but never picked up by a worker: alive only if very recent
        return record["status"] == QUEUED and time.time() - record["created"] < 30
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = record.get("pid_started")
        return started is None or abs(proc.create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False
