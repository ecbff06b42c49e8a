"""Viterbi decoding against brute force: every path of a tiny problem, and a plain O(S·N²) max-plus."""

import itertools

import numpy as np
import pytest

from flowdash.core.grid import Grid
from flowdash.core.likelihood import Operators
from flowdash.core.model import Model
from flowdash.core.selection import spectrum_mode
from flowdash.core.simulation import simulate
from flowdash.core.spikedata import SpikeData
from flowdash.core import viterbi as vit
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


def _assert_brute(model, data, Nv=None):
    ops = Operators.build(model, Nv=Nv)
    paths = viterbi(model, data, Nv=Nv, operators=ops)
    for p, (isi, ids) in zip(paths, data.trials):
        expected, score = _brute(ops, isi, ids, spectrum_mode(model.boundary_conditions))
        np.testing.assert_array_equal(p.state_inds, expected)
        assert p.log_score == pytest.approx(score, rel=1e-10, abs=1e-9)


# Interval lengths from 0 to 10 s: the kernel goes from the identity (every component
# kept) to rank one (only the slowest left), each pruned by its own bounds.
_MIXED_ISI = np.array([0.0, 1e-6, 3e-4, 2e-3, 0.02, 0.3, 10.0, 1e-5, 0.05, 0.0, 4e-3, 1.0])
_MIXED_IDS = np.array([0, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0])


def _flat(grid, mode):
    """Uniform peq and p0, equal constant rates: a stays nearly flat, rows full of near-ties."""
    spec = {"peq_model": {"model": "uniform", "params": {}}, "p0_model": {"model": "uniform", "params": {}},
            "D": 0.5, "fr_model": [{"model": "linear", "params": {"slope": 0, "bias": 20}}] * 2}
    return Model.from_spec(spec, grid, mode)


def _peaked_start(grid, mode):
    """p0 narrower than the kernel: far rows only reach the clip, decided by the tie rule."""
    spec = {"peq_model": {"model": "linear_pot", "params": {"slope": -0.65}},
            "p0_model": {"model": "single_well", "params": {"xmin": 0.1, "miu": 5000}}, "D": 0.3,
            "fr_model": [{"model": "linear", "params": {"slope": 50, "bias": 60}},
                         {"model": "linear", "params": {"slope": -50, "bias": 60}}]}
    return Model.from_spec(spec, grid, mode)


@pytest.mark.parametrize("grid", [Grid(6, 10), Grid(8, 90)], ids=["tables", "tiles"])
@pytest.mark.parametrize("mode, with_trial_end", [("reflecting", False), ("absorbing", True)])
def test_interval_lengths_from_zero_to_rank_one(grid, mode, with_trial_end):
    isi, ids = _MIXED_ISI.copy(), _MIXED_IDS.copy()
    if with_trial_end:
        ids[-1] = -1
    order = np.r_[np.arange(len(isi) - 2, -1, -1), len(isi) - 1]  # the spikes backwards, the end kept last
    data = SpikeData([(isi, ids), (isi[order], ids[order])], 2, with_trial_end=with_trial_end)
    _assert_brute(_model(grid, mode), data, Nv=None if grid.N < 100 else 40)


@pytest.mark.parametrize("grid", [Grid(6, 10), Grid(8, 90)], ids=["tables", "tiles"])
@pytest.mark.parametrize("make", [_flat, _peaked_start], ids=["flat", "peaked_start"])
def test_flat_scores_and_clipped_rows(grid, make):
    model = make(grid, "reflecting" if make is _flat else "absorbing")
    data = simulate(model, 2, 0.15, seed=5, with_trial_end=make is not _flat).data
    isi, ids = data.trials[0]
    short = SpikeData([(np.full(6, 2e-4), np.array([0, 1, 0, 1, 0, 1]))], 2, with_trial_end=False)
    _assert_brute(model, data, Nv=None if grid.N < 100 else 48)
    _assert_brute(model, short, Nv=None if grid.N < 100 else 48)


@pytest.mark.parametrize("mode, D", [("reflecting", 10.0), ("absorbing", 0.5)])
def test_large_grid_tiles_and_both_cores_equal_brute_force(mode, D):
    # N > 300 takes the parallel tile decoder; broad (D = 10) and narrow kernels
    grid = Grid(8, 90)
    model = _model(grid, mode, D=D)
    data = simulate(model, 1, 0.25, seed=11, with_trial_end=True).data
    _assert_brute(model, data, Nv=48)


def test_two_wells_far_apart_on_a_fine_grid():
    # two rate bumps in two wells: rows with a second, distant near-maximum (the span
    # around the first must not hide it)
    grid = Grid(8, 90)
    spec = {"peq_model": {"model": "double_well", "params": {"xmin": 0.6, "xmax": 0.0, "depth": 2}},
            "p0_model": None, "D": 10,
            "fr_model": [{"model": "peaks", "params": {"center": [-0.6, 0.6], "width": [0.2, 0.2], "amp": [80, 80]}},
                         {"model": "rectified_linear", "params": {"slope": 100, "x_thresh": -1}}]}
    model = Model.from_spec(spec, grid, "reflecting")
    data = simulate(model, 1, 0.3, seed=4, with_trial_end=False).data
    _assert_brute(model, data, Nv=64)


@pytest.mark.parametrize("grid, Nv", [(Grid(6, 10), None), (Grid(8, 90), 48)])
def test_dirichlet_walls_without_absorption_step_decode_as_absorbing(grid, Nv):
    # the 2021 ablation: the walls absorb, so the walls are excluded and the path ends on one,
    # on both decoders (tables, and tiles for N > 300)
    model = _model(grid, "reflecting").replace(boundary_conditions="dirichlet")
    assert model.boundary_mode == "reflecting" and not model.absorption_step
    data = simulate(model, 2, 0.5, seed=5, with_trial_end=True).data
    _assert_brute(model, data, Nv=Nv)
    for p in viterbi(model, data, Nv=Nv):
        assert p.state_inds[-1] in (0, grid.N - 1)
        assert not excluded_nodes(grid.N, "absorbing")[p.state_inds[:-1]].any()


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
    no_step = Operators.build(model.replace(absorption_step=False))
    with pytest.raises(ValueError, match="operators must be built from this model"):
        viterbi(model, data, operators=no_step)
    neumann = Operators.build(model.replace(boundary_mode="reflecting"))
    with pytest.raises(ValueError, match="operators must be built from this model"):
        viterbi(model.replace(boundary_mode="reflecting", boundary_conditions="dirichlet"), data,
                operators=neumann)
    with pytest.raises(ValueError, match="datasample"):
        viterbi(model, data, datasample=1)


def test_excluded_nodes():
    assert excluded_nodes(113, "absorbing").sum() == 2
    mask = excluded_nodes(1793, "reflecting")
    assert mask.sum() == 2 * (1793 // 30) and mask[59 - 1] and not mask[59]


def _scores(grid, rng):
    """An arbitrary a: a smooth hump, noise, and the excluded nodes at -inf."""
    x = grid.x
    return -8 * (x - 0.3) ** 2 + 0.3 * rng.standard_normal(len(x))


_LENGTHS = [0.0, 1e-6, 1e-4, 3e-3, 0.05, 2.0]


def test_table_bounds_hold_for_every_pair():
    # each interval's bound, as the decoder forms it in float32, against every exact entry
    grid = Grid(6, 10)
    ops = Operators.build(_model(grid, "reflecting"))
    N, Nv = ops.Qxd.shape
    lo, hi = 1, N - 1
    sp = np.sqrt(ops.peq)
    Qxd, lQd = ops.Qxd, ops.lQd
    K, F, tix = vit._kernel_tables(Qxd, lQd, np.array(_LENGTHS))
    rng = np.random.default_rng(1)
    for s in range(len(_LENGTHS)):
        a = _scores(grid, rng)
        e = np.empty(Nv)
        m, amax, _ = vit._start(a, lQd, _LENGTHS[s], lo, hi, e)
        c, G = np.empty(4), np.zeros(N)
        vit._fit_tables(F, tix, s, e, m, Qxd * Qxd, lo, hi, c, G)
        W = np.exp(a - amax) / sp
        exact = (sp[:, None] * Qxd[:, :m] * e[:m]) @ (W[:, None] * Qxd[:, :m]).T
        f32 = np.float32
        table = sum(f32(c[q]) * K[tix[s, q], :, :N] for q in range(4))
        bound = table * W.astype(f32)[None, :] + G.astype(f32)[:, None] * (G * W).astype(f32)[None, :]
        threshold = (exact / sp[:, None] * (1 - 1e-5)).astype(f32)
        # entries below the clip never compete (a row's best is at least the clip)
        matter = exact[lo:hi, lo:hi] >= vit.KERNEL_FLOOR
        assert np.all((bound[lo:hi, lo:hi] >= threshold[lo:hi, lo:hi])[matter]), _LENGTHS[s]


def test_tile_bounds_hold_for_every_row_and_tile():
    grid = Grid(8, 90)
    ops = Operators.build(_model(grid, "reflecting", D=3.0), Nv=48)
    N, Nv = ops.Qxd.shape
    lo, hi = 21, N - 21
    sp = np.sqrt(ops.peq)
    Qxd, lQd = np.ascontiguousarray(ops.Qxd), ops.lQd
    L = np.ascontiguousarray(sp[:, None] * Qxd)
    G_T, CL, DL = vit._row_tables(L, lo, hi)
    nA, nF = CL.shape[0], (hi - lo + vit._COLS - 1) // vit._COLS
    nC = (nF + vit._GROUP - 1) // vit._GROUP
    rng = np.random.default_rng(2)
    rows = rng.choice(np.arange(lo, hi), 40, replace=False)
    for dt in _LENGTHS:
        a = _scores(grid, rng)
        e = np.empty(Nv)
        m, amax, _ = vit._start(a, lQd, dt, lo, hi, e)
        se = np.sqrt(e[:m])
        LS, VS = np.zeros((N, m)), np.zeros((N, m))
        AU, CUF, CUC = np.zeros((2 * nA, m)), np.zeros((2 * nF, m)), np.zeros((2 * nC, m))
        stF, stC = np.empty((nF, 4)), np.empty((nC, 4))
        srow, rnrow, lnrow, cnA = np.zeros(N), np.zeros(N), np.zeros(N), np.zeros(nA)
        vit._row_models(G_T, CL, DL, e, se, m, N, lo, hi, AU, srow, rnrow, lnrow, cnA)
        vit._scale(Qxd, a, amax, sp, se, m, lo, hi, VS)
        LS[lo:hi] = L[lo:hi, :m] * se
        vit._column_tiles(VS, m, lo, hi, vit._COLS, 0, nF, CUF, stF)
        vit._column_tiles(VS, m, lo, hi, vit._COLS * vit._GROUP, 0, nC, CUC, stC)
        exact = LS @ VS.T
        for CU, st, T in ((CUF, stF, vit._COLS), (CUC, stC, vit._COLS * vit._GROUP)):
            KP = AU @ CU.T  # pair products of every row tile with every column tile
            for A in range(nA):
                inside = [r for r in rows if (r - lo) // vit._ROWS == A]
                if not inside:
                    continue
                r_all = np.arange(lo + A * vit._ROWS, min(lo + (A + 1) * vit._ROWS, hi))
                slack = vit._MARGIN * 4 * (cnA[A] + np.abs(srow) + rnrow)
                for k in range(st.shape[0]):
                    cols = slice(lo + k * T, min(lo + (k + 1) * T, hi))
                    for r in inside:
                        top = exact[r, cols].max()
                        assert vit._bound(KP, 2 * A, 2 * k, srow[r], rnrow[r], lnrow[r], slack[r], st, k) >= top
                        nl = lnrow[r] + rnrow[r]
                        assert vit._bound_row(LS, r, CU, k, m, nl, slack[r], st) >= top
                    # the whole-tile test, against an arbitrary line b0 + b1·s
                    b0, b1 = rng.standard_normal(2) * exact.max()
                    s = srow[r_all]
                    worst = np.max(exact[r_all, cols] - (b0 + b1 * srow[r_all])[:, None])
                    assert vit._bound_tile(KP, 2 * A, 2 * k, s.min(), s.max(), rnrow[r_all].max(), lnrow[r_all].max(),
                                           slack[r_all].max(), b0, b1, st, k) >= worst
