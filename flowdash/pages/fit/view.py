"""Fit page logic: the form and the live view of a run.

Unlike ``figures.py`` this module reads the run store and builds ``Patch``
updates (so it imports dash); it has no callbacks and is tested directly.
"""
from __future__ import annotations

import time

import numpy as np
from dash import Patch

from flowdash import jobs
from flowdash import settings
from flowdash.core.fitting import FITTABLE
from flowdash.pages import theme
from flowdash.pages.fit import figures
from flowdash.store import ACTIVE_STATUSES, FINAL_STATUSES

PARAMS = FITTABLE
DEFAULT_LR = {"F": "0.005", "F0": "0.005", "D": "0.1", "Fr": "0.0005", "C": "1"}
#: setting key of the job layer -> form field of the page
FIELD_OF = {"dataset": "dataset", "init_model": "init_model", "params_to_opt": "params",
            "max_epochs": "epochs", "mini_batch_number": "batches", "Nv": "nv",
            "snapshot_epochs": "snapshots", "seed": "seed", "pace": "pace", "name": "name",
            "learning_rate:alpha": "alpha",
            **{f"learning_rate:{p}": f"lr-{p}" for p in PARAMS}}


def values_from_fields(f: dict) -> dict:
    """The job layer's fit values from the form's fields.

    ``f`` keys: dataset, init_model, peq_override, optimizer, lr (dict param->text),
    alpha, params (list), epochs, batches, nv, snapshots, seed, pace.
    """
    adam = f.get("optimizer") == "ADAM"
    return {"dataset": f.get("dataset"), "init_model": f.get("init_model"),
            "peq_override": f.get("peq_override") or None, "optimizer": f.get("optimizer"),
            "params_to_opt": f.get("params") or [],
            "learning_rate": {"alpha": f.get("alpha")} if adam else dict(f.get("lr") or {}),
            "max_epochs": f.get("epochs"), "mini_batch_number": f.get("batches"),
            "Nv": f.get("nv"), "snapshot_epochs": f.get("snapshots") or "",
            "seed": f.get("seed"), "pace": f.get("pace")}


def start(store, f: dict):
    """Queue a fit from the form; returns ``(run_id or None, {field: message}, alert)``.

    Errors of a field go to the field; others (the core's options) to the alert.
    """
    try:
        run_id = jobs.submit(store, "fit", values_from_fields(f), name=f.get("name"))
    except settings.SettingsError as exc:
        by_field = {FIELD_OF[k]: m for k, m in exc.errors.items() if k in FIELD_OF}
        other = [m for k, m in exc.errors.items() if k not in FIELD_OF]
        return None, by_field, " ".join(other) or "Fix the fields marked in red."
    return run_id, {}, None


def fig3_preset(ground_truth: str | None):
    """Field values of the 2020 Fig. 3 fit (GD on F, lr 0.005, 50 epochs, Nv 64)."""
    return {"init_model": ground_truth, "peq_override": "cos_square", "optimizer": "GD",
            "lr": {**DEFAULT_LR, "F": "0.005"}, "params": ["F"], "epochs": "50",
            "batches": "1", "nv": "64", "snapshots": "1, 6, 13, 50"}


# ---------------------------------------------------------------------------
# live view
# ---------------------------------------------------------------------------
#: Most epochs drawn when a run's curves are drawn whole: the store decimates a
#: longer fit (``read_columns(max_points=)``: the first and last epochs, the
#: minima of the NLLs and evenly spaced epochs); live updates add every epoch.
MAX_POINTS = 5000


def curves(cols):
    """Epoch numbers and NLLs summed over datasamples, from the store's columns
    (:meth:`RunStore.read_columns`).

    A missing value (NaN: a non-finite NLL was stored as None) makes the
    epoch's sum missing (None), so the curve shows a gap; ``val`` is None per
    epoch when the run has no validation set.
    """
    es = np.asarray(cols["epoch"]).tolist()
    return es, _totals(cols["nll_train"], len(es)), _totals(cols["nll_val"], len(es))


def _totals(matrix, n):
    if matrix is None or not np.shape(matrix)[-1]:
        return [None] * n
    return [float(v) if np.isfinite(v) else None for v in np.asarray(matrix).sum(axis=1)]


def _row(cols, i) -> dict:
    """Epoch, elapsed s and Unix time of row ``i`` of the columns (JSON-able)."""
    def num(v):
        return float(v) if np.isfinite(v) else 0.0
    return {"epoch": int(cols["epoch"][i]), "elapsed": num(cols["elapsed"][i]),
            "time": num(cols["time"][i])}


def _truth(store, record, result):
    """(x, peq) of the dataset's ground truth, or None for real data."""
    truth = result.get("truth") if "truth" in result else jobs.truth_arrays(
        (record["refs"].get("dataset_meta")
         or store.get_dataset_meta(record["refs"].get("dataset"))))
    return None if truth is None else (np.asarray(truth["x"]), np.asarray(truth["peq"]))


def snapshots(store, record) -> list:
    """(epoch, peq) at the run's snapshot epochs that have been recorded (epoch
    record k is epoch k; the store keeps them as float32 display copies)."""
    wanted = set(record["settings"].get("snapshot_epochs") or [])
    out = []
    for k in store.snapshot_epochs(record["id"]):
        snap = store.read_snapshot(record["id"], k) if k in wanted else None
        if snap and snap.get("peq") is not None:
            out.append((k, snap["peq"]))
    return out


def potential(store, record, snaps, result=None):
    """The potential figure from the snapshots (:func:`snapshots`) of a run."""
    result = result if result is not None else (store.get_result(record["id"]) or {})
    if "x" not in result:
        return theme.message_figure("Waiting for the first epoch…", 400)
    wanted = set(record["settings"].get("snapshot_epochs") or [])
    latest = store.get_latest(record["id"])
    last = (latest["epoch"], latest["peq"]) if latest and latest["epoch"] not in wanted else None
    return figures.potential_figure(np.asarray(result["x"]), snaps,
                                    _truth(store, record, result), last)


def side_figures(store, record, cols):
    """The potential figure and the D/p0/rates figure of a run (its epochs' columns)."""
    result = store.get_result(record["id"]) or {}
    if "x" not in result:
        return (theme.message_figure("Waiting for the first epoch…", 400),
                theme.message_figure("", 200))
    pot = potential(store, record, snapshots(store, record), result)
    latest = store.get_latest(record["id"])
    fitted = set(record["settings"].get("params_to_opt") or [])
    D = np.asarray(cols["D"]).tolist() if "D" in fitted else None
    p0 = (latest["epoch"], latest["p0"]) if latest and latest.get("p0") is not None else None
    fr = (latest["epoch"], latest["fr"]) if latest and latest.get("fr") is not None else None
    par = figures.params_figure(np.asarray(cols["epoch"]).tolist(), D, np.asarray(result["x"]),
                               p0, fr)
    return pot, par


def params_patch(record, cols, latest) -> Patch:
    """Extend the D traces by the new epochs' columns and replace p0 and the
    rates (trace order of :func:`figures.params_figure`)."""
    patch, i = Patch(), 0
    if "D" in (record["settings"].get("params_to_opt") or []):
        D = np.asarray(cols["D"], float)
        for k in range(D.shape[1]):
            patch["data"][k]["x"].extend(np.asarray(cols["epoch"]).tolist())
            patch["data"][k]["y"].extend(D[:, k].tolist())
        i = D.shape[1]
    if latest and latest.get("p0") is not None:
        for k, row in enumerate(np.atleast_2d(latest["p0"])):
            patch["data"][i + k]["y"] = list(row)
            patch["data"][i + k]["name"] = f"p0 (epoch {latest['epoch']})"
        i += np.atleast_2d(latest["p0"]).shape[0]
    if latest and latest.get("fr") is not None:
        arr = np.asarray(latest["fr"], float)
        arr = arr.reshape((-1,) + arr.shape[-2:])
        for n in range(arr.shape[2]):
            patch["data"][i + n]["y"] = arr[0, :, n].tolist()
            patch["data"][i + n]["name"] = f"neuron {n + 1} (epoch {latest['epoch']})"
    return patch


def progress(record, first=None, last=None):
    """(percent, bar label, text) of a run from its first and last epoch records."""
    E = int(record["settings"].get("max_epochs") or 1)
    done = last["epoch"] if last else 0
    if last:
        elapsed = last["elapsed"]
        if record["status"] in ACTIVE_STATUSES:
            elapsed += max(0.0, time.time() - last.get("time", time.time()))
    elif record.get("started"):
        elapsed = (record.get("finished") or time.time()) - record["started"]
    else:
        elapsed = 0.0
    text = f"epoch {done} of {E} · elapsed {fmt_seconds(elapsed)}"
    if record["status"] == "queued":
        text = record.get("message") or "queued"   # its place in line (jobs.observe)
    elif record["status"] in ACTIVE_STATUSES and first and last and done > 0:
        per = (last["elapsed"] - first["elapsed"]) / done
        text += f" · about {fmt_seconds(per * (E - done))} left"
    elif record["status"] in FINAL_STATUSES:
        text += f" · {record['status']}"
        if record.get("error"):
            text += f": {record['error']}"
    return 100.0 * done / E, f"{done}/{E}", text


def fmt_seconds(s: float) -> str:
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _nll_patch(new_curves, cursor):
    """Extend the NLL curves by the new epochs (:func:`curves`); returns the patch
    and the cursor's new baseline and best epoch."""
    es, tr, va = new_curves
    base_t = figures.first_finite([cursor["base"][0]] + tr)
    base_v = figures.first_finite([cursor["base"][1]] + va)
    patch = Patch()
    patch["data"][0]["x"].extend(es)
    patch["data"][0]["y"].extend(figures.shifted(tr, base_t))
    patch["data"][1]["x"].extend(es)
    patch["data"][1]["y"].extend(figures.shifted(va, base_v))
    best_e, best_v = cursor["best"]
    for e, v in zip(es, va):
        if v is not None and (best_v is None or v < best_v):
            best_e, best_v = e, v
    if best_e is not None and base_v is not None:
        patch["data"][2]["x"] = [best_e]
        patch["data"][2]["y"] = [best_v - base_v]
        patch["layout"]["shapes"] = figures.min_marker_shape(best_e)
    return patch, dict(cursor, base=[base_t, base_v], best=[best_e, best_v])


#: How often the page polls a run, ms: often until its first epoch shows (a fit's
#: first epoch lands a fraction of a second after Start), then at the usual pace.
POLL_FIRST_MS, POLL_MS = 150, 500


def poll_interval(out: dict) -> int:
    """The polling period for a run as :func:`poll` left it."""
    waiting = out["record"]["status"] in ACTIVE_STATUSES and not out["cursor"]["n"]
    return POLL_FIRST_MS if waiting else POLL_MS


def poll(store, run_id, cursor):
    """Everything the live view needs since ``cursor`` (None = rebuild).

    Reads the NLL columns of the new epochs only (``read_columns`` from the
    cursor: one or two chunks), plus single keys (the snapshots, the latest
    parameters, the result). Epoch record k is epoch k. Returns a dict:
    ``record``, ``nll`` (a full figure, a ``Patch`` or None), ``side``
    ((potential, params) figures or Patches, or None), ``progress``,
    ``cursor`` (JSON: ``n`` epochs shown, the curves' ``base`` and ``best``,
    the ``first`` and ``last`` epoch's times), ``final`` (nothing more will come).
    """
    record = jobs.observe(store, run_id)   # the job layer says what became of it
    if record is None or record["kind"] != "fit":
        return None
    fresh = not cursor or cursor.get("run_id") != run_id or not cursor["n"] \
        or "last" not in cursor
    cols = store.read_columns(run_id, 0 if fresh else cursor["n"],
                              max_points=MAX_POINTS if fresh else None)
    new = curves(cols)
    out = {"record": record, "nll": None, "side": None}
    if fresh:
        es, tr, va = new
        out["nll"] = figures.nll_figure(es, tr, va)
        out["side"] = side_figures(store, record, cols)
        cursor = {"run_id": run_id, "n": cols["n_epochs"] if es else 0,
                  "best": list(figures.best_epoch(es, va)),
                  "base": [figures.first_finite(tr), figures.first_finite(va)],
                  "first": _row(cols, 0) if es else None,
                  "last": _row(cols, -1) if es else None}
    elif new[0]:
        out["nll"], cursor = _nll_patch(new, cursor)
        cursor = dict(cursor, n=cursor["n"] + len(new[0]), last=_row(cols, -1))
        out["side"] = (potential(store, record, snapshots(store, record)),
                       params_patch(record, cols, store.get_latest(run_id)))
    out["final"] = record["status"] in FINAL_STATUSES and cols["n_epochs"] == cursor["n"]
    out["progress"] = progress(record, cursor["first"], cursor["last"])
    out["cursor"] = cursor
    return out
