"""The run store's interface and logic, on a few primitives each backend provides.

A backend stores **bytes under text keys** and runs a function atomically
(:meth:`RunStore._transaction`); everything else is here, once, for both
backends. Values are JSON text (records) or ``.npz`` bytes (arrays, read with
``allow_pickle=False``) — never pickles — so whoever can write the store
cannot run code in the server.

Keys
----
``format``                store layout version (:data:`STORE_FORMAT`)
``run:<id>``              run record (JSON, :class:`~flowdash.records.RunRecord`)
``runs:sum:<b>``          the run index, bucket b of :data:`SUMMARY_BUCKETS` (JSON
                          object: run id -> :class:`~flowdash.records.RunSummary`; a
                          run's bucket comes from its id; written in the transactions
                          that create, change or delete its record)
``runs:sumver``           a version token per bucket (JSON list), changed with it: a
                          reader decodes only the buckets that changed since it last
                          looked (the index is rebuilt from the run records if missing)
``runs:seq``              the next run's place in creation order (JSON int)
``runs:active``           ids of the queued and running runs, oldest first (JSON list;
                          kept with every status change, rebuilt if missing)
``nepochs:<id>``          number of epoch rows of a run (JSON int)
``chunk:<id>:<c>``        epoch rows ``c·CHUNK … c·CHUNK + CHUNK − 1`` (JSON list;
                          a row is an :class:`~flowdash.records.EpochEntry`
                          without its snapshot)
``snaps:<id>``            epochs that have a snapshot (JSON list)
``snap:<id>:<k>``         the snapshot of epoch k (npz, float32: a display copy)
``recs:<id>``             epochs that have a recorded model (JSON list)
``rec:<id>:<k>``          the recorded model of epoch k (npz, kept as given: the
                          fit job writes the analysed parameters as float64)
``latest:<id>``           parameters of the most recent epoch (npz, overwritten)
``result:<id>``           a run's result arrays (JSON)
``ckpt:<id>``             a fit's checkpoint (opaque bytes of the job layer)
``cancel:<id>``           present when a cancel was requested (JSON time)
``selection:<id>``        a model selection: two fit runs analysed together (JSON,
                          :class:`~flowdash.records.SelectionRecord`); ``selections:index``
``workers:beats``         worker id -> its last heartbeat (JSON object of the job
                          layer's JSON objects)
``model:<name>``          saved model spec (JSON); ``models:index`` (JSON list)
``dataset:<name>``        ``{"meta": ..., "n_npz": k}`` (JSON); ``datasets:index``
``dsnpz:<name>:<i>``      spike data of datasample i (``SpikeData.save_npz`` bytes)
``latent:<name>``         latent paths of a synthetic dataset (npz)
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import socket
import threading
import time
import uuid
import zipfile
from collections import OrderedDict

import numpy as np

from .. import names
from ..records import (ACTIVE_STATUSES, CANCELLED, FINAL_STATUSES, QUEUED, RUNNING,
                       UNREADABLE, EpochColumns, RunSummary, new_run_record, run_summary,
                       unreadable_run)

log = logging.getLogger("flowdash.store")

#: Version of the key layout and encodings above.
STORE_FORMAT = 2
#: Epoch rows per chunk: a poll reads one or two chunks; appending rewrites one.
CHUNK = 128
#: Largest JSON value of each kind, bytes (a request cannot grow the store without bound).
MAX_RECORD_BYTES = 256 * 1024
#: A model spec (a tabulated one holds up to settings.MAX_TABULATED_VALUES float64 values).
MAX_SPEC_BYTES = 96 * 1024
MAX_RESULT_BYTES = 64 * 1024 * 1024
#: Longest worker id (the job layer's ``host:pid``), characters.
MAX_WORKER_ID = 200
#: Buckets of the run index. A status change rewrites one bucket (about 150 bytes
#: per run in it: 25 KB each with 10,000 runs); a reader re-reads only changed ones.
SUMMARY_BUCKETS = 64
#: Longest search text of :meth:`RunStore.find_runs`, characters (longer is cut).
MAX_SEARCH = 200
#: Orders of :meth:`RunStore.find_runs`: name -> (summary field, descending).
RUN_ORDERS = {"newest": ("seq", True), "oldest": ("seq", False), "name": ("name", False),
              "name_desc": ("name", True), "status": ("status", False), "kind": ("kind", False),
              "dataset": ("dataset", False)}

#: Each process keeps the decoded run index of the stores it reads (by location),
#: with the bucket versions it decoded: a poll decodes only what changed.
_INDEX_CACHE: "OrderedDict[str, dict]" = OrderedDict()
_INDEX_LOCK = threading.Lock()
_INDEX_STORES = 8


def summary_bucket(run_id: str) -> int:
    """The run index bucket of a run (ids are random hex: buckets fill evenly)."""
    return int(run_id[:4], 16) % SUMMARY_BUCKETS


def _token() -> str:
    return uuid.uuid4().hex[:12]


class StoreError(RuntimeError):
    """The store cannot be used; the message says what to do."""


class StoreFormatError(StoreError):
    """The store was written in another layout (e.g. an older flowdash's pickles)."""


class StoreDamaged(StoreError):
    """A store file is damaged (the message says how to recover)."""


class CorruptValue(ValueError):
    """One stored value cannot be decoded (it is skipped and logged)."""


class NameTaken(ValueError):
    """A model or dataset of that name exists (saving never overwrites)."""

    field = "name"  # like InvalidValue (flowdash.names): the setting at fault, as data


class RunActive(ValueError):
    """The run is queued or running (cancel it first)."""


class UnknownRun(KeyError):
    """There is no run with that id."""

    def __str__(self):
        return str(self.args[0]) if self.args else "no such run"


class EpochOrderError(ValueError):
    """An epoch was appended out of order (its predecessor is missing)."""


# ---------------------------------------------------------------------------
# encodings
# ---------------------------------------------------------------------------
class Unreadable(bytes):
    """What a backend returns for a value it refuses to decode (e.g. a pickle):
    empty bytes carrying the reason; every decoder turns it into CorruptValue."""

    def __new__(cls, reason: str):
        obj = super().__new__(cls, b"")
        obj.reason = reason
        return obj


def dumps(value, limit: int | None = None, what: str = "value") -> bytes:
    """JSON bytes of plain data; ValueError past ``limit`` bytes."""
    try:
        blob = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the {what} must be plain JSON data (dict, list, str, number, "
                        f"bool, None): {exc}") from None
    if limit is not None and len(blob) > limit:
        raise ValueError(f"the {what} is too large ({len(blob)} bytes; at most {limit})")
    return blob


def loads(blob: bytes | None, what: str = "value"):
    """The JSON value of ``blob`` (None stays None); CorruptValue if undecodable."""
    if blob is None:
        return None
    if isinstance(blob, Unreadable):
        raise CorruptValue(f"the {what} is not readable ({blob.reason})")
    try:
        return json.loads(blob)
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise CorruptValue(f"the {what} is not readable JSON ({exc})") from None


def pack_arrays(values: dict, float_dtype=None) -> bytes:
    """A dict of arrays (or nested lists, numbers, None) as npz bytes.

    None values are kept by name; everything else must be numeric. With
    ``float_dtype`` (e.g. float32) float arrays are stored in that type.
    """
    arrays, nones = {}, []
    for key, value in values.items():
        if value is None:
            nones.append(key)
            continue
        try:
            arr = np.asarray(value)
        except ValueError as exc:  # ragged lists
            raise TypeError(f"{key!r} must be a regular array of numbers: {exc}") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{key!r} must be numbers (got dtype {arr.dtype})")
        if float_dtype is not None and arr.dtype.kind == "f":
            arr = arr.astype(float_dtype)
        arrays[key] = arr
    arrays["__none__"] = np.array(nones, dtype="U64")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def unpack_arrays(blob: bytes | None, as_lists: bool = True, what: str = "value") -> dict | None:
    """Inverse of :func:`pack_arrays` (no pickle); lists by default."""
    if blob is None:
        return None
    if isinstance(blob, Unreadable):
        raise CorruptValue(f"the {what} is not readable ({blob.reason})")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            out = {k: z[k] for k in z.files if k != "__none__"}
            nones = z["__none__"].tolist() if "__none__" in z.files else []
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptValue(f"the {what} is not a readable npz archive ({exc})") from None
    if as_lists:
        out = {k: (v.item() if v.ndim == 0 else v.tolist()) for k, v in out.items()}
    out.update(dict.fromkeys(nones))
    return out


def _check_run_id(run_id) -> str:
    return names.validate_run_id(run_id)


def _check_worker_id(worker_id) -> str:
    if not isinstance(worker_id, str) or not 0 < len(worker_id) <= MAX_WORKER_ID:
        shown = repr(worker_id)[:40] + ("…" if len(repr(worker_id)) > 40 else "")
        raise ValueError(f"{shown} is not a worker id (1 to {MAX_WORKER_ID} characters of "
                         "text, e.g. host:pid)")
    return worker_id


# ---------------------------------------------------------------------------
# transactions
# ---------------------------------------------------------------------------
class Tx:
    """Reads and buffered writes of one transaction.

    Reads see the transaction's own writes; the writes are applied together
    by the backend when the function returns (nothing if it raises).
    """

    def __init__(self, read, read_many):
        self._read, self._read_many = read, read_many
        self.writes: dict[str, bytes | None] = {}

    def get(self, key: str):
        return self.writes[key] if key in self.writes else self._read(key)

    def mget(self, keys: list[str]) -> list:
        missing = [k for k in keys if k not in self.writes]
        got = dict(zip(missing, self._read_many(missing))) if missing else {}
        return [self.writes[k] if k in self.writes else got[k] for k in keys]

    def set(self, key: str, value: bytes) -> None:
        self.writes[key] = bytes(value)

    def delete(self, key: str) -> None:
        self.writes[key] = None


# ---------------------------------------------------------------------------
# the interface
# ---------------------------------------------------------------------------
class RunStore:
    """Runs, epoch logs, models and datasets, in a folder or in Redis.

    ``RunStore(location)`` opens the backend that ``location`` names (see
    :func:`flowdash.store.open_store`): a folder path (diskcache, the
    embedded default) or ``redis://host:port/db``. ``path`` is the location
    as given (a folder or a URL); pass :attr:`location` to other processes
    to share the store.
    """

    path: str

    def __new__(cls, location=None, *args, **kwargs):
        if cls is RunStore:
            from . import backend_class
            cls = backend_class(location)
        return super().__new__(cls)

    @property
    def location(self) -> str:
        """What :func:`~flowdash.store.open_store` takes to open this store in
        another process (the folder as an absolute path, or the Redis URL)."""
        return self.path

    # -- primitives (each backend) -------------------------------------------
    def _get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def _mget(self, keys: list[str]) -> list:
        raise NotImplementedError

    def _transaction(self, fn):
        """Run ``fn(tx: Tx)`` atomically and return its result.

        ``fn`` may run more than once (optimistic backends retry it), so it
        must act only through ``tx``; if it raises, nothing is written.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release this store's connections (the data stay)."""

    def secret_key(self) -> str:
        """A random key kept in the store (created once), shared by every
        server process and worker that uses this store."""
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------
    def _json(self, key: str, what: str):
        return loads(self._get(key), what)

    def _check_format(self, empty: bool) -> None:
        """Write the layout version into a new store; refuse another layout."""
        def fn(tx):
            found = loads(tx.get("format"), "store format")
            if found is None:
                tx.set("format", dumps(STORE_FORMAT))
                return STORE_FORMAT
            return found
        found = self._transaction(fn)
        if found != STORE_FORMAT:
            raise StoreFormatError(
                f"the run store at {self.path} has layout version {found!r}; this flowdash "
                f"reads version {STORE_FORMAT}. Use the flowdash version that wrote it, or "
                "start with a new store (--store / FLOWDASH_STORE).")

    # -- runs ----------------------------------------------------------------
    def create_run(self, kind: str, name: str, settings: dict, refs: dict | None = None) -> str:
        """Create a queued run and return its id (12 lowercase hex digits).

        The record is a :class:`~flowdash.records.RunRecord`; ``kind`` is a
        job kind's name (:func:`flowdash.names.validate_kind`: the job layer
        registers kinds, the store checks only their form); ``name``
        defaults to the id and is checked like every name (ValueError).
        """
        names.validate_kind(kind)
        run_id = uuid.uuid4().hex[:names.RUN_ID_LENGTH]
        name = names.validate_name(str(name or run_id), "run", names.MAX_RUN_NAME_LENGTH)
        blob = dumps(new_run_record(run_id, kind, name, settings, refs), MAX_RECORD_BYTES,
                     "run record")

        def fn(tx):
            if tx.get(f"run:{run_id}") is not None:   # a retry of a transaction that landed
                return
            active = self._active(tx)
            tx.set(f"run:{run_id}", blob)
            tx.set(f"nepochs:{run_id}", dumps(0))
            tx.set("runs:active", dumps(active + [run_id]))
            self._index_put(tx, run_id, loads(blob))
        self._transaction(fn)
        return run_id

    # -- the run index ---------------------------------------------------------
    def _scan_run_ids(self) -> list[str]:
        """Every run id with a record in the store (a scan of the keys; only
        to build the run index)."""
        raise NotImplementedError

    def _sumvers(self, tx) -> list[str]:
        """The index's bucket versions as ``tx`` sees them; the index is built
        first if it is missing (a new store, or one written before it existed)
        or unreadable."""
        try:
            vers = loads(tx.get("runs:sumver"), "run index versions")
        except CorruptValue as exc:
            log.warning("%s; rebuilding the run index from the run records", exc)
            vers = None
        if isinstance(vers, list) and len(vers) == SUMMARY_BUCKETS and \
                all(isinstance(v, str) for v in vers):
            return vers
        return self._rebuild_index(tx)

    def _rebuild_index(self, tx) -> list[str]:
        """Build the run index from the run records, in creation order: that of an
        older store's list of ids, else the records' times."""
        ids = sorted({r for r in self._scan_run_ids() if names.is_run_id(r)})
        blobs = tx.mget([f"run:{r}" for r in ids]) if ids else []
        records = [self._record(b, r) for r, b in zip(ids, blobs) if b is not None]
        try:
            old = loads(tx.get("runs:index"), "old run list")
        except CorruptValue:
            old = None
        rank = {r: k for k, r in enumerate(old)} if isinstance(old, list) else {}
        records.sort(key=lambda r: (rank.get(r["id"], len(rank)),
                                    float(r.get("created") or 0.0), r["id"]))
        buckets = [{} for _ in range(SUMMARY_BUCKETS)]
        for seq, record in enumerate(records):
            buckets[summary_bucket(record["id"])][record["id"]] = run_summary(record, seq)
        for b, bucket in enumerate(buckets):
            if bucket:
                tx.set(f"runs:sum:{b}", dumps(bucket))
            else:
                tx.delete(f"runs:sum:{b}")
        vers = [_token() for _ in range(SUMMARY_BUCKETS)]
        tx.set("runs:sumver", dumps(vers))
        tx.set("runs:seq", dumps(len(records)))
        tx.delete("runs:index")   # the list of ids of an older store: the index replaces it
        if records:
            log.info("run index built from %d run records", len(records))
        return vers

    def _index_bucket(self, tx, b: int) -> dict:
        """Bucket ``b`` as ``tx`` sees it (the index is rebuilt if it is unreadable)."""
        self._sumvers(tx)
        try:
            bucket = loads(tx.get(f"runs:sum:{b}"), f"run index bucket {b}")
            if bucket is not None and not isinstance(bucket, dict):
                raise CorruptValue(f"the run index bucket {b} is not an object")
        except CorruptValue as exc:
            log.warning("%s; rebuilding the run index from the run records", exc)
            self._rebuild_index(tx)
            bucket = loads(tx.get(f"runs:sum:{b}"))
        return dict(bucket or {})

    def _next_seq(self, tx) -> int:
        try:
            seq = loads(tx.get("runs:seq"), "run counter")
        except CorruptValue:
            seq = None
        if not isinstance(seq, int) or seq < 0:   # rebuilt with the index
            self._rebuild_index(tx)
            seq = loads(tx.get("runs:seq"))
        tx.set("runs:seq", dumps(seq + 1))
        return seq

    def _index_put(self, tx, run_id: str, record: dict | None) -> None:
        """Keep the run index in step with a run's record (None: the run is gone)."""
        b = summary_bucket(run_id)
        bucket = self._index_bucket(tx, b)
        old = bucket.get(run_id)
        if record is None:
            if old is None:
                return
            del bucket[run_id]
        else:
            seq = old.get("seq") if isinstance(old, dict) else None
            summary = run_summary(record, seq if isinstance(seq, int) else self._next_seq(tx))
            if summary == old:
                return
            bucket[run_id] = summary
        if bucket:
            tx.set(f"runs:sum:{b}", dumps(bucket))
        else:
            tx.delete(f"runs:sum:{b}")
        vers = list(self._sumvers(tx))
        vers[b] = _token()
        tx.set("runs:sumver", dumps(vers))

    def _index_ids(self, tx) -> list[str]:
        """Every run id of the index as ``tx`` sees it, oldest first."""
        self._sumvers(tx)
        entries = []
        for b in range(SUMMARY_BUCKETS):
            entries.extend(self._index_bucket(tx, b).values())
        return [s["id"] for s in sorted(entries, key=lambda s: s.get("seq", 0))]

    def _index_versions(self) -> list[str]:
        try:
            vers = self._json("runs:sumver", "run index versions")
        except CorruptValue:
            vers = None
        if isinstance(vers, list) and len(vers) == SUMMARY_BUCKETS:
            return vers
        return list(self._transaction(self._sumvers))   # built once

    def index_version(self) -> str:
        """A short text that changes whenever a run is created, deleted, renamed or
        changes status (one small read): a page compares it with what it showed."""
        blob = json.dumps(self._index_versions()).encode()
        return hashlib.blake2b(blob, digest_size=8).hexdigest()

    def _summaries(self, _rebuilt: bool = False) -> list[RunSummary]:
        """Every run's index entry, newest first: the process's cached list (do
        not modify it). Reads the version list, then only the buckets that changed."""
        vers = self._index_versions()
        key = self.location
        with _INDEX_LOCK:
            entry = _INDEX_CACHE.pop(key, None) or {
                "vers": [None] * SUMMARY_BUCKETS, "buckets": [{}] * SUMMARY_BUCKETS,
                "sorted": []}
            _INDEX_CACHE[key] = entry            # most recently used last
            while len(_INDEX_CACHE) > _INDEX_STORES:
                _INDEX_CACHE.popitem(last=False)
            stale = [b for b in range(SUMMARY_BUCKETS) if entry["vers"][b] != vers[b]]
        if stale:
            blobs = self._mget([f"runs:sum:{b}" for b in stale])
            fresh = {}
            for b, blob in zip(stale, blobs):
                try:
                    bucket = loads(blob, f"run index bucket {b}")
                    if bucket is not None and not isinstance(bucket, dict):
                        raise CorruptValue(f"the run index bucket {b} is not an object")
                except CorruptValue as exc:
                    if _rebuilt:
                        raise
                    log.warning("%s; rebuilding the run index from the run records", exc)
                    self._transaction(self._rebuild_index)
                    return self._summaries(_rebuilt=True)
                fresh[b] = [s for s in (bucket or {}).values()
                            if isinstance(s, dict) and names.is_run_id(s.get("id"))]
            with _INDEX_LOCK:
                buckets = list(entry["buckets"])
                for b, summaries in fresh.items():
                    buckets[b] = summaries
                    entry["vers"][b] = vers[b]
                entry["buckets"] = buckets
                entry["sorted"] = sorted((s for bucket in buckets for s in bucket),
                                         key=lambda s: s.get("seq", 0), reverse=True)
        return entry["sorted"]

    def run_summaries(self) -> list[RunSummary]:
        """Every run's index entry (:class:`~flowdash.records.RunSummary`), newest
        first, without reading a run record."""
        return [dict(s) for s in self._summaries()]

    def find_runs(self, search: str | None = None, kind=None, status=None,
                  dataset: str | None = None, order: str = "newest", offset: int = 0,
                  limit: int | None = None) -> tuple[int, list[RunSummary]]:
        """A page of the runs that match, from the run index (no record is read).

        ``search``: text in the name or the start of the id (case ignored);
        ``kind``, ``status``: one value or several (None: any); ``dataset``: the
        dataset's name; ``order``: a key of :data:`RUN_ORDERS` (ties newest
        first). Returns ``(how many match, their summaries from offset, at most
        limit)``.
        """
        if order not in RUN_ORDERS:
            raise ValueError(f"order must be one of {', '.join(RUN_ORDERS)}, got {order!r}")
        text = str(search or "").strip()[:MAX_SEARCH].casefold()
        kinds = None if kind is None else ({kind} if isinstance(kind, str) else set(kind))
        statuses = None if status is None else (
            {status} if isinstance(status, str) else set(status))
        found = [s for s in self._summaries()
                 if (kinds is None or s["kind"] in kinds)
                 and (statuses is None or s["status"] in statuses)
                 and (dataset is None or s.get("dataset") == dataset)
                 and (not text or text in s["name"].casefold() or s["id"].startswith(text))]
        field, descending = RUN_ORDERS[order]
        if field != "seq":
            found = sorted(found, key=lambda s: str(s.get(field) or "").casefold(),
                           reverse=descending)
        elif not descending:
            found = found[::-1]
        offset = max(0, int(offset))
        stop = None if limit is None else offset + max(0, int(limit))
        return len(found), [dict(s) for s in found[offset:stop]]

    def run_datasets(self) -> list[str]:
        """The datasets that runs used or made (sorted; from the run index)."""
        return sorted({s["dataset"] for s in self._summaries() if s.get("dataset")})

    def _active(self, tx) -> list[str]:
        """The active index as ``tx`` sees it; rebuilt from the run records if
        it is missing (a store written before it existed) or unreadable."""
        try:
            active = loads(tx.get("runs:active"), "active run index")
        except CorruptValue as exc:
            log.warning("%s; rebuilding it from the run records", exc)
            active = None
        if isinstance(active, list):
            return active
        ids = self._index_ids(tx)
        blobs = tx.mget([f"run:{r}" for r in ids]) if ids else []
        active = [r for r, b in zip(ids, blobs)
                  if b is not None and self._record(b, r)["status"] in ACTIVE_STATUSES]
        tx.set("runs:active", dumps(active))
        return active

    def _keep_active(self, tx, run_id: str, was_active: bool, record: dict) -> None:
        """Keep ``runs:active`` in step with a run whose status may have changed."""
        now_active = record["status"] in ACTIVE_STATUSES
        if now_active == was_active:
            return
        active = [r for r in self._active(tx) if r != run_id]
        tx.set("runs:active", dumps(active + [run_id] if now_active else active))

    def active_runs(self) -> list[str]:
        """Ids of the queued and running runs, oldest first (one read: workers poll it).

        Kept by every status change (:meth:`create_run`, :meth:`start_run`,
        :meth:`finish_run`, :meth:`request_cancel`, :meth:`delete_run`).
        """
        try:
            active = self._json("runs:active", "active run index")
        except CorruptValue:
            active = None
        if isinstance(active, list):
            return [r for r in active if names.is_run_id(r)]
        return list(self._transaction(self._active))  # rebuilt once

    def _record(self, blob, run_id):
        """Decode a run record; an undecodable one becomes an ``unreadable`` record."""
        try:
            record = loads(blob, f"record of run {run_id}")
            if not isinstance(record, dict) or record.get("id") != run_id or \
                    "status" not in record:
                raise CorruptValue(f"the record of run {run_id} is not a run record")
            return record
        except CorruptValue as exc:
            log.warning("run %s: unreadable record skipped (%s)", run_id, exc)
            return unreadable_run(run_id, str(exc))

    def get_run(self, run_id: str) -> dict | None:
        """The run record, or None (also for a malformed id: the store is not read).

        An undecodable record comes back as an ``unreadable`` record.
        """
        if not names.is_run_id(run_id):
            return None
        blob = self._get(f"run:{run_id}")
        return None if blob is None else self._record(blob, run_id)

    def _change_run(self, run_id: str, change):
        """Apply ``change(record) -> bool`` atomically; returns (changed, record)."""
        if not names.is_run_id(run_id):
            return False, None
        key = f"run:{run_id}"

        def fn(tx):
            blob = tx.get(key)
            if blob is None:
                return False, None
            record = self._record(blob, run_id)
            was_active = record["status"] in ACTIVE_STATUSES
            before = run_summary(record, 0)
            if record["status"] == UNREADABLE or not change(record):
                return False, record
            tx.set(key, dumps(record, MAX_RECORD_BYTES, "run record"))
            self._keep_active(tx, run_id, was_active, record)
            if run_summary(record, 0) != before:   # progress alone leaves the index alone
                self._index_put(tx, run_id, record)
            return True, record
        return self._transaction(fn)

    def update_run(self, run_id: str, **changes) -> dict | None:
        """Change fields of an active run record atomically; return the record.

        A record with a final status is never changed (a late progress
        message cannot undo a cancel); None if there is no such run.
        """
        def change(record):
            if record["status"] in FINAL_STATUSES:
                return False
            record.update(changes)
            return True
        return self._change_run(run_id, change)[1]

    def start_run(self, run_id: str, pid: int, pid_started: float | None,
                  message: str = "starting") -> bool:
        """queued -> running for the process ``pid``, only if still queued.

        Returns False (and changes nothing) if the run was cancelled,
        interrupted or started meanwhile.
        """
        def change(record):
            if record["status"] != QUEUED:
                return False
            record.update(status=RUNNING, started=time.time(), pid=pid,
                          pid_started=pid_started, host=socket.gethostname(), message=message)
            return True
        return self._change_run(run_id, change)[0]

    def finish_run(self, run_id: str, status: str, error: str | None = None,
                   message: str | None = None) -> dict | None:
        """Set a final status unless the run already has one (first wins)."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, got {status!r}")

        def change(record):
            if record["status"] in FINAL_STATUSES:
                return False
            record.update(status=status, finished=time.time(), error=error,
                          message=message or status)
            return True
        return self._change_run(run_id, change)[1]

    def requeue_run(self, run_id: str, from_statuses: tuple, settings: dict,
                    note: dict) -> dict | None:
        """A final run back to queued, to do more of the same work (the job
        layer's 'continue'; only :mod:`flowdash.jobs.lifecycle` calls it).

        Only if its status is one of ``from_statuses`` (all final): the
        ``settings`` are updated, ``note`` is appended to the record's
        ``continued`` list, the end, error and cancel request are cleared.
        Returns the new record, or None (nothing changed) if the run is
        missing or not in one of those statuses.
        """
        if not set(from_statuses) <= set(FINAL_STATUSES):
            raise ValueError(f"only final statuses can be left for queued, got {from_statuses}")
        _check_run_id(run_id)
        key = f"run:{run_id}"

        def fn(tx):
            blob = tx.get(key)
            if blob is None:
                return None
            record = self._record(blob, run_id)
            if record["status"] not in from_statuses:
                return None
            record.update(status=QUEUED, finished=None, error=None, message="queued",
                          settings=dict(record["settings"], **settings),
                          continued=list(record.get("continued") or []) + [note])
            tx.set(key, dumps(record, MAX_RECORD_BYTES, "run record"))
            tx.delete(f"cancel:{run_id}")
            self._keep_active(tx, run_id, False, record)
            self._index_put(tx, run_id, record)
            return record
        return self._transaction(fn)

    def run_ids(self) -> list[str]:
        """Every run id, newest first (from the run index)."""
        return [s["id"] for s in self._summaries()]

    def get_runs(self, run_ids: list[str]) -> list[dict]:
        """The records of ``run_ids`` in that order (one read); missing runs are
        left out, undecodable ones come back as ``unreadable`` records."""
        ids = [r for r in run_ids if names.is_run_id(r)]
        blobs = self._mget([f"run:{r}" for r in ids]) if ids else []
        return [self._record(b, r) for r, b in zip(ids, blobs) if b is not None]

    def list_runs(self, kind: str | None = None) -> list[dict]:
        """All run records, newest first (optionally of one kind).

        A record that cannot be decoded is logged and listed as an
        ``unreadable`` run (kind ``"unreadable"``; only without ``kind``).
        Reads every record listed: pages use :meth:`find_runs` instead.
        """
        ids = [s["id"] for s in self._summaries() if kind is None or s["kind"] == kind]
        return [r for r in self.get_runs(ids) if kind is None or r["kind"] == kind]

    def delete_run(self, run_id: str) -> None:
        """Remove a run that is not active, its epoch log and its results.

        Raises RunActive for a queued or running run: its worker would keep
        writing; cancel it first. Unreadable runs can be deleted.
        """
        if not names.is_run_id(run_id):
            return

        def fn(tx):
            blob = tx.get(f"run:{run_id}")
            record = None if blob is None else self._record(blob, run_id)
            if record is not None and record["status"] in ACTIVE_STATUSES:
                raise RunActive(f"the run “{record['name']}” is {record['status']}; "
                                "cancel it first, then delete it")
            n = self._count(tx.get(f"nepochs:{run_id}"))
            snaps, recs = [], []
            for name, into in (("snaps", snaps), ("recs", recs)):
                try:
                    into.extend(loads(tx.get(f"{name}:{run_id}")) or [])
                except CorruptValue:
                    pass
            self._index_put(tx, run_id, None)
            active = self._active(tx)
            if run_id in active:  # an unreadable record of a run that was active
                tx.set("runs:active", dumps([r for r in active if r != run_id]))
            for key in ([f"chunk:{run_id}:{c}" for c in range(math.ceil(n / CHUNK))]
                        + [f"snap:{run_id}:{int(k)}" for k in snaps]
                        + [f"rec:{run_id}:{int(k)}" for k in recs]
                        + [f"{part}:{run_id}" for part in ("run", "nepochs", "snaps", "recs",
                                                           "latest", "result", "ckpt",
                                                           "cancel")]):
                tx.delete(key)
        self._transaction(fn)

    # -- epoch log -----------------------------------------------------------
    @staticmethod
    def _count(blob) -> int:
        try:
            n = loads(blob)
        except CorruptValue:
            return 0
        return n if isinstance(n, int) and n >= 0 else 0

    def append_epoch(self, run_id: str, record: dict, expected: int | None = None) -> int:
        """Append one epoch record at index ``expected``; return the index.

        ``expected`` defaults to ``record["epoch"]`` (epoch record k is epoch
        k), or the end of the log for a record without an epoch. Appending
        index k to a log of n records:

        * k == n: stored (with its ``snapshot``, if any, as npz of float32:
          snapshots are display copies with 7 significant digits, which
          keeps 2,000 snapshots of a 1793-node model with p0 and rates near
          45 MB; the result, the latest parameters and the checkpoint keep
          float64);
        * k < n: the epoch is already there (a retried task): nothing is
          written, k is returned — never a second copy;
        * k > n: :class:`EpochOrderError` (an epoch is missing).

        A record may also carry ``model``: the parameters the analysis of
        the run reads (:meth:`read_models`), kept with the dtypes given (the
        fit job writes float64 densities and D, float32 rates).

        Raises :class:`UnknownRun` if the run does not exist (e.g. deleted).
        """
        _check_run_id(run_id)
        if expected is None and isinstance(record.get("epoch"), (int, np.integer)):
            expected = int(record["epoch"])
        row = {k: v for k, v in record.items() if k not in ("snapshot", "model")}
        line = dumps(row, MAX_RECORD_BYTES, "epoch record") + b"\n"  # JSON has no raw newline
        snapshot = record.get("snapshot")
        snap_blob = pack_arrays(snapshot, np.float32) if snapshot else None
        model = record.get("model")
        model_blob = pack_arrays(model) if model else None

        def fn(tx):
            count = tx.get(f"nepochs:{run_id}")   # created with the run, deleted with it
            if count is None:
                raise UnknownRun(f"there is no run {run_id}")
            n = self._count(count)
            k = n if expected is None else int(expected)
            if k < n:
                return k
            if k > n:
                raise EpochOrderError(f"run {run_id}: epoch record {k} cannot follow record "
                                      f"{n - 1}; the log has {n} records")
            key = f"chunk:{run_id}:{k // CHUNK}"
            # a chunk is JSON lines: appending never decodes the rows before it
            tx.set(key, ((tx.get(key) or b"") if k % CHUNK else b"") + line)
            tx.set(f"nepochs:{run_id}", dumps(k + 1))
            for name, blob in (("snap", snap_blob), ("rec", model_blob)):
                if blob is not None:
                    listed = loads(tx.get(f"{name}s:{run_id}")) or []
                    tx.set(f"{name}:{run_id}:{k}", blob)
                    tx.set(f"{name}s:{run_id}", dumps(listed + [k]))
            return k
        return self._transaction(fn)

    def n_epochs(self, run_id: str) -> int:
        """How many epoch records the run has (0 for an unknown run)."""
        if not names.is_run_id(run_id):
            return 0
        return self._count(self._get(f"nepochs:{run_id}"))

    def n_epochs_many(self, run_ids: list[str]) -> dict[str, int]:
        """run id -> its number of epoch records, for many runs in one read."""
        ids = [r for r in run_ids if names.is_run_id(r)]
        blobs = self._mget([f"nepochs:{r}" for r in ids]) if ids else []
        return {r: self._count(b) for r, b in zip(ids, blobs)}

    def _rows(self, run_id: str, start: int, stop: int) -> list[dict]:
        """Rows ``start … stop−1`` (one read of the chunks that hold them).

        A chunk that cannot be decoded ends the rows there (logged).
        """
        if stop <= start:
            return []
        first, last = start // CHUNK, (stop - 1) // CHUNK
        blobs = self._mget([f"chunk:{run_id}:{c}" for c in range(first, last + 1)])
        rows = []
        for c, blob in zip(range(first, last + 1), blobs):
            try:
                if blob is None or isinstance(blob, Unreadable):
                    chunk = loads(blob, f"epoch chunk {c} of run {run_id}")
                else:
                    chunk = loads(b"[" + blob.rstrip(b"\n").replace(b"\n", b",") + b"]",
                                  f"epoch chunk {c} of run {run_id}")
            except CorruptValue as exc:
                log.warning("%s; the epochs after it are not shown", exc)
                break
            if not isinstance(chunk, list):
                break
            rows.extend(chunk)
            if len(chunk) < CHUNK:
                break
        offset = start - first * CHUNK
        return rows[offset:offset + stop - start]

    def snapshot_epochs(self, run_id: str) -> list[int]:
        """Indices of the epoch records that have a snapshot, in order."""
        if not names.is_run_id(run_id):
            return []
        try:
            return [int(k) for k in self._json(f"snaps:{run_id}", "snapshot list") or []]
        except CorruptValue as exc:
            log.warning("run %s: %s", run_id, exc)
            return []

    def run_bytes(self, run_id: str) -> dict:
        """Bytes of a run's values by part: ``epochs`` (the NLL log), ``snapshots``
        (display copies), ``models`` (recorded models), ``other`` (record, latest,
        result, checkpoint). The backend's own overhead (SQLite pages, Redis
        keys) comes on top."""
        if not names.is_run_id(run_id):
            return {}
        n = self.n_epochs(run_id)
        parts = {"epochs": [f"chunk:{run_id}:{c}" for c in range(math.ceil(n / CHUNK))],
                 "snapshots": [f"snap:{run_id}:{k}" for k in self.snapshot_epochs(run_id)],
                 "models": [f"rec:{run_id}:{k}" for k in self.model_epochs(run_id)],
                 "other": [f"{part}:{run_id}" for part in ("run", "nepochs", "snaps", "recs",
                                                          "latest", "result", "ckpt")]}
        return {name: sum(len(b) for b in self._mget(keys) if b is not None) if keys else 0
                for name, keys in parts.items()}

    def model_epochs(self, run_id: str) -> list[int]:
        """Indices of the epoch records that have a recorded model, in order."""
        if not names.is_run_id(run_id):
            return []
        try:
            return [int(k) for k in self._json(f"recs:{run_id}", "recorded-model list") or []]
        except CorruptValue as exc:
            log.warning("run %s: %s", run_id, exc)
            return []

    def read_models(self, run_id: str, epochs) -> list[dict | None]:
        """The recorded models of the epochs ``epochs`` (one read; arrays as
        numpy arrays with their stored dtypes; None for an epoch without one
        or an unreadable one, logged)."""
        if not names.is_run_id(run_id):
            return [None] * len(epochs)
        blobs = self._mget([f"rec:{run_id}:{int(k)}" for k in epochs]) if len(epochs) else []
        out = []
        for k, blob in zip(epochs, blobs):
            try:
                out.append(unpack_arrays(blob, False, f"recorded model {k} of run {run_id}"))
            except CorruptValue as exc:
                log.warning("%s", exc)
                out.append(None)
        return out

    def read_snapshot(self, run_id: str, k: int, as_lists: bool = True) -> dict | None:
        """The snapshot of epoch record k (:class:`~flowdash.records.Snapshot`), or None."""
        if not names.is_run_id(run_id):
            return None
        try:
            return unpack_arrays(self._get(f"snap:{run_id}:{int(k)}"), as_lists,
                                 f"snapshot {k} of run {run_id}")
        except CorruptValue as exc:
            log.warning("%s", exc)
            return None

    def _with_snapshots(self, run_id: str, rows: list[dict], start: int) -> list[dict]:
        stop = start + len(rows)
        ks = [k for k in self.snapshot_epochs(run_id) if start <= k < stop]
        if ks:
            blobs = self._mget([f"snap:{run_id}:{k}" for k in ks])
            for k, blob in zip(ks, blobs):
                try:
                    snap = unpack_arrays(blob, True, f"snapshot {k} of run {run_id}")
                except CorruptValue as exc:
                    log.warning("%s", exc)
                    snap = None
                if snap is not None:
                    rows[k - start] = dict(rows[k - start], snapshot=snap)
        return rows

    def read_epochs(self, run_id: str, start: int = 0, snapshots: bool = True) -> list[dict]:
        """Epoch records ``start, start+1, ...`` that exist now, with their
        snapshots (``snapshots=False`` leaves them out: a cheap poll)."""
        if not names.is_run_id(run_id):
            return []
        start = max(0, int(start))
        rows = self._rows(run_id, start, self.n_epochs(run_id))
        return self._with_snapshots(run_id, rows, start) if snapshots else rows

    def read_epoch(self, run_id: str, k: int) -> dict | None:
        """The k-th epoch record (with its snapshot), or None."""
        k = int(k)
        if not names.is_run_id(run_id) or k < 0:
            return None
        rows = self._rows(run_id, k, min(k + 1, self.n_epochs(run_id)))
        return self._with_snapshots(run_id, rows, k)[0] if rows else None

    def read_columns(self, run_id: str, start: int = 0,
                     max_points: int | None = None) -> EpochColumns:
        """Epochs from ``start`` as columns (:class:`~flowdash.records.EpochColumns`).

        Reads only the chunks that hold them (a poll since its last epoch
        reads one or two values). ``max_points`` decimates for display: the
        first and last epochs, the minima of the NLLs and evenly spaced epochs.
        """
        start = max(0, int(start))
        n = self.n_epochs(run_id)
        rows = self._rows(run_id, start, n) if names.is_run_id(run_id) else []
        if max_points is not None and len(rows) > max(int(max_points), 2):
            rows = _decimate(rows, int(max_points))
        return _columns(rows, start, n)

    def set_latest(self, run_id: str, params: dict) -> None:
        """The parameters of the most recent epoch (npz; overwritten each epoch)."""
        _check_run_id(run_id)
        blob = pack_arrays(params)
        self._transaction(lambda tx: tx.set(f"latest:{run_id}", blob))

    def get_latest(self, run_id: str) -> dict | None:
        if not names.is_run_id(run_id):
            return None
        try:
            return unpack_arrays(self._get(f"latest:{run_id}"), True, f"latest of {run_id}")
        except CorruptValue as exc:
            log.warning("%s", exc)
            return None

    def set_result(self, run_id: str, result: dict) -> None:
        """A run's result (JSON data: arrays as lists)."""
        _check_run_id(run_id)
        blob = dumps(result, MAX_RESULT_BYTES, "run result")
        self._transaction(lambda tx: tx.set(f"result:{run_id}", blob))

    def get_result(self, run_id: str) -> dict | None:
        if not names.is_run_id(run_id):
            return None
        try:
            return self._json(f"result:{run_id}", f"result of run {run_id}")
        except CorruptValue as exc:
            log.warning("%s", exc)
            return None

    def set_checkpoint(self, run_id: str, blob: bytes) -> None:
        """Keep a fit's checkpoint (opaque bytes of the job layer; overwritten)."""
        _check_run_id(run_id)
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"a checkpoint is bytes, got {type(blob).__name__}")
        blob = bytes(blob)

        def fn(tx):
            if tx.get(f"run:{run_id}") is None:
                raise UnknownRun(f"there is no run {run_id}")
            tx.set(f"ckpt:{run_id}", blob)
        self._transaction(fn)

    def get_checkpoint(self, run_id: str) -> bytes | None:
        """The last checkpoint of a run, or None."""
        blob = self._get(f"ckpt:{run_id}") if names.is_run_id(run_id) else None
        if isinstance(blob, Unreadable):
            log.warning("run %s: checkpoint not readable (%s)", run_id, blob.reason)
            return None
        return blob

    # -- cancel ----------------------------------------------------------------
    def request_cancel(self, run_id: str) -> bool:
        """Ask a run to stop at its next check; a queued run is cancelled at once.

        Raises ValueError for a malformed id (nothing is stored); returns False
        (nothing stored) if there is no such run.
        """
        _check_run_id(run_id)

        def fn(tx):
            blob = tx.get(f"run:{run_id}")
            if blob is None:
                return False
            tx.set(f"cancel:{run_id}", dumps(time.time()))
            record = self._record(blob, run_id)
            if record["status"] == QUEUED:
                record.update(status=CANCELLED, finished=time.time(), error=None,
                              message="cancelled before it started")
                tx.set(f"run:{run_id}", dumps(record))
                self._keep_active(tx, run_id, True, record)
                self._index_put(tx, run_id, record)
            return True
        return self._transaction(fn)

    def cancel_requested(self, run_id: str) -> bool:
        return names.is_run_id(run_id) and self._get(f"cancel:{run_id}") is not None

    # -- worker heartbeats ------------------------------------------------------
    def _beats(self, tx) -> dict:
        try:
            beats = loads(tx.get("workers:beats"), "worker heartbeats")
        except CorruptValue as exc:
            log.warning("%s; starting a new table", exc)
            beats = None
        return beats if isinstance(beats, dict) else {}

    def beat(self, worker_id: str, info: dict) -> None:
        """Record a worker's heartbeat: ``info`` is a JSON object (the job layer
        puts the time, host, pid and current run there); replaces the last one."""
        worker_id = _check_worker_id(worker_id)
        if not isinstance(info, dict):
            raise TypeError(f"a heartbeat is a dict, got {type(info).__name__}")
        info = loads(dumps(info, MAX_RECORD_BYTES, "heartbeat"))  # plain JSON, bounded

        def fn(tx):
            beats = self._beats(tx)
            beats[worker_id] = info
            tx.set("workers:beats", dumps(beats))
        self._transaction(fn)

    def heartbeats(self) -> dict:
        """worker id -> its last heartbeat ``info`` (one read)."""
        try:
            beats = self._json("workers:beats", "worker heartbeats")
        except CorruptValue as exc:
            log.warning("%s", exc)
            return {}
        return beats if isinstance(beats, dict) else {}

    def forget_worker(self, worker_id: str) -> None:
        """Drop a worker's heartbeat (it stopped, or it was found dead)."""
        if not isinstance(worker_id, str) or len(worker_id) > MAX_WORKER_ID:
            return

        def fn(tx):
            beats = self._beats(tx)
            if beats.pop(worker_id, None) is not None:
                tx.set("workers:beats", dumps(beats))
        self._transaction(fn)

    # -- model selections ----------------------------------------------------
    def create_selection(self, name: str, settings: dict, fits: list[str] | None = None,
                         refs: dict | None = None) -> str:
        """Record a model selection: two fit runs analysed together; returns its id.

        ``fits`` are the two run ids (half 1, half 2), or None until they are
        queued (the job layer creates the selection first, names it in both
        fits' refs, then sets them with :meth:`set_selection_fits`).
        ``settings`` say how the halves were made; ``name`` is checked like a
        run name.
        """
        fits = [] if fits is None else self._pair(fits)
        sel_id = uuid.uuid4().hex[:names.RUN_ID_LENGTH]
        name = names.validate_name(str(name or sel_id), "selection", names.MAX_RUN_NAME_LENGTH)
        blob = dumps({"id": sel_id, "name": name, "created": time.time(), "fits": fits,
                      "settings": dict(settings), "refs": dict(refs or {})},
                     MAX_RECORD_BYTES, "selection record")

        def fn(tx):
            index = loads(tx.get("selections:index"), "selection index") or []
            tx.set(f"selection:{sel_id}", blob)
            tx.set("selections:index", dumps(index + [sel_id]))
        self._transaction(fn)
        return sel_id

    @staticmethod
    def _pair(fits) -> list[str]:
        if not isinstance(fits, (list, tuple)) or len(fits) != 2:
            raise ValueError(f"a selection pairs two fit runs, got {fits!r}")
        return [_check_run_id(r) for r in fits]

    def set_selection_fits(self, sel_id: str, fits: list[str]) -> dict | None:
        """Set the two fit runs of a selection; returns the record (None: no such selection)."""
        fits = self._pair(fits)
        _check_run_id(sel_id)

        def fn(tx):
            record = loads(tx.get(f"selection:{sel_id}"), f"selection {sel_id}")
            if not isinstance(record, dict):
                return None
            record["fits"] = fits
            tx.set(f"selection:{sel_id}", dumps(record, MAX_RECORD_BYTES, "selection record"))
            return record
        return self._transaction(fn)

    def get_selection(self, sel_id: str) -> dict | None:
        """A selection record (:class:`~flowdash.records.SelectionRecord`), or None."""
        if not names.is_run_id(sel_id):
            return None
        try:
            return self._json(f"selection:{sel_id}", f"selection {sel_id}")
        except CorruptValue as exc:
            log.warning("%s", exc)
            return None

    def list_selections(self) -> list[dict]:
        """Every selection record, newest first (one read)."""
        try:
            ids = [i for i in self._json("selections:index", "selection index") or []
                   if names.is_run_id(i)]
        except CorruptValue as exc:
            log.warning("%s", exc)
            return []
        out = []
        for sel_id, blob in zip(ids, self._mget([f"selection:{i}" for i in ids]) if ids else []):
            try:
                record = loads(blob, f"selection {sel_id}")
            except CorruptValue as exc:
                log.warning("%s", exc)
                continue
            if isinstance(record, dict):
                out.append(record)
        return out[::-1]

    def delete_selection(self, sel_id: str) -> None:
        """Forget a selection (its fit runs stay; delete them as runs)."""
        if not names.is_run_id(sel_id):
            return

        def fn(tx):
            index = loads(tx.get("selections:index"), "selection index") or []
            tx.set("selections:index", dumps([i for i in index if i != sel_id]))
            tx.delete(f"selection:{sel_id}")
        self._transaction(fn)

    # -- models and datasets ---------------------------------------------------
    def _save_named(self, kind: str, name: str, blobs: dict, overwrite: bool, unless=None):
        """Write ``blobs`` for the ``kind`` named ``name`` and index it."""
        def fn(tx):
            if unless is not None and unless(tx):
                return None
            main = f"{kind}:{name}"
            old = tx.get(main)
            if old is not None and not overwrite:
                raise NameTaken(f"a {kind} named “{name}” exists; choose another name "
                                f"or delete the old {kind} first")
            if old is not None:
                self._delete_named(tx, kind, name)
            for key, blob in blobs.items():
                tx.set(key, blob) if blob is not None else tx.delete(key)
            index = loads(tx.get(f"{kind}s:index"), f"{kind} index") or []
            if name not in index:
                tx.set(f"{kind}s:index", dumps(sorted(index + [name])))
            return name
        return self._transaction(fn)

    def _delete_named(self, tx, kind: str, name: str) -> None:
        main = f"{kind}:{name}"
        if kind == "dataset":
            try:
                n = int((loads(tx.get(main)) or {}).get("n_npz", 0))
            except (CorruptValue, AttributeError, TypeError, ValueError):
                n = 0
            for i in range(n):
                tx.delete(f"dsnpz:{name}:{i}")
            tx.delete(f"latent:{name}")
        tx.delete(main)

    def _remove_named(self, kind: str, name: str) -> None:
        try:
            name = names.validate_name(name, kind)
        except ValueError:
            return

        def fn(tx):
            self._delete_named(tx, kind, name)
            index = loads(tx.get(f"{kind}s:index"), f"{kind} index") or []
            if name in index:
                tx.set(f"{kind}s:index", dumps([n for n in index if n != name]))
        self._transaction(fn)

    def _names(self, kind: str) -> list[str]:
        try:
            return list(self._json(f"{kind}s:index", f"{kind} index") or [])
        except CorruptValue as exc:
            log.warning("%s", exc)
            return []

    @staticmethod
    def _valid(name, kind) -> str | None:
        try:
            return names.validate_name(name, kind)
        except ValueError:
            return None

    def save_model(self, name: str, spec: dict, overwrite: bool = False) -> str:
        """Save a model spec under ``name``; raises NameTaken if it exists.

        The spec must pass the Model form's caps
        (:func:`flowdash.settings.check_model_spec`; SettingsError otherwise).
        """
        from ..settings import validate_model_spec

        name = names.validate_name(name, "model")
        validate_model_spec(spec)
        blob = dumps(dict(spec, saved=time.time()), MAX_SPEC_BYTES, "model spec")
        return self._save_named("model", name, {f"model:{name}": blob}, overwrite)

    def get_model(self, name: str) -> dict | None:
        name = self._valid(name, "model")
        if name is None:
            return None
        try:
            return self._json(f"model:{name}", f"model {name}")
        except CorruptValue as exc:
            log.warning("%s", exc)
            return None

    def list_models(self) -> list[str]:
        return self._names("model")

    def delete_model(self, name: str) -> None:
        self._remove_named("model", name)

    def has_model(self, name: str) -> bool:
        name = self._valid(name, "model")
        return name is not None and self._get(f"model:{name}") is not None

    def save_dataset(self, name: str, npz_blobs: list[bytes], meta: dict,
                     latent: dict | None = None, overwrite: bool = False,
                     unless_cancelled: str | None = None) -> str | None:
        """Save a dataset: one ``SpikeData.save_npz`` blob per datasample.

        Raises NameTaken if a dataset of that name exists (unless ``overwrite``).
        With ``unless_cancelled=run_id`` nothing is saved (and None returned)
        once a cancel of that run was requested: a cancel either sees the
        dataset or prevents it. ``latent``: :class:`~flowdash.records.Latent`.
        """
        name = names.validate_name(name, "dataset")
        blobs = [bytes(b) for b in npz_blobs]
        meta = dict(meta, name=name, saved=time.time())
        entry = dumps({"meta": meta, "n_npz": len(blobs)}, MAX_RECORD_BYTES, "dataset meta")
        writes = {f"dataset:{name}": entry,
                  **{f"dsnpz:{name}:{i}": b for i, b in enumerate(blobs)},
                  f"latent:{name}": None if latent is None else _pack_latent(latent)}
        unless = None
        if unless_cancelled:
            _check_run_id(unless_cancelled)

            def unless(tx):
                return tx.get(f"cancel:{unless_cancelled}") is not None
        return self._save_named("dataset", name, writes, overwrite, unless)

    def get_dataset_meta(self, name: str) -> dict | None:
        """A dataset's meta (:class:`~flowdash.records.DatasetMeta`) without its spike data."""
        name = self._valid(name, "dataset")
        if name is None:
            return None
        try:
            entry = self._json(f"dataset:{name}", f"dataset {name}")
        except CorruptValue as exc:
            log.warning("%s", exc)
            return None
        return None if entry is None else entry.get("meta")

    def get_dataset(self, name: str) -> dict | None:
        """``{"meta": DatasetMeta, "npz": [bytes per datasample]}``, or None."""
        name = self._valid(name, "dataset")
        if name is None:
            return None
        try:
            entry = self._json(f"dataset:{name}", f"dataset {name}")
        except CorruptValue as exc:
            log.warning("%s", exc)
            return None
        if entry is None:
            return None
        blobs = self._mget([f"dsnpz:{name}:{i}" for i in range(int(entry.get("n_npz", 0)))])
        bad = [i for i, b in enumerate(blobs) if b is None or isinstance(b, Unreadable)]
        if bad:
            log.warning("dataset %s: datasample(s) %s missing or not readable", name, bad)
        return {"meta": entry.get("meta") or {},
                "npz": [b for i, b in enumerate(blobs) if i not in bad]}

    def get_latent(self, name: str) -> dict | None:
        name = self._valid(name, "dataset")
        if name is None:
            return None
        try:
            return _unpack_latent(self._get(f"latent:{name}"))
        except CorruptValue as exc:
            log.warning("%s", exc)
            return None

    def list_datasets(self) -> list[str]:
        return self._names("dataset")

    def delete_dataset(self, name: str) -> None:
        self._remove_named("dataset", name)

    def has_dataset(self, name: str) -> bool:
        name = self._valid(name, "dataset")
        return name is not None and self._get(f"dataset:{name}") is not None


# ---------------------------------------------------------------------------
def _pack_latent(latent: dict) -> bytes:
    t, x = latent.get("t") or [], latent.get("x") or []
    arrays = {f"t_{i}": np.asarray(v, float) for i, v in enumerate(t)}
    arrays.update({f"x_{i}": np.asarray(v, float) for i, v in enumerate(x)})
    arrays["n"] = np.array([len(t), len(x)])
    return pack_arrays(arrays)


def _unpack_latent(blob) -> dict | None:
    arrays = unpack_arrays(blob, as_lists=False, what="latent paths")
    if arrays is None:
        return None
    nt, nx = (int(v) for v in arrays["n"])
    return {"t": [arrays[f"t_{i}"].tolist() for i in range(nt)],
            "x": [arrays[f"x_{i}"].tolist() for i in range(nx)]}


def _matrix(values: list) -> np.ndarray:
    """(n, K) floats from per-row lists (None -> NaN; short or missing rows padded)."""
    try:  # the usual case: every row has K values (numpy turns None into NaN)
        out = np.array(values, dtype=float)
        if out.ndim == 2 or not values:
            return out.reshape(len(values), -1)
    except (ValueError, TypeError):
        pass
    width = max((len(v) for v in values if v is not None), default=0)
    out = np.full((len(values), width), np.nan)
    for i, v in enumerate(values):
        if v is not None:
            out[i, :len(v)] = [np.nan if x is None else x for x in v]
    return out


def _nll_matrix(rows, key):
    """(n, K) floats with NaN for None; None when no row has the key's values."""
    values = [r.get(key) for r in rows]
    if all(v is None for v in values):
        return None
    return _matrix(values)


def _columns(rows: list[dict], start: int, n: int) -> EpochColumns:
    train = _nll_matrix(rows, "nll_train")
    return EpochColumns(
        start=start, n_epochs=n,
        epoch=np.array([r.get("epoch", start + i) for i, r in enumerate(rows)], dtype=np.int64),
        nll_train=np.zeros((len(rows), 0)) if train is None else train,
        nll_val=_nll_matrix(rows, "nll_val"),
        elapsed=np.array([r.get("elapsed", np.nan) for r in rows], float),
        time=np.array([r.get("time", np.nan) for r in rows], float),
        D=_matrix([r.get("D") or [] for r in rows]))


def _decimate(rows: list[dict], max_points: int) -> list[dict]:
    """At most about ``max_points`` rows: evenly spaced ones plus the first,
    the last and the minima of the summed training and validation NLLs."""
    n = len(rows)
    keep = set(np.linspace(0, n - 1, max(max_points - 4, 2)).round().astype(int).tolist())
    for key in ("nll_train", "nll_val"):
        m = _nll_matrix(rows, key)
        if m is not None and m.size:
            total = m.sum(axis=1)
            if np.isfinite(total).any():
                keep.add(int(np.nanargmin(np.where(np.isfinite(total), total, np.nan))))
    return [rows[i] for i in sorted(keep)]

