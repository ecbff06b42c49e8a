"""Runs page callbacks."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash.exceptions import PreventUpdate
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from flowdash import ids as app_ids
from flowdash import jobs
from flowdash import export
from flowdash.pages import theme
from flowdash.pages.components import alert, status_badge
from flowdash.pages.fit import figures as fit_figures
from flowdash.pages.fit import view as fit_view
from flowdash.pages.runs import ids
from flowdash.pages.runs.plots import generation_plots
from flowdash.pages.runs.table import describe, recipe_rows, settings_rows
from flowdash.pages.services import open_store
from flowdash.store import ACTIVE_STATUSES, RunActive

COLUMNS = (("status", "Status"), ("name", "Name"), ("kind", "Kind"), ("created", "Created"),
           ("took", "Took"), ("progress", "Progress"), ("used", "Settings and data"),
           ("error", "Reason"))


def table(rows, open_id=None):
    head = html.Thead(html.Tr([html.Th(label) for _, label in COLUMNS]))
    body = html.Tbody([html.Tr([html.Td(status_badge(r[k]) if k == "status" else r[k])
                                for k, _ in COLUMNS], id={"type": ids.ROW, "run": r["id"]},
                               className="table-active" if r["id"] == open_id else None,
                               title="open this run")
                       for r in rows])
    return dbc.Table([head, body], hover=True, size="sm", className="mb-0 runs-table")


@callback(Output(ids.TABLE, "children"), Output(ids.OPEN, "options"),
          Output(ids.OVERLAY_SELECT, "options"), Output(ids.CANCEL, "disabled"),
          Input(ids.INTERVAL, "n_intervals"), Input(ids.CHANGED, "data"),
          Input(app_ids.URL, "pathname"), Input(ids.OPEN, "value"))
def refresh(_n, _changed, _path, open_id):
    """The table of every run with its status (polled); Cancel only for an active run."""
    with open_store() as store:
        jobs.reap(store)                  # a worker that died shows up at once
        records = jobs.annotate(store, store.list_runs())
        rows = [describe(r, store.n_epochs(r["id"])) for r in records]
    active = any(r["id"] == open_id and r["status"] in ACTIVE_STATUSES for r in records)
    if not rows:
        return (dbc.Alert("No runs yet: generate data or start a fit.", color="light"), [], [],
                True)
    opts = [{"label": f"{r['name']} · {r['kind']} · {r['status']} · {r['id'][:6]}",
             "value": r["id"]} for r in rows]
    fits = [{"label": f"{r['name']} ({r['id'][:6]})", "value": r["id"]}
            for r in rows if r["kind"] == "fit"]
    return table(rows, open_id), opts, fits, not active


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


@callback(Output(ids.DETAILS, "children"), Output(ids.NLL_GRAPH, "figure"),
          Output(ids.POTENTIAL_GRAPH, "figure"), Output(ids.PARAMS_GRAPH, "figure"),
          Output(ids.NLL_GRAPH, "config"), Output(ids.POTENTIAL_GRAPH, "config"),
          Output(ids.PARAMS_GRAPH, "config"),
          Input(ids.OPEN, "value"), Input(ids.CHANGED, "data"), Input(ids.FORMAT, "value"))
def open_run(run_id, _changed, fmt):
    """Settings, data and plots of one run; each plot's camera exports ``fmt``.

    A graph applies a new config only with a new figure, so both travel together.
    """
    configs = tuple(theme.graph_config(fmt, name) for name in ("nll", "potential", "params"))
    with open_store() as store:
        record = store.get_run(run_id)
        if record is None:
            return ("", theme.message_figure("Open a run.", 300), theme.message_figure("", 300),
                    theme.message_figure("", 120), *configs)
        recipe = export.import_recipe(store, record)
        if record["kind"] == "fit":
            cols = store.read_columns(run_id, max_points=fit_view.MAX_POINTS)
            plots = (fit_figures.nll_figure(*fit_view.curves(cols), f"NLL · {record['name']}"),
                     *fit_view.side_figures(store, record, cols))
        else:
            plots = generation_plots(store, record)
    return (details(record, recipe), *plots, *configs)


@callback(Output(ids.OVERLAY_GRAPH, "figure"), Output(ids.OVERLAY_GRAPH, "config"),
          Input(ids.OVERLAY_SELECT, "value"), Input(ids.CHANGED, "data"),
          Input(ids.FORMAT, "value"))
def overlay(run_ids, _changed, fmt):
    """NLL curves of the ticked runs in one plot."""
    with open_store() as store:
        curves = []
        for rid in run_ids or []:
            rec = store.get_run(rid)
            if rec is not None:
                cols = store.read_columns(rid, max_points=fit_view.MAX_POINTS)
                curves.append((rec["name"], *fit_view.curves(cols)))
    config = theme.graph_config(fmt, "overlay")
    if not curves:
        return theme.message_figure("Tick fit runs to overlay.", 260), config
    return fit_figures.overlay_figure(curves), config


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


