"""Exact negative log-likelihood of spike data and its gradients (MATH.md §4–6).

The work splits into three layers so that each is done once per model:

1. :func:`~flowdash.core.spectra.solve_spectrum` (depends on peq, D);
2. :class:`Operators`: the "dark" operator with the rates, spike
   operators and start/end vectors (depends on everything);
3. the passes over trials (:func:`nll`, :func:`nll_and_grad`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from . import _kernels
from ._parallel import blas_threads, pool
from .grid import Grid
from .model import Model
from .spectra import Spectrum, solve_spectrum

if TYPE_CHECKING:
    from .spikedata import SpikeData

__all__ = ["Operators", "GRADIENT_NAMES", "nll", "nll_and_grad", "batch_nll", "batch_nll_and_grad"]

GRADIENT_NAMES = ("F", "F0", "D", "Fr", "C")



@dataclass(frozen=True)
class Operators:
    """Everything the trial passes need for one datasample's model.

    Attributes
    ----------
    grid, peq (N,), p0 (N,), D, fr (N, n_neurons), boundary_mode, equilibrium
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
        ``Qdᵀ diag(lQ) Qd`` (absorbing boundary).
    """

    grid: Grid
    peq: np.ndarray
    p0: np.ndarray
    D: float
    fr: np.ndarray
    boundary_mode: str
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
            A solution for this model's peq and D to reuse (the spectrum does
            not depend on p0 or the rates).
        """
        grid = model.grid
        peq, p0, D, fr = model.peq_of(datasample), model.p0_of(datasample), model.D_of(datasample), model.fr_of(datasample)
        with blas_threads(1):
            if spectrum is None:
                spectrum = solve_spectrum(grid, peq, D, model.boundary_mode, Nv)
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
        return cls(grid, peq, p0, D, fr, model.boundary_mode, model.equilibrium, spectrum,
                   lQd, Qd, Qxd, S, alpha0, beta, Aabs)

    @property
    def absorbing(self) -> bool:
        return self.boundary_mode == "absorbing"


def _flatten(data: "SpikeData | Sequence[SpikeData]", n_neurons: int):
    sets = [data] if hasattr(data, "trials") else list(data)
    trials = [tr for d in sets for tr in d.trials]
    for d in sets:
        if d.n_neurons > n_neurons:
            raise ValueError(f"the data has {d.n_neurons} neurons but the model has {n_neurons}")
    if not trials:
        raise ValueError("no trials to evaluate")
    lengths = np.array([len(isi) for isi, _ in trials])
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    isi = np.concatenate([isi for isi, _ in trials]).astype(np.float64)
    ids = np.concatenate([ids for _, ids in trials]).astype(np.int64)
    return isi, ids, offsets


def _propagators(ops: Operators, isi: np.ndarray) -> np.ndarray:
    """``E = exp(-dt ⊗ lQd)``, shape (n_intervals, Nv), flushed to 0 below e^-460.

    A flushed entry is < 1e-200 against a normalised vector, so it changes
    nothing in double precision, but it keeps denormal numbers, which are
    two orders of magnitude slower on x86, out of the passes.
    """
    arg = np.multiply.outer(isi, ops.lQd)
    keep = arg < 460.0
    return np.exp(-arg, out=np.zeros_like(arg), where=keep)


def batch_nll(ops: Operators, data: "SpikeData | Sequence[SpikeData]") -> float:
    """NLL summed over the trials of ``data`` with prepared operators."""
    isi, ids, offsets = _flatten(data, ops.fr.shape[1])
    with blas_threads(1):
        E = _propagators(ops, isi)
    out = _kernels.forward(ops.alpha0, ops.beta, ops.S, ops.Aabs, ops.absorbing, E, ids, offsets, False)
    return float(out[0].sum())


def _g_matrix(A_in, AE, Bpost, BE, dt, lQd):
    """``G_jk = Σ_i α_i[j] b_i[k] (E_ij − E_ik)/(λ_k − λ_j)``; ``Σ α b dt E`` on (near-)ties."""
    # The two large products are independent: one runs on the second core.
    second = pool().submit(np.matmul, A_in.T, BE)
    G = AE.T @ Bpost
    G -= second.result()
    diff = lQd[None, :] - lQd[:, None]
    tie = np.abs(diff) <= 1e-10 * max(1.0, np.abs(lQd).max())
    G /= np.where(tie, 1.0, diff)
    # The limit form is needed on the diagonal and, rarely, on near-equal pairs.
    np.fill_diagonal(G, np.einsum("ij,ij,i->j", AE, Bpost, dt))
    np.fill_diagonal(tie, False)
    for j, k in zip(*np.nonzero(tie)):
        G[j, k] = np.sum(AE[:, j] * Bpost[:, k] * dt)
    return G


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
    with blas_threads(1):
        return _nll_and_grad(ops, data, grads)


def _nll_and_grad(ops: Operators, data, grads: tuple[str, ...]) -> tuple[float, dict]:
    grid = ops.grid
    isi, ids, offsets = _flatten(data, ops.fr.shape[1])
    n_trials = len(offsets) - 1
    rates = bool({"Fr", "C"} & set(grads))
    E = _propagators(ops, isi)
    # The adjoint pass normalises itself, so it runs on the second core
    # while this thread does the forward pass.
    back = pool().submit(_kernels.backward, ops.beta, ops.S, ops.Aabs, ops.absorbing, E, ids, offsets, rates)
    nll_t, A_in, AE, cs, c0, cabs, clast, a_end, a_S = _kernels.forward(
        ops.alpha0, ops.beta, ops.S, ops.Aabs, ops.absorbing, E, ids, offsets, True)
    Bpre, Bpost, BE, log_chat, b0 = back.result()
    log_end = np.log(clast * cabs)
    _kernels.backward_scale(np.log(cs), log_chat, offsets, log_end, A_in, AE, b0)
    babs = ops.beta[None, :] / np.exp(log_end)[:, None]
    del E
    out: dict = {}
    Qd = ops.Qd
    G = _g_matrix(A_in, AE, Bpost, BE, isi, ops.lQd)
    GI20 = Qd @ G @ Qd.T
    if ops.absorbing:
        G = G - a_S.T @ babs
    G0 = Qd @ G @ Qd.T
    Y = ops.spectrum.QxOrig
    peq, D = ops.peq, ops.D
    if {"F", "D"} & set(grads):
        Yp = grid.derivative(Y)
        YpG0 = Yp @ G0
    if "D" in grads:
        out["D"] = float(np.sum(grid.w * peq * np.einsum("xj,xj->x", Yp, YpG0)))
    sqrt_peq = np.sqrt(peq)
    rho0 = ops.p0 / sqrt_peq
    b0_sum = ops.Qxd @ (b0 / c0[:, None]).sum(axis=0)
    aend_sum = ops.Qxd @ (a_end / clast[:, None]).sum(axis=0)
    if "F" in grads:
        inner = np.einsum("xj,xj->x", Y, YpG0) + np.einsum("xj,xj->x", Yp, Y @ G0)
        if ops.equilibrium:
            BT = grid.antiderivative(n_trials * peq - 0.5 * (aend_sum + b0_sum) * sqrt_peq)
        else:
            BT = 0.5 * grid.antiderivative(b0_sum * rho0 - aend_sum * sqrt_peq)
        out["F"] = -0.5 * D * peq * inner - BT
    if "F0" in grads:
        out["F0"] = -grid.antiderivative(n_trials * rho0 * sqrt_peq - rho0 * b0_sum)
    if {"Fr", "C"} & set(grads):
        n_neurons = ops.fr.shape[1]
        Phi = np.einsum("xj,xj->x", Y, Y @ GI20)
        PhiY = np.empty((grid.N, n_neurons))
        for n in range(n_neurons):
            sel = ids == n
            GI10 = Qd @ (AE[sel].T @ Bpre[sel]) @ Qd.T
            PhiY[:, n] = peq * (Phi - np.einsum("xj,xj->x", Y, Y @ GI10))
        C2 = grid.antiderivative(ops.fr * PhiY)
        if "Fr" in grads:
            out["Fr"] = C2[-1][None, :] - C2
        if "C" in grads:
            out["C"] = C2[-1] / ops.fr[0]
    return float(nll_t.sum()), out


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
