"""Viterbi decoding: the most likely latent path of a trial (MATH.md §10.4).

The path is sampled on the grid nodes at the trial start, after every
interval (at each spike) and at the trial end. Over an interval Δt with no
spike the transition kernel is the dark operator's propagator,

    T(x'←x) = √peq(x')/√peq(x) · Σ_i Qxd_i(x') e^{-lQd_i Δt} Qxd_i(x),

clipped below at 1e-10 before the log, with the eigenpairs that the
likelihood uses (:class:`~flowdash.core.likelihood.Operators`).

The forward recursion ``a_s(x') = max_x [log T_s(x'←x) + a_{s-1}(x)]`` is
O(N²) per interval if done plainly. Two exact shortcuts make it fast:

- components with ``lQd_i Δt`` above :data:`CUTOFF` are left out, as in
  the likelihood: a term below e^-40 of its size is smaller than the
  round-off of the kernel's own sum, so each interval's kernel has rank
  ``m`` (often 10–30 of 64);
- the max over x is pruned by branch and bound. With ``e_i > 0``,
  Cauchy–Schwarz bounds the kernel by a product of a function of x' and a
  function of x: ``T(x'←x) ≤ √peq(x') u(x') · u(x)/√peq(x)``, with
  ``u(x)² = Σ_i e_i Qxd_i(x)²``. Candidates x are visited in decreasing
  order of ``a(x) + log(u(x)/√peq(x))``; once that bound (plus the x'
  part) falls below the best score found, no later x can win. Ties keep
  the smallest x, as a plain argmax does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable, Sequence

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
#: Nodes per tile of x (predecessors) and of x' (see the kernels).
TILE = 16
NODE_TILE = 16
#: Grids with at least this many nodes decode one trial on both cores (prange over x');
#: smaller ones decode trials side by side, one per core.
_PARALLEL_MIN_N = 600
# numba's default threading layer must not run two parallel regions at once.
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
# w(x) = e^{a(x) - amax}, v_x = w(x)·R(x) and ℓ(x') = √peq(x')·Qxd(x'),
#
#     max_x [a(x) + log max(T(x'←x), floor)] - amax
#         = log max( max_x ℓ(x')·v_x , floor )      (the floor term peaks at argmax a).
#
# x and x' are cut into tiles of TILE nodes. Over a tile the vectors follow a
# smooth curve, well described by a centre, one direction (the chord) and a
# small residual radius, which bounds ℓ·v over a tile from above:
# - tile × tile: ℓ = ℓc + zl·α + r_l, v = vc + zv·u + r_v: the bilinear part
#   peaks at a corner of the (zl, zv) box, the residuals add at most
#   (|ℓ|max + ρl)·ρv + ρl·|v|max;
# - node × tile: ℓ·v ≤ ℓ·vc + max(β·zmin, β·zmax) + |ℓ|·ρv, β = ℓ·u.
# A tile is evaluated exactly only where its bound reaches the best value
# found so far (which starts at the floor), visiting tiles by decreasing
# bound. The bounds carry a margin far above the round-off of the sums.

_REASSOC = {"reassoc", "contract"}  # vectorised sums; no assumptions about inf or nan


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _dot(A, i, B, j, m):
    s = 0.0
    for k in range(m):
        s += A[i, k] * B[j, k]
    return s


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _dot_vec(A, i, u, m):
    s = 0.0
    for k in range(m):
        s += A[i, k] * u[k]
    return s


@njit(cache=True, nogil=True)
def _tiles(X, m, lo, hi, tile, C, U, zmin, zmax, rho, nmax):
    """Centre, chord direction, coordinate range, residual radius and largest norm of each tile of rows."""
    nt = (hi - lo + tile - 1) // tile
    for t in range(nt):
        r0 = lo + t * tile
        r1 = min(r0 + tile, hi)
        n = r1 - r0
        for k in range(m):
            s = 0.0
            for r in range(r0, r1):
                s += X[r, k]
            C[t, k] = s / n
        dn = 0.0
        for k in range(m):
            d = X[r1 - 1, k] - X[r0, k]
            U[t, k] = d
            dn += d * d
        dn = np.sqrt(dn)
        for k in range(m):
            U[t, k] = U[t, k] / dn if dn > 0 else 0.0
        zlo, zhi, rr, nn = 0.0, 0.0, 0.0, 0.0
        for r in range(r0, r1):
            z = 0.0
            for k in range(m):
                z += (X[r, k] - C[t, k]) * U[t, k]
            res = 0.0
            norm = 0.0
            for k in range(m):
                d = X[r, k] - C[t, k] - z * U[t, k]
                res += d * d
                norm += X[r, k] * X[r, k]
            zlo = min(zlo, z)
            zhi = max(zhi, z)
            rr = max(rr, res)
            nn = max(nn, norm)
        zmin[t] = zlo
        zmax[t] = zhi
        rho[t] = np.sqrt(rr)
        nmax[t] = np.sqrt(nn)
    return nt


@njit(cache=True, nogil=True)
def _prepare(L, Qxd, lQd, sqrt_peq, a, dt, lo, hi, ltile, tile, e, v, vT, tl, tv):
    """One interval's propagator e (m,), vectors v (N, m) (and transposed, vT), and the tiles of ℓ and v.

    Returns (m, amax, first argmax of a); the argmax is -1 when every score is -inf.
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
        return m, amax, xa
    for i in range(m):
        e[i] = np.exp(-lQd[i] * dt)
    for x in range(lo, hi):
        wx = np.exp(a[x] - amax) / sqrt_peq[x]  # 0 where a = -inf
        for i in range(m):
            v[x, i] = wx * e[i] * Qxd[x, i]
            vT[i, x] = v[x, i]
    _tiles(L, m, lo, hi, ltile, tl[0], tl[1], tl[2][0], tl[2][1], tl[2][2], tl[2][3])
    _tiles(v, m, lo, hi, tile, tv[0], tv[1], tv[2][0], tv[2][1], tv[2][2], tv[2][3])
    return m, amax, xa


_MARGIN = 1e-9  # relative safety margin of the bounds (round-off is ~1e-15 of the same scale)
_SEED = 3  # nodes tried on each side of the left neighbour's choice


@njit(cache=True, nogil=True)
def _pair_bounds(tl, tv, m, ntl, nt, out):
    """Upper bound of ℓ·v over every (x'-tile, x-tile) pair, out (ntl, nt)."""
    Cl = np.ascontiguousarray(tl[0][:ntl, :m])
    Ul = np.ascontiguousarray(tl[1][:ntl, :m])
    Cv = np.ascontiguousarray(tv[0][:nt, :m]).T.copy()
    Uv = np.ascontiguousarray(tv[1][:nt, :m]).T.copy()
    A0 = Cl @ Cv
    A1 = Cl @ Uv
    A2 = Ul @ Cv
    A3 = Ul @ Uv
    sl, sv = tl[2], tv[2]
    for P in range(ntl):
        for b in range(nt):
            corner = -np.inf
            for zl in (sl[0, P], sl[1, P]):
                for zv in (sv[0, b], sv[1, b]):
                    corner = max(corner, A1[P, b] * zv + A2[P, b] * zl + A3[P, b] * zl * zv)
            scale = (sl[3, P] + sl[2, P]) * sv[3, b]
            out[P, b] = (A0[P, b] + corner + (sl[3, P] + sl[2, P]) * sv[2, b] + sl[2, P] * sv[3, b]
                         + _MARGIN * scale)


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _exact(r, L, vT, m, x0, x1, acc):
    """acc[j] = ℓ(r)·v_{x0+j} for x0 <= x < x1 (vectorised over x)."""
    n = x1 - x0
    for j in range(n):
        acc[j] = 0.0
    for i in range(m):
        li = L[r, i]
        for j in range(n):
            acc[j] += li * vT[i, x0 + j]


@njit(cache=True, nogil=True)
def _tile_rows(P, L, vT, m, lo, hi, ltile, tile, nt, tv, bound, xa, best, bx, acc):
    """Best predecessor of every node of x'-tile P (linear domain, relative to amax).

    Fills ``best`` and ``bx`` for the tile's nodes (indexed from its first
    node). Each node first tries a few x around its left neighbour's choice
    (the choice moves little from node to node), which gives a good value to
    prune with; then the x-tiles by decreasing tile-pair bound ``bound``
    (nt,), skipping a tile whose node bound is below the best value so far.
    """
    Cv, Uv, sv = tv
    r0 = lo + P * ltile
    r1 = min(r0 + ltile, hi)
    order = np.argsort(-bound)
    seed = lo + order[0] * tile
    for r in range(r0, r1):
        k = r - r0
        best[k] = 1e-10  # the floor term, reached at the first argmax of a
        bx[k] = xa
        x0, x1 = max(seed - _SEED, lo), min(seed + _SEED + 1, hi)
        _exact(r, L, vT, m, x0, x1, acc)
        for x in range(x0, x1):
            val = acc[x - x0]
            if val > best[k] or (val == best[k] and x < bx[k]):
                best[k] = val
                bx[k] = x
        nl = 0.0
        for i in range(m):
            nl += L[r, i] * L[r, i]
        nl = np.sqrt(nl)
        for j in range(nt):
            b = order[j]
            if bound[b] < best[k]:
                break  # every later tile has a smaller bound
            beta = _dot(L, r, Uv, b, m)
            c = _dot(L, r, Cv, b, m)
            ub = c + max(beta * sv[0, b], beta * sv[1, b]) + nl * sv[2, b] + _MARGIN * nl * sv[3, b]
            if ub < best[k]:
                continue
            x0 = lo + b * tile
            x1 = min(x0 + tile, hi)
            _exact(r, L, vT, m, x0, x1, acc)
            for x in range(x0, x1):
                val = acc[x - x0]
                if val > best[k] or (val == best[k] and x < bx[k]):
                    best[k] = val
                    bx[k] = x
        seed = bx[k]


@njit(cache=True, nogil=True)
def _finish_node(r, L, Qxd, e, sqrt_peq, a, m, bxr, ids_s, logf):
    """Log-domain score of node r from its chosen predecessor, as the plain recursion computes it."""
    t = 0.0
    for i in range(m):
        t += L[r, i] * e[i] * Qxd[bxr, i]
    t /= sqrt_peq[bxr]
    score = a[bxr] + (np.log(t) if t > 1e-10 else np.log(1e-10))
    if ids_s >= 0:
        score += logf[ids_s, r]
    return score


@njit(cache=True, nogil=True, parallel=True)
def _decode_tiles(L, Qxd, lQd, sqrt_peq, logp0, logf, isi, ids, lo, hi, ltile, tile, ptr, a_out):
    """Forward recursion of one trial; fills ``ptr`` (S, N) and the final scores ``a_out`` (N,).

    The x'-tiles of each interval are spread over the cores.
    """
    N, Nv = Qxd.shape
    S = isi.shape[0]
    nt = (hi - lo + tile - 1) // tile
    ntl = (hi - lo + ltile - 1) // ltile
    a = np.full(N, -np.inf)
    a_new = np.full(N, -np.inf)
    for x in range(lo, hi):
        a[x] = logp0[x]
    v = np.zeros((N, Nv))
    vT = np.zeros((Nv, N))
    e = np.empty(Nv)
    tl = (np.empty((ntl, Nv)), np.empty((ntl, Nv)), np.empty((4, ntl)))
    tv = (np.empty((nt, Nv)), np.empty((nt, Nv)), np.empty((4, nt)))
    bounds = np.empty((ntl, nt))
    for s in range(S):
        dt = isi[s]
        m, amax, xa = _prepare(L, Qxd, lQd, sqrt_peq, a, dt, lo, hi, ltile, tile, e, v, vT, tl, tv)
        if xa < 0:
            for x in range(N):
                a_out[x] = -np.inf
            return
        _pair_bounds(tl, tv, m, ntl, nt, bounds)
        tvs = (tv[0], tv[1], tv[2])
        for P in prange(ntl):
            best = np.empty(ltile)
            bx = np.empty(ltile, dtype=np.int64)
            acc = np.empty(max(tile, 2 * _SEED + 1))
            _tile_rows(P, L, vT, m, lo, hi, ltile, tile, nt, tvs, bounds[P], xa, best, bx, acc)
            r0 = lo + P * ltile
            for r in range(r0, min(r0 + ltile, hi)):
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
            best = 1e-10
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
        args = (L, Qxd, lQd, sqrt_peq, logp0, logf, np.ascontiguousarray(isi), np.ascontiguousarray(ids),
                keep_lo, keep_hi, NODE_TILE, TILE, ptr, a_end)
        if big:
            with _parallel_lock:
                _decode_tiles(*args)
        else:
            _decode_dense(LT, *args[1:10], ptr, a_end)
        inds, score = _trace(ptr, a_end, model.boundary_mode, keep_lo, keep_hi)
        t = np.concatenate(([0.0], np.cumsum(isi)))
        return ViterbiPath(trial, t, grid.x[inds], inds, score)

    with blas_threads(1):
        if big:
            return [one(t) for t in trials]
        return parallel_map(one, trials)
