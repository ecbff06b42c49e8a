"""Synthetic data (MATH.md §8): reproducibility, statistics, boundaries, input checks."""

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from flowdash.core.grid import Grid
from flowdash.core.library import p0_from_library, peq_from_library, rate_from_library
from flowdash.core.model import Model
from flowdash.core.simulation import SimulationStopped, sample_p0, simulate, warm_up

DW = {"xmin": 0.6, "xmax": 0.0, "depth": 2.0}


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    warm_up()


@pytest.fixture(scope="module")
def grid():
    return Grid(Np=8, Ne=16)


def _model(grid, mode="reflecting", D=10.0, rates=(("linear", {"slope": 20, "bias": 30}),), p0=None):
    peq = peq_from_library(grid, "double_well", **DW)
    fr = np.stack([rate_from_library(grid.x, n, **p) for n, p in rates], axis=1)
    return Model(grid=grid, peq=peq, p0=p0, D=np.array([D]), fr=fr, boundary_mode=mode)


def _bin_probabilities(edges):
    """Exact-enough bin masses of the double-well peq (fine grid, trapezoid CDF)."""
    gf = Grid(Np=8, Ne=200)
    pf = p0_from_library(gf, "double_well", **DW)
    cdf = np.concatenate(([0.0], np.cumsum(0.5 * (pf[1:] + pf[:-1]) * np.diff(gf.x))))
    return np.diff(np.interp(edges, gf.x, cdf / cdf[-1]))


def test_seed_reproducibility(grid):
    m = _model(grid, rates=(("linear", {"slope": 20, "bias": 30}), ("sinus", {})))
    a = simulate(m, 3, 0.5, seed=11)
    b = simulate(m, 3, 0.5, seed=11)
    c = simulate(m, 3, 0.5, seed=12)
    assert a.data == b.data
    for xa, xb, ta, tb in zip(a.x, b.x, a.time, b.time):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta, tb)
    assert a.data != c.data
    assert a.data.n_neurons == 2 and a.data.n_trials == 3
    # a trial's randomness does not depend on how many trials are simulated
    one = simulate(m, 1, 0.5, seed=11)
    np.testing.assert_array_equal(one.x[0], a.x[0])


def test_path_shapes_and_times(grid):
    s = simulate(_model(grid), 2, 0.3, dt=1e-3, seed=0)
    for t, x in zip(s.time, s.x):
        assert t.shape == x.shape == (301,)
        np.testing.assert_allclose(t, np.arange(301) * 1e-3)
        assert np.all((x >= -1) & (x <= 1))
    np.testing.assert_allclose(s.data.durations(), 0.3)


def test_reflecting_histogram_approaches_peq(grid):
    s = simulate(_model(grid), 4, 25.0, seed=3)  # 1e6 Euler steps
    x = np.concatenate(s.x)
    assert x.min() >= -1 and x.max() <= 1
    edges = np.linspace(-1, 1, 21)
    p = _bin_probabilities(edges)
    h = np.histogram(x, edges)[0] / x.size
    tv = 0.5 * np.abs(h - p).sum()
    assert tv < 0.05
    # the bound has power: a uniform path would be far off
    assert 0.5 * np.abs(np.full(20, 0.05) - p).sum() > 0.2


def test_sample_p0_inverse_cdf(grid):
    p0 = p0_from_library(grid, "single_well", xmin=0.3, miu=20.0)
    u = np.random.default_rng(0).random(20000)
    xs = sample_p0(grid.x, p0, u)
    edges = np.linspace(-1, 1, 11)
    cdf = np.concatenate(([0.0], np.cumsum(0.5 * (p0[1:] + p0[:-1]) * np.diff(grid.x))))
    p = np.diff(np.interp(edges, grid.x, cdf / cdf[-1]))
    h = np.histogram(xs, edges)[0] / xs.size
    assert 0.5 * np.abs(h - p).sum() < 0.02


def test_initial_state_from_p0(grid):
    # a narrow p0 far from the peq minimum: every path starts near 0.5
    p0 = p0_from_library(grid, "single_well", xmin=0.5, miu=2000.0)
    s = simulate(_model(grid, p0=np.maximum(p0, 1e-300)), 20, 0.01, dt=1e-3, seed=1)
    x0 = np.array([x[0] for x in s.x])
    assert np.all(np.abs(x0 - 0.5) < 0.15)


def test_spike_counts_match_integrated_rate(grid):
    m = _model(grid, rates=(("linear", {"slope": 60, "bias": 70}), ("peaks", {})))
    s = simulate(m, 4, 5.0, seed=5)
    spline = CubicSpline(grid.x, m.fr_of(0), axis=0)
    dt = s.time[0][1] - s.time[0][0]
    # expected count: ∫ f(x(t)) dt along the returned paths (left-point rule)
    expected = sum(np.clip(spline(x[:-1]), 0, None).sum(axis=0) * dt for x in s.x)
    counts = s.data.n_spikes()
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))


def test_constant_rate_is_poisson(grid):
    m = _model(grid, rates=(("linear", {"slope": 0.0, "bias": 200.0}),))
    s = simulate(m, 2, 10.0, dt=1e-3, seed=2)
    n = s.data.n_spikes()[0]
    assert abs(n - 4000) < 4 * np.sqrt(4000)
    isi = np.concatenate([t[0][:-1] for t in s.data.trials])
    assert isi.mean() == pytest.approx(1 / 200, rel=0.05)
    assert isi.std() == pytest.approx(1 / 200, rel=0.08)  # exponential: std = mean


def test_absorbing_trials_end_at_boundary(grid):
    m = _model(grid, mode="absorbing", D=1.0)
    s = simulate(m, 8, 20.0, seed=4)
    dur = s.data.durations()
    assert np.all(dur < 20.0)  # with D = 1 every trial exits well before 20 s
    for x, t, d, (isi, ids) in zip(s.x, s.time, dur, s.data.trials):
        assert x[-1] in (-1.0, 1.0)
        assert np.all((x[:-1] > -1) & (x[:-1] < 1))
        assert t[-1] == pytest.approx(d, abs=1e-12)
        assert ids[-1] == -1


def test_dirichlet_without_absorption_step_generates_absorbed_paths(grid):
    # The absorption step is a likelihood choice; the process is set by the boundary conditions.
    absorbing = _model(grid, mode="absorbing", D=1.0)
    ablation = absorbing.replace(absorption_step=False)
    a, b = simulate(absorbing, 3, 20.0, seed=4), simulate(ablation, 3, 20.0, seed=4)
    for xa, xb in zip(a.x, b.x):
        np.testing.assert_array_equal(xa, xb)
    assert all(x[-1] in (-1.0, 1.0) for x in b.x)


def test_without_trial_end_ends_at_last_spike(grid):
    s = simulate(_model(grid), 3, 1.0, seed=6, with_trial_end=False)
    assert not s.data.with_trial_end
    times, _, ends = s.data.to_spike_times()
    for tr, e in zip(times, ends):
        assert max(t.max() for t in tr if t.size) == pytest.approx(e)
    assert np.all(s.data.durations() <= 1.0)


def test_strong_force_is_clipped_and_stays_finite(grid):
    # a very steep peq: the clipped drift keeps the Euler step bounded
    peq = peq_from_library(grid, "linear_pot", slope=500.0)
    m = Model(grid=grid, peq=peq, p0=None, D=np.array([50.0]), fr=np.full((grid.N, 1), 5.0),
              boundary_mode="reflecting")
    s = simulate(m, 1, 0.2, dt=1e-3, seed=0)
    x = s.x[0]
    assert np.all(np.isfinite(x)) and np.all(np.abs(np.diff(x)) < 0.05 + 10 * np.sqrt(2 * 50 * 1e-3))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"n_trials": 0}, ValueError, "n_trials"),
        ({"n_trials": 1.5}, TypeError, "n_trials"),
        ({"n_trials": True}, TypeError, "n_trials"),
        ({"duration": 0.0}, ValueError, "duration"),
        ({"duration": -1.0}, ValueError, "duration"),
        ({"duration": float("nan")}, ValueError, "duration"),
        ({"duration": "long"}, TypeError, "duration"),
        ({"dt": 0.0}, ValueError, "dt"),
        ({"dt": 2.0}, ValueError, "dt must be smaller than duration"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, ValueError, "seed"),
        ({"with_trial_end": "yes"}, TypeError, "with_trial_end"),
        ({"datasample": 1}, ValueError, "datasample"),
        ({"duration": 1e5, "dt": 1e-6}, ValueError, "steps per trial"),
    ],
)
def test_bad_inputs(grid, kwargs, exc, match):
    args = {"n_trials": 1, "duration": 1.0, "dt": 1e-3, "seed": 0}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        simulate(_model(grid), **args)


def test_bad_model():
    with pytest.raises(TypeError, match="model"):
        simulate(object(), 1, 1.0)


def test_progress_hook_reports_every_trial_and_can_stop(grid):
    m = _model(grid)
    seen = []
    full = simulate(m, 4, 0.3, seed=5, on_trial=lambda done, total: seen.append((done, total)))
    assert sorted(seen) == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert full.data == simulate(m, 4, 0.3, seed=5).data  # reporting changes nothing
    with pytest.raises(SimulationStopped, match="stopped after [12] of 4 trials"):  # two run at once
        simulate(m, 4, 0.3, seed=5, on_trial=lambda done, total: True)


def test_fresh_seed_is_recorded_and_reproduces(grid):
    m = _model(grid)
    first = simulate(m, 2, 0.3)
    again = simulate(m, 2, 0.3, seed=first.seed)
    assert again.data == first.data and again.seed == first.seed
