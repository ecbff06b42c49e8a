"""Runs page callbacks."""
from __future__ import annotations

import json

import dash_bootstrap_components as dbc
from dash.exceptions import PreventUpdate
from dash import Input, Output, State, callback, dcc, html, no_update

from flowdash import ids as app_ids
from flowdash import jobs
from flowdash import export
from flowdash.pages import theme
from flowdash.pages.components import alert, status_badge
from flowdash.pages.fit import figures as fit_figures
from flowdash.pages.fit import view as fit_view
from flowdash.pages.runs import ids
from flowdash.pages.runs.plots import generation_plots
from flowdash.pages.runs.table import describe
from flowdash.pages.services import open_store
from flowdash.store import ACTIVE_STATUSES, RunActive

COLUMNS = (("status", "Status"), ("name", "Name"), ("kind", "Kind"), ("created", "Created"),
           ("took", "Took"), ("progress", "Progress"), ("used", "Settings and data"),
           ("error", "Reason"))


def table(rows):
    head = html.Thead(html.Tr([html.Th(label) for _, label in COLUMNS]))
    body = html.Tbody([html.Tr([html.Td(status_badge(r[k]) if k == "status" else r[k])
                                for k, _ in COLUMNS], id={"type": ids.ROW, "run": r["id"]})
                       for r in rows])
    return dbc.Table([head, body], hover=True, size="sm", className="mb-0 runs-table")


@callback(Output(ids.TABLE, "children"), Output(ids.OPEN, "options"),
          Output(ids.OVERLAY_SELECT, "options"),
          Input(ids.INTERVAL, "n_intervals"), Input(ids.CHANGED, "data"),
          Input(app_ids.URL, "pathname"))
def refresh(_n, _changed, _path):
    """The table of every run with its status (polled)."""
    with open_store() as store:
        jobs.reap(store)                  # a worker that died shows up at once
        records = jobs.annotate(store, store.list_runs())
        rows = [describe(r, store.n_epochs(r["id"])) for r in records]
    if not rows:
        return (dbc.Alert("No runs yet: generate data or start a fit.", color="light"), [], [])
    opts = [{"label": f"{r['name']} · {r['kind']} · {r['status']} · {r['id'][:6]}",
             "value": r["id"]} for r in rows]
    fits = [{"label": f"{r['name']} ({r['id'][:6]})", "value": r["id"]}
            for r in rows if r["kind"] == "fit"]
    return table(rows), opts, fits


@callback(Output(ids.DETAILS, "children"), Output(ids.NLL_GRAPH, "figure"),
          Output(ids.POTENTIAL_GRAPH, "figure"), Output(ids.PARAMS_GRAPH, "figure"),
          Input(ids.OPEN, "value"), Input(ids.CHANGED, "data"))
def open_run(run_id, _changed):
    """Settings, data and plots of one run."""
    with open_store() as store:
        record = store.get_run(run_id)
        if record is None:
            return ("", theme.message_figure("Open a run.", 300), theme.message_figure("", 300),
                    theme.message_figure("", 120))
        if record["kind"] == "fit":
            cols = store.read_columns(run_id, max_points=fit_view.MAX_POINTS)
            plots = (fit_figures.nll_figure(*fit_view.curves(cols), f"NLL · {record['name']}"),
                     *fit_view.side_figures(store, record, cols))
        else:
            plots = generation_plots(store, record)
    info = html.Div([
        html.Div([status_badge(record["status"]), html.Strong(f"  {record['name']}"),
                  html.Span(f"  ({record['kind']}, id {record['id']})", className="text-muted")]),
        html.Div(record.get("error") or "", className="text-danger"),
        html.Pre(json.dumps({"settings": record["settings"], "refs": record["refs"]},
                            indent=2, default=str), className="run-settings p-2 mt-2"),
    ])
    return (info, *plots)


@callback(Output(ids.OVERLAY_GRAPH, "figure"), Input(ids.OVERLAY_SELECT, "value"),
          Input(ids.CHANGED, "data"))
def overlay(run_ids, _changed):
    """NLL curves of the ticked runs in one plot."""
    with open_store() as store:
        curves = []
        for rid in run_ids or []:
            rec = store.get_run(rid)
            if rec is not None:
                cols = store.read_columns(rid, max_points=fit_view.MAX_POINTS)
                curves.append((rec["name"], *fit_view.curves(cols)))
    if not curves:
        return theme.message_figure("Tick fit runs to overlay.", 260)
    return fit_figures.overlay_figure(curves)


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
          Output(ids.OPEN, "value"),
          Input(ids.DELETE, "n_clicks"), State(ids.OPEN, "value"), prevent_initial_call=True)
def delete_run(_n, run_id):
    """Delete the open run (a queued or running one must be cancelled first)."""
    if not _n:  # pages insert components: never act without a real click
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


@callback(Output(ids.NLL_GRAPH, "config"), Output(ids.POTENTIAL_GRAPH, "config"),
          Output(ids.OVERLAY_GRAPH, "config"), Output(ids.PARAMS_GRAPH, "config"),
          Input(ids.FORMAT, "value"))
def figure_format(fmt):
    """The camera button of each plot downloads PNG or SVG."""
    return tuple(theme.graph_config(fmt, name) for name in ("nll", "potential", "overlay",
                                                            "params"))
