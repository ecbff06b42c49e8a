"""Thread settings for the two-core hot paths (PERF_NOTES.md).

One BLAS thread is faster for the small Nv×Nv products and the Lanczos
iterations, and idle BLAS threads spin and steal the second core. So BLAS
stays single-threaded and the parallelism comes from running independent
pieces (numba kernels with the GIL released, or BLAS calls) on a small
thread pool instead.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Iterable, TypeVar

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads", "parallel_map", "submit", "available_workers", "WORKERS"]

T = TypeVar("T")
WORKERS = 2
_local = threading.local()


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    # Inspecting the loaded BLAS libraries costs ~0.3 ms; do it once.
    return ThreadpoolController()


def blas_threads(n: int):
    """Context manager limiting BLAS to ``n`` threads."""
    return _controller().limit(limits=n, user_api="blas")


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="flowdash",
                              initializer=lambda: setattr(_local, "in_pool", True))


def available_workers() -> int:
    """Threads that a :func:`parallel_map` from here would spread over (1 inside the pool)."""
    return 1 if getattr(_local, "in_pool", False) else WORKERS


def parallel_map(func: Callable[..., T], items: Iterable) -> list[T]:
    """``[func(item) for item in items]``, on at most ``WORKERS`` threads: the caller and pool threads.

    The threads take the items in turn from a shared queue, the caller
    among them rather than waiting: when the pool is busy with other work
    (say a validation pass beside a training gradient), the items still
    share both cores. Called from inside a pool thread it runs
    sequentially, so nested use can never deadlock the pool.
    """
    items = list(items)
    if len(items) <= 1 or getattr(_local, "in_pool", False):
        return [func(item) for item in items]
    results: list = [None] * len(items)
    queue = iter(range(len(items)))
    lock = threading.Lock()
    failed = threading.Event()

    def work():
        try:
            while not failed.is_set():
                with lock:
                    i = next(queue, None)
                if i is None:
                    return
                results[i] = func(items[i])
        except BaseException:  # e.g. a signal handler's exception in the main thread
            failed.set()
            raise

    helpers = [_pool().submit(work) for _ in range(min(WORKERS, len(items)) - 1)]
    try:
        work()
    finally:
        for h in helpers:
            h.exception()  # wait: the items must be done, or abandoned, before this returns
    for h in helpers:
        h.result()
    return results


def submit(func: Callable[..., T], *args):
    """Run ``func(*args)`` on the pool; returns an object with ``result()``."""
    if getattr(_local, "in_pool", False):
        return _Done(func(*args))
    return _pool().submit(func, *args)


class _Done:
    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value
