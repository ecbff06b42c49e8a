"""Model selection figures: the 2020 paper's Fig. 5 panels and, per condition, the
2024 paper's Fig. 3 (no dash import; plain arrays in, ``go.Figure`` out).

Half 1 is blue, half 2 orange, the ground truth black; the selected model
is a vermillion star, the "early" and "late" models of the 2020 analysis a
triangle and a square.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flowdash.pages import theme

HALF_COLORS = (theme.OKABE_ITO["blue"], theme.OKABE_ITO["orange"])
TRUTH_COLOR = theme.TRUTH_COLOR
SELECTED_COLOR = theme.OKABE_ITO["vermillion"]
FC_TITLE = "feature complexity FC (a.u.)"
FC_NONEQ_TITLE = "feature complexity FC (nats)"
EPOCH_TITLE = "epoch (log scale)"
JS_TITLE = "JS divergence (nats)"
JS_NONEQ_TITLE = "JS divergence over time (nats·s)"
VAL_TITLE = "validation NLL − NLL₀ (nats)"
PHI_TITLE = "potential Φ(x) = −log peq"
PHI_D_TITLE = "Φ(x)·D (a.u.³/s)"
REL_TITLE = "rel. NLL gain"
#: Markers of the 2020 analysis's three models.
MARKS = {"selected": ("star", 18, SELECTED_COLOR), "early": ("triangle-up", 13, "#555555"),
         "late": ("square", 12, "#555555")}


def _list(a) -> list:
    """Floats as a plain list, non-finite -> None (a gap)."""
    return [float(v) if v is not None and np.isfinite(v) else None for v in np.asarray(a, float)]


def _half_name(i: int, epoch=None) -> str:
    return f"half {i + 1}" + ("" if epoch is None else f" (epoch {int(epoch)})")


def _fc_title(non_equilibrium: bool) -> str:
    return FC_NONEQ_TITLE if non_equilibrium else FC_TITLE


def _hline(fig: go.Figure, y: float, line: dict, text: str, where: str, log: bool = False,
           end: str = "right"):
    """A horizontal line across the plot with a label at its ``end`` ('left' or
    'right'), ``where`` 'above' or 'below' it; plain layout shapes (``add_hline``
    costs ~30 ms a line)."""
    fig.add_shape(type="line", xref="paper", x0=0, x1=1, yref="y", y0=y, y1=y, line=line)
    fig.add_annotation(xref="paper", x=0 if end == "left" else 1, xanchor=end, yref="y",
                       y=float(np.log10(y)) if log else y, text=text, showarrow=False,
                       yanchor="bottom" if where == "above" else "top",
                       font=dict(size=13, color=line.get("color", "#333")))


def fc_epoch_figure(epochs1, FC1, epochs2, FC2, truth_fc=None, selected=None,
                    non_equilibrium: bool = False) -> go.Figure:
    """FC of the analysed models of both halves against the epoch (log epoch axis).

    Parameters
    ----------
    epochs1, FC1 : arrays (P1,)
        Analysed models of half 1; ``epochs2, FC2`` (P2,) of half 2. Epoch 0
        (the common start) is drawn at epoch 1 of the log axis.
    truth_fc : float or None
        The ground truth's FC: a dashed horizontal line.
    selected : ((epoch1, FC1), (epoch2, FC2)) or None
        The selected models, starred.
    """
    fig = theme.base_figure("Feature complexity over the fit", height=330)
    for i, (e, fc) in enumerate(((epochs1, FC1), (epochs2, FC2))):
        fig.add_trace(go.Scatter(x=np.maximum(np.asarray(e, float), 1).tolist(), y=_list(fc),
                                 mode="lines+markers", name=_half_name(i),
                                 line=dict(color=HALF_COLORS[i], width=2.5), marker=dict(size=4)))
    if truth_fc is not None:
        _hline(fig, float(truth_fc), dict(color=TRUTH_COLOR, dash="dash", width=2),
               # above its left end: the fits start simple (low FC), so no curve is there
               f"ground truth {float(truth_fc):.3g}", "above", end="left")
    if selected is not None:
        for i, (e, fc) in enumerate(selected):
            fig.add_trace(go.Scatter(x=[max(float(e), 1.0)], y=[float(fc)], mode="markers",
                                     name="selected", showlegend=i == 0,
                                     marker=dict(symbol="star", size=16, color=SELECTED_COLOR,
                                                 line=dict(color=HALF_COLORS[i], width=2))))
    fig.update_layout(xaxis=dict(type="log", title=EPOCH_TITLE),
                      yaxis_title=_fc_title(non_equilibrium), uirevision="fc")
    return fig


def nll_fc_figure(FC1, val1, FC2, val2, selected: int | None = None,
                  non_equilibrium: bool = False) -> go.Figure:
    """Validation NLL (shifted to start at 0) against FC, both halves.

    Parameters
    ----------
    FC1, val1 : arrays (P1,)
        FC and summed validation NLL (nats; NaN: missing) of half 1's analysed
        models; ``FC2, val2`` (P2,) of half 2.
    selected : int or None
        Position (in half 1's analysed models) of the selected model, starred.
    """
    fig = theme.base_figure("Validation NLL against FC", height=330)
    for i, (fc, val) in enumerate(((FC1, val1), (FC2, val2))):
        val = np.asarray(val, float)
        base = next((v for v in val if np.isfinite(v)), np.nan)
        fig.add_trace(go.Scatter(x=_list(fc), y=_list(val - base), mode="lines+markers",
                                 name=_half_name(i), line=dict(color=HALF_COLORS[i], width=2.5),
                                 marker=dict(size=4)))
        if i == 0 and selected is not None and 0 <= selected < len(val):
            fig.add_trace(go.Scatter(x=[float(np.asarray(fc)[selected])],
                                     y=_list([val[selected] - base]), mode="markers",
                                     name="selected", marker=dict(symbol="star", size=16,
                                                                  color=SELECTED_COLOR)))
    fig.update_layout(xaxis_title=_fc_title(non_equilibrium), yaxis_title=VAL_TITLE,
                      uirevision="nllfc")
    return fig


def js_fc_figure(FC1, JS, threshold: float, late_threshold: float | None = None,
                 marks: dict | None = None, non_equilibrium: bool = False) -> go.Figure:
    """The divergence of the matched models against FC (log JS axis), the threshold
    and the selected, early and late models.

    Parameters
    ----------
    FC1, JS : arrays (P1,)
        Half 1's analysed models' FC and the (smoothed) divergence of each
        one's match in half 2. JS = 0 (the common start) is left out of the
        log axis.
    threshold, late_threshold : float
        The selection's threshold (dashed) and the late model's (dotted).
    marks : {"selected" | "early" | "late": position}
    """
    fig = theme.base_figure("Divergence of the two halves against FC", height=330)
    JS = np.asarray(JS, float)
    fig.add_trace(go.Scatter(x=_list(FC1), y=_list(np.where(JS > 0, JS, np.nan)),
                             mode="lines+markers", name="JS",
                             line=dict(color=theme.OKABE_ITO["green"], width=2.5),
                             marker=dict(size=4)))
    _hline(fig, float(threshold), dict(color=SELECTED_COLOR, dash="dash", width=2),
           f"threshold {theme_number(threshold)}", "below", log=True)
    if late_threshold is not None:
        _hline(fig, float(late_threshold), dict(color="#555555", dash="dot", width=1.5),
               f"late {theme_number(late_threshold)}", "above", log=True)
    for name, pos in (marks or {}).items():
        if pos is None or not 0 <= pos < len(JS):
            continue
        symbol, size, colour = MARKS[name]
        y = JS[pos] if JS[pos] > 0 else float(threshold) / 10
        fig.add_trace(go.Scatter(x=[float(np.asarray(FC1)[pos])], y=[float(y)], mode="markers",
                                 name=name, marker=dict(symbol=symbol, size=size, color=colour)))
    fig.update_layout(xaxis_title=_fc_title(non_equilibrium),
                      yaxis=dict(type="log", title=JS_NONEQ_TITLE if non_equilibrium else JS_TITLE,
                                 exponentformat="power"),
                      uirevision="js")
    return fig


def theme_number(v: float) -> str:
    return f"{v:g}"


def _phi(peq) -> np.ndarray:
    """Φ = −log peq, shifted to a minimum of 0 (the potential's offset is arbitrary)."""
    phi = -np.log(np.asarray(peq, float))
    return phi - np.min(phi)


def potentials_figure(x, models, truth=None) -> go.Figure:
    """The selected potentials of both halves over the ground truth (one row: the
    first condition; see :func:`conditions_figure` for all).

    Parameters
    ----------
    x : array (N,)
    models : [dict, dict]
        Per half: ``peq`` (K, N) and ``epoch``; half 2 as analysed (mirrored
        when the analysis mirrored it).
    truth : dict with ``x`` (M,) and ``peq`` (K, M), or None
    """
    fig = theme.base_figure("Selected potentials", height=330)
    if truth is not None:
        fig.add_trace(go.Scatter(x=np.asarray(truth["x"], float).tolist(),
                                 y=_phi(np.atleast_2d(truth["peq"])[0]).tolist(), mode="lines",
                                 name="ground truth", line=dict(color=TRUTH_COLOR, width=4)))
    for i, m in enumerate(models):
        fig.add_trace(go.Scatter(x=np.asarray(x, float).tolist(),
                                 y=_phi(np.atleast_2d(m["peq"])[0]).tolist(), mode="lines",
                                 name=_half_name(i, m["epoch"]) + (" (mirrored)" if m.get("mirrored")
                                                                   else ""),
                                 line=dict(color=HALF_COLORS[i], width=2.5,
                                           dash="solid" if i == 0 else "dash")))
    fig.update_layout(xaxis_title=theme.X_TITLE, yaxis_title=PHI_TITLE, uirevision="pot")
    return fig


def conditions_figure(x, models, truth=None, per_condition=None, labels=None) -> go.Figure:
    """Per condition (a row each): Φ·D of both halves' selected models, p0, the
    rates, and the relative NLL against the epoch (the 2024 paper's Fig. 3).

    Parameters
    ----------
    x : array (N,)
    models : [dict, dict]
        Per half: ``peq``, ``p0`` (K, N), ``D`` (K,), ``fr`` (K or 1, N,
        neurons) in Hz, ``epoch``; as analysed (half 2 mirrored if needed).
    truth : dict (``x``, ``peq``, ``p0``, ``D``, ``fr``) or None
    per_condition : [dict, dict] or None
        Per half: ``epochs`` (n,) and ``relative`` (n, K):
        (NLL₀ − NLL)/|NLL₀| of each condition (validation data).
    labels : list of str, optional
        Condition names (default "condition k").
    """
    K = max(len(np.atleast_2d(m["peq"])) for m in models)
    labels = list(labels or [])[:K] + [f"condition {k + 1}" for k in range(len(labels or []), K)]
    titles = []
    for k in range(K):
        titles += [f"{labels[k]}: Φ·D", "p0", "rates", "(NLL₀ − NLL)/|NLL₀|"]
    fig = make_subplots(rows=K, cols=4, subplot_titles=titles, horizontal_spacing=0.09,
                        vertical_spacing=min(0.12, 0.5 / K))
    fig.update_layout(template=theme.TEMPLATE, height=60 + 230 * K, uirevision="cond",
                      margin=dict(l=60, r=15, t=50, b=45), showlegend=True,
                      # above the first row's titles: 35 px over the plot area
                      legend=dict(orientation="h", x=0, y=1.0 + 35 / (230 * K), yanchor="bottom"))
    x = np.asarray(x, float).tolist()

    def row(a, k):
        a = np.asarray(a, float)
        return a[0] if len(a) == 1 else a[k]

    for k in range(K):
        r = k + 1
        show = k == 0
        if truth is not None:
            tx = np.asarray(truth["x"], float).tolist()
            D = float(row(np.atleast_1d(truth["D"]), min(k, len(np.atleast_1d(truth["D"])) - 1)))
            tpeq = np.atleast_2d(truth["peq"])
            fig.add_trace(go.Scatter(x=tx, y=(_phi(tpeq[min(k, len(tpeq) - 1)]) * D).tolist(),
                                     mode="lines", name="ground truth", legendgroup="truth",
                                     showlegend=show, line=dict(color=TRUTH_COLOR, width=3)),
                          row=r, col=1)
            if truth.get("p0") is not None:
                tp0 = np.atleast_2d(truth["p0"])
                fig.add_trace(go.Scatter(x=tx, y=tp0[min(k, len(tp0) - 1)].tolist(), mode="lines",
                                         legendgroup="truth", showlegend=False,
                                         line=dict(color=TRUTH_COLOR, width=3)), row=r, col=2)
        for i, m in enumerate(models):
            style = dict(color=HALF_COLORS[i], width=2.2, dash="solid" if i == 0 else "dash")
            peq = np.atleast_2d(m["peq"])
            D = np.atleast_1d(m["D"])
            phi_d = _phi(peq[min(k, len(peq) - 1)]) * float(D[min(k, len(D) - 1)])
            fig.add_trace(go.Scatter(x=x, y=phi_d.tolist(), mode="lines",
                                     name=_half_name(i, m["epoch"]), legendgroup=f"half{i}",
                                     showlegend=show, line=style), row=r, col=1)
            if m.get("p0") is not None:
                p0 = np.atleast_2d(m["p0"])
                fig.add_trace(go.Scatter(x=x, y=p0[min(k, len(p0) - 1)].tolist(), mode="lines",
                                         legendgroup=f"half{i}", showlegend=False, line=style),
                              row=r, col=2)
            fr = np.asarray(m["fr"], float)
            fr = fr.reshape((-1,) + fr.shape[-2:])
            for n in range(fr.shape[2]):
                fig.add_trace(go.Scatter(x=x, y=fr[min(k, len(fr) - 1), :, n].tolist(),
                                         mode="lines", legendgroup=f"half{i}", showlegend=False,
                                         line=dict(style, color=HALF_COLORS[i],
                                                   width=1.8 if n else 2.2)), row=r, col=3)
            if per_condition is not None:
                pc = per_condition[i]
                rel = np.asarray(pc["relative"], float)
                if rel.ndim == 2 and rel.shape[1] > k:
                    fig.add_trace(go.Scatter(x=np.maximum(np.asarray(pc["epochs"], float), 1).tolist(),
                                             y=_list(rel[:, k]), mode="lines",
                                             legendgroup=f"half{i}", showlegend=False,
                                             line=dict(color=HALF_COLORS[i], width=2)), row=r, col=4)
                    e = float(max(m["epoch"], 1))
                    top = rel[:, k][np.isfinite(rel[:, k])]
                    fig.add_trace(go.Scatter(x=[e, e], y=[float(top.min()), float(top.max())]
                                             if top.size else [], mode="lines",
                                             legendgroup=f"half{i}", showlegend=False,
                                             hoverinfo="skip",
                                             line=dict(color=HALF_COLORS[i], dash="dot", width=1.5)),
                                  row=r, col=4)
        fig.update_xaxes(title_text=theme.X_TITLE if k == K - 1 else None, row=r, col=1)
        fig.update_xaxes(title_text=theme.X_TITLE if k == K - 1 else None, row=r, col=2)
        fig.update_xaxes(title_text=theme.X_TITLE if k == K - 1 else None, row=r, col=3)
        fig.update_xaxes(type="log", title_text=EPOCH_TITLE if k == K - 1 else None, row=r, col=4)
        fig.update_yaxes(title_text=PHI_D_TITLE, row=r, col=1)
        fig.update_yaxes(title_text=theme.DENSITY_TITLE, row=r, col=2)
        fig.update_yaxes(title_text=theme.RATE_TITLE, row=r, col=3)
        fig.update_yaxes(title_text=REL_TITLE, row=r, col=4)
    return fig
