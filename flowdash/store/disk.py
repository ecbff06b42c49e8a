"""The embedded backend: one folder, a diskcache (SQLite) database in it.

Layout: ``<folder>/data/`` holds the store (``cache.db`` plus one file per
value larger than 32 KB), ``<folder>/secret_key`` the server's key. The
folder is private to its user (0700; files 0600).

Plain data only: :class:`PlainDisk` stores bytes under text keys and refuses
to read anything else — a pickled value or key (diskcache's default for other
types) raises :class:`~flowdash.store.base.CorruptValue` instead of being
unpickled.

Fork safety (issue 8, "disk I/O error"): SQLite must not be used across
``fork()`` — a child that inherits a process's open database connections
also inherits SQLite's per-file lock bookkeeping and its mapping of the WAL
index (``-shm``), but not the POSIX locks behind them. Dash's
``DiskcacheManager`` (no longer used: jobs now run in ``python -m
flowdash.worker`` processes) forked a job process from a request thread
while the server held open connections; the child then read and wrote the
WAL without the locks it believed it held, and when the server that forked
it exited or restarted, the next process to open the store rebuilt the
``-shm`` under the child's feet, which SQLite reports as ``disk I/O error``.
Any process may still fork with the store open (Celery's prefork pool, a
script's ``multiprocessing``), so :class:`ForkSafeCache` closes every
connection of the process just before ``fork()`` (waiting for operations in
flight), and both sides reopen on next use.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import stat
import threading
import weakref
from pathlib import Path

import diskcache
from diskcache.core import DBNAME, MODE_BINARY, MODE_RAW

from .base import (CorruptValue, RunStore, StoreDamaged, StoreError, StoreFormatError, Tx,
                   Unreadable)

log = logging.getLogger("flowdash.store")

#: Held by every database operation in this process, and by ``fork()``.
_LOCK = threading.RLock()
#: Every open connection of the process (closed before a fork).
_CONNECTIONS: "weakref.WeakSet[_Connection]" = weakref.WeakSet()
#: Bumped at each fork: a connection from an older generation is closed.
_GENERATION = [0]
_HOOKS = []


class _Connection(sqlite3.Connection):
    """A connection that can be tracked by a WeakSet."""


def _before_fork():
    _LOCK.acquire()
    for con in list(_CONNECTIONS):
        with contextlib.suppress(Exception):
            con.close()
    _CONNECTIONS.clear()
    _GENERATION[0] += 1


def _after_fork_parent():
    _LOCK.release()


def _after_fork_child():
    _LOCK._at_fork_reinit()  # the forking thread held it; the child starts unlocked


def _register_fork_hooks():
    if not _HOOKS:
        _HOOKS.append(True)
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                            after_in_child=_after_fork_child)


class _PrivateDisk(diskcache.Disk):
    """Value files are created 0600 in 0700 folders."""

    def _write(self, full_path, iterator, mode, encoding=None):
        full_dir = os.path.dirname(full_path)
        for attempt in range(10):
            with contextlib.suppress(OSError):
                os.makedirs(full_dir, 0o700, exist_ok=True)
                for folder in (os.path.dirname(full_dir), full_dir):  # makedirs sets only the leaf
                    os.chmod(folder, 0o700)
            try:
                fd = os.open(full_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError:
                if attempt == 9:  # another process removed the folder meanwhile: retry
                    raise
                continue
            with open(fd, "w" + mode.replace("x", ""), encoding=encoding) as writer:
                size = 0
                for chunk in iterator:
                    size += len(chunk)
                    writer.write(chunk)
                return size


class PlainDisk(_PrivateDisk):
    """Bytes under text keys, and nothing else: never pickles, never unpickles."""

    def put(self, key):
        if type(key) is not str:
            raise TypeError(f"store keys are text, got {type(key).__name__}")
        return key, True

    def get(self, key, raw):
        if not raw:
            raise CorruptValue("a key in the store is a pickle; flowdash never unpickles")
        return key

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if type(value) is not bytes:
            raise TypeError(f"store values are bytes, got {type(value).__name__}")
        return super().store(value, read, key)

    def fetch(self, mode, filename, value, read):
        if mode not in (MODE_RAW, MODE_BINARY):
            return Unreadable("it is a pickle or text written by something else; flowdash "
                              "never unpickles")
        try:
            out = super().fetch(mode, filename, value, read)
        except OSError as exc:  # a value file that was removed or cannot be read
            return Unreadable(f"its file cannot be read: {exc.strerror}")
        return out if isinstance(out, bytes) else Unreadable(f"it is {type(out).__name__}")


class ForkSafeCache(diskcache.Cache):
    """A diskcache that is safe across ``fork()`` and never evicts.

    Connections are tracked and closed before every fork (module docstring);
    every operation holds the process's database lock so that a fork never
    happens in the middle of one. Runs, models and datasets are data, not a
    cache: eviction is off (diskcache's default culls past 1 GiB).
    """

    def __init__(self, directory, **settings):
        _register_fork_hooks()
        settings.setdefault("eviction_policy", "none")
        with _LOCK:
            super().__init__(str(directory), **settings)

    @property
    def _con(self):
        local = self._local
        generation = (os.getpid(), _GENERATION[0])
        if getattr(local, "generation", None) != generation:
            # closed before a fork (or inherited from the parent): never touch it again
            local.con = None
            local.generation = generation
        con = getattr(local, "con", None)
        if con is None:
            con = sqlite3.connect(os.path.join(self._directory, DBNAME), timeout=self._timeout,
                                  isolation_level=None, check_same_thread=False,
                                  factory=_Connection)
            _CONNECTIONS.add(con)
            local.con = con
            try:
                settings = con.execute("SELECT key, value FROM Settings").fetchall()
            except sqlite3.OperationalError:
                settings = []
            for key, value in settings:
                if key.startswith("sqlite_"):
                    self.reset(key, value, update=False)
        return con

    def close(self):
        with _LOCK:
            con = getattr(self._local, "con", None)
            self._local.con = None
            if con is not None:
                _CONNECTIONS.discard(con)
                con.close()

    @contextlib.contextmanager
    def transact(self, retry=False):
        with _LOCK, super().transact(retry):
            yield


def _locked(name):
    base = getattr(diskcache.Cache, name)

    @functools.wraps(base)
    def method(self, *args, **kwargs):
        with _LOCK:
            return base(self, *args, **kwargs)
    return method


for _name in ("get", "set", "add", "delete", "touch", "incr", "decr", "pop", "read", "expire",
              "evict", "clear", "cull", "check", "volume", "stats", "__contains__",
              "__getitem__", "__setitem__", "__delitem__", "__len__"):
    setattr(ForkSafeCache, _name, _locked(_name))


def make_private(path: Path) -> None:
    """Make a folder and everything in it private to its user (0700/0600).

    Done once per folder: afterwards the folder mode is 0700 and new files are
    created private.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode == 0o700:
        return
    for root, dirs, files in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(root, 0o700)
        for f in files:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, f), 0o600)


_DAMAGED = ("file is not a database", "database disk image is malformed",
            "file is encrypted", "disk i/o error")


def _damaged(exc, folder) -> StoreDamaged:
    return StoreDamaged(
        f"the run store at {folder} cannot be read: its database {folder}/data/{DBNAME} is "
        f"damaged (sqlite: {exc}). Stop every flowdash process that uses it, move the folder "
        "aside (e.g. `mv STORE STORE.damaged`) and start again, which creates an empty store, "
        "or restore the folder from a backup; `sqlite3 data/cache.db .recover` may rescue "
        "records from the damaged file.")


class DiskStore(RunStore):
    """The run store in a local folder (diskcache on SQLite); see the module docstring."""

    def __init__(self, location):
        folder = Path(os.fspath(location)).expanduser()
        self.path = str(location)
        self.folder = folder
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {folder}: {exc.strerror}") from None
        make_private(folder)
        old = folder / "runs" / DBNAME
        data = folder / "data"
        if old.exists() and not data.exists():
            raise StoreFormatError(
                f"the run store at {folder} was written by an older flowdash, whose values are "
                "pickles; this version never reads pickles (whoever can write the store could "
                "run code in the server). Convert it once with `python -m flowdash.store.migrate "
                f"{folder}` (it reads the old values with a reader that can only build plain "
                "data), or start with a new store (--store / FLOWDASH_STORE).")
        data.mkdir(mode=0o700, exist_ok=True)
        db = data / DBNAME
        with contextlib.suppress(FileExistsError):  # created 0600, so are its -wal and -shm
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            self.cache = ForkSafeCache(data, disk=PlainDisk)
            self._check_format(empty=True)
        except sqlite3.DatabaseError as exc:
            if any(m in str(exc).lower() for m in _DAMAGED):
                raise _damaged(exc, folder) from None
            raise

    @property
    def location(self) -> str:
        """The absolute folder: what another process (a worker started with
        another working directory, a Celery task) opens this store with."""
        return str(self.folder.resolve())

    # -- primitives ---------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self):
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if any(m in str(exc).lower() for m in _DAMAGED):
                raise _damaged(exc, self.folder) from None
            raise
        except diskcache.Timeout:
            raise StoreError(f"the run store at {self.folder} stayed locked by another process "
                             "for a minute; try again") from None

    def _get(self, key):
        with self._guard():
            return self.cache.get(key)

    def _mget(self, keys):
        with self._guard(), _LOCK:
            return [self.cache.get(k) for k in keys]

    def _transaction(self, fn):
        with self._guard(), self.cache.transact():
            tx = Tx(self.cache.get, lambda keys: [self.cache.get(k) for k in keys])
            result = fn(tx)
            for key, value in tx.writes.items():
                if value is None:
                    self.cache.delete(key)
                else:
                    self.cache.set(key, value)
        return result

    def _scan_run_ids(self):
        with self._guard(), _LOCK:
            rows = self.cache._con.execute(
                "SELECT key FROM Cache WHERE raw = 1 AND key LIKE 'run:%'").fetchall()
        return [key[4:] for (key,) in rows if isinstance(key, str)]

    def close(self) -> None:
        self.cache.close()

    def secret_key(self) -> str:
        """``<folder>/secret_key`` (0600), created once."""
        import secrets

        path = self.folder / "secret_key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        return path.read_text().strip()
