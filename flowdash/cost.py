"""How long a fit's epoch will take, estimated before it starts (no dash).

A cost model with two parts, as the epoch spends its time (docs/ARCHITECTURE.md):

* the spectral solve, once per model and datasample: shift-invert Lanczos,
  linear in N and in the Lanczos basis size, when few eigenpairs are wanted;
  a dense symmetric solve (N³ plus N²·Nv) when more than a quarter of them
  are, or the grid is small;
* the passes over the spikes: every interval (a spike or a trial end) costs
  a gradient pass over the training data and an NLL pass over the validation
  data; the cost per interval grows like Nv^1.75 (components that a
  propagator damps below e^-40 are skipped, so less than Nv²).

The constants are calibrated on this machine's benchmark (2-core AMD EPYC,
``bench/run.py``, 2026-11-30): the W2 epoch and its scaling in N and Nv (the
README table), W3 and W5, and two slow cases measured the same way (N = 1793
with Nv = 512: 4.9 s per epoch; Nv = N − 2: 18 s). It reproduces those to
about ±25 % and overestimates W4 (short absorbing trials) by about half.
"""
from __future__ import annotations

#: Lanczos solve, s per (node × basis vector).
LANCZOS = 1.22e-7
#: Dense solve, s per N³ and per N²·Nv.
DENSE_N3, DENSE_N2NV = 2.0e-10, 1.6e-9
#: Passes at Nv = 64, s per interval: gradient (training) and NLL (validation).
GRAD_INTERVAL, NLL_INTERVAL = 1.9e-6, 0.48e-6
NV_EXPONENT = 1.75
#: An epoch slower than this deserves a warning before it starts, s.
SLOW_EPOCH = 5.0


def solve_seconds(N: int, Nv: int) -> float:
    """One spectral solve of a grid of ``N`` nodes for ``Nv`` eigenpairs (as
    ``core.spectra`` chooses between Lanczos and the dense solver)."""
    n = N - 2
    if Nv > n // 4 or n <= 300:
        return DENSE_N3 * N**3 + DENSE_N2NV * N**2 * Nv
    ncv = min(n, Nv + max(32, Nv // 2))
    return LANCZOS * N * ncv


def pass_seconds(Nv: int, grad_intervals: int, nll_intervals: int) -> float:
    """The forward/adjoint passes of one epoch over the given intervals."""
    return (GRAD_INTERVAL * grad_intervals + NLL_INTERVAL * nll_intervals) * (Nv / 64) ** NV_EXPONENT


def epoch_seconds(N: int, Nv: int | None, train_intervals, val_intervals=None,
                  mini_batches: int = 1, reuse_gradient: bool = True) -> float:
    """Estimated wall time of one epoch, s.

    Parameters
    ----------
    N : int
        Grid nodes.
    Nv : int or None
        Eigenpairs kept (None: N − 2).
    train_intervals, val_intervals : sequence of int, one per datasample
        Spikes plus trial ends (or trials) of the training / validation data
        (``val_intervals`` None: no validation set).
    mini_batches : int
        Mini-batches per datasample.
    reuse_gradient : bool
        One mini-batch and no parameter shared across datasamples: the
        gradient pass also gives the training NLL (``core.fitting``), so the
        training data is passed over once per epoch.
    """
    Nv = N - 2 if Nv is None else int(Nv)
    train = [int(t) for t in train_intervals]
    val = [int(v) for v in val_intervals] if val_intervals is not None else [0] * len(train)
    K = len(train)
    reuse = reuse_gradient and mini_batches == 1
    solves = K if reuse else K * (mini_batches + 1)
    nll = sum(val) + (0 if reuse else sum(train))
    return solves * solve_seconds(N, Nv) + pass_seconds(Nv, sum(train), nll)


def intervals(data) -> int:
    """Intervals of a SpikeData: its spikes plus, per trial, the trial end."""
    return int(data.n_spikes().sum()) + int(data.n_trials)
