"""Job-layer tests: the lifecycle, the kinds, real worker processes, the real core on a tiny grid."""
import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from flowdash import export, jobs, settings
from flowdash.core.fitting import FitCheckpoint
from flowdash.jobs import fit as fit_kind
from flowdash.jobs import generation as gen_kind
from flowdash.jobs import lifecycle
from flowdash.store import CANCELLED, DONE, FAILED, INTERRUPTED, open_store

REPO = Path(__file__).resolve().parents[1]
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


def new_store(tmp_path, name="s"):
    store = open_store(tmp_path / name)
    store.save_model("gt", SPEC)
    return store


@pytest.fixture
def store(tmp_path):
    """A store with the model "gt" and the dataset "d" (generated in-process)."""
    s = new_store(tmp_path)
    assert jobs.execute(s, jobs.submit(s, "generation", GEN)) == DONE
    yield s
    s.close()


# fakes of the core, as job kinds run in this process ------------------------
def failing_fit(model, train, val, options, on_epoch):
    raise RuntimeError("boom: something broke at epoch 3")


def diverging_fit(model, train, val, options, on_epoch):
    from flowdash.core.fitting import FitDiverged
    on_epoch(SimpleNamespace(epoch=0, nll_train=[1.0], nll_val=[2.0], seconds=0.0, model=model))
    raise FitDiverged("the fit diverged at epoch 1 (the NLL is not finite); lower the "
                      "learning rate(s)", SimpleNamespace(model=model, seconds=0.1))


def diverging_at_0(model, train, val, options, on_epoch):
    from flowdash.core.fitting import FitDiverged
    raise FitDiverged("the fit diverged at epoch 0 (the NLL is not finite); lower the "
                      "learning rate(s)", SimpleNamespace(model=model, seconds=0.0))


def with_fit(fn):
    return lambda store, run_id, hooks: fit_kind.run(store, run_id, hooks, fit_fn=fn)


def submit_as(store, kind, run_fn, values, check=fit_kind.check):
    jobs.register_kind(kind, check, run_fn)
    return jobs.submit(store, kind, values)


# --- generation ----------------------------------------------------------------
def test_generation_records_progress_and_dataset(tmp_path):
    store = new_store(tmp_path)
    rid = jobs.submit(store, "generation", dict(GEN, n_trials=3))
    assert store.get_run(rid)["name"] == "generate d"
    assert jobs.execute(store, rid) == DONE
    rec = store.get_run(rid)
    assert rec["status"] == DONE and rec["progress"] == 1.0 and rec["pid"] == os.getpid()
    assert re.fullmatch(r"3 trials in \d+\.\d\d s", rec["message"])
    samples, meta = jobs.load_dataset(store, "d")
    assert samples[0].n_trials == 3 and meta["model"] == "gt" and meta["run_id"] == rid
    assert meta["split"] == {"kind": "random", "val_fraction": 0.5, "seed": 3}
    train, val = jobs.split_samples(samples, meta)
    assert (train[0], val[0]) == samples[0].split(0.5, 3)
    assert len(store.get_latent("d")["x"]) == 3
    assert store.active_runs() == [] and store.heartbeats() == {}   # the temporary worker left


def test_generation_failure_is_recorded_with_its_reason(tmp_path, caplog):
    store = new_store(tmp_path)
    with pytest.raises(settings.SettingsError, match="no saved model named “missing”"):
        jobs.submit(store, "generation", dict(GEN, model="missing"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom in the simulation")
    rid = submit_as(store, "generation-broken",
                    lambda s, r, h: gen_kind.run(s, r, h, simulate_fn=broken), GEN,
                    check=gen_kind.check)
    assert jobs.execute(store, rid) == FAILED
    rec = jobs.observe(store, rid)
    assert rec["status"] == FAILED and rec["error"] == "RuntimeError: boom in the simulation"
    assert "Traceback" in caplog.text and "boom in the simulation" in caplog.text
    assert store.get_dataset("d") is None


def test_generation_cancel_between_trials_saves_nothing(tmp_path):
    from flowdash.core.simulation import simulate
    store = new_store(tmp_path)

    def cancelling(*args, on_trial, **kwargs):   # the user clicks Cancel after trial 1
        return simulate(*args, on_trial=lambda n, t: (jobs.cancel(store, rid), on_trial(n, t))[1],
                        **kwargs)
    rid = submit_as(store, "generation-cancelled",
                    lambda s, r, h: gen_kind.run(s, r, h, simulate_fn=cancelling),
                    dict(GEN, n_trials=6), check=gen_kind.check)
    assert jobs.execute(store, rid) == CANCELLED
    rec = store.get_run(rid)
    assert rec["message"].startswith("cancelled after ") and "no dataset was saved" in rec["message"]
    assert store.get_dataset("d") is None


def test_generation_equals_simulate_with_the_recorded_seed(tmp_path):
    from flowdash.core.simulation import simulate
    store = new_store(tmp_path)
    rid = jobs.submit(store, "generation", dict(GEN, n_trials=3, seed=""))  # blank: fresh entropy
    assert jobs.execute(store, rid) == DONE
    samples, meta = jobs.load_dataset(store, "d")
    assert isinstance(meta["seed"], int) and store.get_run(rid)["seed_used"] == meta["seed"]
    sim = simulate(jobs.build_model(SPEC), 3, GEN["duration"], dt=GEN["dt"], seed=meta["seed"])
    assert samples[0] == sim.data
    assert store.get_run(rid)["refs"]["model_spec"]["D"] == SPEC["D"]


def test_generation_limits_and_names(tmp_path):
    store = new_store(tmp_path)
    with pytest.raises(settings.SettingsError) as err:
        jobs.submit(store, "generation", dict(GEN, n_trials=10000, duration=100.0))
    assert "at most 20000000 are allowed" in err.value.errors["n_trials"]
    s, errors = settings.check_generation(dict(GEN, val_fraction="0.95", dt="nan"), store)
    assert errors == {"val_fraction": "must be a number in [0, 0.9]", "dt": "expected a finite number"}
    a, b = (jobs.submit(store, "generation", GEN) for _ in range(2))   # same name, both queued
    assert jobs.execute(store, a) == DONE
    s, errors = settings.check_generation(GEN, store)
    assert "exists; choose another name or delete the old dataset" in errors["dataset_name"]
    assert jobs.execute(store, b) == FAILED                # the name was taken meanwhile
    assert "could not be saved" in store.get_run(b)["error"]
    assert store.list_runs("fit") == []


def test_optional_numbers_keep_zero_and_blank_means_none():
    s, errors = settings.check_generation(dict(GEN, seed=0))
    assert errors == {} and s["seed"] == 0
    s, errors = settings.check_generation(dict(GEN, seed="  "))
    assert errors == {} and s["seed"] is None


# --- fits (in this process) -----------------------------------------------------------
def test_fit_records_every_epoch_and_its_final_arrays(store):
    rid = jobs.submit(store, "fit", fit_settings())
    assert jobs.execute(store, rid) == DONE
    rec = store.get_run(rid)
    assert rec["message"] == "4 epochs" and rec["error"] is None
    epochs = store.read_epochs(rid)
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3, 4]
    assert all(len(e["nll_train"]) == 1 and len(e["nll_val"]) == 1 for e in epochs)
    assert [e["epoch"] for e in epochs if "snapshot" in e] == [0, 1, 2, 4]
    assert epochs[-1]["nll_train"][0] < epochs[0]["nll_train"][0]
    result = store.get_result(rid)
    assert len(result["x"]) == 5 * 8 + 1 and set(result["final"]) >= {"peq", "p0", "D", "fr"}
    assert store.get_latest(rid)["epoch"] == 4
    assert FitCheckpoint.from_bytes(store.get_checkpoint(rid)).epoch == 4
    snap = store.read_snapshot(rid, 4, as_lists=False)     # a float32 display copy
    assert snap["peq"].dtype == np.float32 and snap["p0"] is None and snap["fr"] is None
    np.testing.assert_allclose(snap["peq"], result["final"]["peq"], rtol=1e-6)
    z = np.load(io.BytesIO(export.export_npz(store, rid)))
    assert z["nll_train"].shape == (1, 5) and "snapshot_1_peq" in z.files


def test_the_stored_checkpoint_continues_the_fit_exactly(store):
    """What a stopped fit leaves (its checkpoint, refs and settings) continues it
    with the core's fit(..., resume=) as if it had never stopped."""
    from flowdash.core.fitting import fit
    adam = dict(optimizer="ADAM", learning_rate={"alpha": 0.05}, params_to_opt=["F", "D"])
    short, full = (jobs.submit(store, "fit", fit_settings(max_epochs=e, **adam)) for e in (2, 4))
    assert jobs.execute(store, short) == DONE and jobs.execute(store, full) == DONE
    rec = store.get_run(short)
    ckpt = FitCheckpoint.from_bytes(store.get_checkpoint(short))
    assert ckpt.epoch == 2
    train, val, _ = jobs.train_val(store, "d")
    model = jobs.build_model(rec["refs"]["model_spec"], peq_override="cos_square")
    resumed = fit(model, train[0], val[0],
                  settings.fit_options(dict(rec["settings"], max_epochs=4)), resume=ckpt)
    cols = store.read_columns(full)
    np.testing.assert_allclose(resumed.nll_train[0], cols["nll_train"][2:, 0], rtol=1e-12)
    np.testing.assert_allclose(resumed.model.peq, store.get_result(full)["final"]["peq"],
                               rtol=1e-12)


def interrupted_at_2(model, train, val, options, on_epoch):
    """The real core; a second SIGTERM lands right after epoch 2 is recorded."""
    from flowdash.core.fitting import fit

    def hook(rec):
        stop = on_epoch(rec)
        if rec.epoch == 2:
            raise jobs.Interrupted("SIGTERM again")
        return stop
    return fit(model, train, val, options, on_epoch=hook)


def test_a_fit_stopped_at_once_keeps_its_arrays_and_checkpoint(store):
    rid = submit_as(store, "fit-interrupted", with_fit(interrupted_at_2), fit_settings())
    assert jobs.execute(store, rid) == INTERRUPTED
    assert store.n_epochs(rid) == 3 and store.get_latest(rid)["epoch"] == 2
    assert FitCheckpoint.from_bytes(store.get_checkpoint(rid)).epoch == 2
    assert "final" in store.get_result(rid)


def test_run_keeps_the_model_spec_and_dataset_meta(store):
    rid = jobs.submit(store, "fit", fit_settings(max_epochs=1), name="  my fit ")
    rec = store.get_run(rid)
    assert rec["name"] == "my fit"
    assert rec["refs"]["model_spec"]["D"] == SPEC["D"] and rec["refs"]["dataset_meta"]["n_trials"] == 2


def test_invalid_settings_are_rejected_before_anything_is_recorded(store):
    with pytest.raises(settings.SettingsError, match="learning_rate:F: required"):
        jobs.submit(store, "fit", fit_settings(learning_rate={}))
    with pytest.raises(settings.SettingsError, match=r"pace: must be a number in \[0, 10\]"):
        jobs.submit(store, "fit", fit_settings(pace=11))
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
    with pytest.raises(ValueError, match="unknown job kind 'nope'; known kinds: .*fit"):
        jobs.submit(store, "nope", {})
    assert store.list_runs("fit") == []


def test_failure_is_recorded_with_its_reason(store):
    rid = submit_as(store, "fit-failing", with_fit(failing_fit), fit_settings())
    assert jobs.execute(store, rid) == FAILED
    rec = store.get_run(rid)
    assert rec["error"] == "RuntimeError: boom: something broke at epoch 3"


def test_diverged_fit_keeps_the_finite_epochs(store):
    rid = submit_as(store, "fit-diverging", with_fit(diverging_fit), fit_settings())
    assert jobs.execute(store, rid) == FAILED
    rec = store.get_run(rid)
    assert rec["error"].startswith("the fit diverged at epoch 1")
    assert store.n_epochs(rid) == 1 and "final" in store.get_result(rid)


def test_divergence_at_epoch_0_says_what_is_wrong_not_the_learning_rate(store):
    # a p0 on an absorbing wall: the real core fails before any step
    store.save_model("wall", dict(SPEC, boundary_mode="absorbing", p0_model={
        "model": "single_well", "params": {"xmin": 1.0, "miu": 1e9}}))
    rid = jobs.submit(store, "fit", fit_settings(init_model="wall"))
    assert jobs.execute(store, rid) == FAILED
    error = store.get_run(rid)["error"]
    assert "not finite at epoch 0, before any step" in error and "absorbing wall" in error
    assert "lower the learning rate" not in error
    # a non-finite NLL at epoch 0 with a rate that is 0 where the data has spikes
    from flowdash.core.grid import Grid
    from flowdash.core.model import Model
    grid = Grid(6, 8)
    silent = Model(grid, np.full(grid.N, 0.5), None, 10.0, np.zeros((grid.N, 1)), "reflecting")
    train, val = jobs.train_val(store, "d")[:2]
    msg = fit_kind.epoch0_message(silent, train, val, ValueError("NLL is nan"))
    assert "neuron 1 fires" in msg and "rate is 0 everywhere" in msg
    assert "learning rate is not the cause" in msg
    rid = submit_as(store, "fit-diverging-0", with_fit(diverging_at_0), fit_settings())
    assert jobs.execute(store, rid) == FAILED
    assert "lower the learning rate" not in store.get_run(rid)["error"]


def test_cancel_a_queued_run_and_a_retry_never_reruns(store):
    a = jobs.submit(store, "fit", fit_settings())
    rec = jobs.cancel(store, a)
    assert rec["status"] == CANCELLED and rec["message"] == "cancelled before it started"
    assert jobs.execute(store, a) == CANCELLED and store.n_epochs(a) == 0
    b = jobs.submit(store, "fit", fit_settings(max_epochs=2))
    assert jobs.execute(store, b) == DONE
    assert jobs.execute(store, b) == DONE                  # a retried task: nothing runs again
    assert [e["epoch"] for e in store.read_epochs(b)] == [0, 1, 2]
    assert jobs.cancel(store, b)["status"] == DONE          # a final status stays
    assert jobs.cancel(store, "x" * 10_000) is None        # never reaches the store
    assert jobs.observe(store, "../../etc") is None


def test_a_kind_unknown_to_the_worker_fails_the_run_with_why(store):
    rid = store.create_run("not-installed", "n", {})
    assert jobs.execute(store, rid) == FAILED
    assert "unknown job kind 'not-installed'" in store.get_run(rid)["error"]


# --- lifecycle: heartbeats, queue, one owner of statuses ------------------------------
def test_reaper_interrupts_runs_of_dead_workers_only(store):
    now = time.time()
    runs = {}
    for name, beat_age, beat_run in (("alive", 1.0, "self"), ("stale", 30.0, "self"),
                                     ("gone", None, None), ("moved-on", 1.0, None)):
        rid = store.create_run("fit", name, {})
        store.start_run(rid, 1000 + len(runs), None)
        rec = store.update_run(rid, started=now - 60)
        if beat_age is not None:
            store.beat(lifecycle.worker_of(rec), {"time": now - beat_age,
                                                  "run": rid if beat_run else None})
        runs[name] = rid
    young = store.create_run("fit", "young", {})           # just claimed, no beat yet
    store.start_run(young, 999, None)
    assert sorted(jobs.reap(store)) == sorted([runs["stale"], runs["gone"], runs["moved-on"]])
    for name in ("stale", "gone", "moved-on"):
        rec = store.get_run(runs[name])
        assert rec["status"] == INTERRUPTED and "its worker" in rec["error"]
    assert "no heartbeat for 30 s" in store.get_run(runs["stale"])["error"]
    assert store.get_run(runs["alive"])["status"] == "running"
    assert store.get_run(young)["status"] == "running"
    assert jobs.reap(store) == []


def test_a_late_heartbeat_of_a_live_local_worker_is_not_a_death(store):
    """A worker starved of CPU beats late; on this machine its process shows it is alive
    (same pid and start time). A pid that is gone is dead."""
    import socket

    import psutil

    now, started = time.time(), psutil.Process(os.getpid()).create_time()
    runs = {}
    for name, pid, since in (("starved", os.getpid(), started), ("killed", 2 ** 22 + 1, started)):
        rid = store.create_run("fit", name, {})
        store.start_run(rid, pid, None)
        rec = store.update_run(rid, started=now - 60)
        store.beat(lifecycle.worker_of(rec), {"time": now - 30, "run": rid, "host": socket.gethostname(),
                                              "pid": pid, "since": since})
        runs[name] = rid
        reaped = jobs.reap(store)
        assert (rid in reaped) == (name != "starved"), name
    assert store.get_run(runs["starved"])["status"] == "running"
    assert "no heartbeat for 30 s" in store.get_run(runs["killed"])["error"]


def test_observe_says_where_a_queued_run_waits(store):
    a, b = (jobs.submit(store, "fit", fit_settings()) for _ in range(2))
    assert jobs.observe(store, b)["queue_position"] == 2
    assert "2nd in line; no worker is running" in jobs.observe(store, b)["message"]
    store.beat("h:1", {"time": time.time(), "run": "x"})
    store.beat("h:2", {"time": time.time(), "run": None})
    recs = jobs.annotate(store, [store.get_run(a), store.get_run(b)])
    assert [r["message"] for r in recs] == ["queued: 1st in line (1 of 2 workers busy)",
                                            "queued: 2nd in line (1 of 2 workers busy)"]
    assert store.get_run(a)["message"] == "queued"          # annotations are not stored
    jobs.cancel(store, a)
    assert jobs.observe(store, b)["queue_position"] == 1


def test_wait_says_when_no_worker_takes_runs(store, monkeypatch):
    monkeypatch.setattr(lifecycle, "STALE_SECONDS", 0.1)
    rid = jobs.submit(store, "fit", fit_settings())
    with pytest.raises(RuntimeError, match="no worker takes runs from the store"):
        jobs.wait(store, rid, timeout=10)


def test_statuses_change_only_in_the_lifecycle_module():
    """Pages, kinds, workers and tasks ask the lifecycle; they never set a status."""
    pattern = re.compile(r"\.(finish_run|start_run|request_cancel|requeue_run)\(|"
                         r"update_run\([^)]*status=")
    allowed = {REPO / "flowdash" / "jobs" / "lifecycle.py",
               *(REPO / "flowdash" / "store").glob("*.py")}
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in [*REPO.glob("flowdash/**/*.py"),
                                                        REPO / "app.py"]
                 if p not in allowed
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_job_layer_and_app_import_without_side_effects():
    code = ("import sys, flowdash.jobs, flowdash.store, flowdash.settings, flowdash.export; "
            "assert 'dash' not in sys.modules, 'jobs imports dash'; "
            "import flowdash.worker; assert 'flowdash.core.fitting' not in sys.modules; "
            "import app; assert 'flowdash.pages.model.callbacks' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_non_finite_nll_never_breaks_views_or_export(tmp_path):
    """None (a non-finite NLL) in the epoch log: curves, figures and export still work."""
    from flowdash.pages.fit import view
    store = open_store(tmp_path / "s")
    rid = store.create_run("fit", "nan", {"max_epochs": 2, "snapshot_epochs": [1]})
    for k, (tr, va) in enumerate([([1.0, 2.0], [3.0, 4.0]), ([float("nan"), 1.0], None),
                                  ([0.5, 0.5], [1.0, float("inf")])]):
        store.append_epoch(rid, {"epoch": k, "nll_train": jobs.finite_list(tr),
                                 "nll_val": jobs.finite_list(va), "elapsed": 0.1 * k,
                                 "time": 0.0, "D": [1.0]})
    assert store.read_epochs(rid)[1]["nll_train"] == [None, 1.0]
    es, train, val = view.curves(store.read_columns(rid))
    assert es == [0, 1, 2] and train == [3.0, None, 1.0] and val == [7.0, None, None]
    z = np.load(io.BytesIO(export.export_npz(store, rid)))
    assert z["nll_train"].shape == (2, 3) and np.isnan(z["nll_train"][0, 1])
    assert np.isnan(z["nll_val"][:, 1]).all() and np.isnan(z["nll_val"][1, 2])


def test_generation_export_has_the_data_and_the_latent_paths(store):
    rid = next(r["id"] for r in store.list_runs("generation"))
    z = np.load(io.BytesIO(export.export_npz(store, rid)))
    assert any(k.startswith("data0_") and k.endswith("_ntrials") for k in z.files)
    assert {"latent_t_0", "latent_x_0", "latent_t_1"} <= set(z.files)
    assert z["latent_t_0"].shape == z["latent_x_0"].shape and z["latent_t_0"][0] == 0.0


# --- worker processes -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Two warm workers on one store (with the test kinds), shared by the tests below."""
    old = os.environ.get("FLOWDASH_JOB_MODULES")
    os.environ["FLOWDASH_JOB_MODULES"] = "tests.jobkinds"
    store = new_store(tmp_path_factory.mktemp("pool"))
    assert jobs.execute(store, jobs.submit(store, "generation", GEN)) == DONE
    p = jobs.LocalPool(store, workers=2).start()
    try:
        assert p.ready(60), "the workers did not start"
        yield SimpleNamespace(pool=p, store=store)
    finally:
        p.stop()
        store.close()
        if old is None:
            os.environ.pop("FLOWDASH_JOB_MODULES", None)
        else:
            os.environ["FLOWDASH_JOB_MODULES"] = old


def wait_epochs(store, run_id, n, timeout=60):
    t0 = time.time()
    while store.n_epochs(run_id) < n:
        assert time.time() - t0 < timeout, "no progress"
        time.sleep(0.02)


def wait_status(store, run_id, status, timeout=30):
    t0 = time.time()
    while (rec := jobs.observe(store, run_id))["status"] != status:
        assert time.time() - t0 < timeout, f"{rec['status']}: {rec['message']}"
        time.sleep(0.02)
    return rec


def test_the_queue_runs_at_most_n_at_once_and_queued_runs_can_be_cancelled(pool):
    store = pool.store
    ids = [jobs.submit(store, "fit", fit_settings(max_epochs=60, pace=0.05)) for _ in range(4)]
    wait_status(store, ids[0], "running")
    wait_status(store, ids[1], "running")
    recs = [jobs.observe(store, i) for i in ids]
    assert [r["status"] for r in recs] == ["running", "running", "queued", "queued"]
    assert [r.get("queue_position") for r in recs[2:]] == [1, 2]
    assert recs[3]["message"] == "queued: 2nd in line (2 of 2 workers busy)"
    assert {r["pid"] for r in recs[:2]} == set(pool.pool.pids())   # warm workers, reused
    assert jobs.cancel(store, ids[3])["status"] == CANCELLED
    jobs.cancel(store, ids[0])                              # frees a worker for ids[2]
    finals = [jobs.wait(store, i, timeout=60) for i in ids]
    assert [r["status"] for r in finals] == [CANCELLED, DONE, DONE, CANCELLED]
    assert finals[2]["pid"] in pool.pool.pids() and store.n_epochs(ids[3]) == 0
    assert finals[0]["message"].startswith("cancelled after epoch ")
    ckpt = FitCheckpoint.from_bytes(store.get_checkpoint(ids[0]))   # where the cancel stopped it
    assert ckpt.epoch == store.n_epochs(ids[0]) - 1 and store.get_checkpoint(ids[3]) is None


def test_every_kind_goes_through_the_same_queue(pool):
    store = pool.store
    gen = jobs.submit(store, "generation", dict(GEN, dataset_name="d2", n_trials=3))
    count = jobs.submit(store, "countdown", {"steps": 3, "pause": 0.01})
    assert jobs.wait(store, gen, timeout=60)["message"].startswith("3 trials in ")
    rec = jobs.wait(store, count, timeout=60)
    assert (rec["status"], rec["message"], rec["progress"]) == (DONE, "3 steps", 1.0)
    assert rec["pid"] in pool.pool.pids()


def test_sigterm_keeps_the_final_arrays_and_marks_interrupted(pool):
    store = pool.store
    rid = jobs.submit(store, "fit", fit_settings(max_epochs=500, pace=0.1))
    wait_epochs(store, rid, 2)
    os.kill(store.get_run(rid)["pid"], signal.SIGTERM)     # the pool or a shell stops it
    rec = jobs.wait(store, rid, timeout=30)
    assert rec["status"] == INTERRUPTED and "SIGTERM" in rec["error"]
    assert rec["message"].startswith("interrupted after epoch ")
    n = store.n_epochs(rid)
    assert store.get_latest(rid)["epoch"] == n - 1 and "final" in store.get_result(rid)
    assert FitCheckpoint.from_bytes(store.get_checkpoint(rid)).epoch == n - 1
    wait_workers(pool)


def wait_workers(pool, timeout=60):
    """The pool replaces a worker that stopped; wait until all are warm again."""
    t0 = time.time()
    while any(p.poll() is not None for p in pool.pool.procs) or not pool.pool.ready(1):
        assert time.time() - t0 < timeout, "the pool did not replace its worker"


def test_a_killed_worker_is_found_by_its_heartbeat_and_its_epochs_kept(pool):
    store = pool.store
    rid = jobs.submit(store, "fit", fit_settings(max_epochs=500, pace=0.1))
    wait_epochs(store, rid, 3)
    os.kill(store.get_run(rid)["pid"], signal.SIGKILL)     # no word from the worker
    t0 = time.time()
    rec = wait_status(store, rid, INTERRUPTED, timeout=lifecycle.STALE_SECONDS + 5)
    assert time.time() - t0 <= lifecycle.STALE_SECONDS + 3
    assert "no heartbeat" in rec["error"] and "computed so far is kept" in rec["error"]
    n = store.n_epochs(rid)
    assert n >= 3 and [e["epoch"] for e in store.read_epochs(rid)] == list(range(n))
    assert store.get_latest(rid)["epoch"] >= n - 2
    wait_workers(pool)


def test_a_pool_inside_a_multiprocessing_child_says_why(monkeypatch, tmp_path):
    import multiprocessing
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: object())
    with pytest.raises(RuntimeError, match="no `if __name__ == \"__main__\":` guard"):
        jobs.LocalPool(tmp_path / "s")


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    marker = tmp_path / "ran.txt"
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(f"""
        import shutil
        from flowdash import jobs
        from flowdash.store import open_store
        with open({str(marker)!r}, "a") as fh:      # no __main__ guard: must run once
            fh.write("ran\\n")
        shutil.rmtree({str(tmp_path / "store")!r}, ignore_errors=True)   # what wiped a store
        store = open_store({str(tmp_path / "store")!r})
        store.save_model("gt", {SPEC!r})
        with jobs.LocalPool(store, workers=1):
            rid = jobs.submit(store, "generation", {GEN!r})
            print(jobs.wait(store, rid, timeout=60)["status"])
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert out.stdout.strip() == "done", out.stderr
    assert marker.read_text() == "ran\n"


def test_run_names_follow_the_one_rule_for_names(store):
    """flowdash.names decides (as for models and datasets); its message goes to
    the name field, with the settings' messages, before anything is recorded."""
    with pytest.raises(settings.SettingsError) as err:
        jobs.submit(store, "fit", fit_settings(), name="  my\u200b fit  ")
    assert err.value.errors == {"name": "run name contains an invisible formatting character, "
                                        "U+200B ZERO WIDTH SPACE, at position 3; use visible "
                                        "letters, digits, spaces and punctuation"}
    with pytest.raises(settings.SettingsError) as err:
        jobs.submit(store, "fit", fit_settings(max_epochs=0), name="x" * 121)
    assert "too long (121 characters; at most 120" in err.value.errors["name"]
    assert "max_epochs" in err.value.errors
    assert store.list_runs("fit") == []
    rid = jobs.submit(store, "fit", fit_settings(), name="  " + "x" * 120 + " ")
    assert store.get_run(rid)["name"] == "x" * 120
    jobs.submit(store, "fit", fit_settings(), name="   ")          # blank: the default name
    assert store.list_runs("fit")[0]["name"] == "fit d"


def test_a_worker_taken_for_dead_stops_its_run(store):
    rid = jobs.submit(store, "fit", fit_settings())
    worker = jobs.Worker(store)
    assert lifecycle.claim(store, rid, worker)
    hooks = jobs.Hooks(store, store.get_run(rid), worker)
    assert not hooks.should_stop()
    store.beat(worker.id, {"time": time.time() - 60, "run": rid})   # its beats stalled
    store.update_run(rid, started=time.time() - 60)
    assert jobs.reap(store) == [rid]
    assert hooks.should_stop() and hooks.stopped == INTERRUPTED   # it stops, not competes
