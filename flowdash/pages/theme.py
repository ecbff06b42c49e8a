"""Colours and the plotly template shared by every figure (no dash import).

Colours are Okabe–Ito (colour-blind safe). Fonts are large enough for a
projector.
"""
from __future__ import annotations

import plotly.graph_objects as go

#: Okabe–Ito palette.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
#: Order used for successive traces (yellow last: weak on white).
COLORWAY = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple",
                                   "sky", "yellow", "black")]
TRAIN_COLOR = OKABE_ITO["blue"]
VAL_COLOR = OKABE_ITO["orange"]
TRUTH_COLOR = OKABE_ITO["black"]
MIN_COLOR = OKABE_ITO["vermillion"]

X_TITLE = "latent state x (a.u.)"
POTENTIAL_TITLE = "potential Φ(x) = −log peq (a.u.)"
DENSITY_TITLE = "density p(x) (1/a.u.)"
RATE_TITLE = "firing rate (Hz)"
TIME_TITLE = "time (s)"

TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font=dict(family="Inter, Helvetica, Arial, sans-serif", size=15, color="#222"),
        colorway=COLORWAY,
        paper_bgcolor="white", plot_bgcolor="white",
        margin=dict(l=70, r=20, t=50, b=60),
        xaxis=dict(showline=True, linecolor="#444", ticks="outside", gridcolor="#e5e5e5",
                   zeroline=False, title_standoff=8),
        yaxis=dict(showline=True, linecolor="#444", ticks="outside", gridcolor="#e5e5e5",
                   zeroline=False, title_standoff=8),
        legend=dict(bgcolor="rgba(255,255,255,0.7)"),
        hoverlabel=dict(font_size=14),
    )
)


def color(i: int) -> str:
    """The i-th colour of the cycle."""
    return COLORWAY[i % len(COLORWAY)]


def base_figure(title: str | None = None, height: int = 380) -> go.Figure:
    """An empty figure with the flowdash template."""
    fig = go.Figure(layout=dict(template=TEMPLATE, height=height))
    if title:
        fig.update_layout(title=dict(text=title, x=0.01, xanchor="left", font_size=17))
    return fig


def message_figure(text: str, height: int = 300) -> go.Figure:
    """A blank figure that only shows a message (no data yet, invalid input)."""
    fig = base_figure(height=height)
    fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False),
                      annotations=[dict(text=text, showarrow=False, x=0.5, y=0.5,
                                        xref="paper", yref="paper",
                                        font=dict(size=16, color="#666"))])
    return fig


def graph_config(fmt: str = "png", filename: str = "flowdash") -> dict:
    """Graph config whose modebar camera button exports ``fmt`` (png or svg)."""
    fmt = fmt if fmt in ("png", "svg") else "png"
    return {"displaylogo": False,
            "toImageButtonOptions": {"format": fmt, "scale": 2, "filename": filename}}
