"""NWB import (flowdash.core.nwb): summary, recipe, cuts, report, errors, PMd."""

import io
import json
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from _shared import DATA_DIR
from flowdash.core.nwb import (
    PMD_RECIPE,
    ConditionColumn,
    NWBSession,
    Recipe,
    TrialFilter,
    Window,
    from_nwb,
    read_nwb,
    summarize,
)

pynwb = pytest.importorskip("pynwb")

# A toy session: trial k runs [10k, 10k + 8]; the window is onset + 0.25 s to
# the response (binary-exact numbers, so that the expected intervals are exact).
TRIALS = [
    # onset, response, rt, side, correct, hard
    (1.0, 2.0, 1.0, "L", "L", False),
    (11.0, 11.5, 0.5, "R", "R", True),
    (21.0, np.nan, np.nan, "L", "L", False),  # NaN response: dropped
    (31.0, 30.9, -0.1, "R", "R", False),  # response before onset + 0.25: negative window
    (41.0, 41.25, 0.25, "L", "L", False),  # response at onset + 0.25: empty window
    (51.0, 52.5, 1.5, "L", "R", True),  # an error trial
    (61.0, 62.0, 1.0, "R", "R", False),
    (71.0, 71.75, 0.75, "L", "L", False),
]
UNITS = [
    [0.5, 1.25, 1.5, 2.0, 3.0, 11.3, 51.5, 52.0, 61.5, 71.5],  # spikes on both edges of trial 0's window
    [1.5, 1.75, 11.4, 51.3, 61.3, 61.9, 71.3],  # 1.5 ties with unit 0
    [0.1, 10.1, 50.1],  # silent in every window
]
WINDOW = Window("onset", 0.25, "response")
UNITS01 = (0, 1)


def _write(path, trials=TRIALS, units=UNITS, with_trials=True, ragged=False):
    nwb = pynwb.NWBFile(session_description="toy", identifier="toy",
                        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    if with_trials:
        for name in ("onset", "response", "rt", "side", "correct", "hard"):
            nwb.add_trial_column(name, f"the {name}")
        if ragged:
            nwb.add_trial_column("licks", "lick times", index=True)
        for k, (onset, response, rt, side, correct, hard) in enumerate(trials):
            extra = {"licks": [10.0 * k + 1, 10.0 * k + 2]} if ragged else {}
            nwb.add_trial(start_time=10.0 * k, stop_time=10.0 * k + 8, onset=onset, response=response, rt=rt,
                          side=side, correct=correct, hard=hard, **extra)
    for st in units or []:
        nwb.add_unit(spike_times=st)
    with pynwb.NWBHDF5IO(str(path), "w") as f:
        f.write(nwb)
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("nwb") / "toy.nwb", ragged=True)


@pytest.fixture(scope="module")
def session(toy):
    return read_nwb(toy)


def _recipe(**kw):
    kw.setdefault("window", WINDOW)
    kw.setdefault("units", UNITS01)
    kw.setdefault("halves", "none")
    return Recipe(**kw)


# ---- summary -------------------------------------------------------------------------


def test_summary_describes_units_and_columns(toy, session):
    s = session.summary()
    assert s.file_name == "toy.nwb" and len(s.file_sha256) == 64 and s.n_trials == 8
    assert (s.t_start, s.t_stop) == (0.0, 78.0)
    assert [(u.index, u.id, u.n_spikes) for u in s.units] == [(0, 0, 10), (1, 1, 7), (2, 2, 3)]
    assert s.units[0].rate == pytest.approx(10 / 78.0)
    kinds = {c.name: c.kind for c in s.columns}
    assert kinds == {"start_time": "event", "stop_time": "event", "onset": "event", "response": "event",
                     "rt": "number", "side": "label", "correct": "label", "hard": "label",
                     "licks": "unsupported"}
    assert s.column("response").n_nan == 1 and s.column("response").max == 71.75
    assert s.column("side").values == (("L", 5), ("R", 3))
    assert s.column("hard").values == ((False, 6), (True, 2))
    assert s.column("rt").values is not None and s.column("rt").min == -0.1
    assert "ragged" in s.column("licks").note
    assert s.names("event") == ["start_time", "stop_time", "onset", "response"]
    d = json.loads(json.dumps(s.to_dict()))
    assert d["columns"][5]["values"] == [["L", 5], ["R", 3]] and d["units"][1]["n_spikes"] == 7
    assert summarize(toy).to_dict() == s.to_dict()


# ---- the cut: known spikes to ISI trials ---------------------------------------------


def test_known_spikes_become_isi_trials(session):
    imp = from_nwb(session, _recipe())
    assert imp.conditions == ("all",)
    np.testing.assert_array_equal(imp.trial_index["all"], [0, 1, 5, 6, 7])
    d = imp.data["all"]
    assert d.n_neurons == 2 and d.with_trial_end and d.n_trials == 5
    # trial 0, window [1.25, 2.0]: unit 0 on both edges, a tie at 1.5 (unit 0 first)
    isi, ids = d.trials[0]
    np.testing.assert_allclose(isi, [0.0, 0.25, 0.0, 0.25, 0.25, 0.0], atol=1e-12)
    np.testing.assert_array_equal(ids, [0, 0, 1, 1, 0, -1])
    # trial 5, window [51.25, 52.5]
    isi, ids = d.trials[2]
    np.testing.assert_allclose(isi, [0.05, 0.2, 0.5, 0.5], atol=1e-12)
    np.testing.assert_array_equal(ids, [1, 0, 0, -1])
    np.testing.assert_allclose(d.durations(), [0.75, 0.25, 1.25, 0.75, 0.5])
    # every spike inside a window, none outside
    expected = [sum(1 for t in UNITS[u] for (a, b) in [(1.25, 2.0), (11.25, 11.5), (51.25, 52.5), (61.25, 62.0),
                                                        (71.25, 71.75)] if a <= t <= b) for u in UNITS01]
    np.testing.assert_array_equal(d.n_spikes(), expected)


def test_fixed_duration_window_keeps_trials_without_response(session):
    imp = from_nwb(session, _recipe(window=Window("onset", 0.25, duration=0.5)))
    np.testing.assert_array_equal(imp.trial_index["all"], np.arange(8))
    np.testing.assert_allclose(imp.data["all"].durations(), 0.5)
    assert imp.report.dropped == {}


def test_report_counts_drops_and_aligns_to_the_first_event(session):
    imp = from_nwb(session, _recipe(conditions=(ConditionColumn("side"),)), psth_bin=0.25)
    r = imp.report
    assert r.dropped == {"NaN in response": 1, "negative window": 1, "empty window": 1}
    assert {k: v.tolist() for k, v in r.dropped_trials.items()} == {
        "NaN in response": [2], "negative window": [3], "empty window": [4]}
    assert (r.n_trials_file, r.n_trials_kept) == (8, 5)
    assert r.trials_per_condition == {"L": 3, "R": 2} and r.unit_ids == (0, 1)
    np.testing.assert_allclose(r.window_lengths["L"], [0.75, 1.25, 0.5])
    np.testing.assert_array_equal(r.spikes_per_condition, [[6, 4], [2, 3]])
    np.testing.assert_array_equal(r.spikes_per_neuron, [8, 7])
    # raster: seconds from the onset (the window starts 0.25 s after it)
    first = r.raster["L"].trial == 0
    np.testing.assert_allclose(r.raster["L"].time[first], [0.25, 0.5, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(r.raster["L"].neuron[first], [0, 0, 1, 1, 0])
    # PSTH: bins from 0.25 s after onset; rate x covered time gives the counts back
    np.testing.assert_allclose(r.psth_edges, [0.25, 0.5, 0.75, 1.0, 1.25, 1.5])
    np.testing.assert_allclose(r.psth_trials["L"], [3, 3, 2, 1, 1])
    np.testing.assert_allclose(r.psth_trials["R"], [2, 1, 1, 0, 0])
    assert np.isnan(r.psth["R"][:, 3:]).all() and not np.isnan(r.psth["L"]).any()
    counts = np.nan_to_num(r.psth["L"]) * r.psth_trials["L"] * 0.25
    np.testing.assert_allclose(counts.sum(axis=1), r.spikes_per_condition[0])
    json.dumps(r.to_dict())


def test_filters(session):
    same = TrialFilter("correct", "same_as", other="side")
    imp = from_nwb(session, _recipe(filters=(same,)))
    np.testing.assert_array_equal(imp.trial_index["all"], [0, 1, 6, 7])
    assert imp.report.dropped["filter: correct same as side"] == 1
    differ = from_nwb(session, _recipe(filters=(TrialFilter("correct", "differs_from", other="side"),)))
    np.testing.assert_array_equal(differ.trial_index["all"], [5])
    rt = from_nwb(session, _recipe(filters=(TrialFilter("rt", "range", low=0.6, high=1.0),)))
    np.testing.assert_array_equal(rt.trial_index["all"], [0, 6, 7])
    # NaN never passes; the filter runs before the window checks, so trial 2 counts under it
    assert rt.report.dropped_trials["filter: 0.6 <= rt <= 1"].tolist() == [1, 2, 3, 4, 5]
    hard = from_nwb(session, _recipe(filters=(TrialFilter("hard", "in", (True,)),)))
    np.testing.assert_array_equal(hard.trial_index["all"], [1, 5])
    labels = from_nwb(session, _recipe(filters=(TrialFilter("side", "in", ("R",)),)))
    np.testing.assert_array_equal(labels.trial_index["all"], [1, 6])


def test_conditions_in_the_stated_order_and_dropped_values(session):
    imp = from_nwb(session, _recipe(conditions=(ConditionColumn("side", ("R", "L")),
                                                ConditionColumn("hard", (False, True)))))
    assert imp.conditions == ("R/False", "R/True", "L/False", "L/True")
    assert {c: imp.trial_index[c].tolist() for c in imp.conditions} == {
        "R/False": [6], "R/True": [1], "L/False": [0, 7], "L/True": [5]}
    assert [d.n_trials for d in imp.datasets()] == [1, 1, 2, 1]
    only_l = from_nwb(session, _recipe(conditions=(ConditionColumn("side", ("L",)),)))
    assert only_l.conditions == ("L",) and only_l.report.dropped["condition: side not in {L}"] == 3
    # values default to the sorted values of the file
    assert from_nwb(session, _recipe(conditions=(ConditionColumn("side"),))).conditions == ("L", "R")


def test_halves(session):
    even = from_nwb(session, _recipe(conditions=(ConditionColumn("side"),), halves="even_odd"))
    assert [h.tolist() for h in even.halves["L"]] == [[0, 2], [1]]
    assert even.report.half_sizes == {"L": (2, 1), "R": (1, 1)}
    first = even.half(0)
    assert [d.n_trials for d in first] == [2, 1]
    assert first[0] == even.data["L"].subset([0, 2])
    rnd = [from_nwb(session, _recipe(conditions=(ConditionColumn("side"),), halves="random", seed=s))
           for s in (3, 3)]
    a, b = rnd[0].halves["L"]
    assert sorted(a.tolist() + b.tolist()) == [0, 1, 2] and (a.size, b.size) == (2, 1)
    assert all(np.array_equal(x, y) for x, y in zip(rnd[0].halves["L"], rnd[1].halves["L"]))
    none = from_nwb(session, _recipe())
    assert none.halves is None and none.report.half_sizes == {}
    with pytest.raises(ValueError, match="no halves"):
        none.half(0)


def test_recipe_round_trip_and_applied_recipe(session):
    recipe = _recipe(filters=(TrialFilter("correct", "same_as", other="side"),
                              TrialFilter("rt", "range", low=0.1)),
                     conditions=(ConditionColumn("side"),), halves="random", seed=7)
    again = Recipe.from_dict(json.loads(json.dumps(recipe.to_dict())))
    assert again == recipe
    imp = from_nwb(session, recipe)
    applied = imp.recipe
    assert applied.file_name == "toy.nwb" and applied.file_sha256 == session.file_sha256
    assert applied.conditions == (ConditionColumn("side", ("L", "R")),) and applied.units == UNITS01
    rerun = from_nwb(session, Recipe.from_dict(json.loads(json.dumps(applied.to_dict()))))
    assert all(rerun.data[c] == imp.data[c] for c in imp.conditions)
    assert PMD_RECIPE == Recipe.from_dict(json.loads(json.dumps(PMD_RECIPE.to_dict())))


def test_bytes_file_like_and_path_give_the_same_import(toy):
    raw = toy.read_bytes()
    by_path = from_nwb(toy, _recipe())
    by_bytes = from_nwb(raw, _recipe(), name="upload.nwb")
    by_file = from_nwb(io.BytesIO(raw), _recipe())
    assert by_bytes.data["all"] == by_path.data["all"] == by_file.data["all"]
    assert by_bytes.report.file_name == "upload.nwb" and by_file.report.file_name == "uploaded.nwb"
    assert by_bytes.report.file_sha256 == by_path.report.file_sha256
    assert isinstance(read_nwb(raw), NWBSession)


def test_importable_from_spikedata():
    from flowdash.core import nwb, spikedata

    assert spikedata.from_nwb is nwb.from_nwb and spikedata.PMD_RECIPE is PMD_RECIPE
    with pytest.raises(AttributeError):
        spikedata.load_pmd_session  # noqa: B018  (replaced by PMD_RECIPE)


# ---- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("kw, match", [
    ({"window": Window("onsett", 0.25, "response")}, r"window start: the trials table has no column 'onsett'; "
                                                      r"columns: start_time, stop_time, onset"),
    ({"window": Window("side", 0.0, "response")}, r"window start: column 'side' holds labels"),
    ({"window": Window("licks", 0.0, "response")}, r"column 'licks' cannot be used \(several values per trial"),
    ({"filters": (TrialFilter("nope", "in", ("x",)),)}, r"filters\[0\] \(nope in \{x\}\): the trials table has no "
                                                          r"column 'nope'"),
    ({"filters": (TrialFilter("side", "in", ("Left",)),)}, r"no trial has the value 'Left'; values: L, R"),
    ({"filters": (TrialFilter("hard", "in", ("yes",)),)}, r"'yes' is not a value of this column; it holds true/false"),
    ({"filters": (TrialFilter("side", "range", low=1),)}, r"column 'side' holds labels"),
    ({"filters": (TrialFilter("side", "same_as", other="rt"),)}, r"'side' holds labels .* and 'rt' holds numbers"),
    ({"conditions": (ConditionColumn("onset"),)}, r"conditions\[0\] \(onset\): column 'onset' holds event times"),
    ({"conditions": (ConditionColumn("side", ("L", "X")),)}, r"no trial has the value 'X'"),
    ({"units": (0, 3)}, r"units: row 3 is not in the units table; it has 3 units, rows 0..2"),
    ({"units": None}, r"unit row 2 \(id 2\) has no spikes inside any kept window"),
    ({"conditions": (ConditionColumn("side"), ConditionColumn("hard")),
      "filters": (TrialFilter("correct", "same_as", other="side"),)},
     r"condition 'L/True' \(side = L, hard = True\) has no trials left"),
    ({"conditions": (ConditionColumn("side"), ConditionColumn("hard")), "halves": "even_odd"},
     r"condition 'L/True' has 1 trial; halves \(even_odd\) need at least 2"),
    ({"filters": (TrialFilter("rt", "range", low=5),)}, r"no trial is left of the 8 in toy.nwb: 8 dropped for filter"),
    ({"file_sha256": "0" * 64, "file_name": "other.nwb"}, r"the recipe was made for other.nwb .* toy.nwb has other"),
])
def test_bad_recipes_name_the_problem(session, kw, match):
    with pytest.raises(ValueError, match=match):
        from_nwb(session, _recipe(**kw))


@pytest.mark.parametrize("make, match", [
    (lambda: Window("onset", 0.1), "exactly one of end .* and duration"),
    (lambda: Window("onset", 0.1, "response", duration=1.0), "exactly one of end"),
    (lambda: Window("onset", 0.1, duration=-1.0), "duration must be finite and > 0"),
    (lambda: Window("onset", float("nan"), "response"), "start_offset must be finite"),
    (lambda: Window("onset", 0.0, duration=1.0, end_offset=0.5), "end_offset=0.5 only applies with an end"),
    (lambda: TrialFilter("side", "==", ("L",)), "op '==' is unknown; allowed: in, range, same_as, differs_from"),
    (lambda: TrialFilter("side", "in", ()), "values is empty"),
    (lambda: TrialFilter("rt", "range"), "give low, high or both"),
    (lambda: TrialFilter("rt", "range", low=2, high=1), "low 2.0 is above high 1.0"),
    (lambda: TrialFilter("side", "same_as", other="side"), "other must be another column"),
    (lambda: Recipe(WINDOW, halves="thirds"), "halves must be one of even_odd, random, none"),
    (lambda: Recipe(WINDOW, units=(0, 0)), "units lists row 0 twice"),
    (lambda: Recipe(WINDOW, units=()), "units is empty"),
    (lambda: Recipe(WINDOW, seed=-1), "seed must be an integer >= 0"),
    (lambda: Recipe(WINDOW, file_sha256="abc"), "file_sha256 must be 64 lower-case hex digits"),
    (lambda: Recipe(WINDOW, conditions=(ConditionColumn("a"), ConditionColumn("a"))), "column 'a' twice"),
    (lambda: Recipe.from_dict({"window": {"start": "onset", "duration": 1.0}, "colour": 1}),
     r"recipe has unknown keys \['colour'\]"),
    (lambda: Recipe.from_dict({"window": {"start": "onset", "duration": 1.0}, "format": 9}), "format 9"),
    (lambda: Recipe.from_dict({"units": None}), "recipe has no 'window'"),
])
def test_recipe_validation(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_files_name_the_problem(tmp_path, toy):
    with pytest.raises(ValueError, match="notes.nwb is not a readable HDF5 file, so not an NWB file"):
        read_nwb(b"hello, not hdf5", name="notes.nwb")
    with pytest.raises(ValueError, match="uploaded.nwb is not a readable HDF5 file.*truncated"):
        read_nwb(toy.read_bytes()[:5000])
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ValueError, match="plain.h5 is an HDF5 file but not an NWB 2 file"):
        read_nwb(plain)
    with pytest.raises(ValueError, match="no_trials.nwb has no trials table"):
        read_nwb(_write(tmp_path / "no_trials.nwb", with_trials=False))
    with pytest.raises(ValueError, match="no_units.nwb has no units table"):
        read_nwb(_write(tmp_path / "no_units.nwb", units=None))
    with pytest.raises(ValueError, match=r"toy.nwb is 0.2 MB \(\d+ bytes\); files up to 0.0 MB \(1000 bytes\)"):
        from_nwb(toy, _recipe(), max_bytes=1000)
    with pytest.raises(ValueError, match=r"upload.nwb is .* files up to"):
        read_nwb(io.BytesIO(toy.read_bytes()), name="upload.nwb", max_bytes=1000)
    with pytest.raises(ValueError, match="cannot read the NWB file"):
        read_nwb(tmp_path / "missing.nwb")
    with pytest.raises(TypeError, match="path, bytes or a binary file-like"):
        read_nwb(12)
    linked = tmp_path / "linked.nwb"
    linked.write_bytes(toy.read_bytes())
    with h5py.File(linked, "a") as f:
        f["analysis/elsewhere"] = h5py.ExternalLink("/etc/secret.h5", "/data")
    with pytest.raises(ValueError, match="linked.nwb refers to data outside itself: /analysis/elsewhere links to "
                                         "another file"):
        read_nwb(linked)


def test_trials_with_nan_onset_are_dropped_and_counted(tmp_path):
    trials = [(np.nan,) + TRIALS[0][1:]] + TRIALS[1:]
    imp = from_nwb(_write(tmp_path / "nan.nwb", trials=trials), _recipe())
    assert imp.report.dropped["NaN in onset"] == 1 and imp.report.dropped["NaN in response"] == 1
    assert 0 not in imp.trial_index["all"]


# ---- the PMd recordings ---------------------------------------------------------------------

PMD_ORDER = ("Left/easy", "Left/hard", "Right/easy", "Right/hard")


def _pmd_from_npz():
    """The published cut, computed directly from the plain-array recording: per
    condition (in PMD_ORDER) the session trial rows and the (isi, ids) trials of
    the window [onset + 0.12, onset + RT], spikes within 1 ns of an edge kept."""
    z = np.load(DATA_DIR / "pmd_single_neuron_session.npz")
    per_trial = np.split(z["spike_times_concat"], np.cumsum(z["spike_counts"])[:-1])
    start, end = z["stim_onset"] + 0.12, z["stim_onset"] + z["RT"]
    labels = np.char.add(np.char.add(z["chosen_side"].astype(str), "/"), z["stim_difficulty"].astype(str))
    out = {}
    for c in PMD_ORDER:
        rows = np.flatnonzero(labels == c)
        trials = []
        for i in rows:
            t = per_trial[i]
            t = np.clip(t[(t >= start[i] - 1e-9) & (t <= end[i] + 1e-9)], start[i], end[i])
            trials.append((np.diff(np.concatenate(([start[i]], t, [end[i]]))), np.append(np.zeros(t.size, int), -1)))
        out[c] = (rows, trials)
    return out


def test_pmd_recipe_reproduces_the_published_cut():
    path = DATA_DIR / "pmd_single_neuron_session.nwb"
    imp = from_nwb(path.read_bytes(), PMD_RECIPE, name=path.name)
    expected = _pmd_from_npz()
    assert imp.conditions == PMD_ORDER
    assert imp.report.trials_per_condition == {"Left/easy": 280, "Left/hard": 267, "Right/easy": 279,
                                               "Right/hard": 291}
    assert imp.report.dropped == {}
    for c in PMD_ORDER:
        rows, trials = expected[c]
        np.testing.assert_array_equal(imp.trial_index[c], rows)
        got = imp.data[c]
        assert got.n_neurons == 1 and got.with_trial_end and got.n_trials == len(trials)
        for (isi, ids), (want_isi, want_ids) in zip(got.trials, trials):
            np.testing.assert_array_equal(ids, want_ids)
            np.testing.assert_allclose(isi, want_isi, rtol=0, atol=1e-9)
        even, odd = imp.halves[c]
        np.testing.assert_array_equal(even, np.arange(0, len(rows), 2))
        np.testing.assert_array_equal(odd, np.arange(1, len(rows), 2))
    assert imp.half(0)[0] == imp.data["Left/easy"].subset(np.arange(0, 280, 2))


@pytest.fixture(scope="module")
def population():
    return read_nwb(DATA_DIR / "pmd_population_session.nwb")


def test_pmd_population(population):
    s = population.summary()
    assert s.n_trials == 1056 and len(s.units) == 14
    assert min(u.n_spikes for u in s.units) == 7973 and max(u.n_spikes for u in s.units) == 138130
    imp = from_nwb(population, PMD_RECIPE)
    assert imp.conditions == PMD_ORDER and imp.report.dropped == {}
    assert imp.report.trials_per_condition == {"Left/easy": 269, "Left/hard": 267, "Right/easy": 262,
                                               "Right/hard": 258}
    assert all(d.n_neurons == 14 and d.with_trial_end for d in imp.datasets())
    assert imp.report.half_sizes == {"Left/easy": (135, 134), "Left/hard": (134, 133), "Right/easy": (131, 131),
                                     "Right/hard": (129, 129)}
    assert sum(d.n_trials for d in imp.half(0)) == 529
    assert np.all(imp.report.spikes_per_neuron > 0)
    # windows run from 120 ms after onset to the response: lengths are RT - 0.12
    rt = population.columns["reaction_time"].data
    for c in PMD_ORDER:
        np.testing.assert_allclose(imp.data[c].durations(), rt[imp.trial_index[c]] - 0.12, atol=1e-9)
