"""Decode page logic: the form, the followed run, what a decoded trial shows (no dash).

The model choice is one Select whose values say where the model comes from:
``"model:<name>"`` (a saved model) or ``"fit:<run id>"`` (a fit run; its
``epoch`` is ``"final"`` or a recorded epoch).
"""
from __future__ import annotations

import json

import numpy as np

from flowdash import jobs, settings
from flowdash.jobs import viterbi as decode_kind
from flowdash.pages import menus
from flowdash.store import ACTIVE_STATUSES, FINAL_STATUSES

SAVED, FIT = "model:", "fit:"
#: Settings of the job kind, in the order the form shows them (each has a field).
FIELDS = ("dataset", "datasample", "model", "epoch", "trials", "Nv", "name")
#: Nv proposed for a saved model (at most N − 2), as on the Fit page: N − 2 on a fine
#: grid makes a decode slow.
DEFAULT_NV = 64


def model_options(store) -> list[dict]:
    """Saved models, then the newest fit runs (at most ``menus.LIMIT``, from the run
    index), as Select options."""
    runs = store.find_runs(kind="fit", limit=menus.LIMIT)[1]
    return ([{"label": f"saved model · {n}", "value": SAVED + n} for n in store.list_models()]
            + [{"label": f"fit run · {r['name']} ({r['id'][:6]}, {r['status']})",
                "value": FIT + r["id"]} for r in runs])


def epoch_options(store, choice) -> list[dict]:
    """A fit run's models: the final one (once the fit has ended) and its recorded epochs."""
    if not isinstance(choice, str) or not choice.startswith(FIT):
        return []
    run_id = choice[len(FIT):]
    result = store.get_result(run_id) or {}
    out = [{"label": "final model", "value": decode_kind.FINAL}] if "final" in result else []
    recorded = sorted(set(store.snapshot_epochs(run_id)) | set(store.model_epochs(run_id)))
    return out + [{"label": f"epoch {k}", "value": str(k)} for k in recorded]


def nv_for(store, choice) -> str:
    """The Nv field for a model choice: a fit's own Nv (blank: it used N − 2), else
    :data:`DEFAULT_NV` within the grid's N − 2 (blank when unknown)."""
    if not isinstance(choice, str):
        return ""
    if choice.startswith(FIT):
        record = store.get_run(choice[len(FIT):])
        nv = ((record or {}).get("settings") or {}).get("Nv")
        return "" if nv is None else str(nv)
    spec = store.get_model(choice[len(SAVED):]) if choice.startswith(SAVED) else None
    if spec is None or settings.check_model_spec(spec):
        return ""
    return str(min(DEFAULT_NV, settings.spec_nodes(spec) - 2))


def sample_options(store, dataset) -> list[dict]:
    """One option per datasample (condition) of a dataset."""
    meta = store.get_dataset_meta(dataset) if dataset else None
    conditions = (meta or {}).get("conditions") or ["all"]
    n = int((meta or {}).get("n_datasamples") or 1)
    return [{"label": conditions[k] if k < len(conditions) else str(k), "value": str(k)}
            for k in range(n)]


def values_from_fields(dataset, sample, choice, epoch, trials, nv) -> dict:
    """The job kind's values from the form's fields."""
    choice = choice if isinstance(choice, str) else ""
    return {"dataset": dataset, "datasample": sample or 0,
            "model": choice[len(SAVED):] if choice.startswith(SAVED) else None,
            "fit_run": choice[len(FIT):] if choice.startswith(FIT) else None,
            "epoch": epoch, "trials": trials, "Nv": nv}


def start(store, values: dict, name=None):
    """Queue a decode; returns ``(run_id or None, {field: message}, alert text or None)``."""
    try:
        return jobs.submit(store, "viterbi", values, name=name), {}, None
    except settings.SettingsError as exc:
        by_field = {k: m for k, m in exc.errors.items() if k in FIELDS}
        other = [m for k, m in exc.errors.items() if k not in FIELDS]
        return None, by_field, " ".join(other) or "Fix the fields marked in red."


def run_options(store) -> list[dict]:
    """The newest decode runs (at most ``menus.LIMIT``, from the run index)."""
    return [{"label": f"{r['name']} · {r['id'][:6]} · {r['status']}", "value": r["id"]}
            for r in store.find_runs(kind="viterbi", limit=menus.LIMIT)[1]]


def progress(record: dict):
    """(percent, bar label, text) of a decode run."""
    n = len((record.get("settings") or {}).get("trials") or [])
    fraction = float(record.get("progress") or 0.0)
    status = record["status"]
    if status == "done":
        fraction = 1.0
    text = record.get("message") or status
    if status in FINAL_STATUSES and status != "done":
        text = f"{status}: {record.get('error') or record.get('message') or ''}".rstrip(": ")
    elif status == "done":
        text = f"done: {record.get('message')}"
    return 100.0 * fraction, f"{round(fraction * n)}/{n}" if n else "", text


def decoded_trials(result) -> list[dict]:
    """Trial choices of a decode's result: one per decoded path."""
    return [{"label": f"trial {p['trial']} · log score {p['log_score']:.1f}",
             "value": str(p["trial"])} for p in (result or {}).get("paths") or []]


def shown_key(record, result) -> dict | None:
    """What the trial list shows: the run, its status and how many paths it has."""
    if record is None:
        return None
    return {"run": record["id"], "status": record["status"],
            "n": len((result or {}).get("paths") or [])}


def true_path(store, record: dict, trial: int):
    """``((times, positions) or None, note)``: the latent path that made trial ``trial``.

    Only a generated dataset has one (the store keeps the generation's
    paths, subsampled, for its first trials); it must still be the dataset
    that was decoded (not deleted or replaced since) and cover the trial.
    """
    refs, s = record.get("refs") or {}, record.get("settings") or {}
    decoded = refs.get("dataset_meta") or {}
    if decoded.get("source") != "synthetic":
        return None, "No true path: the data are not synthetic."
    meta = store.get_dataset_meta(refs.get("dataset"))
    if meta is None or meta.get("saved") != decoded.get("saved"):
        return None, (f"No true path: the dataset “{refs.get('dataset')}” was deleted or "
                      "replaced since this decode.")
    latent = store.get_latent(refs["dataset"]) if s.get("datasample", 0) == 0 else None
    if not latent or not latent.get("t"):
        return None, "No true path: the dataset kept no latent paths."
    if trial >= len(latent["t"]) or not latent["t"][trial]:
        return None, f"No true path: latent paths are kept for the first {len(latent['t'])} trials."
    return (latent["t"][trial], latent["x"][trial]), "The true latent path is drawn in black."


def trial_view(store, record: dict, result: dict, trial) -> dict | None:
    """What the figure shows of one decoded trial (None: the trial was not decoded)."""
    path = next((p for p in (result or {}).get("paths") or [] if str(p["trial"]) == str(trial)),
                None)
    if path is None:
        return None
    fr = np.asarray(result["fr"], float)
    true, note = true_path(store, record, int(path["trial"]))
    model = (record.get("refs") or {}).get("model")
    return {"t": path["t"], "x": path["x"], "ids": path["ids"], "n_neurons": fr.shape[1],
            "x_grid": result["x_grid"], "fr": fr, "true": true, "note": note,
            "title": f"Trial {path['trial']} · model {model} · log score "
                     f"{path['log_score']:.1f}"}


def export_json(record: dict, result: dict) -> str:
    """The decode's settings, what it used and its scores, as JSON text."""
    paths = (result or {}).get("paths") or []
    refs = dict(record.get("refs") or {})
    return json.dumps({
        "run": {k: record.get(k) for k in ("id", "name", "kind", "status", "message", "error",
                                           "created", "started", "finished")},
        "settings": record.get("settings"), "refs": refs,
        "decoded": {"trials": [p["trial"] for p in paths],
                    "log_score": [p["log_score"] for p in paths],
                    "points": [len(p["t"]) for p in paths],
                    "Nv": (result or {}).get("Nv"), "model_row": (result or {}).get("model_row"),
                    "boundary_mode": (result or {}).get("boundary_mode"),
                    "boundary_conditions": (result or {}).get("boundary_conditions"),
                    "seconds": (result or {}).get("seconds")},
    }, indent=2, default=str)


def is_active(record) -> bool:
    return record is not None and record["status"] in ACTIVE_STATUSES
