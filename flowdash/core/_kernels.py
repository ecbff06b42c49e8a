"""numba kernels for the sequential parts of the likelihood (MATH.md §5–6).

Trials of a batch arrive concatenated: interval ``i`` of trial ``t`` is row
``offsets[t] + i`` of ``E`` (its propagator ``exp(-lQd·dt)``, computed by
numpy beforehand) and ``ids``. The vectors stored for interval ``i`` (the
forward vector *entering* it, ``α_{i-1}`` of MATH.md, and its backward
vectors) go to row ``rows[i]``; the caller orders rows by neuron, so each
neuron's spikes are one contiguous block. The sums over spikes that make the
gradient are then plain matrix products on slices, done with BLAS outside
these loops. The kernels release the GIL, so the
validation pass can run beside the training gradient.
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
    Nv = a.shape[0]
    for k in range(Nv):
        out[k] = 0.0
    for j in range(m):
        aj = a[j]
        for k in range(Nv):
            out[k] += M[j, k] * aj


@njit(cache=True, nogil=True)
def _normalise(a):
    s = 0.0
    for k in range(a.shape[0]):
        s += a[k] * a[k]
    c = np.sqrt(s)
    for k in range(a.shape[0]):
        a[k] /= c
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
