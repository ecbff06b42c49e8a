"""Runs page: the callbacks of the table of runs and of the run menus (see listing.py)."""
from __future__ import annotations

from dash import Input, Output, State, callback, ctx, no_update
from dash.exceptions import PreventUpdate

import dash_bootstrap_components as dbc

from flowdash import ids as app_ids
from flowdash import jobs
from flowdash.pages import menus
from flowdash.pages.runs import ids, listing
from flowdash.pages.services import open_store
from flowdash.store import ACTIVE_STATUSES

FILTERS = (ids.SEARCH, ids.STATUS_FILTER, ids.KIND_FILTER, ids.DATASET_FILTER, ids.ORDER)
NO_RUNS = "No runs yet: generate data or start a fit."
NO_MATCH = "No run matches the search and filters."


@callback(Output(ids.BODY, "children"), Output(ids.EMPTY, "children"),
          Output(ids.PAGER, "max_value"), Output(ids.PAGER, "active_page"),
          Output(ids.COUNT, "children"), Output(ids.INTERVAL, "interval"),
          Output(ids.CONTINUE, "disabled"), Output(ids.CANCEL, "disabled"),
          Output(ids.VIEW, "data"),
          Input(ids.INTERVAL, "n_intervals"), Input(ids.CHANGED, "data"),
          Input(app_ids.URL, "pathname"), *[Input(f, "value") for f in FILTERS],
          Input(ids.PAGER, "active_page"), Input(ids.OPEN, "value"), State(ids.VIEW, "data"))
def show_runs(_n, _changed, _path, search, status, kind, dataset, order, page, open_id, view):
    """One page of the runs that match; a poll sends only the rows that changed.

    ``VIEW`` is what the page shows: the query, the rows' ids and fingerprints,
    the run index's version and whether a run shown is active. A poll while
    nothing shown is active and the index did not change answers nothing.
    """
    view = view if isinstance(view, dict) else {}
    trigger = ctx.triggered_id
    q = listing.query(search, status, kind, dataset, order, 1 if trigger in FILTERS else page)
    with open_store() as store:
        version = store.index_version()
        if trigger == ids.INTERVAL and not view.get("live") and view.get("query") == q \
                and view.get("version") == version:
            raise PreventUpdate      # nothing shown can change: the list is as it was
        if view.get("live") or not view:
            jobs.reap(store)         # a worker that died shows up at once
        total, rows = listing.page_rows(store, q)
        opened = store.get_run(open_id) if open_id else None
    open_active = opened is not None and opened["status"] in ACTIVE_STATUSES
    row_ids = [r["id"] for r in rows]
    digests = [listing.digest(r, open_id) for r in rows]
    body = (listing.body_update(view, rows, digests, open_id) if view.get("query") == q
            else [listing.row(r, open_id) for r in rows])
    live = listing.live(rows) or open_active
    shown = {"empty": "" if rows else (NO_MATCH if any(q[k] for k in (
                 "search", "status", "kind", "dataset")) else NO_RUNS),
             "pages": listing.pages(total), "page": q["page"],
             "count": listing.count_text(total, q, len(rows)),
             "interval": listing.FAST_MS if live else listing.SLOW_MS,
             "continue": not jobs.can_continue(opened), "cancel": not open_active}
    old = view.get("shown") or {}

    def changed_(key, value):
        return value if old.get(key) != shown[key] else no_update
    empty = shown["empty"] and dbc.Alert(shown["empty"], color="light", className="mb-0")
    new_view = {"query": q, "ids": row_ids, "digests": digests, "version": version,
                "live": live, "shown": shown}
    out = (body, changed_("empty", empty or ""), changed_("pages", shown["pages"]),
           shown["page"] if shown["page"] != page else no_update,
           changed_("count", shown["count"]), changed_("interval", shown["interval"]),
           changed_("continue", shown["continue"]), changed_("cancel", shown["cancel"]))
    if new_view == view and all(v is no_update for v in out):
        raise PreventUpdate          # polled, but nothing on the page changed
    return (*out, new_view if new_view != view else no_update)


def _open_options(store, text, value):
    return menus.run_options(store, text, value, show_kind=True)


def _fit_options(store, text, value):
    return menus.run_options(store, text, value, kind="fit")


def _dataset_options(store, text, value):
    return menus.name_options(store.run_datasets(), text, value)


@callback(Output(ids.OPEN, "options"), Output(ids.OVERLAY_SELECT, "options"),
          Output(ids.DATASET_FILTER, "options"),
          Input(app_ids.URL, "pathname"), State(ids.OPEN, "value"),
          State(ids.OVERLAY_SELECT, "value"))
def fill_menus(_path, open_id, compared):
    """The run menus when the page opens: the newest runs (the others by typing)."""
    with open_store() as store:
        return (_open_options(store, None, open_id), _fit_options(store, None, compared),
                _dataset_options(store, None, None))


menus.searchable(ids.OPEN, _open_options)
menus.searchable(ids.OVERLAY_SELECT, _fit_options)
menus.searchable(ids.DATASET_FILTER, _dataset_options)
