"""Many processes (spawned and forked) and threads on one store, both backends.

Issue 8's "disk I/O error": SQLite state inherited across fork (Dash's
DiskcacheManager forked its jobs from a server that held the store open)
corrupted the database once the server restarted. These tests hammer the
store the same way and check that nothing is lost, duplicated or damaged.
"""
import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flowdash.store import open_store
from tests import store_hammer
from tests.redis_server import redis_url

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
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


def _check(store, runs, shared, final):
    results = []
    for worker, rid in runs.items():
        assert store.n_epochs(rid) == store_hammer.EPOCHS, worker
        epochs = [e["epoch"] for e in store.read_epochs(rid, snapshots=False)]
        assert epochs == list(range(store_hammer.EPOCHS)), worker   # no copy, no reordering
        assert store.snapshot_epochs(rid) == [0, 20, 40]
        result = store.get_result(rid)
        assert result is not None and result["ok"], result
        assert store.get_run(rid)["status"] == "done"
        results.append(result)
    assert sum(r["start"] for r in results) == 1                 # queued -> running once
    assert store.get_run(shared)["status"] == "running"
    winner = store.get_run(final)["error"]
    assert winner in runs and all(r["finish"] == winner for r in results)  # first final wins
    assert sum(r["model"] for r in results) == 1 and store.list_models() == ["one"]
    assert store.get_model("one")["note"] in runs


def test_processes_and_threads_hammer_one_store(location):
    store = open_store(location)
    workers = [f"spawned{i}" for i in range(2)] + [f"forked{i}" for i in range(2)] + \
        [f"thread{i}" for i in range(3)]
    runs = {w: store.create_run("fit", w, {}) for w in workers}
    shared = store.create_run("fit", "shared", {})
    final = store.create_run("fit", "final", {})
    store.list_runs()                              # the parent holds the store open
    spawn = multiprocessing.get_context("spawn")
    procs = [spawn.Process(target=store_hammer.work, args=(location, w, runs[w], shared, final))
             for w in workers if w.startswith("spawned")]
    fork = multiprocessing.get_context("fork")
    threads = [threading.Thread(target=store_hammer.work, args=(location, w, runs[w], shared,
                                                                 final))
               for w in workers if w.startswith("thread")]

    def fork_from_a_thread(w):                    # as Dash's DiskcacheManager did
        p = fork.Process(target=store_hammer.forked, args=(location, w, runs[w], shared, final))
        p.start()
        procs.append(p)
    forkers = [threading.Thread(target=fork_from_a_thread, args=(w,))
               for w in workers if w.startswith("forked")]
    for t in procs + threads + forkers:
        t.start()
    for t in forkers:
        t.join()
    for t in threads:
        t.join(120)
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    _check(store, runs, shared, final)
    if not location.startswith("redis"):
        con = sqlite3.connect(Path(location) / "data" / "cache.db")
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        con.close()


def test_forked_jobs_survive_a_server_restart(tmp_path):
    """The issue-8 scenario: jobs forked by a server go on while the server is
    restarted and the new server writes; before the fix this corrupted the
    database ("database disk image is malformed", "disk I/O error") or lost
    transactions."""
    location = str(tmp_path / "store")
    store = open_store(location)
    workers = [f"forked{i}" for i in range(3)]
    runs = {w: store.create_run("generation", w, {}) for w in workers}
    shared = store.create_run("fit", "shared", {})
    final = store.create_run("fit", "final", {})
    store.close()
    jobs = [[w, runs[w], shared, final] for w in workers]
    subprocess.run([sys.executable, str(REPO / "tests" / "store_hammer.py"), "server", location,
                    json.dumps(jobs), "0.01"], cwd=REPO, check=True, timeout=60)
    subprocess.run([sys.executable, str(REPO / "tests" / "store_hammer.py"), "newserver",
                    location, "1.5"], cwd=REPO, check=True, timeout=60)
    store = open_store(location)
    deadline = time.time() + 60
    while time.time() < deadline and any(store.get_result(r) is None for r in runs.values()):
        time.sleep(0.2)                    # the orphaned jobs report through the store
    _check(store, runs, shared, final)
    con = sqlite3.connect(Path(location) / "data" / "cache.db")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
