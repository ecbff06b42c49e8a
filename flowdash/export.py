"""Export of a run: every recorded array as ``.npz`` and the record as JSON.

Snapshots come out as the store keeps them (float32 values, as float64
arrays); the result arrays (initial, final model) at full precision. A run
on a dataset imported from an NWB file carries the import recipe (file name
and SHA-256, units, window, filters, conditions, halves) in both, so that a
fit can be traced to its raw data.
"""
from __future__ import annotations

import io
import json

import numpy as np

from .store import RunStore


def import_recipe(store: RunStore, record: dict) -> dict | None:
    """The NWB import recipe of a run's dataset (``core.nwb.Recipe.to_dict``), or None.

    A fit keeps the dataset's meta as it was when it started (``refs["dataset_meta"]``);
    other runs read the saved dataset's.
    """
    refs = record.get("refs") or {}
    meta = refs.get("dataset_meta")
    if meta is None and refs.get("dataset"):
        meta = store.get_dataset_meta(refs["dataset"])
    return (meta or {}).get("recipe")


def export_npz(store: RunStore, run_id: str) -> bytes:
    """Every recorded array of a run as npz bytes (no pickles)."""
    record = store.get_run(run_id)
    if record is None:
        raise ValueError(f"no run {run_id!r}")
    if record["kind"] == "viterbi":  # the decoded paths, as the Decode page exports them
        from .jobs.viterbi import paths_npz
        return paths_npz(store.get_result(run_id) or {})
    arrays = {}
    if record["kind"] == "fit":
        cols = store.read_columns(run_id)  # one read of the NLL columns, however long the fit
        if len(cols["epoch"]):
            arrays["epoch"] = cols["epoch"]
            for key in ("nll_train", "nll_val"):
                if cols[key] is not None and cols[key].shape[1]:
                    arrays[key] = cols[key].T   # (datasamples, epochs); missing is NaN
            arrays["elapsed"] = cols["elapsed"]
            arrays["D"] = cols["D"]
            for k in store.snapshot_epochs(run_id):
                for key, value in (store.read_snapshot(run_id, k, as_lists=False) or {}).items():
                    if value is not None:
                        arrays[f"snapshot_{k}_{key}"] = np.asarray(value, float)
        for part, value in (store.get_result(run_id) or {}).items():
            if isinstance(value, dict):
                for key, arr in value.items():
                    if arr is not None:
                        arrays[f"{part}_{key}"] = np.asarray(arr, float)
            elif isinstance(value, list):
                arrays[part] = np.asarray(value, float)
    else:
        ds = store.get_dataset((record.get("refs") or {}).get("dataset"))
        if ds is not None and ds["meta"].get("run_id") == run_id:
            for k, blob in enumerate(ds["npz"]):
                with np.load(io.BytesIO(blob), allow_pickle=False) as z:
                    for key in z.files:
                        arrays[f"data{k}_{key}"] = z[key]
            latent = store.get_latent(record["refs"]["dataset"]) or {"t": [], "x": []}
            for i, (t, x) in enumerate(zip(latent["t"], latent["x"])):  # subsampled for display
                arrays[f"latent_t_{i}"] = np.asarray(t, float)
                arrays[f"latent_x_{i}"] = np.asarray(x, float)
    recipe = import_recipe(store, record)
    if recipe is not None:   # a unicode array: np.load reads it without pickle
        arrays["import_recipe_json"] = np.array(json.dumps(recipe))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def export_settings_json(store: RunStore, run_id: str) -> str:
    """The run record (settings, refs, status, times) as JSON text, with the
    dataset's NWB import recipe as ``import_recipe`` (None for other data)."""
    record = store.get_run(run_id)
    if record is None:
        raise ValueError(f"no run {run_id!r}")
    return json.dumps(dict(record, import_recipe=import_recipe(store, record)), indent=2, default=str)
