"""Export of a run: every recorded array as ``.npz`` and the record as JSON."""
from __future__ import annotations

import io
import json

import numpy as np

from .store import RunStore

def export_npz(store: RunStore, run_id: str) -> bytes:
    """Every recorded array of a run as npz bytes (no pickles)."""
    record = store.get_run(run_id)
    if record is None:
        raise ValueError(f"no run {run_id!r}")
    arrays = {}
    if record["kind"] == "fit":
        epochs = store.read_epochs(run_id)
        if epochs:
            arrays["epoch"] = np.array([e["epoch"] for e in epochs])
            for key in ("nll_train", "nll_val"):
                width = max(len(e.get(key) or []) for e in epochs)
                if width:  # (datasamples, epochs); a missing or short entry is NaN
                    arrays[key] = np.stack([np.pad(nll_array(e.get(key) or []),
                                                   (0, width - len(e.get(key) or [])),
                                                   constant_values=np.nan)
                                            for e in epochs], axis=1)
            arrays["elapsed"] = np.array([e["elapsed"] for e in epochs], float)
            arrays["D"] = np.array([e["D"] for e in epochs], float)
            for e in epochs:
                for key, value in (e.get("snapshot") or {}).items():
                    if value is not None:
                        arrays[f"snapshot_{e['epoch']}_{key}"] = np.asarray(value, float)
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
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def export_settings_json(store: RunStore, run_id: str) -> str:
    """The run record (settings, refs, status, times) as JSON text."""
    record = store.get_run(run_id)
    if record is None:
        raise ValueError(f"no run {run_id!r}")
    return json.dumps(record, indent=2, default=str)


def nll_array(values) -> np.ndarray:
    """A stored NLL list (None = not finite) as floats with NaN."""
    return np.array([np.nan if v is None else v for v in values], float)


