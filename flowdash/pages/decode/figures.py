"""Decode page figures: pure data in, go.Figure out (no dash import)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flowdash.names import plot_text
from flowdash.pages import theme

#: Colours of the decoded and the true path (the neurons take the colour cycle).
PATH_COLOR = theme.OKABE_ITO["vermillion"]
TRUE_COLOR = theme.TRUTH_COLOR
RASTER_TITLE = "neuron"


def path_figure(t, x, ids, n_neurons: int, x_grid, fr, true=None, title: str = "",
                xrange=None) -> go.Figure:
    """A decoded path over the spike raster of its trial, with the model's rates beside it.

    Left, sharing the time axis: the raster (one row per neuron) above the
    decoded path (and the true one when known). Right, sharing the latent
    axis with the path: the rates f(x) of the model, so that one reads where
    each neuron's spikes put the path.

    Parameters
    ----------
    t, x : arrays, shape (S + 1,)
        The path's times (s from the trial start: 0, then each interval's
        end) and latent positions (a.u.).
    ids : array of int, shape (S,)
        The neuron of the spike that ends each interval (-1: the trial end).
    n_neurons : int
    x_grid : array, shape (N,)
        The model's grid (a.u.).
    fr : array, shape (N, n_neurons)
        The model's rates at the grid nodes, Hz.
    true : (times, positions) or None
        The latent path that generated the data (s, a.u.), when known.
    title : str
        Plain text (escaped here).
    xrange : (lo, hi), optional
        The latent axis' range (default: the grid's).
    """
    t, x = np.asarray(t, float), np.asarray(x, float)
    ids, x_grid = np.asarray(ids, int), np.asarray(x_grid, float)
    fr = np.asarray(fr, float).reshape(len(x_grid), -1)
    fig = make_subplots(rows=2, cols=2, shared_xaxes="columns", shared_yaxes="rows",
                        column_widths=[0.8, 0.2], row_heights=[0.28, 0.72],
                        horizontal_spacing=0.03, vertical_spacing=0.04,
                        specs=[[{}, None], [{}, {}]])
    fig.update_layout(template=theme.TEMPLATE, height=520, legend=dict(orientation="h", y=-0.14),
                      margin=dict(l=70, r=20, t=50, b=90))
    if title:
        fig.update_layout(title=dict(text=plot_text(title), x=0.01, xanchor="left",
                                     font_size=17))
    spike_t = t[1:][:len(ids)]
    for n in range(n_neurons):
        times = spike_t[ids == n]
        fig.add_trace(go.Scattergl(
            x=times, y=np.full(times.size, n + 1), mode="markers", name=f"neuron {n + 1}",
            legendgroup=f"neuron {n + 1}",
            marker=dict(symbol="line-ns-open", size=12, color=theme.color(n),
                        line=dict(width=1.3, color=theme.color(n)))), row=1, col=1)
    if true is not None:
        fig.add_trace(go.Scattergl(x=np.asarray(true[0], float), y=np.asarray(true[1], float),
                                   mode="lines", name="true path",
                                   line=dict(width=1.2, color=TRUE_COLOR)), row=2, col=1)
    fig.add_trace(go.Scattergl(x=t, y=x, mode="lines+markers", name="decoded path",
                               line=dict(width=2, color=PATH_COLOR),
                               marker=dict(size=3, color=PATH_COLOR)), row=2, col=1)
    for n in range(fr.shape[1]):
        fig.add_trace(go.Scatter(x=fr[:, n], y=x_grid, mode="lines", name=f"neuron {n + 1}",
                                 legendgroup=f"neuron {n + 1}", showlegend=False,
                                 line=dict(width=2, color=theme.color(n))), row=2, col=2)
    lo, hi = xrange if xrange is not None else (x_grid[0], x_grid[-1])
    pad = 0.03 * (hi - lo)
    fig.update_yaxes(title_text=RASTER_TITLE, range=[0.4, n_neurons + 0.6],
                     tickvals=list(range(1, n_neurons + 1)), row=1, col=1)
    fig.update_yaxes(title_text=theme.X_TITLE, range=[lo - pad, hi + pad], row=2, col=1)
    fig.update_xaxes(title_text=theme.TIME_TITLE, row=2, col=1)
    fig.update_xaxes(title_text=theme.RATE_TITLE, rangemode="tozero", nticks=4, row=2, col=2)
    return fig
