"""Every page callback, called directly (no browser), on a temporary store."""
import base64
import io
import time
from contextvars import copy_context

import plotly.graph_objects as go
import pytest
from dash import Patch, dcc, no_update
from dash.exceptions import PreventUpdate
from dash._callback_context import context_value
from dash._utils import AttributeDict

import app as app_module
from flowdash import ids as app_ids
from flowdash import jobs
from flowdash import settings
from flowdash.store import CANCELLED, DONE, RunStore

SPEC = {"grid": {"Np": 6, "Ne": 8, "xbegin": -1.0, "xend": 1.0},
        "boundary_mode": "reflecting",
        "peq_model": {"model": "double_well", "params": {"xmin": 0.6, "xmax": 0.0, "depth": 2}},
        "p0_model": None, "D": 10.0,
        "fr_model": [{"model": "rectified_linear", "params": {"slope": 100, "x_thresh": -1}}]}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return app_module.create_app(tmp_path_factory.mktemp("cbstore"))


@pytest.fixture
def store(app, tmp_path):
    path = str(tmp_path / "store")
    app.server.config["FLOWDASH_STORE"] = path
    s = RunStore(path)
    yield s
    s.close()


@pytest.fixture
def dataset(store):
    store.save_model("gt", SPEC)
    rid = jobs.submit(store, "generation", dict(model="gt", n_trials=2, duration=2.0,
                                                dt=1e-4, seed=1, with_trial_end=True,
                                                val_fraction=0.5, dataset_name="d"))
    assert jobs.execute(store, rid) == DONE
    return "d"


def call(fn, *args, triggered=None, value=1, outputs_list=None, inputs_list=None):
    """Run a callback with a callback context (triggered id, outputs/inputs lists)."""
    def run():
        prop = "." if triggered is None else (
            (triggered if isinstance(triggered, str) else __import__("json").dumps(
                triggered, sort_keys=True, separators=(",", ":"))) + ".n_clicks")
        context_value.set(AttributeDict(
            triggered_inputs=[{"prop_id": prop, "value": value}],
            outputs_list=outputs_list or [], inputs_list=inputs_list or []))
        return fn(*args)
    return copy_context().run(run)


def open_store_at(store):
    """The fixture's store as ``services.open_store`` gives it (a context manager)."""
    from contextlib import nullcontext
    return nullcontext(store)


def wait_done(store, run_id):
    """Run a queued run here, as a worker would."""
    jobs.execute(store, run_id)
    return store.get_run(run_id)


# --- Model page ---------------------------------------------------------------
from flowdash.pages.model import callbacks as model_cb  # noqa: E402
from flowdash.pages.model import form as model_form  # noqa: E402
from flowdash.pages.model import ids as model_ids  # noqa: E402


def fields_of(state):
    g = state["grid"]
    return (g["Np"], g["Ne"], g["xbegin"], g["xend"], state["boundary_conditions"],
            state["absorption_step"], state["D"])


def param_lists(state):
    values, pids = [], []
    for target, entries in (("peq", [state["peq"]]), ("p0", [state["p0"]] if state["p0"] else []),
                            ("fr", state["neurons"])):
        for i, e in enumerate(entries):
            for name, v in e["params"].items():
                values.append(v)
                pids.append({"target": target, "neuron": i, "name": name, "model": e["model"]})
    return values, pids


def restructure(state, trigger, peq=None, p0=None, rates=None, saved=None, value=1):
    np_, ne, xb, xe, bm, ab, D = fields_of(state)
    values, pids = param_lists(state)
    return call(model_cb.restructure, None, None, None, None,
                peq or state["peq"]["model"], p0 or model_form.EQUILIBRIUM,
                rates or [n["model"] for n in state["neurons"]], state, np_, ne, xb, xe, bm, ab,
                D, values, pids, saved, triggered=trigger, value=value)


def test_model_preset_fills_the_form(store):
    state = model_form.preset_state("ramp")
    out = restructure(state, {"type": model_ids.PRESET, "key": "fig3"})
    assert out[:9] == ("8", "256", "-1", "1", "neumann", False, "10", "double_well",
                       model_form.EQUILIBRIUM)
    assert out[-1]["neurons"][0]["params"] == {"slope": "100", "x_thresh": "-1"}


def test_model_add_remove_neuron_and_change_rate(store):
    state = model_form.preset_state("fig3")
    out = restructure(state, model_ids.ADD_NEURON)
    assert len(out[-1]["neurons"]) == 2 and len(out[11]) == 2
    state2 = out[-1]
    out = restructure(state2, {"type": model_ids.REMOVE, "neuron": 0})
    assert len(out[-1]["neurons"]) == 1
    out = restructure(state, {"type": model_ids.RATE, "neuron": 0}, rates=["sinus"])
    assert out[-1]["neurons"][0]["model"] == "sinus"
    assert set(out[-1]["neurons"][0]["params"]) == {"bias", "amp", "freq"}
    # the same model again changes nothing
    assert restructure(state, model_ids.PEQ, peq="double_well") == (no_update,) * 13


def test_model_load_saved(store):
    store.save_model("gt", SPEC)
    out = restructure(model_form.preset_state("fig3"), model_ids.LOAD, saved="gt")
    assert out[1] == "8" and out[-1]["grid"]["Np"] == "6"


def test_model_collect_valid_and_invalid(store):
    state = model_form.preset_state("fig3")
    values, pids = param_lists(state)
    errs = [{"target": "peq", "neuron": 0}, {"target": "p0", "neuron": 0},
            {"target": "fr", "neuron": 0}]
    out = model_cb.collect(state, *fields_of(state), values, pids, errs)
    assert isinstance(out[0], go.Figure) and len(out[0].data) == 3
    assert model_form.parse_form(state)[0]["peq_model"]["params"]["xmin"] == 0.6
    assert out[1:6] == (False,) * 5
    values[pids.index({"target": "peq", "neuron": 0, "name": "depth",
                       "model": "double_well"})] = "deep"
    out = model_cb.collect(state, "8", "x", "-1", "1", "neumann", False, "-3", values, pids, errs)
    assert "Fix the fields" in out[0].layout.annotations[0].text       # no spec, no preview
    assert out[2] is True and out[7] == "expected a number"            # Ne
    assert out[5] is True and out[10] == "must be a number > 0"        # D
    i = [p["name"] for p in pids].index("depth")
    assert out[11][i] is True and out[12][i] == "expected a number"


def test_model_messages_appear_under_their_own_field(store):
    """Np = 2 is refused by the form as by the grid, under Np (not Ne); a bad
    interval under x end; a library error under the parameter the core names."""
    state = model_form.preset_state("fig3")
    values, pids = param_lists(state)
    errs = [{"target": "peq", "neuron": 0}, {"target": "p0", "neuron": 0},
            {"target": "fr", "neuron": 0}]
    out = model_cb.collect(state, "2", "16", "-1", "1", "neumann", False, "10", values, pids, errs)
    assert out[1:5] == (True, False, False, False)
    assert out[6] == "must be an integer in [3, 20]" and out[7] == ""
    out = model_cb.collect(state, "8", "16", "1", "-1", "neumann", False, "10", values, pids, errs)
    assert out[1:5] == (False, False, False, True) and "xbegin < xend" in out[9]
    xmin = [p["name"] for p in pids].index("xmin")
    xmax = [p["name"] for p in pids].index("xmax")
    values[xmin] = values[xmax] = "0.2"
    out = model_cb.collect(state, "8", "16", "-1", "1", "neumann", False, "10", values, pids, errs)
    assert out[11][xmin] is True and "xmin != xmax" in out[12][xmin]
    assert out[11][xmax] is False and out[13] == ["", "", ""]


def save(name, state=None, **changes):
    """Call save_model with the fields of a form state (values at click time)."""
    state = state or model_form.preset_state("fig3")
    np_, ne, xb, xe, bm, ab, D = fields_of(state)
    fields = dict(np_=np_, ne=ne, xb=xb, xe=xe, boundary=bm, absorption=ab, D=D)
    fields.update(changes)
    values, pids = param_lists(state)
    return model_cb.save_model(1, name, state, *fields.values(), values, pids)


def test_model_save_and_list(store):
    msg, opts, invalid, fb = save("truth", ne="16")
    assert "Saved" in str(msg) and opts == [{"label": "truth", "value": "truth"}]
    assert invalid is False and store.get_model("truth")["grid"]["Ne"] == 16   # not a stale spec
    assert save("")[2] is True
    msg, opts, invalid, fb = save("a\u200bb")              # an invisible character
    assert invalid is True and msg == "" and "U+200B" in fb
    msg, opts, invalid, fb = save("truth", D="20")        # never overwrites
    assert invalid is True and "exists; choose another name or delete the old model" in fb
    assert store.get_model("truth")["D"] == 10.0
    assert save("x", D="-1")[1] is no_update
    assert model_cb.list_saved("/") == [{"label": "truth", "value": "truth"}]
    msg, opts, value = model_cb.delete_model(1, "truth")
    assert opts == [] and store.get_model("truth") is None


def test_model_neuron_beyond_the_cap_is_explained(store):
    state = model_form.preset_state("fig3")
    state["neurons"] = state["neurons"] * model_form.MAX_NEURONS
    out = restructure(state, model_ids.ADD_NEURON)
    assert len(out[-1]["neurons"]) == model_form.MAX_NEURONS
    assert f"At most {model_form.MAX_NEURONS} neurons" in str(out[11][-1])


# --- Data page ----------------------------------------------------------------
from flowdash.pages.data import callbacks as data_cb  # noqa: E402


def test_data_lists(store, dataset):
    models, datasets, value = data_cb.fill_lists("/data", None)
    assert models == [{"label": "gt", "value": "gt"}] and value == "d"


def test_data_start_generation_validates_inline(store):
    out = data_cb.start_generation(1, None, "0", "abc", "0.0001", "x", "0.5", "", True)
    assert out[0] is no_update and out[1] is no_update
    invalid, messages = out[3:10], out[10:17]
    assert invalid == ("menu is-invalid", True, True, False, True, False, True)   # a menu first
    assert messages[1] == "must be an integer in [1, 10000]"
    store.save_model("gt", SPEC)
    out = data_cb.start_generation(1, "gt", "2", "1", "0.0001", "4", "0.5", "new", True)
    run_id = out[0]  # followed from the run store, across reloads
    assert out[1] == {"run_id": run_id, "status": "queued"} and "queued" in str(out[2])
    assert store.get_run(run_id)["status"] == "queued"
    assert out[3] == "menu" and not any(out[4:10])


GEN = dict(model="gt", n_trials=3, duration=1.0, dt=1e-4, seed=2, with_trial_end=True,
           val_fraction=0.3, dataset_name="g")


def test_data_generation_is_a_job_followed_from_the_store(store):
    store.save_model("gt", SPEC)
    run_id = jobs.submit(store, "generation", GEN)
    seen = {"run_id": run_id, "status": "queued"}
    value, label, generate_off, cancel_off, poll_off, job = data_cb.follow_generation(1, run_id, seen)
    assert (value, generate_off, cancel_off, poll_off) == (0.0, True, False, False)
    assert label.startswith("queued: 1st in line") and job is no_update
    jobs.execute(store, run_id)                        # a worker runs it
    value, label, generate_off, cancel_off, poll_off, job = data_cb.follow_generation(2, run_id, seen)
    assert (value, generate_off, cancel_off, poll_off) == (100.0, False, True, True)
    assert label.startswith("done: 3 trials in") and job["ended"]
    status, opts, value = data_cb.announce(job)        # said once, the dataset shown at once
    assert value == "g" and "Saved dataset “g”: 3 trials in" in str(status)
    # a reloaded page sees the progress, without announcing it again
    assert data_cb.follow_generation(3, run_id, None)[-1] == dict(job, ended=False)
    with pytest.raises(PreventUpdate):
        data_cb.announce(dict(job, ended=False))
    assert data_cb.follow_generation(3, None, None) == (0.0, "", False, True, True, no_update)
    assert data_cb.remember_dataset("g") == "g"
    with pytest.raises(PreventUpdate):
        data_cb.remember_dataset(None)


def test_data_failed_generation_is_shown_at_once_with_its_reason(store):
    store.save_model("gt", SPEC)
    first, second = (jobs.submit(store, "generation", GEN) for _ in range(2))  # same name
    jobs.execute(store, first)
    jobs.execute(store, second)
    value, label, *_, job = data_cb.follow_generation(1, second, {"run_id": second,
                                                                  "status": "running"})
    assert label.startswith("failed: the dataset could not be saved") and job["ended"]
    status, _, value = data_cb.announce(job)
    assert "Generation failed: the dataset could not be saved" in str(status)
    assert value is no_update


def test_data_cancel(store):
    store.save_model("gt", SPEC)
    rid = jobs.submit(store, "generation", dict(GEN, n_trials=1, dataset_name="c"))
    assert "Cancel requested" in str(data_cb.cancel_generation(1, rid))
    assert store.get_run(rid)["status"] == CANCELLED          # it was queued: at once
    *_, job = data_cb.follow_generation(1, rid, {"run_id": rid, "status": "queued"})
    status, _, value = data_cb.announce(job)
    assert "Generation cancelled before it started." in str(status) and value is no_update
    assert jobs.execute(store, rid) == CANCELLED and store.get_dataset("c") is None
    assert data_cb.cancel_generation(1, None) is no_update


def test_data_upload_npz_and_rejects_garbage(store, dataset):
    samples, _ = jobs.load_dataset(store, dataset)
    blob = jobs.spikedata_to_bytes(samples[0])
    url = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    msg, opts, value, invalid, fb = data_cb.upload([url], ["mine.npz"], "up", "0.5")
    assert value == "up" and store.get_dataset("up")["meta"]["source"] == "upload"
    msg, opts, value, invalid, fb = data_cb.upload([url], ["mine.npz"], "up", "0.5")
    assert invalid is True and "“up” exists" in fb and value is no_update
    bad = "data:text/plain;base64," + base64.b64encode(b"not an npz").decode()
    msg, opts, value, invalid, fb = data_cb.upload([bad], ["x.npz"], "bad", "0.5")
    assert "rejected" in str(msg) and value is no_update and store.get_dataset("bad") is None
    msg = data_cb.upload([url], ["mine.npz"], "up2", "")[0]
    assert "Validation fraction (Generate card): required" in str(msg)
    wide = "data:text/csv;base64," + base64.b64encode(b"trial,neuron,time\n0,300000,0.1\n").decode()
    msg = data_cb.upload([wide], ["s.csv"], "wide", "0")[0]
    assert "300000 is too large" in str(msg) and "at most 1000" in str(msg)


def test_data_upload_csv(store, dataset):
    samples, _ = jobs.load_dataset(store, dataset)
    s_buf, t_buf = io.StringIO(), io.StringIO()
    samples[0].save_csv(s_buf, t_buf)
    enc = [("data:text/csv;base64," + base64.b64encode(b.getvalue().encode()).decode())
           for b in (s_buf, t_buf)]
    msg, opts, value, _, _ = data_cb.upload(enc, ["spikes.csv", "trials.csv"], "csvset", "0")
    assert value == "csvset", msg
    # a name the store refuses goes to the name field (the store's error names its field)
    for bad in ("csvset", "x" * 81, "  "):
        msg, _, _, invalid, feedback = data_cb.upload(enc, ["spikes.csv", "trials.csv"], bad, "0")
        assert invalid is True and msg == "" and "name" in feedback, (bad, feedback)


def nwb_fields(form):
    """The NWB form's field values (nwb_callbacks.FIELD_STATES order) of form values."""
    f, c = form["filters"], form["conditions"]
    return (form["units"], form["start"], form["start_offset"], form["end_kind"], form["end"],
            form["end_offset"], form["duration"], *[[x.get(k) for x in f] for k in
                                                     ("column", "op", "values", "low", "high", "other")],
            [x["column"] for x in c], [x["values"] for x in c], form["halves"], form["seed"])


NWB_CONTROLS = ("file", "units", "start", "start_offset", "end", "end_offset", "duration",
                "conditions", "halves", "seed", "name", "trials")


def nwb_outputs(n_filters=0, n_conditions=0):
    """ctx.outputs_list of preview_or_save: the pattern outputs at 5, 6, 7."""
    from flowdash.pages.data import nwb_ids
    lst = [{}] * 5
    lst.append([{"id": {"type": nwb_ids.FB, "control": c}, "property": "children"} for c in NWB_CONTROLS])
    lst.append([{"id": {"type": nwb_ids.F_FB, "i": i}, "property": "children"} for i in range(n_filters)])
    lst.append([{"id": {"type": nwb_ids.C_FB, "i": j}, "property": "children"} for j in range(n_conditions)])
    return lst


def test_data_pmd_button_opens_the_form_and_save_makes_the_dataset(store, monkeypatch):
    """The PMd button fills the form with the paper's choices; Save gives the four
    conditions (shown with their recipe on the Data page)."""
    from _shared import DATA_DIR
    from flowdash.core.nwb import PMD_RECIPE
    from flowdash.pages.data import nwb_callbacks, nwb_ids, nwb_logic

    monkeypatch.setenv(nwb_logic.SAMPLES_ENV, str(DATA_DIR))
    out = call(nwb_callbacks.open_file, None, 1, None, None, None, triggered=nwb_ids.PMD)
    file, form_out = out[0], out[4:4 + len(nwb_callbacks.FORM_OUTPUTS)]
    assert file["source"] == {"kind": "sample", "name": nwb_logic.PMD_FILE} and out[2] == ""
    assert form_out[3] == "stim_onset_time" and form_out[4] == "0.12" and form_out[7] == "response_time"
    assert len(form_out[11]) == 2 and out[-1] == nwb_logic.PMD_FILE   # two condition rows; sample shown
    assert out[-4] == "pmd"                                            # the dataset name
    form = nwb_logic.form_from_recipe(PMD_RECIPE, file["summary"])
    res = call(nwb_callbacks.preview_or_save, 1, None, None, "0", file, *nwb_fields(form), "pmd",
               triggered=nwb_ids.SAVE, outputs_list=nwb_outputs(0, 2))
    assert res[9][0]["value"] == "pmd" and res[10] == "pmd", res[8]
    assert "Saved dataset “pmd”: 1,117 trials in 4 conditions" in str(res[8])
    assert all(m == "" for m in res[5] + res[6] + res[7])
    assert len(res[2].data) == 12 and res[4] is None                   # the preview is shown
    opts, first = data_cb.samples("pmd")
    assert [o["label"] for o in opts] == ["Left/easy", "Left/hard", "Right/easy", "Right/hard"]
    summary = str(data_cb.show_dataset("pmd", "0", "1")[0])
    assert "stim_onset_time + 0.12 s to response_time" in summary and "pmd_single_neuron_session.nwb" in summary
    # a problem lands under its control; nothing is saved
    bad = dict(form, start_offset="soon")
    res = call(nwb_callbacks.preview_or_save, 1, None, None, "0", file, *nwb_fields(bad), "pmd2",
               triggered=nwb_ids.SAVE, outputs_list=nwb_outputs(0, 2))
    assert res[5][NWB_CONTROLS.index("start_offset")] == "expected a number (seconds)"
    assert store.get_dataset("pmd2") is None and "Fix the problems" in str(res[8])
    res = call(nwb_callbacks.preview_or_save, 1, None, None, "0", file, *nwb_fields(form), "pmd",
               triggered=nwb_ids.SAVE, outputs_list=nwb_outputs(0, 2))
    assert "exists" in res[5][NWB_CONTROLS.index("name")] and "Not saved" in str(res[8])
    # an upload that is not NWB: the message under the file controls, the form kept
    out = call(nwb_callbacks.open_file, None, None, {"name": "x.nwb"},
               "data:;base64," + base64.b64encode(b"plain text").decode(), "x.nwb",
               triggered=nwb_ids.UPLOAD_GATE)
    assert "x.nwb is not a readable HDF5 file" in out[2] and out[0] is no_update and out[-2] is None


def test_data_show_dataset(store, dataset):
    summary, raster, latent, rates, invalid, fb = data_cb.show_dataset(dataset, "0, 1", 0)
    assert len(raster.data) == 1 and len(latent.data) == 2 and not invalid
    out = data_cb.show_dataset(dataset, "0, 9", 0)
    assert out[4] is True and "does not exist" in out[5]
    out = data_cb.show_dataset(dataset, "0-1999999999", 0)
    assert out[4] is True and "does not exist" in out[5]
    assert data_cb.show_dataset(None, "", 0)[4] is False
    shown, question = data_cb.ask_delete(1, dataset)      # deleting asks first
    assert shown is True and f"“{dataset}”" in question and store.get_dataset(dataset)
    msg, opts, value = data_cb.delete_dataset(1, dataset)
    assert store.get_dataset(dataset) is None and value is None


def test_data_trial_ranges_are_checked_before_expanding():
    from flowdash.pages.data import logic
    with pytest.raises(ValueError, match="at most 20"):
        logic.parse_trials("0-2000000000", 3_000_000_000)
    assert logic.parse_trials("3, 0-2, 1", 10) == [3, 0, 1, 2]


# --- Fit page -----------------------------------------------------------------
from flowdash.pages.fit import callbacks as fit_cb  # noqa: E402
from flowdash.pages.fit import view as fit_view  # noqa: E402

FB_IDS = [{"id": {"type": "fit-fb", "field": f}} for f in fit_cb.FIELDS]


def start_fit(epochs="3", lrs=("0.005",) * 5, params=("F",), name="t", dataset="d", pace="0"):
    return call(fit_cb.start, 1, dataset, "gt", "cos_square", "GD", list(lrs), "0.05",
                list(params), epochs, "1", "", "1, 2", "0", pace, fit_view.AS_SAVED, "", "",
                fit_view.AS_SAVED, name,
                triggered="fit-start", outputs_list=[{}, {}, {}, {}, FB_IDS])


def test_fit_lists_preset_optimizer(store, dataset):
    ds, models, runs, run_value, ds_value = fit_cb.fill_lists("/fit", "nope", "d")
    assert ds == [{"label": "d", "value": "d"}] and run_value is None and ds_value == "d"
    assert models == [{"label": "gt", "value": "gt"}] and runs == []
    assert fit_cb._dataset_options(store, "D", None) == ds            # typed: the server finds it
    assert fit_cb._model_options(store, "zz", "gt") == models         # the chosen one stays
    assert fit_cb.optimizer_fields("ADAM") == ({"display": "none"}, None)
    assert fit_cb.optimizer_fields("GD") == (None, {"display": "none"})
    out = call(fit_cb.preset, 1, "d", None, [None], triggered=fit_cb.ids.PRESET)
    assert out[0] == "gt" and out[1] == "cos_square" and out[5] == "50" and out[7] == "64"
    assert out[8] == "1, 6, 13, 50" and out[9] == "paper"           # the paper layout
    assert out[10:] == (fit_view.AS_SAVED, "", "", fit_view.AS_SAVED)   # nothing else overridden


def test_fit_start_validates_inline(store, dataset):
    out = start_fit(epochs="0", lrs=("-1",) * 5, pace="11")
    assert out[0] is no_update
    fb = dict(zip(fit_cb.FIELDS, out[4]))
    assert fb["epochs"] and fb["lr-F"] and not fb["dataset"]
    assert fb["pace"] == "must be a number in [0, 10]"
    marks = call(fit_cb.mark_invalid, out[4], inputs_list=[FB_IDS])
    assert marks[list(fit_cb.INPUT_OF).index("epochs")] is True and marks[len(fit_cb.INPUT_OF)][0] is True
    # the run name: flowdash.names' message, under the name field, with the others
    out = start_fit(epochs="0", name="fit\u200b 1")
    fb = dict(zip(fit_cb.FIELDS, out[4]))
    assert "U+200B ZERO WIDTH SPACE, at position 4" in fb["name"] and fb["epochs"]
    marks = call(fit_cb.mark_invalid, out[4], inputs_list=[FB_IDS])
    assert marks[list(fit_cb.INPUT_OF).index("name")] is True
    assert store.list_runs("fit") == []


POLL = ("nll", "potential", "paper", "params", "value", "label", "striped", "animated", "text",
        "badge", "warning", "cursor", "stop", "cancel_off", "every", "message", "cancel_msg",
        "done", "note", "continue_off")


def poll(run_id, cursor=None, view="overlay", trigger=app_ids.ACTIVE_FIT):
    return dict(zip(POLL, call(fit_cb.poll, 1, run_id, view, cursor, triggered=trigger)))


def test_fit_start_poll_patch_and_cancel(store, dataset):
    out = start_fit(epochs="3")
    run_id = out[0]
    assert out[3] == run_id and all(m == "" for m in out[4])
    assert "Fit started" in str(out[1])
    rec = wait_done(store, run_id)
    assert rec["status"] == DONE
    first = poll(run_id)
    assert isinstance(first["nll"], go.Figure) and len(first["nll"].data[0].x) == 4
    assert first["paper"] is no_update                       # the hidden view is not drawn
    assert first["value"] == 100.0 and first["label"] == "3/3" and "done" in first["text"]
    assert first["cursor"]["n"] == 4 and first["stop"] is True and first["cancel_off"] is True
    assert first["every"] == 500
    # a finished run: no moving stripes, and "Fit started." is gone
    assert first["striped"] is False and first["animated"] is False and first["message"] == ""
    # a new epoch appears (and its parameters): the poll returns a Patch, not a new figure
    store.append_epoch(run_id, {"epoch": 4, "nll_train": [1.0], "nll_val": [-1e9],
                                "elapsed": 1.0, "time": time.time(), "D": [10.0]})
    store.set_latest(run_id, dict(store.get_latest(run_id), epoch=4))
    second = poll(run_id, first["cursor"], trigger=fit_cb.ids.INTERVAL)
    assert isinstance(second["nll"], Patch) and second["cursor"]["n"] == 5 and second["stop"]
    assert {"operation": "Extend", "location": ["data", 0, "x"], "params": {"value": [4]}} \
        in second["nll"].to_plotly_json()["operations"]
    assert second["cursor"]["best"] == [4, -1e9]               # the new validation minimum
    assert fit_cb.poll.__name__ == "poll"
    assert call(fit_cb.poll, {"n": 7, "t": 0}, None, "overlay", None,
                triggered=app_ids.ACTIVE_FIT)[-8:] == (True, True, no_update, no_update, "", 7, "", True)
    assert first["cancel_msg"] == "" and second["cancel_msg"] is no_update   # kept while followed
    assert fit_cb.follow("abc") == "abc" and fit_cb.follow(None) is no_update
    assert fit_cb.cancel(1, None) is no_update
    assert "already ended (done)" in str(fit_cb.cancel(1, run_id))
    assert not store.cancel_requested(run_id)
    store.start_run(running := store.create_run("fit", "r", {}), 1, None)
    # continuing a running fit is refused, and its poll goes on (it stopped following it)
    text, interval_off = fit_cb.continue_run(1, running, "10")
    assert "it is still running" in str(text) and interval_off is no_update
    assert "Cancel requested" in str(fit_cb.cancel(1, running))
    assert store.cancel_requested(running)


def test_fit_poll_of_a_long_fit_draws_a_decimated_curve(store, monkeypatch):
    """A fresh poll reads the NLL columns once, decimated; later polls only what is new."""
    monkeypatch.setattr(fit_view, "MAX_POINTS", 50)
    rid = store.create_run("fit", "long", {"max_epochs": 400, "snapshot_epochs": [1],
                                           "params_to_opt": ["F"]}, refs={"dataset": "d"})
    store.start_run(rid, 1, None)
    store.beat(f"{store.get_run(rid)['host']}:1", {"time": time.time() + 60, "run": rid})
    for k in range(300):
        store.append_epoch(rid, {"epoch": k, "nll_train": [100.0 - k / 10], "nll_val": None,
                                 "elapsed": 0.01 * k, "time": time.time(), "D": [1.0]})
    out = poll(rid)
    nll, cursor = out["nll"], out["cursor"]
    x = list(nll.data[0].x)
    assert len(x) <= 50 and x[0] == 0 and x[-1] == 299 and cursor["n"] == 300
    assert out["value"] == 74.75 and out["label"] == "299/400" and "about" in out["text"]  # time left
    for k in range(300, 305):
        store.append_epoch(rid, {"epoch": k, "nll_train": [0.0], "nll_val": None,
                                 "elapsed": 3.0, "time": time.time(), "D": [1.0]})
    out = poll(rid, cursor, trigger=fit_cb.ids.INTERVAL)
    assert out["cursor"]["n"] == 305 and out["label"] == "304/400"
    # 400 epochs at most 50 points: later polls draw every 8th epoch (display_stride)
    assert {"operation": "Extend", "location": ["data", 0, "x"], "params": {"value": [304]}} \
        in out["nll"].to_plotly_json()["operations"]


def test_fit_paper_view_live(store, dataset):
    """The paper layout of any fit: NLL black/red with the arrow, one panel per
    snapshot over the truth; new epochs arrive as a Patch."""
    run_id = start_fit(epochs="3")[0]
    wait_done(store, run_id)
    first = poll(run_id, view="paper")
    fig = first["paper"]
    assert first["nll"] is no_update and isinstance(fig, go.Figure)
    assert fig.data[0].line.color == "#000000" and fig.data[1].line.color == "#D7191C"
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:3] == ["Negative log-likelihood", "Φ(x) at epoch 1", "epoch 2"]
    assert titles[-1] == "min" and fig.layout.annotations[-1].showarrow
    assert max(max(t.y) for t in fig.data[2:] if t.y is not None and len(t.y)) <= 6.0
    store.append_epoch(run_id, {"epoch": 4, "nll_train": [1.0], "nll_val": [-1e9],
                                "elapsed": 1.0, "time": time.time(), "D": [10.0]})
    store.set_latest(run_id, dict(store.get_latest(run_id), epoch=4))
    second = poll(run_id, first["cursor"], view="paper", trigger=fit_cb.ids.INTERVAL)
    patch = second["paper"].to_plotly_json()["operations"]
    assert any(op["location"][:2] == ["layout", "annotations"] for op in patch)
    # switching the view rebuilds the overlay
    third = poll(run_id, second["cursor"], view="overlay", trigger=fit_cb.ids.VIEW)
    assert isinstance(third["nll"], go.Figure) and len(third["nll"].data[0].x) == 5


def _running_copy(store, run_id, upto):
    """A running run (a live worker's heartbeat) with a finished run's result and
    its epochs below ``upto``, the latest parameters those of epoch ``upto - 1``."""
    rec = store.get_run(run_id)
    live = store.create_run("fit", "live", rec["settings"], refs=rec["refs"])
    store.start_run(live, 1, None)
    store.beat(f"{store.get_run(live)['host']}:1", {"time": time.time() + 60, "run": live})
    store.set_result(live, store.get_result(run_id))
    for e in store.read_epochs(run_id)[:upto]:
        store.append_epoch(live, e, expected=e["epoch"])
    store.set_latest(live, dict(store.get_latest(run_id), epoch=upto - 1))
    return live


def test_fit_legend_and_text_name_the_same_epoch(store, dataset):
    """An epoch is appended before its parameters are published: the view of a running
    fit waits for both, so the "now" legend and the progress text agree."""
    done = start_fit(epochs="3")[0]
    wait_done(store, done)
    run_id = _running_copy(store, done, 4)
    first = poll(run_id)
    assert first["cursor"]["n"] == 4 and first["text"].startswith("epoch 3 of 3")
    store.append_epoch(run_id, {"epoch": 4, "nll_train": [1.0], "nll_val": [2.0],
                                "elapsed": 1.0, "time": time.time(), "D": [10.0]})
    later = poll(run_id, first["cursor"], trigger=fit_cb.ids.INTERVAL)
    assert later["nll"] is no_update and later["cursor"]["n"] == 4
    assert later["text"].startswith("epoch 3 of 3")
    latest = dict(store.get_latest(run_id), epoch=4)
    store.set_latest(run_id, latest)
    fresh = poll(run_id)
    names = [t.name for t in fresh["potential"].data]
    assert "now (epoch 4)" in names and fresh["text"].startswith("epoch 4 of 3")
    # a finished run writes nothing more: every epoch it has is shown, and the poll stops
    store.append_epoch(done, {"epoch": 4, "nll_train": [1.0], "nll_val": [2.0],
                              "elapsed": 1.0, "time": time.time(), "D": [10.0]})
    final = poll(done)
    assert final["cursor"]["n"] == 5 and final["stop"] is True


def test_fit_warns_when_the_training_nll_keeps_rising():
    recent, best, first = fit_view.rising([10.0, 8.0, 7.0, 6.0])
    assert recent == 0 and best == 6.0 and fit_view.rising_warning(recent) == ""
    rises = [0.0, 600.0, 1000.0, 600.0, 1000.0]             # a learning rate of 1e9
    recent = fit_view.rising(rises)[0]
    assert recent == 0b1111 and "4 of the last 6" in fit_view.rising_warning(recent)
    # a zig-zag that keeps coming back to its lowest value (never below) warns too
    back = fit_view.rising([0.0, -5.0, 3.0, -5.0, 3.0, -5.0, 3.0])[0]
    assert "3 of the last 6" in fit_view.rising_warning(back)
    assert fit_view.rising_warning(fit_view.rising([0.0, -5.0, 3.0, -5.0, 3.0])[0]) == ""
    # carried across polls, and cleared by a new lowest value
    s = fit_view.rising([5.0, 6.0])
    s = fit_view.rising([7.0, 8.0], *s[1:], recent=s[0])
    assert s[0] == 0b111 and fit_view.rising_warning(s[0])
    assert fit_view.rising([4.0], *s[1:], recent=s[0])[0] == 0
    # a converged fit that jitters by far less than it descended does not warn
    assert fit_view.rising([100.0, 50.0, 10.0, 10.001, 10.002, 10.001])[0] == 0


def test_fit_preflight_estimate_and_snapshot_warning(store, dataset):
    f = fit_cb.fields("d", "gt", fit_view.AS_SAVED, "GD", ["0.005"] * 5, "0.05", ["F"], "20",
                      "1", "", "1, 6, 13, 50", "0", "0")
    text, css, snap = call(fit_cb.preflight, *[f[k] for k in (
        "dataset", "init_model", "peq_override", "optimizer")], ["0.005"] * 5, "0.05", ["F"],
        "20", "1", "", "1, 6, 13, 50", "0", "0")
    assert "per epoch" in text and "for 20 epochs" in text and "text-muted" in css
    assert snap == "50 lies beyond the last epoch (20) and will not be drawn"
    with open_store_at(store) as s:
        out = fit_view.preflight(s, dict(f, nv="999"))
    assert out["estimate"] == ""                       # Nv does not suit the grid: no guess
    assert fit_view.values_from_fields(f)["peq_override"] is None


def test_fit_view_helpers():
    v = fit_view.values_from_fields(dict(dataset="d", init_model="m", optimizer="ADAM",
                                         alpha="0.1", params=["D", "F"], epochs="5",
                                         batches="2", nv="", snapshots="6,1", seed="0"))
    s, e = settings.check_fit(v)
    assert e == {} and s["params_to_opt"] == ["F", "D"] and s["Nv"] is None
    assert s["snapshot_epochs"] == [1, 6] and s["learning_rate"] == {"alpha": 0.1}
    assert s["pace"] == 0.0
    assert fit_view.fmt_seconds(75) == "1 min 15 s"


# --- Runs page ----------------------------------------------------------------
from flowdash.pages.runs import callbacks as runs_cb  # noqa: E402
from flowdash.pages.runs import list_callbacks as list_cb  # noqa: E402


def show_runs(open_id=None, view=None, trigger="runs-interval", search="", status="", kind="",
              dataset=None, order="newest", page=1):
    """The Runs page's table callback: (rows, empty note, pages, page, count,
    interval, continue disabled, cancel disabled, view)."""
    return call(list_cb.show_runs, 1, None, "/runs", search, status, kind, dataset, order, page,
                open_id, view, triggered=trigger)


def run_graphs(children):
    """The dcc.Graph components in a plot area's children, in layout order."""
    found = []

    def walk(node):
        if isinstance(node, dcc.Graph):
            found.append(node)
        elif isinstance(node, (list, tuple)):
            for child in node:
                walk(child)
        elif hasattr(node, "children"):
            walk(node.children)

    walk(children)
    return found


def test_runs_table_open_overlay_export_delete(store, dataset):
    run_id = start_fit(epochs="2", name="r1")[0]
    wait_done(store, run_id)
    table, *_, cancel_off, view = show_runs(run_id)
    opts, fits, datasets = list_cb.fill_menus("/runs", run_id, [])
    assert {o["value"] for o in opts} >= {run_id} and [f["value"] for f in fits] == [run_id]
    assert [d["value"] for d in datasets] == ["d"]
    assert cancel_off is True                         # a finished run cannot be cancelled
    assert 'table-active' in str(table)               # the open run's row stands out
    assert call(runs_cb.open_row, [None, 1], triggered={"type": "runs-row", "run": run_id},
                value=1) == run_id
    with pytest.raises(PreventUpdate):                # a redrawn table is not a click
        call(runs_cb.open_row, [None, None], triggered={"type": "runs-row", "run": run_id},
             value=None)
    info, plots, note = runs_cb.open_run(run_id, None, "svg")
    graphs = run_graphs(plots)
    (nll, pot, par), configs = [g.figure for g in graphs], [g.config for g in graphs]
    assert len(nll.data[0].x) == 3 and "ground truth" in [t.name for t in pot.data]
    assert "not fitted" in par.layout.annotations[0].text
    assert [c["toImageButtonOptions"]["format"] for c in configs] == ["svg"] * 3
    text = str(info)
    assert "Learning rates" in text and "F 0.005" in text and "Nv (eigenpairs)" in text
    assert "{" not in text.replace("{'", "")          # a table, not a JSON dump
    gen = next(o["value"] for o in opts if o["value"] != run_id)
    raster, latent, rates = [g.figure for g in run_graphs(runs_cb.open_run(gen, None, "png")[1])]
    assert raster.layout.title.text == "Spike raster" and len(raster.data) == 1
    assert latent.layout.title.text == "Latent trajectories" and len(latent.data) >= 1
    assert rates.data and rates.data[0].type == "bar"
    over = runs_cb.overlay([run_id], None, "svg")
    assert over.id == "runs-overlay-graph" and over.figure.data[0].name == "r1 · training"
    assert over.config["toImageButtonOptions"]["format"] == "svg"
    assert not run_graphs(runs_cb.overlay([], None, "svg"))   # nothing ticked: no graph
    npz = runs_cb.export_npz(1, run_id)
    assert npz["filename"].endswith(".npz") and npz["base64"]
    js = runs_cb.export_json(1, run_id)
    assert '"max_epochs": 2' in js["content"]
    msg, changed = runs_cb.cancel_run(1, run_id)
    assert changed is no_update                       # a done run cannot be cancelled
    shown, question = runs_cb.ask_delete(1, run_id)   # deleting asks first
    assert shown is True and "r1" in question and store.get_run(run_id) is not None
    msg, changed, opened = runs_cb.delete_run(1, run_id)
    assert store.get_run(run_id) is None and opened is None
    assert not run_graphs(runs_cb.open_run(opened, changed, "png")[1])  # no run open: no graph
    assert runs_cb.export_npz(1, run_id) is no_update


def test_continue_is_disabled_unless_the_job_layer_can_continue_the_run(store, dataset):
    run_id = start_fit(epochs="2", name="c1")[0]
    assert jobs.can_continue(store.get_run(run_id)) is False          # queued
    assert poll(run_id)["continue_off"] is True                       # the Fit page
    assert show_runs(run_id)[-3] is True                              # the Runs page
    wait_done(store, run_id)
    assert jobs.can_continue(store.get_run(run_id)) is True
    assert poll(run_id)["continue_off"] is False
    assert show_runs(run_id)[-3] is False
    assert show_runs()[-3] is True and poll(None)["continue_off"] is True   # nothing open
    jobs.continue_run(store, run_id, "1")                             # queued again
    assert poll(run_id)["continue_off"] is True and show_runs(run_id)[-3] is True
    assert jobs.can_continue({"kind": "decode", "status": "done"}) is False


def test_runs_empty_store(store):
    table, empty, *_, cancel_off, view = show_runs()
    opts, fits, datasets = list_cb.fill_menus("/runs", None, [])
    assert opts == fits == datasets == [] and table == [] and "No runs" in str(empty)
    assert cancel_off is True


def test_buttons_do_nothing_without_a_click(store, dataset):
    """Pages insert components; a callback fired by insertion must not act."""
    from flowdash.pages.data import nwb_callbacks as nwb_cb
    run_id = start_fit(epochs="1")[0]
    for fn, args in ((fit_cb.cancel, (None, run_id)),
                     (runs_cb.delete_run, (None, run_id)), (runs_cb.cancel_run, (None, run_id)),
                     (model_cb.save_model, (None, "x") + (None,) * 10),
                     (data_cb.cancel_generation, (None, run_id)),
                     (data_cb.upload, (None, None, "u", "0.5"))):
        with pytest.raises(PreventUpdate):
            fn(*args)
    from flowdash.pages.data import nwb_ids
    for fn, args, trigger in ((fit_cb.preset, (None, "d", None, [None]), fit_cb.ids.PRESET),
                              (data_cb.preset, (None, [None]), data_cb.ids.PRESET),
                              (nwb_cb.open_file, (None, None, None, None, None), nwb_ids.PMD),
                              (nwb_cb.preview_or_save, (None, None, None, "0", {"summary": {}})
                               + (None,) * 18, nwb_ids.SAVE),
                              (model_cb.same_model_for_all, (None,) * 12, model_ids.REPLICATE)):
        with pytest.raises(PreventUpdate):
            call(fn, *args, triggered=trigger, value=None)
    assert not store.cancel_requested(run_id) and store.get_run(run_id) is not None
    out = restructure(model_form.preset_state("ramp"), {"type": model_ids.PRESET, "key": "fig3"},
                      value=None)
    assert out == (no_update,) * 13
    wait_done(store, run_id)


def test_fit_poll_shows_a_dead_workers_run_interrupted(store, dataset):
    rid = store.create_run("fit", "ghost", {"max_epochs": 3, "snapshot_epochs": [1]},
                           refs={"dataset": "d"})
    store.start_run(rid, 999999, None)                 # a worker that never beat, long ago
    store.update_run(rid, started=time.time() - 60)
    out = poll(rid)
    rec = store.get_run(rid)
    assert rec["status"] == "interrupted" and "no heartbeat" in rec["error"] and out["stop"] is True
    assert "interrupted: its worker" in out["text"] and out["cancel_off"] is True


def test_fit_and_runs_pages_say_where_a_queued_run_waits(store, dataset):
    first, second = start_fit(name="a")[0], start_fit(name="b")[0]
    out = poll(second)
    assert out["text"].startswith("queued: 2nd in line") and out["cancel_off"] is False  # Cancel on
    assert out["striped"] is True and out["animated"] is True   # a live run keeps its stripes
    assert out["every"] == 150                      # polled often until its first epoch
    assert isinstance(out["paper"], go.Figure) or isinstance(out["nll"], go.Figure)
    again = poll(second, out["cursor"], trigger=fit_cb.ids.POLL_TICK)
    # ... and cheaply: the "waiting" figures are drawn once, the next polls draw nothing
    assert all(again[k] is no_update for k in ("nll", "potential", "paper", "params"))
    assert again["every"] == 150 and again["done"] == 1 and again["cancel_msg"] is no_update
    table, *_ = show_runs(second)
    assert "queued: 1st in line" in str(table) and "queued: 2nd in line" in str(table)
    assert "Cancelled before it started" in str(fit_cb.cancel(1, second))
    for rid in (first, second):
        wait_done(store, rid)


def test_runs_generation_without_its_dataset(store):
    from flowdash.pages.runs.plots import generation_plots

    record = {"id": "abc", "status": "cancelled", "refs": {"dataset": "never-saved"}}
    assert "saved no dataset" in generation_plots(store, record)[0].layout.annotations[0].text
    record["status"] = "done"
    assert "is gone" in generation_plots(store, record)[0].layout.annotations[0].text


def test_data_fig3_preset():
    """The 2020 Fig. 3 data: 2 trials × 100 s, dt 1e-4, one validation trial, no trial end."""
    trials, duration, dt, seed, val, trial_end, name = call(data_cb.preset, 1, [None],
                                                            triggered=data_cb.ids.PRESET)
    assert (trials, duration, dt, val, trial_end) == ("2", "100", "0.0001", "0.5", False)
    s, errors = settings.check_generation(dict(model="m", n_trials=trials, duration=duration,
                                               dt=dt, seed=seed, val_fraction=val,
                                               with_trial_end=trial_end, dataset_name=name))
    assert errors == {} and jobs.random_split(2, s["val_fraction"], 0)["kind"] == "random"
    from flowdash.core.spikedata import SpikeData
    import numpy as np
    two = SpikeData.from_spike_times([[np.array([0.5])], [np.array([0.7])]], with_trial_end=False)
    train, val = two.split(s["val_fraction"], 0)
    assert train.n_trials == val.n_trials == 1
    with pytest.raises(PreventUpdate):
        call(data_cb.preset, None, [None], triggered=data_cb.ids.PRESET, value=None)


def test_model_delete_asks_first(store):
    store.save_model("gone", SPEC)
    with pytest.raises(PreventUpdate):
        model_cb.ask_delete(None, "gone")
    shown, question = model_cb.ask_delete(1, "gone")
    assert shown and "“gone”" in question and store.get_model("gone")
    model_cb.delete_model(1, "gone")
    assert store.get_model("gone") is None


def test_double_well_fields_say_what_xmin_and_xmax_are():
    from flowdash.core import library
    assert "well" in model_form.param_label("double_well", "xmin")
    assert "barrier" in model_form.param_label("double_well", "xmax")
    assert model_form.param_label("single_well", "xmin") == "xmin"
    assert "barrier at xmax" in library.PEQ_MODELS["double_well"].description
    assert library.RATE_MODELS["rectified_linear"].description.endswith(", 1 Hz)")


def test_run_settings_read_as_a_table():
    from flowdash.pages.runs.table import settings_rows
    gen = {"id": "g1", "kind": "generation", "status": "done", "created": 0, "seed_used": 7,
           "settings": {"model": "gt", "n_trials": 2, "duration": 100.0, "dt": 0.0001,
                        "seed": None, "with_trial_end": False, "val_fraction": 0.5,
                        "dataset_name": "fig3-data", "extra": [1, 2]}}
    rows = dict(settings_rows(gen))
    assert rows["Trials"] == "2" and rows["dt (s)"] == "0.0001" and rows["Seed"] == "7 (drawn)"
    assert rows["Trial end recorded"] == "no" and rows["extra"] == "1, 2"
    assert rows["Run id"] == "g1" and rows["Status"] == "done"


def test_a_fits_line_searches_and_recording_read_as_words():
    from flowdash.pages.runs.table import settings_rows
    fit = {"id": "f1", "kind": "fit", "status": "done", "created": 0,
           "settings": {"dataset": "d", "init_model": "gt", "max_epochs": 100,
                        "line_search": {"C": {"epochs": {"log": 5}, "searches_per_epoch": 1,
                                              "max_fun_eval": 5},
                                        "D": {"epochs": {"every": 10}, "searches_per_epoch": 2,
                                              "max_fun_eval": 3}},
                        "record_models": True}}
    rows = settings_rows(fit)
    labels = [label for label, _ in rows]
    assert "line_search" not in labels and "record_models" not in labels   # no raw keys
    text = dict(rows)
    assert text["Line searches"] == ("C: at 5 log-spaced epochs, 1 search per epoch, at most 5 "
                                     "evaluations; D: every 10 epochs, 2 searches per epoch, "
                                     "at most 3 evaluations")
    assert text["Models recorded (for analysis)"] == "yes"
    fit["settings"].update(line_search=None, record_models=False)
    text = dict(settings_rows(fit))
    assert text["Line searches"] == "off" and text["Models recorded (for analysis)"] == "no"
    fit["settings"]["line_search"] = {"C": {"epochs": [3, 7], "searches_per_epoch": 1,
                                            "max_fun_eval": 1}}
    assert dict(settings_rows(fit))["Line searches"] == \
        "C: at epochs 3, 7, 1 search per epoch, at most 1 evaluation"
