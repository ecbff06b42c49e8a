"""Figures of the NWB import preview: pure data in, go.Figure out (no dash import)."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flowdash.names import plot_text
from flowdash.pages import theme

#: Conditions side by side; more wrap to further rows.
MAX_COLUMNS = 4
WINDOW_END_COLOR = theme.OKABE_ITO["black"]


def time_title(event: str) -> str:
    return f"time from {plot_text(event)} (s)"


def raster_psth(rasters: dict, edges, psth: dict, align: str, start_offset: float,
                neuron_label: str = "") -> go.Figure:
    """A raster and a PSTH per condition, aligned to the window's start event
    (the first figure of the 2024 paper's notebook).

    Parameters
    ----------
    rasters : dict condition -> {"time", "row", "end", "shown", "of"}
        Spike times (s from the align event) and their rows (trials, sorted
        by window length); ``end``: each shown row's window end (s from the
        align event); ``shown`` of ``of`` trials.
    edges : array, shape (n_bins + 1,)
        PSTH bin edges, s from the align event.
    psth : dict condition -> array, shape (n_bins,)
        Rate in Hz (NaN where no window covers the bin).
    align : str
        The align event (an event column).
    start_offset : float
        Where the windows start, s from the align event (dashed line).

    Rasters in row 1 (2, …), PSTHs beneath; traces per condition: raster
    spikes, window ends, PSTH. SVG traces: the rasters hold at most
    ``nwb_logic.MAX_RASTER_TRIALS`` rows (a few thousand ticks), which SVG
    draws faster than WebGL sets up a context for each panel.
    """
    conditions = list(rasters)
    cols = min(MAX_COLUMNS, max(1, len(conditions)))
    blocks = math.ceil(len(conditions) / cols)
    titles = []
    for b in range(blocks):
        part = conditions[b * cols:(b + 1) * cols]
        titles += [f"{plot_text(c)}: {rasters[c]['shown']} of {rasters[c]['of']} trials"
                   for c in part] + [""] * (cols - len(part))
        titles += [f"PSTH {plot_text(c)}" for c in part] + [""] * (cols - len(part))
    fig = make_subplots(rows=2 * blocks, cols=cols, subplot_titles=titles, shared_xaxes=True,
                        vertical_spacing=0.08 / blocks, horizontal_spacing=0.05,
                        row_heights=[1.4, 1.0] * blocks)
    fig.update_layout(template=theme.TEMPLATE, height=430 * blocks + 40, showlegend=False,
                      margin=dict(l=70, r=20, t=60, b=60),
                      title=dict(text=plot_text(neuron_label), x=0.01, xanchor="left", font_size=16))
    for annotation in fig.layout.annotations:
        annotation.font = dict(size=13)
    centers = 0.5 * (np.asarray(edges[:-1], float) + np.asarray(edges[1:], float))
    top = 0.0
    for c in conditions:
        y = np.asarray(psth[c], float)
        if np.any(np.isfinite(y)):
            top = max(top, float(np.nanmax(y)))
    for k, c in enumerate(conditions):
        row, col = 1 + 2 * (k // cols), 1 + k % cols
        r, color = rasters[c], theme.color(k)
        fig.add_trace(go.Scatter(x=np.asarray(r["time"], float), y=np.asarray(r["row"]),
                                   mode="markers", name=f"{c} spikes",
                                   marker=dict(symbol="line-ns-open", size=5, color=color,
                                               line=dict(width=1, color=color))), row=row, col=col)
        fig.add_trace(go.Scatter(x=np.asarray(r["end"], float), y=np.arange(len(r["end"])),
                                   mode="markers", name=f"{c} window end",
                                   marker=dict(symbol="line-ns", size=7,
                                               line=dict(width=2, color=WINDOW_END_COLOR))),
                      row=row, col=col)
        fig.add_trace(go.Scatter(x=centers, y=[v if math.isfinite(v) else None for v in
                                               np.asarray(psth[c], float)],
                                 mode="lines", name=f"{c} PSTH", line=dict(color=color, width=2.5)),
                      row=row + 1, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=col == 1, row=row, col=col,
                         title_text="trial (by window length)" if col == 1 else None)
        fig.update_yaxes(range=[0, 1.05 * top if top > 0 else 1], row=row + 1, col=col,
                         title_text=theme.RATE_TITLE if col == 1 else None)
        fig.update_xaxes(title_text=time_title(align) if col == 1 else None, row=row + 1, col=col,
                         title_font=dict(size=13))
    # the align event (solid) and the window start (dashed) in every panel; shapes
    # built at once (add_vline per panel costs ~30 ms each)
    shapes = []
    for axis in fig.layout:
        if axis.startswith("xaxis"):
            ref = "x" + axis[5:]
            for x, dash in ((0.0, "solid"), (start_offset, "dash")) if start_offset else ((0.0, "solid"),):
                shapes.append(dict(type="line", xref=ref, yref=f"{'y' + axis[5:]} domain", x0=x, x1=x,
                                   y0=0, y1=1, line=dict(color="#888", width=1, dash=dash)))
    fig.update_layout(shapes=shapes)
    return fig


def window_lengths(lengths: dict) -> go.Figure:
    """Histogram of the window lengths (s) of each condition, overlaid.

    Parameters
    ----------
    lengths : dict condition -> array, shape (n_trials,), s
    """
    fig = theme.base_figure("Window lengths", height=300)
    allv = np.concatenate([np.asarray(v, float) for v in lengths.values()]) if lengths else np.zeros(0)
    size = None
    if allv.size and allv.max() > allv.min():
        size = (allv.max() - allv.min()) / 40
    for k, (c, v) in enumerate(lengths.items()):
        fig.add_trace(go.Histogram(x=np.asarray(v, float), name=plot_text(c), opacity=0.55,
                                   marker_color=theme.color(k),
                                   xbins=dict(size=size) if size else None))
    fig.update_layout(barmode="overlay", xaxis_title="window length (s)",
                      yaxis_title="trials (count)",
                      legend=dict(x=0.99, y=0.99, xanchor="right", yanchor="top"))
    return fig
