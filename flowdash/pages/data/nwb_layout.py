"""Layout of the Data page's NWB import form: file, recipe, preview, save."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from flowdash import settings
from flowdash.pages import theme
from flowdash.pages.components import card
from flowdash.pages.data import nwb_ids as ids
from flowdash.pages.data import nwb_logic as logic

HIDE = {"display": "none"}


def fb(control: str):
    """Id of the feedback beneath a control."""
    return {"type": ids.FB, "control": control}


def feedback(control: str):
    return html.Div(id=fb(control), className="text-danger small")


def _text(fid, value="", **kw):
    return dbc.Input(id=fid, value=value, type="text", autoComplete="off", size="sm", **kw)


def _label(text, **kw):
    return dbc.Label(text, className="mb-0 small fw-semibold", **kw)


def column_options(summary: dict, *kinds: str) -> list[dict]:
    return [{"label": f"{c['name']} ({c['kind']})", "value": c["name"]}
            for c in summary["columns"] if c["kind"] in kinds]


def op_options(summary: dict, column: str | None) -> list[dict]:
    """Tests a filter may make on a column: values for labels and few-valued
    numbers, a range for numbers and events, equality with another column."""
    col = logic.column(summary, column) if column else None
    ops = ["same_as", "differs_from"]
    if col and col["kind"] in ("number", "event"):
        ops = ["range"] + ops
    if col and col.get("values"):
        ops = ["in"] + ops
    return [{"label": logic.OP_TEXT[o], "value": o} for o in ops]


def op_boxes(op: str | None):
    """Styles of the values / range / other-column boxes of a filter row."""
    return (None if op == "in" else HIDE, None if op == "range" else HIDE,
            None if op in ("same_as", "differs_from") else HIDE)


def filter_row(i: int, f: dict, summary: dict):
    values, ranges, other = op_boxes(f.get("op"))
    usable = column_options(summary, "event", "number", "label")
    return html.Div([
        dbc.Row([
            dbc.Col(dbc.Select(id={"type": ids.F_COLUMN, "i": i}, options=usable,
                               value=f.get("column"), size="sm"), md=4),
            dbc.Col(dbc.Select(id={"type": ids.F_OP, "i": i}, size="sm", value=f.get("op"),
                               options=op_options(summary, f.get("column"))), md=3),
            dbc.Col([
                html.Div(dbc.Checklist(id={"type": ids.F_VALUES, "i": i}, inline=True,
                                       value=f.get("values") or [], className="small",
                                       options=logic.value_options(summary, f.get("column"))),
                         id={"type": ids.F_VALUES_BOX, "i": i}, style=values),
                html.Div(dbc.InputGroup([
                    dbc.Input(id={"type": ids.F_LOW, "i": i}, value=f.get("low") or "",
                              placeholder="low", type="text", autoComplete="off"),
                    dbc.InputGroupText("to"),
                    dbc.Input(id={"type": ids.F_HIGH, "i": i}, value=f.get("high") or "",
                              placeholder="high", type="text", autoComplete="off"),
                ], size="sm"), id={"type": ids.F_RANGE_BOX, "i": i}, style=ranges),
                html.Div(dbc.Select(id={"type": ids.F_OTHER, "i": i}, value=f.get("other"),
                                    options=column_options(summary, "event", "number", "label"),
                                    placeholder="other column", size="sm"),
                         id={"type": ids.F_OTHER_BOX, "i": i}, style=other),
            ], md=4),
            dbc.Col(dbc.Button("×", id={"type": ids.F_REMOVE, "i": i}, color="link", size="sm",
                               title="remove this filter"), md=1),
        ], className="g-1 align-items-center"),
        html.Div(id={"type": ids.F_FB, "i": i}, className="text-danger small"),
    ], className="mb-1 nwb-row")


def condition_row(j: int, c: dict, summary: dict):
    return html.Div([
        dbc.Row([
            dbc.Col(html.Span(f"{j + 1}.", className="small text-muted"), width="auto"),
            dbc.Col(dbc.Select(id={"type": ids.C_COLUMN, "i": j}, value=c.get("column"), size="sm",
                               options=[o for o in column_options(summary, "label", "number")
                                        if logic.value_options(summary, o["value"])]), md=4),
            dbc.Col(dbc.Checklist(id={"type": ids.C_VALUES, "i": j}, inline=True,
                                  value=c.get("values") or [], className="small",
                                  options=logic.value_options(summary, c.get("column"))), md=6),
            dbc.Col(dbc.Button("×", id={"type": ids.C_REMOVE, "i": j}, color="link", size="sm",
                               title="remove this condition column"), width="auto"),
        ], className="g-1 align-items-center"),
        html.Div(id={"type": ids.C_FB, "i": j}, className="text-danger small"),
    ], className="mb-1 nwb-row")


def form_outputs(form: dict, summary: dict) -> tuple:
    """Values of the form's controls (the order of ``nwb_callbacks.FORM_OUTPUTS``)."""
    time_cols = column_options(summary, "event", "number")
    return (logic.unit_options(summary), form["units"], time_cols, form["start"],
            form["start_offset"], form["end_kind"], time_cols, form["end"], form["end_offset"],
            form["duration"], [filter_row(i, f, summary) for i, f in enumerate(form["filters"])],
            [condition_row(j, c, summary) for j, c in enumerate(form["conditions"])],
            form["halves"], form["seed"])


def file_info(file: dict):
    s = file["summary"]
    return html.Div([
        html.Strong(s["file_name"]),
        html.Span(f" · {s['n_bytes'] / 2**20:.1f} MB · {s['n_trials']:,} trials · "
                  f"{len(s['units'])} unit{'s' if len(s['units']) != 1 else ''} · {s['duration']:.0f} s of recording · "
                  f"SHA-256 {s['file_sha256'][:12]}…", className="text-muted"),
    ], className="small mb-2")


def section(title, *children):
    return html.Div([html.H6(title, className="mt-2 mb-1")] + list(children), className="mb-2")


def import_card():
    samples = logic.sample_files()
    cap_mb = settings.MAX_UPLOAD_BYTES // 2**20
    source = dbc.Row([
        dbc.Col([_label("Sample recordings", html_for=ids.SAMPLE),
                 dbc.Select(id=ids.SAMPLE, options=[{"label": n, "value": n} for n in samples],
                            placeholder="open a sample recording", size="sm")], md=5),
        dbc.Col([_label("Published choices"),
                 html.Div(dbc.Button("PMd: the paper's choices", id=ids.PMD, color="primary",
                                     size="sm", title=f"{logic.PMD_FILE}: 120 ms after onset to "
                                     "the response, choice × difficulty, even/odd halves"))],
                md=3),
        dbc.Col([_label("…or upload"),
                 dcc.Upload(id=ids.UPLOAD, accept=".nwb", className="upload-box py-1",
                            children=html.Div(["Drop or ", html.A("choose"),
                                               f" an .nwb file (≤ {cap_mb} MB)"],
                                              className="small"))], md=4),
    ], className="g-2 mb-1")
    recipe = html.Div([
        section("Units", dbc.Checklist(id=ids.UNITS, options=[], value=[],
                                       className="nwb-units small"),
                html.Div([dbc.Button("all", id=ids.UNITS_ALL, color="link", size="sm",
                                     className="p-0 me-2"),
                          dbc.Button("none", id=ids.UNITS_NONE, color="link", size="sm",
                                     className="p-0")]),
                feedback("units")),
        section("Window of each trial (trial end recorded)",
                dbc.Row([
                    dbc.Col([_label("from event"), dbc.Select(id=ids.START, options=[], size="sm"),
                             feedback("start")], md=5),
                    dbc.Col([_label("+ offset (s)"), _text(ids.START_OFFSET, "0"),
                             feedback("start_offset")], md=3),
                    dbc.Col([_label("to"), dbc.RadioItems(
                        id=ids.END_KIND, value="event", inline=True, className="small",
                        options=[{"label": "an event", "value": "event"},
                                 {"label": "a fixed duration", "value": "duration"}])], md=4),
                ], className="g-2"),
                dbc.Row([
                    dbc.Col([_label("to event"), dbc.Select(id=ids.END, options=[], size="sm"),
                             feedback("end")], md=5),
                    dbc.Col([_label("+ offset (s)"), _text(ids.END_OFFSET, "0"),
                             feedback("end_offset")], md=3),
                ], className="g-2", id=ids.END_BOX),
                dbc.Row([dbc.Col([_label("duration (s)"), _text(ids.DURATION, "1"),
                                  feedback("duration")], md=4)],
                        className="g-2", id=ids.DURATION_BOX, style=HIDE)),
        section("Trial filters (every filter must pass)",
                html.Div(id=ids.FILTERS),
                dbc.Button("+ Add filter", id=ids.ADD_FILTER, color="primary", outline=True,
                           size="sm")),
        section("Conditions (one datasample per combination; the first column varies slowest)",
                html.Div(id=ids.CONDITIONS),
                dbc.Button("+ Add condition column", id=ids.ADD_CONDITION, color="primary",
                           outline=True, size="sm"),
                feedback("conditions")),
        section("Halves (training / validation, or the two fits of model selection)",
                dbc.Row([
                    dbc.Col(dbc.RadioItems(id=ids.HALVES, value="even_odd", className="small",
                                           options=[{"label": t, "value": k}
                                                    for k, t in logic.HALVES_TEXT.items()]),
                            md=8),
                    dbc.Col([_label("seed"), _text(ids.SEED, "0"), feedback("seed")], md=4,
                            id=ids.SEED_BOX, style=HIDE),
                ], className="g-2"),
                feedback("halves")),
        dbc.Row([
            dbc.Col([_text(ids.NAME, "", placeholder="dataset name"), feedback("name")], md=6),
            dbc.Col([dbc.Button("Preview", id=ids.PREVIEW, color="primary", outline=True,
                                size="sm", className="me-2"),
                     dbc.Button("Save dataset", id=ids.SAVE, color="primary", size="sm")],
                    md=6),
        ], className="g-2 mt-2"),
        feedback("trials"),
        html.Div(id=ids.MESSAGE, className="mt-2"),
    ], id=ids.FORM_BOX, style=HIDE)
    preview = html.Div([
        html.Div(id=ids.SUMMARY),
        dbc.Row([dbc.Col(_label("Raster and PSTH of", html_for=ids.NEURON), width="auto"),
                 dbc.Col(dbc.Select(id=ids.NEURON, options=[], value="0", size="sm"), md=5)],
                className="g-2 align-items-center mb-1"),
        dcc.Graph(id=ids.PSTH, figure=theme.message_figure("", 200),
                  config=theme.graph_config("png", "nwb-preview")),
        dcc.Graph(id=ids.LENGTHS, figure=theme.message_figure("", 120),
                  config=theme.graph_config("png", "window-lengths")),
    ], id=ids.PREVIEW_BOX, style=HIDE)
    return card(
        "Import a recording (NWB)",
        source,
        html.Div(id=ids.FILE_MSG, className="text-danger small mb-1"),
        html.Div(id=ids.FILE_INFO), feedback("file"),
        dbc.Row([dbc.Col(recipe, lg=5), dbc.Col(dcc.Loading(preview, type="dot", delay_show=300),
                                                lg=7)]),
        dcc.Store(id=ids.FILE), dcc.Store(id=ids.REFRESH), dcc.Store(id=ids.UPLOAD_GATE),
        dcc.Store(id=ids.CAP, data=settings.MAX_UPLOAD_BYTES),
        id=ids.CARD,
    )
