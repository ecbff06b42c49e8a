"""Exact negative log-likelihood of spike data and its gradients (MATH.md §4–6).

The work splits into three layers so that each is done once per model:

1. :func:`~flowdash.core.spectra.solve_spectrum` (depends on peq, D);
2. :class:`Operators`: the "dark" operator with the rates, spike
   operators and start/end vectors (depends on everything);
3. the passes over trials (:func:`nll`, :func:`nll_and_grad`).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from . import _kernels
from ._parallel import available_workers, blas_threads, parallel_map, submit
from .grid import Grid
from .model import Model
from .spectra import Spectrum, solve_spectrum

if TYPE_CHECKING:
    from .spikedata import SpikeData

__all__ = ["Operators", "GRADIENT_NAMES", "nll", "nll_and_grad", "batch_nll", "batch_nll_and_grad",
           "ground_truth_nll", "relative_nll"]

GRADIENT_NAMES = ("F", "F0", "D", "Fr", "C")


@dataclass(frozen=True)
class Operators:
    """Everything the trial passes need for one datasample's model.

    Attributes
    ----------
    grid, peq (N,), p0 (N,), D, fr (N, n_neurons), boundary_mode, boundary_conditions, absorption_step, equilibrium
        The model the operators were built from.
    spectrum : Spectrum
        Eigenpairs of H0.
    lQd : ndarray, shape (Nv,)
        Eigenvalues of the dark operator ``H0 + Σ f_n``.
    Qd : ndarray, shape (Nv, Nv)
        Its eigenvectors in the H0 basis.
    Qxd : ndarray, shape (N, Nv)
        ``Qx @ Qd``.
    S : ndarray, shape (n_neurons, Nv, Nv)
        Spike operators ``Qxdᵀ diag(w f_n) Qxd``.
    alpha0, beta : ndarray, shape (Nv,)
        Unnormalised start vector and end vector.
    Aabs : ndarray, shape (Nv, Nv)
        ``Qdᵀ diag(lQ) Qd`` (the absorption step).
    """

    grid: Grid
    peq: np.ndarray
    p0: np.ndarray
    D: float
    fr: np.ndarray
    boundary_mode: str
    boundary_conditions: str
    absorption_step: bool
    equilibrium: bool
    spectrum: Spectrum
    lQd: np.ndarray
    Qd: np.ndarray
    Qxd: np.ndarray
    S: np.ndarray
    alpha0: np.ndarray
    beta: np.ndarray
    Aabs: np.ndarray

    @classmethod
    def build(cls, model: Model, datasample: int = 0, Nv: int | None = None,
              spectrum: Spectrum | None = None) -> "Operators":
        """Operators of ``model`` for ``datasample``.

        Parameters
        ----------
        spectrum : Spectrum, optional
            A solution for this model's peq, D and boundary conditions to
            reuse (the spectrum does not depend on p0, the rates or the
            absorption step).
        """
        grid = model.grid
        peq, p0, D, fr = model.peq_of(datasample), model.p0_of(datasample), model.D_of(datasample), model.fr_of(datasample)
        with blas_threads(1):
            if spectrum is None:
                spectrum = solve_spectrum(grid, peq, D, model.boundary_conditions, Nv)
            Qx, lQ = spectrum.Qx, spectrum.lQ
            Kd = np.diag(lQ) + Qx.T @ ((grid.w * fr.sum(axis=1))[:, None] * Qx)
            lQd, Qd = np.linalg.eigh(Kd)
            Qxd = Qx @ Qd
            wf = grid.w[:, None] * fr
            S = np.stack([(Qxd * wf[:, n, None]).T @ Qxd for n in range(fr.shape[1])])
            sqrt_peq = np.sqrt(peq)
            alpha0 = Qxd.T @ (grid.w * p0 / sqrt_peq)
            beta = Qxd.T @ (grid.w * sqrt_peq)
            Aabs = (Qd.T * lQ[None, :]) @ Qd
        return cls(grid, peq, p0, D, fr, model.boundary_mode, model.boundary_conditions, model.absorption_step,
                   model.equilibrium, spectrum, lQd, Qd, Qxd, S, alpha0, beta, Aabs)

    @property
    def absorbing(self) -> bool:
        """Whether the absorption step applies (MATH.md §5 step 3)."""
        return self.absorption_step


def _flatten(data: "SpikeData | Sequence[SpikeData]", n_neurons: int):
    sets = [data] if hasattr(data, "trials") else list(data)
    for d in sets:
        if d.n_neurons > n_neurons:
            raise ValueError(f"the data has {d.n_neurons} neurons but the model has {n_neurons}")
    if not sets:
        raise ValueError("no trials to evaluate")
    if len(sets) == 1:
        return sets[0].packed()
    parts = [d.packed() for d in sets]
    starts = np.cumsum([0] + [len(isi) for isi, _, _ in parts[:-1]])
    offsets = np.concatenate([[0]] + [o[1:] + s for (_, _, o), s in zip(parts, starts)])
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), offsets)


_scratch = threading.local()


def _workspace(name: str, shape: tuple) -> np.ndarray:
    """A reusable array of this thread.

    The passes fill several (intervals × Nv) arrays per call; fresh ones
    cost page faults that took a third of the time, so each thread keeps
    its own and grows them when needed. A thread runs one pass at a time,
    and the pass reduces the arrays to sums before it returns.
    """
    buffers = _scratch.__dict__.setdefault("buffers", {})
    size = int(np.prod(shape))
    buf = buffers.get(name)
    if buf is None or buf.size < size:
        buf = buffers[name] = np.empty(size)
    return buf[:size].reshape(shape)


def _propagators(lQd: np.ndarray, isi: np.ndarray) -> np.ndarray:
    """``E = exp(-dt ⊗ lQd)``, shape (n_intervals, Nv), floored at e^-300.

    A floored entry is < 1e-130 against a normalised vector, so it changes
    nothing in double precision; the floor keeps exp off its slow underflow
    path and keeps denormal numbers (two orders of magnitude slower on x86)
    out of the passes, where at most two such factors meet.
    """
    E = np.multiply.outer(isi, -lQd, out=_workspace("E", (len(isi), len(lQd))))
    np.maximum(E, -300.0, out=E)
    return np.exp(E, out=E)


_BLOCK = 256  # rows per block of the products (one trial)
_BLOCK_LOCKSTEP = 64  # rows per block of the products (lockstep): smaller blocks share a tighter corner m
_WINDOW = 256  # rows whose gradient sums are formed together, while in the caches


# Trials in lockstep want as many trials per chunk as possible (wider
# products): one chunk per core, and a cap on the rows bounds the stored
# arrays of a chunk.
_LOCKSTEP_ROWS = 16384


def _lockstep_chunks(offsets: np.ndarray) -> list[tuple[int, int]]:
    """Split trials into contiguous groups ``[t0, t1)`` of about equal work, one per available core."""
    n_trials, total = len(offsets) - 1, int(offsets[-1])
    n = min(n_trials, max(available_workers(), -(-total // _LOCKSTEP_ROWS)))
    if n <= 1:
        return [(0, n_trials)]
    cuts = np.searchsorted(offsets, np.linspace(0, total, n + 1)[1:-1])
    bounds = np.unique(np.concatenate(([0], np.clip(cuts, 1, n_trials - 1), [n_trials])))
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass
class _Sums:
    """Sums over trials that the gradient needs; every field adds over trials."""

    nll: float
    n_trials: int
    GA: np.ndarray | None = None  # Σ AE⊗Bpost − A⊗BE, before the eigenvalue differences
    # (with GI1, the spike rows' Σ AE⊗Bpost is left out: it is Σ_n GI1_n S_n)
    Gdiag: np.ndarray | None = None  # Σ AE·Bpost·dt (the equal-eigenvalue limit)
    Gties: np.ndarray | None = None  # the same limit on near-equal off-diagonal pairs
    GI1: np.ndarray | None = None  # per neuron Σ over its spikes of AE⊗Bpre
    Gabs: np.ndarray | None = None  # Σ α_S⊗b_abs (absorbing)
    b0: np.ndarray | None = None  # Σ b_0 / c_0
    aend: np.ndarray | None = None  # Σ a_end / c_last

    def __add__(self, other: "_Sums") -> "_Sums":
        merged = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            merged[f.name] = None if a is None else a + b
        return _Sums(**merged)


def _trial_slice(isi, ids, offsets, t0, t1):
    lo, hi = offsets[t0], offsets[t1]
    return isi[lo:hi], ids[lo:hi], offsets[t0:t1 + 1] - lo


def _lockstep_order(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intervals in lockstep order (see _kernels), and how many trials run at each step.

    Returns
    -------
    order : (n_intervals,) the interval (index into the packed arrays) of each lockstep row
    active : (longest trial,) trials still running at each step
    """
    lengths = np.diff(offsets)
    by_length = np.argsort(-lengths, kind="stable")
    rank = np.empty_like(by_length)
    rank[by_length] = np.arange(len(by_length))
    active = np.searchsorted(-lengths[by_length], -np.arange(lengths.max()), side="left")
    step = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    row = np.concatenate(([0], np.cumsum(active)[:-1]))[step] + np.repeat(rank, lengths)
    order = np.empty_like(row)
    order[row] = np.arange(len(row))
    return order, active


def _widths(lQd: np.ndarray, isi: np.ndarray) -> np.ndarray:
    """Per interval, the eigen-components that matter after its propagator (see _kernels.forward)."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.searchsorted(lQd, _kernels.CUTOFF / isi), 1)


def _forward_sums(ops: Operators, isi, ids, offsets) -> _Sums:
    none = np.empty((0, len(ops.lQd)))
    if len(offsets) == 2:  # one trial: nothing to run in lockstep with
        nll_t = _kernels.forward(ops.alpha0, ops.beta, ops.lQd, isi, ops.S, ops.Aabs, ops.absorbing,
                                 _propagators(ops.lQd, isi), ids, offsets, offsets, none, none, np.empty(0))[0]
    else:
        order, active = _lockstep_order(offsets)
        isi = isi[order]
        nll_t = _kernels.forward_lockstep(ops.alpha0, ops.beta, ops.S, ops.Aabs, ops.absorbing,
                                          _propagators(ops.lQd, isi), ids[order], _widths(ops.lQd, isi), active,
                                          none, np.empty(0))[0]
    return _Sums(float(nll_t.sum()), len(offsets) - 1)


def _gradient_sums(ops: Operators, isi, ids, offsets, need_pre: bool, ties) -> _Sums:
    """Forward and adjoint passes over one trial, reduced to :class:`_Sums`.

    The adjoint pass normalises itself, so that it runs on the other core
    beside the forward pass, and the products are split over both cores.
    """
    n_neurons, Nv = ops.fr.shape[1], len(ops.lQd)
    # Entries past the first m of a vector that has just been through a
    # propagator are negligible (see _kernels.forward), so each interval
    # only feeds an m-wide corner of the products. Stored rows are grouped by
    # neuron (trial ends last) and sorted by m within a group, so the
    # products run over blocks of rows with a shared corner.
    with np.errstate(divide="ignore"):
        m = np.maximum(np.searchsorted(ops.lQd, _kernels.CUTOFF / isi), 1)
    group = np.where(ids < 0, n_neurons, ids)
    order = np.lexsort((-m, group))
    starts = np.searchsorted(group[order], np.arange(n_neurons + 2))
    m_rows = m[order]
    rows = np.empty_like(order)
    rows[order] = np.arange(len(order))
    E = _propagators(ops.lQd, isi)
    shape = (len(isi), Nv)
    A_in, AE, Bpost, BE = (_workspace(name, shape) for name in ("A_in", "AE", "Bpost", "BE"))
    Bpre = _workspace("Bpre", shape if need_pre else (0, Nv))
    cs, log_chat = _workspace("cs", shape[:1]), _workspace("log_chat", shape[:1])
    back_args = (ops.beta, ops.lQd, isi, ops.S, ops.Aabs, ops.absorbing, E, ids, offsets, rows,
                 Bpre, Bpost, BE, log_chat)
    # The buffers belong to this thread even though the adjoint pass runs on another.
    back = submit(_kernels.backward, *back_args)
    nll_t, c0, cabs, clast, a_end, a_S = _kernels.forward(
        ops.alpha0, ops.beta, ops.lQd, isi, ops.S, ops.Aabs, ops.absorbing, E, ids, offsets, rows, A_in, AE, cs)
    b0 = back.result()
    log_end = np.log(clast * cabs)
    _kernels.backward_scale(np.log(cs), log_chat, offsets, rows, log_end, A_in, AE, b0)
    blocks = [(g, r0, min(r0 + _BLOCK, starts[g + 1]), m_rows[r0])
              for g in range(n_neurons + 1) for r0 in range(starts[g], starts[g + 1], _BLOCK)]

    def backward_part():  # Σ A⊗BE, BE only m wide
        out = np.zeros((Nv, Nv))
        for _, r0, r1, mb in blocks:
            out[:, :mb] += A_in[r0:r1].T @ BE[r0:r1, :mb]
        return out

    second = submit(backward_part)
    GA = np.zeros((Nv, Nv))
    GI1 = np.zeros((n_neurons, Nv, Nv)) if need_pre else None
    for g, r0, r1, mb in blocks:  # Σ AE⊗Bpost, or per neuron Σ AE⊗Bpre; AE only m wide
        if need_pre and g < n_neurons:
            GI1[g, :mb] += AE[r0:r1, :mb].T @ Bpre[r0:r1]
        else:
            GA[:mb] += AE[r0:r1, :mb].T @ Bpost[r0:r1]
    GA -= second.result()
    dt = isi[order]
    return _Sums(
        nll=float(nll_t.sum()), n_trials=len(offsets) - 1, GA=GA,
        Gdiag=np.einsum("ij,ij,i->j", AE, Bpost, dt),
        Gties=np.array([np.sum(AE[:, j] * Bpost[:, k] * dt) for j, k in ties]),
        GI1=GI1,
        Gabs=a_S.T @ (ops.beta[None, :] / np.exp(log_end)[:, None]) if ops.absorbing else None,
        b0=(b0 / c0[:, None]).sum(axis=0),
        aend=(a_end / clast[:, None]).sum(axis=0),
    )


def _gradient_sums_lockstep(ops: Operators, isi, ids, offsets, ties) -> _Sums:
    """Forward then adjoint pass over trials in lockstep (see _kernels), reduced to :class:`_Sums`."""
    n_neurons, Nv = ops.fr.shape[1], len(ops.lQd)
    order, active = _lockstep_order(offsets)
    isi, ids = isi[order], ids[order]
    m = _widths(ops.lQd, isi)
    E = _propagators(ops.lQd, isi)
    A_in, cs = _workspace("A_in", (len(isi), Nv)), _workspace("cs", (len(isi),))
    nll_t, c0, cabs, clast, a_end, a_S = _kernels.forward_lockstep(
        ops.alpha0, ops.beta, ops.S, ops.Aabs, ops.absorbing, E, ids, m, active, A_in, cs)
    end_scale = 1.0 / (clast * cabs)
    b0, GI1, GA, Gdiag, Gties, ae_last, b_last, last_spike = _kernels.backward_lockstep(
        ops.beta, ops.S, ops.Aabs, ops.absorbing, E, ids, isi, m, active, cs, end_scale, A_in,
        np.array(ties, dtype=np.int64).reshape(-1, 2), n_neurons, _WINDOW, _BLOCK_LOCKSTEP)
    # Σ α⊗(b_post⊙E) needs no pass of its own. An interval other than a
    # trial's first is entered by α = S_n (α'⊙E')/c' of the spike before it,
    # whose backward vector before S_n is b_pre' = (b_post⊙E)/c'. So its term
    # is S_n (α'⊙E')⊗b_pre', a spike's term of GI1_n, for every spike that
    # is not its trial's last; a trial's first interval is entered by α0/c0.
    GI1_inner = GI1.copy()
    for n in range(n_neurons):
        last = last_spike == n
        if last.any():
            GI1_inner[n] -= ae_last[last].T @ b_last[last]
    GA -= sum(S_n @ G_n for S_n, G_n in zip(ops.S, GI1_inner))
    GA -= np.outer(ops.alpha0 / np.linalg.norm(ops.alpha0), b0.sum(axis=0))
    return _Sums(
        nll=float(nll_t.sum()), n_trials=len(offsets) - 1, GA=GA, Gdiag=Gdiag, Gties=Gties, GI1=GI1,
        Gabs=a_S.T @ (ops.beta[None, :] * end_scale[:, None]) if ops.absorbing else None,
        b0=(b0 / c0[:, None]).sum(axis=0),
        aend=(a_end / clast[:, None]).sum(axis=0),
    )


def batch_nll(ops: Operators, data: "SpikeData | Sequence[SpikeData]") -> float:
    """NLL summed over the trials of ``data`` with prepared operators."""
    isi, ids, offsets = _flatten(data, ops.fr.shape[1])
    with blas_threads(1):
        parts = parallel_map(lambda c: _forward_sums(ops, *_trial_slice(isi, ids, offsets, *c)),
                             _lockstep_chunks(offsets))
    return float(sum(p.nll for p in parts))


def batch_nll_and_grad(ops: Operators, data: "SpikeData | Sequence[SpikeData]",
                       grads: Iterable[str] = ("F", "D", "Fr", "C")) -> tuple[float, dict]:
    """NLL and gradients summed over the trials of ``data`` with prepared operators.

    Returns
    -------
    nll : float
    grad : dict
        Keys among ``F`` (N,), ``F0`` (N,), ``D`` (float), ``Fr``
        (N, n_neurons), ``C`` (n_neurons,): the gradient of the NLL with
        respect to the force, the initial force, D, the rate shapes and the
        rate scales.
    """
    grads = _validate_grads(grads, ops.equilibrium)
    isi, ids, offsets = _flatten(data, ops.fr.shape[1])
    need_pre = bool({"Fr", "C"} & set(grads))
    lQd = ops.lQd
    diff = lQd[None, :] - lQd[:, None]
    tie = np.abs(diff) <= 1e-10 * max(1.0, np.abs(lQd).max())
    np.fill_diagonal(tie, False)
    ties = list(zip(*np.nonzero(tie)))
    with blas_threads(1):
        if len(offsets) == 2:  # one trial: its adjoint pass runs beside its forward pass
            parts = [_gradient_sums(ops, isi, ids, offsets, need_pre, ties)]
        else:
            parts = parallel_map(lambda c: _gradient_sums_lockstep(ops, *_trial_slice(isi, ids, offsets, *c), ties),
                                 _lockstep_chunks(offsets))
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return total.nll, _assemble(ops, total, grads, diff, ties)


def _assemble(ops: Operators, sums: _Sums, grads: tuple[str, ...], diff: np.ndarray, ties: list) -> dict:
    """Gradients from the trial sums (MATH.md §6)."""
    grid = ops.grid
    np.fill_diagonal(diff, 1.0)
    for j, k in ties:
        diff[j, k] = 1.0
    GA = sums.GA
    if sums.GI1 is not None:
        # Bpost = S_n Bpre on a spike of neuron n, so those rows' Σ AE⊗Bpost
        # is Σ_n GI1_n S_n: a few Nv×Nv products instead of a pass over rows.
        GA = GA + sum(GI1_n @ S_n for GI1_n, S_n in zip(sums.GI1, ops.S))
    G = GA / diff
    np.fill_diagonal(G, sums.Gdiag)
    for (j, k), value in zip(ties, sums.Gties):
        G[j, k] = value
    # MATH.md §6 forms GI20 = Qd G Qdᵀ, G0 and GI10_n the same way and pairs
    # them with Y; everything here pairs them as rowdot(A, B M) with A, B
    # among Y, Y', so the sandwiches fold into Y Qd: rowdot(Y, Y Qd M Qdᵀ) =
    # rowdot(Y Qd, Y Qd M), and similarly with Y'.
    peq, D, n_trials = ops.peq, ops.D, sums.n_trials
    sqrt_peq = np.sqrt(peq)
    Yd = ops.Qxd / sqrt_peq[:, None]  # Y Qd, since Qx = sqrt(peq)·Y
    G_end = G - sums.Gabs if ops.absorbing else G  # G0 = Qd G_end Qdᵀ
    out: dict = {}
    if {"F", "D"} & set(grads):
        Ypd = grid.derivative(Yd)
        YpdG = Ypd @ G_end
    if "D" in grads:
        out["D"] = float(np.sum(grid.w * peq * np.einsum("xj,xj->x", Ypd, YpdG)))
    rho0 = ops.p0 / sqrt_peq
    b0_sum = ops.Qxd @ sums.b0
    aend_sum = ops.Qxd @ sums.aend
    if "F" in grads:
        inner = np.einsum("xj,xj->x", Yd, YpdG) + np.einsum("xj,xj->x", Ypd, Yd @ G_end)
        if ops.equilibrium:
            BT = grid.antiderivative(n_trials * peq - 0.5 * (aend_sum + b0_sum) * sqrt_peq)
        else:
            BT = 0.5 * grid.antiderivative(b0_sum * rho0 - aend_sum * sqrt_peq)
        out["F"] = -0.5 * D * peq * inner - BT
    if "F0" in grads:
        out["F0"] = -grid.antiderivative(n_trials * rho0 * sqrt_peq - rho0 * b0_sum)
    if {"Fr", "C"} & set(grads):
        # PhiY_n = peq·(Φ - rowdot(Y, Y·GI10_n)), Φ = rowdot(Y, Y·GI20)
        PhiY = np.empty_like(ops.fr)
        for n in range(ops.fr.shape[1]):
            PhiY[:, n] = peq * np.einsum("xj,xj->x", Yd, Yd @ (G - sums.GI1[n]))
        C2 = grid.antiderivative(ops.fr * PhiY)
        if "Fr" in grads:
            out["Fr"] = C2[-1][None, :] - C2
        if "C" in grads:
            out["C"] = C2[-1] / ops.fr[0]
    return out


def _validate_grads(grads: Iterable[str], equilibrium: bool) -> tuple[str, ...]:
    grads = tuple(grads)
    bad = [g for g in grads if g not in GRADIENT_NAMES]
    if bad:
        raise ValueError(f"unknown gradient name(s) {bad}; allowed: {list(GRADIENT_NAMES)}")
    if equilibrium and "F0" in grads:
        raise ValueError("F0 has no gradient in an equilibrium model (p0 = peq); give the model a p0 to fit it")
    return grads


def nll(model: Model, data: "SpikeData | Sequence[SpikeData]", Nv: int | None = None, datasample: int = 0) -> float:
    """Negative log-likelihood of ``data`` under ``model``.

    Parameters
    ----------
    model : Model
    data : SpikeData or list of SpikeData
        Trials to evaluate; their NLLs add.
    Nv : int, optional
        Number of eigenpairs kept, ``1 <= Nv <= N - 2`` (default ``N - 2``).
    datasample : int
        Which datasample's parameters to use.

    Returns
    -------
    float
        ``-log p(data | model)`` (nats); may be negative, as it is a density.
    """
    return batch_nll(Operators.build(model, datasample, Nv), data)


def nll_and_grad(model: Model, data: "SpikeData | Sequence[SpikeData]", Nv: int | None = None,
                 grads: Iterable[str] = ("F", "D", "Fr", "C"), datasample: int = 0) -> tuple[float, dict]:
    """NLL of ``data`` and its exact gradients (see :func:`batch_nll_and_grad`)."""
    return batch_nll_and_grad(Operators.build(model, datasample, Nv), data, grads)


def ground_truth_nll(truth: Model, data: "SpikeData | Sequence[SpikeData]", fit_model: Model,
                     Nv: int | None = None, datasample: int = 0) -> float:
    """NLL of ``data`` under the ground truth, in a fit's likelihood setting.

    The yardstick of the 2021 figures (their dashed line): how well the
    model that generated the data explains it, measured the way the fit
    measures itself. The truth keeps its own grid, peq, p0, D and rates;
    from the fit it takes the likelihood setting, i.e. its boundary
    conditions and whether the absorption step applies. The number of
    eigenpairs is not taken from the fit (a truncation is a property of the
    fit's grid, and the truth's grid may differ): it is ``Nv``, by default
    the truth grid's ``N - 2`` (the exact discrete likelihood).

    Parameters
    ----------
    truth : Model
        The ground-truth model, on its own grid.
    data : SpikeData or list of SpikeData
        The trials (e.g. a fit's training or validation data).
    fit_model : Model
        Any model of the fit; only its ``boundary_conditions`` and
        ``absorption_step`` are used.
    Nv : int, optional
        Eigenpairs kept on the truth's grid, ``1 <= Nv <= N - 2`` (default ``N - 2``).
    datasample : int
        Which of the truth's datasample rows to use.

    Returns
    -------
    float
        ``-log p(data | truth)`` (nats).
    """
    for name, value in (("truth", truth), ("fit_model", fit_model)):
        if not isinstance(value, Model):
            raise TypeError(f"{name} must be a flowdash.core.model.Model, got {type(value).__name__}")
    setting = truth.replace(boundary_conditions=fit_model.boundary_conditions,
                            absorption_step=fit_model.absorption_step)
    return nll(setting, data, Nv=Nv, datasample=datasample)


def relative_nll(nll_value, nll_gt: float):
    """Relative NLL ``(NLL_gt - NLL) / NLL_gt`` of a fit against the ground truth.

    Parameters
    ----------
    nll_value : float or array_like
        The fit's NLL (e.g. one per epoch), on the same data as ``nll_gt``.
    nll_gt : float
        :func:`ground_truth_nll` of that data (non-zero).

    Returns
    -------
    float or ndarray
        Same shape as ``nll_value``; 0 where the fit matches the truth.
        With positive NLLs it is negative where the fit is worse; with
        negative NLLs (densities above 1, common for spike data) positive.
    """
    nll_gt = float(nll_gt)
    if not np.isfinite(nll_gt) or nll_gt == 0:
        raise ValueError(f"nll_gt must be a finite, non-zero number, got {nll_gt!r}")
    rel = (nll_gt - np.asarray(nll_value, dtype=float)) / nll_gt
    return float(rel) if rel.ndim == 0 else rel
