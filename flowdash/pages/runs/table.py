"""Rows of the runs table and a run's settings as a readable table (plain data, no dash)."""
from __future__ import annotations

import time

from flowdash.pages.fit.view import fmt_seconds
from flowdash.settings import format_number

#: setting key -> label, in the order shown (other keys follow under their own name).
FIT_LABELS = {"dataset": "Dataset", "init_model": "Initial model", "peq_override": "Initial peq",
              "p0_override": "Initial p0", "D_override": "Initial D", "Ne_override": "Grid Ne",
              "boundary_conditions": "Boundary conditions",
              "absorption_step": "Absorption step", "group": "Group",
              "optimizer": "Optimizer", "params_to_opt": "Fitted parameters",
              "learning_rate": "Learning rates", "max_epochs": "Epochs",
              "mini_batch_number": "Mini-batches", "Nv": "Nv (eigenpairs)",
              "snapshot_epochs": "Snapshot epochs", "line_search": "Line searches",
              "record_models": "Models recorded (for analysis)", "seed": "Seed",
              "pace": "Pace (s per epoch)"}
GEN_LABELS = {"model": "Ground-truth model", "dataset_name": "Dataset", "n_trials": "Trials",
              "duration": "Trial duration (s)", "dt": "dt (s)", "seed": "Seed",
              "with_trial_end": "Trial end recorded", "val_fraction": "Validation fraction"}
DECODE_LABELS = {"dataset": "Dataset", "datasample": "Datasample", "model": "Saved model",
                 "fit_run": "Fit run", "epoch": "Epoch of the fit", "trials": "Trials",
                 "Nv": "Nv (eigenpairs)"}


def describe(record: dict, n_epochs: int) -> dict:
    """One table row: status, name, kind, when, how long, what it used, error."""
    s = record.get("settings") or {}
    refs = record.get("refs") or {}
    if record["kind"] == "fit":
        used = (f"data {refs.get('dataset')}, init {refs.get('model')}"
                + (f" (peq {s.get('peq_override')})" if s.get("peq_override") else "")
                + f"; {s.get('optimizer')} on {', '.join(s.get('params_to_opt') or [])}")
        progress = f"{max(0, n_epochs - 1)}/{s.get('max_epochs')} epochs"
    elif record["kind"] == "viterbi":
        trials = s.get("trials") or []
        used = (f"model {refs.get('model')} on {refs.get('dataset')}; {len(trials)} trial(s)")
        progress = f"{100 * (record.get('progress') or 0):.0f} %"
    else:
        used = (f"model {refs.get('model')} → {refs.get('dataset')}; "
                f"{s.get('n_trials')} × {s.get('duration')} s")
        progress = f"{100 * (record.get('progress') or 0):.0f} %"
    if record["status"] == "queued":
        progress = record.get("message") or "queued"   # its place in line (jobs.annotate)
    end = record.get("finished") or (time.time() if record.get("started") else None)
    took = fmt_seconds(end - record["started"]) if record.get("started") and end else "—"
    return {"id": record["id"], "status": record["status"], "name": record["name"],
            "kind": record["kind"],
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["created"])),
            "took": took, "progress": progress, "used": used,
            "error": record.get("error") or ""}


def _text(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format_number(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items()) or "—"
    return str(value)


def _plural(n, one: str, many: str) -> str:
    return f"{_text(n)} {one if n == 1 else many}"


def line_search_text(line_search) -> str:
    """The line searches of a fit's settings (the core's ``FitOptions.line_search``)
    in words, e.g. "C: at 5 log-spaced epochs, 1 search per epoch, at most 5
    evaluations"; "off" when there are none."""
    parts = []
    for p, entry in (line_search or {}).items():
        if not isinstance(entry, dict):
            continue
        epochs = entry.get("epochs")
        if isinstance(epochs, dict) and "log" in epochs:
            when = f"at {_text(epochs['log'])} log-spaced epochs"
        elif isinstance(epochs, dict) and "every" in epochs:
            when = f"every {_plural(epochs['every'], 'epoch', 'epochs')}"
        elif isinstance(epochs, (list, tuple)):
            when = f"at epochs {_text(epochs)}"
        else:
            when = f"at {_text(epochs)}"
        parts.append(f"{p}: {when}, "
                     f"{_plural(entry.get('searches_per_epoch', 1), 'search', 'searches')} per "
                     f"epoch, at most {_plural(entry.get('max_fun_eval'), 'evaluation', 'evaluations')}")
    return "; ".join(parts) or "off"


def _when(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "—"


def recipe_rows(recipe: dict | None) -> list[tuple[str, str]]:
    """The NWB import recipe of a run's dataset as (label, text) rows ([] for other data)."""
    from flowdash.pages.data.nwb_logic import recipe_rows as rows

    return rows(recipe)


def settings_rows(record: dict) -> list[tuple[str, str]]:
    """A run's settings and record as (label, text) rows, in reading order."""
    s = dict(record.get("settings") or {})
    fit = record["kind"] == "fit"
    labels = FIT_LABELS if fit else DECODE_LABELS if record["kind"] == "viterbi" else GEN_LABELS
    if s.get("Nv", 0) is None:
        s["Nv"] = "N − 2"
    if fit:
        for key in ("peq_override", "p0_override", "D_override", "Ne_override",
                    "boundary_conditions", "absorption_step"):
            if key in s and s[key] is None:
                s[key] = "as saved in the model"
        s["peq_override"] = s.get("peq_override") or "as saved in the model"
        lr = s.get("learning_rate") or {}
        s["learning_rate"] = {("α" if k == "alpha" else k): v for k, v in lr.items()}
        if "line_search" in s:
            s["line_search"] = line_search_text(s["line_search"])
    elif s.get("seed") is None and record.get("seed_used") is not None:
        s["seed"] = f"{record['seed_used']} (drawn)"
    rows = [(label, _text(s[key])) for key, label in labels.items() if key in s]
    rows += [(key, _text(value)) for key, value in s.items() if key not in labels]
    rows += [("Status", record["status"] + (f": {record['error']}" if record.get("error")
                                            else "")),
             ("Created", _when(record.get("created"))), ("Started", _when(record.get("started"))),
             ("Finished", _when(record.get("finished"))), ("Run id", record["id"])]
    return rows
