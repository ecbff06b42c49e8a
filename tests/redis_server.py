"""A real ``redis-server`` for tests: free port, temporary directory, no mocks.

``redis_url(tmp_dir)`` is a context manager yielding ``redis://127.0.0.1:PORT/0``;
the server stops at exit. Tests skip (with the reason) only when the binary is
missing: install Debian's ``redis-server`` package.
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time

import pytest

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if shutil.os.path.exists("/usr/bin/redis-server") else None)
SKIP_REASON = ("redis-server is not installed (apt-get install redis-server); the Redis "
               "backend tests need a real server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_url(tmp_dir):
    """Start ``redis-server`` on a free loopback port; yield its URL."""
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    import redis

    port = free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(tmp_dir), "--save", "", "--appendonly", "no",
                             "--protected-mode", "yes", "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.time() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
