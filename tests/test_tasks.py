"""Celery end to end: a real redis-server on a free port, a real Celery worker, no mocks."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowdash import jobs
from flowdash.store import CANCELLED, DONE, FAILED, INTERRUPTED, open_store
from tests.redis_server import REDIS_SERVER, SKIP_REASON, free_port, redis_url

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)
SPEC = {"grid": {"Np": 6, "Ne": 8}, "boundary_mode": "reflecting",
        "peq_model": {"model": "double_well", "params": {"xmin": 0.6, "xmax": 0.0, "depth": 2}},
        "p0_model": None, "D": 10.0,
        "fr_model": [{"model": "rectified_linear", "params": {"slope": 100, "x_thresh": -1}}]}
GEN = dict(model="gt", n_trials=2, duration=2.0, dt=1e-4, seed=3, with_trial_end=True,
           val_fraction=0.5, dataset_name="d")
FIT = dict(dataset="d", init_model="gt", peq_override="cos_square", optimizer="GD",
           learning_rate={"F": 0.005}, params_to_opt=["F"], max_epochs=4, mini_batch_number=1,
           snapshot_epochs=[1, 2])


def wait_until(fn, timeout, what):
    t0 = time.time()
    while not fn():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def celery(tmp_path_factory):
    """redis-server and one Celery worker process (concurrency 1) on a temporary store."""
    tmp = tmp_path_factory.mktemp("celery")
    with redis_url(tmp) as broker:
        env = dict(os.environ, FLOWDASH_BROKER=broker, PYTHONPATH=str(REPO))
        log = open(tmp / "worker.log", "w")
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "flowdash.tasks",
                                   "worker", "--concurrency", "1", "--loglevel", "INFO",
                                   "--without-gossip", "--without-mingle", "--without-heartbeat"],
                                  cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
        store = open_store(tmp / "store")
        store.save_model("gt", SPEC)
        old = os.environ.get("FLOWDASH_BROKER")
        os.environ["FLOWDASH_BROKER"] = broker
        try:
            # the worker process beats once its kernels are loaded and a task reached it
            yield type("Celery", (), dict(store=store, broker=broker, worker=worker, tmp=tmp))
        finally:
            if old is None:
                os.environ.pop("FLOWDASH_BROKER", None)
            else:
                os.environ["FLOWDASH_BROKER"] = old
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            log.close()
            store.close()


def test_every_kind_runs_as_a_celery_task(celery):
    store = celery.store
    gen = jobs.submit(store, "generation", GEN)
    rec = jobs.wait(store, gen, timeout=90)
    # the error names the cause even when the worker never got the task (its log then empty)
    log = (celery.tmp / "worker.log").read_text()[-3000:]
    assert rec["status"] == DONE, (rec.get("error"), log)
    fit = jobs.submit(store, "fit", FIT)
    rec = jobs.wait(store, fit, timeout=60)
    assert rec["status"] == DONE and rec["message"] == "4 epochs"
    assert [e["epoch"] for e in store.read_epochs(fit)] == [0, 1, 2, 3, 4]
    assert rec["pid"] != os.getpid() and rec["pid"] != celery.worker.pid   # a pool process
    assert "final" in store.get_result(fit)


def test_a_shared_redis_store_runs_through_the_same_workers(celery):
    """The task carries the store's location: a Redis store (as several machines
    would share) is served by the same Celery worker, heartbeats included."""
    store = open_store(celery.broker.rsplit("/", 1)[0] + "/1")     # another db of that server
    store.save_model("gt", SPEC)
    gen = jobs.submit(store, "generation", GEN)
    rec = jobs.wait(store, gen, timeout=90)
    assert rec["status"] == DONE, rec.get("error")
    fit = jobs.submit(store, "fit", FIT)
    rec = jobs.wait(store, fit, timeout=60)
    assert rec["status"] == DONE and store.read_columns(fit)["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert store.get_checkpoint(fit) is not None and store.active_runs() == []
    assert any(b.get("pid") == rec["pid"] for b in store.heartbeats().values())
    store.close()


def test_one_task_per_process_queue_and_cooperative_cancel(celery):
    store = celery.store
    first = jobs.submit(store, "fit", dict(FIT, max_epochs=400, pace=0.05))
    second = jobs.submit(store, "fit", dict(FIT, max_epochs=2))
    wait_until(lambda: store.n_epochs(first) >= 2, 60, "the first fit's epochs")
    queued = jobs.observe(store, second)
    assert queued["status"] == "queued" and queued["queue_position"] == 1
    assert queued["message"] == "queued: 1st in line (1 of 1 workers busy)"
    jobs.cancel(store, first)                                # the store's flag, no terminate
    rec = jobs.wait(store, first, timeout=30)
    assert rec["status"] == CANCELLED and rec["message"].startswith("cancelled after epoch")
    assert jobs.wait(store, second, timeout=60)["status"] == DONE
    # a duplicated or redelivered task finds the run taken and does nothing
    from flowdash import tasks
    tasks.send(celery.broker, store.location, second)
    time.sleep(1.0)
    assert store.get_run(second)["status"] == DONE and store.n_epochs(second) == 3


def test_stopping_the_worker_interrupts_its_fit_and_keeps_it(celery):
    store = celery.store
    rid = jobs.submit(store, "fit", dict(FIT, max_epochs=400, pace=0.05))
    wait_until(lambda: store.n_epochs(rid) >= 2, 60, "epochs")
    os.kill(store.get_run(rid)["pid"], signal.SIGTERM)        # what a warm shutdown sends
    rec = jobs.wait(store, rid, timeout=30)
    assert rec["status"] == INTERRUPTED and "Celery worker was stopped" in rec["error"]
    assert "final" in store.get_result(rid)
    n = store.n_epochs(rid)
    assert [e["epoch"] for e in store.read_epochs(rid)] == list(range(n))


def test_an_unreachable_broker_fails_the_run_with_why(tmp_path, monkeypatch):
    store = open_store(tmp_path / "s")
    store.save_model("gt", SPEC)
    monkeypatch.setenv("FLOWDASH_BROKER", f"redis://127.0.0.1:{free_port()}/0")
    t0 = time.time()
    rid = jobs.submit(store, "generation", GEN)
    assert time.time() - t0 < 5
    rec = store.get_run(rid)
    assert rec["status"] == FAILED and "task queue at FLOWDASH_BROKER could not be reached" \
        in rec["error"]
