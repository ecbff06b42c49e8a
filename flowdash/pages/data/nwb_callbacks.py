"""Callbacks of the Data page's NWB import form (thin: nwb_logic does the work)."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import ALL, MATCH, Input, Output, State, callback, clientside_callback, ctx, html, \
    no_update
from dash.exceptions import PreventUpdate

from flowdash.core.limits import InvalidValue
from flowdash.pages.components import alert
from flowdash.pages.data import ids as data_ids
from flowdash.pages.data import nwb_figures as figures
from flowdash.pages.data import nwb_ids as ids
from flowdash.pages.data import nwb_layout as layout
from flowdash.pages.data import nwb_logic as logic
from flowdash.pages.services import open_store, options

#: What :func:`nwb_layout.form_outputs` fills, in its order.
FORM_OUTPUTS = [Output(ids.UNITS, "options"), Output(ids.UNITS, "value"),
                Output(ids.START, "options"), Output(ids.START, "value"),
                Output(ids.START_OFFSET, "value"), Output(ids.END_KIND, "value"),
                Output(ids.END, "options"), Output(ids.END, "value"),
                Output(ids.END_OFFSET, "value"), Output(ids.DURATION, "value"),
                Output(ids.FILTERS, "children"), Output(ids.CONDITIONS, "children"),
                Output(ids.HALVES, "value"), Output(ids.SEED, "value")]
#: The form's fields, in the order of :func:`form_values`.
FIELD_STATES = [State(ids.UNITS, "value"), State(ids.START, "value"),
                State(ids.START_OFFSET, "value"), State(ids.END_KIND, "value"),
                State(ids.END, "value"), State(ids.END_OFFSET, "value"),
                State(ids.DURATION, "value"),
                *[State({"type": t, "i": ALL}, "value") for t in
                  (ids.F_COLUMN, ids.F_OP, ids.F_VALUES, ids.F_LOW, ids.F_HIGH, ids.F_OTHER)],
                *[State({"type": t, "i": ALL}, "value") for t in (ids.C_COLUMN, ids.C_VALUES)],
                State(ids.HALVES, "value"), State(ids.SEED, "value")]


def form_values(units, start, start_offset, end_kind, end, end_offset, duration, f_columns,
                f_ops, f_values, f_lows, f_highs, f_others, c_columns, c_values, halves,
                seed) -> dict:
    """The form values (see :mod:`nwb_logic`) from the fields' values."""
    filters = [{"column": c, "op": o, "values": v or [], "low": lo, "high": hi, "other": ot}
               for c, o, v, lo, hi, ot in zip(f_columns, f_ops, f_values, f_lows, f_highs,
                                              f_others)]
    conditions = [{"column": c, "values": v or []} for c, v in zip(c_columns, c_values)]
    return {"units": units or [], "start": start, "start_offset": start_offset,
            "end_kind": end_kind, "end": end, "end_offset": end_offset, "duration": duration,
            "filters": filters, "conditions": conditions, "halves": halves, "seed": seed}


@callback(Output(ids.FILE, "data"), Output(ids.FILE_INFO, "children"),
          Output(ids.FILE_MSG, "children"), Output(ids.FORM_BOX, "style"), *FORM_OUTPUTS,
          Output(ids.NAME, "value"), Output(ids.REFRESH, "data"), Output(ids.UPLOAD, "contents"),
          Output(ids.SAMPLE, "value"),
          Input(ids.SAMPLE, "value"), Input(ids.PMD, "n_clicks"), Input(ids.UPLOAD_GATE, "data"),
          State(ids.UPLOAD, "contents"), State(ids.UPLOAD, "filename"),
          prevent_initial_call=True)
def open_file(sample, pmd, gate, contents, filename):
    """Open a sample, the PMd file with the paper's choices, or an upload (within the
    cap: the clientside gate); fill the form from what the file holds."""
    from flowdash.core.nwb import PMD_RECIPE

    trigger = ctx.triggered_id
    if (trigger == ids.PMD and not pmd) or (trigger == ids.SAMPLE and not sample) \
            or (trigger == ids.UPLOAD_GATE and not (gate and contents)):
        raise PreventUpdate   # inserted by the page, or the upload was cleared
    try:
        if trigger == ids.UPLOAD_GATE:
            file = logic.upload(contents, filename)
        else:
            name = logic.PMD_FILE if trigger == ids.PMD else sample
            file = logic.open_file({"kind": "sample", "name": name})
    except InvalidValue as exc:
        clear = None if trigger == ids.UPLOAD_GATE else no_update
        return (no_update, no_update, str(exc), no_update, *[no_update] * len(FORM_OUTPUTS),
                no_update, no_update, clear, no_update)
    summary = file["summary"]
    if trigger == ids.PMD:
        form, name = logic.form_from_recipe(PMD_RECIPE, summary), "pmd"
    else:
        form, name = logic.default_form(summary), summary["file_name"].rsplit(".", 1)[0]
    sample_value = file["source"]["name"] if file["source"]["kind"] == "sample" else None
    return (file, layout.file_info(file), "", None, *layout.form_outputs(form, summary), name,
            summary["file_sha256"] + str(ctx.triggered_id), None if trigger == ids.UPLOAD_GATE
            else no_update, sample_value if trigger == ids.PMD else no_update)


# An upload over the cap never leaves the browser: the size is checked here and
# the importer's own message shown; within the cap the server reads it.
clientside_callback(
    """function(contents, filename, cap) {
        const skip = window.dash_clientside.no_update;
        if (!contents) { return [skip, skip]; }
        const body = contents.split(',')[1] || '';
        const pad = body.endsWith('==') ? 2 : (body.endsWith('=') ? 1 : 0);
        const n = Math.floor(body.length * 3 / 4) - pad;
        if (n > cap) {
            const mb = (x) => (x / 1048576).toFixed(1);
            return [skip, `${filename} is ${mb(n)} MB (${n} bytes); files up to ${mb(cap)} MB ` +
                          `(${cap} bytes) are accepted`];
        }
        return [{name: filename, bytes: n, at: Date.now()}, ''];
    }""",
    Output(ids.UPLOAD_GATE, "data"), Output(ids.FILE_MSG, "children", allow_duplicate=True),
    Input(ids.UPLOAD, "contents"), State(ids.UPLOAD, "filename"), State(ids.CAP, "data"),
    prevent_initial_call=True)


@callback(Output(ids.UNITS, "value", allow_duplicate=True), Input(ids.UNITS_ALL, "n_clicks"),
          Input(ids.UNITS_NONE, "n_clicks"), State(ids.UNITS, "options"),
          prevent_initial_call=True)
def all_units(_all, _none, unit_options):
    if not ctx.triggered or not ctx.triggered[0]["value"]:
        raise PreventUpdate
    return [o["value"] for o in unit_options or []] if ctx.triggered_id == ids.UNITS_ALL else []


@callback(Output(ids.END_BOX, "style"), Output(ids.DURATION_BOX, "style"),
          Input(ids.END_KIND, "value"))
def end_boxes(kind):
    """An end event and its offset, or a fixed duration."""
    return (layout.HIDE, None) if kind == "duration" else (None, layout.HIDE)


@callback(Output(ids.SEED_BOX, "style"), Input(ids.HALVES, "value"))
def seed_box(halves):
    return None if halves == "random" else layout.HIDE


@callback(Output(ids.FILTERS, "children", allow_duplicate=True),
          Output(ids.CONDITIONS, "children", allow_duplicate=True),
          Input(ids.ADD_FILTER, "n_clicks"), Input({"type": ids.F_REMOVE, "i": ALL}, "n_clicks"),
          Input(ids.ADD_CONDITION, "n_clicks"), Input({"type": ids.C_REMOVE, "i": ALL}, "n_clicks"),
          State(ids.FILE, "data"), *FIELD_STATES, prevent_initial_call=True)
def rows(_add_f, _rm_f, _add_c, _rm_c, file, *fields):
    """Add or remove a filter or a condition column (the others keep their values)."""
    if not file or not ctx.triggered or not ctx.triggered[0]["value"]:
        raise PreventUpdate   # rows inserted by the page, not clicked
    form, summary = form_values(*fields), file["summary"]
    trigger = ctx.triggered_id
    kind = trigger.get("type") if isinstance(trigger, dict) else trigger
    if kind == ids.ADD_FILTER:
        form["filters"].append(logic.new_filter(summary))
    elif kind == ids.F_REMOVE:
        form["filters"].pop(trigger["i"])
    elif kind == ids.ADD_CONDITION:
        form["conditions"].append(logic.new_condition(
            summary, [c["column"] for c in form["conditions"]]))
    elif kind == ids.C_REMOVE:
        form["conditions"].pop(trigger["i"])
    return ([layout.filter_row(i, f, summary) for i, f in enumerate(form["filters"])],
            [layout.condition_row(j, c, summary) for j, c in enumerate(form["conditions"])])


@callback(Output({"type": ids.F_OP, "i": MATCH}, "options"),
          Output({"type": ids.F_OP, "i": MATCH}, "value"),
          Output({"type": ids.F_VALUES, "i": MATCH}, "options"),
          Output({"type": ids.F_VALUES, "i": MATCH}, "value"),
          Input({"type": ids.F_COLUMN, "i": MATCH}, "value"),
          State({"type": ids.F_OP, "i": MATCH}, "value"),
          State({"type": ids.F_VALUES, "i": MATCH}, "value"), State(ids.FILE, "data"),
          prevent_initial_call=True)
def filter_column(column, op, values, file):
    """A filter's tests and values follow its column (kept when they still fit it)."""
    if not file:
        raise PreventUpdate
    summary = file["summary"]
    ops = layout.op_options(summary, column)
    vals = logic.value_options(summary, column)
    allowed = [o["value"] for o in ops]
    fits = op in allowed and set(values or []) <= {o["value"] for o in vals}
    if fits:
        return ops, no_update, vals, no_update
    return ops, allowed[0], vals, [o["value"] for o in vals]


@callback(Output({"type": ids.F_VALUES_BOX, "i": MATCH}, "style"),
          Output({"type": ids.F_RANGE_BOX, "i": MATCH}, "style"),
          Output({"type": ids.F_OTHER_BOX, "i": MATCH}, "style"),
          Input({"type": ids.F_OP, "i": MATCH}, "value"), prevent_initial_call=True)
def filter_op(op):
    return layout.op_boxes(op)


@callback(Output({"type": ids.C_VALUES, "i": MATCH}, "options"),
          Output({"type": ids.C_VALUES, "i": MATCH}, "value"),
          Input({"type": ids.C_COLUMN, "i": MATCH}, "value"),
          State({"type": ids.C_VALUES, "i": MATCH}, "value"), State(ids.FILE, "data"),
          prevent_initial_call=True)
def condition_column(column, values, file):
    """A condition's values follow its column (all of them, in the file's order)."""
    if not file:
        raise PreventUpdate
    vals = logic.value_options(file["summary"], column)
    if set(values or []) <= {o["value"] for o in vals} and values:
        return vals, no_update
    return vals, [o["value"] for o in vals]


def _table(head, rows, **kw):
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in head])),
                      html.Tbody([html.Tr([html.Td(c) for c in r]) for r in rows])],
                     size="sm", className="mb-2 w-auto small", **kw)


def summary_view(p: dict):
    """Trials per condition, spikes per neuron and dropped trials (with why)."""
    conditions = _table(["condition", "trials", "halves", "spikes"],
                        [(c["condition"], c["trials"], c["halves"], f"{c['spikes']:,}")
                         for c in p["conditions"]])
    units = _table(["neuron", "spikes in windows", "rate in windows"],
                   [(u["unit"], f"{u['spikes']:,}", f"{u['rate']:.1f} Hz") for u in p["units"]])
    dropped = (_table(["dropped", "trials", "rows"],
                      [(d["reason"], d["trials"], d["rows"]) for d in p["dropped"]])
               if p["dropped"] else html.Div("No trial dropped.", className="small text-muted mb-2"))
    return html.Div([
        html.Div([html.Strong(f"{p['n_trials_kept']:,} of {p['n_trials_file']:,} trials kept"),
                  html.Span(f" · window {p['window']}", className="text-muted")],
                 className="small mb-1"),
        dbc.Row([dbc.Col([conditions, dropped], md=6),
                 dbc.Col(html.Div(units, className="nwb-units-table"), md=6)], className="g-2"),
    ])


@callback(Output(ids.SUMMARY, "children"), Output(ids.NEURON, "options"),
          Output(ids.PSTH, "figure"), Output(ids.LENGTHS, "figure"),
          Output(ids.PREVIEW_BOX, "style"),
          Output({"type": ids.FB, "control": ALL}, "children"),
          Output({"type": ids.F_FB, "i": ALL}, "children"),
          Output({"type": ids.C_FB, "i": ALL}, "children"), Output(ids.MESSAGE, "children"),
          Output(data_ids.DATASET, "options", allow_duplicate=True),
          Output(data_ids.DATASET, "value", allow_duplicate=True),
          Input(ids.PREVIEW, "n_clicks"), Input(ids.SAVE, "n_clicks"), Input(ids.REFRESH, "data"),
          Input(ids.NEURON, "value"), State(ids.FILE, "data"), *FIELD_STATES,
          State(ids.NAME, "value"), prevent_initial_call=True)
def preview_or_save(_preview, _save, refresh, neuron, file, *fields):
    """Preview the import (tables and figures), or save it as a dataset; every
    problem goes under its control."""
    *fields, name = fields
    trigger = ctx.triggered_id
    if not file or (trigger in (ids.PREVIEW, ids.SAVE) and not ctx.triggered[0]["value"]):
        raise PreventUpdate
    form = form_values(*fields)
    saving = trigger == ids.SAVE
    if saving:
        with open_store() as store:
            saved, errors, imp = logic.save(store, name, file["source"], form, file["summary"])
            datasets = store.list_datasets() if saved else None
    else:
        saved, datasets = None, None
        imp, errors = logic.run_import(file["source"], form, file["summary"])
    fb_out = [errors.get(o["id"]["control"], "") for o in ctx.outputs_list[5]]
    f_out = [errors.get(f"filters:{o['id']['i']}", "") for o in ctx.outputs_list[6]]
    c_out = [errors.get(f"conditions:{o['id']['i']}", "") for o in ctx.outputs_list[7]]
    if imp is None:
        message = alert("Fix the problems marked in red.", "danger") if errors else ""
        return (no_update, no_update, no_update, no_update, no_update, fb_out, f_out, c_out,
                message, no_update, no_update)
    try:
        shown = int(neuron or 0)
    except ValueError:
        shown = 0
    p = logic.preview(imp, shown)
    neurons = [{"label": u["unit"], "value": str(k)} for k, u in enumerate(p["units"])]
    fig = figures.raster_psth(p["rasters"], p["edges"], p["psth"], p["align"], p["start_offset"],
                              f"Aligned to {p['align']} · {p['neuron_label']}")
    lengths = figures.window_lengths(p["lengths"])
    if saved:
        n = sum(c["trials"] for c in p["conditions"])
        message = alert(f"Saved dataset “{saved}”: {n:,} trials in {len(p['conditions'])} "
                        f"conditions, {len(p['units'])} neuron(s); the recipe is kept with it.",
                        "success")
        return (summary_view(p), neurons, fig, lengths, None, fb_out, f_out, c_out, message,
                options(datasets), saved)
    message = alert("Not saved: see the message in red.", "danger") if saving else ""
    return (summary_view(p), neurons, fig, lengths, None, fb_out, f_out, c_out, message,
            no_update, no_update)

