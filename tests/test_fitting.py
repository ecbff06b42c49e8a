"""Fitting: stopping, descent, datasamples, mini-batches, rate rescaling, line search, recording, bad options."""

import numpy as np
import pytest

from _shared import REFERENCE_DIR
from flowdash.core.fitting import (FitDiverged, FitOptions, RecordingSchedule, fit, line_search_epochs,
                                   recorded_epochs)
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

    plain, searched = run(None), run({"D": {"epochs": [1], "max_fun_eval": 6}})
    assert 0.02 <= searched.model.D[0] <= 10
    assert searched.nll_train[0, 1] < plain.nll_train[0, 1]


def test_line_search_on_C_alone_fits_the_rate_scale_on_its_schedule():
    # C is not in params_to_opt: only the searches (epochs 2 and 4) move it.
    seen = []
    options = FitOptions(optimizer="ADAM", max_epochs=4, mini_batch_number=3, params_to_opt=("F",),
                         learning_rate={"alpha": 0.01},
                         line_search={"C": {"epochs": {"every": 2}, "searches_per_epoch": 2, "max_fun_eval": 4}})
    result = fit(_model(), DATA, None, options, on_epoch=lambda rec: seen.append(rec.model.fr[0, 0].copy()))
    changed = [not np.array_equal(a, b) for a, b in zip(seen, seen[1:])]
    assert changed == [False, True, False, True]
    assert np.all((1 <= result.model.fr[0, 0]) & (result.model.fr[0, 0] <= 150))
    plain = fit(_model(), DATA, None, FitOptions(optimizer="ADAM", max_epochs=4, mini_batch_number=3,
                                                 params_to_opt=("F",), learning_rate={"alpha": 0.01}))
    assert result.nll_train[0, -1] < plain.nll_train[0, -1]


def test_line_search_schedules():
    assert line_search_epochs([5, 1, 5], 10) == (1, 5)
    assert line_search_epochs({"every": 3}, 10) == (3, 6, 9)
    assert line_search_epochs({"log": 5}, 10_000) == (1, 10, 100, 1000, 10_000)
    assert line_search_epochs({"log": 10}, 5) == (1, 2, 3, 4, 5)
    assert line_search_epochs({"log": 1}, 50) == (1,)
    options = FitOptions(optimizer="GD", max_epochs=100, params_to_opt=("F",), learning_rate={"F": 0.1},
                         line_search={"D": {"epochs": {"log": 3}}, "C": {"epochs": [7], "max_fun_eval": 2}})
    assert list(options.line_search) == ["C", "D"]
    assert options.line_search["D"] == {"epochs": {"log": 3}, "searches_per_epoch": 1, "max_fun_eval": 5}
    assert options.line_search["C"] == {"epochs": (7,), "searches_per_epoch": 1, "max_fun_eval": 2}


@pytest.mark.parametrize("line_search, message", [
    ({"epochs": [1], "params": ["D"], "max_fun": 5}, r"line_search has unknown keys \['epochs', 'max_fun', 'params'\]; "
                                                      "allowed: C, D"),
    ({"F": {"epochs": [1]}}, r"line_search has unknown keys \['F'\]; allowed: C, D"),
    ([1, 2], "line_search must be a mapping"),
    ({"C": [1, 2]}, r"line_search\['C'\] must be a mapping with epochs, searches_per_epoch, max_fun_eval"),
    ({"D": {"max_fun_eval": 3}}, r"line_search\['D'\] needs 'epochs'"),
    ({"D": {"epochs": [1], "nSearchPerEpoch": 2}}, r"line_search\['D'\] has unknown keys \['nSearchPerEpoch'\]"),
    ({"D": {"epochs": [0, 3]}}, r"line_search\['D'\]\['epochs'\]: epochs must be integers in "
                                r"\[1, max_epochs = 10\], got \[0, 3\]"),
    ({"D": {"epochs": [11]}}, r"line_search\['D'\]\['epochs'\]: epochs must be integers in \[1, max_epochs = 10\]"),
    ({"C": {"epochs": {"log": 0}}}, r"line_search\['C'\]\['epochs'\]: 'log' must be an integer >= 1, got 0"),
    ({"C": {"epochs": {"often": 2}}}, r"line_search\['C'\]\['epochs'\]: a schedule mapping is \{'log': n\} or"),
    ({"C": {"epochs": "1, 2"}}, r"line_search\['C'\]\['epochs'\]: expected a list of epochs"),
    ({"C": {"epochs": [1], "searches_per_epoch": 3}},
     r"line_search\['C'\]\['searches_per_epoch'\] must be an integer in \[1, mini_batch_number = 2\], got 3"),
    ({"C": {"epochs": [1], "searches_per_epoch": 0}}, r"line_search\['C'\]\['searches_per_epoch'\] must be"),
    ({"D": {"epochs": [1], "max_fun_eval": 0}}, r"line_search\['D'\]\['max_fun_eval'\] must be an integer >= 1, got 0"),
    ({"D": {"epochs": [1], "max_fun_eval": 2.5}}, r"line_search\['D'\]\['max_fun_eval'\] must be an integer"),
])
def test_bad_line_search(line_search, message):
    with pytest.raises(ValueError, match=message):
        FitOptions(optimizer="GD", max_epochs=10, mini_batch_number=2, params_to_opt=("F",),
                   learning_rate={"F": 0.1}, line_search=line_search)


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


def test_recording_schedule_is_dense_early_log_spaced_late_and_open_ended():
    kept = recorded_epochs(50_000)
    np.testing.assert_array_equal(kept[:501], np.arange(501))
    assert kept[-1] == 50_000 and np.all(np.diff(kept) > 0)
    assert 1_000 <= len(kept) <= 2_000
    # About 300 per decade after the dense part.
    assert abs(np.sum((kept > 5_000) & (kept <= 50_000)) - 300) <= 3
    # Open-ended: a longer fit keeps the same epochs up to where the shorter ended.
    longer = recorded_epochs(80_000)
    np.testing.assert_array_equal(longer[longer < 50_000], kept[:-1][kept[:-1] < 50_000])
    np.testing.assert_array_equal(recorded_epochs(3), [0, 1, 2, 3])
    np.testing.assert_array_equal(recorded_epochs(20, dense_until=2, per_decade=5), [0, 1, 2, 3, 5, 8, 12, 18, 20])


@pytest.mark.parametrize("num_models", [20, 100, 200, 500])
def test_recording_schedule_serves_the_fca_model_choice(num_models):
    # MATH.md §10.3 step 1: for each desired (log-spaced) epoch, the nearest record.
    kept = recorded_epochs(50_000)
    desired = np.unique(np.r_[0, np.floor(np.logspace(0, np.log10(kept[-1]), num_models)).astype(int)])
    pos = np.array([np.argmin(np.abs(kept - e)) for e in desired])
    assert len(np.unique(pos)) == len(desired)
    assert np.all(np.abs(kept[pos] - desired) <= 0.005 * desired)
    # The mirror check reads record min(500, …) as an epoch.
    assert kept[500] == 500


def test_a_recording_schedule_keeps_its_epochs_and_the_last():
    seen = []
    options = FitOptions(optimizer="GD", max_epochs=9, params_to_opt=("F",), learning_rate={"F": 0.005},
                         snapshot_epochs={"dense_until": 2, "per_decade": 5})
    assert options.snapshot_epochs == RecordingSchedule(2, 5)
    result = fit(_model(), DATA, None, options, on_epoch=lambda rec: seen.append((rec.epoch, rec.kept)))
    assert sorted(result.snapshots) == [0, 1, 2, 3, 5, 8, 9]
    assert [e for e, kept in seen if kept] == [0, 1, 2, 3, 5, 8, 9]
    stopped = fit(_model(), DATA, None, options, on_epoch=lambda rec: rec.epoch == 5)
    assert sorted(stopped.snapshots) == [0, 1, 2, 3, 5]


@pytest.mark.parametrize("snapshots, message", [
    ({"dense": 3}, r"snapshot_epochs has unknown keys \['dense'\]; allowed: dense_until, per_decade"),
    ({"per_decade": 0}, "snapshot_epochs: per_decade must be an integer >= 1, got 0"),
    ([1, -2], r"snapshot_epochs must be integers >= 0, got \[1, -2\]"),
    ("1, 2", "snapshot_epochs must be a list of epochs, a RecordingSchedule or None"),
])
def test_bad_snapshot_epochs(snapshots, message):
    with pytest.raises(ValueError, match=message):
        FitOptions(optimizer="GD", params_to_opt=("F",), learning_rate={"F": 0.1}, snapshot_epochs=snapshots)
