"""Viterbi decoding: the most likely latent path of a trial (MATH.md §10.4).

The path is sampled on the grid nodes at the trial start, after every
interval (at each spike) and at the trial end. Over an interval Δt with no
spike the transition kernel is the dark operator's propagator,

    T(x'←x) = √peq(x')/√peq(x) · Σ_i Qxd_i(x') e^{-lQd_i Δt} Qxd_i(x),

clipped below at 1e-10 before the log, with the eigenpairs that the
likelihood uses (:class:`~flowdash.core.likelihood.Operators`).

The forward recursion ``a_s(x') = max_x [log T_s(x'←x) + a_{s-1}(x)]`` is
O(N²) per interval if done plainly. It stays exact but gets cheaper:

- components with ``lQd_i Δt`` above :data:`CUTOFF` are left out, as in
  the likelihood: a term below e^-40 of its size is smaller than the
  round-off of the kernel's own sum, so each interval's kernel has rank
  ``m`` (often 10–30 of 64);
- in the linear domain the max over x is a largest inner product
  ``ℓ(x')·v_x`` (see the kernels); on fine grids it is pruned by branch and
  bound over tiles of nodes, with bounds from a centre-chord-residual model
  of each tile; on coarse grids (m close to N, where the bounds prune
  nothing) one BLAS product per interval does all pairs.

Both agree with a plain max-plus over all eigenpairs (tests/test_viterbi.py);
ties keep the smallest x, as a plain argmax does.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from numba import njit, prange

from ._parallel import blas_threads, parallel_map
from .likelihood import Operators
from .model import Model
from .spikedata import SpikeData

__all__ = ["ViterbiPath", "viterbi", "viterbi_margin", "excluded_nodes", "CUTOFF", "KERNEL_FLOOR"]

#: Eigen-components with ``lQd·Δt`` above this are dropped from an interval's kernel
#: (e^-40 ≈ 4e-18 of a term's size: below the round-off of the kernel's own sum).
CUTOFF = 40.0
#: The kernel is clipped below at this value before its log.
KERNEL_FLOOR = 1e-10
#: Nodes per tile of the bounds (see the kernels).
TILE = 16
#: Grids with at least this many nodes use the tile bounds, one trial at a time on both
#: cores; smaller ones one BLAS product per interval, trials side by side.
_PARALLEL_MIN_N = 600
# One decode at a time uses the parallel kernel: two would share the same two cores
# (and numba's fallback threading layer, workqueue, cannot run two at once).
_parallel_lock = threading.Lock()


def viterbi_margin(N: int, boundary_mode: str) -> int:
    """Excluded nodes at each wall: 1 (the wall) when absorbing, ``N // 30`` when reflecting."""
    return 1 if boundary_mode == "absorbing" else N // 30


def excluded_nodes(N: int, boundary_mode: str) -> np.ndarray:
    """Boolean mask (N,) of the nodes scored −∞ at every step (MATH.md §10.4).

    Absorbing: the walls 0 and N-1. Reflecting: ``m = N // 30`` nodes at each
    wall (without the margin a reflecting path sticks to the wall).
    """
    m = viterbi_margin(N, boundary_mode)
    mask = np.zeros(N, dtype=bool)
    mask[:m] = True
    mask[N - m:] = True
    return mask


@dataclass(frozen=True)
class ViterbiPath:
    """The decoded path of one trial.

    Attributes
    ----------
    trial : int
        Index of the trial in the data.
    t : ndarray, shape (S + 1,)
        Times of the path points (s from the trial start): 0, then the end
        of each of the S intervals (each spike, and the trial end if
        recorded).
    x : ndarray, shape (S + 1,)
        Latent position at those times (grid node positions).
    state_inds : ndarray of int, shape (S + 1,)
        Node index of each point. Absorbing: the last point is the wall
        (0 or N-1) beside the better of the outermost kept nodes.
    log_score : float
        ``max log p(path, spikes)`` on the grid (nats, up to the constant
        that the discretisation adds).
    """

    trial: int
    t: np.ndarray
    x: np.ndarray
    state_inds: np.ndarray
    log_score: float


# ---------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------
#
# In the linear domain the recursion is a maximum of inner products: with
# w(x) = e^{a(x) - amax}, v_x = w(x)·R(x), R_i(x) = e^{-lQd_i Δt} Qxd_i(x)/√peq(x)
# and ℓ(x') = √peq(x')·Qxd(x'),
#
#     max_x [a(x) + log max(T(x'←x), floor)] - amax
#         = log max( max_x ℓ(x')·v_x , floor )      (the floor term peaks at argmax a).
#
# The predecessors x are cut into tiles of TILE nodes. Over a tile the v_x
# follow a smooth curve, well described by a centre c, one direction u (the
# chord), coordinates z along it and a small residual radius ρ, so that
#
#     ℓ·v_x <= ℓ·c + max(β·zmin, β·zmax) + |ℓ|·ρ,   β = ℓ·u.
#
# ℓ·c and ℓ·u for all nodes and tiles are two BLAS products per interval;
# a tile is evaluated exactly only where its bound reaches the best value
# found so far. Each node starts from a few x around its left neighbour's
# choice (it moves little from node to node), which makes that value nearly
# final at once. The bounds carry a margin far above the round-off of the sums.

_REASSOC = {"reassoc", "contract"}  # vectorised sums; no assumptions about inf or nan
_MARGIN = 1e-9  # relative safety margin of the bounds (round-off is ~1e-15 of the same scale)
_SEED = 3  # nodes tried on each side of the left neighbour's choice


@njit(cache=True, nogil=True)
def _tiles(v, m, lo, hi, tile, CT, UT, stats):
    """Per tile of rows of v: centre and chord direction (columns of CT, UT (m, nt)) and
    ``stats`` (4, nt): smallest and largest coordinate along the chord, residual radius,
    and a bound on |v| over the tile (the scale of the bounds' round-off)."""
    nt = (hi - lo + tile - 1) // tile
    c = np.empty(m)
    u = np.empty(m)
    for t in range(nt):
        r0 = lo + t * tile
        r1 = min(r0 + tile, hi)
        n = r1 - r0
        dn = 0.0
        for k in range(m):
            s = 0.0
            for r in range(r0, r1):
                s += v[r, k]
            c[k] = s / n
            d = v[r1 - 1, k] - v[r0, k]
            u[k] = d
            dn += d * d
        dn = np.sqrt(dn)
        cn = 0.0
        for k in range(m):
            u[k] = u[k] / dn if dn > 0 else 0.0
            CT[k, t] = c[k]
            UT[k, t] = u[k]
            cn += c[k] * c[k]
        zlo, zhi, rr = 0.0, 0.0, 0.0
        for r in range(r0, r1):
            z = 0.0
            for k in range(m):
                z += (v[r, k] - c[k]) * u[k]
            res = 0.0
            for k in range(m):
                d = v[r, k] - c[k] - z * u[k]
                res += d * d
            zlo = min(zlo, z)
            zhi = max(zhi, z)
            rr = max(rr, res)
        stats[0, t] = zlo
        stats[1, t] = zhi
        stats[2, t] = np.sqrt(rr)
        stats[3, t] = np.sqrt(cn) + max(-zlo, zhi) + stats[2, t]


@njit(cache=True, nogil=True)
def _prepare(Qxd, lQd, sqrt_peq, a, dt, lo, hi, e, v):
    """One interval's propagator e (m,) and vectors v (N, m).

    Returns (m, first argmax of a); the argmax is -1 when every score is -inf.
    """
    N, Nv = Qxd.shape
    m = 0
    while m < Nv and lQd[m] * dt < CUTOFF:
        m += 1
    m = max(m, 1)
    amax = -np.inf
    xa = -1
    for x in range(lo, hi):
        if a[x] > amax:
            amax = a[x]
            xa = x
    if xa < 0:
        return m, xa
    for i in range(m):
        e[i] = np.exp(-lQd[i] * dt)
    for x in range(lo, hi):
        wx = np.exp(a[x] - amax) / sqrt_peq[x]  # 0 where a = -inf
        for i in range(m):
            v[x, i] = wx * e[i] * Qxd[x, i]
    return m, xa


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _exact(r, L, v, m, x0, x1, acc):
    """acc[j] = ℓ(r)·v_{x0+j} for x0 <= x < x1 (rows of v are contiguous: the fastest layout)."""
    for x in range(x0, x1):
        s = 0.0
        for i in range(m):
            s += L[r, i] * v[x, i]
        acc[x - x0] = s


@njit(cache=True, nogil=True)
def _better(acc, x0, x1, k, best, bx):
    for x in range(x0, x1):
        val = acc[x - x0]
        if val > best[k] or (val == best[k] and x < bx[k]):
            best[k] = val
            bx[k] = x


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _tile_bounds(k, LC, LU, nl, stats, out):
    """Bound of ℓ(node k)·v over every tile, out (nt,)."""
    for b in range(out.shape[0]):
        beta = LU[k, b]
        out[b] = LC[k, b] + max(beta * stats[0, b], beta * stats[1, b]) + nl * (stats[2, b] + _MARGIN * stats[3, b])


@njit(cache=True, nogil=True)
def _node_tile(r0, r1, L, v, m, lo, hi, tile, CT, UT, stats, xa, best, bx, acc, ub):
    """Best predecessor (linear domain, relative to amax) of nodes r0…r1-1; fills best, bx."""
    nt = CT.shape[1]
    Lr = np.ascontiguousarray(L[r0:r1, :m])
    LC = Lr @ CT  # ℓ·c for every node and tile
    LU = Lr @ UT  # ℓ·u
    seed = xa
    for r in range(r0, r1):
        k = r - r0
        best[k] = KERNEL_FLOOR  # the floor term, reached at the first argmax of a
        bx[k] = xa
        x0, x1 = max(seed - _SEED, lo), min(seed + _SEED + 1, hi)
        _exact(r, L, v, m, x0, x1, acc)
        _better(acc, x0, x1, k, best, bx)
        nl = 0.0
        for i in range(m):
            nl += L[r, i] * L[r, i]
        _tile_bounds(k, LC, LU, np.sqrt(nl), stats, ub)
        for b in range(nt):
            if ub[b] < best[k]:
                continue
            x0 = lo + b * tile
            x1 = min(x0 + tile, hi)
            _exact(r, L, v, m, x0, x1, acc)
            _better(acc, x0, x1, k, best, bx)
        seed = bx[k]


@njit(cache=True, nogil=True)
def _finish_node(r, L, Qxd, e, sqrt_peq, a, m, bxr, ids_s, logf):
    """Log-domain score of node r from its chosen predecessor, as the plain recursion computes it."""
    t = 0.0
    for i in range(m):
        t += L[r, i] * e[i] * Qxd[bxr, i]
    t /= sqrt_peq[bxr]
    score = a[bxr] + np.log(max(t, KERNEL_FLOOR))
    if ids_s >= 0:
        score += logf[ids_s, r]
    return score


@njit(cache=True, nogil=True, parallel=True)
def _decode_tiles(L, Qxd, lQd, sqrt_peq, logp0, logf, isi, ids, lo, hi, tile, ptr, a_out):
    """Forward recursion of one trial; fills ``ptr`` (S, N) and the final scores ``a_out`` (N,).

    Blocks of nodes x' are spread over the cores.
    """
    N, Nv = Qxd.shape
    S = isi.shape[0]
    nt = (hi - lo + tile - 1) // tile
    a = np.full(N, -np.inf)
    a_new = np.full(N, -np.inf)
    for x in range(lo, hi):
        a[x] = logp0[x]
    v = np.zeros((N, Nv))
    e = np.empty(Nv)
    stats = np.empty((4, nt))
    for s in range(S):
        dt = isi[s]
        m, xa = _prepare(Qxd, lQd, sqrt_peq, a, dt, lo, hi, e, v)
        if xa < 0:
            for x in range(N):
                a_out[x] = -np.inf
            return
        CT = np.empty((m, nt))
        UT = np.empty((m, nt))
        _tiles(v, m, lo, hi, tile, CT, UT, stats)
        for P in prange(nt):
            r0 = lo + P * tile
            r1 = min(r0 + tile, hi)
            best = np.empty(tile)
            bx = np.empty(tile, dtype=np.int64)
            acc = np.empty(max(tile, 2 * _SEED + 1))
            ub = np.empty(nt)
            _node_tile(r0, r1, L, v, m, lo, hi, tile, CT, UT, stats, xa, best, bx, acc, ub)
            for r in range(r0, r1):
                ptr[s, r] = bx[r - r0]
                a_new[r] = _finish_node(r, L, Qxd, e, sqrt_peq, a, m, bx[r - r0], ids[s], logf)
        for x in range(lo, hi):
            a[x] = a_new[x]
    for x in range(N):
        a_out[x] = a[x]


@njit(cache=True, nogil=True)
def _decode_dense(LT, Qxd, lQd, sqrt_peq, logp0, logf, isi, ids, lo, hi, ptr, a_out):
    """The same recursion without bounds, for small grids.

    When m is close to N (short intervals on a coarse grid) the vectors are
    not smooth over a tile and the bounds prune nothing; one BLAS product
    per interval (``ℓ·v`` for all pairs) then is the fastest exact route.
    ``LT`` is ``L`` transposed, (Nv, N).
    """
    N, Nv = Qxd.shape
    S = isi.shape[0]
    a = np.full(N, -np.inf)
    a_new = np.full(N, -np.inf)
    for x in range(lo, hi):
        a[x] = logp0[x]
    VT = np.zeros((Nv, N))
    e = np.empty(Nv)
    for s in range(S):
        dt = isi[s]
        m = 0
        while m < Nv and lQd[m] * dt < CUTOFF:
            m += 1
        m = max(m, 1)
        amax = -np.inf
        xa = -1
        for x in range(lo, hi):
            if a[x] > amax:
                amax = a[x]
                xa = x
        if xa < 0:
            for x in range(N):
                a_out[x] = -np.inf
            return
        for i in range(m):
            e[i] = np.exp(-lQd[i] * dt)
        for x in range(lo, hi):
            wx = np.exp(a[x] - amax) / sqrt_peq[x]
            for i in range(m):
                VT[i, x] = wx * e[i] * Qxd[x, i]
        IP = np.dot(LT[:m].T, VT[:m])  # IP[x', x] = ℓ(x')·v_x
        for r in range(lo, hi):
            best = KERNEL_FLOOR
            bx = xa
            for x in range(lo, hi):
                val = IP[r, x]
                if val > best or (val == best and x < bx):
                    best = val
                    bx = x
            ptr[s, r] = bx
            a_new[r] = _finish_node(r, LT.T, Qxd, e, sqrt_peq, a, m, bx, ids[s], logf)
        for x in range(lo, hi):
            a[x] = a_new[x]
    for x in range(N):
        a_out[x] = a[x]


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def _validate_trials(trials, n_trials: int) -> list[int]:
    if trials is None:
        return list(range(n_trials))
    if isinstance(trials, (int, np.integer)) and not isinstance(trials, bool):
        trials = [trials]
    out = []
    for t in trials:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < n_trials:
            raise ValueError(f"trials must be trial indices in [0, {n_trials - 1}], got {t!r}")
        out.append(int(t))
    return out


def _trace(ptr: np.ndarray, a_end: np.ndarray, boundary_mode: str, keep_lo: int, keep_hi: int):
    """End rule and trace back; returns (state_inds (S+1,), log score)."""
    S, N = ptr.shape
    path = np.empty(S + 1, dtype=np.int64)
    if boundary_mode == "absorbing":
        # Compare the outermost kept nodes; the path ends on the wall beside the better one.
        left, right = keep_lo, keep_hi - 1
        end = left if a_end[left] >= a_end[right] else right
        score = float(a_end[end])
        path[S] = 0 if end == left else N - 1
    else:
        end = keep_lo + int(np.argmax(a_end[keep_lo:keep_hi]))
        score = float(a_end[end])
        path[S] = end
    if not np.isfinite(score):
        raise ValueError("the model gives this trial zero probability on every path (all scores are -inf); "
                         "check p0 and the rates against the data")
    x = end
    for s in range(S - 1, -1, -1):
        path[s] = ptr[s, x]
        x = path[s]
    return path, score


def viterbi(model: Model, data: SpikeData, trials: int | Iterable[int] | None = None, datasample: int = 0,
            Nv: int | None = None, operators: Operators | None = None) -> list[ViterbiPath]:
    """Most likely latent paths of some trials (MATH.md §10.4).

    Parameters
    ----------
    model : Model
        The model to decode with; its boundary mode decides the excluded
        nodes and the end rule.
    data : SpikeData
        Spike data with the model's number of neurons.
    trials : int or iterable of int, optional
        Indices of the trials to decode (default: all).
    datasample : int
        Which of the model's datasamples (parameter rows) to use.
    Nv : int, optional
        Eigenpairs of the dark operator (``1 <= Nv <= N - 2``, default
        ``N - 2``), as in the likelihood.
    operators : Operators, optional
        Operators already built for this model and datasample (reused).

    Returns
    -------
    list of ViterbiPath
        One per requested trial, in the order given.
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a flowdash Model, got {type(model).__name__}")
    if not isinstance(data, SpikeData):
        raise TypeError(f"data must be a SpikeData, got {type(data).__name__}")
    if data.n_neurons != model.n_neurons:
        raise ValueError(f"the data has {data.n_neurons} neuron(s) but the model has {model.n_neurons}; "
                         "decode with a model of the same neurons")
    trials = _validate_trials(trials, data.n_trials)
    if operators is not None and (not isinstance(operators, Operators) or operators.grid != model.grid
                                  or operators.boundary_mode != model.boundary_mode
                                  or operators.fr.shape != model.fr_of(datasample).shape):
        raise ValueError("operators must be built from this model (same grid, boundary mode and neurons), "
                         "e.g. Operators.build(model, datasample, Nv)")
    ops = operators if operators is not None else Operators.build(model, datasample, Nv)
    grid = model.grid
    N = grid.N
    margin = viterbi_margin(N, model.boundary_mode)
    keep_lo, keep_hi = margin, N - margin
    sqrt_peq = np.sqrt(ops.peq)
    Qxd = np.ascontiguousarray(ops.Qxd)
    L = np.ascontiguousarray(sqrt_peq[:, None] * Qxd)
    LT = np.ascontiguousarray(L.T)
    with np.errstate(divide="ignore"):
        logp0 = np.log(ops.p0)
        logf = np.ascontiguousarray(np.log(ops.fr).T)  # (n_neurons, N)
    lQd = np.ascontiguousarray(ops.lQd)
    big = N >= _PARALLEL_MIN_N

    def one(trial: int) -> ViterbiPath:
        isi, ids = data.trials[trial]
        S = len(isi)
        ptr = np.full((S, N), -1, dtype=np.int32 if N > 32000 else np.int16)
        a_end = np.empty(N)
        isi, ids = np.ascontiguousarray(isi), np.ascontiguousarray(ids)
        if big:
            # numba's OpenMP workers otherwise spin between the parallel regions
            # (one per interval) and take a core from whatever runs beside, such
            # as a fit; read when the OpenMP runtime starts, at the first region.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            with _parallel_lock:
                _decode_tiles(L, Qxd, lQd, sqrt_peq, logp0, logf, isi, ids, keep_lo, keep_hi, TILE, ptr, a_end)
        else:
            _decode_dense(LT, Qxd, lQd, sqrt_peq, logp0, logf, isi, ids, keep_lo, keep_hi, ptr, a_end)
        inds, score = _trace(ptr, a_end, model.boundary_mode, keep_lo, keep_hi)
        t = np.concatenate(([0.0], np.cumsum(isi)))
        return ViterbiPath(trial, t, grid.x[inds], inds, score)

    with blas_threads(1):
        if big:
            return [one(t) for t in trials]
        return parallel_map(one, trials)
