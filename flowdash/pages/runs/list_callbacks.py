"""Runs page: the callbacks of the table of runs and of the run menus (see listing.py)."""
from __future__ import annotations

from dash import Input, Output, State, callback, ctx, no_update
from dash.exceptions import PreventUpdate

from flowdash import ids as app_ids
from flowdash.pages import menus
from flowdash.pages.runs import ids, listing
from flowdash.pages.services import open_store

FILTERS = (ids.SEARCH, ids.STATUS_FILTER, ids.KIND_FILTER, ids.DATASET_FILTER, ids.ORDER)


# not called when the page opens: its layout shows the first page already (listing.table_card)
@callback(Output(ids.BODY, "children"), Output(ids.EMPTY, "children"),
          Output(ids.PAGER, "max_value"), Output(ids.PAGER, "active_page"),
          Output(ids.COUNT, "children"), Output(ids.INTERVAL, "interval"),
          Output(ids.CONTINUE, "disabled"), Output(ids.CANCEL, "disabled"),
          Output(ids.VIEW, "data"),
          Input(ids.INTERVAL, "n_intervals"), Input(ids.CHANGED, "data"),
          Input(app_ids.URL, "pathname"), *[Input(f, "value") for f in FILTERS],
          Input(ids.PAGER, "active_page"), Input(ids.OPEN, "value"), State(ids.VIEW, "data"),
          prevent_initial_call=True)
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
        answer = listing.answer(store, q, view, open_id, poll=trigger == ids.INTERVAL)
    if answer is None:
        raise PreventUpdate          # nothing shown can change: the list is as it was
    body, shown, new_view = answer
    old = view.get("shown") or {}

    def changed_(key, value):
        return value if old.get(key) != shown[key] else no_update
    out = (body, changed_("empty", listing.empty_note(shown["empty"])),
           changed_("pages", shown["pages"]),
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
