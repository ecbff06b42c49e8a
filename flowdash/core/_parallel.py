"""Thread settings for the two-core hot paths (PERF_NOTES.md).

One BLAS thread is faster for the small Nv×Nv products and the Lanczos
iterations; the large gradient sums use two. The numba kernels release the
GIL, so independent passes run on a small thread pool instead.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads", "pool"]


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    # Inspecting the loaded BLAS libraries costs ~0.3 ms; do it once.
    return ThreadpoolController()


def blas_threads(n: int):
    """Context manager limiting BLAS to ``n`` threads."""
    return _controller().limit(limits=n, user_api="blas")


@lru_cache(maxsize=1)
def pool() -> ThreadPoolExecutor:
    """Process-wide pool for passes that run beside the main thread."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="flowdash")
