"""Model selection page layout: the two halves and their fit settings, the followed
selection's live analysis (the 2020 paper's Fig. 5; per condition the 2024 Fig. 3).

Below 1200 px (a projector's 1024 × 768) the settings start hidden, as on the
Fit page, so the four panels fit on one screen.
"""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from flowdash.analysis import FCA_FIELDS
from flowdash.core.selection import FCASettings
from flowdash.pages import linesearch, theme
from flowdash.pages.components import field, live_page
from flowdash.pages.fit.layout import optimizer_choice, step_size_boxes
from flowdash.pages.fit.view import AS_SAVED
from flowdash.pages.model import form as model_form
from flowdash.pages.selection import ids
from flowdash.pages.selection.view import FCA_HELP, FCA_LABELS, HALVES, POLL_MS


def fb(fid):
    return {"type": ids.FB, "field": fid}


def _input(fid, value, **kw):
    return dbc.Input(id=fid, value=value, type="text", autoComplete="off", **kw)


def _form():
    peq_options = [{"label": "as saved in the model", "value": AS_SAVED}] + [
        {"label": n, "value": n} for n in model_form.peq_model_names()]
    return [
        dbc.Row([
            field("Dataset", dbc.Select(id=ids.DATASET, options=[],
                                        placeholder="choose a dataset"), fb("dataset"), width=12),
            field("Two halves", dbc.RadioItems(id=ids.HALVES, value="even_odd",
                                               options=[{"label": l, "value": v}
                                                        for v, l in HALVES]),
                  fb("halves"), width=12),
            html.Div(field("Seed of the random halves", _input(ids.HALVES_SEED, "0"),
                           width=12), id=ids.SEED_BOX, style={"display": "none"}),
            html.Div(field("Dataset of half 2", dbc.Select(id=ids.DATASET2, options=[],
                                                          placeholder="choose a dataset"),
                           fb("dataset2"), width=12),
                     id=ids.DATASET2_BOX, style={"display": "none"}),
            dbc.Col(dbc.FormText(id=ids.VALIDATION_NOTE), md=12, className="mb-2"),
            field("Initial model (both halves)", dbc.Select(id=ids.INIT_MODEL, options=[],
                                                            placeholder="choose a saved model"),
                  fb("init_model"), width=12),
            field("Initial peq", dbc.Select(id=ids.PEQ_OVERRIDE, options=peq_options,
                                            value="cos_square"), width=12),
            *optimizer_choice(ids, fb),
        ], className="g-2"),
        *step_size_boxes(ids, fb, _input),
        dbc.Row([
            field("Epochs (each half)", _input(ids.EPOCHS, "1000"), fb("epochs"), width=6),
            field("Mini-batches", _input(ids.BATCHES, "1"), fb("batches"), width=6),
            field("Nv (eigenpairs)", _input(ids.NV, "64"), fb("nv"), width=6),
            field("Seed", _input(ids.SEED, "0"), fb("seed"), width=6),
            field("Selection name", _input(ids.NAME, "", placeholder="optional"), fb("name"),
                  width=12),
        ], className="g-2"),
        linesearch.block(ids.LS, fb),
        dbc.Button("Start both fits", id=ids.START, color="primary", className="me-2"),
        html.Div(id=ids.MESSAGE, className="mt-2"),
        html.Hr(),
        html.Div("Or pair two fits that ran already:", className="small mb-1"),
        dbc.Select(id=ids.PAIR_RUN1, options=[], placeholder="fit of half 1", size="sm",
                   className="mb-1"),
        dbc.Select(id=ids.PAIR_RUN2, options=[], placeholder="fit of half 2", size="sm",
                   className="mb-1"),
        dbc.Button("Pair them", id=ids.PAIR, color="primary", outline=True, size="sm"),
    ]


def _fca_settings():
    defaults = FCASettings.paper_2020()

    def one(name):
        return dbc.Col([
            html.Label(FCA_LABELS[name], className="form-label mb-0 small text-nowrap",
                       title=FCA_HELP[name]),
            dbc.Input(id={"type": ids.FCA, "name": name}, value=str(getattr(defaults, name)),
                      type="text", autoComplete="off", size="sm", debounce=200),
            dbc.FormFeedback(id={"type": ids.FCA_FB, "name": name}, type="invalid"),
        ], xs=3, lg=True)

    return html.Div([
        dbc.Row([one(name) for name, _ in FCA_FIELDS], className="g-1"),
        html.Div([
            html.Span("Defaults of ", className="small me-1"),
            dbc.Button("2020 (equilibrium)", id={"type": ids.FCA_PRESET, "paper": "2020"},
                       color="primary", outline=True, size="sm", className="me-1 py-0"),
            dbc.Button("2024 (non-equilibrium)", id={"type": ids.FCA_PRESET, "paper": "2024"},
                       color="primary", outline=True, size="sm", className="py-0"),
        ], className="mt-1"),
    ], className="mb-2")


def _graph(gid, name):
    """A graph that fills its box; the box's CSS class sets the height (smaller on a projector)."""
    return html.Div(dcc.Graph(id=gid, config=theme.graph_config("png", name), responsive=True,
                              style={"height": "100%"}, figure=theme.message_figure("", 330)),
                    className="sel-graph")


def _live():
    return dbc.Card([
        dbc.CardHeader(html.Div([
            html.H5("Feature consistency", className="mb-0 me-3"),
            dbc.Select(id=ids.SELECT, options=[], placeholder="follow a selection",
                       style={"maxWidth": "22rem"}, className="me-2", size="sm"),
            dbc.Button("Cancel both", id=ids.CANCEL, color="danger", outline=True, size="sm"),
            dbc.InputGroup([
                dbc.Button("Continue both for", id=ids.CONTINUE, color="primary", outline=True),
                dbc.Input(id=ids.MORE, value="1000", type="text", autoComplete="off",
                          style={"maxWidth": "6rem"}),
                dbc.InputGroupText("more epochs"),
            ], size="sm", className="w-auto"),
        ], className="d-flex align-items-center flex-wrap gap-2")),
        dbc.CardBody([
            html.Div(id=ids.ACTION_MSG),
            html.Div(id=ids.HALF_STATUS, className="live-status"),
            _fca_settings(),
            dbc.Alert(id=ids.NOTE, color="light", className="py-1 mb-2 live-status"),
            dbc.Row([dbc.Col(_graph(ids.FC_GRAPH, "fc-epoch"), lg=6),
                     dbc.Col(_graph(ids.NLL_GRAPH, "nll-fc"), lg=6)], className="g-2"),
            dbc.Row([dbc.Col(_graph(ids.JS_GRAPH, "js-fc"), lg=6),
                     dbc.Col(_graph(ids.POT_GRAPH, "selected-potentials"), lg=6)],
                    className="g-2"),
            html.Div(dcc.Graph(id=ids.COND_GRAPH, config=theme.graph_config("png", "conditions"),
                               figure=theme.message_figure("", 200)),
                     id=ids.COND_BOX, style={"display": "none"}),
            html.Hr(),
            dbc.Row([
                dbc.Col(dbc.InputGroup([
                    dbc.InputGroupText("Save the selected model of"),
                    dbc.Select(id=ids.SAVE_HALF, value="0", style={"maxWidth": "7rem"},
                               options=[{"label": "half 1", "value": "0"},
                                        {"label": "half 2", "value": "1"}]),
                    dbc.Input(id=ids.SAVE_NAME, placeholder="as model named…", type="text",
                              autoComplete="off"),
                    dbc.Button("Save model", id=ids.SAVE, color="primary"),
                    dbc.FormFeedback(id=ids.SAVE_FB, type="invalid"),
                ], size="sm"), lg=8),
                dbc.Col([
                    dbc.Button("Export .npz", id=ids.EXPORT_NPZ, color="primary", outline=True,
                               size="sm", className="me-2"),
                    dbc.Button("Export .json", id=ids.EXPORT_JSON, color="primary", outline=True,
                               size="sm"),
                ], lg=4),
            ], className="g-2"),
            html.Div(id=ids.SAVE_MSG, className="mt-2"),
            dcc.Download(id=ids.DOWNLOAD_NPZ), dcc.Download(id=ids.DOWNLOAD_JSON),
            dcc.Interval(id=ids.INTERVAL, interval=POLL_MS, disabled=False),
            dcc.Store(id=ids.POLL_TICK), dcc.Store(id=ids.POLL_DONE), dcc.Store(id=ids.CURSOR),
        ]),
    ], className="mb-3")


def layout(**_query):
    settings = dbc.Card([dbc.CardHeader(html.H5("Two fits, one start", className="mb-0")),
                         dbc.CardBody(_form())], className="mb-3")
    return live_page(ids, "Model selection", settings, _live(), "selection-page")
