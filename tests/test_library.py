"""Model library (MATH.md §9) against the reference arrays, plus bad input."""

import json

import numpy as np
import pytest

from _shared import REFERENCE_DIR
from flowdash.core.grid import Grid
from flowdash.core.library import (
    PEQ_MODELS,
    RATE_MODELS,
    LibraryModel,
    p0_from_library,
    peq_from_library,
    rate_from_library,
)

RTOL = 1e-10


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.fixture(scope="module")
def ex1():
    npz = np.load(REFERENCE_DIR / "example1.npz")
    cfg = json.loads((REFERENCE_DIR / "example1.json").read_text())
    grid = Grid(Np=cfg["grid"]["Np"], Ne=cfg["grid"]["Ne"])
    np.testing.assert_allclose(grid.x, npz["x"], atol=1e-12)
    np.testing.assert_allclose(grid.w, npz["w"], atol=1e-12)
    return grid, npz, cfg


@pytest.fixture(scope="module")
def grads():
    npz = np.load(REFERENCE_DIR / "grads_reflecting.npz")
    cfg = json.loads((REFERENCE_DIR / "grads_reflecting.json").read_text())
    g = cfg["grid"]
    grid = Grid(Np=g["Np"], Ne=g["Ne"], xbegin=g["xbegin"], xend=g["xend"])
    np.testing.assert_allclose(grid.x, npz["x"], atol=1e-12)
    return grid, npz, cfg


def _peq(grid, spec):
    return peq_from_library(grid, spec["model"], **spec["params"])


def _rates(x, specs):
    return np.stack([rate_from_library(x, s["model"], **s["params"]) for s in specs], axis=1)


def test_example1_reference(ex1):
    grid, npz, cfg = ex1
    gt, init = cfg["ground_truth_model"], cfg["init_model"]
    assert _rel(_peq(grid, gt["peq_model"]), npz["gt_peq"]) < RTOL
    assert _rel(_peq(grid, init["peq_model"]), npz["init_peq"]) < RTOL
    assert _rel(_rates(grid.x, gt["fr_model"]), npz["gt_fr"]) < RTOL
    assert _rel(_rates(grid.x, init["fr_model"]), npz["init_fr"]) < RTOL


def test_grads_reflecting_reference(grads):
    grid, npz, cfg = grads
    gt, ev = cfg["ground_truth_model"], cfg["eval_model"]
    assert gt["peq_model"]["model"] == "stepping"
    assert _rel(_peq(grid, gt["peq_model"]), npz["gt_peq"]) < RTOL
    assert _rel(_peq(grid, ev["peq_model"]), npz["peq"]) < RTOL
    assert _rel(_rates(grid.x, gt["fr_model"]), npz["gt_fr"]) < RTOL
    assert _rel(_rates(grid.x, ev["fr_model"]), npz["fr"]) < RTOL


@pytest.mark.parametrize("name", sorted(set(PEQ_MODELS) - {"custom"}))
def test_every_peq_model_defaults_normalised_and_clipped(name):
    grid = Grid(Np=6, Ne=20)
    assert isinstance(PEQ_MODELS[name], LibraryModel)
    peq = peq_from_library(grid, name, **PEQ_MODELS[name].defaults)
    assert peq.shape == (grid.N,)
    assert peq.min() >= 1e-5
    p0 = p0_from_library(grid, name)
    assert grid.w @ p0 == pytest.approx(1.0, rel=1e-12)
    # the clip is applied after normalising and not renormalised
    np.testing.assert_array_equal(peq, np.maximum(p0, 1e-5))


def test_clip_without_renormalisation():
    grid = Grid(Np=8, Ne=16)
    p0 = p0_from_library(grid, "single_well", miu=400.0)  # tails far below 1e-5
    peq = peq_from_library(grid, "single_well", miu=400.0)
    assert p0.min() < 1e-5
    assert peq.min() == 1e-5
    assert grid.w @ peq > 1.0  # the clip adds mass, nobody removed it


def test_manual_zero_slope_at_knots():
    grid = Grid(Np=8, Ne=40)
    kx, ky = [-1.0, -0.2, 0.5, 1.0], [1.0, 3.0, 0.0, 2.0]
    p = p0_from_library(grid, "manual", interp_x=kx, interp_y=ky)
    U = -np.log(p)
    U -= U[0] - ky[0]
    for xk, yk in zip(kx, ky):
        i = np.argmin(np.abs(grid.x - xk))
        assert abs(grid.x[i] - xk) < 1e-12
        assert U[i] == pytest.approx(yk, abs=1e-12)


def test_stepping_first_segment_is_manual_and_last_passes_anchor():
    grid = Grid(Np=8, Ne=40)
    U_step = -np.log(p0_from_library(grid, "stepping"))
    U_man = -np.log(p0_from_library(grid, "manual"))
    # both have U(-1) = 0; align the additive constant there
    U_step -= U_step[0]
    U_man -= U_man[0]
    first = grid.x <= -0.5
    np.testing.assert_allclose(U_step[first], U_man[first], atol=1e-12)
    # defaults: last segment through (0.3, 1), (0.45, 0.5), (1, -1)
    g2 = Grid(Np=3, Ne=40)  # nodes every 0.025: 0.45 is a node
    U2 = -np.log(p0_from_library(g2, "stepping"))
    U2 -= U2[0]
    for xk, yk in ((0.3, 1.0), (0.45, 0.5), (1.0, -1.0)):
        i = np.argmin(np.abs(g2.x - xk))
        assert U2[i] == pytest.approx(yk, abs=1e-12)


def test_stepping_overshoot_rule_keeps_spline_below_peak():
    # a steep drop after the last barrier: the mirrored anchor (0.45) gives a
    # spline above the peak value 1, so the anchor moves to 0.375
    g = Grid(Np=3, Ne=400)  # nodes every 0.0025
    ky = [0.0, 4.0, 0.0, 1.0, -20.0]
    U = -np.log(p0_from_library(g, "stepping", interp_y=ky))
    U -= U[0]
    last = g.x >= 0.3
    assert U[last].max() <= 1.0 + 1e-9
    i = np.argmin(np.abs(g.x - 0.375))
    assert U[i] == pytest.approx(0.5, abs=1e-9)


def test_mixture():
    grid = Grid(Np=8, Ne=16)
    m1 = {"model": "single_well", "params": {"xmin": -0.5}}
    m2 = {"model": "uniform", "params": {}}
    p = p0_from_library(grid, "mixture", theta=0.3, model1=m1, model2=m2)
    expected = 0.3 * p0_from_library(grid, "single_well", xmin=-0.5) + 0.7 * p0_from_library(grid, "uniform")
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_custom_models():
    grid = Grid(Np=8, Ne=8)
    p = p0_from_library(grid, "custom", func=lambda x: 1 + x**2)
    np.testing.assert_allclose(p, (1 + grid.x**2) / (grid.w @ (1 + grid.x**2)))
    f = rate_from_library(grid.x, "custom", func=lambda x: 20 * (x + 1))
    np.testing.assert_array_equal(f, np.maximum(20 * (grid.x + 1), 1.0))


@pytest.mark.parametrize("name", sorted(set(RATE_MODELS) - {"custom"}))
def test_every_rate_model_floor(name):
    x = np.linspace(-1, 1, 101)
    f = rate_from_library(x, name, **RATE_MODELS[name].defaults)
    assert f.shape == x.shape
    assert f.min() >= 1.0


def test_rate_formulas():
    x = np.linspace(-1, 1, 11)
    np.testing.assert_allclose(rate_from_library(x, "linear", slope=3, bias=10), np.maximum(3 * x + 10, 1))
    np.testing.assert_allclose(
        rate_from_library(x, "sinus"), 30 * np.sin(np.pi * x) + 100
    )
    np.testing.assert_allclose(
        rate_from_library(x, "cos_square", bias=5.0), np.maximum(1000 * np.cos(np.pi / 2 * x) ** 2 + 5 * x, 1)
    )
    np.testing.assert_allclose(
        rate_from_library(x, "peaks", center=[0.0], width=[0.5], amp=[50.0]),
        np.maximum(50 * np.exp(-(x**2) / 0.25), 1),
    )
    # floor: rectified linear is 0 at its threshold
    assert rate_from_library(np.array([-1.0]), "rectified_linear")[0] == 1.0


# ---- bad input -------------------------------------------------------------


def test_unknown_model_lists_allowed():
    grid = Grid(Np=4, Ne=4)
    with pytest.raises(ValueError, match=r"unknown peq model 'nope'.*double_well"):
        peq_from_library(grid, "nope")
    with pytest.raises(ValueError, match=r"unknown rate model 'nope'.*rectified_linear"):
        rate_from_library(grid.x, "nope")


def test_unknown_parameter_lists_allowed():
    grid = Grid(Np=4, Ne=4)
    with pytest.raises(ValueError, match=r"'depht'.*double_well.*allowed: xmax, xmin, depth, sig"):
        peq_from_library(grid, "double_well", depht=3)
    with pytest.raises(ValueError, match=r"'offset'.*allowed: slope, bias"):
        rate_from_library(grid.x, "linear", offset=3)


@pytest.mark.parametrize(
    "name, params",
    [
        ("double_well", {"xmin": 0.0, "xmax": 0.0}),  # division by zero
        ("single_well", {"miu": float("nan")}),
        ("custom", {"func": lambda x: -np.ones_like(x)}),  # negative density
        ("custom", {"func": lambda x: np.zeros_like(x)}),  # cannot normalise
        ("custom", {"func": lambda x: np.full_like(x, np.inf)}),
        ("custom", {"func": None}),
        ("manual", {"interp_x": [0, -1], "interp_y": [0, 1]}),  # not increasing
        ("manual", {"interp_x": [-1, 0, 1], "interp_y": [0, 1]}),  # lengths differ
        ("mixture", {"theta": 1.5}),
        ("mixture", {"model1": {"model": "nope", "params": {}}}),
    ],
)
def test_bad_peq_raises(name, params):
    grid = Grid(Np=4, Ne=4)
    with pytest.raises(ValueError):
        peq_from_library(grid, name, **params)


@pytest.mark.parametrize(
    "name, params",
    [
        ("linear", {"slope": float("inf")}),
        ("linear", {"slope": "fast"}),
        ("custom", {"func": lambda x: np.full_like(x, np.nan)}),
        ("custom", {"func": lambda x: -np.ones_like(x)}),
        ("peaks", {"center": [0, 1], "width": [1], "amp": [1, 2]}),
    ],
)
def test_bad_rate_raises(name, params):
    with pytest.raises(ValueError):
        rate_from_library(np.linspace(-1, 1, 5), name, **params)


def test_peq_overflow_safe():
    # deep wells must not overflow exp(-U): the potential is shifted first
    grid = Grid(Np=8, Ne=16)
    p = p0_from_library(grid, "linear_pot", slope=-2000.0)
    assert np.all(np.isfinite(p)) and grid.w @ p == pytest.approx(1.0)
