"""Long fits and model selections in the job layer: recorded models, continue, halves,
selections, tabulated models, line-search settings, the analysis on the store."""
import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from _shared import REFERENCE_DIR
from flowdash import analysis, jobs, settings
from flowdash.core import fitting
from flowdash.core.fitting import FitCheckpoint, FitOptions, RecordingSchedule, fit
from flowdash.core.model import tabulated_spec
from flowdash.core.spikedata import load_reference_set
from flowdash.jobs import fit as fit_kind
from flowdash.jobs import lifecycle
from flowdash.store import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, open_store

SPEC = {"grid": {"Np": 6, "Ne": 8, "xbegin": -1.0, "xend": 1.0},
        "boundary_mode": "reflecting",
        "peq_model": {"model": "double_well", "params": {"xmin": 0.6, "xmax": 0.0, "depth": 2}},
        "p0_model": None, "D": 10.0,
        "fr_model": [{"model": "rectified_linear", "params": {"slope": 100, "x_thresh": -1}}]}
GEN = dict(model="gt", n_trials=4, duration=2.0, dt=1e-4, seed=3, with_trial_end=True,
           val_fraction=0.5, dataset_name="d")
FIT = dict(dataset="d", init_model="gt", peq_override="cos_square", optimizer="GD",
           learning_rate={"F": 0.005}, params_to_opt=["F"], max_epochs=8,
           mini_batch_number=1, Nv=None, snapshot_epochs=[1, 2])


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "s")
    s.save_model("gt", SPEC)
    assert jobs.execute(s, jobs.submit(s, "generation", GEN)) == DONE
    yield s
    s.close()


def cols(store, run_id):
    c = store.read_columns(run_id)
    return c["epoch"], c["nll_train"], c["nll_val"]


# --- recorded models on the schedule --------------------------------------------------
def scheduled_fake(model, train, val, options, on_epoch, resume=None):
    """The core's epoch loop without numerics: each epoch's peq moves a little."""
    kept = set(RecordingSchedule().epochs(options.max_epochs).tolist())
    assert options.snapshot_epochs == RecordingSchedule()
    for e in range(options.max_epochs + 1):
        m = model.replace(peq=model.peq * (1 + 1e-9 * e))
        on_epoch(SimpleNamespace(epoch=e, nll_train=[100.0 - e * 1e-3], nll_val=[90.0],
                                 seconds=0.0, model=m, kept=e in kept))
    return SimpleNamespace(model=m, seconds=0.0, checkpoint=None)


def test_a_long_fit_records_its_models_on_the_schedule_and_keeps_its_snapshots(store):
    jobs.register_kind("fit-scheduled", fit_kind.check,
                       lambda st, rid, hooks: fit_kind.run(st, rid, hooks, fit_fn=scheduled_fake))
    rid = jobs.submit(store, "fit-scheduled", dict(FIT, max_epochs=1500))
    assert store.get_run(rid)["settings"]["record_models"] is True   # >= LONG_FIT_EPOCHS
    assert jobs.execute(store, rid) == DONE
    assert store.model_epochs(rid) == RecordingSchedule().epochs(1500).tolist()
    assert store.snapshot_epochs(rid) == [0, 1, 2, 1500]          # the display copies stay
    assert store.n_epochs(rid) == 1501                            # NLLs at every epoch
    e = store.model_epochs(rid)[-2]
    model = store.read_models(rid, [e])[0]
    assert model["peq"].dtype == np.float64                       # the analysis reads them exact
    init = jobs.build_model(SPEC, peq_override="cos_square")
    np.testing.assert_array_equal(model["peq"], init.peq * (1 + 1e-9 * e))
    assert store.read_snapshot(rid, 1, as_lists=False)["peq"].dtype == np.float32
    # a short fit records none (unless it belongs to a selection)
    short = jobs.submit(store, "fit", FIT)
    assert store.get_run(short)["settings"]["record_models"] is False
    assert jobs.execute(store, short) == DONE and store.model_epochs(short) == []
    # deleting the run deletes its recorded models
    store.delete_run(rid)
    assert store.model_epochs(rid) == [] and store.read_models(rid, [e]) == [None]


def example1_store(tmp_path):
    """Example 1 (N = 1793, one 100 s trial to fit, one to validate) in a store."""
    from flowdash.core.spikedata import concatenate

    case = json.loads((REFERENCE_DIR / "example1.json").read_text())
    spec = dict(case["init_model"], grid=case["grid"], boundary_mode=case["boundary_mode"])
    store = open_store(tmp_path / "ex1")
    store.save_model("ex1-start", spec)
    data = concatenate([load_reference_set(REFERENCE_DIR / "example1.npz", s) for s in ("train", "val")])
    store.save_dataset("ex1", [jobs.spikedata_to_bytes(data)],
                       {"source": "upload", "n_datasamples": 1, "n_neurons": data.n_neurons,
                        "n_trials": 2, "split": {"kind": "even_odd"}})
    return store


def test_the_store_of_a_50000_epoch_example1_fit_stays_under_100_mb(tmp_path):
    """A real Example 1 fit at a few epochs, its bytes per epoch row, per recorded model
    and per display snapshot extrapolated to 50,000 epochs (bench/long_fit.py writes
    the 50,000 epochs through the store API and measures the folder)."""
    store = example1_store(tmp_path)
    rid = jobs.submit(store, "fit", dict(dataset="ex1", init_model="ex1-start", optimizer="GD",
                                         learning_rate={"F": 0.005}, params_to_opt=["F"],
                                         max_epochs=5, mini_batch_number=1, Nv=64,
                                         snapshot_epochs=[1, 6, 13, 50],
                                         record_models=True))
    assert jobs.execute(store, rid) == DONE
    size = store.run_bytes(rid)
    n_rows, n_models = store.n_epochs(rid), len(store.model_epochs(rid))
    assert (n_rows, n_models) == (6, 6)
    per_row = size["epochs"] / n_rows
    per_model = size["models"] / n_models
    per_snap = size["snapshots"] / len(store.snapshot_epochs(rid))
    models = len(RecordingSchedule().epochs(50_000))
    total = 50_001 * per_row + models * per_model + 6 * per_snap + size["other"]
    assert models == 1103
    assert 100 < per_row < 400                       # one JSON line per epoch
    assert per_model > 1793 * 8                      # float64 peq
    assert total < 100e6, f"{total / 1e6:.1f} MB"
    store.close()


# --- continue ------------------------------------------------------------------------
def test_continuing_a_gd_fit_gives_the_uninterrupted_fit(store):
    whole = jobs.submit(store, "fit", dict(FIT, max_epochs=10, record_models=True))
    part = jobs.submit(store, "fit", dict(FIT, max_epochs=4, record_models=True))
    assert jobs.execute(store, whole) == DONE and jobs.execute(store, part) == DONE
    record = jobs.continue_run(store, part, 6)
    assert record["status"] == QUEUED and record["settings"]["max_epochs"] == 10
    assert record["continued"][0]["from_epoch"] == 4 and record["continued"][0]["after"] == DONE
    assert jobs.execute(store, part) == DONE
    e1, t1, v1 = cols(store, whole)
    e2, t2, v2 = cols(store, part)
    np.testing.assert_array_equal(e2, np.arange(11))              # one curve, no gap, no repeat
    np.testing.assert_array_equal(t2, t1)
    np.testing.assert_array_equal(v2, v1)
    assert store.model_epochs(part) == store.model_epochs(whole)
    for a, b in zip(store.read_models(part, range(11)), store.read_models(whole, range(11))):
        np.testing.assert_array_equal(a["peq"], b["peq"])
    np.testing.assert_array_equal(store.get_result(part)["final"]["peq"],
                                  store.get_result(whole)["final"]["peq"])
    assert store.get_result(part)["init"] == store.get_result(whole)["init"]


def fit_core(monkeypatch, fn):
    """Run the "fit" kind on ``fn`` instead of the core's fit (same signature)."""
    from flowdash.jobs import kinds
    monkeypatch.setitem(kinds._KINDS, "fit", kinds.JobKind(
        "fit", fit_kind.check, lambda st, rid, hooks: fit_kind.run(st, rid, hooks, fit_fn=fn)))


def test_a_stopped_adam_fit_continues_with_its_optimizer_state(store, monkeypatch):
    values = dict(FIT, optimizer="ADAM", learning_rate={"alpha": 0.05}, params_to_opt=["F", "D"],
                  max_epochs=6)
    whole = jobs.submit(store, "fit", values)
    assert jobs.execute(store, whole) == DONE

    def stop_at_2(model, train, val, options, on_epoch, resume=None):
        return fit(model, train, val, options, lambda rec: on_epoch(rec) or rec.epoch == 2,
                   resume=resume)

    fit_core(monkeypatch, stop_at_2)
    part = jobs.submit(store, "fit", values)
    assert jobs.execute(store, part) == DONE and store.n_epochs(part) == 3
    assert FitCheckpoint.from_bytes(store.get_checkpoint(part)).epoch == 2
    monkeypatch.undo()
    jobs.continue_run(store, part, 4)
    assert jobs.execute(store, part) == DONE
    np.testing.assert_array_equal(cols(store, part)[1], cols(store, whole)[1])
    np.testing.assert_array_equal(cols(store, part)[0], np.arange(7))


def test_what_cannot_continue_says_why(store):
    rid = jobs.submit(store, "fit", FIT)
    with pytest.raises(jobs.SettingsError, match="still queued"):
        jobs.continue_run(store, rid, 5)
    assert jobs.execute(store, rid) == DONE
    for bad, message in (("x", "expected a number"), (0, "must be an integer in"),
                         (100000, "the total must be an integer in")):
        with pytest.raises(jobs.SettingsError, match=message) as info:
            jobs.continue_run(store, rid, bad)
        assert set(info.value.errors) == {"more_epochs"}
    gen = store.list_runs("generation")[0]["id"]
    with pytest.raises(jobs.SettingsError, match="only fits continue"):
        jobs.continue_run(store, gen, 5)
    # no checkpoint (a worker killed before it saved one)
    killed = jobs.submit(store, "fit", FIT)
    jobs.finish(store, killed, INTERRUPTED, error="killed")
    with pytest.raises(jobs.SettingsError, match="no saved state"):
        jobs.continue_run(store, killed, 5)
    # a failed fit would fail again
    failed = jobs.submit(store, "fit", FIT)
    jobs.finish(store, failed, FAILED, error="the fit diverged")
    with pytest.raises(jobs.SettingsError, match="it failed .the fit diverged.; start a new fit"):
        jobs.continue_run(store, failed, 5)
    # the dataset is gone
    store.delete_dataset("d")
    with pytest.raises(jobs.SettingsError, match="dataset “d” of this fit was deleted"):
        jobs.continue_run(store, rid, 5)
    assert store.get_run(rid)["status"] == DONE                   # nothing changed


def test_a_killed_fit_continues_from_its_last_periodic_checkpoint(store, monkeypatch):
    """A worker killed after epoch 5 whose last periodic checkpoint is epoch 3: the
    continuation recomputes epochs 4 and 5 (already in the log: not written twice)."""
    whole = jobs.submit(store, "fit", FIT)
    assert jobs.execute(store, whole) == DONE
    monkeypatch.setattr(fit_kind, "CHECKPOINT_SECONDS", 0.0)     # every epoch, up to 3

    def killed_after_5(model, train, val, options, on_epoch, resume=None):
        def hook(rec):
            on_epoch(rec)
            if rec.epoch == 3:
                fit_kind.CHECKPOINT_SECONDS = 1e9
            if rec.epoch == 5:
                raise KeyboardInterrupt   # the process dies: no final checkpoint
        return fit(model, train, val, options, hook, resume=resume)

    fit_core(monkeypatch, killed_after_5)
    rid = jobs.submit(store, "fit", FIT)
    with pytest.raises(KeyboardInterrupt):
        jobs.execute(store, rid)
    assert store.get_run(rid)["status"] == INTERRUPTED
    assert FitCheckpoint.from_bytes(store.get_checkpoint(rid)).epoch == 3
    assert store.n_epochs(rid) == 6
    monkeypatch.undo()
    record = jobs.continue_run(store, rid, 5)
    assert record["settings"]["max_epochs"] == 8 and record["continued"][0]["after"] == INTERRUPTED
    assert jobs.execute(store, rid) == DONE
    np.testing.assert_array_equal(cols(store, rid)[0], np.arange(9))
    np.testing.assert_array_equal(cols(store, rid)[1], cols(store, whole)[1])


# --- selections ------------------------------------------------------------------------
SEL = dict(FIT, halves="even_odd", max_epochs=6)


def test_a_selection_queues_two_linked_fits_of_the_two_halves(store):
    sid = jobs.submit_selection(store, SEL, name="my selection")
    sel = store.get_selection(sid)
    assert sel["name"] == "my selection" and len(sel["fits"]) == 2
    assert sel["settings"]["validation"] == "each half validates on the other half"
    runs = store.get_runs(sel["fits"])
    assert [r["refs"]["selection"] for r in runs] == [{"id": sid, "half": 0}, {"id": sid, "half": 1}]
    assert [r["settings"]["half"] for r in runs] == [{"split": "even_odd", "index": 0},
                                                      {"split": "even_odd", "index": 1}]
    assert all(r["settings"]["record_models"] for r in runs)
    assert [r["status"] for r in runs] == [QUEUED, QUEUED]
    # each half fits its trials and validates on the other half's
    full = jobs.load_dataset(store, "d")[0][0]
    train0, val0, _ = jobs.train_val(store, "d", runs[0]["settings"]["half"])
    train1, val1, _ = jobs.train_val(store, "d", runs[1]["settings"]["half"])
    assert train0[0].n_trials == val1[0].n_trials == 2
    for a, b in ((train0[0], full.subset([0, 2])), (val0[0], full.subset([1, 3])),
                 (train1[0], val0[0])):
        assert all(np.array_equal(x[0], y[0]) for x, y in zip(a.trials, b.trials))
    assert store.list_selections()[0]["id"] == sid


def test_cancelling_a_selection_cancels_both_fits(store):
    sid = jobs.submit_selection(store, SEL)
    records = jobs.cancel_selection(store, sid)
    assert [r["status"] for r in records] == [CANCELLED, CANCELLED]
    with pytest.raises(jobs.SettingsError, match="there is no selection"):
        jobs.cancel_selection(store, "0123456789ab")


def test_random_halves_and_two_datasets(store):
    store.save_model("two", dict(SPEC, fr_model=SPEC["fr_model"] * 2))
    assert jobs.execute(store, jobs.submit(store, "generation",
                                           dict(GEN, dataset_name="d2", seed=4))) == DONE
    assert jobs.execute(store, jobs.submit(store, "generation",
                                           dict(GEN, model="two", dataset_name="d3"))) == DONE
    sid = jobs.submit_selection(store, dict(SEL, halves="random", halves_seed=7))
    runs = store.get_runs(store.get_selection(sid)["fits"])
    assert runs[1]["settings"]["half"] == {"split": "random", "index": 1, "seed": 7}
    sid = jobs.submit_selection(store, dict(SEL, halves="two_datasets", dataset2="d2"))
    runs = store.get_runs(store.get_selection(sid)["fits"])
    assert [r["settings"]["dataset"] for r in runs] == ["d", "d2"]
    assert [r["settings"]["half"] for r in runs] == [None, None]
    assert store.get_selection(sid)["settings"]["validation"] == \
        "each dataset validates on its own validation split"
    for values, field, message in (
            (dict(SEL, halves="two_datasets"), "dataset2", "choose the dataset of the second"),
            (dict(SEL, halves="two_datasets", dataset2="d"), "dataset2", "choose another"),
            (dict(SEL, halves="two_datasets", dataset2="d3"), "dataset2", "same neurons"),
            (dict(SEL, halves="thirds"), "halves", "choose one of even_odd, random"),
            (dict(SEL, halves="random", halves_seed=-1), "halves", "seed: must be"),
            (dict(SEL, max_epochs=0), "max_epochs", "must be an integer"),
            (dict(SEL, mini_batch_number=3), "mini_batch_number", r"must be an integer in \[1, 2\]")):
        with pytest.raises(jobs.SettingsError) as info:
            jobs.submit_selection(store, values)
        assert field in info.value.errors and \
            __import__("re").search(message, info.value.errors[field]), info.value.errors
    n = len(store.list_selections())
    with pytest.raises(jobs.SettingsError, match="name"):
        jobs.submit_selection(store, SEL, name="\u200b")
    assert len(store.list_selections()) == n


def test_halves_need_two_trials_in_every_datasample(store):
    assert jobs.execute(store, jobs.submit(store, "generation",
                                           dict(GEN, n_trials=1, val_fraction=0,
                                                dataset_name="one"))) == DONE
    with pytest.raises(jobs.SettingsError) as info:
        jobs.submit_selection(store, dict(SEL, dataset="one"))
    assert "at least 2 trials" in info.value.errors["halves"]


def test_continue_a_selection_continues_both_or_neither(store):
    sid = jobs.submit_selection(store, SEL)
    r1, r2 = store.get_selection(sid)["fits"]
    assert jobs.execute(store, r1) == DONE
    with pytest.raises(jobs.SettingsError, match="still queued"):
        jobs.continue_selection(store, sid, 3)
    assert store.get_run(r1)["status"] == DONE
    assert jobs.execute(store, r2) == DONE
    records = jobs.continue_selection(store, sid, 3)
    assert [r["settings"]["max_epochs"] for r in records] == [9, 9]


# --- the analysis on the store -----------------------------------------------------------
def test_the_analysis_waits_then_runs_on_the_common_epochs(store):
    sid = jobs.submit_selection(store, dict(SEL, max_epochs=12))
    r1, r2 = store.get_selection(sid)["fits"]
    analyst = analysis.Analyst()
    a = analyst.analyse(store, sid, {})
    assert a.waiting == 2 and a.running and a.result is None
    assert a.status_text == "no recorded models yet (0 of 12 epochs); fits running"
    assert jobs.execute(store, r1) == DONE
    a = analyst.analyse(store, sid, {"FC_stride": "3"})
    assert a.waiting == 2                               # half 2 has recorded nothing yet
    assert jobs.execute(store, r2) == DONE
    a = analyst.analyse(store, sid, {"FC_stride": "3"})
    assert a.result is not None and a.upto == 12
    assert a.status_text == "analysed epochs 0–12 of 12; fits done"
    assert a.result.settings.FC_stride == 3
    # the same on the models directly
    from flowdash.core.selection import FeatureConsistency, FCASettings
    paths = [analyst._fit_path(store, analyst.reader.read(store, r))[0] for r in (r1, r2)]
    direct = FeatureConsistency(*paths).analyse(FCASettings(FC_stride=3))
    np.testing.assert_array_equal(direct.JS, a.result.JS)
    assert direct.selected == a.result.selected
    # a new threshold re-selects on the curve already computed
    calls = []
    original = FeatureConsistency.analyse
    FeatureConsistency.analyse = lambda self, s: calls.append(s) or original(self, s)
    try:
        t = analyst.analyse(store, sid, {"FC_stride": "3", "JS_thres": "1e-9"})
    finally:
        FeatureConsistency.analyse = original
    assert calls == [] and t.result.selected == 0          # JS = 0 at epoch 0: the same start
    assert t.result.JS is a.result.JS and t.result.settings.JS_thres == 1e-9
    # settings out of range: the message under the field
    assert set(analyst.analyse(store, sid, {"JS_thres": "0"}).errors) == {"JS_thres"}
    big = analyst.analyse(store, sid, {"FC_stride": "20"})
    assert "FC_stride = 20 is larger than the path" in big.errors["FC_stride"]
    assert "expected a number" in analyst.analyse(store, sid, {"num_models": "many"}).errors[
        "num_models"]


def test_a_running_analysis_is_cut_to_the_epochs_both_fits_reached(store):
    sid = jobs.submit_selection(store, dict(SEL, max_epochs=12))
    r1, r2 = store.get_selection(sid)["fits"]
    assert jobs.execute(store, r1) == DONE
    # half 2 "running": its first 7 epochs recorded
    whole = jobs.submit(store, "fit", dict(FIT, max_epochs=12, record_models=True,
                                           half={"split": "even_odd", "index": 1}))
    assert jobs.execute(store, whole) == DONE
    for k, row in enumerate(store.read_epochs(whole)[:7]):
        row["model"] = store.read_models(whole, [k])[0]
        store.append_epoch(r2, row, expected=k)
    store.set_result(r2, store.get_result(whole))
    store.start_run(r2, 1, None)
    store.beat(lifecycle.worker_of(store.get_run(r2)), {"time": time.time(), "run": r2})
    a = analysis.Analyst().analyse(store, sid, {"FC_stride": "2"})
    assert a.upto == 6 and a.running
    assert a.status_text == "analysed epochs 0–6 of 12; fits running"
    assert max(a.epochs1) <= 6 and max(a.epochs2) <= 6


def test_paths_that_cannot_be_compared_say_why(store):
    store.save_model("fine", dict(SPEC, grid={"Np": 6, "Ne": 10}))
    a = jobs.submit(store, "fit", dict(FIT, record_models=True))
    b = jobs.submit(store, "fit", dict(FIT, init_model="fine", record_models=True))
    assert jobs.execute(store, a) == DONE and jobs.execute(store, b) == DONE
    sid = jobs.pair_runs(store, a, b)
    out = analysis.Analyst().analyse(store, sid, {"FC_stride": "2"})
    assert out.error.startswith("the two fit paths cannot be compared: grids differ")
    with pytest.raises(jobs.SettingsError, match="choose another fit"):
        jobs.pair_runs(store, a, a)


def test_save_and_export_the_selected_model(store):
    sid = jobs.submit_selection(store, SEL)
    for r in store.get_selection(sid)["fits"]:
        assert jobs.execute(store, r) == DONE
    a = analysis.Analyst().analyse(store, sid, {"FC_stride": "2"})
    name = analysis.save_selected(store, a, 1, "selected half 2")
    spec = store.get_model(name)
    assert spec["source"]["half"] == 2 and spec["peq_model"]["model"] == "tabulated"
    model = jobs.build_model(spec)
    r2 = store.get_selection(sid)["fits"][1]
    e = a.selected_models[1]["epoch"]
    np.testing.assert_array_equal(model.peq, store.read_models(r2, [e])[0]["peq"])
    # a saved tabulated model starts a fit and generates data
    rid = jobs.submit(store, "fit", dict(FIT, init_model=name, peq_override=None))
    assert jobs.execute(store, rid) == DONE
    assert jobs.execute(store, jobs.submit(store, "generation",
                                           dict(GEN, model=name, dataset_name="from-sel"))) == DONE
    with pytest.raises(ValueError, match="exists"):
        analysis.save_selected(store, a, 0, name)
    z = np.load(__import__("io").BytesIO(analysis.export_npz(a)), allow_pickle=False)
    assert {"FC1", "FC2", "JS", "epochs1", "selected1_peq", "selected2_peq", "truth_peq",
            "truth_FC"} <= set(z.files)
    summary = json.loads(analysis.export_json(a))
    assert summary["selected"]["epoch_half1"] == int(a.result.epochs1[a.result.selected])
    assert summary["fca_settings"]["FC_stride"] == 2
    assert len(summary["curves"]["JS"]) == len(a.result.JS)


# --- tabulated model specs ---------------------------------------------------------------
def test_a_tabulated_spec_holds_the_model_exactly_within_the_caps():
    spec = dict(SPEC, p0_model={"model": "single_well", "params": {}}, params_size={"peq": 2})
    model = jobs.build_model(spec)
    tab = json.loads(json.dumps(tabulated_spec(model)))
    assert settings.check_model_spec(tab) == {}
    again = jobs.build_model(tab)
    for name in ("peq", "p0", "D", "fr"):
        np.testing.assert_array_equal(getattr(again, name), getattr(model, name))
    big = tabulated_spec(jobs.build_model(dict(SPEC, grid={"Np": 8, "Ne": 1000})))
    assert "at most 6000" in settings.check_model_spec(big)["tabulated"]
    bad = json.loads(json.dumps(tab))
    bad["tabulated"]["peq"]["base64"] = "not base64!"
    assert "not valid base64" in settings.check_model_spec(bad)["tabulated"]
    bad = json.loads(json.dumps(tab))
    bad["tabulated"]["peq"]["shape"] = [2, 40]
    assert "do not hold shape" in settings.check_model_spec(bad)["tabulated"]
    bad = json.loads(json.dumps(tab))
    bad["fr_model"] = bad["fr_model"] * 2
    assert "lists 2 neuron(s)" in settings.check_model_spec(bad)["fr_model"]


# --- line-search settings ----------------------------------------------------------------
@pytest.mark.parametrize("entry, field, message", [
    ({"when": "log", "value": "0"}, "epochs", "must be an integer >= 1"),
    ({"when": "every", "value": "x"}, "epochs", "expected a number"),
    ({"when": "list", "value": "3, 99"}, "epochs", r"'99': must be an integer in \[1, 20\]"),
    ({"when": "log", "value": "3", "searches_per_epoch": "3"}, "searches_per_epoch",
     r"must be an integer in \[1, 2\] \(mini_batch_number = 2\)"),
    ({"when": "log", "value": "3", "max_fun_eval": "0"}, "max_fun_eval", r"in \[1, 100\]"),
    ({"when": "sometimes", "value": "3"}, "epochs", "choose one of off, log, every, list"),
])
def test_line_search_fields_get_their_messages(entry, field, message):
    values = dict(FIT, max_epochs=20, mini_batch_number=2, line_search={"D": entry})
    _, errors = settings.check_fit(values)
    assert set(errors) == {f"line_search:D:{field}"}
    assert __import__("re").search(message, errors[f"line_search:D:{field}"])


def test_line_search_fields_become_the_cores_schedule():
    values = dict(FIT, max_epochs=20, mini_batch_number=2,
                  line_search={"C": {"when": "every", "value": "5", "searches_per_epoch": "2",
                                     "max_fun_eval": "3"},
                               "D": {"when": "list", "value": "4, 1, 4"}})
    s, errors = settings.check_fit(values)
    assert errors == {}
    assert s["line_search"] == {"C": {"epochs": {"every": 5}, "searches_per_epoch": 2,
                                      "max_fun_eval": 3},
                                "D": {"epochs": [1, 4], "searches_per_epoch": 1,
                                      "max_fun_eval": 5}}
    assert settings.fit_options(s).line_search["D"]["epochs"] == (1, 4)
    off = settings.check_fit(dict(FIT, line_search={"C": {"when": "off", "value": "x"}}))
    assert off[1] == {} and off[0]["line_search"] is None


@pytest.mark.parametrize("key, value", [("log", v) for v in (0, 1, 7)] +
                         [("every", v) for v in (0, 1, 30)] +
                         [("max_fun_eval", v) for v in (0, 1, 100, 101)] +
                         [("searches_per_epoch", v) for v in (0, 1, 2, 3)])
def test_line_search_form_and_core_agree(key, value):
    entry = {"epochs": {"log": 3}, "searches_per_epoch": 1, "max_fun_eval": 5}
    if key in ("log", "every"):
        entry["epochs"] = {key: value}
    else:
        entry[key] = value
    _, errors = settings.check_fit(dict(FIT, max_epochs=20, mini_batch_number=2,
                                        line_search={"C": entry}))
    form_ok = not errors
    try:
        FitOptions(optimizer="GD", max_epochs=20, mini_batch_number=2, params_to_opt=("F",),
                   learning_rate={"F": 0.1}, line_search={"C": entry})
        core_ok = True
    except ValueError as exc:
        assert exc.field.startswith("line_search:C:")
        core_ok = False
    cap = settings.LINE_SEARCH_LIMITS.get(key)
    assert form_ok == (core_ok and (cap is None or cap.allows(value))), (key, value, errors)


def test_a_path_of_dirichlet_models_without_the_absorption_step_is_absorbing():
    """The FC and divergences follow the process: Dirichlet walls absorb, whatever the
    likelihood's absorption step (FitPath.from_models read boundary_mode before)."""
    from flowdash.core.selection import FitPath, spectrum_mode
    spec = dict(SPEC, boundary_mode="reflecting", boundary_conditions="dirichlet",
                absorption_step=False, p0_model={"model": "single_well", "params": {}})
    model = jobs.build_model(spec)
    assert model.boundary_mode == "reflecting" and model.boundary_conditions == "dirichlet"
    path = FitPath.from_models([0, 1], [model, model], ("F",))
    assert path.boundary_mode == "absorbing"
    assert spectrum_mode("neumann") == "reflecting"
    with pytest.raises(ValueError, match="boundary_conditions must be"):
        spectrum_mode("absorbing")
