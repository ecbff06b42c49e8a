"""Runs page layout: every run, its settings and plots, overlays, export."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from flowdash.pages import theme
from flowdash.pages.components import card
from flowdash.pages.fit.view import NLL_SCALES, SHIFTED
from flowdash.pages.menus import menu
from flowdash.pages.runs import ids
from flowdash.pages.runs.listing import table_card


#: What the plot areas say before they have something to show.
OPEN_A_RUN = "Open a run to see its plots."
TICK_RUNS = "Tick fit runs to overlay."


def placeholder(text: str):
    """A plot area with nothing to show: text, not a graph, so that opening the page
    does not fetch and start plotly.js (4.8 MB) before the table can be used."""
    return html.P(text, className="text-muted my-3")


def run_graphs(nll, potential, params, fmt: str):
    """The open run's three plots; each camera button exports ``fmt`` (png or svg)."""
    def graph(graph_id, figure, name):
        return dcc.Graph(id=graph_id, figure=figure, config=theme.graph_config(fmt, name))

    return [dbc.Row([dbc.Col(graph(ids.NLL_GRAPH, nll, "nll"), xl=6),
                     dbc.Col(graph(ids.POTENTIAL_GRAPH, potential, "potential"), xl=6)],
                    className="g-2"),
            graph(ids.PARAMS_GRAPH, params, "params")]


def overlay_graph(figure, fmt: str):
    """The overlay of the ticked runs' NLL curves; its camera button exports ``fmt``."""
    return dcc.Graph(id=ids.OVERLAY_GRAPH, figure=figure,
                     config=theme.graph_config(fmt, "overlay"))


def layout(**_query):
    table = table_card()
    detail = card(
        "Run",
        dbc.Row([
            dbc.Col(menu(ids.OPEN, "open a run (type to search)"), md=5),
            dbc.Col([
                dbc.Button("Cancel", id=ids.CANCEL, color="warning", outline=True,
                           className="me-2", disabled=True),
                dbc.Button("Delete", id=ids.DELETE, color="danger", outline=True,
                           className="me-2"),
                dbc.Button("Export .npz", id=ids.EXPORT_NPZ, color="primary", outline=True,
                           className="me-2"),
                dbc.Button("Export settings .json", id=ids.EXPORT_JSON, color="primary",
                           outline=True),
                dcc.ConfirmDialog(id=ids.DELETE_CONFIRM),
            ], md=7),
        ], className="g-2 mb-2"),
        dbc.InputGroup([
            dbc.Button("Continue fit for", id=ids.CONTINUE, color="primary", outline=True,
                       disabled=True),
            dbc.Input(id=ids.MORE, value="100", type="text", autoComplete="off",
                      style={"maxWidth": "7rem"}),
            dbc.InputGroupText("more epochs"),
        ], size="sm", className="mb-2 w-auto"),
        dbc.Row([
            dbc.Col(dbc.Label("Figure download format (camera icon on each plot):",
                              html_for=ids.FORMAT), width="auto"),
            dbc.Col(dbc.RadioItems(id=ids.FORMAT, value="png", inline=True,
                                   options=[{"label": "PNG", "value": "png"},
                                            {"label": "SVG", "value": "svg"}]), width="auto"),
        ], className="g-2 mb-2"),
        html.Div(id=ids.MESSAGE),
        html.Div(id=ids.DETAILS),
        html.Div([dbc.Label("NLL of a fit:", className="me-2 mb-0"),
                  dbc.RadioItems(id=ids.NLL_SCALE, value=SHIFTED, inline=True,
                                 options=[{"label": label, "value": key}
                                          for key, label in NLL_SCALES.items()])],
                 className="d-flex align-items-center mb-1"),
        html.Div(id=ids.GT_NOTE, className="small text-muted"),
        html.Div(placeholder(OPEN_A_RUN), id=ids.PLOTS),
        dcc.Download(id=ids.DOWNLOAD_NPZ), dcc.Download(id=ids.DOWNLOAD_JSON),
    )
    overlay = card(
        "Compare runs",
        menu(ids.OVERLAY_SELECT, "fit runs to overlay (type to search)", multi=True, value=[]),
        html.Div(placeholder(TICK_RUNS), id=ids.OVERLAY_PLOT),
    )
    return dbc.Container([html.H2("Runs", className="mb-3"), table, detail, overlay],
                         fluid=True)
