"""Unit tests of the run store (no core, no dash)."""
import time

import pytest

from flowdash.store import CANCELLED, DONE, INTERRUPTED, NameTaken, RunActive, RunStore


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "store")
    yield s
    s.close()


def test_run_lifecycle_and_index(store):
    a = store.create_run("fit", "first", {"lr": 1})
    b = store.create_run("generation", "second", {"n": 2}, refs={"model": "m"})
    assert [r["id"] for r in store.list_runs()] == [b, a]
    assert [r["id"] for r in store.list_runs("fit")] == [a]
    rec = store.get_run(a)
    assert rec["status"] == "queued" and rec["settings"] == {"lr": 1}
    store.update_run(a, status="running", pid=123)
    assert store.get_run(a)["pid"] == 123
    store.finish_run(a, DONE)
    # first final status wins
    store.finish_run(a, CANCELLED)
    assert store.get_run(a)["status"] == DONE
    assert store.get_run(a)["finished"] is not None


def test_epoch_log_is_append_only_and_incremental(store):
    run = store.create_run("fit", "f", {})
    for k in range(5):
        assert store.append_epoch(run, {"epoch": k, "nll_train": [float(k)]}) == k
    assert store.n_epochs(run) == 5
    assert [e["epoch"] for e in store.read_epochs(run, 3)] == [3, 4]
    assert store.read_epochs(run, 9) == []


def test_delete_run_removes_log(store):
    run = store.create_run("fit", "f", {})
    store.append_epoch(run, {"epoch": 0})
    store.update_run(run, status="running")
    with pytest.raises(RunActive, match="cancel it first"):
        store.delete_run(run)               # its worker would keep writing
    assert store.get_run(run) is not None and store.n_epochs(run) == 1
    store.finish_run(run, DONE)
    store.delete_run(run)
    assert store.get_run(run) is None
    assert store.n_epochs(run) == 0
    assert store.list_runs() == []


def test_cancel_flag_and_queued_cancel(store):
    run = store.create_run("fit", "f", {})
    assert not store.cancel_requested(run)
    store.request_cancel(run)
    assert store.cancel_requested(run)
    assert store.get_run(run)["status"] == CANCELLED


def test_mark_interrupted_uses_liveness(store):
    alive = store.create_run("fit", "alive", {})
    dead = store.create_run("fit", "dead", {})
    finished = store.create_run("fit", "finished", {})
    for r in (alive, dead):
        store.update_run(r, status="running", pid=1)
    store.finish_run(finished, DONE)
    marked = store.mark_interrupted(is_alive=lambda rec: rec["name"] == "alive")
    assert marked == [dead]
    assert store.get_run(dead)["status"] == INTERRUPTED
    assert store.get_run(dead)["error"]
    assert store.get_run(alive)["status"] == "running"


def test_mark_interrupted_default_checks_pid(store):
    run = store.create_run("fit", "ghost", {})
    store.update_run(run, status="running", pid=999999, pid_started=time.time())
    assert store.mark_interrupted() == [run]


def test_models_and_datasets_survive_reopen(tmp_path):
    s = RunStore(tmp_path / "st")
    s.save_model("dw", {"D": 10})
    s.save_dataset("d1", [b"abc"], {"n_trials": 2}, latent={"t": [[0.0]], "x": [[0.1]]})
    run = s.create_run("fit", "f", {})
    s.close()
    s2 = RunStore(tmp_path / "st")
    assert s2.list_models() == ["dw"] and s2.get_model("dw")["D"] == 10
    assert s2.list_datasets() == ["d1"]
    assert s2.get_dataset("d1")["npz"] == [b"abc"]
    assert s2.get_dataset("d1")["meta"]["name"] == "d1"
    assert s2.get_latent("d1")["x"] == [[0.1]]
    assert s2.get_run(run)["name"] == "f"
    with pytest.raises(ValueError, match="name"):
        s2.save_model("  ", {})


def test_store_never_evicts(store, tmp_path):
    """diskcache's default policy culls the oldest items past 1 GiB: data loss."""
    assert store.cache.eviction_policy == "none"


def test_saving_never_overwrites(store):
    store.save_model("m", {"D": 1})
    with pytest.raises(NameTaken, match="choose another name or delete the old model"):
        store.save_model("m", {"D": 2})
    assert store.get_model("m")["D"] == 1
    store.save_model("m", {"D": 3}, overwrite=True)
    assert store.get_model("m")["D"] == 3
    store.save_dataset("d", [b"a"], {}, latent={"t": [], "x": []})
    with pytest.raises(NameTaken, match="dataset"):
        store.save_dataset("d", [b"b"], {})
    assert store.get_dataset("d")["npz"] == [b"a"] and store.get_latent("d") is not None
    store.delete_dataset("d")
    store.delete_model("m")
    assert store.list_datasets() == [] and store.list_models() == [] and not store.has_model("m")


def test_final_status_is_never_overwritten(store):
    run = store.create_run("fit", "f", {})
    store.request_cancel(run)                 # queued -> cancelled at once
    assert store.start_run(run, 1, None) is False
    store.update_run(run, status="running", message="epoch 3")
    assert store.get_run(run)["status"] == CANCELLED
    other = store.create_run("fit", "g", {})
    assert store.start_run(other, 1, None) is True
    assert store.start_run(other, 2, None) is False and store.get_run(other)["pid"] == 1


def test_cancel_prevents_a_late_dataset(store):
    run = store.create_run("generation", "g", {})
    store.request_cancel(run)
    assert store.save_dataset("late", [b"x"], {}, unless_cancelled=run) is None
    assert store.get_dataset("late") is None


def test_remote_worker_is_not_marked_interrupted(store):
    run = store.create_run("generation", "celery", {})
    store.update_run(run, status="running", pid=999999, host="another-machine")
    assert store.mark_interrupted() == []


def test_secret_key_is_kept_in_the_store(tmp_path, monkeypatch):
    import os
    import stat
    import app
    monkeypatch.delenv("FLOWDASH_SECRET_KEY", raising=False)
    key = app.secret_key(str(tmp_path))
    assert len(key) == 64 and app.secret_key(str(tmp_path)) == key
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600
    monkeypatch.setenv("FLOWDASH_SECRET_KEY", "from-env")
    assert app.secret_key(str(tmp_path)) == "from-env"


def test_active_index_follows_the_statuses(store):
    a = store.create_run("fit", "a", {})
    b = store.create_run("generation", "b", {})
    c = store.create_run("selection-pair", "c", {})      # any short kind name
    assert store.active_runs() == [a, b, c]
    store.start_run(b, 1, None)
    assert store.active_runs() == [a, b, c]              # running stays active
    store.finish_run(b, DONE)
    store.request_cancel(a)                              # queued: cancelled at once
    assert store.active_runs() == [c]
    store.finish_run(c, DONE)
    store.delete_run(c)
    assert store.active_runs() == []
    for bad in ("Fit", "", "x" * 33, "a b", None):
        with pytest.raises(ValueError, match="kind must be a short lower-case name"):
            store.create_run(bad, "n", {})


def test_active_index_is_rebuilt_for_an_old_store(store):
    a = store.create_run("fit", "a", {})
    b = store.create_run("fit", "b", {})
    store.finish_run(a, DONE)
    store.cache.delete("runs:active")                    # as written before the index
    assert store.active_runs() == [b]


def test_heartbeats(store):
    assert store.heartbeats() == {}
    store.beat("h:1", {"time": 1.0, "run": None})
    store.beat("h:2", {"time": 2.0, "run": "r"})
    store.beat("h:1", {"time": 3.0, "run": "s"})
    assert store.heartbeats() == {"h:1": {"time": 3.0, "run": "s"},
                                  "h:2": {"time": 2.0, "run": "r"}}
    store.forget_worker("h:1")
    store.forget_worker("nobody")
    assert list(store.heartbeats()) == ["h:2"]


def test_open_store_by_location(store):
    from flowdash.store import open_store
    run = store.create_run("fit", "f", {})
    other = open_store(store.location)
    assert other.get_run(run)["name"] == "f" and other.location == store.location
    other.close()
