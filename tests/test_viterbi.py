"""Viterbi decoding against brute force: every path of a tiny problem, and a plain O(S·N²) max-plus."""

import itertools

import numpy as np
import pytest

from flowdash.core.grid import Grid
from flowdash.core.likelihood import Operators
from flowdash.core.model import Model
from flowdash.core.simulation import simulate
from flowdash.core.spikedata import SpikeData
from flowdash.core.viterbi import excluded_nodes, viterbi


def _model(grid, mode, equilibrium=False, D=0.8):
    spec = {"peq_model": {"model": "double_well", "params": {"xmin": 0.5, "depth": 2}},
            "p0_model": None if equilibrium else {"model": "single_well", "params": {"xmin": -0.2, "miu": 20}},
            "D": D,
            "fr_model": [{"model": "linear", "params": {"slope": 40, "bias": 50}},
                         {"model": "peaks", "params": {"center": [0.4], "width": [0.3], "amp": [60]}}]}
    return Model.from_spec(spec, grid, mode)


def _log_kernel(ops, dt):
    """log max(T(x'←x), 1e-10) with every eigenpair: [x', x]."""
    sp = np.sqrt(ops.peq)
    T = (sp[:, None] * ops.Qxd * np.exp(-ops.lQd * dt)) @ (ops.Qxd / sp[:, None]).T
    return np.log(np.maximum(T, 1e-10))


def _brute(ops, isi, ids, mode):
    """The spec's decoder as a plain max-plus recursion over N × N matrices."""
    N = len(ops.peq)
    out = excluded_nodes(N, mode)
    with np.errstate(divide="ignore"):
        logf = np.log(ops.fr).T
        a = np.where(out, -np.inf, np.log(ops.p0))
    ptr = []
    for dt, n in zip(isi, ids):
        W = a[None, :] + _log_kernel(ops, dt)
        ptr.append(W.argmax(axis=1))
        a = np.where(out, -np.inf, W.max(axis=1) + (logf[n] if n >= 0 else 0))
    kept = np.flatnonzero(~out)
    if mode == "absorbing":
        end = kept[0] if a[kept[0]] >= a[kept[-1]] else kept[-1]
        path = [0 if end == kept[0] else N - 1]
    else:
        end = kept[np.argmax(a[kept])]
        path = [end]
    x = end
    for p in reversed(ptr):
        x = p[x]
        path.append(x)
    return np.array(path[::-1]), a[end]


def test_every_path_of_a_tiny_problem():
    grid = Grid(3, 2)  # N = 5; reflecting keeps every node (margin N // 30 = 0)
    model = _model(grid, "reflecting")
    ops = Operators.build(model)
    isi, ids = np.array([0.02, 0.1, 0.05, 0.3]), np.array([0, 1, 1, 0])
    with np.errstate(divide="ignore"):
        logf, logp0 = np.log(ops.fr).T, np.log(ops.p0)
    kernels = [_log_kernel(ops, dt) for dt in isi]
    best, best_path = -np.inf, None
    for path in itertools.product(range(grid.N), repeat=len(isi) + 1):
        score = logp0[path[0]] + sum(kernels[s][path[s + 1], path[s]] + logf[ids[s], path[s + 1]]
                                     for s in range(len(isi)))
        if score > best:
            best, best_path = score, path
    decoded = viterbi(model, SpikeData([(isi, ids)], 2, with_trial_end=False))[0]
    np.testing.assert_array_equal(decoded.state_inds, best_path)
    assert decoded.log_score == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("mode, with_trial_end, equilibrium, Nv", [
    ("absorbing", True, False, None), ("absorbing", False, True, 20),
    ("reflecting", True, True, None), ("reflecting", False, False, 12),
])
def test_small_grid_equals_brute_force(mode, with_trial_end, equilibrium, Nv):
    grid = Grid(6, 10)
    model = _model(grid, mode, equilibrium)
    data = simulate(model, 4, 1.0, seed=3, with_trial_end=with_trial_end).data
    ops = Operators.build(model, Nv=Nv)
    paths = viterbi(model, data, Nv=Nv)
    assert [p.trial for p in paths] == [0, 1, 2, 3]
    for p, (isi, ids) in zip(paths, data.trials):
        expected, score = _brute(ops, isi, ids, mode)
        np.testing.assert_array_equal(p.state_inds, expected)
        assert p.log_score == pytest.approx(score, rel=1e-10, abs=1e-9)
        np.testing.assert_array_equal(p.x, grid.x[p.state_inds])
        np.testing.assert_allclose(p.t, np.concatenate(([0.0], np.cumsum(isi))))
        inner = p.state_inds[:-1] if mode == "absorbing" else p.state_inds
        assert not excluded_nodes(grid.N, mode)[inner].any()
        if mode == "absorbing":
            assert p.state_inds[-1] in (0, grid.N - 1)


@pytest.mark.parametrize("mode, D", [("reflecting", 10.0), ("absorbing", 0.5)])
def test_large_grid_tiles_and_both_cores_equal_brute_force(mode, D):
    # N >= 600 takes the parallel tile decoder; broad (D = 10) and narrow kernels
    grid = Grid(8, 90)
    model = _model(grid, mode, D=D)
    data = simulate(model, 1, 0.25, seed=11, with_trial_end=True).data
    ops = Operators.build(model, Nv=48)
    path = viterbi(model, data, Nv=48, operators=ops)[0]
    expected, _ = _brute(ops, *data.trials[0], mode)
    np.testing.assert_array_equal(path.state_inds, expected)


def test_chosen_trials_in_the_given_order():
    grid = Grid(6, 8)
    model = _model(grid, "absorbing")
    data = simulate(model, 3, 0.5, seed=2, with_trial_end=True).data
    paths = viterbi(model, data, trials=[2, 0])
    assert [p.trial for p in paths] == [2, 0]
    np.testing.assert_array_equal(paths[1].state_inds, viterbi(model, data, trials=0)[0].state_inds)


def test_bad_input():
    grid = Grid(6, 8)
    model = _model(grid, "absorbing")
    one_neuron = SpikeData([(np.array([0.1, 0.2]), np.array([0, -1]))], 1, with_trial_end=True)
    with pytest.raises(ValueError, match="the data has 1 neuron\\(s\\) but the model has 2"):
        viterbi(model, one_neuron)
    data = SpikeData([(np.array([0.1, 0.2]), np.array([1, -1]))], 2, with_trial_end=True)
    with pytest.raises(ValueError, match=r"trials must be trial indices in \[0, 0\], got 3"):
        viterbi(model, data, trials=[3])
    with pytest.raises(TypeError, match="Model"):
        viterbi("model", data)
    with pytest.raises(TypeError, match="SpikeData"):
        viterbi(model, [(np.array([0.1]), np.array([0]))])
    with pytest.raises(ValueError, match="Nv"):
        viterbi(model, data, Nv=10_000)
    other = Operators.build(_model(Grid(6, 9), "absorbing"))
    with pytest.raises(ValueError, match="operators must be built from this model"):
        viterbi(model, data, operators=other)
    with pytest.raises(ValueError, match="datasample"):
        viterbi(model, data, datasample=1)


def test_excluded_nodes():
    assert excluded_nodes(113, "absorbing").sum() == 2
    mask = excluded_nodes(1793, "reflecting")
    assert mask.sum() == 2 * (1793 // 30) and mask[59 - 1] and not mask[59]
