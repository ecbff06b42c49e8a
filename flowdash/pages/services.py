"""How callbacks reach the run store (the store path lives in the Flask config)."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import dash

from flowdash.store import open_store as open_run_store

CONFIG_KEY = "FLOWDASH_STORE"


def store_path() -> str:
    """The run store folder of the running app (set by ``create_app``)."""
    return dash.get_app().server.config[CONFIG_KEY]


#: The stores callbacks use, one per (location, process), kept open: opening a folder
#: store costs ~20 ms of SQLite setup and closing it ~5 ms, several times a live
#: poll's own work (bench/load.py). Both backends are safe to share between threads
#: (a folder store keeps one SQLite connection per thread and locks every operation;
#: Redis clients pool their connections).
_STORES: dict = {}
_STORES_LOCK = threading.Lock()


@contextmanager
def open_store():
    """The app's run store for one callback (opened once per process, not closed)."""
    key = (store_path(), os.getpid())
    store = _STORES.get(key)
    if store is None:
        with _STORES_LOCK:
            store = _STORES.get(key)
            if store is None:
                store = _STORES[key] = open_run_store(key[0])
    yield store


def options(names, value=None) -> list[dict]:
    """Menu options from a list of names: at most ``menus.LIMIT`` of them, plus the
    chosen ``value`` (the menu finds the others as one types: ``menus.searchable``)."""
    from flowdash.pages.menus import name_options

    return name_options(names, None, value)
