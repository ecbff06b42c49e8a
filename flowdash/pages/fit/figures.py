"""Fit page figures (the layout of the 2020 paper's Fig. 3); no dash import."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flowdash.names import plot_text
from flowdash.pages import multiples, theme

NLL_Y_TITLE = "NLL − NLL(epoch 0) (nats)"
RELATIVE_Y_TITLE = "relative NLL (NLL_gt − NLL)/NLL_gt"
EPOCH_TITLE = "epoch (iteration)"
#: The ground truth's NLL (the 2021 figures' yardstick): a dashed line.
GT_NAME = "ground truth (training)"
GT_LINE = dict(color="#555555", width=2, dash="dash")
#: Potentials are drawn clipped at this value, as in the paper's Fig. 3.
PHI_CLIP = 6.0
PHI_TITLE = "potential Φ(x) = −log peq (clipped at 6)"
#: The paper's Fig. 3 colours: training black, validation red, ground truth grey.
PAPER_TRAIN, PAPER_VAL, PAPER_TRUTH = "#000000", "#D7191C", "#A0A0A0"
PAPER_FIT = theme.OKABE_ITO["blue"]
#: PNG export of the paper layout: a two-column figure (183 mm at 150 px/in), at 3× for print.
PAPER_EXPORT = {"format": "png", "width": 1100, "height": 340, "scale": 3,
                "filename": "flowdash-fig3"}
#: At most this many snapshot panels (the first ones) in the paper layout.
MAX_PANELS = 6


def _ok(v) -> bool:
    return v is not None and np.isfinite(v)


def shifted(values, base):
    """``values − base``; None (missing or non-finite) stays None (a gap)."""
    return [v - base if _ok(v) and _ok(base) else None for v in values]


def relative(values, nll_gt):
    """Relative NLL ``(NLL_gt − NLL)/NLL_gt`` of each value
    (:func:`flowdash.core.likelihood.relative_nll`); None stays None (a gap)."""
    from flowdash.core.likelihood import relative_nll

    return [relative_nll(v, nll_gt) if _ok(v) else None for v in values]


def nll_y(values, base, nll_gt=None, relative_to_truth=False):
    """The plotted NLL: ``values − base``, or relative to the truth's NLL."""
    return relative(values, nll_gt) if relative_to_truth else shifted(values, base)


def gt_trace(nll_gt, base, x_end, relative_to_truth=False, **kw) -> go.Scatter:
    """The ground truth's NLL as a dashed line from epoch 0 to ``x_end`` (empty when
    it or the baseline is unknown): at ``nll_gt − base``, or at 0 in the relative view."""
    y = 0.0 if relative_to_truth else (nll_gt - base if _ok(nll_gt) and _ok(base) else None)
    known = bool(y is not None and _ok(nll_gt))
    return go.Scatter(x=[0, max(1, x_end or 1)] if known else [], y=[y, y] if known else [],
                      mode="lines", name=GT_NAME, line=GT_LINE, showlegend=known,
                      hovertemplate=f"ground truth's NLL: {nll_gt:.6g}<extra></extra>"
                      if known else None, **kw)


def first_finite(values):
    """The first finite value (the curve's baseline), or None."""
    return next((v for v in values if _ok(v)), None)


def best_epoch(epochs, val):
    """(epoch, value) of the minimal validation NLL, or (None, None)."""
    pairs = [(e, v) for e, v in zip(epochs, val) if _ok(v)]
    if not pairs:
        return None, None
    return min(pairs, key=lambda p: p[1])


#: Decimals of the potentials drawn: a display copy (Φ spans a few units; a
#: 1793-node curve is a third of the bytes it is at full precision, and a class of
#: 40 receives it with every poll).
PHI_DECIMALS = 4


def phi(peq) -> list:
    """Φ = −log peq, clipped at :data:`PHI_CLIP`, rounded to :data:`PHI_DECIMALS`
    decimals, as a plain list (patchable)."""
    return np.round(np.minimum(-np.log(np.asarray(peq, float)), PHI_CLIP), PHI_DECIMALS).tolist()


def min_marker_shape(epoch):
    """The dashed vertical line at the validation minimum (layout shape)."""
    if epoch is None:
        return []
    return [dict(type="line", x0=epoch, x1=epoch, y0=0, y1=1, yref="paper",
                 line=dict(color=theme.MIN_COLOR, dash="dash", width=2))]


def nll_figure(epochs, train, val, title: str = "Negative log-likelihood", nll_gt=None,
               relative_to_truth: bool = False, x_end=None) -> go.Figure:
    """Training and validation NLL, shifted to start at 0, minimum of validation marked,
    and the ground truth's NLL on the training data as a dashed line.

    Parameters
    ----------
    epochs : sequence of int
    train, val : sequences of float (nats; val entries may be None)
        Summed over datasamples, *not yet shifted*.
    nll_gt : float or None
        The ground truth's NLL on the training data in the fit's likelihood
        setting (nats), or None (no line).
    relative_to_truth : bool
        Plot ``(NLL_gt − NLL)/NLL_gt`` of the training NLL instead (needs
        ``nll_gt``; the truth is then the line at 0, and validation, measured
        on other trials, is not drawn).
    x_end : int, optional
        Last epoch the dashed line reaches (default the last epoch given).

    Traces: 0 training, 1 validation, 2 the validation minimum (marker), 3 the
    ground truth's NLL. The live page extends traces 0–1 and replaces trace 2
    with ``Patch``.
    """
    epochs = list(epochs)
    rel = bool(relative_to_truth and _ok(nll_gt))
    base_t, base_v = first_finite(train), first_finite(val)
    fig = theme.base_figure(plot_text(title), height=400)  # may carry a run name
    fig.add_trace(go.Scatter(x=epochs, y=nll_y(train, base_t, nll_gt, rel), mode="lines+markers",
                             name="training", line=dict(color=theme.TRAIN_COLOR, width=3),
                             marker=dict(size=6)))
    fig.add_trace(go.Scatter(x=epochs if not rel else [], y=shifted(val, base_v) if not rel else [],
                             mode="lines+markers", showlegend=not rel,
                             name="validation", line=dict(color=theme.VAL_COLOR, width=3),
                             marker=dict(size=6, symbol="square")))
    e, v = (None, None) if rel else best_epoch(epochs, val)
    fig.add_trace(go.Scatter(x=[] if e is None else [e], y=shifted([] if e is None else [v], base_v),
                             mode="markers", name="min validation", showlegend=not rel,
                             marker=dict(color=theme.MIN_COLOR, size=16, symbol="star")))
    fig.add_trace(gt_trace(nll_gt, base_t, x_end if x_end is not None else
                           (epochs[-1] if epochs else 1), rel))
    fig.update_layout(xaxis_title=EPOCH_TITLE, yaxis_title=RELATIVE_Y_TITLE if rel else NLL_Y_TITLE,
                      shapes=min_marker_shape(e), uirevision="nll",
                      legend=dict(x=0.99, y=0.99, xanchor="right", yanchor="top"))
    return fig


def potential_figure(x, snapshots, truth=None, latest=None) -> go.Figure:
    """Φ(x) = −log peq at each snapshot epoch, over the ground truth.

    Parameters
    ----------
    x : array, shape (N,)
    snapshots : sequence of (epoch, peq) with peq shape (N,) or (K, N)
    truth : (x_true (M,), peq_true (M,) or (K, M)) or None
    latest : (epoch, peq) or None
        The current parameters (dashed) when not a snapshot epoch.
    """
    fig = theme.base_figure("Potential at the snapshot epochs", height=400)
    x = np.asarray(x)
    if truth is not None:
        xt, pt = np.asarray(truth[0]), np.atleast_2d(truth[1])
        for k, row in enumerate(pt):
            fig.add_trace(go.Scatter(x=xt, y=phi(row), mode="lines",
                                     name="ground truth" + (f" {k}" if len(pt) > 1 else ""),
                                     line=dict(color=theme.TRUTH_COLOR, width=4)))
    order = ["sky", "orange", "green", "vermillion", "purple", "blue", "yellow"]
    for i, (epoch, peq) in enumerate(snapshots):
        rows = np.atleast_2d(peq)
        for k, row in enumerate(rows):
            fig.add_trace(go.Scatter(
                x=x, y=phi(row), mode="lines",
                name=f"epoch {epoch}" + (f" · {k}" if len(rows) > 1 else ""),
                line=dict(color=theme.OKABE_ITO[order[i % len(order)]], width=2.5)))
    if latest is not None:
        for k, row in enumerate(np.atleast_2d(latest[1])):
            fig.add_trace(go.Scatter(x=x, y=phi(row), mode="lines",
                                     name=f"now (epoch {latest[0]})",
                                     line=dict(color="#777", width=2, dash="dot")))
    fig.update_layout(xaxis_title=theme.X_TITLE, yaxis_title=PHI_TITLE,
                      uirevision="potential")
    return fig


def params_figure(epochs, D=None, x=None, p0=None, fr=None) -> go.Figure:
    """D over the epochs, and the current p0 and rates, for what is fitted.

    Parameters
    ----------
    epochs : sequence of int
    D : sequence of (K_D,) lists, or None when D is not fitted
    x : array (N,) for p0/fr
    p0 : (epoch, array (K, N)) or None
    fr : (epoch, array (K, N, n_neurons)) in Hz, or None
    """
    panels = [p for p, v in (("D", D), ("p0", p0), ("fr", fr)) if v is not None]
    if not panels:
        return theme.message_figure("D, p0 and the rates are not fitted in this run.", 120)
    titles = {"D": "Noise magnitude D", "p0": "Initial density p0", "fr": "Firing rates"}
    n_neurons = np.shape(fr[1])[-1] if fr is not None else 0
    if multiples.small_multiples(n_neurons):
        # a population: one small panel per neuron's rate (same trace order: D, p0, neurons)
        fig, top, cells = multiples.grid([titles[p] for p in panels if p != "fr"], n_neurons)
        cell_of = dict(zip([p for p in panels if p != "fr"], top))
    else:
        fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[titles[p] for p in panels],
                            horizontal_spacing=0.12)
        fig.update_layout(height=340)
        cell_of, cells = {p: (1, col) for col, p in enumerate(panels, start=1)}, None
    fig.update_layout(template=theme.TEMPLATE, uirevision="params")
    for p in panels:
        row, col = cell_of.get(p, (1, 1))
        if p == "D":
            # Before epoch 0 is recorded there is no D yet: one empty trace to extend.
            arr = np.asarray(D, float).reshape(len(epochs), -1) if len(epochs) else np.zeros((0, 1))
            for k in range(arr.shape[1]):
                # Plain lists: the live view extends these traces with a Patch,
                # and plotly encodes numpy arrays as typed-array objects that
                # cannot be extended in the browser.
                fig.add_trace(go.Scatter(x=list(epochs), y=arr[:, k].tolist(), mode="lines+markers",
                                         name="D" + (f" {k}" if arr.shape[1] > 1 else ""),
                                         line=dict(color=theme.color(k), width=3)), row=row, col=col)
            fig.update_xaxes(title_text=EPOCH_TITLE, row=row, col=col)
            fig.update_yaxes(title_text="D (a.u.²/s)", row=row, col=col)
        elif p == "p0":
            for k, y in enumerate(np.atleast_2d(p0[1])):
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"p0 (epoch {p0[0]})",
                                         line=dict(color=theme.OKABE_ITO["green"], width=3)),
                              row=row, col=col)
            fig.update_xaxes(title_text=theme.X_TITLE, row=row, col=col)
            fig.update_yaxes(title_text=theme.DENSITY_TITLE, row=row, col=col)
        else:
            arr = np.asarray(fr[1], float)
            arr = arr.reshape((-1,) + arr.shape[-2:])
            for n in range(arr.shape[2]):
                r, c = cells[n] if cells else (row, col)
                fig.add_trace(go.Scatter(x=x, y=arr[0, :, n], mode="lines",
                                         name=f"neuron {n + 1} (epoch {fr[0]})",
                                         line=dict(color=theme.color(n), width=2.5 if cells else 3)),
                              row=r, col=c)
            if cells:
                fig.update_layout(showlegend=False)   # each panel's title names its neuron
                multiples.label_rate_axes(fig, cells)
            else:
                fig.update_xaxes(title_text=theme.X_TITLE, row=row, col=col)
                fig.update_yaxes(title_text=theme.RATE_TITLE, row=row, col=col)
    return fig


def overlay_figure(curves) -> go.Figure:
    """NLL curves of several runs (shifted to 0), for comparison.

    Parameters
    ----------
    curves : sequence of (label, epochs, train, val)
    """
    fig = theme.base_figure("NLL of the selected runs", height=420)
    for i, (label, epochs, train, val) in enumerate(curves):
        c, label = theme.color(i), plot_text(label)   # run names are user text
        base_t, base_v = first_finite(train), first_finite(val)
        fig.add_trace(go.Scatter(x=list(epochs), y=shifted(train, base_t), mode="lines",
                                 name=f"{label} · training", line=dict(color=c, width=3)))
        if base_v is not None:
            fig.add_trace(go.Scatter(x=list(epochs), y=shifted(val, base_v), mode="lines",
                                     name=f"{label} · validation",
                                     line=dict(color=c, width=3, dash="dash")))
    fig.update_layout(xaxis_title=EPOCH_TITLE, yaxis_title=NLL_Y_TITLE)
    return fig


# ---------------------------------------------------------------------------
# the paper's layout (Genkin & Engel 2020, Fig. 3)
# ---------------------------------------------------------------------------
def paper_panels(snapshot_epochs) -> list[int]:
    """The snapshot epochs that get a panel (sorted, at most :data:`MAX_PANELS`)."""
    return sorted(set(int(e) for e in snapshot_epochs))[:MAX_PANELS]


def paper_arrow(epoch, value) -> dict:
    """The arrow at the validation minimum (an annotation on the NLL panel)."""
    if epoch is None or value is None:
        return dict(x=0, y=0, xref="x", yref="y", text="", showarrow=False, visible=False)
    return dict(x=epoch, y=value, xref="x", yref="y", text="min", showarrow=True,
                arrowhead=2, arrowsize=1.2, arrowwidth=2, arrowcolor=PAPER_VAL, ax=0, ay=-42,
                font=dict(color=PAPER_VAL, size=14), visible=True)


def paper_trace_index(n_panels: int, rows: int, truth_rows: int) -> dict:
    """Where each trace of :func:`paper_figure` sits (the live view patches them).

    Returns ``{"fit": [[i per row] per panel], "now": [[...]], "truth": [[...]]}``;
    traces 0 and 1 are the training and validation NLL.
    """
    out, i = {"truth": [], "fit": [], "now": []}, 2
    for _ in range(n_panels):
        for kind, n in (("truth", truth_rows), ("fit", rows), ("now", rows)):
            out[kind].append(list(range(i, i + n)))
            i += n
    return out


def paper_figure(epochs, train, val, x, snapshots, snapshot_epochs, truth=None,
                 latest=None, rows: int | None = None, nll_gt=None,
                 relative_to_truth: bool = False, x_end=None) -> go.Figure:
    """The layout of the 2020 paper's Fig. 3 for any fit.

    Left, the NLL (shifted to start at 0): training black, validation red, an
    arrow at the validation minimum. Then one panel per snapshot epoch: the
    potential Φ = −log peq at that epoch over the grey ground truth, all
    clipped at 6 and on one y scale.

    Parameters
    ----------
    epochs : sequence of int
    train, val : sequences of float (nats; None = missing), not yet shifted
    x : array, shape (N,)
        Grid nodes of the fitted model.
    snapshots : mapping epoch -> peq, shape (N,) or (K, N)
        The snapshot epochs reached so far.
    snapshot_epochs : sequence of int
        One panel each (the first :data:`MAX_PANELS`).
    truth : (x_true (M,), peq_true (M,) or (K, M)) or None
    latest : (epoch, peq) or None
        The current parameters, drawn dashed in the first panel not yet reached.
    rows : int, optional
        Rows (datasamples) of the fitted peq; default from the data given.
    nll_gt, relative_to_truth, x_end
        The ground truth's NLL as a dashed line, and the relative view (see
        :func:`nll_figure`).

    Trace order (see :func:`paper_trace_index`): training, validation, then per
    panel the truth rows, the fitted rows and the "now" rows, and last the
    ground truth's NLL. The arrow is the last layout annotation.
    """
    rel = bool(relative_to_truth and _ok(nll_gt))
    panels = paper_panels(snapshot_epochs)
    snapshots = {int(e): np.atleast_2d(np.asarray(p, float)) for e, p in dict(snapshots).items()}
    if rows is None:
        sample = next(iter(snapshots.values()), None)
        rows = len(sample) if sample is not None else (
            len(np.atleast_2d(latest[1])) if latest is not None else 1)
    t_rows = np.atleast_2d(np.asarray(truth[1], float)) if truth is not None else np.zeros((0, 0))
    n = len(panels)
    fig = make_subplots(rows=1, cols=1 + n, column_widths=[1.5] + [1.0] * n,
                        horizontal_spacing=0.035 if n > 3 else 0.06,
                        subplot_titles=["Negative log-likelihood"] + [
                            f"{'Φ(x) at ' if j == 0 else ''}epoch {e}" for j, e in enumerate(panels)])
    # the legend sits in the NLL panel's empty upper right (the curves fall from 0)
    right = (1.5 / (1.5 + n)) * (1 - (0.035 if n > 3 else 0.06) * n) if n else 1.0
    fig.update_layout(template=theme.TEMPLATE, height=380, uirevision="paper",
                      margin=dict(l=70, r=15, t=50, b=55),
                      legend=dict(x=right, y=1.0, xanchor="right", yanchor="top",
                                  bgcolor="rgba(255,255,255,0.85)", font=dict(size=13),
                                  tracegroupgap=0))
    epochs = list(epochs)
    base_t, base_v = first_finite(train), first_finite(val)
    fig.add_trace(go.Scatter(x=epochs, y=nll_y(train, base_t, nll_gt, rel), mode="lines",
                             name="training", line=dict(color=PAPER_TRAIN, width=2.5)),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=epochs if not rel else [], y=shifted(val, base_v) if not rel else [],
                             mode="lines", name="validation", showlegend=not rel,
                             line=dict(color=PAPER_VAL, width=2.5)), row=1, col=1)
    x = np.asarray(x, float).tolist()
    now_at = next((e for e in panels if e not in snapshots), None)
    for j, e in enumerate(panels, start=2):
        first = j == 2
        for k, row in enumerate(t_rows):
            fig.add_trace(go.Scatter(x=np.asarray(truth[0], float).tolist(), y=phi(row),
                                     mode="lines", name="ground truth", legendgroup="truth",
                                     showlegend=first and k == 0,
                                     line=dict(color=PAPER_TRUTH, width=4)), row=1, col=j)
        fitted = snapshots.get(e)
        for k in range(rows):
            y = phi(fitted[k]) if fitted is not None and k < len(fitted) else []
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="fit", legendgroup="fit",
                                     showlegend=first and k == 0,
                                     line=dict(color=PAPER_FIT, width=2.5)), row=1, col=j)
        now = np.atleast_2d(latest[1]) if latest is not None and e == now_at else None
        for k in range(rows):
            y = phi(now[k]) if now is not None and k < len(now) else []
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", legendgroup="now",
                                     name=now_label(latest[0]) if latest is not None else "now",
                                     showlegend=now is not None and k == 0,
                                     line=dict(color=PAPER_FIT, width=2, dash="dot")),
                          row=1, col=j)
    fig.add_trace(gt_trace(nll_gt, base_t, x_end if x_end is not None else
                           (epochs[-1] if epochs else 1), rel, legendgroup="gt"), row=1, col=1)
    values = [v for r in t_rows for v in phi(r)] + [
        v for p in snapshots.values() for r in p for v in phi(r)]
    low = min(values) if values else 0.0
    fig.update_xaxes(title_text="epoch", row=1, col=1)
    fig.update_yaxes(title_text="relative NLL" if rel else "NLL − NLL₀ (nats)", row=1, col=1)
    for j in range(2, n + 2):
        fig.update_xaxes(title_text="x", row=1, col=j)
        fig.update_yaxes(range=[low - 0.3, PHI_CLIP + 0.3], matches="y2" if j > 2 else None,
                         showticklabels=j == 2, row=1, col=j)
    e, v = (None, None) if rel else best_epoch(epochs, val)
    fig.add_annotation(**paper_arrow(e, None if v is None else v - base_v))
    return fig


def now_label(epoch) -> str:
    """Legend entry of the current parameters (the same epoch as the progress text)."""
    return f"now (epoch {epoch})"
