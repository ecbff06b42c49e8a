"""Data page layout: generate, upload or load data; raster, latents and rates."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from flowdash import settings
from flowdash.pages import theme
from flowdash.pages.components import card, field
from flowdash.pages.menus import menu
from flowdash.pages.data import ids, logic, nwb_layout


def _input(fid, value, **kw):
    return dbc.Input(id=fid, value=value, type="text", autoComplete="off", **kw)


def fb(fid):
    return {"type": ids.FB, "field": fid}


#: The upload box's description of the CSV format (SpikeData.load_csv).
CSV_HELP = [
    html.Div(["CSV: a spikes table, header ", html.Code("trial,neuron,time"),
              ", one row per spike (trial and neuron numbered from 0, time in s):"]),
    html.Pre("trial,neuron,time\n0,0,0.0132\n0,1,0.0457", className="csv-example"),
    html.Div(["and, to record when each trial ends, a trials table ", html.Code("trial,start,end"),
              ":"]),
    html.Pre("trial,start,end\n0,0.0,2.5", className="csv-example"),
    html.Div("Upload both files together; without a trials table each trial starts at 0 and "
             "has no recorded end."),
]


def layout(**_query):
    generate = card(
        "Generate from a saved model",
        html.Div([dbc.Button(f"Preset: {label}", size="sm", color="primary", outline=True,
                             # the first keeps its plain id (scripts and tests click it)
                             id=ids.PRESET if key == "fig3" else {"type": ids.PRESET, "key": key})
                  for key, (label, _) in logic.PRESETS.items()],
                 className="d-flex flex-wrap gap-1 mb-2"),
        dbc.Row([
            field("Ground-truth model", menu(ids.MODEL, "choose a saved model"),
                  fb(ids.MODEL), width=12),
            field("Trials", _input(ids.TRIALS, "2"), fb(ids.TRIALS), width=4),
            field("Trial duration (s)", _input(ids.DURATION, "10"), fb(ids.DURATION), width=4),
            field("dt (s)", _input(ids.DT, "0.0001"), fb(ids.DT), width=4),
            field("Seed", _input(ids.SEED, "0"), fb(ids.SEED), width=4),
            field("Validation fraction", _input(ids.VAL_FRACTION, "0.5"),
                  fb(ids.VAL_FRACTION), width=4),
            field("Trial end", dbc.Switch(id=ids.TRIAL_END, value=True,
                                          label="record trial end"), width=4),
            field("Dataset name", _input(ids.NAME, "synthetic-1"), fb(ids.NAME), width=12),
        ], className="g-2"),
        html.Div([
            dbc.Button("Generate", id=ids.GENERATE, color="primary", className="me-2"),
            dbc.Button("Cancel", id=ids.CANCEL, color="danger", outline=True, disabled=True),
        ], className="mb-2"),
        dbc.Progress(id=ids.PROGRESS, value=0, label="", className="mb-2 live-status"),
        html.Div(id=ids.STATUS, className="live-status"),
        dcc.Store(id=ids.JOB),
        dcc.Interval(id=ids.GEN_POLL, interval=400),
    )
    upload = card(
        "Upload a dataset",
        dcc.Upload(id=ids.UPLOAD, multiple=True, className="upload-box",
                   max_size=settings.MAX_UPLOAD_BYTES,
                   children=html.Div(["Drop or ", html.A("choose"),
                                      " one .npz, or CSV spikes (+ trials) tables "
                                      f"(at most {settings.MAX_UPLOAD_BYTES // 2**20} MB, "
                                      f"{settings.MAX_NEURONS} neurons)"])),
        html.Div(CSV_HELP, id=ids.CSV_HELP, className="small text-muted mt-2"),
        dbc.Row([field("Dataset name", _input(ids.UPLOAD_NAME, "uploaded-1"), ids.UPLOAD_NAME_FB,
                       width=12)], className="g-2 mt-1"),
        html.Div(id=ids.UPLOAD_MSG),
        dbc.FormText("The validation fraction above decides the split."),
    )
    view = card(
        "Dataset",
        dbc.Row([
            field("Dataset", menu(ids.DATASET, "choose a dataset"), width=5),
            field("Datasample (condition)", dbc.Select(id=ids.SAMPLE, options=[], value=0),
                  width=3),
            field("Trials to show", _input(ids.SHOW_TRIALS, "0, 1"), ids.SHOW_TRIALS_FB,
                  help_text=f"e.g. 0, 1 or 0-4 (at most {logic.MAX_SHOWN_TRIALS})", width=4),
        ], className="g-2"),
        html.Div([dbc.Button("Delete dataset", id=ids.DELETE, color="danger", outline=True,
                             size="sm"), html.Span(id=ids.DELETE_MSG, className="ms-2"),
                  dcc.ConfirmDialog(id=ids.DELETE_CONFIRM)],
                 className="mb-2"),
        html.Div(id=ids.SUMMARY, className="mb-2"),
        dcc.Graph(id=ids.RASTER, figure=theme.message_figure("No dataset chosen.", 260),
                  config=theme.graph_config("png", "raster")),
        dcc.Graph(id=ids.LATENT, figure=theme.message_figure("", 200),
                  config=theme.graph_config("png", "latent")),
        dcc.Graph(id=ids.RATES, figure=theme.message_figure("", 200),
                  config=theme.graph_config("png", "rates")),
    )
    return dbc.Container([
        html.H2("Data", className="mb-3"),
        dbc.Row([dbc.Col([generate, upload], lg=4), dbc.Col(view, lg=8)]),
        nwb_layout.import_card(),   # real recordings (the PMd button fills it with the paper's choices)
    ], fluid=True)
