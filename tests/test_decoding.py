"""Decoding in the dashboard: the job kind ``viterbi`` through the job layer, its checks,
the export, and the Decode page's callbacks on a temporary store."""
import io
import json
from contextvars import copy_context

import numpy as np
import plotly.graph_objects as go
import pytest
from dash import no_update
from dash._callback_context import context_value
from dash._utils import AttributeDict
from dash.exceptions import PreventUpdate

import app as app_module
from flowdash import export, jobs, settings
from flowdash.core.viterbi import viterbi
from flowdash.jobs import viterbi as decode_kind
from flowdash.store import CANCELLED, DONE, FAILED, RunStore

# two neurons that read the latent in opposite directions, absorbing walls
SPEC = {"grid": {"Np": 6, "Ne": 8, "xbegin": -1.0, "xend": 1.0}, "boundary_mode": "absorbing",
        "peq_model": {"model": "double_well", "params": {}},
        "p0_model": {"model": "single_well", "params": {"xmin": 0.0, "miu": 20}}, "D": 1.0,
        "fr_model": [{"model": "linear", "params": {"slope": 40, "bias": 50}},
                     {"model": "linear", "params": {"slope": -40, "bias": 50}}]}
ONE_NEURON = dict(SPEC, fr_model=SPEC["fr_model"][:1])
GEN = dict(model="gt", n_trials=5, duration=1.0, dt=1e-4, seed=4, with_trial_end=True,
           val_fraction=0.4, dataset_name="d")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return app_module.create_app(tmp_path_factory.mktemp("decode-app"))


@pytest.fixture
def store(app, tmp_path):
    path = str(tmp_path / "store")
    app.server.config["FLOWDASH_STORE"] = path
    s = RunStore(path)
    s.save_model("gt", SPEC)
    s.save_model("one", ONE_NEURON)
    assert jobs.execute(s, jobs.submit(s, "generation", GEN)) == DONE
    yield s
    s.close()


def decode(store, **values):
    """Submit a decode and run it here, as a worker would; returns (run id, record)."""
    rid = jobs.submit(store, "viterbi", dict(dict(dataset="d", model="gt", trials="0-1, 3"),
                                             **values))
    jobs.execute(store, rid)
    return rid, jobs.observe(store, rid)


def errors_of(store, **values):
    with pytest.raises(settings.SettingsError) as err:
        jobs.submit(store, "viterbi", dict(dict(dataset="d", model="gt", trials="0"), **values))
    return err.value.errors


# --- the job kind -------------------------------------------------------------------
def test_a_decode_stores_the_cores_paths(store):
    rid, rec = decode(store, Nv="20")
    assert rec["status"] == DONE and rec["progress"] == 1.0 and rec["name"] == "decode d"
    assert rec["message"].startswith("3 trial(s) in ")
    assert rec["settings"]["trials"] == [0, 1, 3] and rec["settings"]["Nv"] == 20
    assert rec["refs"]["model"] == "gt" and rec["refs"]["model_spec"]["D"] == 1.0
    result = store.get_result(rid)
    data = jobs.load_dataset(store, "d")[0][0]
    model = jobs.build_model(SPEC)
    expected = viterbi(model, data, [0, 1, 3], Nv=20)
    assert [p["trial"] for p in result["paths"]] == [0, 1, 3]
    for got, want in zip(result["paths"], expected):
        assert got["state_inds"] == want.state_inds.tolist()
        np.testing.assert_array_equal(got["t"], want.t)
        np.testing.assert_array_equal(got["x"], want.x)
        assert got["log_score"] == want.log_score
        assert got["ids"] == data.trials[got["trial"]][1].tolist()
        assert got["state_inds"][-1] in (0, model.grid.N - 1)   # absorbing: ends on a wall
    np.testing.assert_array_equal(result["fr"], model.fr_of(0))
    assert result["Nv"] == 20 and result["boundary_mode"] == "absorbing"


def test_a_decode_runs_in_a_worker_of_the_pool(store):
    with jobs.LocalPool(store, workers=1):
        rid = jobs.submit(store, "viterbi", dict(dataset="d", model="gt", trials="2"))
        rec = jobs.wait(store, rid, timeout=60)
    assert rec["status"] == DONE and [p["trial"] for p in store.get_result(rid)["paths"]] == [2]


def test_a_cancel_stops_between_trials_and_keeps_the_paths(store):
    def cancel_after_first(model, data, trials, **kw):
        out = viterbi(model, data, trials, **kw)
        store.request_cancel(rid)
        return out
    jobs.register_kind("viterbi-cancelled", decode_kind.check,
                       lambda s, r, h: decode_kind.run(s, r, h, viterbi_fn=cancel_after_first))
    rid = jobs.submit(store, "viterbi-cancelled", dict(dataset="d", model="gt", trials="0-3"))
    assert jobs.execute(store, rid) == CANCELLED
    rec = store.get_run(rid)
    assert rec["message"] == "cancelled after 1 of 4 trials; the decoded paths are kept"
    assert rec["progress"] == 0.25
    assert [p["trial"] for p in store.get_result(rid)["paths"]] == [0]


def test_a_trial_the_model_cannot_explain_fails_with_why(store):
    def impossible(model, data, trials, **kw):
        if trials == [1]:
            raise ValueError("the model gives this trial zero probability on every path")
        return viterbi(model, data, trials, **kw)
    jobs.register_kind("viterbi-impossible", decode_kind.check,
                       lambda s, r, h: decode_kind.run(s, r, h, viterbi_fn=impossible))
    rid = jobs.submit(store, "viterbi-impossible", dict(dataset="d", model="gt", trials="0-2"))
    assert jobs.execute(store, rid) == FAILED
    assert store.get_run(rid)["error"] == ("trial 1 cannot be decoded: the model gives this "
                                           "trial zero probability on every path (the 1 "
                                           "trial(s) before it are kept)")
    assert [p["trial"] for p in store.get_result(rid)["paths"]] == [0]


def test_neurons_of_the_model_and_the_data_must_match(store):
    errors = errors_of(store, model="one")
    assert errors == {"model": "the model has 1 neuron(s) but the dataset has 2; decode with a "
                               "model of the dataset's 2 neuron(s)"}
    assert store.list_runs("viterbi") == []            # nothing was recorded


def test_trials_are_checked_against_the_datasample(store):
    assert errors_of(store, trials="0-9")["trials"] == "trial 9 does not exist (0 … 4)"
    assert errors_of(store, trials="3-1")["trials"] == "'3-1': write a range from low to high (1-3)"
    assert "is not a trial number" in errors_of(store, trials="one")["trials"]
    assert errors_of(store, trials="")["trials"] == "choose trials, e.g. 0-4, 7 (0 … 4)"
    assert errors_of(store, trials="0-2000000000")["trials"] == "trial 2000000000 does not exist (0 … 4)"
    assert errors_of(store, trials=[0, 7])["trials"] == "trial 7 does not exist (0 … 4)"
    s, _, _ = decode_kind.check(dict(dataset="d", model="gt", trials=[4, 0, 4]), store)
    assert s["trials"] == [4, 0]


def test_too_many_trials_or_points_are_refused(store, monkeypatch):
    monkeypatch.setattr(decode_kind, "MAX_TRIALS", 2)
    assert errors_of(store, trials="0-2")["trials"] == "at most 2 trials at once"
    monkeypatch.setattr(decode_kind, "MAX_POINTS", 50)
    assert "path points (one per spike); at most 50 are decoded at once" in \
        errors_of(store, trials="0")["trials"]
    monkeypatch.setattr(decode_kind, "MAX_POINTS", 10**9)
    monkeypatch.setattr(decode_kind, "MAX_WORK", 1e3)
    assert "intervals × N² = " in errors_of(store, trials="0")["trials"]


def test_other_settings_are_checked_each_in_its_field(store):
    assert errors_of(store, dataset="nope")["dataset"] == "there is no dataset named “nope”"
    assert errors_of(store, model="nope")["model"] == "there is no saved model named “nope”"
    assert errors_of(store, model=None)["model"] == "choose a saved model or a fit run"
    assert errors_of(store, Nv="40")["Nv"] == "must be an integer in [1, 39] (N - 2 for this grid)"
    assert errors_of(store, datasample="1")["datasample"] == \
        "must be an integer in [0, 0] (the dataset's conditions)"
    assert errors_of(store, fit_run="0" * 32)["model"] == "choose a saved model or a fit run, not both"
    assert "there is no fit run" in errors_of(store, model=None, fit_run="f" * 32)["model"]
    gen = store.list_runs("generation")[0]
    assert errors_of(store, model=None, fit_run=gen["id"])["model"] == \
        "the run “generate d” is a generation run, not a fit"


def test_a_fit_runs_final_model_and_recorded_epochs_decode(store):
    fit = jobs.submit(store, "fit", dict(dataset="d", init_model="gt", optimizer="GD",
                                         learning_rate={"F": 0.005, "D": 0.1},
                                         params_to_opt=["F", "D"], max_epochs=2,
                                         mini_batch_number=1, snapshot_epochs=[1]))
    assert jobs.execute(store, fit) == DONE
    final = decode_kind.fit_run_model(store, fit)
    result = store.get_result(fit)
    np.testing.assert_allclose(final.peq, result["final"]["peq"])
    np.testing.assert_allclose(final.D, result["final"]["D"])
    at_1 = decode_kind.fit_run_model(store, fit, 1)
    snap = store.read_snapshot(fit, 1)
    np.testing.assert_allclose(at_1.peq, snap["peq"])             # fitted: the snapshot
    np.testing.assert_allclose(at_1.fr, result["init"]["fr"])     # not fitted: the initial model
    assert at_1.boundary_mode == "absorbing" and at_1.p0 is not None
    rid, rec = decode(store, model=None, fit_run=fit, epoch="1", trials="0")
    assert rec["status"] == DONE and rec["refs"]["model"] == f"fit {'d'} · epoch 1"
    data = jobs.load_dataset(store, "d")[0][0]
    assert store.get_result(rid)["paths"][0]["state_inds"] == \
        viterbi(at_1, data, [0])[0].state_inds.tolist()
    rid, rec = decode(store, model=None, fit_run=fit, trials="0")  # no epoch: the final model
    assert rec["status"] == DONE and rec["settings"]["epoch"] == "final"
    assert errors_of(store, model=None, fit_run=fit, epoch="7")["epoch"] == \
        "epoch 7 has no recorded model; recorded: 0, 1, 2, or final"
    result.pop("final")                                           # a fit still running
    store.set_result(fit, result)
    assert errors_of(store, model=None, fit_run=fit, epoch="final")["epoch"] == \
        "the fit has no final model yet (it is done); choose a recorded epoch"


def test_a_fit_runs_recorded_model_decodes_on_the_grid_the_fit_used(store):
    # a long fit's or a selection's recorded models (float64) serve a decode at epochs
    # that have no snapshot, on the fit's own grid (its Ne override), not the saved one
    fit = jobs.submit(store, "fit", dict(dataset="d", init_model="gt", optimizer="GD",
                                         learning_rate={"F": 0.005}, params_to_opt=["F"],
                                         max_epochs=3, mini_batch_number=1, snapshot_epochs=[1],
                                         Ne_override=4, record_models=True))
    assert jobs.execute(store, fit) == DONE
    assert 2 in store.model_epochs(fit) and 2 not in store.snapshot_epochs(fit)
    at_2 = decode_kind.fit_run_model(store, fit, 2)
    assert at_2.grid.Ne == 4
    np.testing.assert_array_equal(at_2.peq, store.read_models(fit, [2])[0]["peq"])
    rid, rec = decode(store, model=None, fit_run=fit, epoch="2", trials="0")
    assert rec["status"] == DONE


def test_export_round_trip(store):
    rid, _ = decode(store)
    result = store.get_result(rid)
    for blob in (decode_kind.paths_npz(result), export.export_npz(store, rid)):
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            assert z["trials"].tolist() == [0, 1, 3]
            np.testing.assert_array_equal(z["log_score"], [p["log_score"] for p in result["paths"]])
            for p in result["paths"]:
                i = p["trial"]
                np.testing.assert_array_equal(z[f"trial_{i}_t"], p["t"])
                np.testing.assert_array_equal(z[f"trial_{i}_x"], p["x"])
                assert z[f"trial_{i}_state_inds"].tolist() == p["state_inds"]
                assert z[f"trial_{i}_ids"].tolist() == p["ids"]
            np.testing.assert_array_equal(z["fr"], result["fr"])
            np.testing.assert_array_equal(z["x_grid"], result["x_grid"])
    from flowdash.pages.decode import logic
    text = json.loads(logic.export_json(store.get_run(rid), result))
    assert text["settings"]["trials"] == [0, 1, 3] and text["refs"]["model"] == "gt"
    assert text["decoded"]["log_score"] == [p["log_score"] for p in result["paths"]]
    assert text["decoded"]["points"] == [len(p["t"]) for p in result["paths"]]


def test_runs_page_lists_a_decode(store):
    from flowdash.pages.runs.table import describe, settings_rows
    rid, rec = decode(store)
    row = describe(rec, 0)
    assert row["used"] == "model gt on d; 3 trial(s)" and row["progress"] == "100 %"
    rows = dict(settings_rows(rec))
    assert rows["Trials"] == "0, 1, 3" and rows["Saved model"] == "gt" and rows["Nv (eigenpairs)"] == "N − 2"


def test_dirichlet_walls_without_absorption_decode_like_walls():
    """The 2021 ablation (Dirichlet walls, no absorption step): the walls decide the end rule."""
    from flowdash.core.grid import Grid
    from flowdash.core.model import Model
    from flowdash.core.simulation import simulate

    grid = Grid(6, 8)
    walls = Model.from_spec(SPEC, grid, "reflecting").replace(boundary_conditions="dirichlet")
    assert walls.boundary_conditions == "dirichlet" and not walls.absorption_step
    data = simulate(jobs.build_model(SPEC), 1, 1.0, dt=1e-4, seed=1, with_trial_end=True).data
    path = viterbi(walls, data, [0])[0]
    assert path.state_inds[-1] in (0, grid.N - 1)                 # ends on a wall
    assert np.all((path.state_inds[:-1] > 0) & (path.state_inds[:-1] < grid.N - 1))


# --- the page -----------------------------------------------------------------------
from flowdash.pages.decode import callbacks as cb  # noqa: E402
from flowdash.pages.decode import figures, ids, logic  # noqa: E402


def call(fn, *args):
    """Run a callback inside a callback context."""
    def run():
        context_value.set(AttributeDict(triggered_inputs=[{"prop_id": ".", "value": 1}],
                                        outputs_list=[], inputs_list=[]))
        return fn(*args)
    return copy_context().run(run)


def start(dataset="d", sample="0", choice="model:gt", epoch=None, trials="0, 2", nv="",
          name=""):
    out = call(cb.start, 1, dataset, sample, choice, epoch, trials, nv, name)
    n = len(cb.INPUT_OF)
    return out[0], out[1], dict(zip(cb.INPUT_OF, out[4:4 + n])), \
        dict(zip(cb.INPUT_OF, out[4 + n:]))


POLL = ("value", "label", "striped", "animated", "text", "badge", "stop", "cancel_off",
        "trials", "trial", "shown", "message", "cancel_msg", "runs", "done")


def poll(run_id, shown=None, trial=None):
    return dict(zip(POLL, call(cb.poll, {"n": 3, "t": 0}, run_id, shown, trial)))


def test_page_lists_models_epochs_and_nv(store):
    datasets, models, runs, run_value, ds_value = cb.fill_lists("/decode", "nope", "d")
    assert datasets == [{"label": "d", "value": "d"}] and ds_value == "d" and run_value is None
    assert {"label": "saved model · gt", "value": "model:gt"} in models
    assert cb.samples("d") == ([{"label": "all", "value": "0"}], "0", cb.HIDE)
    assert cb.model_chosen("model:gt") == ([], None, cb.HIDE, "39")   # N − 2 below 64
    fit = jobs.submit(store, "fit", dict(dataset="d", init_model="gt", optimizer="GD",
                                         learning_rate={"F": 0.005}, params_to_opt=["F"],
                                         max_epochs=1, mini_batch_number=1, Nv=30,
                                         snapshot_epochs=[1]))
    jobs.execute(store, fit)
    opts, value, style, nv = cb.model_chosen("fit:" + fit)
    assert [o["value"] for o in opts] == ["final", "0", "1"] and value == "final"
    assert style is None and nv == "30"                                # the fit's own Nv
    assert any(o["value"] == "fit:" + fit for o in cb.fill_lists("/decode", None, None)[1])


def test_page_start_marks_fields_and_follows_the_run(store):
    run_id, message, invalid, feedback = start(choice="model:one", trials="0-9", nv="x")
    assert run_id is no_update and "Fix the fields" in str(message)
    assert invalid == {"dataset": False, "datasample": False, "model": True, "epoch": False,
                       "trials": True, "Nv": True, "name": False}
    assert "the model has 1 neuron(s) but the dataset has 2" in feedback["model"]
    assert feedback["trials"] == "trial 9 does not exist (0 … 4)"
    run_id, message, invalid, feedback = start()
    assert "Decode started" in str(message) and not any(invalid.values())
    queued = poll(run_id)
    assert queued["stop"] is False and queued["cancel_off"] is False and queued["trials"] == []
    assert queued["message"] is no_update and queued["text"].startswith("queued")
    jobs.execute(store, run_id)
    out = poll(run_id, queued["shown"])
    assert out["stop"] is True and out["cancel_off"] is True and out["value"] == 100.0
    assert [o["value"] for o in out["trials"]] == ["0", "2"] and out["trial"] == "0"
    assert out["shown"] == {"run": run_id, "status": "done", "n": 2} and out["message"] == ""
    assert "done" in out["runs"][0]["label"]                      # the list says how it ended
    again = poll(run_id, out["shown"], "2")                       # nothing new: nothing re-read
    assert again["trials"] is no_update and again["trial"] is no_update
    fig, note, npz_off, json_off = cb.show("2", out["shown"])
    names = [t.name for t in fig.data]
    assert names == ["neuron 1", "neuron 2", "true path", "decoded path", "neuron 1", "neuron 2"]
    assert note == "The true latent path is drawn in black." and not npz_off and not json_off
    assert fig.layout.title.text.startswith("Trial 2 · model gt · log score ")
    npz = cb.export_npz(1, out["shown"])
    assert npz["filename"] == f"flowdash-decode-{run_id}.npz" and npz["base64"]
    assert json.loads(cb.export_json(1, out["shown"])["content"])["settings"]["trials"] == [0, 2]
    assert "already ended" in str(cb.cancel(1, run_id))


def test_page_buttons_do_nothing_without_a_click(store):
    for fn, args in ((cb.start, (None,) + ("x",) * 7), (cb.cancel, (None, "r")),
                     (cb.export_npz, (None, {"run": "r"})), (cb.export_json, (None, {"run": "r"}))):
        with pytest.raises(PreventUpdate):
            call(fn, *args)


def test_page_without_a_run_or_with_a_real_dataset(store):
    out = poll(None)
    assert out["stop"] is True and out["trials"] == [] and out["shown"] is None
    fig, note, npz_off, json_off = cb.show(None, None)
    assert "Decode trials" in fig.layout.annotations[0].text and npz_off and json_off
    rid, rec = decode(store, trials="4")
    record = dict(rec, refs=dict(rec["refs"], dataset_meta=dict(rec["refs"]["dataset_meta"],
                                                                source="upload")))
    assert logic.true_path(store, record, 4) == (None, "No true path: the data are not synthetic.")
    meta = rec["refs"]["dataset_meta"]
    store.delete_dataset("d")                                   # gone: no true path, still drawn
    assert "was deleted or replaced" in logic.true_path(store, rec, 4)[1]
    fig, note, *_ = cb.show("4", {"run": rid, "status": "done", "n": 1})
    assert [t.name for t in fig.data].count("true path") == 0 and "replaced" in note
    assert meta["source"] == "synthetic"


def test_path_figure_traces_and_axes():
    x_grid = np.linspace(-1, 1, 5)
    fr = np.stack([np.full(5, 10.0), np.linspace(0, 40, 5)], axis=1)
    fig = figures.path_figure([0, 0.1, 0.3, 0.5], [0.0, 0.5, 0.5, 1.0], [0, 1, -1], 2, x_grid,
                              fr, true=([0, 0.25, 0.5], [0.1, 0.4, 0.9]), title="<b>t</b>")
    assert isinstance(fig, go.Figure)
    raster = [t for t in fig.data if t.xaxis == "x" and t.name.startswith("neuron")]
    assert [list(t.x) for t in raster] == [[0.1], [0.3]]        # the trial end is no spike
    assert [list(t.y) for t in raster] == [[1], [2]]            # one row per neuron
    path = next(t for t in fig.data if t.name == "decoded path")
    assert list(path.x) == [0, 0.1, 0.3, 0.5] and list(path.y) == [0.0, 0.5, 0.5, 1.0]
    true = next(t for t in fig.data if t.name == "true path")
    assert list(true.y) == [0.1, 0.4, 0.9] and true.xaxis == path.xaxis
    rates = [t for t in fig.data if t.xaxis == "x3"]
    assert [list(t.x) for t in rates] == [fr[:, 0].tolist(), fr[:, 1].tolist()]
    assert all(list(t.y) == x_grid.tolist() and not t.showlegend for t in rates)
    assert fig.layout[rates[0].yaxis.replace("y", "yaxis")].matches == path.yaxis  # one latent axis
    assert fig.layout.xaxis2.title.text == "time (s)"
    assert fig.layout.yaxis2.title.text == "latent state x (a.u.)"
    assert fig.layout.xaxis3.title.text == "firing rate (Hz)"
    assert fig.layout.yaxis.title.text == "neuron"
    assert fig.layout.title.text == "&lt;b&gt;t&lt;/b&gt;"     # user text is escaped
    without = figures.path_figure([0, 1], [0, 0], [0], 1, x_grid, fr[:, :1])
    assert "true path" not in [t.name for t in without.data]


def test_the_worker_warm_up_loads_both_decoders(monkeypatch):
    """The first decode of a fine grid (a fit's) must not compile the tile kernels: the
    warm-up decodes once with a coarse grid (kernel tables) and once with a grid above
    the core's TABLE_MAX_N (tiles), absorbing and reflecting."""
    from flowdash.core import viterbi as core_viterbi
    seen = []
    monkeypatch.setattr(core_viterbi, "viterbi",
                        lambda model, data: seen.append((model.grid.N, model.boundary_mode)))
    decode_kind.warm()
    sizes = [n for n, _ in seen]
    assert min(sizes) <= core_viterbi.TABLE_MAX_N < max(sizes)
    assert {mode for _, mode in seen} == {"absorbing", "reflecting"}
    assert max(sizes) < 2 * core_viterbi.TABLE_MAX_N              # cheap: just above it
