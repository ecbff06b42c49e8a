"""Compare page figures: one fit of the 2021 Fig. 3 comparison per panel (no dash import).

Each panel shows one fit: its training NLL against the ground truth's NLL in
that fit's likelihood setting (dashed), and its potential at the chosen
epochs over the ground truth. Sized and lettered for a projector.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flowdash.pages import theme
from flowdash.pages.fit import figures as fit_figures

#: Colours of the potentials at the chosen epochs: light (early) to dark (late) blue,
#: told apart by lightness alone (colour-blind safe, and on a washed-out projector).
BLUES = ["#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"]
TRUTH_GREY = fit_figures.PAPER_TRUTH
NOW_LINE = dict(color="#222222", width=2, dash="dot")
GT_LINE = dict(color="#555555", width=2.5, dash="dash")
#: Trace order of :func:`panel_figure` (the live page patches traces by index).
NLL, GT, TRUTH, FIRST_EPOCH = 0, 1, 2, 3
FONT = 16


def epoch_colors(n: int) -> list[str]:
    """``n`` colours from light to dark (:data:`BLUES`, spread out when fewer)."""
    if n <= 1:
        return BLUES[-2:-1] * n
    return [BLUES[round(j * (len(BLUES) - 1) / (n - 1))] if n <= len(BLUES) else
            BLUES[j % len(BLUES)] for j in range(n)]


def key(shown_epochs, truth: bool = True) -> list[tuple[str, dict]]:
    """The colour key shared by the four panels (the page draws it once, large):
    ``(label, line style)`` for the truth (when there is one), each chosen
    epoch, "now" and the ground truth's NLL (when there is one)."""
    colors = epoch_colors(len(shown_epochs))
    return ([("true potential", dict(color=TRUTH_GREY, width=6, dash="solid"))] * truth
            + [(f"epoch {e}", dict(color=c, width=3, dash="solid"))
               for e, c in zip(shown_epochs, colors)]
            + [("now", NOW_LINE)] + [("ground truth's NLL", GT_LINE)] * truth)


def now_index(n_epochs: int) -> int:
    """Index of the dotted "now" potential after ``n_epochs`` chosen-epoch traces."""
    return FIRST_EPOCH + n_epochs


def panel_figure(label: str, epochs, train, x, snapshots, shown_epochs, truth=None,
                 latest=None, nll_gt=None, relative_to_truth: bool = False,
                 x_end=None, height: int = 330) -> go.Figure:
    """One fit of the comparison: NLL with its ground-truth line, potentials over the truth.

    Parameters
    ----------
    label : str
        The fit (e.g. "full model"); plain text chosen by the page, not user text.
    epochs : sequence of int
    train : sequence of float or None
        Training NLL per epoch (nats), summed over datasamples, not shifted.
    x : array, shape (N,) or None
        Grid nodes of the fit (None: nothing recorded yet).
    snapshots : mapping epoch -> peq, shape (N,) (or (K, N): the first row is drawn)
        The chosen epochs reached so far.
    shown_epochs : sequence of int
        The chosen epochs, one coloured potential each.
    truth : (x_true (M,), peq_true (M,)) or None
    latest : (epoch, peq (N,)) or None
        The current potential, dotted.
    nll_gt : float or None
        The ground truth's NLL on the training data in this fit's setting.
    relative_to_truth : bool
        Plot ``(NLL_gt − NLL)/NLL_gt`` (needs ``nll_gt``); the truth is then 0.
    x_end : int, optional
        Last epoch of the dashed line (the fit's planned epochs).

    Trace order: :data:`NLL`, :data:`GT`, :data:`TRUTH`, then one per chosen
    epoch from :data:`FIRST_EPOCH`, then "now" (:func:`now_index`).
    """
    rel = bool(relative_to_truth and nll_gt is not None and np.isfinite(nll_gt))
    fig = make_subplots(rows=1, cols=2, column_widths=[0.48, 0.52], horizontal_spacing=0.13,
                        subplot_titles=("NLL", "potential Φ(x)"))
    # no legend: the page draws one colour key for the four panels (:func:`key`)
    fig.update_layout(template=theme.TEMPLATE, height=height, uirevision=label,
                      title=dict(text=label, x=0.01, xanchor="left", font=dict(size=FONT + 4)),
                      font=dict(size=FONT), margin=dict(l=74, r=12, t=70, b=52),
                      showlegend=False)
    for a in fig.layout.annotations:   # the subplot titles
        a.font = dict(size=FONT - 1, color="#555")
    epochs = list(epochs)
    base = fit_figures.first_finite(train)
    fig.add_trace(go.Scatter(x=epochs, y=fit_figures.nll_y(train, base, nll_gt, rel),
                             mode="lines", name="fit", showlegend=False,
                             line=dict(color=fit_figures.PAPER_TRAIN, width=3)), row=1, col=1)
    line = fit_figures.gt_trace(nll_gt, base, x_end if x_end is not None else
                                (epochs[-1] if epochs else 1), rel)
    line.update(name="ground truth's NLL", line=GT_LINE)
    fig.add_trace(line, row=1, col=1)
    xt, pt = (None, None) if truth is None else (np.asarray(truth[0], float),
                                                  np.atleast_2d(truth[1])[0])
    fig.add_trace(go.Scatter(x=[] if xt is None else xt.tolist(),
                             y=[] if pt is None else fit_figures.phi(pt), mode="lines",
                             name="true potential", line=dict(color=TRUTH_GREY, width=6)),
                  row=1, col=2)
    xs = [] if x is None else np.asarray(x, float).tolist()
    for e, color in zip(shown_epochs, epoch_colors(len(shown_epochs))):
        peq = snapshots.get(e)
        fig.add_trace(go.Scatter(x=xs, y=[] if peq is None else _phi(peq), mode="lines",
                                 name=f"epoch {e}", line=dict(color=color, width=3)),
                      row=1, col=2)
    fig.add_trace(go.Scatter(x=xs, y=[] if latest is None else _phi(latest[1]), mode="lines",
                             name=now_label(latest), line=NOW_LINE), row=1, col=2)
    fig.update_xaxes(title_text="epoch", title_standoff=4, row=1, col=1)
    fig.update_yaxes(title_text="relative NLL" if rel else "NLL − NLL₀ (nats)",
                     title_standoff=4, row=1, col=1)
    fig.update_xaxes(title_text="x", title_standoff=4, row=1, col=2)
    fig.update_yaxes(range=[_low(truth, snapshots) - 0.3, fit_figures.PHI_CLIP + 0.3],
                     row=1, col=2)
    return fig


def _phi(peq) -> list:
    return fit_figures.phi(np.atleast_2d(np.asarray(peq, float))[0])


def _low(truth, snapshots) -> float:
    values = [] if truth is None else list(_phi(truth[1]))
    for peq in snapshots.values():
        values += _phi(peq)
    return min(values) if values else 0.0


def now_label(latest) -> str:
    return "now" if latest is None else f"now (epoch {latest[0]})"


def waiting_figure(label: str, text: str, height: int = 330) -> go.Figure:
    """A panel before its fit has a first epoch (queued, starting) or without a run."""
    fig = theme.message_figure(text, height)
    fig.update_layout(title=dict(text=label, x=0.01, xanchor="left", font=dict(size=FONT + 4)),
                      margin=dict(l=62, r=12, t=70, b=52))
    fig.layout.annotations[0].font.size = FONT + 2
    return fig
