"""What jobs read and write: datasets as npz bytes, splits, model specs and arrays.

Importable without dash; plain helpers shared by the job kinds and the pages.
"""
from __future__ import annotations

import io

import numpy as np

from ..store import RunStore


# ---------------------------------------------------------------------------
# SpikeData <-> bytes (the store keeps the npz bytes, never a pickle)
# ---------------------------------------------------------------------------
def spikedata_to_bytes(data) -> bytes:
    """``SpikeData.save_npz`` into bytes."""
    buf = io.BytesIO()
    data.save_npz(buf)
    return buf.getvalue()


def spikedata_from_bytes(blob: bytes):
    """Inverse of :func:`spikedata_to_bytes` (no pickle)."""
    from ..core.spikedata import SpikeData

    return SpikeData.load_npz(bytes(blob))


def load_dataset(store: RunStore, name: str):
    """Return ``(datasamples, meta)``: a list of full SpikeData, and the meta."""
    entry = store.get_dataset(name)
    if entry is None:
        raise ValueError(f"no dataset named {name!r}")
    return [spikedata_from_bytes(b) for b in entry["npz"]], entry["meta"]


def split_of(meta: dict) -> dict:
    """How a dataset's trials split into training and validation (its meta).

    ``{"kind": "random", "val_fraction": f, "seed": s}`` (``SpikeData.split``),
    ``{"kind": "even_odd"}`` (``even_odd_split``), ``{"kind": "halves", "train":
    [positions per datasample], "val": [...], ...}`` (the halves an NWB import
    drew, e.g. random with a seed) or ``{"kind": "none"}``.
    """
    return meta.get("split") or {"kind": "none"}


def split_samples(samples, meta):
    """``(train, val)``: lists of SpikeData per datasample (val None: no validation)."""
    from ..core.spikedata import even_odd_split

    sp = split_of(meta)
    if "splits" in meta and "split" not in meta:  # stores written before "split" existed
        pairs = [(s.subset(x["train"]), s.subset(x["val"]) if x["val"] else None)
                 for s, x in zip(samples, meta["splits"])]
    elif sp["kind"] == "halves":
        pairs = [(s.subset(a), s.subset(b)) for s, a, b in zip(samples, sp["train"], sp["val"])]
    elif sp["kind"] == "even_odd":
        pairs = [even_odd_split(s) for s in samples]
    elif sp["kind"] == "random":
        pairs = [s.split(sp["val_fraction"], sp["seed"]) for s in samples]
    else:
        pairs = [(s, None) for s in samples]
    train, val = [p[0] for p in pairs], [p[1] for p in pairs]
    return train, (None if any(v is None for v in val) else val)


def random_split(n_trials: int, val_fraction: float, seed) -> dict:
    """The split record of a random split (none when it cannot split)."""
    if val_fraction <= 0 or n_trials < 2:
        return {"kind": "none"}
    return {"kind": "random", "val_fraction": float(val_fraction), "seed": int(seed)}


#: How a model selection halves one dataset's trials (each datasample / condition alike).
HALF_SPLITS = ("even_odd", "random")


def half_samples(samples, half: dict):
    """``(train, val)`` of one half of each datasample: the half's trials and the other half's.

    ``half`` is ``{"split": "even_odd"}`` (trials 0, 2, 4, … are half 0) or
    ``{"split": "random", "seed": s}`` (``SpikeData.split(0.5, s)``: its
    training part is half 0), with ``"index"`` 0 or 1. Each half is fitted
    on its own trials and validated on the other half's: the two fits stay
    independent, and no trial is set aside (a dataset's own split is not
    used). Raises ValueError for a datasample with fewer than 2 trials.
    """
    from ..core.spikedata import even_odd_split

    index = int(half["index"])
    train, val = [], []
    for k, s in enumerate(samples):
        if s.n_trials < 2:
            raise ValueError(f"datasample {k} has {s.n_trials} trial; halves need at least 2 trials "
                             "in every datasample")
        pair = even_odd_split(s) if half["split"] == "even_odd" else s.split(0.5, half["seed"])
        train.append(pair[index])
        val.append(pair[1 - index])
    return train, val


def train_val(store: RunStore, name: str, half: dict | None = None):
    """Training and validation SpikeData per datasample for a saved dataset
    (with ``half``: that half of its trials, validated on the other half;
    see :func:`half_samples`)."""
    samples, meta = load_dataset(store, name)
    train, val = half_samples(samples, half) if half else split_samples(samples, meta)
    return train, val, meta


# ---------------------------------------------------------------------------
# model specs
# ---------------------------------------------------------------------------
def build_model(spec: dict, n_datasamples: int = 1, peq_override: str | None = None):
    """A core ``Model`` from a saved spec (reference format plus grid/boundary)."""
    from ..core.grid import Grid
    from ..core.model import Model

    g = spec["grid"]
    grid = Grid(int(g["Np"]), int(g["Ne"]), float(g.get("xbegin", -1.0)),
                float(g.get("xend", 1.0)))
    spec = dict(spec)
    if peq_override:
        spec["peq_model"] = {"model": peq_override, "params": {}}
    if n_datasamples > 1 and not spec.get("params_size"):
        spec["params_size"] = {"peq": n_datasamples}
    return Model.from_spec(spec, grid, spec.get("boundary_mode", "reflecting"),
                           n_datasamples=n_datasamples)


def fit_initial_spec(store: RunStore, record: dict) -> dict | None:
    """The initial model's spec of a fit run as the fit used it: the spec saved
    with the run (``refs["model_spec"]``, else the saved model of that name)
    with the run's overrides applied (:func:`flowdash.settings.initial_spec`:
    peq, p0, D, grid Ne, likelihood setting). None when neither spec exists.
    The fit job, a continuation, the analysis of its recorded models and a
    decode with its model all read the fit's grid and boundary setting here."""
    from ..settings import initial_spec

    s = record.get("settings") or {}
    spec = (record.get("refs") or {}).get("model_spec") or store.get_model(s.get("init_model"))
    return None if spec is None else initial_spec(spec, s)


def model_arrays(model) -> dict:
    """The arrays of a core Model as JSON-able lists (for the store)."""
    return {"x": np.asarray(model.grid.x).tolist(),
            "peq": np.asarray(model.peq).tolist(),
            "p0": None if model.p0 is None else np.asarray(model.p0).tolist(),
            "D": np.atleast_1d(np.asarray(model.D, float)).tolist(),
            "fr": np.asarray(model.fr).tolist()}


def truth_model(meta: dict):
    """The core Model of a synthetic dataset's ground truth, or None."""
    spec = (meta or {}).get("model_spec")
    if not spec:
        return None
    try:
        return build_model(spec)
    except (ValueError, KeyError, TypeError):
        return None


def truth_arrays(meta: dict):
    """{x, peq} of a synthetic dataset's ground truth, or None."""
    model = truth_model(meta)
    if model is None:
        return None
    return {"x": np.asarray(model.grid.x).tolist(), "peq": np.asarray(model.peq).tolist()}


# ---------------------------------------------------------------------------
def finite_list(values):
    """Floats as a JSON-able list, one entry per datasample, NaN/inf -> None.

    The length never depends on the values, so every epoch of a run has the
    same number of entries (None stays None: no validation set).
    """
    if values is None:
        return None
    return [float(v) if np.isfinite(v) else None
            for v in np.atleast_1d(np.asarray(values, float))]


def reason(exc: BaseException) -> str:
    """A one-line reason for the user (the traceback goes to the log)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 500 else text[:497] + "..."
