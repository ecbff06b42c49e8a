"""Likelihood and gradients: finite differences in every mode, Nv, bad input."""

import numpy as np
import pytest

from flowdash.core.grid import Grid
from flowdash.core.likelihood import Operators, batch_nll, ground_truth_nll, nll, nll_and_grad, relative_nll
from flowdash.core.model import Model, force_from_peq, peq_from_force, rates_from_shape, shape_from_rates
from flowdash.core.spikedata import SpikeData

GRID = Grid(8, 12)


def _data(with_trial_end, seed=1, n_trials=3):
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n_trials):
        n = int(rng.integers(5, 15))
        isi, ids = rng.exponential(0.05, n), rng.integers(0, 2, n)
        if with_trial_end:
            ids[-1] = -1
        trials.append((isi, ids))
    return SpikeData(trials, n_neurons=2, with_trial_end=with_trial_end)


def _base():
    x = GRID.x
    peq = np.exp(-2 * x**2 + 0.5 * x)
    p0 = np.exp(-8 * (x + 0.3) ** 2)
    fr = np.stack([20 + 15 * x, 30 * np.exp(-((x - 0.3) ** 2))], axis=1)
    Fr, C = shape_from_rates(GRID, fr)
    return dict(F=force_from_peq(GRID, peq / GRID.integrate(peq)), F0=force_from_peq(GRID, p0 / GRID.integrate(p0)),
                D=0.8, Fr=Fr, C=C)


# The 2021 ablation "without the absorption operator": Dirichlet conditions, no absorption step.
NO_ABSORPTION = dict(boundary_conditions="dirichlet", absorption_step=False)


def _model(mode, equilibrium, F, F0, D, Fr, C):
    """``mode``: a boundary mode, or a dict of boundary settings."""
    boundary = dict(mode) if isinstance(mode, dict) else dict(boundary_mode=mode)
    p0 = None if equilibrium else peq_from_force(GRID, F0)
    return Model(GRID, peq_from_force(GRID, F), p0, D, rates_from_shape(GRID, Fr, C), **boundary)


@pytest.mark.parametrize("mode", ["absorbing", "reflecting", NO_ABSORPTION], ids=["absorbing", "reflecting",
                                                                                  "dirichlet_no_absorption"])
@pytest.mark.parametrize("equilibrium", [True, False])
@pytest.mark.parametrize("with_trial_end", [True, False])
def test_gradients_match_finite_differences(mode, equilibrium, with_trial_end):
    data = _data(with_trial_end)
    base = _base()
    names = ["F", "D", "Fr", "C"] + ([] if equilibrium else ["F0"])
    value, grad = nll_and_grad(_model(mode, equilibrium, **base), data, grads=names)
    assert value == pytest.approx(nll(_model(mode, equilibrium, **base), data), rel=1e-12)
    x = GRID.x
    for name in names:
        v = base[name]
        if name in ("F", "F0"):
            direction = np.cos(3 * x + 1)
        elif name == "Fr":
            direction = np.stack([np.cos(3 * x + 1), np.sin(2 * x)], axis=1)
        elif name == "C":
            direction = np.array([0.7, -1.1])
        else:
            direction = 1.0
        h = 1e-5
        plus, minus = dict(base), dict(base)
        plus[name], minus[name] = v + h * direction, v - h * direction
        fd = (nll(_model(mode, equilibrium, **plus), data) - nll(_model(mode, equilibrium, **minus), data)) / (2 * h)
        # F, F0 and Fr are functions: their gradients pair with the quadrature weights.
        weight = GRID.w[:, None] if np.ndim(direction) == 2 else (GRID.w if name in ("F", "F0") else 1.0)
        analytic = np.sum(weight * grad[name] * direction)
        # The exact-discrete and the formula gradients differ by the grid's
        # resolution (the averaged Dm at shared nodes); 2e-5 at this grid.
        assert analytic == pytest.approx(fd, rel=2e-5), name


def test_gradient_shapes():
    base = _base()
    _, grad = nll_and_grad(_model("absorbing", False, **base), _data(True), grads=("F", "F0", "D", "Fr", "C"))
    assert grad["F"].shape == grad["F0"].shape == (GRID.N,)
    assert isinstance(grad["D"], float)
    assert grad["Fr"].shape == (GRID.N, 2) and grad["C"].shape == (2,)


def test_trials_add_and_operators_are_reusable():
    model = _model("reflecting", True, **_base())
    data = _data(True, n_trials=4)
    ops = Operators.build(model)
    total = batch_nll(ops, data)
    parts = sum(batch_nll(ops, data.subset([i])) for i in range(4))
    assert total == pytest.approx(parts, rel=1e-12)
    assert nll(model, [data.subset([0, 1]), data.subset([2, 3])]) == pytest.approx(total, rel=1e-12)


def test_truncation_converges_to_full_spectrum():
    model = _model("absorbing", True, **_base())
    data = _data(True)
    full = nll(model, data)
    assert abs(nll(model, data, Nv=5) - full) > 1e-3 * abs(full)  # few modes: visibly different
    assert nll(model, data, Nv=GRID.N - 3) == pytest.approx(full, rel=1e-8)


def test_bad_gradient_requests():
    base = _base()
    with pytest.raises(ValueError, match=r"unknown gradient name\(s\) \['G'\]; allowed: \['F', 'F0', 'D', 'Fr', 'C'\]"):
        nll_and_grad(_model("absorbing", False, **base), _data(True), grads=("F", "G"))
    with pytest.raises(ValueError, match="F0 has no gradient in an equilibrium model"):
        nll_and_grad(_model("absorbing", True, **base), _data(True), grads=("F0",))


def test_data_with_more_neurons_than_the_model():
    base = _base()
    one = Model(GRID, peq_from_force(GRID, base["F"]), None, 1.0, np.full((GRID.N, 1), 10.0), "absorbing")
    with pytest.raises(ValueError, match="the data has 2 neurons but the model has 1"):
        nll(one, _data(True))


@pytest.mark.parametrize("kwargs, message", [
    (dict(D=0.0), "D must be a finite number > 0"),
    (dict(D=-1.0), "D must be a finite number > 0"),
    (dict(fr=-np.ones((GRID.N, 1))), "firing rates fr must be finite and non-negative"),
    (dict(fr=np.full((GRID.N, 1), np.nan)), "firing rates fr must be finite and non-negative"),
    (dict(peq=np.zeros(GRID.N)), "peq must be finite and positive"),
    (dict(boundary_mode="periodic"), "boundary_mode must be one of"),
    (dict(fr=np.ones((GRID.N - 1, 1))), r"fr must have shape \(N, n_neurons\)"),
])
def test_bad_model_parameters(kwargs, message):
    args = dict(grid=GRID, peq=np.full(GRID.N, 0.5), p0=None, D=1.0, fr=np.ones((GRID.N, 1)),
                boundary_mode="absorbing")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Model(**args)


def test_boundary_settings_of_a_model():
    args = dict(grid=GRID, peq=np.full(GRID.N, 0.5), p0=None, D=1.0, fr=np.ones((GRID.N, 1)))
    absorbing, reflecting = Model(**args), Model(**args, boundary_mode="reflecting")
    assert (absorbing.boundary_conditions, absorbing.absorption_step) == ("dirichlet", True)
    assert (reflecting.boundary_conditions, reflecting.absorption_step) == ("neumann", False)
    # The reference's way (mode + conditions) and the explicit way give the same model;
    # boundary_mode then says whether the absorption step applies.
    for ablation in (Model(**args, boundary_mode="reflecting", boundary_conditions="Dirichlet"),
                     Model(**args, **NO_ABSORPTION)):
        assert (ablation.boundary_mode, ablation.boundary_conditions, ablation.absorption_step) == (
            "reflecting", "dirichlet", False)
        # replace keeps the settings; a new boundary_mode brings its own defaults.
        assert ablation.replace(D=2.0).boundary_conditions == "dirichlet"
        back = ablation.replace(boundary_mode="absorbing")
        assert (back.boundary_conditions, back.absorption_step) == ("dirichlet", True)
    spec = {"peq_model": {"model": "uniform", "params": {}}, "D": 1.0,
            "fr_model": [{"model": "linear", "params": {}}], "boundary_conditions": "dirichlet"}
    from_spec = Model.from_spec(spec, GRID, "reflecting")
    assert (from_spec.boundary_conditions, from_spec.absorption_step) == ("dirichlet", False)
    from flowdash.jobs import build_model

    saved = {**spec, "grid": {"Np": GRID.Np, "Ne": GRID.Ne}, "boundary_mode": "reflecting"}
    built = build_model(saved)
    assert (built.boundary_conditions, built.absorption_step) == ("dirichlet", False)
    assert built.grid.N == GRID.N


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(boundary_conditions="neumann", absorption_step=True), ValueError,
     r"the absorption step needs Dirichlet boundary conditions .* got boundary_conditions='neumann' with "
     r"absorption_step=True; use boundary_conditions='dirichlet', or absorption_step=False"),
    (dict(boundary_mode="absorbing", boundary_conditions="neumann"), ValueError,
     "the absorption step needs Dirichlet boundary conditions"),
    (dict(boundary_conditions="robin"), ValueError,
     r"boundary_conditions must be one of \('dirichlet', 'neumann'\) or None, got 'robin'"),
    (dict(absorption_step="yes"), TypeError, "absorption_step must be True, False or None, got 'yes'"),
])
def test_bad_boundary_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        Model(GRID, np.full(GRID.N, 0.5), None, 1.0, np.ones((GRID.N, 1)), **kwargs)


def test_no_absorption_step_changes_only_the_trial_end():
    base = _base()
    data = _data(True)
    full, ablation, reflecting = (nll(_model(mode, False, **base), data)
                                  for mode in ("absorbing", NO_ABSORPTION, "reflecting"))
    assert len({full, ablation, reflecting}) == 3
    # Same spectrum as absorbing: dropping the absorption step is the same as applying the identity there.
    ops = Operators.build(_model(NO_ABSORPTION, False, **base))
    ops_abs = Operators.build(_model("absorbing", False, **base))
    np.testing.assert_array_equal(ops.spectrum.lQ, ops_abs.spectrum.lQ)
    assert not ops.absorbing and ops_abs.absorbing


def test_ground_truth_nll_uses_the_fits_setting_on_the_truths_grid():
    fine = Grid(8, 16)
    x = fine.x
    truth = Model(fine, np.exp(-2 * x**2) / fine.integrate(np.exp(-2 * x**2)), None, 0.8,
                  np.stack([20 + 15 * x, 30 + 0 * x], axis=1), "absorbing")
    data = _data(True)
    fit_model = _model(NO_ABSORPTION, False, **_base())  # on GRID, not the truth's grid
    value = ground_truth_nll(truth, data, fit_model)
    assert value == pytest.approx(nll(truth.replace(**NO_ABSORPTION), data, Nv=fine.N - 2), rel=1e-12)
    assert value != pytest.approx(nll(truth, data), rel=1e-6)
    assert ground_truth_nll(truth, data, fit_model, Nv=20) == pytest.approx(
        nll(truth.replace(**NO_ABSORPTION), data, Nv=20), rel=1e-12)
    fit_nll = nll(fit_model, data)
    assert relative_nll(fit_nll, value) == pytest.approx((value - fit_nll) / value)
    np.testing.assert_allclose(relative_nll([value, 2 * value], value), [0.0, -1.0])
    with pytest.raises(ValueError, match="nll_gt must be a finite, non-zero number, got 0.0"):
        relative_nll(fit_nll, 0.0)
    with pytest.raises(TypeError, match="fit_model must be a flowdash.core.model.Model, got str"):
        ground_truth_nll(truth, data, "absorbing")


@pytest.mark.parametrize("mode", ["absorbing", "reflecting", NO_ABSORPTION], ids=["absorbing", "reflecting",
                                                                                  "dirichlet_no_absorption"])
def test_trials_in_lockstep_agree_with_one_trial_at_a_time(mode):
    # Many trials of different lengths run in lockstep; a single trial runs alone
    # (forward and adjoint side by side): the two ways must give the same sums.
    # This model has two nearly equal dark eigenvalues (the equal-eigenvalue limit).
    grid = Grid(8, 8)
    x = grid.x
    peq = np.cos(np.pi * x / 2) ** 2 + 1e-5
    boundary = dict(mode) if isinstance(mode, dict) else dict(boundary_mode=mode)
    model = Model(grid, peq / grid.integrate(peq), np.exp(-10 * x**2), 0.5,
                  np.stack([40 + 30 * x, 40 - 30 * x], axis=1), **boundary)
    data = _data(True, seed=5, n_trials=9)
    ops = Operators.build(model)
    assert np.any(np.isclose(np.diff(ops.lQd), 0, atol=1e-10 * ops.lQd.max()))
    names = ("F", "F0", "D", "Fr", "C")
    value, grad = nll_and_grad(model, data, grads=names)
    parts = [nll_and_grad(model, data.subset([i]), grads=names) for i in range(data.n_trials)]
    assert value == pytest.approx(sum(v for v, _ in parts), rel=1e-12)
    assert nll(model, data) == pytest.approx(value, rel=1e-12)
    for name in names:
        total = sum(np.asarray(g[name]) for _, g in parts)
        np.testing.assert_allclose(grad[name], total, rtol=0, atol=1e-9 * np.max(np.abs(total)))
