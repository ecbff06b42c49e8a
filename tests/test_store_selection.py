"""The store's parts for long fits and model selections, against both backends:
recorded models, the 'continue' primitive, selection records, a run's size."""
import numpy as np
import pytest

from flowdash.store import CANCELLED, DONE, QUEUED, RUNNING
from tests.test_store import location, redis_base, store  # noqa: F401  (fixtures)


def row(k, **extra):
    return dict({"epoch": k, "nll_train": [1.0 - k], "nll_val": None, "elapsed": 0.1 * k,
                 "time": 0.0, "D": [1.0]}, **extra)


def test_recorded_models_keep_their_dtypes_and_go_with_the_run(store):
    rid = store.create_run("fit", "r", {})
    peq = np.linspace(0.1, 1, 7)[None, :] / 3
    for k in range(4):
        extra = {"model": {"peq": peq * (1 + k), "p0": None, "D": np.array([2.0]),
                           "fr": np.ones((1, 7, 2), np.float32)}} if k != 2 else {}
        store.append_epoch(rid, row(k, snapshot={"peq": peq, "p0": None, "D": [1.0], "fr": None},
                                    **extra))
    assert store.model_epochs(rid) == [0, 1, 3] and store.snapshot_epochs(rid) == [0, 1, 2, 3]
    models = store.read_models(rid, [1, 2, 3])
    assert models[1] is None
    np.testing.assert_array_equal(models[0]["peq"], peq * 2)         # float64, exact
    assert models[0]["peq"].dtype == np.float64 and models[0]["fr"].dtype == np.float32
    assert models[0]["p0"] is None
    assert store.read_epoch(rid, 1).get("model") is None           # not in the NLL log
    store.append_epoch(rid, row(1, model={"peq": peq * 99}))        # a repeat writes nothing
    np.testing.assert_array_equal(store.read_models(rid, [1])[0]["peq"], peq * 2)
    size = store.run_bytes(rid)
    assert set(size) == {"epochs", "snapshots", "models", "other"}
    assert size["models"] > 3 * 7 * 8 and size["epochs"] > 0
    store.finish_run(rid, DONE)
    store.delete_run(rid)
    assert store.model_epochs(rid) == [] and store.read_models(rid, [0]) == [None]
    assert store.run_bytes(rid) == {"epochs": 0, "snapshots": 0, "models": 0, "other": 0}


def test_requeue_only_from_the_given_final_statuses(store):
    rid = store.create_run("fit", "r", {"max_epochs": 5})
    assert store.requeue_run(rid, (DONE,), {"max_epochs": 9}, {"n": 1}) is None   # queued
    store.request_cancel(rid)                                    # queued -> cancelled at once
    assert store.get_run(rid)["status"] == CANCELLED and store.cancel_requested(rid)
    record = store.requeue_run(rid, (DONE, CANCELLED), {"max_epochs": 9}, {"n": 1})
    assert record["status"] == QUEUED and record["settings"]["max_epochs"] == 9
    assert record["continued"] == [{"n": 1}] and record["finished"] is None
    assert not store.cancel_requested(rid)                       # the old cancel is gone
    assert rid in store.active_runs()
    store.start_run(rid, 1, None)
    assert store.requeue_run(rid, (DONE, CANCELLED), {}, {}) is None   # running: no
    assert store.get_run(rid)["status"] == RUNNING
    with pytest.raises(ValueError, match="only final statuses"):
        store.requeue_run(rid, (QUEUED,), {}, {})


def test_selection_records(store):
    a, b = store.create_run("fit", "a", {}), store.create_run("fit", "b", {})
    sid = store.create_selection("my pair", {"halves": "even_odd"})
    assert store.get_selection(sid)["fits"] == []
    assert store.set_selection_fits(sid, [a, b])["fits"] == [a, b]
    other = store.create_selection("", {"halves": "paired"}, [b, a])
    assert [s["id"] for s in store.list_selections()] == [other, sid]   # newest first
    assert store.get_selection(other)["name"] == other
    with pytest.raises(ValueError, match="pairs two fit runs"):
        store.create_selection("x", {}, [a])
    with pytest.raises(ValueError, match="name"):
        store.create_selection("\u200b", {}, [a, b])
    store.delete_selection(sid)
    assert store.get_selection(sid) is None and len(store.list_selections()) == 1
    assert store.get_run(a) is not None                          # the fits stay
