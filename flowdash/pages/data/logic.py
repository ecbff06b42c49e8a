"""Data page logic: field validation, uploads, dataset views (no dash).

The NWB import form (real recordings, the PMd button) has its own module, ``nwb_logic``.
"""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from flowdash import jobs
from flowdash import settings
from flowdash.store import ACTIVE_STATUSES

MAX_SHOWN_TRIALS = 20
#: The data of the 2020 paper's Fig. 3 (the ``example1`` case): two 100 s trials,
#: one to train and one to validate, no trial end, dt 1e-4.
FIG3_DATA = {"n_trials": "2", "duration": "100", "dt": "0.0001", "seed": "0",
             "val_fraction": "0.5", "with_trial_end": False, "dataset_name": "fig3-data"}
#: Presets of the Generate card: key -> (button label, field values). The 2021
#: paper's trials (Genkin, Hughes & Engel, Nat Commun 2021) last until the latent
#: hits a wall (up to 100 s), with the trial end recorded, and are all fitted
#: (no validation set): 200 ramping trials for Figs. 2-3, 400 of each model for Fig. 4.
PRESETS = {
    "fig3": ("2020 Fig. 3 data", FIG3_DATA),
    "ramp2021": ("2021 ramping data", {
        "n_trials": "200", "duration": "100", "dt": "0.0001", "seed": "0",
        "val_fraction": "0", "with_trial_end": True, "dataset_name": "ramp2021-data"}),
    "step2021": ("2021 stepping data (Fig. 4)", {
        "n_trials": "400", "duration": "100", "dt": "0.0001", "seed": "0",
        "val_fraction": "0", "with_trial_end": True, "dataset_name": "step2021-data"}),
}


def parse_trials(text, n_trials: int) -> list[int]:
    """Trial numbers from text such as ``"0, 2, 5-7"`` (blank: the first two); at
    most 20 are shown (:func:`flowdash.settings.parse_trials`)."""
    if not (text or "").strip():
        return list(range(min(n_trials, 2)))
    return settings.parse_trials(text, n_trials, MAX_SHOWN_TRIALS)


def decode_upload(contents: str) -> bytes:
    """Bytes of a dcc.Upload ``contents`` data URL (at most MAX_UPLOAD_BYTES)."""
    try:
        body = contents.split(",", 1)[1]
    except (IndexError, AttributeError):
        raise ValueError("the upload could not be read") from None
    if len(body) * 3 // 4 > settings.MAX_UPLOAD_BYTES:
        raise ValueError(f"the file is larger than {settings.MAX_UPLOAD_BYTES // 2**20} MB")
    try:
        return base64.b64decode(body)
    except ValueError:
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
    if data.n_neurons > settings.MAX_NEURONS:
        raise ValueError(f"the data has {data.n_neurons} neurons (the highest neuron id + 1); "
                         f"at most {settings.MAX_NEURONS} are allowed")
    if data.n_trials > settings.MAX_TRIALS:
        raise ValueError(f"the data has {data.n_trials} trials; at most {settings.MAX_TRIALS} "
                         "are allowed")
    try:
        vf = settings.parse_number(val_fraction, settings.GEN_LIMITS["val_fraction"])
    except ValueError as exc:
        raise ValueError(f"Validation fraction (Generate card): {exc}") from None
    meta = {"source": "upload", "files": [n for n, _ in files], "n_datasamples": 1,
            "n_neurons": int(data.n_neurons), "n_trials": int(data.n_trials),
            "with_trial_end": bool(data.with_trial_end),
            "split": jobs.random_split(data.n_trials, vf, seed),
            "conditions": ["all"], "model_spec": None}
    return [data], meta


def dataset_view(entry: dict, latent: dict | None, trials_text: str, sample: int = 0):
    """What the page shows of one datasample (condition) of a saved dataset.

    Returns a dict with ``summary`` (list of (label, value)), ``spikes``
    (per shown trial, per neuron: spike times in s), ``indices``,
    ``n_neurons``, ``rates`` (Hz) and ``counts`` of the datasample,
    ``latent`` ((times, paths) or None), ``latent_note`` (why there is
    none), ``xrange``. Raises ValueError for a bad trial selection.
    """
    samples = [jobs.spikedata_from_bytes(b) for b in entry["npz"]]
    meta = entry["meta"]
    sample = sample if 0 <= (sample or 0) < len(samples) else 0
    data = samples[sample]
    indices = parse_trials(trials_text, data.n_trials)
    lat, note = None, "No latent trajectories (not synthetic data)."
    if latent:
        kept = len(latent["t"])
        if all(i < kept for i in indices):
            lat = ([latent["t"][i] for i in indices], [latent["x"][i] for i in indices])
        else:
            note = f"Latent trajectories are kept for the first {kept} trials only."
    spec = meta.get("model_spec") or {}
    g = spec.get("grid") or {}
    train, val = jobs.split_samples([data], meta)
    n_val = 0 if val is None else val[0].n_trials
    conditions = meta.get("conditions") or ["all"]
    summary = [("source", meta.get("source", "?")),
               ("ground truth", meta.get("model") or "—"),
               ("condition", conditions[sample] if sample < len(conditions) else str(sample)),
               ("trials", f"{data.n_trials} ({data.n_trials - n_val} train, {n_val} validation)"),
               ("neurons", str(data.n_neurons)),
               ("total duration", f"{float(np.sum(data.durations())):.2f} s"),
               ("trial end recorded", "yes" if data.with_trial_end else "no")]
    if meta.get("seed") is not None:
        summary.append(("seed", str(meta["seed"])))
    if meta.get("recipe"):   # imported from NWB: where the trials come from
        from flowdash.pages.data.nwb_logic import recipe_rows
        summary += recipe_rows(meta["recipe"])
    return {"summary": summary, "spikes": data.subset(indices).to_spike_times()[0],
            "indices": indices, "n_neurons": data.n_neurons,
            "rates": data.trial_average_rates(), "counts": data.n_spikes(),
            "latent": lat, "latent_note": note,
            "xrange": (g.get("xbegin", -1.0), g.get("xend", 1.0))}


def generation_progress(record: dict | None) -> tuple[float, str, bool]:
    """(percent, bar label, still active) of a generation run record (None: none)."""
    if record is None:
        return 0.0, "", False
    active = record["status"] in ACTIVE_STATUSES
    label = record.get("message") or record["status"]
    if record["status"] in ("failed", "interrupted") and record.get("error"):
        label = f"{record['status']}: {record['error']}"
    elif not active and not label.startswith(record["status"]):
        label = f"{record['status']}: {label}"
    return 100.0 * float(record.get("progress") or 0.0), label, active


def follow_state(record: dict | None, seen: dict | None) -> dict | None:
    """What the Data page remembers of the followed run: its id, its status, and
    whether it just ended (it was active when last seen)."""
    if record is None:
        return None
    seen = seen or {}
    ended = (record["status"] not in ACTIVE_STATUSES and seen.get("run_id") == record["id"]
             and (seen.get("status") in ACTIVE_STATUSES))
    return {"run_id": record["id"], "status": record["status"], "ended": ended}


def follow_key(state: dict | None) -> tuple:
    """(run id, status) of a follow state: it changes only when the run does."""
    return (state or {}).get("run_id"), (state or {}).get("status")


def generation_outcome(record: dict | None) -> tuple[str, str, str | None]:
    """(message, alert colour, dataset to show) when a generation run has ended."""
    if record is None:
        return "The generation run was deleted.", "warning", None
    name = record["settings"].get("dataset_name")
    if record["status"] == "done":
        return f"Saved dataset “{name}”: {record['message']}.", "success", name
    if record["status"] == "failed":
        return f"Generation failed: {record.get('error') or 'no reason was recorded'}", \
            "danger", None
    if record["status"] == "interrupted":
        return f"Generation interrupted: {record.get('error') or 'no reason was recorded'}", \
            "warning", None
    return f"Generation {record.get('message') or record['status']}.", "warning", None
