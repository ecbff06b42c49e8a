"""Data page figures: pure data in, go.Figure out (no dash import)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flowdash.pages import theme


def raster(spikes, indices, n_neurons: int) -> go.Figure:
    """Spike raster of the chosen trials, one row per (trial, neuron).

    Parameters
    ----------
    spikes : sequence (per trial) of sequences (per neuron) of arrays
        Spike times in s from the trial start (``SpikeData.to_spike_times``).
    indices : sequence of int
        Their trial numbers (for the axis labels).
    n_neurons : int
    """
    fig = theme.base_figure("Spike raster", height=max(260, 90 + 26 * len(indices) * n_neurons))
    for n in range(n_neurons):
        x = [np.asarray(trial[n], float) for trial in spikes]
        y = [np.full(t.size, row * n_neurons + n) for row, t in enumerate(x)]
        fig.add_trace(go.Scattergl(x=np.concatenate(x) if x else np.zeros(0),
                                   y=np.concatenate(y) if y else np.zeros(0),
                                   mode="markers", name=f"neuron {n + 1}",
                                   marker=dict(symbol="line-ns-open", size=11, color=theme.color(n),
                                               line=dict(width=1.2, color=theme.color(n)))))
    ticks = [row * n_neurons + (n_neurons - 1) / 2 for row in range(len(indices))]
    fig.update_layout(xaxis_title=theme.TIME_TITLE,
                      yaxis=dict(title="trial", tickvals=ticks,
                                 ticktext=[str(i) for i in indices], autorange="reversed"),
                      showlegend=n_neurons > 1)
    return fig


def latent_paths(times, paths, indices, xrange=(-1.0, 1.0)) -> go.Figure:
    """Latent trajectories x(t) of the chosen trials.

    Parameters
    ----------
    times, paths : sequences of arrays, each shape (T_i,)
        Time (s) and latent state (a.u.) of each trial shown.
    indices : sequence of int
        Their trial numbers.
    """
    fig = theme.base_figure("Latent trajectories", height=320)
    for k, (t, x, i) in enumerate(zip(times, paths, indices)):
        fig.add_trace(go.Scattergl(x=t, y=x, mode="lines", name=f"trial {i}",
                                   line=dict(width=1.5, color=theme.color(k))))
    fig.update_layout(xaxis_title=theme.TIME_TITLE, yaxis_title=theme.X_TITLE,
                      yaxis_range=[xrange[0] - 0.05, xrange[1] + 0.05])
    return fig


def rates_and_counts(rates, counts) -> go.Figure:
    """Per-neuron trial-average rate (Hz) and total spike count.

    Parameters
    ----------
    rates : array, shape (n_neurons,)
        Hz (total spikes / total duration, MATH.md §2).
    counts : array, shape (n_neurons,)
    """
    rates, counts = np.asarray(rates, float), np.asarray(counts, int)
    names = [f"neuron {n + 1}" for n in range(rates.size)]
    colors = [theme.color(n) for n in range(rates.size)]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.15,
                        subplot_titles=("Trial-average rate", "Spike count"))
    fig.update_layout(template=theme.TEMPLATE, height=300, showlegend=False)
    fig.add_trace(go.Bar(x=names, y=rates, marker_color=colors, name="rate",
                         text=[f"{r:.1f}" for r in rates], textposition="auto"), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=counts, marker_color=colors, name="count",
                         text=[str(c) for c in counts], textposition="auto"), row=1, col=2)
    fig.update_yaxes(title_text=theme.RATE_TITLE, row=1, col=1)
    fig.update_yaxes(title_text="spikes (count)", row=1, col=2)
    fig.update_xaxes(title_text="neuron", row=1, col=1)
    fig.update_xaxes(title_text="neuron", row=1, col=2)
    return fig
