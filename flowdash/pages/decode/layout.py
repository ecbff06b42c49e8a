"""Decode page layout: choose data, a model and trials; the decoded paths over the spikes."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from flowdash.jobs.viterbi import MAX_TRIALS
from flowdash.pages import theme
from flowdash.pages.components import field
from flowdash.pages.decode import ids


def fb(setting):
    return {"type": ids.FB, "field": setting}


def _input(fid, value, **kw):
    return dbc.Input(id=fid, value=value, type="text", autoComplete="off", **kw)


def _form():
    return [
        dbc.Row([
            field("Dataset", dbc.Select(id=ids.DATASET, options=[],
                                        placeholder="choose a dataset"), fb("dataset"), width=12),
            html.Div(field("Datasample (condition)", dbc.Select(id=ids.SAMPLE, options=[],
                                                                value="0"),
                           fb("datasample"), width=12), id=ids.SAMPLE_BOX,
                     style={"display": "none"}),
            field("Model", dbc.Select(id=ids.MODEL, options=[],
                                      placeholder="a saved model or a fit run"), fb("model"),
                  width=12, help_text="a saved model (e.g. the ground truth), or a fit run's "
                                      "final model or recorded epoch"),
            html.Div(field("Model of the fit", dbc.Select(id=ids.EPOCH, options=[]),
                           fb("epoch"), width=12), id=ids.EPOCH_BOX, style={"display": "none"}),
            field("Trials", _input(ids.TRIALS, "0-4"), fb("trials"), width=6,
                  help_text=f"e.g. 0-4, 7 (at most {MAX_TRIALS})"),
            field("Nv (eigenpairs)", _input(ids.NV, ""), fb("Nv"), width=6,
                  help_text="1 … N − 2; empty: N − 2; a fit's model: the fit's"),
            field("Run name", _input(ids.NAME, "", placeholder="optional"), fb("name"), width=12),
        ], className="g-2"),
        html.Div([
            dbc.Button("Decode", id=ids.START, color="primary", className="me-2"),
            dbc.Button("Cancel", id=ids.CANCEL, color="danger", outline=True, disabled=True),
        ]),
        html.Div(id=ids.MESSAGE, className="mt-2"),
        html.Div(id=ids.CANCEL_MSG, className="mt-2"),
    ]


def _paths():
    return dbc.Card([
        dbc.CardHeader(html.Div([
            html.H5("Decoded paths", className="mb-0 me-auto"),
            dbc.Button("Export paths .npz", id=ids.EXPORT_NPZ, color="primary", outline=True,
                       size="sm", disabled=True),
            dbc.Button("Export settings .json", id=ids.EXPORT_JSON, color="primary",
                       outline=True, size="sm", disabled=True),
        ], className="d-flex align-items-center flex-wrap gap-2")),
        dbc.CardBody([
            dbc.Row([
                dbc.Col(dbc.Select(id=ids.RUN_SELECT, options=[],
                                   placeholder="follow a decode run"), md=8),
                dbc.Col(html.Div(id=ids.STATUS, className="live-status"), md=4,
                        className="d-flex align-items-center"),
            ], className="g-2 mb-2"),
            dbc.Progress(id=ids.PROGRESS, value=0, label="", className="mb-1 live-status"),
            html.Div(id=ids.PROGRESS_TEXT, className="mb-2 text-muted live-status"),
            dbc.Row([
                dbc.Col(dbc.Label("Trial", html_for=ids.TRIAL, className="mb-0"), width="auto"),
                dbc.Col(dbc.Select(id=ids.TRIAL, options=[]), md=6),
            ], className="g-2 mb-2 align-items-center"),
            dcc.Graph(id=ids.GRAPH, config=theme.graph_config("png", "decoded-path"),
                      figure=theme.message_figure("Decode trials or choose a decode run.", 420)),
            html.Div(id=ids.NOTE, className="small text-muted"),
            dcc.Interval(id=ids.INTERVAL, interval=400, disabled=False),
            dcc.Store(id=ids.POLL_TICK), dcc.Store(id=ids.POLL_DONE), dcc.Store(id=ids.SHOWN),
            dcc.Download(id=ids.DOWNLOAD_NPZ), dcc.Download(id=ids.DOWNLOAD_JSON),
        ]),
    ], className="mb-3")


def layout(**_query):
    settings = dbc.Card([dbc.CardHeader(html.H5("Decode settings", className="mb-0")),
                         dbc.CardBody(_form())], className="mb-3")
    return dbc.Container([
        html.H2("Decode", className="mb-1"),
        html.P("The most likely latent path of each chosen trial given its spikes and a "
               "model (Viterbi, MATH.md §10.4).", className="text-muted"),
        dbc.Row([dbc.Col(settings, xl=3, lg=4), dbc.Col(_paths(), xl=9, lg=8)]),
    ], fluid=True)
