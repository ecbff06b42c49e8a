"""Model page figures: pure data in, go.Figure out (no dash import)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flowdash.pages import multiples, theme


def model_preview(x, peq, p0, fr, equilibrium: bool = True) -> go.Figure:
    """Φ(x) = −log peq, p0(x) and every f_n(x), side by side.

    Parameters
    ----------
    x : array, shape (N,)
        Grid nodes (latent state, a.u.).
    peq, p0 : arrays, shape (N,)
        Equilibrium and initial densities (1/a.u.).
    fr : array, shape (N, n_neurons)
        Firing rates, Hz.
    """
    x = np.asarray(x)
    fr = np.asarray(fr).reshape(len(x), -1)
    if multiples.small_multiples(fr.shape[1]):
        return _preview_multiples(x, peq, p0, fr, equilibrium)
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=("Potential Φ(x)",
                                        "Initial density p0(x)" + (" = peq" if equilibrium else ""),
                                        "Firing rates f_n(x)"))
    fig.update_layout(template=theme.TEMPLATE, height=380, showlegend=True,
                      legend=dict(orientation="h", y=-0.25, x=1, xanchor="right"))
    fig.add_trace(go.Scatter(x=x, y=-np.log(np.asarray(peq)), name="Φ(x)", mode="lines",
                             line=dict(color=theme.TRUTH_COLOR, width=3), showlegend=False),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=np.asarray(p0), name="p0(x)", mode="lines",
                             line=dict(color=theme.OKABE_ITO["green"], width=3),
                             showlegend=False), row=1, col=2)
    for n in range(fr.shape[1]):
        fig.add_trace(go.Scatter(x=x, y=fr[:, n], name=f"neuron {n + 1}", mode="lines",
                                 line=dict(color=theme.color(n), width=3)), row=1, col=3)
    for col, ytitle in ((1, theme.POTENTIAL_TITLE), (2, theme.DENSITY_TITLE),
                        (3, theme.RATE_TITLE)):
        fig.update_xaxes(title_text=theme.X_TITLE, row=1, col=col)
        fig.update_yaxes(title_text=ytitle, row=1, col=col)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_yaxes(rangemode="tozero", row=1, col=3)
    return fig


def _preview_multiples(x, peq, p0, fr, equilibrium: bool) -> go.Figure:
    """:func:`model_preview` of a population: Φ and p0 on top, one small panel per
    neuron's rate below (traces in the same order)."""
    fig, top, cells = multiples.grid(
        ["Potential Φ(x)", "Initial density p0(x)" + (" = peq" if equilibrium else "")], fr.shape[1])
    fig.update_layout(showlegend=False)
    fig.add_trace(go.Scatter(x=x, y=-np.log(np.asarray(peq)), name="Φ(x)", mode="lines",
                             line=dict(color=theme.TRUTH_COLOR, width=3)), *top[0])
    fig.add_trace(go.Scatter(x=x, y=np.asarray(p0), name="p0(x)", mode="lines",
                             line=dict(color=theme.OKABE_ITO["green"], width=3)), *top[1])
    for n, cell in enumerate(cells):
        fig.add_trace(go.Scatter(x=x, y=fr[:, n], name=f"neuron {n + 1}", mode="lines",
                                 line=dict(color=theme.color(n), width=2.5)), *cell)
    for cell, ytitle in zip(top, (theme.POTENTIAL_TITLE, theme.DENSITY_TITLE)):
        fig.update_xaxes(title_text=theme.X_TITLE, row=cell[0], col=cell[1])
        fig.update_yaxes(title_text=ytitle, row=cell[0], col=cell[1])
    fig.update_yaxes(rangemode="tozero", row=top[1][0], col=top[1][1])
    multiples.label_rate_axes(fig, cells)
    return fig
