"""The shared backend: a Redis database (``redis://host:port/db``).

Web servers and workers on different machines share runs, datasets and
models through it. Every key is prefixed ``flowdash:``; values are the same
bytes as in the folder backend (JSON text or npz). Transactions are
optimistic: the keys a transaction reads are WATCHed, its writes go in one
MULTI/EXEC, and it is retried from the start if another client changed a
watched key meanwhile — so a transaction sees and writes a consistent state
exactly as the folder backend's ``transact()`` does (first final status wins,
queued → running only if still queued, saving never overwrites, an active
run cannot be deleted, a cancel either sees the dataset or prevents it).
"""
from __future__ import annotations

import functools
import os
import secrets
import time

from .base import RunStore, StoreError, Tx

PREFIX = "flowdash:"
#: How long an operation keeps trying while Redis is away (s, about): a restart, and
#: the seconds Redis then spends loading its data, must not fail a running fit.
RETRY_SECONDS = 10.0


@functools.lru_cache(maxsize=16)
def _client(url: str, pid: int):
    """One connection pool per URL and process (redis-py pools are not shared
    across fork; the pid in the key gives a child its own)."""
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30,
                                health_check_interval=30)


class RedisStore(RunStore):
    """The run store in Redis; see the module docstring."""

    def __init__(self, location: str):
        import redis

        self.path = str(location)
        self._errors = (redis.ConnectionError, redis.TimeoutError)
        self._watch_error = redis.WatchError
        try:
            self.r = _client(self.path, os.getpid())
            self.r.ping()
        except self._errors as exc:
            raise self._unreachable(exc) from None
        except (ValueError, redis.RedisError) as exc:
            raise StoreError(f"cannot use the Redis store {self.path}: {exc}") from None
        self._check_format(empty=False)

    def _unreachable(self, exc) -> StoreError:
        return StoreError(f"cannot reach the Redis store at {self.path} ({exc}); start "
                          "redis-server there or correct --store / FLOWDASH_STORE")

    # -- primitives ---------------------------------------------------------
    def _retrying(self, operation):
        """``operation()``, tried again with backoff while Redis is unreachable or
        still loading its data, for about :data:`RETRY_SECONDS`; then a StoreError."""
        deadline, delay = time.monotonic() + RETRY_SECONDS, 0.05
        while True:
            try:
                return operation()
            except self._errors as exc:
                if time.monotonic() + delay > deadline:
                    raise self._unreachable(exc) from None
                time.sleep(delay)
                delay = min(2 * delay, 0.5)

    def _get(self, key):
        return self._retrying(lambda: self.r.get(PREFIX + key))

    def _mget(self, keys):
        if not keys:
            return []
        return self._retrying(lambda: self.r.mget([PREFIX + k for k in keys]))

    def _scan_run_ids(self):
        start = len(PREFIX) + len("run:")
        return self._retrying(lambda: [k[start:].decode(errors="replace")
                                       for k in self.r.scan_iter(match=PREFIX + "run:*", count=1000)])

    def _transaction(self, fn):
        """``fn(tx)`` in one optimistic transaction; started again from its reads when
        another client changed them, or when Redis went away (its WATCH went too)."""
        return self._retrying(lambda: self._transaction_once(fn))

    def _transaction_once(self, fn):
        while True:
            with self.r.pipeline(transaction=True) as pipe:
                def read(key):
                    pipe.watch(PREFIX + key)
                    return pipe.get(PREFIX + key)

                def read_many(keys):
                    pipe.watch(*[PREFIX + k for k in keys])
                    return pipe.mget([PREFIX + k for k in keys])

                tx = Tx(read, read_many)
                result = fn(tx)
                if not tx.writes:
                    return result
                pipe.multi()
                for key, value in tx.writes.items():
                    if value is None:
                        pipe.delete(PREFIX + key)
                    else:
                        pipe.set(PREFIX + key, value)
                try:
                    pipe.execute()
                except self._watch_error:
                    continue  # another client changed what we read: start again
                return result

    def secret_key(self) -> str:
        key = PREFIX + "secret_key"
        self._retrying(lambda: self.r.set(key, secrets.token_hex(32), nx=True))
        return self._retrying(lambda: self.r.get(key)).decode()
