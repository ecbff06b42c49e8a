"""Runs page callbacks."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash.exceptions import PreventUpdate
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from flowdash import jobs
from flowdash import export
from flowdash.pages import theme
from flowdash.pages.components import alert, status_badge
from flowdash.pages.fit import figures as fit_figures
from flowdash.pages.fit import view as fit_view
from flowdash.pages.runs import ids, layout
from flowdash.pages.runs import list_callbacks  # noqa: F401  (the table and the run menus)
from flowdash.pages.runs.plots import generation_plots
from flowdash.pages.runs.table import recipe_rows, settings_rows
from flowdash.pages.services import open_store
from flowdash.store import ACTIVE_STATUSES, RunActive

@callback(Output(ids.OPEN, "value", allow_duplicate=True),
          Input({"type": ids.ROW, "run": ALL}, "n_clicks"), prevent_initial_call=True)
def open_row(_clicks):
    """A click on a row opens its run (the table is redrawn often: only a real click counts)."""
    if not ctx.triggered_id or not ctx.triggered[0]["value"]:
        raise PreventUpdate
    return ctx.triggered_id["run"]


def details(record, recipe=None):
    """The run's name, status and its settings as a two-column table; the NWB import
    recipe of its dataset beside them (what the data are, traced to the file)."""
    rows = [html.Tr([html.Th(label), html.Td(text)]) for label, text in settings_rows(record)]
    data = [html.Tr([html.Th(label), html.Td(text, className="text-break")])
            for label, text in recipe_rows(recipe)]
    settings = dbc.Table(html.Tbody(rows), size="sm", borderless=True,
                         className="run-details w-auto mt-2 mb-2")
    return html.Div([
        html.Div([status_badge(record["status"]), html.Strong(f"  {record['name']}"),
                  html.Span(f"  ({record['kind']})", className="text-muted")]),
        html.Div(record.get("error") or "", className="text-danger"),
        dbc.Row([dbc.Col(settings, md="auto"),
                 dbc.Col([html.H6("Data imported from NWB", className="mt-2 mb-1"),
                          dbc.Table(html.Tbody(data), size="sm", borderless=True,
                                    className="run-recipe mb-2")], md=True)]) if data else settings,
    ])


@callback(Output(ids.DETAILS, "children"), Output(ids.PLOTS, "children"),
          Output(ids.GT_NOTE, "children"),
          Input(ids.OPEN, "value"), Input(ids.CHANGED, "data"), Input(ids.FORMAT, "value"),
          Input(ids.NLL_SCALE, "value"), prevent_initial_call=True)   # the layout: no run open
def open_run(run_id, _changed, fmt, scale=fit_view.SHIFTED):
    """Settings, data and plots of one run; each plot's camera exports ``fmt``. A fit's
    NLL has the ground truth's as a dashed line (or a note why not), and ``scale``
    may plot it relative to the truth.

    The graphs exist only while a run is open (see ``layout.placeholder``); they are
    sent whole, so a new config always travels with a new figure (a graph applies it
    only then).
    """
    note = ""
    with open_store() as store:
        record = store.get_run(run_id)
        if record is None:
            return "", layout.placeholder(layout.OPEN_A_RUN), ""
        recipe = export.import_recipe(store, record)
        if record["kind"] == "fit":
            cols = store.read_columns(run_id, max_points=fit_view.MAX_POINTS)
            result = store.get_result(run_id) or {}
            note = fit_view.yardstick(store, record, result, scale)[1]
            plots = (fit_view.nll(store, record, cols, result, scale, f"NLL · {record['name']}"),
                     *fit_view.side_figures(store, record, cols))
        elif record["kind"] == "generation":
            plots = generation_plots(store, record)
        else:  # e.g. a decode: its own page draws it
            plots = (theme.message_figure(f"A {record['kind']} run: see its page.", 300),
                     theme.message_figure("", 300), theme.message_figure("", 120))
    return details(record, recipe), layout.run_graphs(*plots, fmt), note


@callback(Output(ids.OVERLAY_PLOT, "children"),
          Input(ids.OVERLAY_SELECT, "value"), Input(ids.CHANGED, "data"),
          Input(ids.FORMAT, "value"), prevent_initial_call=True)      # the layout: none ticked
def overlay(run_ids, _changed, fmt):
    """NLL curves of the ticked runs in one plot (no graph while none is ticked)."""
    with open_store() as store:
        curves = []
        for rid in run_ids or []:
            rec = store.get_run(rid)
            if rec is not None:
                cols = store.read_columns(rid, max_points=fit_view.MAX_POINTS)
                curves.append((rec["name"], *fit_view.curves(cols)))
    if not curves:
        return layout.placeholder(layout.TICK_RUNS)
    return layout.overlay_graph(fit_figures.overlay_figure(curves), fmt)


@callback(Output(ids.MESSAGE, "children"), Output(ids.CHANGED, "data"),
          Input(ids.CANCEL, "n_clicks"), State(ids.OPEN, "value"), prevent_initial_call=True)
def cancel_run(_n, run_id):
    """Request a cancel of the open run."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    with open_store() as store:
        record = store.get_run(run_id)
        if record is None or record["status"] not in ACTIVE_STATUSES:
            return alert("Only a queued or running run can be cancelled.", "light"), no_update
        jobs.cancel(store, run_id)
    return alert("Cancel requested.", "warning"), run_id


@callback(Output(ids.MESSAGE, "children", allow_duplicate=True),
          Output(ids.CHANGED, "data", allow_duplicate=True),
          Input(ids.CONTINUE, "n_clicks"), State(ids.OPEN, "value"), State(ids.MORE, "value"),
          prevent_initial_call=True)
def continue_run(_n, run_id, more):
    """Continue the open fit (done, cancelled or interrupted) for more epochs."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    with open_store() as store:
        text, colour = fit_view.continue_run(store, run_id, more)
    return alert(text, colour), (f"continued {run_id} {_n}" if colour == "success" else no_update)


@callback(Output(ids.DELETE_CONFIRM, "displayed"), Output(ids.DELETE_CONFIRM, "message"),
          Input(ids.DELETE, "n_clicks"), State(ids.OPEN, "value"), prevent_initial_call=True)
def ask_delete(_n, run_id):
    """Deleting asks first."""
    if not _n or not run_id:  # pages insert components: never act without a real click
        raise PreventUpdate
    with open_store() as store:
        record = store.get_run(run_id)
    if record is None:
        raise PreventUpdate
    return True, (f"Delete the run “{record['name']}” with its epochs and results? "
                  "Export it first to keep them.")


@callback(Output(ids.MESSAGE, "children", allow_duplicate=True),
          Output(ids.CHANGED, "data", allow_duplicate=True),
          Output(ids.OPEN, "value"),
          Input(ids.DELETE_CONFIRM, "submit_n_clicks"), State(ids.OPEN, "value"),
          prevent_initial_call=True)
def delete_run(_n, run_id):
    """Delete the open run once confirmed (a queued or running one must be cancelled first)."""
    if not _n:  # pages insert components: never act without a confirmation
        raise PreventUpdate
    with open_store() as store:
        record = store.get_run(run_id)
        if record is None:
            return no_update, no_update, no_update
        try:
            store.delete_run(run_id)
        except RunActive as exc:
            return alert(f"Not deleted: {exc}.", "warning"), no_update, no_update
    return alert(f"Deleted run “{record['name']}”.", "success"), f"deleted {run_id}", None


def _export(run_id, build):
    """``build(store, run_id)`` for the open run, or no_update if there is none."""
    with open_store() as store:
        return no_update if store.get_run(run_id) is None else build(store, run_id)


@callback(Output(ids.DOWNLOAD_NPZ, "data"), Input(ids.EXPORT_NPZ, "n_clicks"),
          State(ids.OPEN, "value"), prevent_initial_call=True)
def export_npz(_n, run_id):
    """Every recorded array of the open run as .npz."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    return _export(run_id, lambda store, rid: dcc.send_bytes(
        export.export_npz(store, rid), f"flowdash-run-{rid}.npz"))


@callback(Output(ids.DOWNLOAD_JSON, "data"), Input(ids.EXPORT_JSON, "n_clicks"),
          State(ids.OPEN, "value"), prevent_initial_call=True)
def export_json(_n, run_id):
    """The open run's settings and record as JSON."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    return _export(run_id, lambda store, rid: dict(
        content=export.export_settings_json(store, rid), filename=f"flowdash-run-{rid}.json"))


