"""A Redis restart while runs write: the store waits for it instead of failing the run."""
import subprocess
import threading
import time

import pytest

from flowdash.store import open_store
from tests.redis_server import REDIS_SERVER, SKIP_REASON, free_port

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)


def _start(port, tmp):
    return subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
                             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                             "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_writes_wait_for_a_restarted_redis_and_lose_nothing(tmp_path):
    port = free_port()
    proc = _start(port, tmp_path)
    try:
        deadline = time.time() + 10
        while True:
            try:
                store = open_store(f"redis://127.0.0.1:{port}/0")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        rid = store.create_run("fit", "through a restart", {"max_epochs": 3}, {})
        store.append_epoch(rid, {"epoch": 0, "nll_train": [1.0]}, expected=0)
        proc.terminate()
        proc.wait(10)
        restarted = []
        timer = threading.Timer(1.0, lambda: restarted.append(_start(port, tmp_path)))
        timer.start()
        t0 = time.time()
        store.append_epoch(rid, {"epoch": 1, "nll_train": [0.5]}, expected=1)   # Redis is down here
        assert 0.8 < time.time() - t0 < 10
        assert [e["epoch"] for e in store.read_epochs(rid)] == [0, 1]
        store.close()
    finally:
        timer.join()
        for p in [proc, *restarted]:
            p.terminate()
            p.wait(10)


def test_an_unreachable_store_is_said_at_once(tmp_path):
    from flowdash.store import StoreError

    t0 = time.time()
    with pytest.raises(StoreError, match="cannot reach the Redis store"):
        open_store(f"redis://127.0.0.1:{free_port()}/0")
    assert time.time() - t0 < 3
