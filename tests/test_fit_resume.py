"""Continuing a fit from a checkpoint: exactly the uninterrupted fit, through bytes, and the checks."""

import io
import json

import numpy as np
import pytest

from _shared import REFERENCE_DIR
from flowdash.core.fitting import FitCheckpoint, FitDiverged, FitOptions, fit
from flowdash.core.grid import Grid
from flowdash.core.library import p0_from_library, peq_from_library, rate_from_library
from flowdash.core.model import Model
from flowdash.core.spikedata import load_reference_set

GRID = Grid(6, 12)
DATA = load_reference_set(REFERENCE_DIR / "grads_reflecting.npz", "data")  # 12 trials, 2 neurons, trial end


def _model(grid=GRID, K_peq=1, p0=False, mode="reflecting"):
    peq = peq_from_library(grid, "cos_square")
    fr = np.stack([rate_from_library(grid.x, "linear", slope=10, bias=30)] * 2, axis=1)
    return Model(grid, np.tile(peq, (K_peq, 1)), p0_from_library(grid, "single_well") if p0 else None,
                 1.0, fr, mode)


def _stop_at(k, saved):
    def on_epoch(record):
        if record.epoch == k:
            saved.append(record.checkpoint())
            return True
        return False
    return on_epoch


def _assert_same_fit(whole, first, rest):
    """``first`` (stopped at k) then ``rest`` (resumed) is ``whole``, bit for bit."""
    k = first.epochs[-1]
    np.testing.assert_array_equal(rest.epochs, whole.epochs[k:])
    np.testing.assert_array_equal(first.nll_train, whole.nll_train[:, :k + 1])
    np.testing.assert_array_equal(rest.nll_train, whole.nll_train[:, k:])
    np.testing.assert_array_equal(rest.nll_val, whole.nll_val[:, k:])
    for name in ("peq", "p0", "D", "fr"):
        a, b = getattr(rest.model, name), getattr(whole.model, name)
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_a_one_batch_gd_fit_continues_exactly():
    # example1's data and settings (GD on F, lr 0.005), on a small grid.
    train = load_reference_set(REFERENCE_DIR / "example1.npz", "train")
    val = load_reference_set(REFERENCE_DIR / "example1.npz", "val")
    grid = Grid(8, 8)
    model = Model.from_spec(json.loads((REFERENCE_DIR / "example1.json").read_text())["init_model"], grid,
                            "reflecting")
    options = FitOptions(optimizer="GD", max_epochs=7, params_to_opt=("F",), learning_rate={"F": 0.005})
    whole = fit(model, train, val, options)
    saved = []
    first = fit(model, train, val, options, on_epoch=_stop_at(3, saved))
    assert first.stopped and saved[0].epoch == 3
    # The hook's checkpoint and the result's are the same thing.
    for key, value in first.checkpoint.arrays.items():
        np.testing.assert_array_equal(value, saved[0].arrays[key])
    seen = []
    rest = fit(model, train, val, options, on_epoch=lambda rec: seen.append(rec.epoch),
               resume=FitCheckpoint.from_bytes(saved[0].to_bytes()))
    assert seen == [4, 5, 6, 7] and not rest.stopped
    _assert_same_fit(whole, first, rest)
    assert rest.checkpoint.epoch == 7


def test_adam_with_mini_batches_and_datasamples_continues_exactly():
    # Per-datasample peq, shared p0, D and rates; 3 shuffled batches per datasample.
    train = [DATA.subset(range(0, 5)), DATA.subset(range(6, 11))]
    val = [DATA.subset([5]), DATA.subset([11])]
    model = _model(K_peq=2, p0=True)
    settings = dict(optimizer="ADAM", mini_batch_number=3, params_to_opt=("F", "F0", "D", "Fr", "C"),
                    learning_rate={"alpha": 0.02}, seed=7,
                    line_search={"D": {"epochs": {"every": 2}, "searches_per_epoch": 2, "max_fun_eval": 3}})
    options = FitOptions(max_epochs=5, **settings)
    whole = fit(model, train, val, options)
    # Take the checkpoint at epoch 2 from the hook but let the fit run on: it stays the epoch-2 state.
    records = []
    fit(model, train, val, options, on_epoch=records.append)
    ckpt = FitCheckpoint.from_bytes(records[2].checkpoint().to_bytes())
    assert ckpt.epoch == 2 and ckpt.meta["rates_rescaled"]
    assert ckpt.arrays["adam_F_m"].shape == (2, GRID.N) and ckpt.arrays["adam_F_v"].shape == (2,)
    assert ckpt.arrays["adam_Fr_m"].shape == (1, GRID.N, 2) and ckpt.arrays["adam_C_t"].tolist() == [6 * 2]
    assert ckpt.arrays["adam_F_t"].tolist() == [3 * 2, 3 * 2]
    first = fit(model, train, val, FitOptions(max_epochs=2, **settings))
    rest = fit(model, train, val, options, resume=ckpt)
    _assert_same_fit(whole, first, rest)


def test_a_diverged_fit_keeps_the_checkpoint_of_its_last_finite_epoch_and_can_go_on_slower():
    options = FitOptions(optimizer="GD", max_epochs=20, params_to_opt=("C",), learning_rate={"C": 1e6})
    with pytest.raises(FitDiverged) as info:
        fit(_model(), DATA, None, options)
    partial = info.value.result
    ckpt = partial.checkpoint
    assert ckpt.epoch == partial.epochs[-1]
    np.testing.assert_array_equal(ckpt.arrays["fr"], partial.model.fr)
    slower = FitOptions(optimizer="GD", max_epochs=ckpt.epoch + 2, params_to_opt=("C",), learning_rate={"C": 1.0})
    rest = fit(_model(), DATA, None, slower, resume=ckpt)
    assert list(rest.epochs) == [ckpt.epoch, ckpt.epoch + 1, ckpt.epoch + 2]
    assert np.all(np.isfinite(rest.nll_train))


def test_a_resumed_fit_keeps_the_schedule_time_and_nothing_to_do_is_fine():
    options = FitOptions(optimizer="GD", max_epochs=9, params_to_opt=("F",), learning_rate={"F": 0.005},
                         snapshot_epochs={"dense_until": 2, "per_decade": 5})
    first = fit(_model(), DATA, None, options, on_epoch=lambda rec: rec.epoch == 4)
    assert sorted(first.snapshots) == [0, 1, 2, 3, 4]
    rest = fit(_model(), DATA, None, options, resume=first.checkpoint)
    assert sorted(rest.snapshots) == [5, 8, 9]
    assert rest.seconds > first.checkpoint.seconds > 0
    done = fit(_model(), DATA, None, FitOptions(**{**options.__dict__, "max_epochs": 4}), resume=first.checkpoint)
    assert list(done.epochs) == [4] and done.checkpoint is first.checkpoint
    np.testing.assert_array_equal(done.model.peq, first.model.peq)
    np.testing.assert_array_equal(done.nll_train, first.nll_train[:, -1:])


def test_a_checkpoint_is_plain_data_and_round_trips_through_bytes():
    options = FitOptions(optimizer="ADAM", max_epochs=2, mini_batch_number=2, params_to_opt=("F", "D", "C"),
                         learning_rate={"alpha": 0.02})
    ckpt = fit(_model(p0=True), DATA, DATA.subset([0, 1]), options).checkpoint
    json.dumps(ckpt.meta)  # JSON-able as it is
    assert set(ckpt.arrays) == {"peq", "p0", "D", "fr", "nll_train", "nll_val"} | {
        f"adam_{p}_{part}" for p in ("F", "D", "C") for part in "mvt"}
    assert all(a.dtype.kind in "fi" for a in ckpt.arrays.values())
    back = FitCheckpoint.from_bytes(ckpt.to_bytes())
    assert back.meta == ckpt.meta
    assert set(back.arrays) == set(ckpt.arrays)
    for key, value in ckpt.arrays.items():
        assert back.arrays[key].dtype == value.dtype
        np.testing.assert_array_equal(back.arrays[key], value)


def test_bad_checkpoint_bytes_are_refused_without_unpickling():
    with pytest.raises(ValueError, match="not a flowdash fit checkpoint"):
        FitCheckpoint.from_bytes(b"certainly not an npz")
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a flowdash fit checkpoint"):
        FitCheckpoint.from_bytes(buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps({"format": "something else"})))
    with pytest.raises(ValueError, match="not a valid flowdash fit checkpoint: format/version must be"):
        FitCheckpoint.from_bytes(buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.arange(3.0))
    with pytest.raises(ValueError, match="not a flowdash fit checkpoint: not an .npz archive"):
        FitCheckpoint.from_bytes(buf.getvalue())
    with pytest.raises(TypeError, match="data must be bytes, got str"):
        FitCheckpoint.from_bytes("abc")


def test_a_truncated_checkpoint_is_refused():
    options = FitOptions(optimizer="ADAM", max_epochs=1, params_to_opt=("F",), learning_rate={"alpha": 0.02})
    ckpt = fit(_model(), DATA, None, options).checkpoint
    arrays = {k: v for k, v in ckpt.arrays.items() if k != "adam_F_v"}
    with pytest.raises(ValueError, match="not a valid flowdash fit checkpoint: missing 'adam_F_v'"):
        FitCheckpoint(arrays, ckpt.meta)
    with pytest.raises(ValueError, match=r"not a valid flowdash fit checkpoint: peq, D, fr have shapes"):
        FitCheckpoint({**ckpt.arrays, "peq": ckpt.arrays["peq"][:, :-1]}, ckpt.meta)


GD_F = dict(optimizer="GD", max_epochs=5, params_to_opt=("F",), learning_rate={"F": 0.005})


@pytest.fixture(scope="module")
def gd_checkpoint():
    return fit(_model(), DATA, None, FitOptions(**{**GD_F, "max_epochs": 2})).checkpoint


@pytest.mark.parametrize("model, data, options, message", [
    (_model(grid=Grid(6, 10)), DATA, GD_F,
     r"resume: the checkpoint's grid \{'Np': 6, 'Ne': 12, 'xbegin': -1.0, 'xend': 1.0\} differs from the "
     r"model's \{'Np': 6, 'Ne': 10, "),
    (_model(mode="absorbing"), DATA, GD_F,
     "resume: the checkpoint's boundary_mode 'reflecting' differs from the model's 'absorbing'"),
    (_model(p0=True), DATA, GD_F, "resume: the checkpoint has no p0 but the model is not an equilibrium model"),
    (_model(K_peq=2), [DATA, DATA], GD_F,
     r"resume: the checkpoint's parameter rows \{'peq': 1, 'p0': 1, 'D': 1, 'fr': 1\} differ from the model's "
     r"\{'peq': 2, "),
    (_model(), [DATA, DATA], GD_F, r"resume: the checkpoint was fitted to 1 datasample\(s\), the data has 2"),
    (_model(), DATA, dict(GD_F, params_to_opt=("F", "D"), learning_rate={"F": 0.005, "D": 0.1}),
     r"resume: the checkpoint fitted params_to_opt \['F'\], the options say \['F', 'D'\]"),
    (_model(), DATA, dict(GD_F, optimizer="ADAM", learning_rate={"alpha": 0.1}),
     "resume: the checkpoint's optimizer is 'GD', the options say 'ADAM'"),
    (_model(), DATA, dict(GD_F, max_epochs=1),
     r"resume: max_epochs \(1\) is below the checkpoint's epoch \(2\); max_epochs counts every epoch"),
])
def test_a_checkpoint_must_belong_to_the_fit_it_continues(gd_checkpoint, model, data, options, message):
    with pytest.raises(ValueError, match=message):
        fit(model, data, None, FitOptions(**options), resume=gd_checkpoint)


def test_resume_must_be_a_checkpoint(gd_checkpoint):
    with pytest.raises(TypeError, match="resume must be a FitCheckpoint, got bytes"):
        fit(_model(), DATA, None, FitOptions(**GD_F), resume=gd_checkpoint.to_bytes())
