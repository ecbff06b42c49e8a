"""A 50,000-epoch Example 1 fit in the run store: its size, its live view, its analysis.

    python bench/long_fit.py                   # 50,000 epochs, a temporary store
    python bench/long_fit.py --epochs 5000 --keep DIR

Writes what the fit job writes for an Example 1 fit (N = 1793, GD on F,
recorded models on the core's RecordingSchedule, display snapshots at 1, 6,
13, 50 and the last epoch, the latest parameters every epoch, a checkpoint
every 120 epochs: 30 s at 0.25 s per epoch) through the store API, for two
fits (the halves of a model selection), with synthetic numbers. Then:

* the store: bytes of each part of one run (``run_bytes``) and of the folder;
* the Fit page's live view (``fit.view.poll``): the first view of a run at
  its last epoch, and an incremental poll of 10 new epochs;
* the Model selection page's analysis (``analysis.Analyst``) of the two
  paths: the first analysis (reads 2 × 1103 recorded models), a poll with
  nothing new, a new threshold, and one new recorded model.

The numbers are indicative (a shared 2-core machine); targets are in the
README (store < 100 MB per 50,000-epoch Example 1 fit).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REFERENCE = REPO.parent / "shared" / "reference"


def folder_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def write_fit(store, run_id, model, epochs: int, schedule: set, snaps: set, checkpoint: bytes,
              rng) -> float:
    """Append ``epochs + 1`` epoch records as the fit job does; returns seconds per epoch."""
    peq0 = np.asarray(model.peq, float)
    w = np.asarray(model.grid.w)
    t0 = time.perf_counter()
    for e in range(epochs + 1):
        peq = peq0 * (1 + 1e-3 * np.sin(e / 50 + np.arange(peq0.shape[1]) / 40))
        peq = peq / (peq @ w)[:, None]
        entry = {"epoch": e, "nll_train": [-1478.0 - 1e-3 * e + rng.normal() * 1e-6],
                 "nll_val": [-1460.0 - 5e-4 * e], "elapsed": 0.25 * e, "time": time.time(),
                 "D": [10.0]}
        params = {"peq": peq, "p0": None, "D": np.array([10.0]), "fr": None}
        if e in snaps:
            entry["snapshot"] = params
        if e in schedule:
            entry["model"] = params
        store.append_epoch(run_id, entry, expected=e)
        store.set_latest(run_id, dict(params, epoch=e))
        if e % 120 == 0:
            store.set_checkpoint(run_id, checkpoint)
    return (time.perf_counter() - t0) / (epochs + 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50_000)
    parser.add_argument("--keep", default=None, help="store folder to write (kept)")
    args = parser.parse_args(argv)

    from flowdash import analysis, jobs
    from flowdash.core.fitting import FitOptions, RecordingSchedule, fit
    from flowdash.core.spikedata import load_reference_set
    from flowdash.pages.fit import view as fit_view
    from flowdash.store import open_store

    case = json.loads((REFERENCE / "example1.json").read_text())
    spec = dict(case["init_model"], grid=case["grid"], boundary_mode=case["boundary_mode"])
    folder = Path(args.keep or tempfile.mkdtemp(prefix="flowdash-long-"))
    store = open_store(folder / "store")
    store.save_model("ex1-start", spec)
    model = jobs.build_model(spec)
    # a real checkpoint of Example 1's size (one epoch of the real fit)
    train = load_reference_set(REFERENCE / "example1.npz", "train")
    result = fit(model, train, None, FitOptions(optimizer="GD", max_epochs=1, params_to_opt=("F",),
                                                learning_rate={"F": 0.005}, Nv=64))
    checkpoint = result.checkpoint.to_bytes()
    schedule = set(RecordingSchedule().epochs(args.epochs).tolist())
    snaps = {0, 1, 6, 13, 50, args.epochs}
    settings = {"dataset": "ex1", "init_model": "ex1-start", "optimizer": "GD",
                "params_to_opt": ["F"], "learning_rate": {"F": 0.005}, "max_epochs": args.epochs,
                "mini_batch_number": 1, "Nv": 64, "seed": 0, "pace": 0.0, "peq_override": None,
                "snapshot_epochs": [1, 6, 13, 50], "record_models": True, "line_search": None,
                "half": None}
    rng = np.random.default_rng(0)
    runs = []
    for half in (1, 2):
        rid = store.create_run("fit", f"long fit {half}", settings, refs={"model_spec": spec})
        store.set_result(rid, {"x": model.grid.x.tolist(), "init": jobs.model_arrays(model),
                               "truth": None})
        per = write_fit(store, rid, model, args.epochs, schedule, snaps, checkpoint, rng)
        runs.append(rid)
        print(f"fit {half}: {args.epochs:,} epochs appended, {per * 1e3:.2f} ms per epoch "
              f"(append, latest, checkpoint every 120)")
    size = store.run_bytes(runs[0])
    print(f"one run's values: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in size.items())
          + f"; total {sum(size.values()) / 1e6:.1f} MB; {len(schedule)} recorded models")
    print(f"store folder with both fits: {folder_bytes(folder / 'store') / 1e6:.1f} MB")

    # the Fit page's live view
    record = store.get_run(runs[0])
    t0 = time.perf_counter()
    out = fit_view.poll(store, runs[0], None, fit_view.OVERLAY)
    fresh = time.perf_counter() - t0
    n_drawn = len(out["nll"].data[0].x)
    t0 = time.perf_counter()
    paper = fit_view.poll(store, runs[0], None, fit_view.PAPER)
    fresh_paper = time.perf_counter() - t0
    # an incremental poll: 10 new epochs after the view was drawn
    cursor = out["cursor"]
    for e in range(args.epochs + 1, args.epochs + 11):
        store.append_epoch(runs[0], {"epoch": e, "nll_train": [-1500.0], "nll_val": [-1480.0],
                                     "elapsed": 0.25 * e, "time": time.time(), "D": [10.0]},
                           expected=e)
        store.set_latest(runs[0], {"peq": model.peq, "p0": None, "D": [10.0], "fr": None,
                                   "epoch": e})
    t0 = time.perf_counter()
    fit_view.poll(store, runs[0], cursor, fit_view.OVERLAY)
    incremental = time.perf_counter() - t0
    print(f"Fit page: first view {fresh * 1e3:.0f} ms overlay ({n_drawn} points drawn of "
          f"{args.epochs + 1:,}), {fresh_paper * 1e3:.0f} ms paper layout; a poll of 10 new "
          f"epochs {incremental * 1e3:.0f} ms (a point every "
          f"{fit_view.display_stride(record)} epochs)")

    # the Model selection page's analysis (of two finished fits)
    for rid in runs:
        jobs.finish(store, rid, "done", message=f"{args.epochs} epochs")
    sel = store.create_selection("long", {"halves": "paired"}, runs)
    analyst = analysis.Analyst()
    for what, values in (("first analysis", {}), ("nothing new", {}),
                         ("new threshold", {"JS_thres": "0.001"}),
                         ("new stride", {"JS_thres": "0.001", "FC_stride": "3"})):
        t0 = time.perf_counter()
        a = analyst.analyse(store, sel, values)
        print(f"analysis, {what}: {(time.perf_counter() - t0) * 1e3:.0f} ms "
              f"({a.status_text}; selected epochs {a.result.selected_epochs})")
    store.close()
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
