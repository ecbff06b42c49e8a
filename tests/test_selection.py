"""Feature complexity, divergences and the feature consistency analysis: analytic checks and bad input."""

import numpy as np
import pytest

from _shared import REFERENCE_DIR
from flowdash.core.grid import Grid
from flowdash.core.model import Model
from flowdash.core.selection import (FCASettings, FeatureConsistency, FitPath, ModelCache, SettingError,
                                     fc_equilibrium, fc_nonequilibrium, feature_consistency, js_equilibrium,
                                     js_timedep)

GRID = Grid(8, 32)
X = GRID.x


def _norm(p):
    return p / GRID.integrate(p)


def _well(centre, depth):
    return _norm(np.exp(-depth * (X - centre) ** 2))


# --------------------------------------------------------------------------- FC and divergences
def test_fc_of_uniform_is_zero():
    uniform = np.full(GRID.N, 0.5)
    assert fc_equilibrium(GRID, uniform) == pytest.approx(0, abs=1e-20)
    for mode in ("absorbing", "reflecting"):
        # no force, and p0 uniform: entropy -log L cancels log L
        assert fc_nonequilibrium(GRID, uniform, uniform, 1.0, mode, 1.0) == pytest.approx(0, abs=1e-12)


def test_fc_equilibrium_is_a_quarter_of_the_squared_force_integral():
    peq = _well(0.2, 5.0)
    F = GRID.derivative(np.log(peq))
    assert fc_equilibrium(GRID, peq) == pytest.approx(0.25 * GRID.integrate(F**2 * peq), rel=1e-6)
    # rows add
    assert fc_equilibrium(GRID, np.stack([peq, _well(-0.3, 2.0)])) == pytest.approx(
        fc_equilibrium(GRID, peq) + fc_equilibrium(GRID, _well(-0.3, 2.0)), rel=1e-14)


def test_reflecting_fc_of_a_stationary_model_grows_linearly_in_T():
    # p0 = peq stays put: only the stationary mode (λ0, taken as exactly 0) carries the path term,
    # so FC = ∫peq log peq + log L + D T ¼∫F²peq.
    peq, D = _well(0.1, 3.0), 0.7
    F = GRID.derivative(np.log(peq))
    quarter = 0.25 * GRID.integrate(F**2 * peq)
    entropy = GRID.integrate(peq * np.log(peq)) + np.log(GRID.length)
    for T in (0.5, 2.0, 10.0):
        assert fc_nonequilibrium(GRID, peq, peq, D, "reflecting", T) == pytest.approx(entropy + D * T * quarter,
                                                                                      rel=1e-9)


def test_equilibrium_js_is_symmetric_zero_for_equal_models_and_bounded():
    p1, p2 = _well(0.3, 4.0), _well(-0.2, 1.0)
    assert js_equilibrium(GRID, p1, p1) == 0
    assert js_equilibrium(GRID, p1, p2) == pytest.approx(js_equilibrium(GRID, p2, p1), rel=1e-14)
    assert 0 < js_equilibrium(GRID, p1, p2) < np.log(2)
    # rows are normalised first
    assert js_equilibrium(GRID, 3 * p1, p2) == pytest.approx(js_equilibrium(GRID, p1, p2), rel=1e-12)


@pytest.mark.parametrize("mode", ["absorbing", "reflecting"])
def test_timedep_js_is_symmetric_and_zero_for_equal_models(mode):
    a = (_well(0.3, 2.0), _well(0.0, 20.0), 1.0)
    b = (_well(-0.1, 1.0), _well(0.2, 10.0), 0.5)
    assert js_timedep(GRID, a, a, mode, 1.0, 10) == pytest.approx(0, abs=1e-15)
    assert js_timedep(GRID, a, b, mode, 1.0, 10) == pytest.approx(js_timedep(GRID, b, a, mode, 1.0, 10), rel=1e-12)


def test_timedep_js_of_stationary_reflecting_models_is_T_times_the_equilibrium_js():
    p1, p2 = _well(0.3, 2.0), _well(-0.2, 1.5)
    T = 3.0
    js_t = js_timedep(GRID, (p1, p1, 1.0), (p2, p2, 2.0), "reflecting", T, 7)
    assert js_t == pytest.approx(T * js_equilibrium(GRID, p1, p2), rel=1e-8)


def test_timedep_js_tends_to_the_equilibrium_js_for_long_times():
    p1, p2 = _well(0.3, 2.0), _well(-0.2, 1.5)
    start = _well(0.0, 30.0)
    T = 60.0
    js_t = js_timedep(GRID, (p1, start, 1.0), (p2, start, 1.0), "reflecting", T, 600)
    assert js_t / T == pytest.approx(js_equilibrium(GRID, p1, p2), rel=0.03)


def test_fc_and_js_reject_bad_input():
    peq = _well(0, 1)
    with pytest.raises(ValueError, match="boundary_mode"):
        fc_nonequilibrium(GRID, peq, peq, 1.0, "periodic")
    with pytest.raises(SettingError, match="terminal_time") as err:
        fc_nonequilibrium(GRID, peq, peq, 1.0, "reflecting", 0.0)
    assert err.value.setting == "terminal_time"
    with pytest.raises(SettingError, match="number_of_timesteps"):
        js_timedep(GRID, (peq, peq, 1), (peq, peq, 1), "absorbing", 1.0, 1)
    with pytest.raises(ValueError, match="shape"):
        fc_equilibrium(GRID, peq[:-1])
    with pytest.raises(ValueError, match="positive"):
        fc_equilibrium(GRID, -peq)
    with pytest.raises(ValueError, match="rows"):
        js_equilibrium(GRID, peq, np.stack([peq, peq]))
    with pytest.raises(ValueError, match="D must be finite and > 0"):
        fc_nonequilibrium(GRID, peq, peq, -1.0, "absorbing")
    with pytest.raises(ValueError, match="1 \\(shared\\) or K = 3"):
        fc_nonequilibrium(GRID, np.stack([peq] * 3), np.stack([peq] * 2), 1.0, "absorbing")


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize("field, value, allowed", [
    ("JS_thres", 0.0, "> 0"), ("JS_thres", float("nan"), "> 0"), ("JS_thres", "0.002", "> 0"),
    ("late_JS_thres", -1.0, "> 0"), ("FC_stride", -1, ">= 0"), ("FC_stride", 2.5, ">= 0"),
    ("smoothing_kernel", -2, ">= 0"), ("num_models", 0, ">= 1"), ("epoch_offset", -1, ">= 0"),
    ("terminal_time", 0.0, "> 0"), ("terminal_time", float("inf"), "> 0"), ("number_of_timesteps", 1, ">= 2"),
])
def test_settings_name_the_bad_field_its_value_and_what_is_allowed(field, value, allowed):
    with pytest.raises(SettingError) as err:
        FCASettings(**{field: value})
    assert err.value.setting == field
    message = str(err.value)
    assert field in message and allowed in message and repr(value) in message


def test_paper_presets():
    s = FCASettings.paper_2024()
    assert (s.JS_thres, s.FC_stride, s.smoothing_kernel, s.epoch_offset) == (0.0015, 5, 10, 4)
    assert FCASettings.paper_2020(num_models=30).num_models == 30


# --------------------------------------------------------------------------- paths
def _eq_path(R=40, drift=0.02, seed=0, grid=GRID, rows=1, mode="reflecting"):
    """A fake equilibrium fit: a well that deepens and sharpens with the epochs, plus a little noise."""
    rng = np.random.default_rng(seed)
    x = grid.x
    peq = []
    for r in range(R):
        depth = 0.5 + 0.3 * r
        p = np.exp(-depth * (x - drift * r / R) ** 2 + 0.01 * rng.standard_normal() * x)
        peq.append(np.stack([p / grid.integrate(p)] * rows))
    return FitPath(grid, mode, np.arange(R), np.array(peq))


def _noneq_paths(n_records=25):
    ref = np.load(REFERENCE_DIR / "selection" / "fca_nonequilibrium.npz")
    grid = Grid(8, 16)
    fitted = frozenset({"F", "F0", "D", "Fr", "C"})
    return [FitPath(grid, "absorbing", ref[f"iter_num{k}"][:n_records], ref[f"peq{k}"][:n_records],
                    ref[f"p0{k}"][:n_records], ref[f"D{k}"][:n_records], ref[f"fr{k}"][:n_records], fitted)
            for k in (1, 2)]


def test_fit_path_validation():
    peq = _eq_path(3).peq
    with pytest.raises(ValueError, match="strictly increasing"):
        FitPath(GRID, "reflecting", [0, 2, 1], peq)
    with pytest.raises(ValueError, match=r"peq must have shape \(R, K, N\)"):
        FitPath(GRID, "reflecting", [0, 1], peq)
    with pytest.raises(ValueError, match="also needs D"):
        FitPath(GRID, "reflecting", [0, 1, 2], peq, p0=peq)
    with pytest.raises(ValueError, match="unknown names"):
        FitPath(GRID, "reflecting", [0, 1, 2], peq, fitted={"F", "peq"})
    with pytest.raises(TypeError, match="Grid"):
        FitPath("grid", "reflecting", [0, 1, 2], peq)


def test_from_models_builds_the_arrays():
    spec = {"peq_model": {"model": "double_well", "params": {}}, "p0_model": None, "D": 2.0,
            "fr_model": [{"model": "linear", "params": {}}]}
    models = [Model.from_spec(spec, GRID, "reflecting")] * 3
    path = FitPath.from_models([0, 5, 9], models)
    assert path.peq.shape == (3, 1, GRID.N) and path.p0 is None and path.fr.shape == (3, 1, GRID.N, 1)
    assert not path.non_equilibrium and path.n_records == 3


@pytest.mark.parametrize("change, message", [
    (lambda p: _eq_path(grid=Grid(8, 16)), "grids differ"),
    (lambda p: _eq_path(rows=2), "conditions differ"),
    (lambda p: FitPath(p.grid, p.boundary_mode, p.epochs, p.peq, fitted={"F", "D"}), "fitted parameters differ"),
    (lambda p: _eq_path(mode="absorbing"), "boundary modes differ"),
    (lambda p: FitPath(p.grid, p.boundary_mode, p.epochs, p.peq, p.peq, np.ones((p.n_records, 1))),
     "path 1 is equilibrium but path 2 is non-equilibrium"),
])
def test_paths_that_cannot_be_compared(change, message):
    path1 = _eq_path()
    with pytest.raises(ValueError, match=message):
        FeatureConsistency(path1, change(path1))


def test_settings_the_paths_cannot_honour():
    path1, path2 = _eq_path(12), _eq_path(12, seed=1)
    fca = FeatureConsistency(path1, path2)
    for field, value, message in (("FC_stride", 12, "larger than the path"),
                                  ("smoothing_kernel", 13, "wider than the 12 analysed models"),
                                  ("epoch_offset", 11, "must be below the last analysed record index 11")):
        with pytest.raises(SettingError, match=message) as err:
            fca.analyse(FCASettings(**{field: value}))
        assert err.value.setting == field and repr(value) in str(err.value)
    with pytest.raises(SettingError, match="at least 2"):
        FeatureConsistency(path1.head(1), path2.head(1)).analyse(FCASettings(FC_stride=0))


# --------------------------------------------------------------------------- the analysis
def test_equilibrium_analysis_follows_the_steps():
    path1, path2 = _eq_path(60), _eq_path(60, drift=0.2, seed=3)
    s = FCASettings(JS_thres=1e-3, FC_stride=3, smoothing_kernel=4, num_models=30, epoch_offset=2)
    r = feature_consistency(path1, path2, s)
    P = len(r.min_inds_1)
    assert P < 60 and r.min_inds_1[0] == 0 and r.min_inds_1[-1] == 59
    assert np.all(np.diff(r.min_inds_1) > 0)
    # FC of every analysed model, and each JS is the divergence of the matched pair
    np.testing.assert_allclose(r.FCs1, [fc_equilibrium(GRID, path1.peq[i]) for i in r.min_inds_1], rtol=1e-12)
    np.testing.assert_allclose(r.JS_raw, [js_equilibrium(GRID, path1.peq[i], path2.peq[j])
                                          for i, j in zip(r.min_inds_1, r.min_inds_2)], rtol=1e-12)
    # smoothing: centred zero-padded moving average, the last ⌊w/2⌋ kept
    smooth = np.convolve(r.JS_raw, np.ones(4), "same") / 4
    np.testing.assert_allclose(r.JS[:-2], smooth[:-2], rtol=1e-12)
    np.testing.assert_array_equal(r.JS[-2:], r.JS_raw[-2:])
    # selection: one before the first crossing at or after the offset position
    assert r.offset_position == 2
    over = np.flatnonzero(r.JS[2:] > 1e-3)
    assert r.selected == (2 + over[0] - 1 if over.size else P - 1)
    assert r.late == r.select(s.late_JS_thres)[0]
    assert r.early == int(np.argmax(r.FCs1 > r.FCs1[r.selected] - 4))
    assert r.selected_records == (r.min_inds_1[r.selected], r.min_inds_2[r.selected])
    np.testing.assert_array_equal(r.epochs1, path1.epochs[r.min_inds_1])


def test_crossing_at_the_offset_position_is_reported():
    path1, path2 = _eq_path(20), _eq_path(20, drift=3.0, seed=5)  # far apart from the start
    r = feature_consistency(path1, path2, FCASettings(JS_thres=1e-6, FC_stride=2))
    assert r.crossed_at_once and r.selected == r.offset_position == 0
    assert r.select(1e-6) == (0, True)
    assert r.select(10.0) == (len(r.JS) - 1, False)


def test_mirrored_path_2_gives_the_same_analysis():
    path1, path2 = _noneq_paths()
    s = FCASettings.paper_2024(num_models=20, smoothing_kernel=3)
    cache = ModelCache()
    straight = FeatureConsistency(path1, path2, cache).analyse(s)
    mirrored = FeatureConsistency(path1, path2.mirrored(), cache).analyse(s)
    assert not straight.invert and mirrored.invert
    for key in ("FCs1", "FCs2", "JS", "min_inds_1", "min_inds_2"):
        np.testing.assert_array_equal(getattr(mirrored, key), getattr(straight, key))
    assert mirrored.selected == straight.selected
    # without F0 and Fr fitted there is no mirror check
    no_check = [FitPath(p.grid, p.boundary_mode, p.epochs, p.peq, p.p0, p.D, p.fr, {"F", "D"})
                for p in (path1, path2.mirrored())]
    assert not FeatureConsistency(*no_check).invert


def test_a_growing_path_reuses_the_cache():
    path1, path2 = _noneq_paths(30)
    s = FCASettings.paper_2024(num_models=1000, smoothing_kernel=0, epoch_offset=0, FC_stride=2)
    cache = ModelCache()
    early = FeatureConsistency(path1.head(12), path2.head(12), cache).analyse(s)
    # both fits start from the same model: record 0 is computed once for the two paths
    assert len(cache) == 23 and len(early.JS) == 12
    grown = FeatureConsistency(path1.head(20), path2.head(20), cache).analyse(s)
    assert len(cache) == 39  # only the 16 new records were computed
    fresh = FeatureConsistency(path1.head(20), path2.head(20)).analyse(s)
    np.testing.assert_array_equal(grown.JS, fresh.JS)
    np.testing.assert_array_equal(grown.FCs1, fresh.FCs1)
    # settings that only change the selection reuse everything
    FeatureConsistency(path1.head(20), path2.head(20), cache).analyse(FCASettings.paper_2024(
        num_models=1000, JS_thres=1e-5, FC_stride=4, epoch_offset=3))
    assert len(cache) == 39


def test_the_dense_absorbing_spectrum_equals_the_general_solver():
    from flowdash.core.selection import _absorbing_pairs
    from flowdash.core.spectra import solve_spectrum

    peq, D = _well(0.2, 3.0), 0.9
    lQ, Qx = _absorbing_pairs(GRID, peq, D)
    spec = solve_spectrum(GRID, peq, D, "absorbing")
    np.testing.assert_allclose(lQ, spec.lQ, rtol=1e-9)
    # same eigenvectors up to sign, orthonormal in the w inner product
    overlap = np.abs(np.sum(GRID.w[:, None] * Qx[:, :20] * spec.Qx[:, :20], axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-9)
    # beyond the dense route the general solver gives the same FC
    from flowdash.core import selection

    big = Grid(8, 64)
    wide = np.exp(-3 * (big.x - 0.2) ** 2)
    wide /= big.integrate(wide)
    start = np.exp(-20 * big.x**2)
    start /= big.integrate(start)
    general = fc_nonequilibrium(big, wide, start, D, "absorbing")
    lQ, Qx = _absorbing_pairs(big, wide, D)
    F = big.derivative(np.log(wide))
    dense = selection._fc_row(big, selection._RowSpectrum(lQ, Qx, Qx.T @ (big.w * 0.25 * D * F**2 * np.sqrt(wide))),
                              wide, start, "absorbing", 1.0)
    assert big.N > selection._DENSE_MAX_N and general == pytest.approx(dense, rel=1e-9)
