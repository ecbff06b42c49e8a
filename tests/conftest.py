"""Session set-up shared by every test module."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _kernels_in_numbas_cache():
    """Compile every job kind's kernels into numba's on-disk cache once, in a child
    process, before any test starts workers. A fresh checkout (CI) has no cache: workers
    started together would each compile for tens of seconds, and the tests that wait for
    warm workers would be timing the compiler. With the cache in place this takes ~2 s."""
    subprocess.run([sys.executable, "-c", "from flowdash.jobs import kinds; kinds.warm_all()"],
                   cwd=REPO, check=False, timeout=900)
