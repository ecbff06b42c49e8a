"""The persistent run store: one interface, two backends.

``open_store(location)`` (or ``RunStore(location)``) opens

* a **folder** path: the embedded default (diskcache on SQLite, one machine;
  :mod:`flowdash.store.disk`), or
* a **Redis URL** ``redis://host:port/db`` (``rediss://`` for TLS): shared by
  web servers and workers on several machines
  (:mod:`flowdash.store.redis_backend`).

``FLOWDASH_STORE`` may hold either. Both backends keep the same keys and the
same plain values — JSON text or npz bytes, never pickles — and give the same
atomicity; :mod:`flowdash.store.base` documents the keys and holds all the
logic. The records are defined in :mod:`flowdash.records`.
"""
from __future__ import annotations

import os

from ..records import (ACTIVE_STATUSES, CANCELLED, DONE, FAILED, FINAL_STATUSES, INTERRUPTED,
                       QUEUED, RUN_KINDS, RUNNING, UNREADABLE)
from .base import (CHUNK, STORE_FORMAT, CorruptValue, EpochOrderError, NameTaken, RunActive,
                   RunStore, StoreDamaged, StoreError, StoreFormatError, UnknownRun)

__all__ = ["RunStore", "open_store", "is_redis_url", "backend_class",
           "NameTaken", "RunActive", "UnknownRun", "EpochOrderError", "CorruptValue",
           "StoreError", "StoreFormatError", "StoreDamaged", "CHUNK",
           "STORE_FORMAT", "QUEUED", "RUNNING", "DONE", "CANCELLED", "FAILED", "INTERRUPTED",
           "UNREADABLE", "ACTIVE_STATUSES", "FINAL_STATUSES", "RUN_KINDS"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis_url(location) -> bool:
    """True if ``location`` names a Redis database rather than a folder."""
    return isinstance(location, str) and location.startswith(REDIS_SCHEMES)


def backend_class(location):
    """The RunStore subclass for a folder path or a Redis URL."""
    if location is None or (isinstance(location, str) and not location.strip()):
        raise ValueError("the store location is empty; give a folder path or "
                         "redis://host:port/db")
    if is_redis_url(location):
        from .redis_backend import RedisStore
        return RedisStore
    if not isinstance(location, (str, os.PathLike)):
        raise TypeError(f"the store location must be a folder path or a redis:// URL, got "
                        f"{type(location).__name__}")
    from .disk import DiskStore
    return DiskStore


def open_store(location) -> RunStore:
    """The run store at ``location``: a folder path or ``redis://host:port/db``.

    The one place that picks the backend; another process (a worker, a Celery
    task) opens the same store with the ``location`` of this one.
    """
    return backend_class(location)(location)

