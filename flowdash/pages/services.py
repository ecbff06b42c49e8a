"""How callbacks reach the run store (the store path lives in the Flask config)."""
from __future__ import annotations

from contextlib import contextmanager

import dash

from flowdash.store import open_store as open_run_store

CONFIG_KEY = "FLOWDASH_STORE"


def store_path() -> str:
    """The run store folder of the running app (set by ``create_app``)."""
    return dash.get_app().server.config[CONFIG_KEY]


@contextmanager
def open_store():
    """The app's run store for the duration of one callback."""
    store = open_run_store(store_path())
    try:
        yield store
    finally:
        store.close()


def options(names, value=None) -> list[dict]:
    """Menu options from a list of names: at most ``menus.LIMIT`` of them, plus the
    chosen ``value`` (the menu finds the others as one types: ``menus.searchable``)."""
    from flowdash.pages.menus import name_options

    return name_options(names, None, value)
