"""The Data page's NWB import form through its logic (flowdash.pages.data.nwb_logic):
form values <-> recipe, every bad input under its control, the PMd and population
datasets, the recipe in the dataset meta, on the Runs page and in exports, and the
small multiples of a population's rates."""
import io
import json

import h5py
import numpy as np
import pytest

from _shared import DATA_DIR
from flowdash import export, jobs, settings
from flowdash.core.nwb import PMD_RECIPE, ConditionColumn, Recipe, TrialFilter, Window, read_nwb
from flowdash.pages import theme
from flowdash.pages.data import nwb_figures, nwb_logic as logic
from flowdash.store import RunStore

pynwb = pytest.importorskip("pynwb")
from test_nwb import TRIALS, UNITS, _pmd_from_npz, _write  # noqa: E402  (the toy session)

PMD = {"kind": "sample", "name": "pmd_single_neuron_session.nwb"}
POPULATION = {"kind": "sample", "name": "pmd_population_session.nwb"}
PMD_ORDER = ["Left/easy", "Left/hard", "Right/easy", "Right/hard"]


@pytest.fixture(autouse=True)
def folders(tmp_path, monkeypatch):
    """Samples from the shared data, uploads in a temporary folder."""
    monkeypatch.setenv(logic.SAMPLES_ENV, str(DATA_DIR))
    monkeypatch.setenv(logic.UPLOADS_ENV, str(tmp_path / "uploads"))


@pytest.fixture
def store(tmp_path):
    s = RunStore(str(tmp_path / "store"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def toy_bytes(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("nwbpage") / "toy.nwb").read_bytes()


def data_url(raw: bytes) -> str:
    import base64
    return "data:application/octet-stream;base64," + base64.b64encode(raw).decode()


def toy_file(toy_bytes):
    return logic.upload(data_url(toy_bytes), "toy.nwb")


def toy_form(summary, **kw):
    form = logic.default_form(summary)
    form.update(start="onset", start_offset="0.25", end="response", units=[0, 1], halves="none")
    form.update(kw)
    return form


def errors_of(file, form):
    return logic.run_import(file["source"], form, file["summary"])[1]


# ---- files ---------------------------------------------------------------------------


def test_samples_are_listed_and_only_listed_names_open():
    assert logic.sample_files() == ["pmd_population_session.nwb", "pmd_single_neuron_session.nwb"]
    file = logic.open_file(PMD)
    assert file["summary"]["n_trials"] == 1117 and file["source"] == PMD
    for name in ("../data/pmd_single_neuron_session.nwb", "/etc/passwd", None):
        with pytest.raises(ValueError, match="no sample recording named") as info:
            logic.open_file({"kind": "sample", "name": name})
        assert info.value.field == "file"


def test_an_upload_is_kept_under_its_hash_and_opened_by_it(toy_bytes):
    file = toy_file(toy_bytes)
    src = file["source"]
    assert src["kind"] == "upload" and src["name"] == "toy.nwb" and len(src["sha256"]) == 64
    assert (logic.upload_dir() / f"{src['sha256']}.nwb").read_bytes() == toy_bytes
    assert file["summary"]["file_sha256"] == src["sha256"] and file["summary"]["file_name"] == "toy.nwb"
    assert logic.open_file(src)["summary"] == file["summary"]
    for bad in ("../../etc/passwd", "0" * 63, None):
        with pytest.raises(ValueError, match="no longer on the server"):
            logic.open_file(dict(src, sha256=bad))


def test_file_problems_go_under_the_file_control(tmp_path, toy_bytes, monkeypatch):
    def refused(contents, name):
        with pytest.raises(ValueError) as info:
            logic.upload(contents, name)
        assert info.value.field == "file"
        return str(info.value)

    assert "x.nwb is not a readable HDF5 file, so not an NWB file" in refused(data_url(b"not hdf5"), "x.nwb")
    with h5py.File(tmp_path / "plain.h5", "w") as h5:
        h5["x"] = np.arange(3)
    assert "plain.h5 is an HDF5 file but not an NWB 2 file" in refused(
        data_url((tmp_path / "plain.h5").read_bytes()), "plain.h5")
    no_trials = _write(tmp_path / "no_trials.nwb", with_trials=False).read_bytes()
    assert "no_trials.nwb has no trials table" in refused(data_url(no_trials), "no_trials.nwb")
    no_units = _write(tmp_path / "no_units.nwb", units=[]).read_bytes()
    assert "no_units.nwb has no units table" in refused(data_url(no_units), "no_units.nwb")
    assert "could not be read" in refused("no comma here", "y.nwb")
    # over the cap: the importer's own message, before decoding or reading
    monkeypatch.setattr(settings, "MAX_UPLOAD_BYTES", len(toy_bytes) - 1)
    message = refused(data_url(toy_bytes), "toy.nwb")
    with pytest.raises(ValueError) as core:
        read_nwb(toy_bytes, name="toy.nwb", max_bytes=len(toy_bytes) - 1)
    assert message == str(core.value) == logic.too_large("toy.nwb", len(toy_bytes))
    assert not any(logic.upload_dir().glob("*.nwb"))   # nothing refused is kept


# ---- form values <-> recipe ----------------------------------------------------------


def test_pmd_recipe_fills_the_form_and_comes_back():
    summary = logic.open_file(PMD)["summary"]
    form = logic.form_from_recipe(PMD_RECIPE, summary)
    assert form["start"] == "stim_onset_time" and form["start_offset"] == "0.12"
    assert form["end_kind"] == "event" and form["end"] == "response_time" and form["end_offset"] == "0"
    assert [c["column"] for c in form["conditions"]] == ["chosen_side", "stim_difficulty"]
    assert form["conditions"][0]["values"] == ['"Left"', '"Right"'] and form["halves"] == "even_odd"
    recipe, errors = logic.recipe_from_form(form, summary)
    assert errors == {}
    assert recipe == Recipe(PMD_RECIPE.window, units=(0,), conditions=PMD_RECIPE.conditions,
                            halves="even_odd", file_name="pmd_single_neuron_session.nwb",
                            file_sha256=summary["file_sha256"])


def test_every_part_of_a_recipe_round_trips_through_the_form(toy_bytes):
    summary = toy_file(toy_bytes)["summary"]
    recipe = Recipe(Window("onset", -0.5, duration=2.0), units=(1, 0),
                    filters=(TrialFilter("side", "in", ("L",)), TrialFilter("rt", "range", low=0.1, high=1.2),
                             TrialFilter("side", "same_as", other="correct"),
                             TrialFilter("hard", "in", (False,))),
                    conditions=(ConditionColumn("hard", (False, True)),), halves="random", seed=7,
                    file_name="toy.nwb", file_sha256=summary["file_sha256"])
    form = logic.form_from_recipe(recipe, summary)
    assert form["end_kind"] == "duration" and form["duration"] == "2" and form["start_offset"] == "-0.5"
    assert form["filters"][0]["values"] == ['"L"'] and form["filters"][3]["values"] == ["false"]
    assert (form["filters"][1]["low"], form["filters"][1]["high"]) == ("0.1", "1.2")
    assert form["halves"] == "random" and form["seed"] == "7"
    back, errors = logic.recipe_from_form(json.loads(json.dumps(form)), summary)   # through the browser
    assert errors == {} and back == recipe


def test_condition_values_follow_the_files_order_whatever_the_clicks(toy_bytes):
    summary = toy_file(toy_bytes)["summary"]
    form = toy_form(summary, conditions=[{"column": "side", "values": ['"R"', '"L"']}])
    recipe, _ = logic.recipe_from_form(form, summary)
    assert recipe.conditions == (ConditionColumn("side", ("L", "R")),)


@pytest.mark.parametrize("change, control, text", [
    ({"units": []}, "units", "choose at least one unit"),
    ({"start_offset": "abc"}, "start_offset", "expected a number (seconds)"),
    ({"start": None}, "start", "choose the event column"),
    ({"end": ""}, "end", "choose the event column each window ends at"),
    ({"end_offset": "inf"}, "end_offset", "expected a finite number"),
    ({"end_kind": "duration", "duration": "0"}, "duration", "must be"),
    ({"end_kind": "duration", "duration": "-1"}, "duration", "must be"),
    ({"filters": [{"column": "side", "op": "in", "values": []}]}, "filters:0", "choose the values of side"),
    ({"filters": [{"column": "rt", "op": "range", "low": "", "high": ""}]}, "filters:0", "give low, high or both"),
    ({"filters": [{"column": "rt", "op": "range", "low": "2", "high": "1"}]}, "filters:0", "is above high"),
    ({"filters": [{"column": "rt", "op": "range", "low": "x"}]}, "filters:0", "low: expected a number"),
    ({"filters": [{"column": "side", "op": "same_as", "other": None}]}, "filters:0", "choose the column"),
    ({"conditions": [{"column": "side", "values": []}]}, "conditions:0", "choose the values of side"),
    ({"conditions": [{"column": "side", "values": ['"L"']}, {"column": "side", "values": ['"R"']}]},
     "conditions", "list the column 'side' twice"),
    ({"halves": "random", "seed": "-1"}, "seed", "must be"),
    ({"halves": "thirds"}, "halves", "halves must be one of"),
])
def test_a_bad_field_gets_its_message_under_its_control(toy_bytes, change, control, text):
    file = toy_file(toy_bytes)
    recipe, errors = logic.recipe_from_form(toy_form(file["summary"], **change), file["summary"])
    assert recipe is None and set(errors) == {control} and text in errors[control]


@pytest.mark.parametrize("change, control, text", [
    # the file disagrees with the recipe: the core names the part (InvalidValue.field)
    ({"start": "rt_missing"}, "start", "window start: the trials table has no column 'rt_missing'"),
    ({"end": "side"}, "end", "window end: column 'side' holds labels"),
    ({"units": [0, 1, 2]}, "units", "unit row 2 (id 2) has no spikes inside any kept window"),
    ({"units": [5]}, "units", "units: row 5 is not in the units table"),
    ({"filters": [{"column": "side", "op": "in", "values": ['"Q"']}]}, "filters:0", "no trial has the value 'Q'"),
    ({"filters": [{"column": "side", "op": "same_as", "other": "rt"}]}, "filters:0",
     "compare columns of the same kind"),
    ({"conditions": [{"column": "side", "values": ['"L"', '"R"']},
                     {"column": "hard", "values": ["false", "true"]}],
      "filters": [{"column": "correct", "op": "in", "values": ['"L"']}]},
     "conditions", "condition 'L/True' (side = L, hard = True) has no trials left"),
    ({"conditions": [{"column": "side", "values": ['"L"', '"R"']}, {"column": "hard", "values": ["true"]}],
      "halves": "even_odd"}, "halves", "halves (even_odd) need at least 2 trials"),
    # every window empty or negative: nothing left, and the reasons counted
    ({"start": "response", "start_offset": "1", "end": "onset"}, "trials", "7 dropped for negative window"),
])
def test_a_recipe_the_file_cannot_meet_says_why_under_its_control(toy_bytes, change, control, text):
    file = toy_file(toy_bytes)
    errors = errors_of(file, toy_form(file["summary"], **change))
    assert set(errors) == {control} and text in errors[control], errors


def test_nan_events_and_empty_or_negative_windows_are_dropped_and_shown(toy_bytes):
    file = toy_file(toy_bytes)
    imp, errors = logic.run_import(file["source"], toy_form(file["summary"]), file["summary"])
    assert errors == {}
    p = logic.preview(imp)
    assert [(d["reason"], d["trials"], d["rows"]) for d in p["dropped"]] == [
        ("NaN in response", 1, "2"), ("negative window", 1, "3"), ("empty window", 1, "4")]
    assert p["n_trials_kept"] == 5 and p["n_trials_file"] == len(TRIALS)
    assert [c["condition"] for c in p["conditions"]] == ["all"] and p["conditions"][0]["halves"] == "—"
    assert [u["spikes"] for u in p["units"]] == list(imp.report.spikes_per_neuron)


def test_a_file_gone_from_the_server_is_said_under_the_file_control(toy_bytes):
    file = toy_file(toy_bytes)
    (logic.upload_dir() / f"{file['source']['sha256']}.nwb").unlink()
    logic._sessions.clear()
    errors = errors_of(file, toy_form(file["summary"]))
    assert set(errors) == {"file"} and "upload it again" in errors["file"]


# ---- the PMd button and the population -----------------------------------------------


def test_pmd_through_the_form_gives_the_published_datasets(store):
    """The PMd button's form, saved: the trials of each condition interval by
    interval to 1e-9 s against the published cut from the plain-array file, the
    even/odd split the PMd datasets always had, the recipe in the meta."""
    file = logic.open_file(PMD)
    form = logic.form_from_recipe(PMD_RECIPE, file["summary"])
    name, errors, imp = logic.save(store, "pmd", file["source"], form, file["summary"])
    assert name == "pmd" and errors == {}
    samples, meta = jobs.load_dataset(store, "pmd")
    expected = _pmd_from_npz()
    assert meta["conditions"] == PMD_ORDER and meta["n_datasamples"] == 4 and meta["n_trials"] == 1117
    assert meta["split"] == {"kind": "even_odd"} and meta["with_trial_end"] and meta["source"] == "nwb"
    for data, c in zip(samples, PMD_ORDER):
        rows, trials = expected[c]
        assert data.n_neurons == 1 and data.with_trial_end and data.n_trials == len(trials)
        for (isi, ids), (want_isi, want_ids) in zip(data.trials, trials):
            np.testing.assert_array_equal(ids, want_ids)
            np.testing.assert_allclose(isi, want_isi, rtol=0, atol=1e-9)
    train, val, _ = jobs.train_val(store, "pmd")
    assert [d.n_trials for d in train] == [140, 134, 140, 146] and [d.n_trials for d in val] == [140, 133, 139, 145]
    assert train[0] == samples[0].subset(np.arange(0, 280, 2))
    assert Recipe.from_dict(meta["recipe"]) == imp.recipe
    assert meta["recipe"]["file_sha256"] == file["summary"]["file_sha256"]


def test_the_population_imports_with_14_neurons_4_conditions_and_two_halves(store):
    file = logic.open_file(POPULATION)
    assert len(logic.unit_options(file["summary"])) == 14
    form = logic.form_from_recipe(PMD_RECIPE, file["summary"])
    name, errors, imp = logic.save(store, "population", file["source"], form, file["summary"])
    assert errors == {}
    meta = store.get_dataset_meta("population")
    assert meta["n_neurons"] == 14 and meta["conditions"] == PMD_ORDER and meta["unit_ids"] == list(range(14))
    train, val, _ = jobs.train_val(store, "population")
    assert [d.n_trials for d in train] == [135, 134, 131, 129] and [d.n_trials for d in val] == [134, 133, 131, 129]
    p = logic.preview(imp, neuron=13)
    assert len(p["units"]) == 14 and p["neuron"] == 13 and p["neuron_label"] == "unit 13 (id 13)"
    assert all(r["shown"] == logic.MAX_RASTER_TRIALS for r in p["rasters"].values())


def test_random_halves_are_the_split(store, toy_bytes):
    file = toy_file(toy_bytes)
    form = toy_form(file["summary"], halves="random", seed="3",
                    conditions=[{"column": "side", "values": ['"L"', '"R"']}])
    name, errors, imp = logic.save(store, "toy-random", file["source"], form, file["summary"])
    assert errors == {}
    meta = store.get_dataset_meta("toy-random")
    assert meta["split"]["kind"] == "halves" and meta["split"]["seed"] == 3
    samples, _ = jobs.load_dataset(store, "toy-random")
    train, val, _ = jobs.train_val(store, "toy-random")
    for k, c in enumerate(imp.conditions):
        assert train[k] == samples[k].subset(imp.halves[c][0]) and val[k] == samples[k].subset(imp.halves[c][1])


def test_a_taken_name_goes_under_the_name(store):
    file = logic.open_file(PMD)
    form = logic.form_from_recipe(PMD_RECIPE, file["summary"])
    assert logic.save(store, "pmd", file["source"], form, file["summary"])[1] == {}
    for name, text in (("pmd", "exists"), ("", "name")):
        saved, errors, _ = logic.save(store, name, file["source"], form, file["summary"])
        assert saved is None and set(errors) == {"name"} and text in errors["name"]


# ---- the recipe on the Runs page and in exports --------------------------------------


ONE_NEURON = {"grid": {"Np": 4, "Ne": 4, "xbegin": -1.0, "xend": 1.0}, "boundary_mode": "absorbing",
              "peq_model": {"model": "uniform", "params": {}}, "p0_model": {"model": "cos_square", "params": {}},
              "D": 1.0, "fr_model": [{"model": "linear", "params": {"slope": 10, "bias": 30}}]}


def test_the_recipe_is_on_the_runs_page_and_in_exports(store):
    from flowdash.pages.runs.table import recipe_rows

    file = logic.open_file(PMD)
    logic.save(store, "pmd", file["source"], logic.form_from_recipe(PMD_RECIPE, file["summary"]),
               file["summary"])
    store.save_model("one", ONE_NEURON)
    run_id = jobs.submit(store, "fit", {"dataset": "pmd", "init_model": "one", "optimizer": "ADAM",
                                        "params_to_opt": ["F"], "learning_rate": {"alpha": "0.05"},
                                        "max_epochs": "1", "mini_batch_number": "1"})
    record = store.get_run(run_id)
    recipe = export.import_recipe(store, record)
    assert recipe == store.get_dataset_meta("pmd")["recipe"]
    rows = dict(recipe_rows(recipe))
    assert rows["NWB file"] == "pmd_single_neuron_session.nwb"
    assert rows["File SHA-256"] == file["summary"]["file_sha256"]
    assert rows["Window"] == "stim_onset_time + 0.12 s to response_time (trial end recorded)"
    assert rows["Conditions"] == "chosen_side (Left, Right) × stim_difficulty (easy, hard)"
    assert rows["Halves"] == "even/odd trials within each condition" and rows["Trial filters"] == "none"
    assert rows["Units (rows)"] == "0"
    assert json.loads(export.export_settings_json(store, run_id))["import_recipe"] == recipe
    with np.load(io.BytesIO(export.export_npz(store, run_id)), allow_pickle=False) as z:
        assert json.loads(str(z["import_recipe_json"])) == recipe
    store.delete_dataset("pmd")   # the run keeps the meta it started with
    assert export.import_recipe(store, store.get_run(run_id)) == recipe
    assert recipe_rows(None) == []


# ---- figures -------------------------------------------------------------------------


def axis_titles(fig, axis):
    return [getattr(fig.layout, k).title.text for k in sorted(fig.layout) if k.startswith(axis)]


def test_raster_and_psth_per_condition_aligned_to_the_first_event(store):
    file = logic.open_file(PMD)
    imp, _ = logic.run_import(file["source"], logic.form_from_recipe(PMD_RECIPE, file["summary"]),
                              file["summary"])
    p = logic.preview(imp)
    fig = nwb_figures.raster_psth(p["rasters"], p["edges"], p["psth"], p["align"], p["start_offset"], "unit 0")
    assert len(fig.data) == 3 * 4   # per condition: spikes, window ends, PSTH
    # SVG, not WebGL: a few thousand ticks draw faster without a WebGL context per panel
    # (software GL in a GPU-less browser), and look the same
    assert {t.type for t in fig.data} == {"scatter"}
    assert [t.name for t in fig.data[:3]] == ["Left/easy spikes", "Left/easy window end", "Left/easy PSTH"]
    titles = [a.text for a in fig.layout.annotations]
    assert "Left/easy: 60 of 280 trials" in titles and "PSTH Right/hard" in titles
    assert "time from stim_onset_time (s)" in axis_titles(fig, "xaxis")
    assert theme.RATE_TITLE in axis_titles(fig, "yaxis") and "trial (by window length)" in axis_titles(fig, "yaxis")
    # every spike drawn lies in its window: from onset + 0.12 s to the trial's window end
    r = p["rasters"]["Left/easy"]
    assert np.all(r["time"] >= 0.12 - 1e-9) and np.all(r["time"] <= r["end"][r["row"]] + 1e-9)
    assert {s.x0 for s in fig.layout.shapes} == {0.0, 0.12}
    lengths = nwb_figures.window_lengths(p["lengths"])
    assert [t.name for t in lengths.data] == PMD_ORDER
    assert lengths.layout.xaxis.title.text == "window length (s)"
    np.testing.assert_allclose(np.sort(lengths.data[0].x), np.sort(imp.data["Left/easy"].durations()))


def test_population_rates_are_small_multiples_with_axis_titles():
    from flowdash.pages import multiples
    from flowdash.pages.fit import figures as fit_figures
    from flowdash.pages.model import figures as model_figures

    x = np.linspace(-1, 1, 30)
    fr = np.stack([(n + 1) * (x + 2) for n in range(14)], axis=1)
    peq = np.full(30, 0.5)
    fig = model_figures.model_preview(x, peq, peq, fr, equilibrium=False)
    rates = fig.data[2:]
    assert [t.name for t in rates] == [f"neuron {n + 1}" for n in range(14)]
    assert len({(t.xaxis, t.yaxis) for t in rates}) == 14    # one panel each
    assert [a.text for a in fig.layout.annotations][2:16] == [f"neuron {n + 1}" for n in range(14)]
    ytitles = axis_titles(fig, "yaxis")
    assert ytitles.count("rate (Hz)") == 3 and theme.POTENTIAL_TITLE in ytitles   # first column of 3 rows
    assert axis_titles(fig, "xaxis").count(theme.X_TITLE) == 2 + multiples.COLUMNS   # top panels + bottom row
    np.testing.assert_allclose(rates[13].y, fr[:, 13])
    # three neurons still share one panel
    assert len({t.xaxis for t in model_figures.model_preview(x, peq, peq, fr[:, :3]).data[2:]}) == 1
    # the Fit page's panel: D, p0 on top, then a panel per neuron, trace order kept for its patches
    D = [[1.0], [0.9]]
    params = fit_figures.params_figure([0, 1], D, x, (1, peq), (1, fr[None]))
    assert len(params.data) == 1 + 1 + 14
    assert [t.name for t in params.data[2:4]] == ["neuron 1 (epoch 1)", "neuron 2 (epoch 1)"]
    assert len({(t.xaxis, t.yaxis) for t in params.data[2:]}) == 14
    assert "D (a.u.²/s)" in axis_titles(params, "yaxis") and "rate (Hz)" in axis_titles(params, "yaxis")
    only_rates = fit_figures.params_figure([0], None, x, None, (0, fr[None]))
    assert len(only_rates.data) == 14 and only_rates.layout.annotations[0].text == "neuron 1"
