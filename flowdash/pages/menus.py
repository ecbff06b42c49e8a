"""Menus of things that grow with use (runs, models, datasets), searched on the server.

A lab's store holds thousands of runs and hundreds of models and datasets: a
menu never carries them all. It holds at most :data:`LIMIT` entries (the
newest runs; names in their order) plus the chosen ones; typing in it asks
the server for the entries that match (Dash's ``dcc.Dropdown`` ``search_value``
pattern, :func:`searchable`), which reads the store's run index, never the
run records.
"""
from __future__ import annotations

from typing import Callable

from dash import Input, Output, callback, dcc

#: Entries a menu holds at once; the others are found by typing.
LIMIT = 100
#: Longest search text read from a request, characters.
MAX_SEARCH = 200


def menu(component_id, placeholder: str, multi: bool = False, clearable: bool = False,
         **kwargs) -> dcc.Dropdown:
    """A searchable menu filled by the server (see :func:`searchable`).

    ``dcc.Dropdown`` has no ``invalid`` property: a callback marks it with
    :func:`invalid_class`; a field's message shows whenever it has text
    (assets/style.css).
    """
    return dcc.Dropdown(id=component_id, options=[], placeholder=placeholder, multi=multi,
                        clearable=clearable, searchable=True, className="menu", **kwargs)


def invalid_class(invalid: bool) -> str:
    """A menu's ``className`` with or without the invalid mark (red border)."""
    return "menu is-invalid" if invalid else "menu"


def _text(search) -> str:
    return str(search or "").strip()[:MAX_SEARCH].casefold()


def _chosen(value) -> list:
    if value is None or value == "":
        return []
    return [v for v in (value if isinstance(value, (list, tuple)) else [value])
            if isinstance(v, str)]


def name_options(names, search=None, value=None, limit: int = LIMIT) -> list[dict]:
    """Options of the ``names`` that contain ``search`` (case ignored), at most
    ``limit``, plus the chosen ``value`` (one name or a list) even if it does not
    match, so that the menu can show it."""
    text = _text(search)
    found = [n for n in names if not text or text in n.casefold()][:limit]
    shown = set(found)
    extra = [v for v in _chosen(value) if v not in shown and v in set(names)]
    return [{"label": n, "value": n} for n in extra + found]


def followed(chosen, found: list[dict]):
    """The entry a "follow" menu shows: the one this browser chose while it is among
    ``found`` (options, newest first), else the newest, else None: a fresh browser
    (a projector's, a new user's) follows what is there instead of empty panels."""
    values = [o["value"] for o in found]
    if chosen in values:
        return chosen
    return values[0] if values else None


def run_label(summary: dict, kind: bool = False) -> str:
    """A run as a menu shows it: name (kind, status) and the start of its id."""
    what = f"{summary['kind']}, {summary['status']}" if kind else summary["status"]
    return f"{summary['name']} ({what}) · {summary['id'][:6]}"


def run_options(store, search=None, value=None, kind=None, limit: int = LIMIT,
                show_kind: bool = False) -> list[dict]:
    """Options of the newest runs (of ``kind``) whose name contains ``search`` or
    whose id starts with it, at most ``limit``, plus the chosen run(s) ``value``;
    from the run index (no run record is read)."""
    _, found = store.find_runs(search=_text(search), kind=kind, limit=limit)
    shown = {s["id"] for s in found}
    missing = [v for v in _chosen(value) if v not in shown]
    if missing:
        wanted = set(missing)
        extra = [s for s in store.run_summaries() if s["id"] in wanted]
        found = extra + found
    return [{"label": run_label(s, show_kind), "value": s["id"]} for s in found]


def searchable(component_id, source: Callable[[object, object, object], list[dict]]):
    """Register the server-side search of a menu: as one types, and when its value
    changes (a callback may choose an entry it does not hold), ``source(store,
    search, value)`` gives its options."""
    from flowdash.pages.services import open_store

    @callback(Output(component_id, "options", allow_duplicate=True),
              Input(component_id, "search_value"), Input(component_id, "value"),
              prevent_initial_call=True)
    def search(text, value):
        with open_store() as store:
            return source(store, text, value)
    return search
