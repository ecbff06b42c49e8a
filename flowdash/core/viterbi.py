"""Viterbi decoding: the most likely latent path of a trial (MATH.md §10.4).

The path is sampled on the grid nodes at the trial start, after every
interval (at each spike) and at the trial end. Over an interval Δt with no
spike the transition kernel is the dark operator's propagator,

    T(x'←x) = √peq(x')/√peq(x) · Σ_i Qxd_i(x') e^{-lQd_i Δt} Qxd_i(x),

clipped below at 1e-10 before the log, with the eigenpairs that the
likelihood uses (:class:`~flowdash.core.likelihood.Operators`).

The forward recursion ``a_s(x') = max_x [log T_s(x'←x) + a_{s-1}(x)]`` is
O(N²·m) per interval if done plainly (m eigen-components per kernel
entry). It stays exact but gets cheaper:

- components with ``lQd_i Δt`` above :data:`CUTOFF` are left out, as in
  the likelihood: a term below e^-40 of its size is smaller than the
  round-off of the kernel's own sum;
- in the linear domain, relative to ``amax = max a``, the max over x is a
  largest inner product ``M(x', x) = ℓ(x')·v_x`` with
  ``ℓ(x') = √peq(x') Qxd(x')`` and ``v_x = e^{a(x)-amax}/√peq(x) · e^{-lQd Δt}
  ⊙ Qxd(x)``; the clip is one more candidate, 1e-10 at the first argmax of
  a. Exact entries are computed only where an upper bound of M can still
  reach the best value found for that row; everything else is pruned by
  the bound, which carries a margin far above round-off. Two kinds of bound:

  * coarse grids (N <= :data:`TABLE_MAX_N`): the kernel is tabulated once
    per call at times on a geometric grid. Between them, with weights c_k
    fitted per interval, ``K_Δt = Σ_k c_k K_{t_k} - Σ_i Qxd_i Qxd_iᵀ g_i``
    exactly, and the last sum is at most ``G(x') G(x)`` by Cauchy–Schwarz
    (``G(x)² = Σ_i Qxd_i(x)² |g_i|``): a bound of every pair for a few
    multiply-adds instead of m. Trials run side by side on the two cores.
  * fine grids: the vectors of a tile of neighbouring nodes lie close to a
    line (centre, chord, small residual), with the kernel split as
    ``√e ⊙ √e`` between rows and columns so both sides are equally smooth.
    The pair products of two tiles then bound a whole block. The row
    maximum moves monotonically, roughly, with the row, so each tile of
    rows first gets a span of columns around its predecessor tile's
    maxima, evaluated exactly with one matrix product; every column tile
    outside the span is then bounded (coarse tiles, then fine, for all
    rows of the tile at once and then per row) and evaluated only if it
    can still win. The tiles of rows are split over the cores.

Both agree with a plain max-plus over all eigenpairs (tests/test_viterbi.py);
ties keep the smallest x, as a plain argmax does.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Iterable

import numba
import numpy as np
from numba import njit, prange

from ._parallel import blas_threads, parallel_map
from .likelihood import Operators
from .model import Model
from .selection import spectrum_mode
from .spikedata import SpikeData

__all__ = ["ViterbiPath", "viterbi", "viterbi_margin", "excluded_nodes", "CUTOFF", "KERNEL_FLOOR",
           "TABLE_MAX_N"]

#: Eigen-components with ``lQd·Δt`` above this are dropped from an interval's kernel
#: (e^-40 ≈ 4e-18 of a term's size: below the round-off of the kernel's own sum).
CUTOFF = 40.0
#: The kernel is clipped below at this value before its log.
KERNEL_FLOOR = 1e-10
#: Grids up to this many nodes decode with kernel tables (G·N² float32 of memory,
#: G ≈ 25–70 tables); larger ones with tile bounds.
TABLE_MAX_N = 300
#: Ratio of consecutive table times, and tables combined per interval (four: the kernel
#: code assumes it).
_TABLE_RATIO = 1.3
_TABLE_POINTS = 4
#: Columns per block of a table row: a row's bound is scanned block by block, a block
#: looked at only when its largest bound can still win (most cannot).
_BLOCK = 8
#: Relative safety margin of the tile bounds (their round-off is ~1e-15 of the same scale).
_MARGIN = 1e-9
#: Tile sizes (nodes): rows, columns, and column tiles per coarse column tile.
_ROWS = 16
_COLS = 8
_GROUP = 4
#: Column tiles added left and right of the predicted span.
_PAD_LEFT = 2
_PAD_RIGHT = 3
#: A predicted span wider than this (column tiles) is searched afresh instead.
_SPAN_MAX = 24
# One decode at a time uses the parallel tile kernel: two would share the same two cores.
_parallel_lock = threading.Lock()
_REASSOC = {"reassoc", "contract"}  # vectorised sums; no assumptions about inf or nan

# Loops below index from 0 over slices where they should vectorise: a loop from a
# run-time start lets numba wrap negative indices, which stops vectorisation.


def viterbi_margin(N: int, boundary_mode: str) -> int:
    """Excluded nodes at each wall: 1 (the wall) when absorbing, ``N // 30`` when reflecting.

    ``boundary_mode`` is that of the process, i.e. of the walls: for a :class:`Model`,
    ``spectrum_mode(model.boundary_conditions)``, not ``model.boundary_mode``.
    """
    return 1 if boundary_mode == "absorbing" else N // 30


def excluded_nodes(N: int, boundary_mode: str) -> np.ndarray:
    """Boolean mask (N,) of the nodes scored −∞ at every step (MATH.md §10.4).

    Absorbing: the walls 0 and N-1. Reflecting: ``m = N // 30`` nodes at each
    wall (without the margin a reflecting path sticks to the wall). As in
    :func:`viterbi_margin`, the mode is that of the walls.
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
# shared pieces
# ---------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _start(a, lQd, dt, lo, hi, e):
    """Components m of an interval, its propagator e[:m], and (amax, first argmax of a); -1 if all -inf."""
    Nv = lQd.shape[0]
    m = 0
    while m < Nv and lQd[m] * dt < CUTOFF:
        m += 1
    m = max(m, 1)
    for i in range(m):
        e[i] = np.exp(-lQd[i] * dt)
    amax = -np.inf
    xa = -1
    for x in range(lo, hi):
        if a[x] > amax:
            amax = a[x]
            xa = x
    return m, amax, xa


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _dot(X, r, Y, x, m):
    s = 0.0
    for i in range(m):
        s += X[r, i] * Y[x, i]
    return s


@njit(cache=True, nogil=True)
def _score(amax, best, ids_s, logf, r):
    """a_s(r) from the best value of its row: amax + log M = a(x) + log max(T, floor) at the chosen x."""
    sc = amax + np.log(best)
    if ids_s >= 0:
        sc += logf[ids_s, r]
    return sc


# ---------------------------------------------------------------------------
# coarse grids: kernel tables
# ---------------------------------------------------------------------------


def _kernel_tables(Qxd: np.ndarray, lQd: np.ndarray, isi: np.ndarray):
    """Kernel tables around every interval's length.

    Parameters
    ----------
    Qxd : ndarray, shape (N, Nv)
    lQd : ndarray, shape (Nv,)
    isi : ndarray, shape (S,)
        Every interval to decode (the trials one after another).

    Returns
    -------
    K : ndarray of float32, shape (G, N, P)
        ``Σ_i Qxd_i Qxd_iᵀ F[g, i]`` for the times ``t_g = ratio^j`` used,
        padded with ``P - N = _BLOCK - 1`` zero columns, so that a row's
        columns from any node on span whole blocks.
    F : ndarray, shape (G, Nv)
        ``e^{-lQd t_g}``, 0 for the components a table leaves out (below 1e-30).
    tix : ndarray of int, shape (S, 4)
        The tables of each interval, around its Δt.
    """
    N, Nv = Qxd.shape
    j0 = np.floor(np.log(np.maximum(isi, 1e-12)) / np.log(_TABLE_RATIO)).astype(np.int64)
    js = j0[:, None] + np.arange(-1, _TABLE_POINTS - 1)[None, :]
    used, tix = np.unique(js, return_inverse=True)
    F = np.exp(-np.outer(_TABLE_RATIO ** used.astype(float), lQd))
    F[F < 1e-30] = 0.0

    P = N + _BLOCK - 1

    def tables(gs: range) -> np.ndarray:
        out = np.zeros((len(gs), N, P), dtype=np.float32)
        for j, g in enumerate(gs):
            mg = max(int(np.count_nonzero(F[g])), 1)
            out[j, :, :N] = (Qxd[:, :mg] * F[g, :mg]) @ Qxd[:, :mg].T
        return out

    half = len(used) // 2
    K = np.concatenate(parallel_map(tables, [range(half), range(half, len(used))]))
    return K, F, tix.reshape(len(isi), _TABLE_POINTS)


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _fit_tables(F, tix, si, e, m, Q2, lo, hi, c, G):
    """Weights c (4,) of the tables of interval si (least squares of e[:m] by their F) and
    G (N,) = sqrt(Σ_i Qxd_i² g_i), g_i the misfit, widened by 1e-6 of the terms' size to cover
    the round-off of the float32 tables and sums."""
    k = tix.shape[1]
    Nv = F.shape[1]
    A = np.empty((k, k))
    b = np.zeros(k)
    for p in range(k):
        for q in range(k):
            s = 0.0
            for i in range(Nv):
                s += F[tix[si, p], i] * F[tix[si, q], i]
            A[p, q] = s
        for i in range(m):
            b[p] += F[tix[si, p], i] * e[i]
    d = 1e-13 * (A[0, 0] + A[1, 1] + A[2, 2] + A[3, 3]) + 1e-300
    for p in range(k):
        A[p, p] += d
    # Cholesky (A is symmetric positive definite after the shift); any weights would do
    for p in range(k):
        for q in range(p + 1):
            s = A[p, q]
            for r in range(q):
                s -= A[p, r] * A[q, r]
            A[p, q] = np.sqrt(max(s, 1e-300)) if p == q else s / A[q, q]
    for p in range(k):
        s = b[p]
        for r in range(p):
            s -= A[p, r] * b[r]
        b[p] = s / A[p, p]
    for p in range(k - 1, -1, -1):
        s = b[p]
        for r in range(p + 1, k):
            s -= A[r, p] * b[r]
        b[p] = s / A[p, p]
    g = np.empty(Nv)
    for i in range(Nv):
        fit = 0.0
        size = 0.0
        for p in range(k):
            fit += b[p] * F[tix[si, p], i]
            size += abs(b[p]) * F[tix[si, p], i]
        ei = e[i] if i < m else 0.0
        g[i] = abs(fit - ei) + 1e-6 * (size + ei)
    for p in range(k):
        c[p] = b[p]
    for x in range(lo, hi):
        q = 0.0
        for i in range(Nv):
            q += Q2[x, i] * g[i]
        G[x] = np.sqrt(q)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _table_bound(c0, k0, c1, k1, c2, k2, c3, k3, start, W, gr, GW, out, top):
    """Bounds ``out`` (whole blocks) from the flat tables k (N·P,), from ``start`` on, and the
    largest of each block, ``top``.

    Takes whole tables and an offset, not views of a row: each view costs two atomic
    reference count updates, which took a sixth of the decode's time. The offset is
    unsigned so that numba does not wrap negative indices, which stops vectorisation.
    """
    o = np.uint64(start)
    for x in range(out.shape[0]):
        j = o + np.uint64(x)
        out[x] = (c0 * k0[j] + c1 * k1[j] + c2 * k2[j] + c3 * k3[j]) * W[x] + gr * GW[x]
    for b in range(top.shape[0]):
        t = out[b * _BLOCK]
        for j in range(1, _BLOCK):
            t = max(t, out[b * _BLOCK + j])
        top[b] = t


@njit(cache=True, nogil=True)
def _decode_tables(L, Qxd, Q2, lQd, sqrt_peq, logp0, logf, isi, ids, lo, hi, K, F, tix, ptr, a_out):
    """Forward recursion of one trial with the table bounds; fills ``ptr`` (S, N) and ``a_out`` (N,).

    ``M(x', x) <= √peq(x') (Σ_k c_k K_k(x', x) + G(x') G(x)) · w(x)/√peq(x)``
    for every pair; rows start from the left neighbour's choice. ``Q2`` = Qxd².
    """
    N, Nv = Qxd.shape
    S = isi.shape[0]
    n = hi - lo
    P = K.shape[2]
    Kf = K.reshape((K.shape[0], N * P))
    a = np.full(N, -np.inf)
    a_new = np.full(N, -np.inf)
    for x in range(lo, hi):
        a[x] = logp0[x]
    V = np.zeros((N, Nv))
    nb = (n + _BLOCK - 1) // _BLOCK
    # columns lo .. lo + nb·_BLOCK - 1; those past hi get W = 0, a bound of 0, below any
    # threshold (a row's best is at least the clip)
    W = np.zeros(nb * _BLOCK, dtype=np.float32)
    GW = np.zeros(nb * _BLOCK, dtype=np.float32)
    bound = np.empty(nb * _BLOCK, dtype=np.float32)
    top = np.empty(nb, dtype=np.float32)
    e = np.empty(Nv)
    c = np.empty(4)
    G = np.zeros(N)
    for s in range(S):
        m, amax, xa = _start(a, lQd, isi[s], lo, hi, e)
        if xa < 0:
            a_out[:] = -np.inf
            return
        _fit_tables(F, tix, s, e, m, Q2, lo, hi, c, G)
        c0, c1, c2, c3 = np.float32(c[0]), np.float32(c[1]), np.float32(c[2]), np.float32(c[3])
        for x in range(lo, hi):
            wx = np.exp(a[x] - amax) / sqrt_peq[x]  # 0 where a = -inf
            W[x - lo] = wx
            GW[x - lo] = G[x] * wx
            for i in range(m):
                V[x, i] = wx * e[i] * Qxd[x, i]
        K0, K1, K2, K3 = Kf[tix[s, 0]], Kf[tix[s, 1]], Kf[tix[s, 2]], Kf[tix[s, 3]]
        prev = xa
        for r in range(lo, hi):
            best = KERNEL_FLOOR  # the clip, reached at the first argmax of a
            bx = xa
            val = _dot(L, r, V, prev, m)
            if val > best or (val == best and prev < bx):
                best, bx = val, prev
            _table_bound(c0, K0, c1, K1, c2, K2, c3, K3, r * P + lo, W, np.float32(G[r]), GW, bound, top)
            sp = sqrt_peq[r]
            thr = np.float32(best / sp * (1 - 1e-5))
            for b in range(nb):
                if top[b] < thr:
                    continue
                for j in range(b * _BLOCK, b * _BLOCK + _BLOCK):
                    if bound[j] >= thr:
                        x = lo + j
                        if x == prev or x >= hi:
                            continue
                        val = _dot(L, r, V, x, m)
                        if val > best or (val == best and x < bx):
                            best, bx = val, x
                            thr = np.float32(best / sp * (1 - 1e-5))
            ptr[s, r] = bx
            a_new[r] = _score(amax, best, ids[s], logf, r)
            prev = bx
        a[lo:hi] = a_new[lo:hi]
    a_out[:] = a


# ---------------------------------------------------------------------------
# fine grids: tile bounds
# ---------------------------------------------------------------------------
#
# A tile of rows ℓ' (or columns v') is modelled as centre c + z·u + residual,
# u the unit chord from its first to its last node; per tile st = (min z,
# max z, largest residual, largest |v'|). For a row with coordinate s,
# residual rn and |c_A + s u_A| = ln, and a column tile B,
#
#     ℓ'·v' <= max over z in {zmin, zmax} of (c_A + s u_A)·(c_B + z u_B)
#              + rn·max|v'| + ln·ρ_B,
#
# from the four pair products c_A·c_B, c_A·u_B, u_A·c_B, u_A·u_B.


def _row_tables(L: np.ndarray, lo: int, hi: int):
    """Per-model tables of the row tiles, so that each interval's row models cost one product.

    Returns ``G_T`` (Nv, 2N + 3 nA): per row (ℓ - c)·d and (ℓ - c)², per tile
    d², c², c·d, each to be summed against e^{-lQd Δt}; and the tiles'
    centres ``CL`` and chords ``DL`` (nA, Nv) of ℓ = √peq·Qxd.
    """
    N, Nv = L.shape
    nA = (hi - lo + _ROWS - 1) // _ROWS
    CL = np.zeros((nA, Nv))
    DL = np.zeros((nA, Nv))
    D = np.zeros((N, Nv))
    DX = np.zeros((N, Nv))
    for t in range(nA):
        r0 = lo + t * _ROWS
        r1 = min(r0 + _ROWS, hi)
        CL[t] = L[r0:r1].mean(axis=0)
        DL[t] = L[r1 - 1] - L[r0]
        D[r0:r1] = L[r0:r1] - CL[t]
        DX[r0:r1] = DL[t]
    G = np.concatenate([D * DX, D * D, DL * DL, CL * CL, CL * DL], axis=0)
    return np.ascontiguousarray(G.T), CL, DL


@njit(cache=True, nogil=True)
def _row_models(G_T, CL, DL, e, se, m, N, lo, hi, AU, srow, rnrow, lnrow, cnA):
    """Row tile models of ℓ' = ℓ ⊙ √e from the per-model tables (one product with e).

    Fills AU (2 nA, m): centre and unit chord of each tile; per row its
    coordinate s, residual norm rn and ln = |centre + s·chord|; cnA = |centre|.
    """
    nA = CL.shape[0]
    g = np.dot(e[:m], G_T[:m])
    for t in range(nA):
        dl = np.sqrt(g[2 * N + t])
        inv = 1.0 / dl if dl > 0 else 0.0
        cl2 = g[2 * N + nA + t]
        cdu = g[2 * N + 2 * nA + t] * inv
        cnA[t] = np.sqrt(max(cl2, 0.0))
        for i in range(m):
            AU[2 * t, i] = CL[t, i] * se[i]
            AU[2 * t + 1, i] = DL[t, i] * se[i] * inv
        for r in range(lo + t * _ROWS, min(lo + (t + 1) * _ROWS, hi)):
            sr = g[r] * inv
            d2 = g[N + r]
            srow[r] = sr
            # |ℓ' - c|² - s² loses digits: widen it by 1e-12 of |ℓ' - c|²
            rnrow[r] = np.sqrt(max(d2 - sr * sr, 0.0) + 1e-12 * d2)
            lnrow[r] = np.sqrt(max(cl2 + 2 * sr * cdu + sr * sr, 0.0))


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _scale(Qxd, a, amax, sqrt_peq, se, m, x0, x1, VS):
    """Rows x0..x1-1 of v' = e^{a - amax}/√peq · Qxd ⊙ √e (0 where a = -inf)."""
    for x in range(x0, x1):
        wx = np.exp(a[x] - amax) / sqrt_peq[x]
        for i in range(m):
            VS[x, i] = wx * Qxd[x, i] * se[i]


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _column_tiles(VS, m, lo, hi, T, t0, t1, CU, st):
    """Models of column tiles t0..t1-1 (T nodes each) of VS (N, m): centre CU[2t], unit chord CU[2t+1], st[t]."""
    for t in range(t0, t1):
        r0 = lo + t * T
        r1 = min(r0 + T, hi)
        c = CU[2 * t]
        u = CU[2 * t + 1]
        c[:] = 0.0
        for r in range(r0, r1):
            v = VS[r]
            for k in range(m):
                c[k] += v[k]
        dn = 0.0
        for k in range(m):
            c[k] /= r1 - r0
            d = VS[r1 - 1, k] - VS[r0, k]
            u[k] = d
            dn += d * d
        dn = np.sqrt(dn)
        inv = 1.0 / dn if dn > 0 else 0.0
        for k in range(m):
            u[k] *= inv
        zlo, zhi, rr, vv = 0.0, 0.0, 0.0, 0.0
        for r in range(r0, r1):
            v = VS[r]
            z, q, nn = 0.0, 0.0, 0.0
            for k in range(m):
                y = v[k] - c[k]
                z += y * u[k]
                q += y * y
                nn += v[k] * v[k]
            # |v - c|² - z² loses digits: widen it by 1e-12 of |v - c|²
            res = max(q - z * z, 0.0) + 1e-12 * q
            zlo = min(zlo, z)
            zhi = max(zhi, z)
            rr = max(rr, res)
            vv = max(vv, nn)
        st[t, 0] = zlo
        st[t, 1] = zhi
        st[t, 2] = np.sqrt(rr)
        st[t, 3] = np.sqrt(vv)


@njit(cache=True, nogil=True)
def _bound(K, i, j, s, rn, ln, slack, st, k):
    """Bound of ℓ'·v' for a row (s, rn, ln) over column tile k, pair products in K[i:i+2, j:j+2]."""
    z0 = st[k, 0]
    z1 = st[k, 1]
    b0 = K[i, j] + z0 * K[i, j + 1] + s * (K[i + 1, j] + z0 * K[i + 1, j + 1])
    b1 = K[i, j] + z1 * K[i, j + 1] + s * (K[i + 1, j] + z1 * K[i + 1, j + 1])
    return max(b0, b1) + (rn + slack) * st[k, 3] + ln * st[k, 2]


@njit(cache=True, nogil=True)
def _bound_tile(K, i, j, smin, smax, rnmax, lnmax, slmax, b0, b1, st, k):
    """Largest of (bound - (b0 + b1·s)) over all rows of a tile (s in [smin, smax]): < 0 prunes it for all."""
    z0 = st[k, 0]
    z1 = st[k, 1]
    g0 = K[i + 1, j] + z0 * K[i + 1, j + 1] - b1
    g1 = K[i + 1, j] + z1 * K[i + 1, j + 1] - b1
    h0 = K[i, j] + z0 * K[i, j + 1] - b0
    h1 = K[i, j] + z1 * K[i, j + 1] - b0
    v = max(max(h0 + smin * g0, h0 + smax * g0), max(h1 + smin * g1, h1 + smax * g1))
    return v + (rnmax + slmax) * st[k, 3] + lnmax * st[k, 2]


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _bound_row(LS, r, CUF, f, m, nl, slack, st):
    """Bound of ℓ'(r)·v' over column tile f from the row's own products with its centre and chord
    (no row-model residual; ``nl`` >= |ℓ'(r)|)."""
    lc = 0.0
    lu = 0.0
    for k in range(m):
        lc += LS[r, k] * CUF[2 * f, k]
        lu += LS[r, k] * CUF[2 * f + 1, k]
    return lc + max(lu * st[f, 0], lu * st[f, 1]) + nl * st[f, 2] + slack * st[f, 3]


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _row_max(v):
    mx = v[0]
    for i in range(1, v.shape[0]):
        mx = max(mx, v[i])
    return mx


@njit(cache=True, nogil=True)
def _row_best(v, c0, xa):
    """(best, x) over the values v at c0, c0+1, … and the clip (KERNEL_FLOOR at xa); ties to the smallest x."""
    mx = _row_max(v)
    if mx < KERNEL_FLOOR:
        return KERNEL_FLOOR, xa
    j = 0
    while v[j] != mx:
        j += 1
    if mx == KERNEL_FLOOR and xa < c0 + j:
        return mx, xa
    return mx, c0 + j


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _pair_products(AU, a2, CUF, f, m, KF, have):
    """Pair products of a row tile (rows a2, a2+1 of AU) with column tile f, into KF[:, 2f:2f+2], once."""
    if have[f]:
        return
    for i in range(2):
        for j in range(2):
            s = 0.0
            for k in range(m):
                s += AU[a2 + i, k] * CUF[2 * f + j, k]
            KF[i, 2 * f + j] = s
    have[f] = True


@njit(cache=True, nogil=True)
def _exact_tile(LS, r, VS, m, x0, x1, best, bx):
    for x in range(x0, x1):
        val = _dot(LS, r, VS, x, m)
        if val > best or (val == best and x < bx):
            best, bx = val, x
    return best, bx


@njit(cache=True, nogil=True)
def _search_row(LSb, j, a, a2, VS, m, lo, hi, KC, AU, CUF, KF, have, stC, stF, s, rn, ln, slack, xa, cb, pend, pb):
    """Best predecessor of row ℓ' = LSb[j] without a prediction: best-first over the coarse, then fine, bounds."""
    nC = stC.shape[0]
    nF = stF.shape[0]
    for k in range(nC):
        cb[k] = _bound(KC, 2 * a, 2 * k, s, rn, ln, slack, stC, k)
    best = KERNEL_FLOOR
    bx = xa
    npend = 0
    while True:
        k, bk = -1, -np.inf
        for kk in range(nC):
            if cb[kk] > bk:
                k, bk = kk, cb[kk]
        j, bj = -1, -np.inf
        for jj in range(npend):
            if pb[jj] > bj:
                j, bj = jj, pb[jj]
        if max(bk, bj) < best:
            return best, bx
        if bk > bj:  # open the coarse tile
            cb[k] = -np.inf
            for f in range(k * _GROUP, min(k * _GROUP + _GROUP, nF)):
                _pair_products(AU, a2, CUF, f, m, KF, have)
                b = _bound(KF, 0, 2 * f, s, rn, ln, slack, stF, f)
                if b >= best:
                    pend[npend] = f
                    pb[npend] = b
                    npend += 1
        else:  # evaluate the fine tile
            f = pend[j]
            npend -= 1
            pend[j] = pend[npend]
            pb[j] = pb[npend]
            x0 = lo + f * _COLS
            best, bx = _exact_tile(LSb, j, VS, m, x0, min(x0 + _COLS, hi), best, bx)


@njit(cache=True, nogil=True)
def _row_tiles(A0, A1, L, se, VS, AU, CUC, CUF, stC, stF, srow, rnrow, lnrow, cnA, m, lo, hi,
               xa, amax, ids_s, logf, ptr_s, a_new):
    """Rows of the row tiles A0..A1-1, in order: each tile's span is predicted from the one before."""
    nC = stC.shape[0]
    nF = stF.shape[0]
    KC = np.dot(AU[2 * A0:2 * A1], CUC.T)  # pair products with every coarse tile
    KF = np.empty((2, 2 * nF))
    have = np.zeros(nF, dtype=np.bool_)
    cb = np.empty(nC)
    pend = np.empty(nF, dtype=np.int64)
    pb = np.empty(nF)
    best = np.empty(_ROWS)
    bx = np.empty(_ROWS, dtype=np.int64)
    slack = np.empty(_ROWS)
    passes = np.zeros(_ROWS, dtype=np.bool_)
    LSb = np.empty((_ROWS, m))  # the tile's rows ℓ' = ℓ ⊙ √e
    f0 = -1
    f1 = -1
    for A in range(A0, A1):
        a = A - A0
        r0 = lo + A * _ROWS
        r1 = min(r0 + _ROWS, hi)
        nr = r1 - r0
        have[:] = False
        for j in range(nr):
            r = r0 + j
            slack[j] = _MARGIN * 4 * (cnA[A] + abs(srow[r]) + rnrow[r])
            for i in range(m):
                LSb[j, i] = L[r, i] * se[i]
        if f0 < 0:
            _, xf = _search_row(LSb, 0, a, 2 * A, VS, m, lo, hi, KC, AU, CUF, KF, have, stC, stF,
                                srow[r0], rnrow[r0], lnrow[r0], slack[0], xa, cb, pend, pb)
            _, xl = _search_row(LSb, nr - 1, a, 2 * A, VS, m, lo, hi, KC, AU, CUF, KF, have, stC, stF,
                                srow[r1 - 1], rnrow[r1 - 1], lnrow[r1 - 1], slack[nr - 1], xa, cb, pend, pb)
            fa = (xf - lo) // _COLS
            fb = (xl - lo) // _COLS
            f0 = max(min(fa, fb) - _PAD_LEFT, 0)
            f1 = min(max(fa, fb) + _PAD_RIGHT, nF)
        # the span, exactly: one product
        c0 = lo + f0 * _COLS
        c1 = min(lo + f1 * _COLS, hi)
        B = np.dot(LSb[:nr], VS[c0:c1].T)
        for j in range(nr):
            best[j], bx[j] = _row_best(B[j], c0, xa)
        # best as an affine lower bound in the row coordinate s, for the tests of whole tiles
        smin, smax, rnmax, lnmax, slmax = np.inf, -np.inf, 0.0, 0.0, 0.0
        jlo, jhi = 0, 0
        for j in range(nr):
            r = r0 + j
            if srow[r] < smin:
                smin, jlo = srow[r], j
            if srow[r] > smax:
                smax, jhi = srow[r], j
            rnmax = max(rnmax, rnrow[r])
            lnmax = max(lnmax, lnrow[r])
            slmax = max(slmax, slack[j])
        be1 = (best[jhi] - best[jlo]) / (smax - smin) if smax > smin else 0.0
        be0 = best[jlo] - be1 * smin
        dd = 0.0
        for j in range(nr):
            dd = max(dd, be0 + be1 * srow[r0 + j] - best[j])
        be0 -= dd
        # every column tile outside the span is bounded, or evaluated
        for k in range(nC):
            g0 = k * _GROUP
            g1 = min(g0 + _GROUP, nF)
            if g0 >= f0 and g1 <= f1:
                continue
            if _bound_tile(KC, 2 * a, 2 * k, smin, smax, rnmax, lnmax, slmax, be0, be1, stC, k) < 0:
                continue
            some = False
            for j in range(nr):
                r = r0 + j
                passes[j] = _bound(KC, 2 * a, 2 * k, srow[r], rnrow[r], lnrow[r], slack[j], stC, k) >= best[j]
                some = some or passes[j]
            if not some:
                continue
            for f in range(g0, g1):
                if f0 <= f < f1:
                    continue
                _pair_products(AU, 2 * A, CUF, f, m, KF, have)
                if _bound_tile(KF, 0, 2 * f, smin, smax, rnmax, lnmax, slmax, be0, be1, stF, f) < 0:
                    continue
                x0 = lo + f * _COLS
                x1 = min(x0 + _COLS, hi)
                for j in range(nr):
                    r = r0 + j
                    if (passes[j] and _bound(KF, 0, 2 * f, srow[r], rnrow[r], lnrow[r], slack[j], stF, f) >= best[j]
                            and _bound_row(LSb, j, CUF, f, m, lnrow[r] + rnrow[r], slack[j], stF) >= best[j]):
                        best[j], bx[j] = _exact_tile(LSb, j, VS, m, x0, x1, best[j], bx[j])
        for j in range(nr):
            r = r0 + j
            ptr_s[r] = bx[j]
            a_new[r] = _score(amax, best[j], ids_s, logf, r)
        # the next tile's span: the maxima move on as they did across this tile
        fa = (bx[0] - lo) // _COLS
        fb = (bx[nr - 1] - lo) // _COLS
        g = 2 * fb - fa
        f0 = max(min(fb, g) - _PAD_LEFT, 0)
        f1 = min(max(fb, g) + _PAD_RIGHT, nF)
        if f1 - f0 > _SPAN_MAX:
            f0 = -1


@njit(cache=True, nogil=True, parallel=True)
def _decode_tiles(L, Qxd, lQd, sqrt_peq, logp0, logf, G_T, CL, DL, isi, ids, lo, hi, nch, ptr, a_out):
    """Forward recursion of one trial with the tile bounds; fills ``ptr`` (S, N) and ``a_out`` (N,).

    ``L`` = √peq·Qxd; ``G_T, CL, DL`` from :func:`_row_tables`; the rows are split in
    ``nch`` parts, one per thread.
    """
    N, Nv = Qxd.shape
    S = isi.shape[0]
    n = hi - lo
    nA = CL.shape[0]
    nF = (n + _COLS - 1) // _COLS
    nC = (nF + _GROUP - 1) // _GROUP
    a = np.full(N, -np.inf)
    a_new = np.full(N, -np.inf)
    for x in range(lo, hi):
        a[x] = logp0[x]
    bufV = np.zeros(N * Nv)
    bufA = np.zeros(2 * nA * Nv)
    bufC = np.zeros(2 * nC * Nv)
    bufF = np.zeros(2 * nF * Nv)
    stC = np.empty((nC, 4))
    stF = np.empty((nF, 4))
    srow = np.zeros(N)
    rnrow = np.zeros(N)
    lnrow = np.zeros(N)
    cnA = np.zeros(nA)
    e = np.empty(Nv)
    se = np.empty(Nv)
    for s in range(S):
        m, amax, xa = _start(a, lQd, isi[s], lo, hi, e)
        if xa < 0:
            a_out[:] = -np.inf
            return
        for i in range(m):
            se[i] = np.sqrt(e[i])
        # compact (·, m) views, so that blocks of rows are contiguous for the products
        VS = bufV[:N * m].reshape((N, m))
        AU = bufA[:2 * nA * m].reshape((2 * nA, m))
        CUC = bufC[:2 * nC * m].reshape((2 * nC, m))
        CUF = bufF[:2 * nF * m].reshape((2 * nF, m))
        _row_models(G_T, CL, DL, e, se, m, N, lo, hi, AU, srow, rnrow, lnrow, cnA)
        for c in prange(nch):
            # whole coarse tiles per thread: its columns and their models need no other thread
            k0 = (nC * c) // nch
            k1 = (nC * (c + 1)) // nch
            _scale(Qxd, a, amax, sqrt_peq, se, m, lo + k0 * _COLS * _GROUP, min(lo + k1 * _COLS * _GROUP, hi), VS)
            _column_tiles(VS, m, lo, hi, _COLS, k0 * _GROUP, min(k1 * _GROUP, nF), CUF, stF)
            _column_tiles(VS, m, lo, hi, _COLS * _GROUP, k0, k1, CUC, stC)
        for c in prange(nch):
            _row_tiles((nA * c) // nch, (nA * (c + 1)) // nch, L, se, VS, AU, CUC, CUF, stC, stF, srow, rnrow, lnrow,
                       cnA, m, lo, hi, xa, amax, ids[s], logf, ptr[s], a_new)
        a[lo:hi] = a_new[lo:hi]
    a_out[:] = a


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
        The model to decode with; its walls (``boundary_conditions``) decide
        the excluded nodes and the end rule: Dirichlet walls are absorbing
        whether or not the likelihood applies the absorption step (MATH.md §4).
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
                                  or operators.boundary_conditions != model.boundary_conditions
                                  or operators.fr.shape != model.fr_of(datasample).shape):
        raise ValueError("operators must be built from this model (same grid, boundary settings and neurons), "
                         "e.g. Operators.build(model, datasample, Nv)")
    ops = operators if operators is not None else Operators.build(model, datasample, Nv)
    grid = model.grid
    N = grid.N
    # The walls, not the absorption step, decide where a path can be: Dirichlet walls
    # absorb (the density vanishes there) even in the 2021 ablation without the step.
    walls = spectrum_mode(model.boundary_conditions)
    margin = viterbi_margin(N, walls)
    keep_lo, keep_hi = margin, N - margin
    sqrt_peq = np.sqrt(ops.peq)
    Qxd = np.ascontiguousarray(ops.Qxd)
    L = np.ascontiguousarray(sqrt_peq[:, None] * Qxd)
    with np.errstate(divide="ignore"):
        logp0 = np.log(ops.p0)
        logf = np.ascontiguousarray(np.log(ops.fr).T)  # (n_neurons, N)
    lQd = np.ascontiguousarray(ops.lQd)
    chosen = [(np.ascontiguousarray(isi, dtype=float), np.ascontiguousarray(ids)) for isi, ids in
              (data.trials[t] for t in trials)]
    ptr_type = np.int32 if N > 32000 else np.int16

    def path(i: int, ptr: np.ndarray, a_end: np.ndarray) -> ViterbiPath:
        inds, score = _trace(ptr, a_end, walls, keep_lo, keep_hi)
        t = np.concatenate(([0.0], np.cumsum(chosen[i][0])))
        return ViterbiPath(trials[i], t, grid.x[inds], inds, score)

    with blas_threads(1):
        if N <= TABLE_MAX_N:
            starts = np.cumsum([0] + [len(isi) for isi, _ in chosen])
            all_isi = np.concatenate([isi for isi, _ in chosen] + [np.ones(1)])  # never empty
            K, F, tix = _kernel_tables(Qxd, lQd, all_isi)
            Q2 = Qxd * Qxd

            def one(i: int) -> ViterbiPath:
                isi, ids = chosen[i]
                s0, s1 = starts[i], starts[i + 1]
                ptr = np.full((len(isi), N), -1, dtype=ptr_type)
                a_end = np.empty(N)
                _decode_tables(L, Qxd, Q2, lQd, sqrt_peq, logp0, logf, isi, ids, keep_lo, keep_hi, K, F,
                               tix[s0:s1], ptr, a_end)
                return path(i, ptr, a_end)

            # longest trials first, so that the two threads finish together
            order = sorted(range(len(chosen)), key=lambda i: -len(chosen[i][0]))
            paths = dict(zip(order, parallel_map(one, order)))
            return [paths[i] for i in range(len(chosen))]
        G_T, CL, DL = _row_tables(L, keep_lo, keep_hi)
        # numba's OpenMP workers otherwise spin between the parallel regions (a few per
        # interval) and take a core from whatever runs beside, such as a fit; read when
        # the OpenMP runtime starts, at the first region.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        out = []
        for i, (isi, ids) in enumerate(chosen):
            ptr = np.full((len(isi), N), -1, dtype=ptr_type)
            a_end = np.empty(N)
            with _parallel_lock:
                _decode_tiles(L, Qxd, lQd, sqrt_peq, logp0, logf, G_T, CL, DL, isi, ids, keep_lo, keep_hi,
                              numba.get_num_threads(), ptr, a_end)
            out.append(path(i, ptr, a_end))
        return out
