"""Data page logic: field validation, uploads, PMd import, dataset views (no dash)."""
from __future__ import annotations

import base64
import math
import os
from pathlib import Path

import numpy as np

from flowdash import jobs

#: Field -> (label for messages, type, min, max).
GEN_FIELDS = {
    "n_trials": (int, 1, 10000),
    "duration": (float, 1e-3, 1e5),
    "dt": (float, 1e-6, 0.1),
    "val_fraction": (float, 0.0, 0.9),
}
MAX_SHOWN_TRIALS = 20


def _number(text, typ, lo, hi):
    text = "" if text is None else str(text).strip()
    if not text:
        raise ValueError("required")
    try:
        v = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(v):
        raise ValueError("expected a finite number")
    if typ is int:
        if not v.is_integer():
            raise ValueError("expected a whole number")
        v = int(v)
    if not lo <= v <= hi:
        raise ValueError(f"must be between {lo:g} and {hi:g}")
    return v


def validate_generation_fields(model, n_trials, duration, dt, seed, with_trial_end,
                               val_fraction, name):
    """Generation settings and per-field errors (``{field: message}``)."""
    errors, s = {}, {"model": model, "with_trial_end": bool(with_trial_end)}
    if not model:
        errors["model"] = "save a model on the Model page first, then choose it here"
    for key, text in (("n_trials", n_trials), ("duration", duration), ("dt", dt),
                      ("val_fraction", val_fraction)):
        try:
            s[key] = _number(text, *GEN_FIELDS[key])
        except ValueError as exc:
            errors[key] = str(exc)
    if "dt" in s and "duration" in s and s["dt"] >= s["duration"]:
        errors["dt"] = "dt must be smaller than the trial duration"
    if "duration" in s and "dt" in s and "n_trials" in s and "dt" not in errors:
        if s["duration"] / s["dt"] > 2e7:
            errors["duration"] = "too many time steps per trial (duration/dt ≤ 2·10⁷)"
    if seed in (None, ""):
        s["seed"] = None
    else:
        try:
            s["seed"] = _number(seed, int, 0, 2**32 - 1)
        except ValueError as exc:
            errors["seed"] = str(exc)
    name = (name or "").strip()
    if not name:
        errors["dataset_name"] = "give the dataset a name"
    elif len(name) > 80:
        errors["dataset_name"] = "at most 80 characters"
    s["dataset_name"] = name
    return (None if errors else s), errors


def parse_trials(text, n_trials: int) -> list[int]:
    """Trial numbers from text such as ``"0, 2, 5-7"``; at most 20 are shown."""
    text = (text or "").strip()
    if not text:
        return list(range(min(n_trials, 2)))
    out = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, part)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"{part!r} is not a trial number or a range like 2-5") from None
    bad = [i for i in out if not 0 <= i < n_trials]
    if bad:
        raise ValueError(f"trial {bad[0]} does not exist (0 … {n_trials - 1})")
    out = list(dict.fromkeys(out))
    if len(out) > MAX_SHOWN_TRIALS:
        raise ValueError(f"show at most {MAX_SHOWN_TRIALS} trials at once")
    return out


def decode_upload(contents: str) -> bytes:
    """Bytes of a dcc.Upload ``contents`` data URL."""
    try:
        return base64.b64decode(contents.split(",", 1)[1])
    except (IndexError, ValueError, AttributeError):
        raise ValueError("the upload could not be read") from None


def import_upload(contents, filenames, val_fraction, seed=0):
    """A dataset from uploaded files: one ``.npz`` or CSV table(s).

    CSV: a spikes table (``trial,neuron,time``) and, optionally, a trials
    table (``trial,start,end``), recognised by their headers.
    Returns ``(samples, meta)``.
    """
    from flowdash.core.spikedata import SpikeData

    if not contents:
        raise ValueError("choose a file to upload")
    if isinstance(contents, str):
        contents, filenames = [contents], [filenames]
    files = [(str(n or "upload"), decode_upload(c)) for c, n in zip(contents, filenames)]
    kinds = {Path(n).suffix.lower() for n, _ in files}
    if kinds == {".npz"} and len(files) == 1:
        data = SpikeData.load_npz(files[0][1])
    elif kinds == {".csv"} and len(files) <= 2:
        spikes = trials = None
        for n, raw in files:
            header = next((ln for ln in raw.decode("utf-8", "replace").splitlines()
                           if ln.strip() and not ln.startswith("#")), "")
            if header.replace(" ", "").lower().startswith("trial,start"):
                trials = raw
            else:
                spikes = raw
        if spikes is None:
            raise ValueError("no spikes table (header trial,neuron,time) among the CSV files")
        data = SpikeData.load_csv(spikes, trials)
    else:
        raise ValueError("upload one .npz file, or one or two .csv files (spikes, trials)")
    vf = _number(val_fraction, float, 0.0, 0.9)
    train, val = jobs.split_indices(data.n_trials, vf, seed) if data.n_trials > 1 else ([0], [])
    meta = {"source": "upload", "files": [n for n, _ in files], "n_datasamples": 1,
            "n_neurons": int(data.n_neurons), "n_trials": int(data.n_trials),
            "with_trial_end": bool(data.with_trial_end), "splits": [{"train": train, "val": val}],
            "conditions": ["all"], "model_spec": None}
    return [data], meta


def pmd_path() -> Path:
    """The PMd recording: ``$FLOWDASH_PMD`` or ``<repo>/../shared/data/...``."""
    env = os.environ.get("FLOWDASH_PMD")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared" / "data" / "pmd_single_neuron_session.npz"


def pmd_conditions() -> list[str]:
    return ["Left/easy", "Left/hard", "Right/easy", "Right/hard"]


def import_pmd(conditions, path=None):
    """The PMd decision windows of the chosen conditions, one datasample each.

    Even trials train, odd trials validate (as in the published analysis).
    """
    from flowdash.core.spikedata import load_pmd_session

    if not conditions:
        raise ValueError("choose at least one condition")
    path = Path(path or pmd_path())
    if not path.exists():
        raise ValueError(f"the PMd recording is not at {path}")
    session = load_pmd_session(str(path))
    unknown = [c for c in conditions if c not in session.conditions]
    if unknown:
        raise ValueError(f"unknown conditions {unknown}; allowed {list(session.conditions)}")
    samples = [session.data[c] for c in conditions]
    splits = [{"train": list(range(0, s.n_trials, 2)), "val": list(range(1, s.n_trials, 2))}
              for s in samples]
    meta = {"source": "pmd", "conditions": list(conditions), "n_datasamples": len(samples),
            "n_neurons": 1, "n_trials": int(sum(s.n_trials for s in samples)),
            "with_trial_end": True, "splits": splits, "model_spec": None,
            "t_after_onset": session.t_after_onset}
    return samples, meta


def dataset_view(entry: dict, latent: dict | None, trials_text: str):
    """What the page shows for a saved dataset.

    Returns a dict with ``summary`` (list of (label, value)), ``trials``
    (ISI pairs), ``indices``, ``n_neurons``, ``rates`` (Hz), ``counts``,
    ``latent`` ((times, paths) or None), ``xrange``. Raises ValueError for a
    bad trial selection. Only datasample 0 is drawn.
    """
    samples = [jobs.spikedata_from_bytes(b) for b in entry["npz"]]
    meta = entry["meta"]
    data = samples[0]
    indices = parse_trials(trials_text, data.n_trials)
    counts = np.zeros(data.n_neurons, int)
    for s in samples:
        counts += np.asarray(s.n_spikes(), int).reshape(-1)[:data.n_neurons]
    total = sum(float(np.sum(s.durations())) for s in samples)
    rates = counts / total if total > 0 else np.zeros(data.n_neurons)
    lat = None
    if latent and all(i < len(latent["t"]) for i in indices):
        lat = ([latent["t"][i] for i in indices], [latent["x"][i] for i in indices])
    spec = meta.get("model_spec") or {}
    g = spec.get("grid") or {}
    n_val = sum(len(sp["val"]) for sp in meta.get("splits", []))
    summary = [("source", meta.get("source", "?")),
               ("ground truth", meta.get("model") or "—"),
               ("conditions", ", ".join(meta.get("conditions") or ["all"])),
               ("trials", f"{meta.get('n_trials')} ({meta.get('n_trials', 0) - n_val} train, "
                          f"{n_val} validation)"),
               ("neurons", str(data.n_neurons)),
               ("total duration", f"{total:.2f} s"),
               ("trial end recorded", "yes" if data.with_trial_end else "no")]
    return {"summary": summary, "trials": [data.trials[i] for i in indices],
            "indices": indices, "n_neurons": data.n_neurons, "rates": rates,
            "counts": counts, "latent": lat,
            "xrange": (g.get("xbegin", -1.0), g.get("xend", 1.0))}
