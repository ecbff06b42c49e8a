"""Convert a run store written by an older flowdash (pickled values) once.

    python -m flowdash.store.migrate STORE_FOLDER

Older versions kept every value as a pickle in ``STORE/runs``. This reads
them with an unpickler that can only build plain data (dicts, lists, str,
bytes, numbers, bool, None: it refuses every class and function, so a
tampered value cannot run code), writes them in the current layout to
``STORE/data`` and renames the old folder to ``STORE/runs.pickled-old``
(delete it when the new store works). Values it cannot read are reported and
left out.
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
import sqlite3
import sys
from pathlib import Path

from diskcache.core import MODE_BINARY, MODE_PICKLE, MODE_RAW, MODE_TEXT

from .base import dumps


class PlainUnpickler(pickle.Unpickler):
    """Builds plain data only: any class or function reference is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (plain data only)")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused a persistent id (plain data only)")


def plain_loads(blob: bytes):
    return PlainUnpickler(io.BytesIO(blob)).load()


def read_old(folder: Path):
    """``(values, problems)`` of an old ``runs`` diskcache folder, read safely."""
    con = sqlite3.connect(f"file:{folder / 'cache.db'}?mode=ro", uri=True)
    values, problems = {}, []
    for key, raw, mode, filename, value in con.execute(
            "SELECT key, raw, mode, filename, value FROM Cache"):
        if not raw or not isinstance(key, str):
            problems.append(f"a pickled key (skipped): {bytes(key)[:40]!r}")
            continue
        try:
            if mode == MODE_RAW:
                out = bytes(value) if isinstance(value, (bytes, memoryview)) else value
            elif mode in (MODE_BINARY, MODE_TEXT, MODE_PICKLE) and filename:
                data = (folder / filename).read_bytes()
                out = plain_loads(data) if mode == MODE_PICKLE else (
                    data.decode() if mode == MODE_TEXT else data)
            elif mode == MODE_PICKLE:
                out = plain_loads(bytes(value))
            else:
                raise ValueError(f"unknown mode {mode}")
        except (pickle.UnpicklingError, ValueError, OSError, EOFError, TypeError) as exc:
            problems.append(f"{key}: {exc}")
            continue
        values[key] = out
    con.close()
    return values, problems


def migrate(store_folder) -> list[str]:
    """Convert ``store_folder``; returns the problems (values left out)."""
    from .disk import DiskStore

    folder = Path(store_folder)
    old = folder / "runs"
    if not (old / "cache.db").exists():
        raise SystemExit(f"{folder} has no old store ({old}/cache.db)")
    if (folder / "data").exists():
        raise SystemExit(f"{folder}/data exists already: this store was converted")
    values, problems = read_old(old)
    (folder / "data").mkdir(mode=0o700)
    store = DiskStore(folder)
    index = [r for r in values.get("runs:index", []) if isinstance(values.get(f"run:{r}"), dict)]

    def write_runs(tx):
        for rid in index:
            tx.set(f"run:{rid}", dumps(values[f"run:{rid}"]))
            tx.set(f"nepochs:{rid}", dumps(0))   # the run index is built from the records
    store._transaction(write_runs)
    for rid in index:
        for k in range(int(values.get(f"nepochs:{rid}", 0) or 0)):
            entry = values.get(f"epochs:{rid}:{k}")
            if not isinstance(entry, dict):
                problems.append(f"run {rid}: epoch {k} missing; later epochs left out")
                break
            store.append_epoch(rid, entry, expected=k)
        for part, setter in (("latest", store.set_latest), ("result", store.set_result)):
            if isinstance(values.get(f"{part}:{rid}"), dict):
                try:
                    setter(rid, values[f"{part}:{rid}"])
                except (TypeError, ValueError) as exc:
                    problems.append(f"run {rid}: {part}: {exc}")
        if f"cancel:{rid}" in values:
            store._transaction(lambda tx: tx.set(f"cancel:{rid}", dumps(1.0)))
    for key, value in values.items():
        kind, _, name = key.partition(":")
        try:
            if kind == "models" and isinstance(value, dict):
                store._save_named("model", name, {f"model:{name}": dumps(value)}, True)
            elif kind == "datasets" and isinstance(value, dict):
                store.save_dataset(name, value.get("npz") or [], value.get("meta") or {},
                                   latent=values.get(f"latent:{name}"), overwrite=True)
        except (TypeError, ValueError) as exc:
            problems.append(f"{key}: {exc}")
    store.close()
    os.rename(old, folder / "runs.pickled-old")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", help="the store folder (--store of the dashboard)")
    args = parser.parse_args(argv)
    problems = migrate(args.store)
    for p in problems:
        print("left out:", p, file=sys.stderr)
    print(f"converted {args.store}; the old values are in {args.store}/runs.pickled-old "
          "(delete it when the new store works)")


if __name__ == "__main__":
    main()
