"""numba kernels for the sequential parts of the likelihood (MATH.md §5–6).

Trials of a batch arrive concatenated: interval ``k`` of trial ``t`` is row
``offsets[t] + k`` of ``isi``/``ids``. The forward vectors of trial ``t``
(``α_0 … α_S``) are rows ``offsets[t] + t … offsets[t + 1] + t`` of
``alphas``. Everything else (the sums over spikes that make the gradient)
is done with BLAS outside these loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, fastmath=False)
def _spike_matvec(S, n, a, out):
    # S[n] is symmetric; walking its rows keeps the access contiguous.
    Nv = a.shape[0]
    for k in range(Nv):
        out[k] = 0.0
    for j in range(Nv):
        aj = a[j]
        for k in range(Nv):
            out[k] += S[n, j, k] * aj


@njit(cache=True)
def _norm(a):
    s = 0.0
    for k in range(a.shape[0]):
        s += a[k] * a[k]
    return np.sqrt(s)


@njit(cache=True)
def forward(alpha0, beta, lQd, S, Aabs, absorbing, isi, ids, offsets, store):
    """Forward pass over all trials.

    Returns
    -------
    nll : (n_trials,) NLL of each trial
    alphas : (n_intervals + n_trials, Nv) normalised forward vectors (if store)
    cs : (n_intervals,) normalisers c_1..c_S of each trial (if store)
    c0, cabs, clast : (n_trials,) first, absorbing and last normalisers
    a_end, a_S : (n_trials, Nv) final forward vector, and α_S
    """
    Nv = lQd.shape[0]
    n_trials = offsets.shape[0] - 1
    n_int = isi.shape[0]
    nll = np.zeros(n_trials)
    if store:
        alphas = np.empty((n_int + n_trials, Nv))
        cs = np.empty(n_int)
    else:
        alphas = np.empty((0, Nv))
        cs = np.empty(0)
    c0 = np.empty(n_trials)
    cabs = np.ones(n_trials)
    clast = np.empty(n_trials)
    a_end = np.empty((n_trials, Nv))
    a_S = np.empty((n_trials, Nv))
    a = np.empty(Nv)
    tmp = np.empty(Nv)
    for t in range(n_trials):
        c = _norm(alpha0)
        c0[t] = c
        ll = np.log(c)
        for k in range(Nv):
            a[k] = alpha0[k] / c
        row = offsets[t] + t
        if store:
            alphas[row] = a
        for i in range(offsets[t], offsets[t + 1]):
            dt = isi[i]
            for k in range(Nv):
                a[k] *= np.exp(-lQd[k] * dt)
            n = ids[i]
            if n >= 0:
                _spike_matvec(S, n, a, tmp)
                a[:] = tmp
            c = _norm(a)
            ll += np.log(c)
            for k in range(Nv):
                a[k] /= c
            if store:
                cs[i] = c
                row += 1
                alphas[row] = a
        a_S[t] = a
        if absorbing:
            for k in range(Nv):
                s = 0.0
                for j in range(Nv):
                    s += Aabs[j, k] * a[j]
                tmp[k] = s
            c = _norm(tmp)
            cabs[t] = c
            ll += np.log(c)
            for k in range(Nv):
                a[k] = tmp[k] / c
        s = 0.0
        for k in range(Nv):
            s += beta[k] * a[k]
        clast[t] = s
        ll += np.log(s)
        a_end[t] = a
        nll[t] = -ll
    return nll, alphas, cs, c0, cabs, clast, a_end, a_S


@njit(cache=True)
def backward(beta, lQd, S, Aabs, absorbing, isi, ids, offsets, cs, cabs, clast):
    """Adjoint pass: the backward vectors of every interval.

    Returns
    -------
    E : (n_intervals, Nv) propagators exp(-lQd dt)
    Bpre : (n_intervals, Nv) backward vector before the spike operator
    Bpost : (n_intervals, Nv) backward vector after it (= Bpre at trial end)
    b0 : (n_trials, Nv) final backward vector of each trial
    babs : (n_trials, Nv) backward vector that multiplies α_S in Gabs
    """
    Nv = lQd.shape[0]
    n_trials = offsets.shape[0] - 1
    n_int = isi.shape[0]
    E = np.empty((n_int, Nv))
    Bpre = np.empty((n_int, Nv))
    Bpost = np.empty((n_int, Nv))
    b0 = np.empty((n_trials, Nv))
    babs = np.zeros((n_trials, Nv))
    b = np.empty(Nv)
    tmp = np.empty(Nv)
    for t in range(n_trials):
        for k in range(Nv):
            b[k] = beta[k] / clast[t]
        if absorbing:
            for k in range(Nv):
                b[k] /= cabs[t]
            babs[t] = b
            for k in range(Nv):
                s = 0.0
                for j in range(Nv):
                    s += Aabs[k, j] * b[j]
                tmp[k] = s
            b[:] = tmp
        for i in range(offsets[t + 1] - 1, offsets[t] - 1, -1):
            c = cs[i]
            for k in range(Nv):
                b[k] /= c
                E[i, k] = np.exp(-lQd[k] * isi[i])
            Bpre[i] = b
            n = ids[i]
            if n >= 0:
                _spike_matvec(S, n, b, tmp)
                b[:] = tmp
            Bpost[i] = b
            for k in range(Nv):
                b[k] *= E[i, k]
        b0[t] = b
    return E, Bpre, Bpost, b0, babs
