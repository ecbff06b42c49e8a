"""Synthetic spike data from a model (MATH.md §8).

Latent paths by Euler–Maruyama,
``x ← x + D·F(x)·dt + sqrt(2·D·dt)·N(0, 1)``, with the force ``F = Dm·log peq``
linearly interpolated between grid nodes and clipped to ``|F| ≤ 0.05/(D·dt)``.
Reflecting walls mirror the step (a step still outside after the mirror is
redrawn); an absorbing wall ends the trial at the first exit. Which one is
set by the model's boundary *conditions*: Dirichlet = absorbing walls,
Neumann = reflecting. The absorption step is a choice of the likelihood
only (how a fit reads a trial end), so a Dirichlet model without it
generates the same absorbed paths as an absorbing one. ``x(0)`` is
drawn from ``p0`` by inverse CDF. Spikes come from time-rescaling a unit-rate
Poisson process by the cumulative rate ``Λ_n(t) = ∫ f_n(x(s)) ds``, with the
tabulated rates interpolated by a cubic spline through the grid nodes.

Randomness: every trial gets its own ``numpy.random.default_rng`` child of
``SeedSequence(seed)``, so a trial's path and spikes do not depend on how
many trials are simulated with it nor on how trials are spread over threads.
The Euler loop is a numba kernel (``cache=True``, ``nogil=True``); call
:func:`warm_up` once per process before timing anything.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numba import njit
from scipy.interpolate import CubicSpline

from ._parallel import parallel_map
from .limits import InvalidValue, Limit
from .spikedata import TRIAL_END, SpikeData

__all__ = ["Simulation", "simulate", "warm_up", "sample_p0", "MAX_STEPS_PER_TRIAL",
           "N_TRIALS", "DURATION", "SEED", "dt_limit"]

#: Guard against accidental huge requests (memory ≈ 8·(n_neurons + 3) bytes/step).
MAX_STEPS_PER_TRIAL = 100_000_000

# The limits of a simulation's settings (the forms and the settings layer use the same).
#: Trials to simulate.
N_TRIALS = Limit("n_trials", int, 1)
#: Trial length, s.
DURATION = Limit("duration", float, 0, lo_open=True)
#: Seed of the random streams (``SeedSequence`` takes any integer >= 0).
SEED = Limit("seed", int, 0)


def dt_limit(duration: float) -> Limit:
    """Euler steps a trial of ``duration`` seconds allows: ``0 < dt < duration``,
    and at most :data:`MAX_STEPS_PER_TRIAL` steps per trial."""
    return Limit("dt", float, float(duration) / MAX_STEPS_PER_TRIAL, float(duration),
                 hi_open=True, why=f"below the trial duration, at most {MAX_STEPS_PER_TRIAL} steps")
#: Force clip, in units of one step's drift: |D·F·dt| ≤ 0.05 (MATH.md §8).
_DRIFT_CLIP = 0.05
#: Extra normals per trial for redrawing a step that a mirror cannot bring
#: back into the domain (needs a step longer than the domain: rare).
_N_EXTRA = 256


@dataclass(frozen=True)
class Simulation:
    """Result of :func:`simulate`.

    Attributes
    ----------
    data : SpikeData
        The spikes, one trial per simulated trial.
    time : list of ndarray, each shape (T_i,)
        Times of the latent path samples of trial i, seconds from trial
        start (``k·dt``; absorbing trials stop at the exit time).
    x : list of ndarray, each shape (T_i,)
        Latent path of trial i at those times (absorbing trials end on the
        wall they crossed).
    seed : int
        Entropy of the seed sequence used (the ``seed`` argument, or the
        fresh entropy drawn when it was None): passing it again reproduces
        the simulation exactly.
    """

    data: SpikeData
    time: list
    x: list
    seed: int


class SimulationStopped(Exception):
    """``on_trial`` asked :func:`simulate` to stop before all trials were done."""


# ---------------------------------------------------------------------------
# numba kernel
# ---------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _euler_maruyama(
    x0, noise, extra, dt, D, xn, F, dF, h_inv, Np, Ne, xbegin, xend, reflecting, coef, path, lam
):  # pragma: no cover - compiled
    """One trial. Fills ``path[0..n]`` and ``lam[:, 0..n]``; returns ``n``.

    ``dF`` (N-1,) is the slope of F on each node interval.
    ``lam[m, k]`` is Λ_m at time k·dt (left-point rule: the rate at x_k
    holds over step k). ``coef`` (4, N-1, n_neurons) are the cubic-spline
    coefficients of the rates on each node interval.
    """
    n_steps = noise.shape[0]
    n_neurons = lam.shape[0]
    sd = math.sqrt(2.0 * D * dt)
    fmax = _DRIFT_CLIP / (D * dt)
    last_node = xn.shape[0] - 1
    ie = 0
    x = x0
    path[0] = x
    for m in range(n_neurons):
        lam[m, 0] = 0.0
    for k in range(n_steps):
        # O(1) element lookup, then a scan of at most Np-1 node intervals.
        e = int((x - xbegin) * h_inv)
        if e < 0:
            e = 0
        elif e >= Ne:
            e = Ne - 1
        j = e * (Np - 1)
        jend = j + Np - 2
        while j < jend and x > xn[j + 1]:
            j += 1
        if j >= last_node:
            j = last_node - 1
        dx = x - xn[j]
        f = F[j] + dF[j] * dx  # linear interpolation, slope precomputed
        if f > fmax:
            f = fmax
        elif f < -fmax:
            f = -fmax
        for m in range(n_neurons):
            r = ((coef[0, j, m] * dx + coef[1, j, m]) * dx + coef[2, j, m]) * dx + coef[3, j, m]
            if r < 0.0:  # a spline undershoot must not make a negative rate
                r = 0.0
            lam[m, k + 1] = lam[m, k] + r * dt
        drift = x + D * f * dt
        y = drift + sd * noise[k]
        if reflecting:
            while y < xbegin or y > xend:
                if y < xbegin:
                    y = 2.0 * xbegin - y
                else:
                    y = 2.0 * xend - y
                if y >= xbegin and y <= xend:
                    break
                if ie < extra.shape[0]:
                    y = drift + sd * extra[ie]
                    ie += 1
                else:  # pool exhausted: astronomically unlikely; stay inside
                    y = min(max(y, xbegin), xend)
        elif y < xbegin or y > xend:
            path[k + 1] = xbegin if y < xbegin else xend
            return k + 1
        path[k + 1] = y
        x = y
    return n_steps


def warm_up() -> None:
    """Compile (or load from the numba cache) the simulation kernel.

    Runs the kernel on a tiny problem once; later calls are free. Call it
    once per process before anything is timed or shown to a user.
    """
    xn = np.linspace(-1.0, 1.0, 5)
    coef = np.zeros((4, 4, 1))
    coef[3] = 1.0
    for reflecting in (True, False):
        _euler_maruyama(
            0.0, np.zeros(3), np.zeros(1), 1e-3, 1.0, xn, np.zeros(5), np.zeros(4), 1.0, 3, 2,
            -1.0, 1.0, reflecting, coef, np.empty(4), np.empty((1, 4)),
        )


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


def _validate_int(name: str, value: Any, minimum: int) -> int:
    return Limit(name, int, minimum).check(value)


def _validate_seconds(value: Any, limit: Limit) -> float:
    name = limit.name
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number of seconds > 0, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number of seconds > 0, got {value!r}") from None
    if not limit.allows(v):
        raise InvalidValue(name, f"{name} must be finite and > 0 seconds, got {value!r}")
    return v


def _validate_seed(seed: Any) -> np.random.SeedSequence:
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not SEED.allows(seed):
        raise InvalidValue("seed", f"seed must be None or an integer >= 0, got {seed!r}")
    return np.random.SeedSequence(int(seed))


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def sample_p0(x: np.ndarray, p0: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF samples of a density tabulated on nodes.

    Parameters
    ----------
    x : ndarray, shape (N,)
        Increasing nodes.
    p0 : ndarray, shape (N,)
        Non-negative density at the nodes (any normalisation).
    u : ndarray, shape (m,)
        Uniform numbers in [0, 1).

    Returns
    -------
    samples : ndarray, shape (m,)
        Positions in ``[x[0], x[-1]]``; the CDF is the trapezoid rule on the
        nodes (monotone for any p0 >= 0), inverted linearly.
    """
    p0 = np.asarray(p0, dtype=np.float64)
    cdf = np.concatenate(([0.0], np.cumsum(0.5 * (p0[1:] + p0[:-1]) * np.diff(x))))
    if not np.isfinite(cdf[-1]) or cdf[-1] <= 0:
        raise ValueError("p0 cannot be sampled: its integral is not positive and finite")
    return np.interp(np.asarray(u) * cdf[-1], cdf, x)


def _spike_times(lam: np.ndarray, n_used: int, dt: float, rng: np.random.Generator) -> np.ndarray:
    """Time rescaling: unit-rate Poisson events S_i mapped through Λ⁻¹.

    Λ is piecewise linear in time (constant rate over a step), so inverting
    it by linear interpolation within the step is exact for that path.
    """
    lam = lam[: n_used + 1]
    total = lam[-1]
    if total <= 0:
        return np.zeros(0)
    # draw enough unit exponentials in one go (Poisson tail + margin), top up if short
    n_draw = int(total + 6.0 * math.sqrt(total) + 16)
    S = np.cumsum(rng.standard_exponential(n_draw))
    while S[-1] < total:
        more = np.cumsum(rng.standard_exponential(n_draw)) + S[-1]
        S = np.concatenate((S, more))
    S = S[: np.searchsorted(S, total, side="left")]
    idx = np.searchsorted(lam, S, side="right")  # lam[idx-1] <= S < lam[idx]
    idx = np.clip(idx, 1, n_used)
    lo = lam[idx - 1]
    step = lam[idx] - lo
    frac = np.divide(S - lo, step, out=np.zeros_like(S), where=step > 0)
    return ((idx - 1) + np.clip(frac, 0.0, 1.0)) * dt


def _trial(
    child: np.random.SeedSequence,
    n_steps: int,
    dt: float,
    D: float,
    grid: Any,
    grid_x: np.ndarray,
    F: np.ndarray,
    dF: np.ndarray,
    p0: np.ndarray,
    coef: np.ndarray,
    reflecting: bool,
    with_trial_end: bool,
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(child)
    x = grid_x
    x0 = float(sample_p0(x, p0, rng.random(1))[0])
    noise = rng.standard_normal(n_steps)
    extra = rng.standard_normal(_N_EXTRA)
    n_neurons = coef.shape[2]
    path = np.empty(n_steps + 1)
    lam = np.empty((n_neurons, n_steps + 1))
    h_inv = grid.Ne / (grid.xend - grid.xbegin)
    n_used = _euler_maruyama(
        x0, noise, extra, dt, D, x, F, dF, h_inv, int(grid.Np), int(grid.Ne),
        float(grid.xbegin), float(grid.xend), reflecting, coef, path, lam,
    )
    del noise
    T = n_used * dt
    times, ids = [], []
    for m in range(n_neurons):
        t = _spike_times(lam[m], n_used, dt, rng)
        times.append(t)
        ids.append(np.full(t.size, m, dtype=np.int64))
    t_all = np.concatenate(times)
    id_all = np.concatenate(ids)
    order = np.argsort(t_all, kind="stable")
    t_all, id_all = t_all[order], id_all[order]
    isi = np.diff(t_all, prepend=0.0)
    if with_trial_end:
        isi = np.append(isi, T - (t_all[-1] if t_all.size else 0.0))
        id_all = np.append(id_all, TRIAL_END)
    # Copies so that an early absorbing exit does not pin the full buffer.
    x_path = path[: n_used + 1].copy() if n_used < n_steps else path
    time = np.arange(n_used + 1) * dt
    return (isi, id_all), time, x_path


# ---------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------


def simulate(
    model: Any,
    n_trials: int,
    duration: float,
    dt: float = 1e-4,
    seed: int | None = None,
    with_trial_end: bool = True,
    datasample: int = 0,
    on_trial: Callable[[int, int], bool | None] | None = None,
    max_steps: int | None = None,
) -> Simulation:
    """Simulate latent paths and spikes of a model (MATH.md §8).

    Parameters
    ----------
    model : flowdash.core.model.Model
        Uses ``grid``, ``boundary_conditions`` (Dirichlet: the path is killed
        at the first exit, with or without the model's absorption step;
        Neumann: reflected), ``peq_of(k)`` (N,), ``p0_of(k)``
        (N,), ``D_of(k)`` (x²/s), ``fr_of(k)`` (N, n_neurons) Hz.
    n_trials : int
        Number of trials, >= 1.
    duration : float
        Trial length in seconds, > 0 (absorbing trials may end earlier, at
        the exit time).
    dt : float
        Euler step in seconds, ``0 < dt < duration``. If ``duration / dt`` is
        not a whole number the step is shortened slightly so that it is.
    seed : int or None
        Seed of the random streams (None: fresh entropy).
    with_trial_end : bool
        Record the trial end (id -1). Without it each trial's data ends at
        its last spike; a trial without any spike then raises ValueError.
    datasample : int
        Which datasample's parameters to use.
    on_trial : callable, optional
        Called as ``on_trial(done, n_trials)`` after each finished trial
        (from whichever thread ran the trial); if it returns True the simulation stops and
        raises :class:`SimulationStopped`. Trial i always uses child i of
        ``SeedSequence(seed)``, so progress reporting changes nothing.
    max_steps : int, optional
        Most time steps the finished trials may hold in all, counted as they
        end (a trial absorbed at a wall holds its steps up to the exit): a
        cap on the memory of the latent paths that does not assume every
        trial lasts ``duration``. Exceeding it stops the simulation.

    Returns
    -------
    Simulation
        ``data`` (SpikeData), ``time`` and ``x``: per-trial latent paths,
        each shape (T_i,).

    Raises
    ------
    TypeError, ValueError
        Invalid arguments, named with the allowed values.
    InvalidValue
        (field ``max_steps``) when the trials take more than ``max_steps``.
    """
    n_trials = N_TRIALS.check(n_trials)
    duration = _validate_seconds(duration, DURATION)
    dt = _validate_seconds(dt, Limit("dt", float, 0, lo_open=True))
    if dt >= duration:  # the rest of dt_limit(duration) is checked below
        raise InvalidValue("dt", f"dt must be smaller than duration ({duration} s), got {dt}")
    if not isinstance(with_trial_end, (bool, np.bool_)):
        raise TypeError(f"with_trial_end must be True or False, got {with_trial_end!r}")
    seq = _validate_seed(seed)
    if max_steps is not None:
        max_steps = _validate_int("max_steps", max_steps, 1)
    for attr in ("grid", "boundary_conditions", "peq_of", "p0_of", "D_of", "fr_of"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be a flowdash Model (missing {attr!r}), got {type(model).__name__}")
    n_ds = getattr(model, "n_datasamples", 1)
    datasample = _validate_int("datasample", datasample, 0)
    if datasample >= n_ds:
        raise ValueError(f"datasample must be in 0..{n_ds - 1}, got {datasample}")
    if model.boundary_conditions not in ("dirichlet", "neumann"):
        raise ValueError(
            f"model.boundary_conditions must be 'dirichlet' or 'neumann', got {model.boundary_conditions!r}")
    n_steps = int(math.ceil(duration / dt - 1e-9))
    if not dt_limit(duration).allows(dt):
        raise InvalidValue(
            "dt",
            f"duration/dt = {n_steps} steps per trial exceeds {MAX_STEPS_PER_TRIAL}; use a larger dt "
            f"or a shorter duration"
        )
    dt = duration / n_steps

    grid = model.grid
    peq = np.asarray(model.peq_of(datasample), dtype=np.float64)
    p0 = np.asarray(model.p0_of(datasample), dtype=np.float64)
    D = float(model.D_of(datasample))
    fr = np.asarray(model.fr_of(datasample), dtype=np.float64)
    if fr.ndim == 1:
        fr = fr[:, None]
    # a writable copy: numba compiles a separate kernel for read-only arrays
    x = np.array(grid.x, dtype=np.float64)
    # F = Dm·log peq (MATH.md §3); grid.derivative applies the averaged Dm.
    F = np.ascontiguousarray(grid.derivative(np.log(peq)), dtype=np.float64)
    coef = np.ascontiguousarray(CubicSpline(x, fr, axis=0).c)

    children = seq.spawn(n_trials)
    reflecting = model.boundary_conditions == "neumann"
    dF = np.diff(F) / np.diff(x)
    args = (n_steps, dt, D, grid, x, F, dF, p0, coef, reflecting, bool(with_trial_end))
    stop, lock, done, held = threading.Event(), threading.Lock(), [0], [0]

    def run(child):
        if stop.is_set():
            return None
        result = _trial(child, *args)
        with lock:
            done[0] += 1
            held[0] += len(result[2])
            if max_steps is not None and held[0] > max_steps:
                stop.set()
            elif on_trial is not None and on_trial(done[0], n_trials):
                stop.set()
        return result

    # The kernel releases the GIL and so do numpy's bulk draws, so trials
    # run on both cores; each has its own stream, so the result does not
    # depend on how they are spread.
    results = parallel_map(run, children)
    if max_steps is not None and held[0] > max_steps:
        raise InvalidValue(
            "max_steps",
            f"the first {done[0]} of {n_trials} trials took {held[0]} time steps, more than the "
            f"{max_steps} allowed in all (most trials last long: they do not reach a wall early); "
            "use fewer trials, a shorter duration or a larger dt")
    if stop.is_set():
        raise SimulationStopped(f"stopped after {done[0]} of {n_trials} trials")

    if not with_trial_end:
        for i, ((isi, _), _, _) in enumerate(results):
            if isi.size == 0:
                raise ValueError(
                    f"trial {i} has no spikes; without trial end every trial needs a spike. "
                    f"Use with_trial_end=True, a longer duration or higher rates"
                )
    data = SpikeData([r[0] for r in results], n_neurons=fr.shape[1], with_trial_end=bool(with_trial_end))
    return Simulation(data=data, time=[r[1] for r in results], x=[r[2] for r in results], seed=int(seq.entropy))
