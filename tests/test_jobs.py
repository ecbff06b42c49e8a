"""Job-layer tests: real worker processes, real core on a tiny grid."""
import os
import signal
import time

import numpy as np
import pytest

from flowdash import jobs
from flowdash import settings
from flowdash import export
from flowdash.store import CANCELLED, DONE, FAILED, INTERRUPTED, RunStore

SPEC = {"grid": {"Np": 6, "Ne": 8, "xbegin": -1.0, "xend": 1.0},
        "boundary_mode": "reflecting",
        "peq_model": {"model": "double_well", "params": {"xmin": 0.6, "xmax": 0.0, "depth": 2}},
        "p0_model": None, "D": 10.0,
        "fr_model": [{"model": "rectified_linear", "params": {"slope": 100, "x_thresh": -1}}]}
GEN = dict(model="gt", n_trials=2, duration=2.0, dt=1e-4, seed=3, with_trial_end=True,
           val_fraction=0.5, dataset_name="d")


def fit_settings(**kw):
    s = dict(dataset="d", init_model="gt", peq_override="cos_square", optimizer="GD",
             learning_rate={"F": 0.005}, params_to_opt=["F"], max_epochs=4,
             mini_batch_number=1, Nv=None, snapshot_epochs=[1, 2])
    s.update(kw)
    return s


# module-level fakes: picklable for the spawned worker ------------------------
def failing_fit(model, train, val, options, on_epoch):
    raise RuntimeError("boom: the optimizer diverged")


def diverging_fit(model, train, val, options, on_epoch):
    from types import SimpleNamespace
    from flowdash.core.fitting import FitDiverged
    on_epoch(SimpleNamespace(epoch=0, nll_train=[1.0], nll_val=[2.0], seconds=0.0, model=model))
    raise FitDiverged("the fit diverged at epoch 1 (the NLL is not finite); lower the "
                      "learning rate(s)", SimpleNamespace(model=model, seconds=0.1))


def wait_final(store, run_id, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        rec = store.get_run(run_id)
        if rec["status"] not in ("queued", "running"):
            return rec
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {rec['status']} after {timeout} s")


def wait_epochs(store, run_id, n, timeout=60):
    t0 = time.time()
    while store.n_epochs(run_id) < n:
        assert time.time() - t0 < timeout, "no progress"
        time.sleep(0.05)


@pytest.fixture
def path(tmp_path):
    p = str(tmp_path / "store")
    store = RunStore(p)
    store.save_model("gt", SPEC)
    rid = jobs.create_generation(p, GEN)
    assert jobs.run_generation(p, rid) == DONE
    store.close()
    return p


def test_generation_records_progress_and_dataset(tmp_path):
    p = str(tmp_path / "s")
    store = RunStore(p)
    store.save_model("gt", SPEC)
    seen = []
    rid = jobs.create_generation(p, dict(GEN, n_trials=3))
    assert jobs.run_generation(p, rid, on_progress=lambda d, n: seen.append((d, n))) == DONE
    assert seen == [(1, 3), (2, 3), (3, 3)]
    rec = store.get_run(rid)
    assert rec["status"] == DONE and rec["progress"] == 1.0 and rec["pid"] == os.getpid()
    samples, meta = jobs.load_dataset(store, "d")
    assert samples[0].n_trials == 3 and meta["model"] == "gt"
    assert meta["split"] == {"kind": "random", "val_fraction": 0.5, "seed": 3}
    train, val = jobs.split_samples(samples, meta)
    assert (train[0], val[0]) == samples[0].split(0.5, 3)
    assert len(store.get_latent("d")["x"]) == 3


def test_generation_failure_is_recorded(tmp_path, caplog):
    p = str(tmp_path / "s")
    with pytest.raises(settings.SettingsError, match="no saved model named “missing”"):
        jobs.create_generation(p, dict(GEN, model="missing"))
    RunStore(p).save_model("gt", SPEC)
    rid = jobs.create_generation(p, GEN)

    def broken(*args, **kwargs):
        raise RuntimeError("boom in the simulation")
    assert jobs.run_generation(p, rid, simulate_fn=broken) == FAILED
    rec = RunStore(p).get_run(rid)
    assert rec["status"] == FAILED and rec["error"] == "RuntimeError: boom in the simulation"
    assert "Traceback" in caplog.text and "boom in the simulation" in caplog.text


def test_generation_cancel_between_trials(tmp_path):
    p = str(tmp_path / "s")
    store = RunStore(p)
    store.save_model("gt", SPEC)
    rid = jobs.create_generation(p, dict(GEN, n_trials=6))
    assert jobs.run_generation(p, rid, on_progress=lambda d, n: jobs.cancel(p, rid)) == CANCELLED
    assert store.get_dataset("d") is None
    rec = store.get_run(rid)
    assert rec["status"] == CANCELLED and "no dataset was saved" in rec["message"]


def test_generation_equals_simulate_with_the_recorded_seed(tmp_path):
    from flowdash.core.simulation import simulate
    p = str(tmp_path / "s")
    store = RunStore(p)
    store.save_model("gt", SPEC)
    rid = jobs.create_generation(p, dict(GEN, n_trials=3, seed=""))   # blank: fresh entropy
    assert jobs.run_generation(p, rid) == DONE
    samples, meta = jobs.load_dataset(store, "d")
    assert isinstance(meta["seed"], int) and store.get_run(rid)["seed_used"] == meta["seed"]
    sim = simulate(jobs.build_model(SPEC), 3, GEN["duration"], dt=GEN["dt"], seed=meta["seed"])
    assert samples[0] == sim.data
    assert store.get_run(rid)["refs"]["model_spec"]["D"] == SPEC["D"]


def test_generation_limits_and_names(tmp_path):
    p = str(tmp_path / "s")
    store = RunStore(p)
    store.save_model("gt", SPEC)
    with pytest.raises(settings.SettingsError) as err:
        jobs.create_generation(p, dict(GEN, n_trials=10000, duration=100.0))
    assert "at most 20000000 are allowed" in err.value.errors["n_trials"]
    s, errors = settings.check_generation(dict(GEN, val_fraction="0.95", dt="nan"), store)
    assert errors == {"val_fraction": "must be a number in [0, 0.9]", "dt": "expected a finite number"}
    rid = jobs.create_generation(p, GEN)
    assert jobs.run_generation(p, rid) == DONE
    s, errors = settings.check_generation(GEN, store)
    assert "exists; choose another name or delete the old dataset" in errors["dataset_name"]


def test_sigterm_during_generation_is_interrupted(tmp_path):
    p = str(tmp_path / "s")
    store = RunStore(p)
    store.save_model("gt", SPEC)
    rid = jobs.start_generation(p, dict(GEN, n_trials=400, duration=5.0))
    t0 = time.time()
    while (store.get_run(rid)["progress"] or 0) == 0:
        assert time.time() - t0 < 60, "no progress"
        time.sleep(0.02)
    os.kill(store.get_run(rid)["pid"], signal.SIGTERM)
    rec = wait_final(store, rid, 30)
    assert rec["status"] == INTERRUPTED, rec
    assert store.get_dataset("d") is None


def test_fit_records_every_epoch(path):
    store = RunStore(path)
    rid = jobs.start_fit(path, fit_settings())
    rec = wait_final(store, rid)
    assert rec["status"] == DONE, rec["error"]
    epochs = store.read_epochs(rid)
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3, 4]
    assert all(len(e["nll_train"]) == 1 and len(e["nll_val"]) == 1 for e in epochs)
    assert [e["epoch"] for e in epochs if "snapshot" in e] == [0, 1, 2, 4]
    assert epochs[-1]["nll_train"][0] < epochs[0]["nll_train"][0]
    result = store.get_result(rid)
    assert len(result["x"]) == 5 * 8 + 1 and "final" in result
    z = np.load(__import__("io").BytesIO(export.export_npz(store, rid)))
    assert z["nll_train"].shape == (1, 5) and "snapshot_1_peq" in z.files


def test_two_fits_run_at_once(path):
    store = RunStore(path)
    a = jobs.start_fit(path, fit_settings(pace=0.25))
    b = jobs.start_fit(path, fit_settings(max_epochs=2))
    assert wait_final(store, b)["status"] == DONE
    assert wait_final(store, a)["status"] == DONE
    assert store.n_epochs(a) == 5


def test_cancel_keeps_partial_log(path):
    store = RunStore(path)
    rid = jobs.start_fit(path, fit_settings(max_epochs=200, pace=0.25))
    wait_epochs(store, rid, 3)
    jobs.cancel(path, rid)
    rec = wait_final(store, rid)
    assert rec["status"] == CANCELLED
    n = store.n_epochs(rid)
    assert 3 <= n < 200
    assert "final" in store.get_result(rid)


def test_failure_recorded_with_reason(path):
    store = RunStore(path)
    rid = jobs.start_fit(path, fit_settings(), fit_fn=failing_fit)
    rec = wait_final(store, rid)
    assert rec["status"] == FAILED
    assert "boom: the optimizer diverged" in rec["error"]
    assert "Traceback" not in rec["error"]


def test_invalid_settings_rejected_before_start(path):
    with pytest.raises(settings.SettingsError, match="learning_rate:F: required"):
        jobs.start_fit(path, fit_settings(learning_rate={}))
    with pytest.raises(settings.SettingsError, match=r"pace: must be a number in \[0, 10\]"):
        jobs.start_fit(path, fit_settings(pace=11))
    store = RunStore(path)
    for bad in (float("nan"), float("inf"), "x", -1):
        _, errors = settings.check_fit(fit_settings(learning_rate={"F": bad}), store)
        assert set(errors) == {"learning_rate:F"}, errors
    _, errors = settings.check_fit(fit_settings(dataset="nope", init_model="missing"), store)
    assert "no dataset" in errors["dataset"] and "no saved model" in errors["init_model"]
    store.save_model("two", dict(SPEC, fr_model=SPEC["fr_model"] * 2))
    _, errors = settings.check_fit(fit_settings(init_model="two"), store)
    assert "2 neuron(s) but the dataset has 1" in errors["init_model"]
    _, errors = settings.check_fit(fit_settings(params_to_opt=["F0"], learning_rate={"F0": 1}), store)
    assert "equilibrium" in errors["params_to_opt"]
    _, errors = settings.check_fit(fit_settings(max_epochs="2.5", snapshot_epochs="1, x"))
    assert errors == {"max_epochs": "expected a whole number",
                      "snapshot_epochs": "'x': expected a number (e.g. 1, 6, 13, 50)"}
    assert store.list_runs("fit") == []


def test_run_keeps_the_model_spec_and_dataset_meta(path):
    store = RunStore(path)
    rid = jobs.start_fit(path, fit_settings(max_epochs=1))
    refs = store.get_run(rid)["refs"]
    assert refs["model_spec"]["D"] == SPEC["D"] and refs["dataset_meta"]["n_trials"] == 2
    assert wait_final(store, rid)["status"] == DONE


def test_diverged_fit_keeps_the_finite_epochs(path):
    store = RunStore(path)
    rid = jobs.start_fit(path, fit_settings(), fit_fn=diverging_fit)
    rec = wait_final(store, rid)
    assert rec["status"] == FAILED and rec["error"].startswith("the fit diverged at epoch 1")
    assert store.n_epochs(rid) == 1 and "final" in store.get_result(rid)


def test_restart_marks_dead_worker_interrupted(path):
    store = RunStore(path)
    rid = jobs.start_fit(path, fit_settings(max_epochs=500, pace=0.25))
    wait_epochs(store, rid, 2)
    pid = store.get_run(rid)["pid"]
    os.kill(pid, signal.SIGKILL)            # the worker dies without a word
    time.sleep(0.5)
    assert store.get_run(rid)["status"] == "running"
    assert jobs.recover(path) == [rid]      # what create_app does at start
    rec = store.get_run(rid)
    assert rec["status"] == INTERRUPTED and rec["error"]


def test_sigterm_marks_interrupted(path):
    store = RunStore(path)
    rid = jobs.start_fit(path, fit_settings(max_epochs=500, pace=0.25))
    wait_epochs(store, rid, 2)
    os.kill(store.get_run(rid)["pid"], signal.SIGTERM)   # server shutdown
    assert wait_final(store, rid, 20)["status"] == INTERRUPTED


def test_job_layer_and_app_import_without_side_effects():
    import subprocess
    import sys
    code = ("import sys, flowdash.jobs, flowdash.store, flowdash.settings, flowdash.export; "
            "assert 'dash' not in sys.modules, 'jobs imports dash'; "
            "import app; assert 'flowdash.pages.model.callbacks' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_non_finite_nll_never_breaks_views_or_export(tmp_path):
    """None (a non-finite NLL) in the epoch log: curves, figures and export still work."""
    from flowdash.pages.fit import view
    store = RunStore(str(tmp_path / "s"))
    rid = store.create_run("fit", "nan", {"max_epochs": 2, "snapshot_epochs": [1]})
    for k, (tr, va) in enumerate([([1.0, 2.0], [3.0, 4.0]), ([float("nan"), 1.0], None),
                                  ([0.5, 0.5], [1.0, float("inf")])]):
        store.append_epoch(rid, {"epoch": k, "nll_train": jobs._finite_list(tr),
                                 "nll_val": jobs._finite_list(va), "elapsed": 0.1 * k,
                                 "time": 0.0, "D": [1.0]})
    assert store.read_epochs(rid)[1]["nll_train"] == [None, 1.0]
    es, train, val = view.curves(store.read_epochs(rid))
    assert es == [0, 1, 2] and train == [3.0, None, 1.0] and val == [7.0, None, None]
    z = np.load(__import__("io").BytesIO(export.export_npz(store, rid)))
    assert z["nll_train"].shape == (2, 3) and np.isnan(z["nll_train"][0, 1])
    assert np.isnan(z["nll_val"][:, 1]).all() and np.isnan(z["nll_val"][1, 2])



def test_generation_export_has_the_data_and_the_latent_paths(path):
    store = RunStore(path)
    rid = next(r["id"] for r in store.list_runs("generation"))
    z = np.load(__import__("io").BytesIO(export.export_npz(store, rid)))
    assert any(k.startswith("data0_") and k.endswith("_ntrials") for k in z.files)
    assert {"latent_t_0", "latent_x_0", "latent_t_1"} <= set(z.files)
    assert z["latent_t_0"].shape == z["latent_x_0"].shape and z["latent_t_0"][0] == 0.0


def test_optional_numbers_keep_zero_and_blank_means_none():
    s, errors = settings.check_generation(dict(GEN, seed=0))
    assert errors == {} and s["seed"] == 0
    s, errors = settings.check_generation(dict(GEN, seed="  "))
    assert errors == {} and s["seed"] is None
