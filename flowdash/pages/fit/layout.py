"""Fit page layout: the settings form and the live view of a run.

Below 1200 px (a projector's 1024 × 768) the settings column starts
collapsed above the live view, so both live plots fit on one screen;
*Presentation* hides everything but the live view and draws it large.
"""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from flowdash.pages import linesearch, theme
from flowdash.pages.components import field, live_page
from flowdash.pages.menus import menu
from flowdash.pages.fit import figures, ids
from flowdash.pages.fit.view import (AS_SAVED, DEFAULT_LR, LIKELIHOODS, NLL_SCALES, OVERLAY,
                                     PAPER, PARAMS, PRESETS, SHIFTED)
from flowdash.settings import EQUILIBRIUM_P0
from flowdash.pages.model import form as model_form

PARAM_LABELS = {"F": "F (potential)", "F0": "F0 (p0)", "D": "D", "Fr": "Fr (rate shapes)",
                "C": "C (rate scale)"}


def fb(fid):
    return {"type": ids.FB, "field": fid}


def _input(fid, value, **kw):
    return dbc.Input(id=fid, value=value, type="text", autoComplete="off", **kw)


def optimizer_choice(page_ids, fb) -> list:
    """The fitted parameters and the optimizer: one form part for the Fit and Model
    selection pages, each with its own ids (``page_ids``) and feedback ids (``fb``)."""
    return [
        field("Parameters to fit", dbc.Checklist(
            id=page_ids.PARAMS, value=["F"], inline=True,
            options=[{"label": PARAM_LABELS[p], "value": p} for p in PARAMS]),
            fb("params"), width=12),
        field("Optimizer", dbc.RadioItems(id=page_ids.OPTIMIZER, value="GD", inline=True,
                                          options=[{"label": "GD", "value": "GD"},
                                                   {"label": "ADAM", "value": "ADAM"}]),
              width=12),
    ]


def step_size_boxes(page_ids, fb, text_input) -> list:
    """GD's learning rates (one per parameter) and ADAM's step, shown by the optimizer."""
    return [
        html.Div(dbc.Row([
            field(f"lr {p}", text_input({"type": page_ids.LR, "param": p}, DEFAULT_LR[p], size="sm"),
                  fb(f"lr-{p}"), width=4) for p in PARAMS], className="g-2"), id=page_ids.GD_BOX),
        html.Div(dbc.Row([field("ADAM step α", text_input(page_ids.ALPHA, "0.05"), fb("alpha"), width=4)],
                         className="g-2"), id=page_ids.ADAM_BOX, style={"display": "none"}),
    ]


def _form():
    peq_options = [{"label": "as saved in the model", "value": AS_SAVED}] + [
        {"label": n, "value": n} for n in model_form.peq_model_names()]
    p0_options = [{"label": "as saved in the model", "value": AS_SAVED},
                  {"label": "equilibrium (p0 = peq)", "value": EQUILIBRIUM_P0}] + peq_options[1:]
    return [
        html.Div([dbc.Button(f"Preset: {label}", color="primary", outline=True, size="sm",
                             # the first keeps its plain id (scripts and tests click it)
                             id=ids.PRESET if key == "fig3" else {"type": ids.PRESET, "key": key})
                  for key, (label, _) in PRESETS.items()],
                 className="d-flex flex-wrap gap-1 mb-2"),
        dbc.Row([
            field("Dataset", menu(ids.DATASET, "choose a dataset"), fb("dataset"), width=12),
            field("Initial model", menu(ids.INIT_MODEL, "choose a saved model"),
                  fb("init_model"), width=12),
            field("Initial peq (start the fit from)",
                  dbc.Select(id=ids.PEQ_OVERRIDE, options=peq_options, value=AS_SAVED), width=12),
            # full and half widths: the settings column is narrow, and "as saved in the
            # model" / "as saved" must show whole
            field("Initial p0", dbc.Select(id=ids.P0_OVERRIDE, options=p0_options,
                                           value=AS_SAVED), fb("p0"), width=12),
            field("Initial D", _input(ids.D_OVERRIDE, "", placeholder="as saved"), fb("d"),
                  width=6),
            field("Grid Ne", _input(ids.NE_OVERRIDE, "", placeholder="as saved"), fb("ne"),
                  width=6),
            field("Likelihood (boundary setting)", dbc.Select(
                id=ids.LIKELIHOOD, value=AS_SAVED,
                options=[{"label": label, "value": key}
                         for key, (_, label) in LIKELIHOODS.items()]), fb("likelihood"),
                  help_text="fit absorbing data without a non-stationary part "
                            "(the 2021 ablations)", width=12),
            *optimizer_choice(ids, fb),
        ], className="g-2"),
        *step_size_boxes(ids, fb, _input),
        dbc.Row([
            field("Epochs", _input(ids.EPOCHS, "50"), fb("epochs"), width=6),
            field("Mini-batches", _input(ids.BATCHES, "1"), fb("batches"), width=6,
                  help_text="at most the training trials"),
            field("Nv (eigenpairs)", _input(ids.NV, "64"), fb("nv"), width=6,
                  help_text="1 … N − 2; empty: N − 2"),
            field("Seed", _input(ids.SEED, "0"), fb("seed"), width=6),
            dbc.Col(html.Div([
                dbc.Label("Snapshot epochs", html_for=ids.SNAPSHOTS, className="mb-1"),
                _input(ids.SNAPSHOTS, "1, 6, 13, 50"),
                dbc.FormFeedback(id=fb("snapshots"), type="invalid"),
                html.Div(id=ids.SNAPSHOT_WARN, className="small text-warning-emphasis"),
            ], className="mb-2"), md=12),
            field("Pace (s per epoch)", _input(ids.PACE, "0"), fb("pace"),
                  help_text="> 0 slows a fit down for a class to watch", width=12),
            field("Run name", _input(ids.NAME, "", placeholder="optional"), fb("name"), width=12),
        ], className="g-2"),
        linesearch.block(ids.LS, fb),
        html.Div([
            dbc.Button("Start fit", id=ids.START, color="primary", className="me-2"),
            dbc.Button("Cancel run", id=ids.CANCEL, color="danger", outline=True, disabled=True),
        ]),
        html.Div(id=ids.ESTIMATE, className="small mt-1 text-muted"),
        html.Div(id=ids.MESSAGE, className="mt-2"),
        html.Div(id=ids.CANCEL_MSG, className="mt-2"),
    ]


def _graph(css: str, **kw):
    """A graph that fills its box; the box's CSS class sets the height (presentation
    makes it large)."""
    return html.Div(dcc.Graph(responsive=True, style={"height": "100%"}, **kw), className=css)


def _live():
    return dbc.Card([
        dbc.CardHeader(html.Div([
            html.H5("Live view", className="mb-0 me-3"),
            dbc.RadioItems(id=ids.VIEW, value=OVERLAY, inline=True, className="me-3",
                           persistence=True, persistence_type="local",
                           options=[{"label": "Paper (Fig. 3)", "value": PAPER},
                                    {"label": "Overlay", "value": OVERLAY}]),
            dbc.RadioItems(id=ids.NLL_SCALE, value=SHIFTED, inline=True, className="me-auto",
                           persistence=True, persistence_type="local",
                           options=[{"label": label, "value": key}
                                    for key, label in NLL_SCALES.items()]),
            dbc.Button("Export Fig. 3 PNG", id=ids.EXPORT_PNG, color="primary", outline=True,
                       size="sm", style={"display": "none"}),
            dbc.Button("Presentation", id=ids.PRESENT, color="primary", outline=True, size="sm"),
        ], className="d-flex align-items-center flex-wrap gap-2")),
        dbc.CardBody([
            dbc.Row([
                dbc.Col(menu(ids.RUN_SELECT, "follow a fit run (type to search)"), md=8),
                dbc.Col(html.Div(id=ids.STATUS, className="live-status"), md=4,
                        className="d-flex align-items-center"),
            ], className="g-2 mb-2"),
            dbc.Progress(id=ids.PROGRESS, value=0, label="", striped=False, animated=False,
                         className="mb-1 live-status"),
            dbc.InputGroup([
                dbc.Button("Continue for", id=ids.CONTINUE, color="primary", outline=True,
                       disabled=True),
                dbc.Input(id=ids.MORE, value="100", type="text", autoComplete="off",
                          style={"maxWidth": "7rem"}),
                dbc.InputGroupText("more epochs"),
            ], size="sm", className="mb-1 w-auto fit-continue"),
            html.Div(id=ids.PROGRESS_TEXT, className="mb-2 text-muted live-status"),
            html.Div(id=ids.LIVE_WARNING),
            html.Div(id=ids.GT_NOTE, className="small text-muted mb-1"),
            html.Div(dbc.Row([
                dbc.Col(_graph("live-graph", id=ids.NLL_GRAPH,
                               config=theme.graph_config("png", "nll"),
                               figure=theme.message_figure("Start a fit or choose a run.")), lg=6),
                dbc.Col(_graph("live-graph", id=ids.POTENTIAL_GRAPH,
                               config=theme.graph_config("png", "potential"),
                               figure=theme.message_figure("")), lg=6),
            ], className="g-2"), id=ids.OVERLAY_BOX),
            html.Div(_graph("paper-graph", id=ids.PAPER_GRAPH,
                            figure=theme.message_figure("Start a fit or choose a run."),
                            config={"displaylogo": False,
                                    "toImageButtonOptions": figures.PAPER_EXPORT}),
                     id=ids.PAPER_BOX, style={"display": "none"}),
            dcc.Graph(id=ids.PARAMS_GRAPH, config=theme.graph_config("png", "params"),
                      figure=theme.message_figure("", 160)),
            dcc.Interval(id=ids.INTERVAL, interval=500, disabled=False),
            dcc.Store(id=ids.POLL_TICK), dcc.Store(id=ids.POLL_DONE),
            dcc.Store(id=ids.CURSOR),
            html.Div(id=ids.EXPORT_DONE, hidden=True),
        ]),
    ], className="mb-3")


def layout(**_query):
    settings = dbc.Card([dbc.CardHeader(html.H5("Fit settings", className="mb-0")),
                         dbc.CardBody(_form())], className="mb-3")
    return live_page(ids, "Fit", settings, _live(), "fit-page")
