"""SpikeData (MATH.md §2): validation, conversions, files (the PMd recordings: test_nwb.py)."""

import io
import json

import numpy as np
import pytest

from _shared import DATA_DIR, REFERENCE_DIR
from flowdash.core.spikedata import (
    SpikeData,
    concatenate,
    even_odd_split,
    load_reference_set,
)


def _toy(with_trial_end=True):
    t0 = (np.array([0.1, 0.0, 0.25, 0.05]), np.array([0, 1, 0, -1]))
    t1 = (np.array([0.3, 0.2]), np.array([1, -1]))
    t2 = (np.array([0.5]), np.array([-1]))  # no spikes: only the trial end
    if with_trial_end:
        return SpikeData([t0, t1, t2], n_neurons=3, with_trial_end=True)
    return SpikeData([(t0[0][:3], t0[1][:3]), (t1[0][:1], t1[1][:1])], n_neurons=3, with_trial_end=False)


@pytest.fixture(scope="module")
def ex1_train():
    return load_reference_set(REFERENCE_DIR / "example1.npz", "train")


@pytest.fixture(scope="module")
def grads_data():
    return load_reference_set(REFERENCE_DIR / "grads_reflecting.npz", "data")


# ---- construction and properties -------------------------------------------


def test_basic_properties():
    d = _toy()
    assert d.n_trials == len(d) == 3
    np.testing.assert_array_equal(d.n_spikes(), [2, 2, 0])
    np.testing.assert_allclose(d.durations(), [0.4, 0.5, 0.5])
    isi, ids = d.trials[0]
    assert isi.dtype == np.float64 and ids.dtype == np.int64
    assert not isi.flags.writeable and not ids.flags.writeable


def test_stores_copies():
    isi, ids = np.array([0.1, 0.2]), np.array([0, -1])
    d = SpikeData([(isi, ids)], 1, True)
    isi[0] = 99.0
    assert d.trials[0][0][0] == 0.1


def test_trial_average_rates_is_pooled_not_mean():
    d = _toy()
    # neuron 0: 2 spikes over 1.4 s in total (not the mean of per-trial rates)
    np.testing.assert_allclose(d.trial_average_rates(), np.array([2, 2, 0]) / 1.4)


def test_reference_sets(ex1_train, grads_data):
    cfg = json.loads((REFERENCE_DIR / "grads_reflecting.json").read_text())
    assert grads_data.n_trials == cfg["num_trials"] == 12
    assert grads_data.with_trial_end and grads_data.n_neurons == 2
    np.testing.assert_allclose(grads_data.durations(), cfg["trial_end"], rtol=1e-12)
    assert not ex1_train.with_trial_end and ex1_train.n_trials == 1
    npz = np.load(REFERENCE_DIR / "example1.npz")
    np.testing.assert_array_equal(ex1_train.trials[0][0], npz["train_isi_0"])
    val = SpikeData.load_npz(REFERENCE_DIR / "example1.npz", prefix="val")
    assert val.n_spikes()[0] == npz["val_ids_0"].size


# ---- round trips -------------------------------------------------------------


@pytest.mark.parametrize("wte", [True, False])
def test_spike_times_round_trip(wte):
    d = _toy(wte)
    times, starts, ends = d.to_spike_times()
    np.testing.assert_array_equal(starts, 0.0)
    back = SpikeData.from_spike_times(times, starts, ends if wte else None, with_trial_end=wte)
    assert back.n_neurons == 3 and back.with_trial_end == wte
    for (a, ai), (b, bi) in zip(d.trials, back.trials):
        np.testing.assert_allclose(a, b, atol=1e-15)
        np.testing.assert_array_equal(ai, bi)


def test_spike_times_round_trip_reference(grads_data):
    starts = np.arange(grads_data.n_trials) * 10.0 + 3.0
    times, s, e = grads_data.to_spike_times(starts)
    np.testing.assert_array_equal(s, starts)
    back = SpikeData.from_spike_times(times, s, e)
    for (a, ai), (b, bi) in zip(grads_data.trials, back.trials):
        np.testing.assert_allclose(a, b, atol=1e-12)
        np.testing.assert_array_equal(ai, bi)


def test_from_spike_times_values():
    d = SpikeData.from_spike_times([[[1.5, 1.2], [1.2]]], starts=[1.0], ends=[2.0])
    isi, ids = d.trials[0]
    np.testing.assert_allclose(isi, [0.2, 0.0, 0.3, 0.5])
    np.testing.assert_array_equal(ids, [0, 1, 0, -1])  # ties ordered by neuron


def test_from_spike_times_without_end_drops_tail():
    d = SpikeData.from_spike_times([[[0.3]]], ends=[5.0], with_trial_end=False)
    np.testing.assert_allclose(d.durations(), [0.3])


@pytest.mark.parametrize("wte", [True, False])
def test_npz_round_trip_path_and_bytes(tmp_path, wte):
    d = _toy(wte)
    path = tmp_path / "spikes.npz"
    d.save_npz(path)
    assert SpikeData.load_npz(path) == d
    raw = path.read_bytes()
    assert SpikeData.load_npz(raw) == d
    assert SpikeData.load_npz(io.BytesIO(raw)) == d


def test_npz_prefix_and_single_set(tmp_path):
    d = _toy()
    buf = io.BytesIO()
    d.save_npz(buf, prefix="train0")
    back = load_reference_set(buf.getvalue(), "train0")
    assert back == d
    with pytest.raises(ValueError, match="no spike set 'val'.*train0"):
        load_reference_set(buf.getvalue(), "val")


def test_npz_keeps_silent_last_neuron(tmp_path):
    d = _toy()  # neuron 2 never fires
    d.save_npz(tmp_path / "a.npz")
    assert SpikeData.load_npz(tmp_path / "a.npz").n_neurons == 3


@pytest.mark.parametrize("wte", [True, False])
def test_csv_round_trip(tmp_path, wte):
    d = _toy(wte)
    sp, tr = tmp_path / "spikes.csv", tmp_path / "trials.csv"
    d.save_csv(sp, tr)
    back = SpikeData.load_csv(sp, tr)
    assert back.n_neurons == d.n_neurons and back.with_trial_end == wte
    for (a, ai), (b, bi) in zip(d.trials, back.trials):
        np.testing.assert_allclose(a, b, atol=1e-15)
        np.testing.assert_array_equal(ai, bi)
    # bytes and file-like too (the dashboard's uploads)
    assert SpikeData.load_csv(sp.read_bytes(), io.BytesIO(tr.read_bytes())).n_trials == d.n_trials
    assert SpikeData.load_csv(io.StringIO(sp.read_text()), tr.read_text().encode()).n_trials == d.n_trials


def test_csv_hand_made_without_trials_table():
    d = SpikeData.load_csv(b"trial,neuron,time\n0,0,0.5\n0,1,0.25\n1,0,1.0\n")
    assert not d.with_trial_end and d.n_neurons == 2 and d.n_trials == 2
    np.testing.assert_allclose(d.trials[0][0], [0.25, 0.25])
    np.testing.assert_array_equal(d.trials[0][1], [1, 0])


def test_csv_reference_round_trip(tmp_path, grads_data):
    sp, tr = io.StringIO(), io.StringIO()
    grads_data.save_csv(sp, tr)
    back = SpikeData.load_csv(sp.getvalue().encode(), tr.getvalue().encode())
    for (a, ai), (b, bi) in zip(grads_data.trials, back.trials):
        np.testing.assert_allclose(a, b, atol=1e-12)
        np.testing.assert_array_equal(ai, bi)


# ---- selections --------------------------------------------------------------


def test_split_subset_concatenate(grads_data):
    train, val = grads_data.split(0.25, seed=3)
    assert (train.n_trials, val.n_trials) == (9, 3)
    again = grads_data.split(0.25, seed=3)
    assert again[0] == train and again[1] == val
    assert concatenate([train, val]).n_trials == 12
    assert SpikeData.concatenate([train, val]).n_spikes().tolist() == grads_data.n_spikes().tolist()
    sub = grads_data.subset([4, 1])
    assert sub.trials[0][0] is grads_data.trials[4][0]
    mask = np.zeros(12, bool)
    mask[[0, 5]] = True
    assert grads_data.subset(mask) == grads_data.subset([0, 5])
    even, odd = even_odd_split(grads_data)
    assert even == grads_data.subset(range(0, 12, 2)) and odd.n_trials == 6


def test_selection_errors(grads_data):
    with pytest.raises(ValueError, match="val_fraction"):
        grads_data.split(1.0)
    with pytest.raises(ValueError, match="out of range"):
        grads_data.subset([12])
    with pytest.raises(ValueError, match="empty"):
        grads_data.subset([])
    with pytest.raises(ValueError, match="n_neurons=1"):
        concatenate([grads_data, SpikeData([(np.array([1.0]), np.array([-1]))], 1, True)])


# ---- bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    "trials, n_neurons, wte, exc, match",
    [
        ([(np.array([0.1, 0.2]), np.array([0]))], 1, False, ValueError, "same length"),
        ([(np.array([-0.1]), np.array([0]))], 1, False, ValueError, r"isi\[0\] = -0.1"),
        ([(np.array([np.nan]), np.array([0]))], 1, False, ValueError, "finite"),
        ([(np.array([np.inf, 1.0]), np.array([0, -1]))], 1, True, ValueError, "finite"),
        ([(np.array([0.1]), np.array([2]))], 2, False, ValueError, r"ids\[0\] = 2 is out of range; allowed neuron ids are 0..1"),
        ([(np.array([0.1, 0.1]), np.array([-1, 0]))], 1, False, ValueError, "trial end"),
        ([(np.array([0.1, 0.1, 0.1]), np.array([0, -1, -1]))], 1, True, ValueError, "only allowed as the last"),
        ([(np.array([0.1]), np.array([0]))], 1, True, ValueError, "last entry to be the trial end"),
        ([(np.zeros(0), np.zeros(0, int))], 1, True, ValueError, "empty trial"),
        ([(np.zeros(0), np.zeros(0, int))], 1, False, ValueError, "trial 0 is empty"),
        ([(np.array([0.1]), np.array([-2]))], 1, False, ValueError, "out of range"),
        ([(np.array([0.1]), np.array([0.5]))], 1, False, TypeError, "integer"),
        ([(np.array(["a"]), np.array([0]))], 1, False, TypeError, "real numbers"),
        ([(np.ones((2, 2)), np.zeros((2, 2), int))], 1, False, ValueError, "1-D"),
        ([np.array([0.1])], 1, False, TypeError, "pair"),
        ([], 1, True, ValueError, "at least one trial"),
        ("abc", 1, True, TypeError, "list of"),
        ([(np.array([0.1]), np.array([0]))], 0, False, ValueError, "n_neurons"),
        ([(np.array([0.1]), np.array([0]))], 1.0, False, TypeError, "n_neurons"),
        ([(np.array([0.1]), np.array([0]))], 1, "yes", TypeError, "with_trial_end"),
    ],
)
def test_bad_construction(trials, n_neurons, wte, exc, match):
    with pytest.raises(exc, match=match):
        SpikeData(trials, n_neurons, wte)


def test_bad_spike_times():
    with pytest.raises(ValueError, match="ends is required"):
        SpikeData.from_spike_times([[[0.1]]])
    with pytest.raises(ValueError, match="after the trial end"):
        SpikeData.from_spike_times([[[0.1, 3.0]]], ends=[2.0])
    with pytest.raises(ValueError, match="before the trial start"):
        SpikeData.from_spike_times([[[0.1]]], starts=[1.0], ends=[2.0])
    with pytest.raises(ValueError, match="same number of neurons"):
        SpikeData.from_spike_times([[[0.1]], [[0.1], [0.2]]], ends=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"starts must have shape \(1,\)"):
        SpikeData.from_spike_times([[[0.1]]], starts=[0, 0], ends=[1.0])
    with pytest.raises(ValueError, match="before start"):
        SpikeData.from_spike_times([[[]]], starts=[1.0], ends=[0.5])


@pytest.mark.parametrize(
    "spikes, trials, match",
    [
        (b"trial,neuron,time\n0,0,abc\n", None, r"spikes table row 1 \(line 2\), column 'time': 'abc' is not a number"),
        (b"trial,neuron,time\n0,0,0.1\n0,x,0.2\n", None, r"row 2 \(line 3\), column 'neuron': 'x' is not an integer"),
        (b"trial,neuron,time\n0,0\n", None, r"row 1 \(line 2\): expected 3 columns"),
        (b"trial,neuron,time\n0,0,nan\n", None, "not finite"),
        (b"trial,neuron,time\n0,-1,0.1\n", None, r"column 'neuron': -1 is negative"),
        (b"trial,neuron,time\n-1,0,0.1\n", None, r"column 'trial': -1 is negative"),
        (b"trial,neuron,time\n0,0,-0.1\n", None, "negative; without a trials table"),
        (b"time,neuron,trial\n0,0,0.1\n", None, "header must be 'trial,neuron,time'"),
        (b"", None, "no header"),
        (b"\xff\xfe\x00bad", None, "not UTF-8"),
        (b"trial,neuron,time\n0,0,0.1\n", b"trial,start,end\n0,0,1\n0,0,1\n", "appears twice"),
        (b"trial,neuron,time\n0,0,0.1\n", b"trial,start,end\n3,0,1\n", "out of range"),
        (b"trial,neuron,time\n0,0,0.1\n", b"trial,start,end\n0,1,0.5\n", "end 0.5 is before start 1.0"),
        (b"trial,neuron,time\n1,0,0.1\n", b"trial,start,end\n0,0,1\n", "trial 1 is not in the trials table"),
        (b"trial,neuron,time\n0,0,1.5\n", b"trial,start,end\n0,0,1\n", r"1.5 is outside trial 0 \[0.0, 1.0\]"),
        (b"trial,neuron,time\n0,0,0.1\n", b"trial,start,end\n", "no rows"),
        (b"trial,neuron,time\n0,5,0.1\n", b"# n_neurons=2\ntrial,start,end\n0,0,1\n", "5 is out of range; allowed 0..1"),
        (b'trial,neuron,time\n0,0,"0.1\n', None, "not valid CSV"),
    ],
)
def test_bad_csv(spikes, trials, match):
    with pytest.raises(ValueError, match=match):
        SpikeData.load_csv(spikes, trials)


def test_bad_npz(tmp_path):
    with pytest.raises(ValueError, match="not a valid .npz"):
        SpikeData.load_npz(b"this is not a zip file")
    # an object array would need pickle: refused, not unpickled
    buf = io.BytesIO()
    np.savez(buf, data_ntrials=np.array(1), data_isi_0=np.array([0.1, None], dtype=object),
             data_ids_0=np.array([0, -1]))
    with pytest.raises(ValueError, match="without pickle"):
        SpikeData.load_npz(buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, data_ntrials=np.array(2), data_isi_0=np.array([0.1]), data_ids_0=np.array([0]))
    with pytest.raises(ValueError, match="no key 'data_isi_1'"):
        SpikeData.load_npz(buf.getvalue())
    with pytest.raises(ValueError, match="cannot read"):
        SpikeData.load_npz(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="path, bytes or a file-like"):
        SpikeData.load_npz(12)


def test_packed_is_the_trials_end_to_end_and_read_only():
    data = SpikeData([(np.array([0.1, 0.2]), np.array([0, -1])), (np.array([0.3]), np.array([-1]))],
                     n_neurons=1, with_trial_end=True)
    isi, ids, offsets = data.packed()
    np.testing.assert_array_equal(isi, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(ids, [0, -1, -1])
    np.testing.assert_array_equal(offsets, [0, 2, 3])
    assert not isi.flags.writeable and data.packed()[0] is isi
    sub_isi, _, sub_offsets = data.subset([1]).packed()
    np.testing.assert_array_equal(sub_isi, [0.3])
    np.testing.assert_array_equal(sub_offsets, [0, 1])


# ---- inputs that cannot exhaust the server ------------------------------------------


def _peak_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_csv_trial_bomb_is_refused_from_the_columns():
    """29 bytes asking for ten million trials: refused before any per-trial structure."""
    raw = b"trial,neuron,time\n10000000,0,1\n"
    before = _peak_mb()
    with pytest.raises(ValueError, match="column 'trial': 10000000 is too large; at most 100000"):
        SpikeData.load_csv(raw)
    assert _peak_mb() - before < 50
    with pytest.raises(ValueError, match="column 'neuron': 300000 is too large; at most 1000"):
        SpikeData.load_csv(b"trial,neuron,time\n0,300000,0.1\n")
    with pytest.raises(ValueError, match="n_neurons.*at most 1000"):
        SpikeData.load_csv(b"# n_neurons=99999999\ntrial,neuron,time\n0,0,0.1\n")
    with pytest.raises(ValueError, match="out of range"):
        SpikeData.load_csv(b"trial,neuron,time\n" + b"9" * 40 + b",0,0.1\n")


def test_csv_row_count_is_capped(monkeypatch):
    import flowdash.core.spikedata as sd
    monkeypatch.setattr(sd, "MAX_SPIKES", 10)
    rows = b"".join(b"0,0,%d\n" % i for i in range(11))
    with pytest.raises(ValueError, match="more than 10 rows"):
        SpikeData.load_csv(b"trial,neuron,time\n" + rows)


def _npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_npz_zip_bomb_is_refused_from_its_directory():
    """A 1 MB file that expands to 1 GiB is refused without being decompressed."""
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("data_isi_0.npy", "w", force_zip64=True) as fp:
            header = {"descr": "<f8", "fortran_order": False, "shape": (2**27,)}
            np.lib.format.write_array_header_1_0(fp, header)
            zeros = bytes(2**24)
            for _ in range(64):
                fp.write(zeros)
    raw = buf.getvalue()
    assert len(raw) < 2 * 2**20
    before = _peak_mb()
    with pytest.raises(ValueError, match="expands to 1024 MB; at most 512 MB"):
        SpikeData.load_npz(raw)
    assert _peak_mb() - before < 50


def test_npz_header_that_lies_about_its_shape_is_refused():
    """A small member whose .npy header declares 10^10 values is refused before allocation."""
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        member = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            member, {"descr": "<f8", "fortran_order": False, "shape": (10**10,)})
        member.write(b"\0" * 64)
        zf.writestr("data_isi_0.npy", member.getvalue())
    with pytest.raises(ValueError, match=r"declares shape \(10000000000,\)"):
        SpikeData.load_npz(buf.getvalue())


def test_npz_trial_count_and_neurons_are_capped():
    with pytest.raises(ValueError, match="data_ntrials = 10000000; at most 100000"):
        SpikeData.load_npz(_npz_bytes(data_ntrials=np.array(10**7)))
    raw = _npz_bytes(data_ntrials=np.array(1), data_n_neurons=np.array(10**9),
                     data_isi_0=np.array([0.1]), data_ids_0=np.array([0]))
    with pytest.raises(ValueError, match="1000000000 neurons.*at most 1000"):
        SpikeData.load_npz(raw)


@pytest.mark.parametrize("raw, what", [
    (b"trial,neuron,time\n0,0,0.1\n", "looks like text"),
    (bytes(range(256)) * 4, "other bytes"),
    (b"", "is empty"),
])
def test_fake_npz_says_it_is_not_an_npz_archive(raw, what):
    with pytest.raises(ValueError, match=f"not an npz archive.*{what}"):
        SpikeData.load_npz(raw)


def test_npz_object_array_is_refused_at_opening():
    buf = io.BytesIO()
    np.savez(buf, data_ntrials=np.array(1), other=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="'other' holds Python objects.*without pickle"):
        SpikeData.load_npz(buf.getvalue())
