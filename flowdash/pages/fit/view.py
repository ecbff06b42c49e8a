"""Fit page logic: the form and the live view of a run (uses the store)."""
from __future__ import annotations

import time

import numpy as np
from dash import Patch

from flowdash import jobs
from flowdash.pages import theme
from flowdash.pages.fit import figures
from flowdash.store import ACTIVE_STATUSES, FINAL_STATUSES, process_alive

PARAMS = ("F", "F0", "D", "Fr", "C")
DEFAULT_LR = {"F": "0.005", "F0": "0.005", "D": "0.1", "Fr": "0.0005", "C": "1"}


def parse_snapshots(text) -> list[int]:
    """``"1, 6, 13, 50"`` -> [1, 6, 13, 50]."""
    out = []
    for part in str(text or "").replace(";", ",").split(","):
        part = part.strip()
        if part:
            try:
                v = int(part)
            except ValueError:
                raise ValueError(f"{part!r} is not a whole number") from None
            if v < 0:
                raise ValueError("epochs are ≥ 0")
            out.append(v)
    if not out:
        raise ValueError("list at least one epoch, e.g. 1, 6, 13, 50")
    return sorted(set(out))


def _num(text, typ, lo, hi=None):
    try:
        v = float(str(text).strip())
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None
    if not np.isfinite(v):
        raise ValueError("expected a finite number")
    if typ is int:
        if not v.is_integer():
            raise ValueError("expected a whole number")
        v = int(v)
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"must be ≥ {lo:g}" + (f" and ≤ {hi:g}" if hi is not None else ""))
    return v


def settings_from_fields(f: dict):
    """Fit settings and per-field errors from the form values.

    ``f`` keys: dataset, init_model, peq_override, optimizer, lr (dict param->text),
    alpha, params (list), epochs, batches, nv, snapshots, seed, pace, name.
    """
    errors, s = {}, {}
    for key, msg in (("dataset", "choose a dataset"), ("init_model", "choose a saved model")):
        if not f.get(key):
            errors[key] = msg
        s[key] = f.get(key)
    s["peq_override"] = f.get("peq_override") or None
    s["optimizer"] = f.get("optimizer") or "GD"
    params = [p for p in PARAMS if p in (f.get("params") or [])]
    if not params:
        errors["params"] = "choose at least one parameter"
    s["params_to_opt"] = params
    if s["optimizer"] == "GD":
        s["learning_rate"] = {}
        for p in params:
            try:
                s["learning_rate"][p] = _num((f.get("lr") or {}).get(p), float, 1e-12)
            except ValueError as exc:
                errors[f"lr-{p}"] = str(exc)
    else:
        try:
            s["learning_rate"] = {"alpha": _num(f.get("alpha"), float, 1e-12)}
        except ValueError as exc:
            errors["alpha"] = str(exc)
    for key, src, lo, hi in (("max_epochs", "epochs", 1, 100000),
                             ("mini_batch_number", "batches", 1, 10000),
                             ("seed", "seed", 0, 2**32 - 1)):
        try:
            s[key] = _num(f.get(src), int, lo, hi)
        except ValueError as exc:
            errors[src] = str(exc)
    if str(f.get("nv") or "").strip():
        try:
            s["Nv"] = _num(f.get("nv"), int, 2)
        except ValueError as exc:
            errors["nv"] = str(exc)
    else:
        s["Nv"] = None
    try:
        s["snapshot_epochs"] = parse_snapshots(f.get("snapshots"))
    except ValueError as exc:
        errors["snapshots"] = str(exc)
    try:
        s["pace"] = _num(f.get("pace") or 0, float, 0, jobs.MAX_PACE)
    except ValueError as exc:
        errors["pace"] = str(exc)
    s["name"] = (f.get("name") or "").strip() or None
    return (None if errors else s), errors


def fig3_preset(ground_truth: str | None):
    """Field values of the 2020 Fig. 3 fit (GD on F, lr 0.005, 50 epochs, Nv 64)."""
    return {"init_model": ground_truth, "peq_override": "cos_square", "optimizer": "GD",
            "lr": {**DEFAULT_LR, "F": "0.005"}, "params": ["F"], "epochs": "50",
            "batches": "1", "nv": "64", "snapshots": "1, 6, 13, 50"}


# ---------------------------------------------------------------------------
# live view
# ---------------------------------------------------------------------------
def curves(epochs):
    """Epoch numbers and NLLs summed over datasamples.

    A missing value (None, stored for a non-finite NLL) counts as NaN, so the
    epoch's sum is NaN and the curve shows a gap; ``val`` is None per epoch
    when the run has no validation set.
    """
    es = [e["epoch"] for e in epochs]
    train = [_total(e.get("nll_train")) for e in epochs]
    val = [_total(e.get("nll_val")) for e in epochs]
    return es, train, val


def _total(values):
    if values is None:
        return None
    total = float(np.sum(jobs.nll_array(values)))
    return total if np.isfinite(total) else None


def _truth(store, record):
    """(x, peq) of the dataset's ground truth, or None for real data."""
    ds = store.get_dataset((record.get("refs") or {}).get("dataset"))
    spec = ds and ds["meta"].get("model_spec")
    if not spec:
        return None
    try:
        model = jobs.build_model(spec)
    except (ValueError, KeyError):
        return None
    return np.asarray(model.grid.x), np.asarray(model.peq)


def side_figures(store, record, epochs):
    """The potential figure and the D/p0/rates figure of a run."""
    result = store.get_result(record["id"]) or {}
    if "x" not in result:
        return (theme.message_figure("Waiting for the first epoch…", 400),
                theme.message_figure("", 200))
    x = np.asarray(result["x"])
    wanted = set(record["settings"].get("snapshot_epochs") or [])
    snaps = [(e["epoch"], e["snapshot"]["peq"]) for e in epochs
             if e.get("snapshot") and e["epoch"] in wanted]
    latest = store.get_latest(record["id"])
    last = (latest["epoch"], latest["peq"]) if latest and latest["epoch"] not in wanted else None
    pot = figures.potential_figure(x, snaps, _truth(store, record), last)
    fitted = set(record["settings"].get("params_to_opt") or [])
    D = [e["D"] for e in epochs] if "D" in fitted else None
    p0 = (latest["epoch"], latest["p0"]) if latest and latest.get("p0") is not None else None
    fr = (latest["epoch"], latest["fr"]) if latest and latest.get("fr") is not None else None
    par = figures.params_figure([e["epoch"] for e in epochs], D, x, p0, fr)
    return pot, par


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
    if record["status"] in ACTIVE_STATUSES and first and last and done > 0:
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


def poll(store, run_id, cursor):
    """Everything the live view needs since ``cursor`` (None = rebuild).

    Returns a dict: ``record``, ``nll`` (a full figure, a ``Patch`` or None),
    ``side`` ((potential, params) figures or None), ``progress``, ``cursor``,
    ``final`` (nothing more will come).
    """
    record = store.get_run(run_id) if run_id else None
    if record is None or record["kind"] != "fit":
        return None
    if record["status"] in ACTIVE_STATUSES and not process_alive(record):
        record = store.finish_run(run_id, "interrupted", message="interrupted",
                                  error="the worker process is gone")
    fresh = not cursor or cursor.get("run_id") != run_id
    start = 0 if fresh else cursor["n"]
    new = store.read_epochs(run_id, start)
    final = record["status"] in FINAL_STATUSES and store.n_epochs(run_id) == start + len(new)
    out = {"record": record, "final": final, "nll": None, "side": None}
    if fresh:
        epochs = new
        es, tr, va = curves(epochs)
        out["nll"] = figures.nll_figure(es, tr, va)
        best = figures.best_epoch(es, va)
        cursor = {"run_id": run_id, "n": len(epochs),
                  "base": [figures.first_finite(tr), figures.first_finite(va)],
                  "best": list(best)}
    elif new:
        es, tr, va = curves(new)
        base_t, base_v = cursor["base"]
        base_t = figures.first_finite([base_t] + tr)
        base_v = figures.first_finite([base_v] + va)
        patch = Patch()
        patch["data"][0]["x"].extend(es)
        patch["data"][0]["y"].extend(figures.shifted(tr, base_t))
        patch["data"][1]["x"].extend(es)
        patch["data"][1]["y"].extend(figures.shifted(va, base_v))
        best_e, best_v = cursor["best"]
        for e, v in zip(es, va):
            if figures._ok(v) and (best_v is None or v < best_v):
                best_e, best_v = e, v
        if best_e is not None and base_v is not None:
            patch["data"][2]["x"] = [best_e]
            patch["data"][2]["y"] = [best_v - base_v]
            patch["layout"]["shapes"] = figures.min_marker_shape(best_e)
        out["nll"] = patch
        cursor = {"run_id": run_id, "n": cursor["n"] + len(new), "base": [base_t, base_v],
                  "best": [best_e, best_v]}
    if fresh or new:
        out["side"] = side_figures(store, record, store.read_epochs(run_id))
    n = cursor["n"]
    first = store.read_epochs(run_id, 0)[:1] if n else []
    last = store.read_epochs(run_id, n - 1)[:1] if n else []
    out["progress"] = progress(record, first[0] if first else None, last[0] if last else None)
    out["cursor"] = cursor
    return out
