"""The run store, against both backends (a folder, and a real redis-server).

No core, no dash. The Redis tests start ``redis-server`` on a free port with a
temporary directory and skip only if the binary is missing.
"""
import os
import pickle
import sqlite3
import stat
import time

import numpy as np
import pytest

from flowdash.records import UNREADABLE
from flowdash.settings import SettingsError
from flowdash.store import (CANCELLED, CHUNK, DONE, INTERRUPTED, EpochOrderError, NameTaken,
                            RunActive, RunStore, StoreDamaged, StoreFormatError, UnknownRun,
                            open_store)
from tests.redis_server import redis_url

SPEC = {"grid": {"Np": 6, "Ne": 8, "xbegin": -1.0, "xend": 1.0}, "boundary_mode": "reflecting",
        "peq_model": {"model": "double_well", "params": {"xmin": 0.6, "xmax": 0.0, "depth": 2}},
        "p0_model": None, "D": 10.0,
        "fr_model": [{"model": "rectified_linear", "params": {"slope": 100, "x_thresh": -1}}]}


@pytest.fixture(scope="session")
def redis_base(tmp_path_factory):
    with redis_url(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["folder", "redis"])
def location(request, tmp_path):
    if request.param == "folder":
        return str(tmp_path / "store")
    import redis
    url = request.getfixturevalue("redis_base")
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def store(location):
    s = open_store(location)
    yield s
    s.close()


def n_keys(store) -> int:
    """How many values the store holds (either backend)."""
    if hasattr(store, "cache"):
        return len(store.cache)
    return store.r.dbsize()


def entry(k, snapshot=None):
    e = {"epoch": k, "nll_train": [float(k)], "nll_val": [2.0 * k], "elapsed": 0.1 * k,
         "time": time.time(), "D": [10.0]}
    if snapshot is not None:
        e["snapshot"] = snapshot
    return e


# ---------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------
def test_factory_picks_the_backend(location):
    store = RunStore(location)
    assert type(store).__name__ == ("RedisStore" if location.startswith("redis") else "DiskStore")
    assert store.path == location and type(open_store(location)) is type(store)


def test_run_lifecycle_and_index(store):
    a = store.create_run("fit", "first", {"lr": 1})
    b = store.create_run("generation", "second", {"n": 2}, refs={"model": "m"})
    assert [r["id"] for r in store.list_runs()] == [b, a]
    assert [r["id"] for r in store.list_runs("fit")] == [a]
    assert store.run_ids() == [b, a] and [r["name"] for r in store.get_runs([a])] == ["first"]
    rec = store.get_run(a)
    assert rec["status"] == "queued" and rec["settings"] == {"lr": 1}
    store.update_run(a, status="running", pid=123)
    assert store.get_run(a)["pid"] == 123
    store.finish_run(a, DONE)
    # first final status wins
    store.finish_run(a, CANCELLED)
    assert store.get_run(a)["status"] == DONE
    assert store.get_run(a)["finished"] is not None


def test_final_status_is_never_overwritten(store):
    run = store.create_run("fit", "f", {})
    store.request_cancel(run)                 # queued -> cancelled at once
    assert store.start_run(run, 1, None) is False
    store.update_run(run, status="running", message="epoch 3")
    assert store.get_run(run)["status"] == CANCELLED
    other = store.create_run("fit", "g", {})
    assert store.start_run(other, 1, None) is True
    assert store.start_run(other, 2, None) is False and store.get_run(other)["pid"] == 1


def test_delete_run_removes_everything(store):
    run = store.create_run("fit", "f", {})
    for k in range(CHUNK + 3):
        store.append_epoch(run, entry(k, {"peq": [1.0, 2.0]} if k % 50 == 0 else None))
    store.set_latest(run, {"epoch": 3, "peq": [1.0], "p0": None})
    store.set_result(run, {"x": [0.0]})
    store.set_checkpoint(run, b"state")
    store.update_run(run, status="running")
    with pytest.raises(RunActive, match="cancel it first"):
        store.delete_run(run)               # its worker would keep writing
    assert store.get_run(run) is not None and store.n_epochs(run) == CHUNK + 3
    store.finish_run(run, DONE)
    before = n_keys(store)
    store.delete_run(run)
    assert store.get_run(run) is None and store.n_epochs(run) == 0
    assert store.list_runs() == [] and store.get_checkpoint(run) is None
    assert store.snapshot_epochs(run) == [] and store.get_latest(run) is None
    # what is left: the store's format, the active index and the (now empty) run
    # index: its bucket versions and its counter
    assert n_keys(store) == 4 and before > 10


def test_cancel_flag_and_queued_cancel(store):
    run = store.create_run("fit", "f", {})
    assert not store.cancel_requested(run)
    assert store.request_cancel(run) is True
    assert store.cancel_requested(run)
    assert store.get_run(run)["status"] == CANCELLED


def test_forged_ids_store_nothing(store):
    before = n_keys(store)
    with pytest.raises(ValueError, match="is not a run id"):
        store.request_cancel("x" * 20_000_000)        # a forged 20 MB id
    assert store.request_cancel("0123456789ab") is False   # well formed, no such run
    for bad in ("../../etc", "ABCDEF012345", "", None, 12, "0123456789abc"):
        assert store.get_run(bad) is None and not store.cancel_requested(bad)
        assert store.read_epochs(bad) == [] and store.n_epochs(bad) == 0
    store.delete_run("y" * 1000)
    assert n_keys(store) == before


# ---------------------------------------------------------------------------
# epoch log
# ---------------------------------------------------------------------------
def test_epoch_log_is_append_only_and_incremental(store):
    run = store.create_run("fit", "f", {})
    for k in range(5):
        assert store.append_epoch(run, {"epoch": k, "nll_train": [float(k)]}) == k
    assert store.n_epochs(run) == 5
    assert [e["epoch"] for e in store.read_epochs(run, 3)] == [3, 4]
    assert store.read_epochs(run, 9) == []
    assert store.read_epoch(run, 4)["nll_train"] == [4.0] and store.read_epoch(run, 5) is None


def test_a_retried_append_never_duplicates_or_reorders(store):
    run = store.create_run("fit", "f", {})
    for k in range(3):
        store.append_epoch(run, entry(k))
    # a retried task sends epoch 1 and 2 again: no second copy, no change
    assert store.append_epoch(run, dict(entry(1), nll_train=[99.0])) == 1
    assert store.append_epoch(run, entry(2), expected=2) == 2
    assert store.n_epochs(run) == 3 and store.read_epoch(run, 1)["nll_train"] == [1.0]
    with pytest.raises(EpochOrderError, match="cannot follow"):
        store.append_epoch(run, entry(5))        # epochs 3 and 4 are missing
    assert store.append_epoch(run, {"note": "no epoch number"}) == 3   # appended at the end
    with pytest.raises(UnknownRun):
        store.append_epoch("0123456789ab", entry(0))


def test_epochs_cross_chunks_and_read_as_columns(store):
    run = store.create_run("fit", "f", {})
    n = 2 * CHUNK + 7
    for k in range(n):
        e = entry(k, {"peq": np.linspace(0, 1, 5) * k, "p0": None} if k in (1, 130) else None)
        if k == 4:
            e["nll_val"] = [None]                 # a non-finite value is stored as None
        store.append_epoch(run, e)
    assert [e["epoch"] for e in store.read_epochs(run, CHUNK - 2, snapshots=False)] == \
        list(range(CHUNK - 2, n))
    assert store.snapshot_epochs(run) == [1, 130]
    assert store.read_snapshot(run, 130)["peq"] == pytest.approx((np.linspace(0, 1, 5) * 130))
    assert store.read_epoch(run, 1)["snapshot"]["p0"] is None
    full = store.read_epochs(run)
    assert len(full) == n and "snapshot" in full[130] and "snapshot" not in full[2]
    cols = store.read_columns(run)
    assert cols["n_epochs"] == n and cols["epoch"].tolist() == list(range(n))
    assert cols["nll_train"].shape == (n, 1) and np.isnan(cols["nll_val"][4, 0])
    new = store.read_columns(run, start=n - 3)          # a poll: only what is new
    assert new["epoch"].tolist() == [n - 3, n - 2, n - 1] and new["start"] == n - 3
    small = store.read_columns(run, max_points=50)
    e = small["epoch"].tolist()
    assert len(e) <= 50 and e[0] == 0 and e[-1] == n - 1 and e == sorted(set(e))
    assert 0 in e  # the minimum of both NLLs is epoch 0 here


def test_latest_result_checkpoint_round_trip(store):
    run = store.create_run("fit", "f", {})
    peq = np.random.default_rng(0).random((2, 7))
    store.set_latest(run, {"epoch": 5, "peq": peq.tolist(), "p0": None, "fr": None,
                           "D": [1.0, 2.0]})
    latest = store.get_latest(run)
    assert latest["epoch"] == 5 and latest["p0"] is None and latest["D"] == [1.0, 2.0]
    np.testing.assert_array_equal(np.asarray(latest["peq"]), peq)   # full precision
    store.set_result(run, {"x": [0.0, 1.0], "truth": None, "init": {"peq": [[1.0]]}})
    assert store.get_result(run)["init"] == {"peq": [[1.0]]}
    assert store.get_checkpoint(run) is None
    store.set_checkpoint(run, b"\x00opaque")
    store.set_checkpoint(run, b"\x00newer")
    assert store.get_checkpoint(run) == b"\x00newer"
    with pytest.raises(TypeError, match="bytes"):
        store.set_checkpoint(run, {"not": "bytes"})


# ---------------------------------------------------------------------------
# models and datasets
# ---------------------------------------------------------------------------
def test_models_and_datasets_survive_reopen(location):
    s = open_store(location)
    s.save_model("dw", SPEC)
    s.save_dataset("d1", [b"abc"], {"n_trials": 2}, latent={"t": [[0.0, 0.5]], "x": [[0.1, 0.2]]})
    run = s.create_run("fit", "f", {})
    s.close()
    s2 = open_store(location)
    assert s2.list_models() == ["dw"] and s2.get_model("dw")["D"] == 10
    assert s2.list_datasets() == ["d1"]
    assert s2.get_dataset("d1")["npz"] == [b"abc"]
    assert s2.get_dataset("d1")["meta"]["name"] == "d1"
    assert s2.get_dataset_meta("d1")["n_trials"] == 2
    assert s2.get_latent("d1")["x"] == [[0.1, 0.2]]
    assert s2.get_run(run)["name"] == "f"
    with pytest.raises(ValueError, match="name"):
        s2.save_model("  ", SPEC)


def test_saving_never_overwrites(store):
    store.save_model("m", SPEC)
    with pytest.raises(NameTaken, match="choose another name or delete the old model") as info:
        store.save_model("m", dict(SPEC, D=2.0))
    assert info.value.field == "name"         # like a refused name (flowdash.names)
    assert store.get_model("m")["D"] == 10
    store.save_model("m", dict(SPEC, D=3.0), overwrite=True)
    assert store.get_model("m")["D"] == 3
    store.save_dataset("d", [b"a", b"b"], {}, latent={"t": [], "x": []})
    with pytest.raises(NameTaken, match="dataset"):
        store.save_dataset("d", [b"b"], {})
    assert store.get_dataset("d")["npz"] == [b"a", b"b"] and store.get_latent("d") is not None
    store.save_dataset("d", [b"c"], {}, overwrite=True)
    assert store.get_dataset("d")["npz"] == [b"c"] and store.get_latent("d") is None
    store.delete_dataset("d")
    store.delete_model("m")
    assert store.list_datasets() == [] and store.list_models() == [] and not store.has_model("m")


def test_cancel_prevents_a_late_dataset(store):
    run = store.create_run("generation", "g", {})
    store.request_cancel(run)
    assert store.save_dataset("late", [b"x"], {}, unless_cancelled=run) is None
    assert store.get_dataset("late") is None and store.list_datasets() == []


@pytest.mark.parametrize("name, match", [
    ("a" * 81, "too long"),
    ("x" * 5_000_000, "too long"),
    ("ab\u200bcd", "U\\+200B ZERO WIDTH SPACE, at position 3"),
    ("nul\x00", "control character, U\\+0000"),
    ("\u202eevil", "U\\+202E"),
    ("\ufeffbom", "U\\+FEFF"),
    ("a\u2028b", "line separator"),
])
def test_names_are_bounded_and_visible(store, name, match):
    before = n_keys(store)
    with pytest.raises(ValueError, match=match):
        store.save_model(name, SPEC)
    with pytest.raises(ValueError, match=match):
        store.save_dataset(name, [b"x"], {})
    with pytest.raises(ValueError, match=match):   # run names may be longer (120)
        store.create_run("fit", name * 2 if name == "a" * 81 else name, {})
    assert n_keys(store) == before
    assert store.get_model(name) is None and not store.has_dataset(name)


def test_model_caps_apply_to_save_model(store):
    with pytest.raises(SettingsError, match="500 neurons; between 1 and 32"):
        store.save_model("big", dict(SPEC, fr_model=SPEC["fr_model"] * 500))
    with pytest.raises(SettingsError, match=r"Ne must be an integer in \[1, 2000\]"):
        store.save_model("huge", dict(SPEC, grid={"Np": 8, "Ne": 20000}))
    with pytest.raises(SettingsError, match="Np must be"):
        store.save_model("np2", dict(SPEC, grid={"Np": 2, "Ne": 16}))
    with pytest.raises(SettingsError, match="unknown model"):
        store.save_model("bad", dict(SPEC, peq_model={"model": "nope", "params": {}}))
    assert store.list_models() == []


def test_unicode_names_are_fine(store):
    store.save_model("Modèle α — ein Test", SPEC)
    assert store.list_models() == ["Modèle α — ein Test"]


def test_secret_key_is_kept_once(store):
    key = store.secret_key()
    assert len(key) == 64 and store.secret_key() == key
    assert open_store(store.path).secret_key() == key


# ---------------------------------------------------------------------------
# plain data and faults
# ---------------------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/flowdash-pwned",))


def _delete_raw(store, key):
    if hasattr(store, "cache"):
        store.cache.delete(key)
    else:
        store.r.delete("flowdash:" + key)


def _write_raw(store, key, value: bytes):
    """Write a value behind the store's back (what an attacker with write access does)."""
    if hasattr(store, "cache"):
        import diskcache
        c = diskcache.Cache(store.cache.directory)          # the default Disk pickles
        c.set(key, value)
        c.close()
    else:
        store.r.set("flowdash:" + key, value)


def test_one_corrupt_record_does_not_stop_listing(store):
    good = store.create_run("fit", "good", {})
    bad = store.create_run("fit", "bad", {})
    store.update_run(good, status="running", pid=999999, pid_started=0.0)
    _write_raw(store, f"run:{bad}", b"\x00garbage{")
    runs = {r["id"]: r for r in store.list_runs()}
    assert runs[bad]["status"] == UNREADABLE and "not readable" in runs[bad]["error"]
    assert runs[good]["name"] == "good"
    assert store.active_runs() == [good, bad]                 # the index is not the record
    assert store.finish_run(good, INTERRUPTED)["status"] == INTERRUPTED   # recovery goes on
    assert store.finish_run(bad, DONE)["status"] == UNREADABLE  # never overwritten
    store.delete_run(bad)                                      # but it can be deleted
    assert [r["id"] for r in store.list_runs()] == [good] and store.active_runs() == []


def test_pickled_values_are_never_unpickled(store, tmp_path):
    if os.path.exists("/tmp/flowdash-pwned"):
        os.remove("/tmp/flowdash-pwned")
    run = store.create_run("fit", "f", {})
    if hasattr(store, "cache"):
        import diskcache
        c = diskcache.Cache(store.cache.directory)
        c.set(f"run:{run}", _Evil())                          # stored as a pickle
        c.set("model:evil", _Evil())
        c.close()
    else:
        store.r.set(f"flowdash:run:{run}", pickle.dumps(_Evil()))
        store.r.set("flowdash:model:evil", pickle.dumps(_Evil()))
    assert store.get_run(run)["status"] == UNREADABLE
    assert store.get_model("evil") is None
    assert not os.path.exists("/tmp/flowdash-pwned")


def test_folder_values_are_plain_bytes(tmp_path):
    """Every row of the database: a text key and raw bytes or a bytes file (never a pickle)."""
    s = open_store(tmp_path / "st")
    s.save_model("m", SPEC)
    s.save_dataset("d", [b"x" * 100_000], {"n_trials": 1}, latent={"t": [[0.0]], "x": [[1.0]]})
    run = s.create_run("fit", "f", {})
    s.append_epoch(run, entry(0, {"peq": np.ones(5000)}))
    s.set_latest(run, {"epoch": 0, "peq": [1.0]})
    s.close()
    con = sqlite3.connect(tmp_path / "st" / "data" / "cache.db")
    rows = con.execute("SELECT key, raw, mode FROM Cache").fetchall()
    con.close()
    assert rows and all(isinstance(k, str) and raw == 1 and mode in (1, 2) for k, raw, mode in rows)


def test_store_folder_is_private(tmp_path):
    folder = tmp_path / "st"
    folder.mkdir(mode=0o755)
    (folder / "old.txt").write_text("x")
    os.chmod(folder / "old.txt", 0o644)
    s = open_store(folder)
    s.save_dataset("d", [b"x" * 100_000], {})             # a value file of its own
    s.secret_key()
    s.close()
    for root, dirs, files in os.walk(folder):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root
        for f in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, f)).st_mode) == 0o600, f


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_database_says_what_to_do(tmp_path, damage):
    folder = tmp_path / "st"
    s = open_store(folder)
    for k in range(200):
        s.create_run("fit", f"run {k}", {"pad": "x" * 500})
    s.close()
    db = folder / "data" / "cache.db"
    for extra in ("cache.db-wal", "cache.db-shm"):
        if (folder / "data" / extra).exists():
            os.remove(folder / "data" / extra)
    if damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    else:
        raw = db.read_bytes()
        db.write_bytes(raw[:4096] + b"\x00" * 10 + raw[len(raw) // 2:len(raw) // 2 + 100])
    with pytest.raises(StoreDamaged, match="damaged.*move the folder aside"):
        open_store(folder).list_runs()


def test_an_old_pickled_store_is_refused_with_a_way_out(tmp_path):
    import diskcache
    folder = tmp_path / "old"
    c = diskcache.Cache(str(folder / "runs"))
    c.set("run:0123456789ab", {"id": "0123456789ab", "kind": "fit", "name": "old",
                                "status": "done", "settings": {}, "refs": {}, "created": 1.0})
    c.set("runs:index", ["0123456789ab"])
    c.close()
    with pytest.raises(StoreFormatError, match="python -m flowdash.store.migrate"):
        open_store(folder)


def test_store_never_evicts(tmp_path):
    """diskcache's default policy culls the oldest items past 1 GiB: data loss."""
    s = open_store(tmp_path / "st")
    assert s.cache.eviction_policy == "none"


def test_app_secret_key_comes_from_the_store(location, monkeypatch):
    import app
    monkeypatch.delenv("FLOWDASH_SECRET_KEY", raising=False)
    store = open_store(location)
    key = app.secret_key(store)
    assert len(key) == 64 and key == store.secret_key() == app.secret_key(open_store(location))
    if not location.startswith("redis"):
        assert stat.S_IMODE(os.stat(os.path.join(location, "secret_key")).st_mode) == 0o600
    monkeypatch.setenv("FLOWDASH_SECRET_KEY", "from-env")
    assert app.secret_key(store) == "from-env"
    store.close()


def test_migrating_an_old_pickled_store(tmp_path):
    """The old layout (pickles) converts once, with a reader that refuses code."""
    import diskcache
    from flowdash.store.migrate import migrate
    folder = tmp_path / "old"
    rid = "0123456789ab"
    c = diskcache.Cache(str(folder / "runs"))
    c.set(f"run:{rid}", {"id": rid, "kind": "fit", "name": "old", "status": "done",
                         "settings": {"snapshot_epochs": [1]}, "refs": {}, "created": 1.0})
    c.set("runs:index", [rid])
    c.set(f"nepochs:{rid}", 2)
    c.set(f"epochs:{rid}:0", {"epoch": 0, "nll_train": [3.0], "D": [1.0]})
    c.set(f"epochs:{rid}:1", {"epoch": 1, "nll_train": [2.0], "D": [1.0],
                              "snapshot": {"peq": [0.5, 0.5], "p0": None}})
    c.set(f"result:{rid}", {"x": [0.0, 1.0]})
    c.set("models:m", SPEC)
    c.set("models:evil", _Evil())
    c.set("datasets:d", {"meta": {"n_trials": 1}, "npz": [b"blob"]})
    c.set("latent:d", {"t": [[0.0]], "x": [[1.0]]})
    c.close()
    problems = migrate(folder)
    assert any("models:evil" in p and "refused" in p for p in problems)
    assert not os.path.exists("/tmp/flowdash-pwned")
    s = open_store(folder)
    assert s.get_run(rid)["name"] == "old" and s.n_epochs(rid) == 2
    assert s.read_epoch(rid, 1)["snapshot"]["peq"] == [0.5, 0.5]
    assert s.get_result(rid) == {"x": [0.0, 1.0]} and s.list_models() == ["m"]
    assert s.get_dataset("d")["npz"] == [b"blob"] and s.get_latent("d")["x"] == [[1.0]]
    assert (folder / "runs.pickled-old").exists()


def test_a_50000_epoch_fit_stays_small_and_reads_cheaply(tmp_path):
    """Example 1's grid (N = 1793): NLLs at every epoch, 2,000 snapshots of peq,
    p0 and one rate, the latest parameters every 10 epochs — under 100 MB."""
    folder = tmp_path / "st"
    store = open_store(folder)
    run = store.create_run("fit", "long", {})
    E, N, every = 50_000, 1793, 25
    rng = np.random.default_rng(0)
    base = rng.random(N)
    for k in range(E + 1):
        e = {"epoch": k, "nll_train": [1000.0 - 1e-3 * k], "nll_val": [1200.0 - 1e-3 * k],
             "elapsed": 0.05 * k, "time": 1.0e9 + k, "D": [10.0]}
        if k % every == 0:
            e["snapshot"] = {"peq": base * (1 + 1e-3 * rng.random(N)),
                             "p0": base * (1 + 1e-3 * rng.random(N)),
                             "fr": 100 * base[:, None], "D": [10.0]}
        store.append_epoch(run, e)
        if k % 10 == 0:
            store.set_latest(run, {"epoch": k, "peq": base, "p0": None, "fr": None})
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 100 * 2**20, f"{size / 2**20:.0f} MB"
    assert len(store.snapshot_epochs(run)) == E // every + 1
    new = store.read_columns(run, start=E - 2)              # a poll: the last chunk only
    assert new["epoch"].tolist() == [E - 2, E - 1, E]
    full = store.read_columns(run)                           # the whole curve, one read
    assert full["nll_train"].shape == (E + 1, 1) and full["epoch"][-1] == E
    shown = store.read_columns(run, max_points=2000)         # decimated for display
    assert len(shown["epoch"]) <= 2000 and shown["epoch"][-1] == E
    snap = store.read_snapshot(run, E, as_lists=False)
    assert snap["peq"].shape == (N,) and snap["fr"].shape == (N, 1)


def test_an_unreachable_redis_says_what_to_do():
    from flowdash.store import StoreError
    with pytest.raises(StoreError, match="cannot reach the Redis store.*start redis-server"):
        open_store("redis://127.0.0.1:1/0")


def test_the_job_layer_runs_on_either_backend(location):
    """A generation and a fit through the job layer, with the store given as a
    folder or a URL: epochs, snapshots (float32 copies), latest and checkpoint."""
    from flowdash import jobs
    from flowdash.core.fitting import FitCheckpoint
    store = open_store(location)
    store.save_model("gt", SPEC)
    rid = jobs.submit(store, "generation", dict(model="gt", n_trials=2, duration=0.5, dt=1e-3,
                                                seed=1, with_trial_end=True, val_fraction=0.5,
                                                dataset_name="d"))
    assert jobs.execute(store, rid) == DONE and store.active_runs() == []
    samples, meta = jobs.load_dataset(store, "d")
    assert samples[0].n_trials == 2 and meta["run_id"] == rid
    assert len(store.get_latent("d")["t"]) == 2
    fit = jobs.submit(store, "fit", dict(dataset="d", init_model="gt", optimizer="GD",
                                         learning_rate={"F": 0.005}, params_to_opt=["F"],
                                         max_epochs=3, mini_batch_number=1,
                                         snapshot_epochs=[1]))
    assert jobs.execute(store, fit) == DONE
    assert store.read_columns(fit)["epoch"].tolist() == [0, 1, 2, 3]
    assert store.snapshot_epochs(fit) == [0, 1, 3]
    snap = store.read_snapshot(fit, 3, as_lists=False)
    assert snap["peq"].dtype == np.float32 and snap["p0"] is None
    final = np.asarray(store.get_result(fit)["final"]["peq"])
    np.testing.assert_allclose(snap["peq"], final, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(store.get_latest(fit)["peq"]), final)  # float64
    assert FitCheckpoint.from_bytes(store.get_checkpoint(fit)).epoch == 3
    store.close()


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


def test_the_active_index_follows_every_status_change(store):
    a, b = (store.create_run("fit", n, {}) for n in "ab")
    store.update_run(a, status=INTERRUPTED)            # any path to a final status
    assert store.active_runs() == [b]
    store.update_run(b, message="epoch 3")             # no status change: no index write
    assert store.active_runs() == [b]
    assert store.request_cancel("0123456789ab") is False and store.active_runs() == [b]


@pytest.mark.parametrize("damage", [None, b"\x00garbage{", b'{"not": "a list"}'])
def test_active_index_is_rebuilt_for_an_old_store(store, damage):
    a = store.create_run("fit", "a", {})
    b = store.create_run("fit", "b", {})
    store.finish_run(a, DONE)
    if damage is None:
        _delete_raw(store, "runs:active")              # as written before the index
    else:
        _write_raw(store, "runs:active", damage)
    assert store.active_runs() == [b]
    c = store.create_run("fit", "c", {})
    assert store.active_runs() == [b, c]


def test_heartbeats(store):
    assert store.heartbeats() == {}
    store.beat("h:1", {"time": 1.0, "run": None})
    store.beat("h:2", {"time": 2.0, "run": "r"})
    store.beat("h:1", {"time": 3.0, "run": "s"})
    assert store.heartbeats() == {"h:1": {"time": 3.0, "run": "s"},
                                  "h:2": {"time": 2.0, "run": "r"}}
    store.forget_worker("h:1")
    store.forget_worker("nobody")
    store.forget_worker("x" * 10_000)
    assert list(store.heartbeats()) == ["h:2"]


def test_heartbeats_are_bounded_json(store):
    before = n_keys(store)
    for bad in ("", "x" * 201, None, 12):
        with pytest.raises(ValueError, match="is not a worker id"):
            store.beat(bad, {"time": 1.0})
    with pytest.raises(TypeError, match="plain JSON data"):
        store.beat("h:1", {"time": object()})
    with pytest.raises(TypeError, match="a heartbeat is a dict"):
        store.beat("h:1", [1.0])
    with pytest.raises(ValueError, match="too large"):
        store.beat("h:1", {"pad": "x" * 300_000})
    assert n_keys(store) == before and store.heartbeats() == {}
    _write_raw(store, "workers:beats", b"\x00garbage{")
    assert store.heartbeats() == {}                     # logged, never raised
    store.beat("h:1", {"time": 1.0})                    # a new table replaces it
    assert store.heartbeats() == {"h:1": {"time": 1.0}}


def test_runs_and_beats_from_threads_are_never_lost(location):
    """Concurrent read-modify-writes of the active index and the heartbeat table
    (a lock in the folder, optimistic retries in Redis) lose no update."""
    import threading

    def work(i, out):
        s = open_store(location)
        mine = []
        for k in range(8):
            rid = s.create_run("fit", f"w{i} {k}", {})
            s.beat(f"host:{i}", {"time": float(k), "run": rid})
            if k % 2:
                s.finish_run(rid, DONE)
            else:
                mine.append(rid)
        out[i] = mine, rid
        s.close()
    out = {}
    threads = [threading.Thread(target=work, args=(i, out)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    store = open_store(location)
    assert sorted(store.active_runs()) == sorted(r for rs, _ in out.values() for r in rs)
    assert len(store.active_runs()) == 16 and len(store.run_ids()) == 32
    assert store.heartbeats() == {f"host:{i}": {"time": 7.0, "run": out[i][1]}
                                  for i in range(4)}
    store.close()


def test_open_store_by_location(store):
    run = store.create_run("fit", "f", {})
    other = open_store(store.location)
    assert other.get_run(run)["name"] == "f" and other.location == store.location
    other.close()


def test_a_folder_location_is_absolute(tmp_path, monkeypatch):
    """Workers and Celery tasks may run in another working directory."""
    monkeypatch.chdir(tmp_path)
    s = open_store("rel/st")
    assert s.path == "rel/st" and s.location == str(tmp_path / "rel" / "st")
    s.close()
