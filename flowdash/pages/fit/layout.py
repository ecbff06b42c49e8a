"""Fit page layout: the settings form and the live view of a run (Fig. 3 layout)."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from flowdash.pages import theme
from flowdash.pages.components import card, field
from flowdash.pages.fit import ids
from flowdash.pages.fit.view import DEFAULT_LR, PARAMS
from flowdash.pages.model import form as model_form

PARAM_LABELS = {"F": "F (potential)", "F0": "F0 (p0)", "D": "D", "Fr": "Fr (rate shapes)",
                "C": "C (rate scale)"}


def fb(fid):
    return {"type": ids.FB, "field": fid}


def _input(fid, value, **kw):
    return dbc.Input(id=fid, value=value, type="text", autoComplete="off", **kw)


def layout(**_query):
    peq_options = [{"label": "(as saved)", "value": ""}] + [
        {"label": f"start peq from {n}", "value": n} for n in model_form.peq_model_names()]
    settings = card(
        "Fit settings",
        dbc.Button("Preset: 2020 Fig. 3", id=ids.PRESET, color="primary", outline=True,
                   size="sm", className="mb-2"),
        dbc.Row([
            field("Dataset", dbc.Select(id=ids.DATASET, options=[],
                                        placeholder="choose a dataset"), fb("dataset"), width=12),
            field("Initial model", dbc.Select(id=ids.INIT_MODEL, options=[],
                                              placeholder="choose a saved model"),
                  fb("init_model"), width=6),
            field("Initial peq", dbc.Select(id=ids.PEQ_OVERRIDE, options=peq_options,
                                            value=""), width=6),
            field("Parameters to fit", dbc.Checklist(
                id=ids.PARAMS, value=["F"], inline=True,
                options=[{"label": PARAM_LABELS[p], "value": p} for p in PARAMS]),
                fb("params"), width=12),
            field("Optimizer", dbc.RadioItems(id=ids.OPTIMIZER, value="GD", inline=True,
                                              options=[{"label": "GD", "value": "GD"},
                                                       {"label": "ADAM", "value": "ADAM"}]),
                  width=12),
        ], className="g-2"),
        html.Div(dbc.Row([
            field(f"lr {p}", _input({"type": ids.LR, "param": p}, DEFAULT_LR[p], size="sm"),
                  fb(f"lr-{p}"), width=4) for p in PARAMS], className="g-2"), id=ids.GD_BOX),
        html.Div(dbc.Row([field("ADAM step α", _input(ids.ALPHA, "0.05"), fb("alpha"), width=4)],
                         className="g-2"), id=ids.ADAM_BOX, style={"display": "none"}),
        dbc.Row([
            field("Epochs", _input(ids.EPOCHS, "50"), fb("epochs"), width=4),
            field("Mini-batches", _input(ids.BATCHES, "1"), fb("batches"), width=4),
            field("Nv (eigenpairs)", _input(ids.NV, "64"), fb("nv"),
                  help_text="empty = N − 2", width=4),
            field("Snapshot epochs", _input(ids.SNAPSHOTS, "1, 6, 13, 50"), fb("snapshots"),
                  width=8),
            field("Seed", _input(ids.SEED, "0"), fb("seed"), width=4),
            field("Pace (s per epoch)", _input(ids.PACE, "0"), fb("pace"),
                  help_text="> 0 slows a fit down for a class to watch", width=12),
            field("Run name", _input(ids.NAME, "", placeholder="optional"), fb("name"), width=12),
        ], className="g-2"),
        html.Div([
            dbc.Button("Start fit", id=ids.START, color="primary", className="me-2"),
            dbc.Button("Cancel run", id=ids.CANCEL, color="danger", outline=True, disabled=True),
        ]),
        html.Div(id=ids.MESSAGE, className="mt-2"),
    )
    live = card(
        "Live view",
        dbc.Row([
            dbc.Col(dbc.Select(id=ids.RUN_SELECT, options=[], placeholder="follow a fit run"),
                    md=8),
            dbc.Col(html.Div(id=ids.STATUS), md=4, className="d-flex align-items-center"),
        ], className="g-2 mb-2"),
        dbc.Progress(id=ids.PROGRESS, value=0, label="", striped=True, animated=True,
                     className="mb-1"),
        html.Div(id=ids.PROGRESS_TEXT, className="mb-2 text-muted"),
        dbc.Row([
            dbc.Col(dcc.Graph(id=ids.NLL_GRAPH, config=theme.graph_config("png", "nll"),
                              figure=theme.message_figure("Start a fit or choose a run.", 400)),
                    xl=6),
            dbc.Col(dcc.Graph(id=ids.POTENTIAL_GRAPH,
                              config=theme.graph_config("png", "potential"),
                              figure=theme.message_figure("", 400)), xl=6),
        ], className="g-2"),
        dcc.Graph(id=ids.PARAMS_GRAPH, config=theme.graph_config("png", "params"),
                  figure=theme.message_figure("", 160)),
        dcc.Interval(id=ids.INTERVAL, interval=500, disabled=False),
        dcc.Store(id=ids.CURSOR),
    )
    return dbc.Container([
        html.H2("Fit", className="mb-3"),
        dbc.Row([dbc.Col(settings, xl=3, lg=4), dbc.Col(live, xl=9, lg=8)]),
    ], fluid=True)
