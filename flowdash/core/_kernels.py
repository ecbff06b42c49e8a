"""numba kernels for the sequential parts of the likelihood (MATH.md §5–6).

Two ways through the trials of a batch:

- One trial (:func:`forward`, :func:`backward`, :func:`backward_scale`):
  interval ``i`` is row ``offsets[t] + i`` of ``E`` (its propagator
  ``exp(-lQd·dt)``, computed by numpy beforehand) and ``ids``. The vectors
  stored for interval ``i`` (the forward vector *entering* it, ``α_{i-1}``
  of MATH.md, and its backward vectors) go to row ``rows[i]``; the caller
  orders rows by neuron, so each neuron's spikes are one contiguous block,
  and forms the sums over spikes as BLAS products on slices. The adjoint
  pass normalises itself so that it runs beside the forward pass.
- Many trials (:func:`forward_lockstep`, :func:`backward_lockstep`): the
  trials advance together and their per-spike products become BLAS
  products (see the section below).

The kernels release the GIL, so the validation pass can run beside the
training gradient.
"""

from __future__ import annotations

import numpy as np
from numba import njit

CUTOFF = 40.0  # lQd·dt beyond which exp(-lQd·dt) < 4e-18 is negligible


@njit(cache=True, nogil=True)
def _matvec(M, a, m, out):
    """``out = M @ a`` for symmetric M, using only the first m entries of a.

    Walking M's rows keeps the access contiguous; the entries of a past m
    are negligible (see :func:`forward`).
    """
    Nv = out.shape[0]
    for k in range(Nv):
        out[k] = 0.0
    for j in range(m):
        aj = a[j]
        for k in range(Nv):
            out[k] += M[j, k] * aj


# Reassociation lets the sums of squares and products vectorise; infinities
# and NaNs keep their meaning (a fit detects a diverged NLL by them).
_SUM = {"reassoc", "contract"}


@njit(cache=True, nogil=True, fastmath=_SUM)
def _normalise(a):
    s = 0.0
    for k in range(a.shape[0]):
        s += a[k] * a[k]
    c = np.sqrt(s)
    inv = 1.0 / c
    for k in range(a.shape[0]):
        a[k] *= inv
    return c


@njit(cache=True, nogil=True)
def forward(alpha0, beta, lQd, isi, S, Aabs, absorbing, E, ids, offsets, rows, A_in, AE, cs):
    """Forward pass over all trials.

    ``lQd`` is increasing, so after ``α ← α ⊙ exp(-lQd·dt)`` every entry
    past the first ``m`` with ``lQd·dt < 40`` is below e^-40 ≈ 4e-18 of its
    old size: the spike operator only needs those ``m`` columns, which is
    exact to round-off and makes short intervals much cheaper.

    ``A_in``, ``AE`` (n_intervals, Nv) and ``cs`` (n_intervals,) are filled
    with the normalised forward vector entering each interval, the same
    times E, and each interval's normaliser; pass 0-row arrays to skip
    storing (likelihood only).

    Returns
    -------
    nll : (n_trials,) NLL of each trial
    c0, cabs, clast : (n_trials,) first, absorbing and last normalisers
    a_end, a_S : (n_trials, Nv) final forward vector, and α_S (before the absorbing step)
    """
    Nv = alpha0.shape[0]
    n_trials = offsets.shape[0] - 1
    store = cs.shape[0] > 0
    nll = np.zeros(n_trials)
    c0 = np.empty(n_trials)
    cabs = np.ones(n_trials)
    clast = np.empty(n_trials)
    a_end = np.empty((n_trials, Nv))
    a_S = np.empty((n_trials, Nv))
    a = np.empty(Nv)
    tmp = np.empty(Nv)
    for t in range(n_trials):
        a[:] = alpha0
        c = _normalise(a)
        c0[t] = c
        ll = np.log(c)
        for i in range(offsets[t], offsets[t + 1]):
            if store:
                A_in[rows[i]] = a
            for k in range(Nv):
                a[k] *= E[i, k]
            if store:
                AE[rows[i]] = a
            n = ids[i]
            if n >= 0:
                m = np.searchsorted(lQd, CUTOFF / isi[i]) if isi[i] > 0 else Nv
                _matvec(S[n], a, max(m, 1), tmp)
                a[:] = tmp
            c = _normalise(a)
            ll += np.log(c)
            if store:
                cs[i] = c
        a_S[t] = a
        if absorbing:
            _matvec(Aabs, a, Nv, tmp)
            a[:] = tmp
            c = _normalise(a)
            cabs[t] = c
            ll += np.log(c)
        s = 0.0
        for k in range(Nv):
            s += beta[k] * a[k]
        clast[t] = s
        ll += np.log(s)
        a_end[t] = a
        nll[t] = -ll
    return nll, c0, cabs, clast, a_end, a_S


@njit(cache=True, nogil=True)
def backward(beta, lQd, isi, S, Aabs, absorbing, E, ids, offsets, rows, Bpre, Bpost, BE, log_chat):
    """Adjoint pass with its own normalisation, independent of the forward pass.

    As in :func:`forward`, a vector that has just been through a propagator
    only has ``m`` entries that matter, so the next spike operator uses ``m``
    columns.

    The true backward vectors of MATH.md §6 divide by the forward
    normalisers ``c_i``; these divide by their own norms ``ĉ_i`` instead, so
    the pass can run beside the forward pass. :func:`backward_scale` turns
    the two sets of normalisers into the per-row factor that converts one
    into the other (everything here is linear in b).

    Fills ``Bpre`` (the backward vector before the spike operator; pass a
    0-row array to skip it), ``Bpost`` (after it; = Bpre at a trial end),
    ``BE`` (``Bpost ⊙ E``), all (n_intervals, Nv), and ``log_chat``
    (n_intervals,), the log of each interval's own normaliser.

    Returns
    -------
    b0 : (n_trials, Nv) final backward vector of each trial
    """
    Nv = beta.shape[0]
    n_trials = offsets.shape[0] - 1
    need_pre = Bpre.shape[0] > 0
    b0 = np.empty((n_trials, Nv))
    b = np.empty(Nv)
    tmp = np.empty(Nv)
    for t in range(n_trials):
        if absorbing:
            _matvec(Aabs, beta, Nv, b)
        else:
            b[:] = beta
        m = Nv  # entries of b that matter; shrinks once b has been through a propagator
        for r in range(offsets[t + 1] - offsets[t]):
            i = offsets[t + 1] - 1 - r
            log_chat[i] = np.log(_normalise(b))
            row = rows[i]
            if need_pre:
                for k in range(Nv):
                    Bpre[row, k] = b[k]
            n = ids[i]
            if n >= 0:
                _matvec(S[n], b, m, tmp)
            else:
                tmp[:] = b
            for k in range(Nv):
                Bpost[row, k] = tmp[k]
                b[k] = tmp[k] * E[i, k]
                BE[row, k] = b[k]
            m = max(np.searchsorted(lQd, CUTOFF / isi[i]), 1) if isi[i] > 0 else Nv
        b0[t] = b
    return b0


@njit(cache=True, nogil=True)
def backward_scale(log_c, log_chat, offsets, rows, log_end, A_in, AE, b0):
    """Fold the true backward normalisation into the forward rows, in place.

    Row i's true backward vectors are the own ones times
    ``r_i = exp(-log_end_t + Σ_{j >= i in trial t} (log ĉ_j - log c_j))``,
    with ``log_end_t = log(c_last·c_abs)``. ``A_in`` and ``AE`` rows are
    multiplied by ``r_i`` (every gradient sum pairs one of them with one
    backward row), and ``b0`` of each trial by its ``r`` at the trial start.
    """
    n_trials = offsets.shape[0] - 1
    Nv = A_in.shape[1]
    for t in range(n_trials):
        acc = -log_end[t]
        for r in range(offsets[t + 1] - offsets[t]):
            i = offsets[t + 1] - 1 - r
            acc += log_chat[i] - log_c[i]
            f = np.exp(acc)
            row = rows[i]
            for k in range(Nv):
                A_in[row, k] *= f
                AE[row, k] *= f
        f = np.exp(acc)
        for k in range(Nv):
            b0[t, k] *= f


# ---------------------------------------------------------------------------
# Trials in lockstep
#
# With many trials, the per-spike matrix-vector products are the cost, and
# each of them reads a whole spike operator for one vector. Here the trials
# of a batch advance together, one interval of each per step, their vectors
# stacked as the rows of a matrix V; at each step the rows whose interval
# ends in a spike of neuron n go through S_n in one BLAS product.
#
# Trials are sorted by decreasing length (trial c of the batch is row c of
# V), so the ones still running at step s are the first ``active[s]``. All
# per-interval arrays are in *lockstep order*: step 0 of every trial, then
# step 1 of every trial still running, and so on; interval s of trial c is
# row ``sum(active[:s]) + c``. The passes then read and write their rows in
# sequence.
# ---------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _spike_products(V, E, propagate, S, ids, r0, n_active, width, X, Y, counts, members, src):
    """``Y[src[c]] = S_n x_c`` for every running trial c whose interval (row ``r0 + c``) ends in a spike of neuron n.

    ``x_c`` is ``V[c]``, or ``V[c] ⊙ E[r0 + c]`` with ``propagate``; only its
    first ``width[c]`` entries matter. Trial ends (id -1) get ``src[c] = -1``.
    A neuron's rows are sorted by width and go through S_n in one product
    over the columns they all need, plus, when it saves work, a second
    product over the extra columns that only the widest rows need.
    ``Y`` is (2C, Nv): results in its first rows, the second products after C.
    """
    n_neurons, Nv = S.shape[0], S.shape[2]
    C = V.shape[0]
    counts[:] = 0
    for c in range(n_active):
        n = ids[r0 + c]
        src[c] = -1
        if n >= 0:
            # Insertion by decreasing width (a neuron has few rows per step).
            j = counts[n]
            while j > 0 and width[members[n, j - 1]] < width[c]:
                members[n, j] = members[n, j - 1]
                j -= 1
            members[n, j] = c
            counts[n] += 1
    out = 0
    for n in range(n_neurons):
        k = counts[n]
        if k == 0:
            continue
        rows = members[n, :k]
        top = width[rows[0]]
        # Rows [0, split) also need the columns [m, top); the others only [0, m).
        split, m, best = 0, top, k * top
        for j in range(1, k):
            cost = k * width[rows[j]] + j * (top - width[rows[j]]) + 8  # + a small price per product
            if cost < best:
                split, m, best = j, width[rows[j]], cost
        Xv = X[:k * m].reshape((k, m))
        for j in range(k):
            c = rows[j]
            src[c] = out + j
            if propagate:
                for l in range(m):
                    Xv[j, l] = V[c, l] * E[r0 + c, l]
            else:
                for l in range(m):
                    Xv[j, l] = V[c, l]
        Yv = Y[out:out + k]
        if k == 1:  # a lone vector: a BLAS call costs more than it saves
            _matvec(S[n], Xv[0], m, Yv[0])
        else:
            np.dot(Xv, S[n, :m], Yv)  # S is symmetric: row vectors times S
        if split > 0:
            extra = top - m
            Xw = X[:split * extra].reshape((split, extra))
            for j in range(split):
                c = rows[j]
                if propagate:
                    for l in range(extra):
                        Xw[j, l] = V[c, m + l] * E[r0 + c, m + l]
                else:
                    for l in range(extra):
                        Xw[j, l] = V[c, m + l]
            Yw = Y[C:C + split]
            np.dot(Xw, S[n, m:top], Yw)
            for j in range(split):
                for l in range(Nv):
                    Yv[j, l] += Yw[j, l]
        out += k


@njit(cache=True, nogil=True)
def _lockstep_buffers(C, Nv, n_neurons):
    return (np.empty((C, Nv)), np.empty(C * Nv), np.empty((2 * C, Nv)), np.zeros(n_neurons, dtype=np.int64),
            np.empty((n_neurons, C), dtype=np.int64), np.empty(C, dtype=np.int64), np.empty(C, dtype=np.int64))


@njit(cache=True, nogil=True, fastmath=_SUM)
def _sum_squares(x):
    s = 0.0
    for k in range(x.shape[0]):
        s += x[k] * x[k]
    return s


@njit(cache=True, nogil=True, fastmath=_SUM)
def _sum_squares_product(x, e):
    s = 0.0
    for k in range(x.shape[0]):
        v = x[k] * e[k]
        s += v * v
    return s


@njit(cache=True, nogil=True)
def forward_lockstep(alpha0, beta, S, Aabs, absorbing, E, ids, width_of, active, A_in, cs):
    """Forward pass (MATH.md §5) over trials in lockstep.

    Parameters
    ----------
    E : (n_intervals, Nv) propagators; ids, width_of : (n_intervals,)
        neuron ids, and how many eigen-components matter after each
        interval's propagator (see :func:`forward`); all in lockstep order
    active : (longest trial,) trials still running at each step (every trial has an interval)
    A_in, cs : filled in lockstep order with the normalised vector entering
        each interval and the interval's normaliser (0-row arrays: likelihood only)

    Returns
    -------
    nll, c0, cabs, clast : (C,) per trial (trials by decreasing length)
    a_end, a_S : (C, Nv) final vector, and α_S (before the absorption step)
    """
    C, Nv, n_neurons = active[0], alpha0.shape[0], S.shape[0]
    store = cs.shape[0] > 0
    V, X, Y, counts, members, width, src = _lockstep_buffers(C, Nv, n_neurons)
    nll, c0, cabs, clast = np.zeros(C), np.empty(C), np.ones(C), np.empty(C)
    a_end, a_S = np.empty((C, Nv)), np.empty((C, Nv))
    tmp = np.empty(Nv)
    for c in range(C):
        V[c] = alpha0
        c0[c] = _normalise(V[c])
        nll[c] = -np.log(c0[c])
    steps, r0 = active.shape[0], 0
    for s in range(steps):
        n_active = active[s]
        for c in range(n_active):
            if store:
                A_in[r0 + c] = V[c]
            width[c] = width_of[r0 + c]
        _spike_products(V, E, True, S, ids, r0, n_active, width, X, Y, counts, members, src)
        for c in range(n_active):
            r = r0 + c
            j = src[c]
            if j >= 0:  # S_n (α ⊙ E), normalised
                norm = np.sqrt(_sum_squares(Y[j]))
                inv = 1.0 / norm
                for k in range(Nv):
                    V[c, k] = Y[j, k] * inv
            else:  # trial end: α ⊙ E, normalised
                norm = np.sqrt(_sum_squares_product(V[c], E[r]))
                inv = 1.0 / norm
                for k in range(Nv):
                    V[c, k] = V[c, k] * E[r, k] * inv
            nll[c] -= np.log(norm)
            if store:
                cs[r] = norm
        # The trials whose last interval this was are the last running rows.
        for c in range(active[s + 1] if s + 1 < steps else 0, n_active):
            a_S[c] = V[c]
            if absorbing:
                _matvec(Aabs, V[c], Nv, tmp)
                V[c] = tmp
                cabs[c] = _normalise(V[c])
                nll[c] -= np.log(cabs[c])
            dot = 0.0
            for k in range(Nv):
                dot += beta[k] * V[c, k]
            clast[c] = dot
            nll[c] -= np.log(dot)
            a_end[c] = V[c]
        r0 += n_active
    return nll, c0, cabs, clast, a_end, a_S


@njit(cache=True, nogil=True)
def backward_lockstep(beta, S, Aabs, absorbing, E, ids, dt, width_of, active, cs, end_scale, A_in, ties,
                      n_neurons, window, block):
    """Adjoint pass (MATH.md §6) over trials in lockstep, after :func:`forward_lockstep`, with the gradient sums.

    Same layout as :func:`forward_lockstep` (``dt`` (n_intervals,) the
    interval lengths in lockstep order; ``A_in`` as the forward pass filled
    it). The backward vectors are divided by the forward normalisers ``cs``
    as in MATH.md, so they come out at their true scale; ``end_scale`` (C,)
    is each trial's ``1 / (c_last · c_abs)``.

    Of the sums over intervals, this forms the ones with the backward vector
    before the spike operator, while their rows are still in the caches:
    every ``window`` rows or so, :func:`_window_sums` turns the rows just
    done into BLAS products. (The caller derives ``Σ α⊗(b_post⊙E)`` from
    them: see ``likelihood._gradient_sums_lockstep``.)

    Returns
    -------
    b0 : (C, Nv) final backward vector of each trial (``b_post ⊙ E`` of its first interval)
    GI1 : (n_neurons, Nv, Nv) per neuron Σ (α⊙E)⊗b_pre over its spikes
    GA : (Nv, Nv) Σ (α⊙E)⊗b_pre over trial ends (there b_pre is b_post)
    Gdiag : (Nv,) Σ (α⊙E)·b_post·dt, the equal-eigenvalue limit
    Gties : (n_ties,) the same for the near-equal eigenvalue pairs (j, k) of ``ties`` (n_ties, 2)
    ae_last, b_last : (C, Nv) α⊙E and b_pre of each trial's last interval
    last_spike : (C,) the neuron whose spike ends each trial's last interval (-1: a trial end)
    """
    C, Nv = active[0], beta.shape[0]
    V, X, Y, counts, members, width, src = _lockstep_buffers(C, Nv, S.shape[0])
    Gties, Gdiag = np.zeros(ties.shape[0]), np.zeros(Nv)
    GI1, GA = np.zeros((n_neurons, Nv, Nv)), np.zeros((Nv, Nv))
    ae_last, b_last = np.zeros((C, Nv)), np.zeros((C, Nv))
    last_spike = np.empty(C, dtype=np.int64)
    Bw = np.empty((window + C, Nv))
    work = _window_workspace(window + C, Nv, n_neurons, block)
    tmp = np.empty(Nv)
    steps = active.shape[0]
    r_end = 0
    for s in range(steps):
        r_end += active[s]
    r_hi = r_end  # the window holds rows [r_end, r_hi), at index r_hi - 1 - r
    for s in range(steps - 1, -1, -1):
        n_active = active[s]
        r0 = r_end - n_active
        # Trials whose last interval is this one start their backward pass.
        first_new = active[s + 1] if s + 1 < steps else 0
        for c in range(first_new, n_active):
            for k in range(Nv):
                tmp[k] = beta[k] * end_scale[c]
            if absorbing:
                _matvec(Aabs, tmp, Nv, V[c])
            else:
                V[c] = tmp
            width[c] = Nv
        for c in range(n_active):
            r = r0 + c
            j = r_hi - 1 - r
            inv = 1.0 / cs[r]
            for k in range(Nv):
                V[c, k] *= inv
                Bw[j, k] = V[c, k]
            if c >= first_new:
                last_spike[c] = ids[r]
                for k in range(Nv):
                    ae_last[c, k] = A_in[r, k] * E[r, k]
                b_last[c] = V[c]
        _spike_products(V, E, False, S, ids, r0, n_active, width, X, Y, counts, members, src)
        for c in range(n_active):
            r = r0 + c
            d = dt[r]
            b_post = Y[src[c]] if src[c] >= 0 else V[c]
            for p in range(ties.shape[0]):
                jt, kt = ties[p, 0], ties[p, 1]
                Gties[p] += A_in[r, jt] * E[r, jt] * b_post[kt] * d
            for k in range(Nv):
                b = b_post[k] * E[r, k]
                V[c, k] = b
                Gdiag[k] += A_in[r, k] * b * d
            width[c] = width_of[r]
        r_end = r0
        if r_hi - r_end >= window or s == 0:
            _window_sums(A_in, E, Bw, ids, width_of, r_hi, r_hi - r_end, block, work, GI1, GA)
            r_hi = r_end
    return V, GI1, GA, Gdiag, Gties, ae_last, b_last, last_spike


@njit(cache=True, nogil=True)
def _window_workspace(cap, Nv, n_neurons, block):
    n_keys = (n_neurons + 1) * (Nv + 1)
    return (np.zeros(n_keys + 1, dtype=np.int64), np.empty(cap, dtype=np.int64), np.empty(block * Nv),
            np.empty((block, Nv)), np.empty((Nv, Nv)))


@njit(cache=True, nogil=True)
def _window_sums(A_in, E, Bw, ids, width_of, r_hi, n_rows, block, work, GI1, GA):
    """Add a window's ``Σ (α⊙E)⊗b_pre``: per neuron to ``GI1[n]``, over trial ends to ``GA``.

    The window is the lockstep rows ``[r_hi - n_rows, r_hi)``, which the
    adjoint pass has just done, so they are in the caches: ``A_in`` the
    forward vector entering each interval, ``E`` its propagator; row j of
    ``Bw`` is row ``r_hi - 1 - j``'s backward vector before the spike
    operator. The rows are ordered by neuron (trial ends last) and by
    decreasing width (a counting sort), so that a block of rows shares the
    corner m in which ``α⊙E`` is not negligible, and becomes one BLAS product.
    """
    Nv = A_in.shape[1]
    n_neurons = GI1.shape[0]
    starts, perm, AE_buf, B_blk, tmp = work
    nb = Nv + 1
    n_keys = (n_neurons + 1) * nb
    starts[:] = 0
    for j in range(n_rows):
        r = r_hi - 1 - j
        g = ids[r] if ids[r] >= 0 else n_neurons
        starts[g * nb + Nv - width_of[r] + 1] += 1
    for key in range(n_keys):
        starts[key + 1] += starts[key]
    for j in range(n_rows):
        r = r_hi - 1 - j
        g = ids[r] if ids[r] >= 0 else n_neurons
        key = g * nb + Nv - width_of[r]
        perm[starts[key]] = j
        starts[key] += 1
    q_lo = 0
    for g in range(n_neurons + 1):
        q_hi = starts[(g + 1) * nb - 1]  # after the fill, starts[key] is the end of bucket key
        target = GI1[g] if g < n_neurons else GA
        for q0 in range(q_lo, q_hi, block):
            K = min(block, q_hi - q0)
            m = width_of[r_hi - 1 - perm[q0]]
            AE = AE_buf[:K * m].reshape((K, m))
            for i in range(K):
                j = perm[q0 + i]
                r = r_hi - 1 - j
                for k in range(m):
                    AE[i, k] = A_in[r, k] * E[r, k]
                B_blk[i] = Bw[j]
            t = tmp[:m]
            np.dot(AE.T, B_blk[:K], t)
            for i in range(m):
                for k in range(Nv):
                    target[i, k] += t[i, k]
        q_lo = q_hi
