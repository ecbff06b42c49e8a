"""Fitting: stopping, descent, datasamples, mini-batches, rate rescaling, bad options."""

import numpy as np
import pytest

from _shared import REFERENCE_DIR
from flowdash.core.fitting import FitDiverged, FitOptions, fit
from flowdash.core.grid import Grid
from flowdash.core.library import peq_from_library, p0_from_library, rate_from_library
from flowdash.core.model import Model
from flowdash.core.spikedata import load_reference_set

GRID = Grid(6, 12)
DATA = load_reference_set(REFERENCE_DIR / "grads_reflecting.npz", "data")  # 12 trials, 2 neurons, trial end


def _model(K_peq=1, p0=False, mode="reflecting"):
    peq = peq_from_library(GRID, "cos_square")
    fr = np.stack([rate_from_library(GRID.x, "linear", slope=10, bias=30)] * 2, axis=1)
    return Model(GRID, np.tile(peq, (K_peq, 1)), p0_from_library(GRID, "single_well") if p0 else None,
                 1.0, fr, mode)


def test_on_epoch_sees_every_epoch_and_can_stop():
    seen = []

    def on_epoch(record):
        seen.append((record.epoch, record.nll_train.copy(), record.model.peq.copy()))
        return record.epoch == 3

    options = FitOptions(optimizer="GD", max_epochs=10, params_to_opt=("F",), learning_rate={"F": 0.01})
    result = fit(_model(), DATA.subset(range(8)), DATA.subset(range(8, 12)), options, on_epoch=on_epoch)
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert result.stopped and result.nll_train.shape == (1, 4) and result.nll_val.shape == (1, 4)
    np.testing.assert_array_equal(result.epochs, [0, 1, 2, 3])
    np.testing.assert_allclose(result.nll_train[0], [s[1][0] for s in seen])
    np.testing.assert_allclose(result.model.peq, seen[-1][2])
    assert sorted(result.snapshots) == [0, 1, 2, 3]


def test_gd_decreases_the_training_nll_and_snapshots_follow_schedule():
    options = FitOptions(optimizer="GD", max_epochs=6, params_to_opt=("F",), learning_rate={"F": 0.005},
                         snapshot_epochs=(1, 6))
    result = fit(_model(), DATA, None, options)
    assert not result.stopped
    assert np.all(np.diff(result.nll_train[0]) < 0)
    assert np.all(np.isnan(result.nll_val))
    assert sorted(result.snapshots) == [1, 6]
    assert result.best_epoch == 6


def test_adam_on_all_parameters_with_shared_and_per_datasample_rows():
    train = [DATA.subset(range(0, 5)), DATA.subset(range(6, 11))]
    val = [DATA.subset([5]), DATA.subset([11])]
    options = FitOptions(optimizer="ADAM", max_epochs=4, params_to_opt=("F", "F0", "D", "Fr", "C"),
                         learning_rate={"alpha": 0.02})
    result = fit(_model(K_peq=2, p0=True), train, val, options)
    assert result.nll_train.shape == result.nll_val.shape == (2, 5)
    assert result.model.peq.shape == (2, GRID.N) and result.model.fr.shape == (1, GRID.N, 2)
    assert result.model.D.shape == (1,) and result.model.p0.shape == (1, GRID.N)
    # Two datasamples with their own peq diverge; the total training NLL goes down.
    assert not np.allclose(result.model.peq[0], result.model.peq[1])
    assert result.nll_train.sum(axis=0)[-1] < result.nll_train.sum(axis=0)[0]
    np.testing.assert_allclose(GRID.integrate(result.model.p0[0]), 1.0, rtol=1e-3)


def test_initial_rates_are_rescaled_to_the_data_rate():
    captured = {}

    def on_epoch(record):
        captured["model"] = record.model
        return True

    fit(_model(), DATA, None, FitOptions(optimizer="GD", max_epochs=1, params_to_opt=("C",),
                                         learning_rate={"C": 1.0}), on_epoch=on_epoch)
    m = captured["model"]
    np.testing.assert_allclose((GRID.w * m.peq_of(0)) @ m.fr_of(0), DATA.trial_average_rates(), rtol=1e-12)


def test_mini_batches_are_reproducible_with_a_seed():
    def run(seed):
        options = FitOptions(optimizer="ADAM", max_epochs=2, mini_batch_number=3, params_to_opt=("F", "D"),
                             learning_rate={"alpha": 0.05}, seed=seed)
        return fit(_model(), DATA, None, options).model.peq

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_line_search_on_D_stays_in_bounds_and_lowers_the_nll():
    def run(line_search):
        options = FitOptions(optimizer="GD", max_epochs=1, params_to_opt=("F", "D"),
                             learning_rate={"F": 1e-4, "D": 1e-6}, line_search=line_search)
        return fit(_model(), DATA, None, options)

    plain, searched = run(None), run({"epochs": [1], "params": ["D"], "max_fun": 6})
    assert 0.02 <= searched.model.D[0] <= 10
    assert searched.nll_train[0, 1] < plain.nll_train[0, 1]


@pytest.mark.parametrize("kwargs, message", [
    (dict(learning_rate={"F": 0.0}), "learning rate of F must be a finite number > 0, got 0.0"),
    (dict(learning_rate={"F": -1.0}), "learning rate of F must be a finite number > 0"),
    (dict(learning_rate={}), r"GD needs a learning rate for each fitted parameter; missing \['F'\]"),
    (dict(params_to_opt=("F", "peq")), r"params_to_opt must list distinct names among \['F', 'F0', 'D', 'Fr', 'C'\]"),
    (dict(params_to_opt=()), "params_to_opt must list distinct names"),
    (dict(max_epochs=0), "max_epochs must be an integer >= 1, got 0"),
    (dict(mini_batch_number=0), "mini_batch_number must be an integer >= 1"),
    (dict(optimizer="SGD"), r"optimizer must be one of \('GD', 'ADAM'\), got 'SGD'"),
])
def test_bad_options(kwargs, message):
    args = dict(optimizer="GD", params_to_opt=("F",), learning_rate={"F": 0.1})
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        FitOptions(**args)


def test_bad_adam_settings():
    with pytest.raises(ValueError, match="learning rate of F must be a finite number > 0"):
        FitOptions(optimizer="ADAM", learning_rate={"alpha": 0})
    with pytest.raises(ValueError, match="ADAM beta1 must be a number in"):
        FitOptions(optimizer="ADAM", learning_rate={"alpha": 0.1, "beta1": 1.5})
    with pytest.raises(ValueError, match="ADAM learning_rate has unknown keys"):
        FitOptions(optimizer="ADAM", learning_rate={"F": 0.1})


@pytest.mark.parametrize("kwargs, message", [
    (dict(params_to_opt=("F0",), learning_rate={"F0": 0.1}), "F0 cannot be fitted in an equilibrium model"),
    (dict(Nv=GRID.N), r"Nv must be an integer in \[1, 59\]"),
    (dict(mini_batch_number=13), r"mini_batch_number \(13\) exceeds the number of training trials \(12\)"),
])
def test_impossible_fits(kwargs, message):
    args = dict(optimizer="GD", params_to_opt=("F",), learning_rate={"F": 0.1})
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        fit(_model(), DATA, None, FitOptions(**args))


def test_validation_sets_must_match_datasamples():
    with pytest.raises(ValueError, match=r"val must have one SpikeData per datasample \(1\), got 2"):
        fit(_model(), DATA, [DATA, DATA], FitOptions(optimizer="GD", learning_rate={"F": 0.1}))


@pytest.mark.parametrize("param, rate", [("Fr", 1e3), ("C", 1e6)])
def test_a_diverging_fit_stops_with_a_clear_message_and_keeps_its_epochs(param, rate):
    seen = []
    options = FitOptions(optimizer="GD", max_epochs=20, params_to_opt=(param,), learning_rate={param: rate})
    with pytest.raises(FitDiverged, match=r"diverged at epoch \d+ \(the NLL is not finite\); lower the learning rate"):
        try:
            fit(_model(), DATA, None, options, on_epoch=lambda rec: seen.append(rec.epoch))
        except FitDiverged as exc:
            partial = exc.result
            raise
    assert partial.nll_train.shape == (1, len(seen)) and np.all(np.isfinite(partial.nll_train))
    assert partial.stopped and np.all(np.isfinite(partial.model.peq))
