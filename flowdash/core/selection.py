"""Model selection by feature consistency (MATH.md §10.1–10.3).

A fit that runs long enough overfits. Two fits of independent halves of the
data (two *fit paths*) are compared model by model: the feature complexity
(FC) places each recorded model on a common axis, models of equal FC are
paired, and the most complex model on which the two paths still agree (their
divergence stays under a threshold) is selected.

Pieces, from the bottom up:

- :func:`fc_equilibrium`, :func:`fc_nonequilibrium`: FC of one model;
- :func:`js_equilibrium`, :func:`js_timedep`: divergence of two models;
- :class:`FitPath` (a fit's recorded models), :class:`FCASettings`,
  :class:`FCAResult`;
- :class:`FeatureConsistency`: the analysis of two paths; it memoises the
  spectra and per-model quantities (through a :class:`ModelCache`), so
  re-running it with other settings, or on a path that has grown since,
  only computes what is new.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from ._parallel import blas_threads, parallel_map
from .grid import Grid
from .model import BOUNDARY_MODES, Model
from .spectra import solve_spectrum

__all__ = [
    "FITTABLE_NAMES",
    "SettingError",
    "spectrum_mode",
    "FitPath",
    "FCASettings",
    "FCAResult",
    "ModelCache",
    "FeatureConsistency",
    "feature_consistency",
    "fc_equilibrium",
    "fc_nonequilibrium",
    "js_equilibrium",
    "js_timedep",
]

FITTABLE_NAMES = ("F", "F0", "D", "Fr", "C")
#: Densities and absorbed masses are clipped below at this value before logs (MATH.md §10.2).
DENSITY_FLOOR = 1e-10
#: The mirror check compares the paths at record min(MIRROR_RECORD, …) (MATH.md §10.3 step 2).
MIRROR_RECORD = 500
#: A p0 maximum counts in the mirror check only when more than this many nodes from the centre.
MIRROR_P0_MARGIN = 5
#: Largest grid whose full absorbing spectrum is solved densely here (beyond it, by flowdash.core.spectra).
_DENSE_MAX_N = 400
#: The 2020 analysis: the "early" model is the first with FC above FC(selected) minus this.
EARLY_FC_GAP = 4.0


def spectrum_mode(boundary_conditions: str) -> str:
    """The ``boundary_mode`` of a :class:`FitPath` for models with these boundary conditions.

    'dirichlet' -> 'absorbing' (paths vanish at the walls, whether or not the
    likelihood applies the absorption step), 'neumann' -> 'reflecting'.
    """
    modes = {"dirichlet": "absorbing", "neumann": "reflecting"}
    if boundary_conditions not in modes:
        raise ValueError(f"boundary_conditions must be 'dirichlet' or 'neumann', got {boundary_conditions!r}")
    return modes[boundary_conditions]


class SettingError(ValueError):
    """An invalid setting or input; ``setting`` names it (e.g. ``'FC_stride'``)."""

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(message)


# ---------------------------------------------------------------------------
# feature complexity and divergences of single models
# ---------------------------------------------------------------------------


def _rows(name: str, value, N: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != N:
        raise ValueError(f"{name} must have shape (N,) or (K, N) with N = {N}, got {np.shape(value)}")
    return arr


def _check_mode(boundary_mode: str) -> None:
    if boundary_mode not in BOUNDARY_MODES:
        raise ValueError(f"boundary_mode must be one of {BOUNDARY_MODES}, got {boundary_mode!r}")


def fc_equilibrium(grid: Grid, peq: np.ndarray) -> float:
    """Feature complexity of an equilibrium model (2020), summed over rows.

    ``FC = Σ_k Σ w·(Dm·√peq_k)² = Σ_k ¼∫F_k² peq_k dx`` (MATH.md §10.1).

    Parameters
    ----------
    grid : Grid
    peq : ndarray, shape (N,) or (K, N)
        Equilibrium densities (positive).

    Returns
    -------
    float
        FC (units 1/x, "a.u." in plots).
    """
    peq = _rows("peq", peq, grid.N)
    if np.any(peq <= 0) or not np.all(np.isfinite(peq)):
        raise ValueError("peq must be finite and positive at every node")
    return float(np.sum(_fc_eq_rows(grid, peq)))


def _fc_eq_rows(grid: Grid, peq: np.ndarray) -> np.ndarray:
    """Equilibrium FC of each row of ``peq`` (..., N) -> (...)."""
    flat = peq.reshape(-1, grid.N)
    d = grid.derivative(np.sqrt(flat).T)  # (N, rows)
    return (grid.w @ (d * d)).reshape(peq.shape[:-1])


def js_equilibrium(grid: Grid, peq1: np.ndarray, peq2: np.ndarray) -> float:
    """Jensen–Shannon divergence of two equilibrium models, summed over rows.

    Each row is normalised (``Σ w·p = 1``) first (MATH.md §10.2).

    Parameters
    ----------
    grid : Grid
    peq1, peq2 : ndarray, shape (N,) or (K, N)
        The same number of rows K.

    Returns
    -------
    float
        JS (nats); 0 for identical models, at most K·log 2.
    """
    p1, p2 = _rows("peq1", peq1, grid.N), _rows("peq2", peq2, grid.N)
    if p1.shape != p2.shape:
        raise ValueError(f"peq1 and peq2 must have the same rows, got {p1.shape[0]} and {p2.shape[0]}")
    return float(np.sum(_js_eq(grid, p1, p2)))


def _js_eq(grid: Grid, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Row-summed JS of (..., K, N) arrays -> (...)."""
    p1 = p1 / (p1 @ grid.w)[..., None]
    p2 = p2 / (p2 @ grid.w)[..., None]
    m = 0.5 * (p1 + p2)
    js = 0.5 * ((p1 * np.log(p1 / m) + p2 * np.log(p2 / m)) @ grid.w)
    return js.sum(axis=-1)


@dataclass(frozen=True)
class _RowSpectrum:
    """What the non-equilibrium FC and JS_t need of one (peq, D) row."""

    lQ: np.ndarray  # (N-2,)
    Qx: np.ndarray  # (N, N-2)
    G: np.ndarray  # (N-2,): Σ w Q_i (D/4) F² √peq


@lru_cache(maxsize=8)
def _inner_stiffness_map(grid: Grid) -> sp.csr_matrix:
    """Sparse map (n², N), n = N - 2: ``peq -> K_in.ravel()`` for D = 1.

    ``K = Σ_e De^T diag(w_e peq_e) De`` is linear in peq; as one sparse product
    it takes a sixth of the time of assembling the element blocks per model.
    """
    N, n = grid.N, grid.N - 2
    idx = grid._elem_index
    De = grid.elem_D
    rows, cols, vals = [], [], []
    for e in range(grid.Ne):
        for j in range(grid.Np):
            # node idx[e, j] contributes w_j De[j, a] De[j, b] to K[idx[e, a], idx[e, b]]
            a, b = np.meshgrid(idx[e], idx[e], indexing="ij")
            inner = (a >= 1) & (a <= n) & (b >= 1) & (b <= n)
            rows.append(((a - 1) * n + (b - 1))[inner])
            cols.append(np.full(int(inner.sum()), idx[e, j]))
            vals.append((grid.elem_w[j] * np.outer(De[j], De[j]))[inner])
    M = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n, N))
    M.sum_duplicates()
    return M


def _absorbing_pairs(grid: Grid, peq: np.ndarray, D: float) -> tuple[np.ndarray, np.ndarray]:
    """All N-2 eigenpairs ``(lQ, Qx)`` of the §4 problem with absorbing walls, by one dense solve.

    With Dirichlet walls the constrained basis is the inner nodes scaled by
    ``1/√(w·peq)``, so the problem is the symmetric matrix
    ``K_in / √(m_i m_j)``, assembled here directly: for the full spectrum of
    a small grid that halves the time of the general banded route, and the
    feature consistency analysis solves one problem per recorded model.
    """
    n = grid.N - 2
    s = 1.0 / np.sqrt(grid.w[1:-1] * peq[1:-1])
    A = (_inner_stiffness_map(grid) @ peq).reshape(n, n)
    A *= D * s[:, None] * s[None, :]
    # numpy's eigh (LAPACK's syevd) releases the GIL, so the analysis's two threads solve two
    # records at once; scipy's LAPACK wrappers hold it (measured: no gain from a second thread)
    lQ, z = np.linalg.eigh(A, UPLO="L")
    Qx = np.zeros((grid.N, n))
    Qx[1:-1] = (np.sqrt(peq[1:-1]) * s)[:, None] * z
    return lQ, Qx


def _row_spectrum(grid: Grid, peq: np.ndarray, D: float, boundary_mode: str) -> _RowSpectrum:
    if boundary_mode == "absorbing" and grid.N <= _DENSE_MAX_N:
        lQ, Qx = _absorbing_pairs(grid, peq, D)
        F = grid.derivative(np.log(peq))
        return _RowSpectrum(lQ, Qx, Qx.T @ (grid.w * (0.25 * D) * F * F * np.sqrt(peq)))
    spec = solve_spectrum(grid, peq, D, boundary_mode)
    lQ = np.array(spec.lQ)
    if boundary_mode == "reflecting":
        lQ[0] = 0.0  # the stationary mode; a solver returns about ±1e-11
    F = grid.derivative(np.log(peq))
    G = spec.Qx.T @ (grid.w * (0.25 * D) * F * F * np.sqrt(peq))
    return _RowSpectrum(lQ, spec.Qx, G)


def _rho(grid: Grid, spec: _RowSpectrum, peq: np.ndarray, p0: np.ndarray) -> np.ndarray:
    return spec.Qx.T @ (grid.w * p0 / np.sqrt(peq))


def _fc_row(grid: Grid, spec: _RowSpectrum, peq: np.ndarray, p0: np.ndarray, boundary_mode: str,
            terminal_time: float) -> float:
    """One row's ``∫p0 log p0 + log L + ∫_0^T ∫ (D/4) F² p(x, t)``."""
    rho = _rho(grid, spec, peq, p0)
    pos = p0 > 0
    entropy = float(grid.w[pos] @ (p0[pos] * np.log(p0[pos])))
    if boundary_mode == "absorbing":
        path = float(np.sum(spec.G * rho / spec.lQ))
    else:
        lam = spec.lQ[1:]
        path = float(spec.G[0] * rho[0] * terminal_time
                     + np.sum(spec.G[1:] * rho[1:] * (-np.expm1(-lam * terminal_time)) / lam))
    return entropy + math.log(grid.length) + path


def _densities(grid: Grid, spec: _RowSpectrum, peq: np.ndarray, p0: np.ndarray, terminal_time: float,
               number_of_timesteps: int) -> np.ndarray:
    """``p(x, t_j)`` at ``t_j = j T/(n-1)``, j = 1…n-1, shape (n-1, N)."""
    t = terminal_time * np.arange(1, number_of_timesteps) / (number_of_timesteps - 1)
    # Components damped below e^-60 already at t_1 are left out: they are far
    # below round-off, and their tiny factors would be denormal numbers, which
    # make the product two orders of magnitude slower.
    k = max(int(np.searchsorted(spec.lQ, 60.0 / t[0], side="right")), 1)
    rho = _rho(grid, spec, peq, p0)[:k]
    coef = rho[None, :] * np.exp(-np.outer(t, spec.lQ[:k]))
    return np.sqrt(peq)[None, :] * (coef @ spec.Qx[:, :k].T)


def _js_t_rows(grid: Grid, d1: np.ndarray, d2: np.ndarray, absorbing: bool) -> np.ndarray:
    """Σ_j js(p1(t_j), p2(t_j)) for densities (..., n-1, N) -> (...)."""
    p1 = np.maximum(d1, DENSITY_FLOOR)
    p2 = np.maximum(d2, DENSITY_FLOOR)
    m = 0.5 * (p1 + p2)
    js = 0.5 * ((p1 * np.log(p1 / m) + p2 * np.log(p2 / m)) @ grid.w)
    if absorbing:
        I1 = np.maximum(1.0 - d1 @ grid.w, DENSITY_FLOOR)
        I2 = np.maximum(1.0 - d2 @ grid.w, DENSITY_FLOOR)
        s = I1 + I2
        js = js + 0.5 * (I1 * np.log(2 * I1 / s) + I2 * np.log(2 * I2 / s))
    return js.sum(axis=-1)


def _noneq_rows(grid: Grid, peq, p0, D) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcast (peq, p0, D) rows to K = the largest row count."""
    peq, p0 = _rows("peq", peq, grid.N), _rows("p0", p0, grid.N)
    D = np.atleast_1d(np.asarray(D, dtype=float))
    if D.ndim != 1:
        raise ValueError(f"D must be a number or one per row, got shape {D.shape}")
    K = max(len(peq), len(p0), len(D))
    for name, arr in (("peq", peq), ("p0", p0), ("D", D)):
        if len(arr) not in (1, K):
            raise ValueError(f"{name} has {len(arr)} rows; each of peq, p0, D needs 1 (shared) or K = {K}")
    if np.any(peq <= 0) or not np.all(np.isfinite(peq)):
        raise ValueError("peq must be finite and positive at every node")
    if np.any(p0 < 0) or not np.all(np.isfinite(p0)):
        raise ValueError("p0 must be finite and non-negative at every node")
    if np.any(D <= 0) or not np.all(np.isfinite(D)):
        raise ValueError(f"D must be finite and > 0, got {D.tolist()}")
    idx = lambda arr, k: arr[0] if len(arr) == 1 else arr[k]  # noqa: E731
    return (np.array([idx(peq, k) for k in range(K)]), np.array([idx(p0, k) for k in range(K)]),
            np.array([idx(D, k) for k in range(K)]))


def _check_time(terminal_time, number_of_timesteps=None) -> None:
    if isinstance(terminal_time, bool) or not isinstance(terminal_time, (int, float, np.integer, np.floating)) \
            or not math.isfinite(terminal_time) or terminal_time <= 0:
        raise SettingError("terminal_time", f"terminal_time must be a finite number of seconds > 0, "
                                            f"got {terminal_time!r}")
    if number_of_timesteps is not None and (isinstance(number_of_timesteps, bool) or not isinstance(
            number_of_timesteps, (int, np.integer)) or number_of_timesteps < 2):
        raise SettingError("number_of_timesteps",
                           f"number_of_timesteps must be an integer >= 2, got {number_of_timesteps!r}")


def fc_nonequilibrium(grid: Grid, peq: np.ndarray, p0: np.ndarray, D, boundary_mode: str,
                      terminal_time: float = 1.0) -> float:
    """Feature complexity of a non-equilibrium model (2021): KL of its path measure from free diffusion.

    ``FC = Σ_k [∫p0 log p0 + log L + ∫_0^T ∫ (D/4) F² p(x,t) dx dt]`` with
    ``p`` propagated from p0 without spikes (MATH.md §10.1); all ``N - 2``
    eigenpairs are used. Absorbing: ``T = ∞`` (``terminal_time`` is not
    used); reflecting: up to ``T``, the stationary eigenvalue taken as 0.

    Parameters
    ----------
    grid : Grid
    peq : ndarray, shape (N,) or (K, N)
    p0 : ndarray, shape (N,) or (K, N)
    D : float or ndarray, shape (K,)
        One row shared by all, or K rows each.
    boundary_mode : {'absorbing', 'reflecting'}
    terminal_time : float
        T in seconds (> 0).

    Returns
    -------
    float
        FC in nats.
    """
    _check_mode(boundary_mode)
    _check_time(terminal_time)
    peq, p0, D = _noneq_rows(grid, peq, p0, D)
    return float(sum(_fc_row(grid, _row_spectrum(grid, peq[k], D[k], boundary_mode), peq[k], p0[k],
                             boundary_mode, terminal_time) for k in range(len(D))))


def js_timedep(grid: Grid, model1: tuple, model2: tuple, boundary_mode: str, terminal_time: float = 1.0,
               number_of_timesteps: int = 10) -> float:
    """Time-dependent Jensen–Shannon divergence ``JS_t`` of two non-equilibrium models (MATH.md §10.2).

    Parameters
    ----------
    grid : Grid
    model1, model2 : tuple (peq, p0, D)
        peq, p0: ndarray, shape (N,) or (K, N); D: float or (K,). Both models
        have the same row count K (the largest among peq, p0, D).
    boundary_mode : {'absorbing', 'reflecting'}
        Absorbing adds the absorbed masses as one more outcome.
    terminal_time : float
        T (s, > 0).
    number_of_timesteps : int
        n >= 2; the densities are compared at ``j T/(n-1)``, j = 1…n-1.

    Returns
    -------
    float
        ``(T/(n-1)) (1/K) Σ_k Σ_j js(p1_k(t_j), p2_k(t_j))`` (nats·s).
    """
    _check_mode(boundary_mode)
    _check_time(terminal_time, number_of_timesteps)
    rows = []
    for name, model in (("model1", model1), ("model2", model2)):
        if not isinstance(model, (tuple, list)) or len(model) != 3:
            raise TypeError(f"{name} must be a tuple (peq, p0, D)")
        rows.append(_noneq_rows(grid, *model))
    if len(rows[0][2]) != len(rows[1][2]):
        raise ValueError(f"model1 has {len(rows[0][2])} rows and model2 {len(rows[1][2])}; they must match")
    dens = [np.array([_densities(grid, _row_spectrum(grid, peq[k], D[k], boundary_mode), peq[k], p0[k],
                                 terminal_time, number_of_timesteps) for k in range(len(D))])
            for peq, p0, D in rows]
    K = len(rows[0][2])
    total = np.sum(_js_t_rows(grid, dens[0], dens[1], boundary_mode == "absorbing"))
    return float(terminal_time / (number_of_timesteps - 1) / K * total)


# ---------------------------------------------------------------------------
# inputs, settings, result
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FitPath:
    """The models a fit recorded, in order (one *fit path* of MATH.md §10.3).

    It may still be growing: a running fit's records so far form a path.

    Parameters
    ----------
    grid : Grid
    boundary_mode : {'absorbing', 'reflecting'}
    epochs : ndarray of int, shape (R,)
        The epoch of each record (``iter_num``), strictly increasing, >= 0.
    peq : ndarray, shape (R, K, N) (or (R, N) for one row)
        Equilibrium density of each record.
    p0 : ndarray, shape (R, rows, N), optional
        Initial density; given = a non-equilibrium path (FC and divergence
        of MATH.md §10.1–10.2's non-equilibrium kind), None = equilibrium.
    D : ndarray, shape (R, rows), optional
        Noise magnitude (x²/s); required with p0.
    fr : ndarray, shape (R, rows, N, n_neurons), optional
        Rates (Hz); only the mirror check reads them.
    fitted : iterable of {'F', 'F0', 'D', 'Fr', 'C'}
        The fitted parameters; the mirror check runs only when F, F0 and Fr
        were all fitted (and p0 and fr are given).

    Attributes
    ----------
    n_records : int
        R.
    non_equilibrium : bool
        Whether p0 is given.
    """

    grid: Grid
    boundary_mode: str
    epochs: np.ndarray
    peq: np.ndarray
    p0: np.ndarray | None = None
    D: np.ndarray | None = None
    fr: np.ndarray | None = None
    fitted: frozenset = frozenset({"F"})

    def __post_init__(self):
        if not isinstance(self.grid, Grid):
            raise TypeError(f"grid must be a flowdash.core.grid.Grid, got {type(self.grid).__name__}")
        _check_mode(self.boundary_mode)
        epochs = np.asarray(self.epochs)
        if epochs.ndim != 1 or epochs.size == 0 or epochs.dtype.kind not in "iu" and not (
                epochs.dtype.kind == "f" and np.all(epochs == np.round(epochs))):
            raise ValueError(f"epochs must be a non-empty 1-D array of whole numbers, got {self.epochs!r}")
        epochs = epochs.astype(np.int64)
        if epochs[0] < 0 or np.any(np.diff(epochs) <= 0):
            raise ValueError(f"epochs must be >= 0 and strictly increasing, got {epochs.tolist()}")
        R, N = len(epochs), self.grid.N
        peq = np.array(self.peq, dtype=float)
        if peq.ndim == 2:
            peq = peq[:, None, :]
        if peq.ndim != 3 or peq.shape[0] != R or peq.shape[2] != N:
            raise ValueError(f"peq must have shape (R, K, N) = ({R}, K, {N}) (one row per record), "
                             f"got {np.shape(self.peq)}")
        if not np.all(np.isfinite(peq)) or np.any(peq <= 0):
            raise ValueError("peq must be finite and positive at every node of every record")
        p0 = D = fr = None
        if self.p0 is not None:
            p0 = np.array(self.p0, dtype=float)
            if p0.ndim == 2:
                p0 = p0[:, None, :]
            if p0.ndim != 3 or p0.shape[0] != R or p0.shape[2] != N:
                raise ValueError(f"p0 must have shape (R, rows, N) = ({R}, rows, {N}), got {np.shape(self.p0)}")
            if not np.all(np.isfinite(p0)) or np.any(p0 < 0):
                raise ValueError("p0 must be finite and non-negative at every node of every record")
            if self.D is None:
                raise ValueError("a non-equilibrium path (p0 given) also needs D, shape (R, rows)")
        if self.D is not None:
            D = np.array(self.D, dtype=float)
            if D.ndim == 1:
                D = D[:, None]
            if D.ndim != 2 or D.shape[0] != R:
                raise ValueError(f"D must have shape (R, rows) = ({R}, rows), got {np.shape(self.D)}")
            if not np.all(np.isfinite(D)) or np.any(D <= 0):
                raise ValueError("D must be finite and > 0 in every record")
        if self.fr is not None:
            fr = np.array(self.fr, dtype=float)
            if fr.ndim != 4 or fr.shape[0] != R or fr.shape[2] != N:
                raise ValueError(f"fr must have shape (R, rows, N, n_neurons) = ({R}, rows, {N}, n), "
                                 f"got {np.shape(self.fr)}")
            if not np.all(np.isfinite(fr)) or np.any(fr < 0):
                raise ValueError("fr must be finite and non-negative (Hz)")
        sizes = {"peq": peq.shape[1]}
        sizes.update({name: arr.shape[1] for name, arr in (("p0", p0), ("D", D), ("fr", fr)) if arr is not None})
        K = max(sizes.values())
        bad = {k: v for k, v in sizes.items() if v not in (1, K)}
        if bad:
            raise ValueError(f"each parameter needs 1 row (shared) or K = {K} rows; got {bad}")
        fitted = frozenset(self.fitted)
        unknown = sorted(fitted - set(FITTABLE_NAMES))
        if unknown:
            raise ValueError(f"fitted has unknown names {unknown}; allowed: {list(FITTABLE_NAMES)}")
        for name, arr in (("epochs", epochs), ("peq", peq), ("p0", p0), ("D", D), ("fr", fr)):
            if arr is not None:
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "fitted", fitted)

    @classmethod
    def from_models(cls, epochs: Sequence[int], models: Sequence[Model],
                    fitted: Iterable[str] = ("F",)) -> "FitPath":
        """A path from the recorded :class:`~flowdash.core.model.Model` of each epoch.

        Equilibrium models (``p0 is None``) give an equilibrium path.
        """
        models = list(models)
        if not models:
            raise ValueError("models is empty; a path needs at least one record")
        first = models[0]
        for i, m in enumerate(models):
            if not isinstance(m, Model):
                raise TypeError(f"models[{i}] must be a Model, got {type(m).__name__}")
            if m.grid != first.grid or m.boundary_conditions != first.boundary_conditions \
                    or m.equilibrium != first.equilibrium:
                raise ValueError(f"models[{i}] differs from models[0] in grid, boundary conditions or equilibrium")
        # The FC and divergences follow the process (its spectrum), not the likelihood's
        # absorption step: Dirichlet conditions mean an absorbing process with or without it.
        return cls(first.grid, spectrum_mode(first.boundary_conditions), np.asarray(epochs),
                   np.array([m.peq for m in models]),
                   None if first.equilibrium else np.array([m.p0 for m in models]),
                   np.array([m.D for m in models]), np.array([m.fr for m in models]), frozenset(fitted))

    @property
    def n_records(self) -> int:
        return len(self.epochs)

    @property
    def non_equilibrium(self) -> bool:
        return self.p0 is not None

    @property
    def n_rows(self) -> int:
        """K: the largest row count of peq (and p0, D when non-equilibrium)."""
        rows = [self.peq.shape[1]]
        if self.non_equilibrium:
            rows += [self.p0.shape[1], self.D.shape[1]]
        return max(rows)

    def head(self, n_records: int) -> "FitPath":
        """The first ``n_records`` records (the path as it was earlier in the fit)."""
        if isinstance(n_records, bool) or not isinstance(n_records, (int, np.integer)) \
                or not 1 <= n_records <= self.n_records:
            raise ValueError(f"n_records must be an integer in [1, {self.n_records}], got {n_records!r}")
        cut = lambda a: None if a is None else a[:n_records]  # noqa: E731
        return dataclasses.replace(self, epochs=self.epochs[:n_records], peq=cut(self.peq), p0=cut(self.p0),
                                   D=cut(self.D), fr=cut(self.fr))

    def mirrored(self) -> "FitPath":
        """The path reflected x → -x: peq, p0 and rates reversed along x (D unchanged)."""
        flip = lambda a, axis: None if a is None else np.flip(a, axis=axis)  # noqa: E731
        return dataclasses.replace(self, peq=flip(self.peq, 2), p0=flip(self.p0, 2), fr=flip(self.fr, 2))


def _setting_int(name: str, value, lo: int, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise SettingError(name, f"{name} must be an integer >= {lo}{what}, got {value!r}")
    return int(value)


def _setting_threshold(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise SettingError(name, f"{name} must be a finite number > 0 (a divergence in nats, "
                                 f"e.g. 0.002), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FCASettings:
    """Settings of the feature consistency analysis (MATH.md §10.3).

    Parameters
    ----------
    JS_thres : float
        Divergence threshold (> 0): 0.002 equilibrium (2020), 0.0015
        non-equilibrium (2024).
    FC_stride : int
        Half-width (>= 0) of the window of path-2 positions around the one
        of nearest FC, in which the least divergent model is matched.
    smoothing_kernel : int
        Width (>= 0; 0 or 1 = none) of the moving average applied to the
        divergence curve (10 in 2024).
    num_models : int
        Models to analyse per path (>= 1); at least the record count
        analyses every record.
    epoch_offset : int
        Positions whose record index is below it are skipped by the
        selection (>= 0; 4 in 2024).
    terminal_time : float
        T (s, > 0) of the non-equilibrium FC (reflecting) and divergence.
    number_of_timesteps : int
        n (>= 2) of the time-dependent divergence.
    late_JS_thres : float
        Threshold (> 0) of the 2020 "late" model (0.008).
    """

    JS_thres: float = 0.002
    FC_stride: int = 5
    smoothing_kernel: int = 0
    num_models: int = 100
    epoch_offset: int = 0
    terminal_time: float = 1.0
    number_of_timesteps: int = 10
    late_JS_thres: float = 0.008

    def __post_init__(self):
        object.__setattr__(self, "JS_thres", _setting_threshold("JS_thres", self.JS_thres))
        object.__setattr__(self, "late_JS_thres", _setting_threshold("late_JS_thres", self.late_JS_thres))
        object.__setattr__(self, "FC_stride", _setting_int("FC_stride", self.FC_stride, 0))
        object.__setattr__(self, "smoothing_kernel", _setting_int("smoothing_kernel", self.smoothing_kernel, 0,
                                                                  " (0 = no smoothing)"))
        object.__setattr__(self, "num_models", _setting_int("num_models", self.num_models, 1))
        object.__setattr__(self, "epoch_offset", _setting_int("epoch_offset", self.epoch_offset, 0))
        _check_time(self.terminal_time, self.number_of_timesteps)
        object.__setattr__(self, "terminal_time", float(self.terminal_time))
        object.__setattr__(self, "number_of_timesteps", int(self.number_of_timesteps))

    @classmethod
    def paper_2020(cls, **changes) -> "FCASettings":
        """The 2020 equilibrium analysis: JS 0.002, stride 5, no smoothing, no offset."""
        return cls(**{**dict(JS_thres=0.002, FC_stride=5, smoothing_kernel=0, epoch_offset=0), **changes})

    @classmethod
    def paper_2024(cls, **changes) -> "FCASettings":
        """The 2024 non-equilibrium analysis: JS 0.0015, stride 5, smoothing 10, offset 4, T 1 s, 10 steps."""
        return cls(**{**dict(JS_thres=0.0015, FC_stride=5, smoothing_kernel=10, epoch_offset=4,
                             terminal_time=1.0, number_of_timesteps=10), **changes})


def _select(JS: np.ndarray, offset: int, threshold: float) -> tuple[int, bool]:
    """Step 6: one before the first crossing at or after ``offset``; the last position if none."""
    over = np.flatnonzero(JS[offset:] > threshold)
    if over.size == 0:
        return len(JS) - 1, False
    first = offset + int(over[0])
    if first == offset:
        return offset, True
    return first - 1, False


@dataclass(frozen=True, eq=False)
class FCAResult:
    """Outcome of the feature consistency analysis. Positions index the analysed models of path 1.

    Attributes
    ----------
    FCs1 : ndarray, shape (P1,)
        FC of each analysed model of path 1, in order.
    FCs2 : ndarray, shape (P2,)
        FC of each analysed model of path 2 (mirrored if ``invert``), in
        order; not taken at the matches.
    min_inds_1 : ndarray of int, shape (P1,)
        Record index of each analysed model of path 1.
    min_inds_2 : ndarray of int, shape (P1,)
        Record index of path 2's model matched to each position.
    JS : ndarray, shape (P1,)
        Divergence of each matched pair, smoothed when requested (the curve
        that is thresholded).
    JS_raw : ndarray, shape (P1,)
        The same before smoothing.
    epochs1, epochs2 : ndarray of int, shape (P1,)
        Epochs of ``min_inds_1`` and ``min_inds_2``.
    selected : int
        The selected position (``FC_opt_ind``).
    crossed_at_once : bool
        The divergence already exceeded the threshold at the offset
        position; ``selected`` is then that position.
    offset_position : int
        First position the selection considers.
    invert : bool
        Path 2 was mirrored (x → -x) by the mirror check.
    early, late : int
        The 2020 analysis's "early" model (first position with FC above
        ``FC1[selected] - 4``) and "late" one (the selection at
        ``settings.late_JS_thres``).
    non_equilibrium : bool
        Which FC and divergence were used.
    settings : FCASettings
    analysed_2 : ndarray of int, shape (P2,)
        Record index of each analysed model of path 2 (the records of ``FCs2``).
    """

    FCs1: np.ndarray
    FCs2: np.ndarray
    min_inds_1: np.ndarray
    min_inds_2: np.ndarray
    JS: np.ndarray
    JS_raw: np.ndarray
    epochs1: np.ndarray
    epochs2: np.ndarray
    selected: int
    crossed_at_once: bool
    offset_position: int
    invert: bool
    early: int
    late: int
    non_equilibrium: bool
    settings: FCASettings
    analysed_2: np.ndarray | None = None

    @property
    def selected_records(self) -> tuple[int, int]:
        """Record indices of the selected models in path 1 and path 2."""
        return int(self.min_inds_1[self.selected]), int(self.min_inds_2[self.selected])

    @property
    def selected_epochs(self) -> tuple[int, int]:
        """Epochs of the selected models in path 1 and path 2."""
        return int(self.epochs1[self.selected]), int(self.epochs2[self.selected])

    def select(self, JS_thres: float) -> tuple[int, bool]:
        """The selected position at another threshold (no recomputation).

        Returns
        -------
        position : int
        crossed_at_once : bool
        """
        return _select(self.JS, self.offset_position, _setting_threshold("JS_thres", JS_thres))


# ---------------------------------------------------------------------------
# the analysis
# ---------------------------------------------------------------------------


def _key(*parts) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    for p in parts:
        h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray) else repr(p).encode())
        h.update(b"|")
    return h.digest()


class ModelCache:
    """Memo of the per-model-row quantities of the non-equilibrium analysis.

    Keys are the row's content (grid, boundary mode, peq, D and p0 bytes), so
    a cache serves any path that holds the same models: a re-analysis with
    other settings, a path that has grown, or a new
    :class:`FeatureConsistency` on the same runs. Spectra (``N × (N-2)``
    each) are kept up to ``max_spectra_bytes``, FC values and densities
    (``(n-1) × N`` each) up to ``max_values_bytes`` (least recently used go
    first), so a long-lived process (a web server analysing live fits)
    stays within a known memory. Thread-safe.
    """

    def __init__(self, max_spectra_bytes: int = 256 * 2**20, max_values_bytes: int = 256 * 2**20):
        self.max_spectra_bytes = int(max_spectra_bytes)
        self.max_values_bytes = int(max_values_bytes)
        self._spectra: OrderedDict = OrderedDict()
        self._spectra_bytes = 0
        self._values: OrderedDict = OrderedDict()
        self._values_bytes = 0
        self._lock = threading.Lock()

    def spectrum(self, grid: Grid, peq: np.ndarray, D: float, boundary_mode: str) -> _RowSpectrum:
        key = _key(grid, boundary_mode, peq, float(D))
        with self._lock:
            spec = self._spectra.get(key)
            if spec is not None:
                self._spectra.move_to_end(key)
                return spec
        spec = _row_spectrum(grid, peq, float(D), boundary_mode)
        size = spec.Qx.nbytes
        with self._lock:
            if key not in self._spectra:
                self._spectra[key] = spec
                self._spectra_bytes += size
                while self._spectra_bytes > self.max_spectra_bytes and len(self._spectra) > 1:
                    _, old = self._spectra.popitem(last=False)
                    self._spectra_bytes -= old.Qx.nbytes
        return spec

    def row(self, grid: Grid, peq: np.ndarray, p0: np.ndarray, D: float, boundary_mode: str,
            terminal_time: float, number_of_timesteps: int) -> tuple[float, np.ndarray]:
        """FC term and densities ``(n-1, N)`` of one row, memoised."""
        key = _key(grid, boundary_mode, peq, p0, float(D), float(terminal_time), int(number_of_timesteps))
        with self._lock:
            hit = self._values.get(key)
            if hit is not None:
                self._values.move_to_end(key)
        if hit is not None:
            return hit
        spec = self.spectrum(grid, peq, D, boundary_mode)
        value = (_fc_row(grid, spec, peq, p0, boundary_mode, terminal_time),
                 _densities(grid, spec, peq, p0, terminal_time, number_of_timesteps))
        value[1].setflags(write=False)
        with self._lock:
            if key not in self._values:
                self._values[key] = value
                self._values_bytes += value[1].nbytes
                while self._values_bytes > self.max_values_bytes and len(self._values) > 1:
                    _, old = self._values.popitem(last=False)
                    self._values_bytes -= old[1].nbytes
        return value

    def __len__(self) -> int:
        """Number of memoised model rows (FC and densities)."""
        return len(self._values)

    def clear(self) -> None:
        with self._lock:
            self._spectra.clear()
            self._values.clear()
            self._spectra_bytes = self._values_bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the memoised spectra and densities."""
        return self._spectra_bytes + self._values_bytes


def _analysed_records(epochs: np.ndarray, last_epoch: int, num_models: int) -> np.ndarray:
    """Step 1: record indices nearest to the log-spaced desired epochs (all records if few)."""
    if num_models >= len(epochs):
        return np.arange(len(epochs))
    if last_epoch >= 1:
        desired = np.floor(np.logspace(0, np.log10(last_epoch), num_models)).astype(np.int64)
    else:
        desired = np.zeros(0, dtype=np.int64)
    desired = np.unique(np.concatenate(([0], desired)))
    nearest = np.argmin(np.abs(epochs[None, :] - desired[:, None]), axis=1)  # ties: the first
    return np.unique(nearest)


def _smooth(JS: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average, zero-padded; the last ⌊w/2⌋ entries keep their values (step 5)."""
    if width <= 1:
        return JS.copy()
    full = np.convolve(JS, np.ones(width), "full")
    start = (width - 1) // 2  # where numpy's 'same' mode starts
    out = full[start:start + len(JS)] / width
    tail = min(width // 2, len(JS))
    if tail:
        out[-tail:] = JS[-tail:]
    return out


def _check_paths(path1: FitPath, path2: FitPath) -> None:
    for name, p in (("path1", path1), ("path2", path2)):
        if not isinstance(p, FitPath):
            raise TypeError(f"{name} must be a FitPath, got {type(p).__name__}")
    diffs = []
    if path1.grid != path2.grid:
        diffs.append(f"grids differ ({path1.grid!r} and {path2.grid!r})")
    if path1.boundary_mode != path2.boundary_mode:
        diffs.append(f"boundary modes differ ({path1.boundary_mode} and {path2.boundary_mode})")
    if path1.non_equilibrium != path2.non_equilibrium:
        kind = lambda p: "non-equilibrium (p0 given)" if p.non_equilibrium else "equilibrium"  # noqa: E731
        diffs.append(f"path 1 is {kind(path1)} but path 2 is {kind(path2)}")
    for name in ("peq", "p0", "D", "fr"):
        a, b = getattr(path1, name), getattr(path2, name)
        if a is not None and b is not None and a.shape[1] != b.shape[1]:
            diffs.append(f"{name} has {a.shape[1]} row(s) in path 1 and {b.shape[1]} in path 2 "
                         f"(conditions differ)")
    if path1.fr is not None and path2.fr is not None and path1.fr.shape[3] != path2.fr.shape[3]:
        diffs.append(f"path 1 has {path1.fr.shape[3]} neurons and path 2 {path2.fr.shape[3]}")
    if path1.fitted != path2.fitted:
        diffs.append(f"fitted parameters differ ({sorted(path1.fitted)} and {sorted(path2.fitted)})")
    if diffs:
        raise ValueError("the two fit paths cannot be compared: " + "; ".join(diffs))


def _needs_mirror(path1: FitPath, path2: FitPath) -> bool:
    """Step 2: do the paths converge to mirror images (x → -x)?"""
    if not ({"F", "F0", "Fr"} <= path1.fitted and path1.non_equilibrium and path1.fr is not None
            and path2.fr is not None):
        return False
    c = min(MIRROR_RECORD, int(path1.epochs[-1]) - 1, int(path2.epochs[-1]) - 1)
    # The reference uses an epoch number as a record index; on sparsely
    # recorded (or short) paths it would run past the end, so it is clipped.
    c1, c2 = (c if -p.n_records <= c < p.n_records else p.n_records - 1 for p in (path1, path2))
    centre = (path1.grid.N + 1) // 2
    score = 0
    for a1, a2 in zip(np.argmax(path1.p0[c1], axis=1), np.argmax(path2.p0[c2], axis=1)):
        if abs(a1 - centre) > MIRROR_P0_MARGIN and abs(a2 - centre) > MIRROR_P0_MARGIN:
            score += 1 if (a1 - centre) * (a2 - centre) < 0 else -1
    if score == 0:
        f1, f2 = path1.fr[c1], path2.fr[c2]  # (rows, N, neurons)
        f1, f2 = np.broadcast_arrays(f1, f2)
        straight = np.sum((f2 - f1) ** 2 / f1 ** 2, axis=1)
        reversed_ = np.sum((f2[:, ::-1] - f1) ** 2 / f1 ** 2, axis=1)
        score = int(np.sum(np.where(straight > reversed_, 1, -1)))
    return score > 0


class FeatureConsistency:
    """Feature consistency analysis of two fit paths (MATH.md §10.3).

    Parameters
    ----------
    path1, path2 : FitPath
        The two fits (datasample 1 and 2) from the same start: same grid,
        boundary mode, conditions (rows) and fitted parameters. Path 1's
        last epoch sets the desired epochs.
    cache : ModelCache, optional
        Shared memo of spectra, FC values and densities; pass the same cache
        to a new instance for paths that have grown, so only new records are
        computed.

    Examples
    --------
    >>> fca = FeatureConsistency(path1, path2)                 # doctest: +SKIP
    >>> result = fca.analyse(FCASettings.paper_2024())         # doctest: +SKIP
    >>> result.selected_epochs                                 # doctest: +SKIP
    """

    def __init__(self, path1: FitPath, path2: FitPath, cache: ModelCache | None = None):
        _check_paths(path1, path2)
        if cache is not None and not isinstance(cache, ModelCache):
            raise TypeError(f"cache must be a ModelCache, got {type(cache).__name__}")
        self.path1, self.path2 = path1, path2
        self.cache = cache if cache is not None else ModelCache()
        self._invert = _needs_mirror(path1, path2)
        self._path2 = path2.mirrored() if self._invert else path2

    @property
    def invert(self) -> bool:
        """Whether path 2 is mirrored for the analysis (step 2)."""
        return self._invert

    # -- per record ---------------------------------------------------------
    def _rows_of(self, path: FitPath, r: int):
        K = path.n_rows
        pick = lambda a, k: a[r, 0] if a.shape[1] == 1 else a[r, k]  # noqa: E731
        return [(pick(path.peq, k), pick(path.p0, k), float(pick(path.D, k))) for k in range(K)]

    def _noneq(self, path: FitPath, records: np.ndarray, s: FCASettings) -> tuple[np.ndarray, np.ndarray]:
        """FC (P,) and densities (P, K, n-1, N) of some records."""
        grid, mode = path.grid, path.boundary_mode
        jobs = [(r, k, row) for r in records for k, row in enumerate(self._rows_of(path, r))]

        def one(job):
            _, _, (peq, p0, D) = job
            return self.cache.row(grid, peq, p0, D, mode, s.terminal_time, s.number_of_timesteps)

        with blas_threads(1):
            values = parallel_map(one, jobs)
        K = path.n_rows
        fc = np.array([v[0] for v in values]).reshape(len(records), K).sum(axis=1)
        dens = np.array([v[1] for v in values]).reshape(len(records), K, *values[0][1].shape)
        return fc, dens

    def analyse(self, settings: FCASettings | None = None) -> FCAResult:
        """Run the analysis with ``settings`` (default :class:`FCASettings`).

        Raises
        ------
        SettingError
            A setting that these paths cannot honour (``FC_stride`` or
            ``smoothing_kernel`` wider than the analysed models,
            ``epoch_offset`` at or past the last analysed record).
        """
        s = FCASettings() if settings is None else settings
        if not isinstance(s, FCASettings):
            raise TypeError(f"settings must be an FCASettings, got {type(s).__name__}")
        p1, p2 = self.path1, self._path2
        last = int(p1.epochs[-1])
        pos1 = _analysed_records(p1.epochs, last, s.num_models)
        pos2 = _analysed_records(p2.epochs, last, s.num_models)
        if len(pos1) < 2:
            raise SettingError("num_models", f"path 1 has {p1.n_records} record(s) giving {len(pos1)} analysed "
                                             f"model(s); the analysis needs at least 2")
        if s.FC_stride >= len(pos2):
            raise SettingError("FC_stride", f"FC_stride = {s.FC_stride} is larger than the path: path 2 has "
                                            f"{len(pos2)} analysed models, so allowed 0..{len(pos2) - 1}")
        if s.smoothing_kernel > len(pos1):
            raise SettingError("smoothing_kernel", f"smoothing_kernel = {s.smoothing_kernel} is wider than the "
                                                   f"{len(pos1)} analysed models of path 1; allowed 0..{len(pos1)}")
        if s.epoch_offset >= pos1[-1]:
            raise SettingError("epoch_offset", f"epoch_offset = {s.epoch_offset} must be below the last analysed "
                                               f"record index {int(pos1[-1])} of path 1; allowed "
                                               f"0..{int(pos1[-1]) - 1}")
        grid = p1.grid
        if p1.non_equilibrium:
            FC1, d1 = self._noneq(p1, pos1, s)
            FC2, d2 = self._noneq(p2, pos2, s)
            absorbing = p1.boundary_mode == "absorbing"
            scale = s.terminal_time / (s.number_of_timesteps - 1) / p1.n_rows

            def divergence(i, js):
                return scale * _js_t_rows(grid, d1[i][None], d2[js], absorbing).sum(axis=-1)
        else:
            FC1 = _fc_eq_rows(grid, p1.peq[pos1]).sum(axis=1)
            FC2 = _fc_eq_rows(grid, p2.peq[pos2]).sum(axis=1)
            peq1, peq2 = p1.peq[pos1], p2.peq[pos2]

            def divergence(i, js):
                return _js_eq(grid, peq1[i][None], peq2[js])

        P1, P2 = len(pos1), len(pos2)
        JS = np.empty(P1)
        match = np.empty(P1, dtype=np.int64)
        for i in range(P1):
            j = int(np.argmin(np.abs(FC1[i] - FC2)))
            window = np.arange(max(j - s.FC_stride, 0), min(j + s.FC_stride, P2 - 1) + 1)
            d = divergence(i, window)
            best = int(np.argmin(d))
            JS[i], match[i] = d[best], window[best]
        JS_smooth = _smooth(JS, s.smoothing_kernel)
        offset = int(np.searchsorted(pos1, s.epoch_offset, side="left"))
        selected, at_once = _select(JS_smooth, offset, s.JS_thres)
        late, _ = _select(JS_smooth, offset, s.late_JS_thres)
        early = int(np.argmax(FC1 > FC1[selected] - EARLY_FC_GAP))
        min_inds_2 = pos2[match]
        out = dict(FCs1=FC1, FCs2=FC2, min_inds_1=pos1, min_inds_2=min_inds_2, JS=JS_smooth, JS_raw=JS,
                   epochs1=p1.epochs[pos1], epochs2=p2.epochs[min_inds_2])
        for a in out.values():
            a.setflags(write=False)
        return FCAResult(**out, selected=selected, crossed_at_once=at_once, offset_position=offset,
                         invert=self._invert, early=early, late=late, non_equilibrium=p1.non_equilibrium,
                         settings=s, analysed_2=_frozen(pos2))


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


def feature_consistency(path1: FitPath, path2: FitPath, settings: FCASettings | None = None,
                        cache: ModelCache | None = None) -> FCAResult:
    """One-call :meth:`FeatureConsistency.analyse`."""
    return FeatureConsistency(path1, path2, cache).analyse(settings)
