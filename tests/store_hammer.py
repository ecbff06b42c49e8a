"""Workers for the concurrency tests (importable by spawned processes).

Each worker owns one run and appends ``EPOCHS`` epochs to it (every epoch
twice: the second append is a retried task and must be a no-op), updates its
progress, and races the other workers on shared runs and names: exactly one
may start ``shared``, exactly one final status of ``final`` may win, exactly
one may save the model ``"one"``. Results go to the store itself
(``done:<worker>``) so that orphaned processes can report too.
"""
from __future__ import annotations

import os
import sys
import threading
import time

EPOCHS = 60


def work(location: str, worker: str, run_id: str, shared: str, final: str,
         pause: float = 0.0) -> dict:
    from flowdash.store import NameTaken, open_store

    store = open_store(location)
    won = {"start": False, "finish": None, "model": False}
    try:
        for k in range(EPOCHS):
            entry = {"epoch": k, "nll_train": [float(k)], "nll_val": None, "elapsed": 0.0,
                     "time": time.time(), "D": [1.0],
                     **({"snapshot": {"peq": [float(k)] * 50}} if k % 20 == 0 else {})}
            store.append_epoch(run_id, entry)
            store.append_epoch(run_id, entry)           # a retried task: no second copy
            store.update_run(run_id, progress=k / EPOCHS, message=f"epoch {k}")
            store.set_latest(run_id, {"epoch": k, "peq": [float(k)] * 50})
            if k == EPOCHS // 2:
                won["start"] = store.start_run(shared, os.getpid(), None)
                rec = store.finish_run(final, "failed", error=worker)
                won["finish"] = rec["error"]
                try:
                    store.save_model("one", _spec(worker))
                    won["model"] = True
                except NameTaken:
                    pass
            store.list_runs()
            store.read_columns(run_id, max(0, k - 3))
            if pause:
                time.sleep(pause)
        store.finish_run(run_id, "done")
        result = {"ok": True, **won}
    except Exception as exc:  # reported, not raised: the test reads it
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    store.set_result(run_id, dict(result, worker=worker))
    store.close()
    return result


def _spec(worker: str) -> dict:
    return {"grid": {"Np": 6, "Ne": 8, "xbegin": -1.0, "xend": 1.0},
            "boundary_mode": "reflecting", "peq_model": {"model": "cos_square", "params": {}},
            "p0_model": None, "D": 1.0, "note": worker,
            "fr_model": [{"model": "rectified_linear", "params": {}}]}


def forked(location, worker, run_id, shared, final, pause=0.0):
    """Target of a forked process: work, then leave without cleanup (like a Dash job)."""
    work(location, worker, run_id, shared, final, pause)
    os._exit(0)


def server(location: str, jobs: list, pause: float) -> None:
    """A server process: keeps the store open in its main thread, polls from a
    thread, forks each job from a request thread (as Dash's DiskcacheManager did), and
    exits while the jobs still run (a restart)."""
    import multiprocessing

    from flowdash.store import open_store

    store = open_store(location)
    store.list_runs()
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            store.list_runs()
            time.sleep(0.001)
    threading.Thread(target=poll, daemon=True).start()

    def request(args):
        mine = open_store(location)
        mine.get_run(args[2])                   # the request thread used the store
        multiprocessing.get_context("fork").Process(target=forked,
                                                    args=(location, *args, pause),
                                                    daemon=False).start()
    threads = [threading.Thread(target=request, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.3)
    os._exit(0)


if __name__ == "__main__":  # python tests/store_hammer.py LOCATION worker run shared final ...
    import json
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if sys.argv[1] == "server":
        server(sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]))
    else:  # a new server: opens the store and writes while the old server's jobs run
        from flowdash.store import open_store
        s = open_store(sys.argv[2])
        end = time.time() + float(sys.argv[3])
        while time.time() < end:
            rid = s.create_run("generation", "new server", {})
            s.finish_run(rid, "done")
            s.list_runs()
