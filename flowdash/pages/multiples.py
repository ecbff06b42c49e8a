"""Small multiples: one panel per neuron under a row of wider panels (no dash import).

A population model has many rate functions; overlaid in one panel they are
unreadable. From :data:`OVERLAID_MAX` + 1 neurons on, the Model preview, the
Fit page's parameter panel and the Runs page draw each neuron's rate in its
own small panel (its own y scale), in rows of :data:`COLUMNS`, below the
panels they had before (potential, p0, D).
"""
from __future__ import annotations

import math

from plotly.subplots import make_subplots

from flowdash.pages import theme

#: Up to this many neurons share one rates panel.
OVERLAID_MAX = 3
#: Panels per row of small multiples.
COLUMNS = 5
#: Heights (px) of the top row and of each row of small multiples.
TOP_HEIGHT, ROW_HEIGHT = 340, 190


def small_multiples(n_neurons: int) -> bool:
    """Does a model with ``n_neurons`` get one rates panel per neuron?"""
    return n_neurons > OVERLAID_MAX


def grid(top_titles, n_neurons: int, neuron_titles=None, columns: int = COLUMNS):
    """A figure with ``top_titles`` panels in its first row and one small
    panel per neuron below.

    Parameters
    ----------
    top_titles : sequence of str
        Titles of the wide panels of the first row (none: no such row).
    n_neurons : int
    neuron_titles : sequence of str, optional
        One per neuron (default ``"neuron 1"``, …).
    columns : int
        Small panels per row.

    Returns
    -------
    fig : go.Figure
        With the flowdash template, height for all rows.
    top : list of (row, col)
        Cell of each top panel.
    cells : list of (row, col)
        Cell of each neuron's panel.
    """
    k = len(top_titles)
    cols = max(columns, k)
    small = math.ceil(n_neurons / cols)
    first, top, c = [], [], 1
    for i in range(k):
        span = cols // k + (1 if i < cols % k else 0)
        first += [{"colspan": span}] + [None] * (span - 1)
        top.append((1, c))
        c += span
    specs = ([first] if k else []) + [[{} for _ in range(cols)] for _ in range(small)]
    cells = [((2 if k else 1) + n // cols, 1 + n % cols) for n in range(n_neurons)]
    titles = list(neuron_titles or [f"neuron {n + 1}" for n in range(n_neurons)])
    heights = ([TOP_HEIGHT] if k else []) + [ROW_HEIGHT] * small
    # make_subplots reads titles in the order of the cells that exist (row by row)
    fig = make_subplots(rows=len(specs), cols=cols, specs=specs,
                        subplot_titles=list(top_titles) + titles + [""] * (cols * small - n_neurons),
                        row_heights=heights, vertical_spacing=min(0.4 / len(specs), 0.12),
                        horizontal_spacing=0.065)   # room for the top panels' y titles
    fig.update_layout(template=theme.TEMPLATE, height=sum(heights) + 80)
    for annotation in fig.layout.annotations[k:]:
        annotation.font = dict(size=13)
    return fig, top, cells


def label_rate_axes(fig, cells, x_title: str = theme.X_TITLE) -> None:
    """Axis titles of the small panels: the rate (Hz) on the first column of each
    row, the latent state on each column's lowest panel."""
    lowest = {}
    for row, col in cells:
        lowest[col] = max(lowest.get(col, 0), row)
    for row, col in cells:
        fig.update_yaxes(title_text="rate (Hz)" if col == 1 else None, rangemode="tozero",
                         row=row, col=col, title_font=dict(size=13), tickfont=dict(size=11))
        fig.update_xaxes(title_text=x_title if lowest[col] == row else None, row=row, col=col,
                         title_font=dict(size=13), tickfont=dict(size=11))
