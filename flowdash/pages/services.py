"""How callbacks reach the run store (the store path lives in the Flask config)."""
from __future__ import annotations

from contextlib import contextmanager

import dash

from flowdash.store import RunStore

CONFIG_KEY = "FLOWDASH_STORE"


def store_path() -> str:
    """The run store folder of the running app (set by ``create_app``)."""
    return dash.get_app().server.config[CONFIG_KEY]


@contextmanager
def open_store():
    """A :class:`RunStore` for the duration of one callback."""
    store = RunStore(store_path())
    try:
        yield store
    finally:
        store.close()


def options(names) -> list[dict]:
    """Select options from a list of names."""
    return [{"label": n, "value": n} for n in names]
