"""Compare page layout: the four fits of the 2021 Fig. 3 side by side, for a projector.

A 2 × 2 grid, one panel per fit (full model; no absorption step; reflecting;
reflecting with an equilibrium p0). Below 1200 px (a projector's 1024 × 768)
the settings start hidden, so the four panels fill the screen; *Presentation*
hides everything but the panels.
"""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from flowdash.jobs.ablation import ABLATIONS
from flowdash.pages import theme
from flowdash.pages.compare import ids
from flowdash.pages.compare.view import DEFAULTS, RELATIVE, SHIFTED
from flowdash.pages.components import field, live_page
from flowdash.pages.fit.view import NLL_SCALES
from flowdash.pages.model import form as model_form

INTRO = ("One dataset of absorbing trials with recorded trial ends, fitted four ways from the "
         "same start: the full non-stationary model, and without each of its non-stationary "
         "parts (Genkin, Hughes & Engel 2021, Fig. 3). Dashed: the ground truth's NLL in each "
         "fit's own likelihood setting. Grey: the true potential.")


def fb(key):
    return {"type": ids.FB, "field": key}


def _input(fid, value, **kw):
    return dbc.Input(id=fid, value=value, type="text", autoComplete="off", **kw)


def _settings():
    peq_options = [{"label": n, "value": n} for n in model_form.peq_model_names()]
    return dbc.Card([
        dbc.CardHeader(html.H5("Four fits of one dataset", className="mb-0")),
        dbc.CardBody([
            dbc.Row([
                field("Dataset (absorbing, with trial ends)",
                      dbc.Select(id=ids.DATASET, options=[], placeholder="choose a dataset"),
                      fb("dataset"), width=12),
                field("Initial model (p0, D and rates are kept)",
                      dbc.Select(id=ids.INIT_MODEL, options=[],
                                 placeholder="choose a saved model"), fb("init_model"),
                      help_text="the dataset's ground truth when it is saved", width=12),
                field("Start from peq", dbc.Select(id=ids.PEQ, options=peq_options,
                                                   value=DEFAULTS["peq"]), fb("peq"), width=6),
                field("Grid Ne", _input(ids.NE, DEFAULTS["ne"]), fb("ne"), width=6),
                field("Epochs", _input(ids.EPOCHS, DEFAULTS["epochs"]), fb("epochs"), width=6),
                field("lr F (GD)", _input(ids.LR, DEFAULTS["lr"]), fb("lr"), width=6),
                field("Potentials at epochs", _input(ids.SHOWN, DEFAULTS["shown"]), fb("shown"),
                      width=12, help_text="the paper's 4, 17, 40"),
                field("Pace (s per epoch)", _input(ids.PACE, DEFAULTS["pace"]), fb("pace"),
                      width=6, help_text="> 0 slows the fits for a class"),
                field("Name", _input(ids.NAME, "", placeholder="optional"), fb("name"), width=6),
            ], className="g-2"),
            html.Div([
                dbc.Button("Start the four fits", id=ids.START, color="primary",
                           className="me-2"),
                dbc.Button("Cancel them", id=ids.CANCEL, color="danger", outline=True),
            ], className="mt-1"),
            html.Div(id=ids.MESSAGE, className="mt-2"),
            html.Hr(),
            field("Show a comparison", dbc.Select(id=ids.FOLLOW, options=[],
                                                  placeholder="no comparison yet"), width=12),
        ]),
    ], className="mb-3")


def _panel(ablation):
    return html.Div([
        html.Div(id={"type": ids.PANEL_HEAD, "key": ablation.key},
                 className="compare-head live-status"),
        # the box's CSS class sets the height (presentation makes it half the screen)
        html.Div(dcc.Graph(id={"type": ids.GRAPH, "key": ablation.key}, responsive=True,
                           style={"height": "100%"},
                           config=theme.graph_config("png", f"compare-{ablation.key}"),
                           figure=theme.message_figure(ablation.label, 300)),
                 className="compare-graph"),
    ], className="compare-panel")


def _live():
    panels = [_panel(a) for a in ABLATIONS]
    return html.Div([
        html.Div([
            dbc.RadioItems(id=ids.SCALE, value=SHIFTED, inline=True, className="me-auto",
                           persistence=True, persistence_type="local",
                           options=[{"label": NLL_SCALES[k], "value": k}
                                    for k in (SHIFTED, RELATIVE)]),
            dbc.Button("Presentation", id=ids.PRESENT, color="primary", outline=True,
                       size="sm"),
        ], className="d-flex align-items-center flex-wrap gap-2 mb-1"),
        html.Div(id=ids.KEY, className="compare-key"),
        html.Div(id=ids.NOTE, className="compare-note"),
        dbc.Row([dbc.Col(p, md=6, className="mb-2") for p in panels], className="g-2"),
        dcc.Interval(id=ids.INTERVAL, interval=700, disabled=False),
        dcc.Store(id=ids.POLL_TICK), dcc.Store(id=ids.POLL_DONE), dcc.Store(id=ids.CURSOR),
        dcc.Store(id=ids.GROUP, storage_type="local"),
    ])


def layout(**_query):
    return live_page(ids, "Compare: what each non-stationary part is worth", _settings(), _live(),
                     "compare-page", intro=INTRO)
