"""The two-core helpers: order, concurrency, errors, nesting."""

import threading
import time

import pytest

from flowdash.core._parallel import WORKERS, available_workers, parallel_map, submit


def test_results_keep_the_order_of_the_items():
    assert parallel_map(lambda x: x * x, range(7)) == [x * x for x in range(7)]
    assert parallel_map(lambda x: x, []) == []


def test_at_most_workers_at_once_and_the_caller_among_them():
    running, peak, threads, lock = [0], [0], set(), threading.Lock()

    def item(_):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            threads.add(threading.current_thread().name)
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    parallel_map(item, range(6))
    assert peak[0] <= WORKERS
    assert threading.current_thread().name in threads


def test_an_error_stops_the_others_taking_items_and_propagates():
    done = []

    def item(x):
        if x == 0:
            raise ValueError("item 0 is bad")
        time.sleep(0.01)
        done.append(x)

    with pytest.raises(ValueError, match="item 0 is bad"):
        parallel_map(item, range(20))
    assert len(done) < 19


def test_nested_use_inside_the_pool_runs_sequentially():
    def outer():
        return available_workers(), parallel_map(lambda x: x + 1, range(3))

    assert submit(outer).result() == (1, [1, 2, 3])
    assert available_workers() == WORKERS
