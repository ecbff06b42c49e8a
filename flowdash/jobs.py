"""The job layer: data generation and fits, recorded in the run store.

Importable without dash; it uses :mod:`flowdash.core` and :mod:`flowdash.store`.

Design (see ``docs/ARCHITECTURE.md`` and the Dash notes):

* A fit runs in its **own worker process** (``multiprocessing`` *spawn*
  context), started by :func:`start_fit`. Starting a run never touches
  another run, so any number may go at once.
* The worker writes one record per epoch to the store (through the core's
  ``on_epoch`` hook). The browser polls the store; nothing travels through
  Dash's ``set_progress``.
* Cancel = a flag in the store (:func:`cancel`), checked between epochs: the
  hook returns ``True`` and the core stops cleanly, so everything computed so
  far stays in the store.
* If the server dies the worker notices (its parent pid changes) and stops
  with status ``interrupted``; if the worker dies, the next server start
  marks the run ``interrupted`` (:func:`recover`).
* Data generation (:func:`run_generation`) is a plain function: the Data page
  calls it from a Dash background callback (for ``set_progress`` and the
  cancel button); :func:`start_generation` runs it in a worker like a fit.
"""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from .store import CANCELLED, DONE, FAILED, INTERRUPTED, RUNNING, RunStore

#: Default snapshot epochs (the iterations shown in the paper's Fig. 3).
DEFAULT_SNAPSHOTS = (1, 6, 13, 50)
#: At most this many latent samples are kept per trial for display.
LATENT_POINTS = 4000
#: Latent trajectories are kept for at most this many trials.
LATENT_TRIALS = 50
FIT_PARAMS = ("F", "F0", "D", "Fr", "C")
#: Longest pause after each epoch that a run may ask for (teaching demos), s.
MAX_PACE = 10.0


class Interrupted(Exception):
    """The server stopped while a worker ran."""


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
    from .core.spikedata import SpikeData

    return SpikeData.load_npz(bytes(blob))


def load_dataset(store: RunStore, name: str):
    """Return ``(datasamples, meta)``: a list of full SpikeData, and the meta."""
    entry = store.get_dataset(name)
    if entry is None:
        raise ValueError(f"no dataset named {name!r}")
    return [spikedata_from_bytes(b) for b in entry["npz"]], entry["meta"]


def split_indices(n_trials: int, val_fraction: float, seed) -> tuple[list, list]:
    """Seeded split of trial indices into (train, val); train keeps ≥ 1 trial."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    n_val = min(int(round(val_fraction * n_trials)), n_trials - 1)
    perm = np.random.default_rng(seed).permutation(n_trials)
    return sorted(int(i) for i in perm[n_val:]), sorted(int(i) for i in perm[:n_val])


def train_val(store: RunStore, name: str):
    """Training and validation SpikeData per datasample for a saved dataset."""
    samples, meta = load_dataset(store, name)
    splits = meta.get("splits") or [{"train": list(range(len(s.trials))), "val": []}
                                    for s in samples]
    train = [s.subset(sp["train"]) for s, sp in zip(samples, splits)]
    val = [s.subset(sp["val"]) if sp["val"] else None for s, sp in zip(samples, splits)]
    if any(v is None for v in val):
        val = None
    return train, val, meta


# ---------------------------------------------------------------------------
# model specs
# ---------------------------------------------------------------------------
def build_model(spec: dict, n_datasamples: int = 1, peq_override: str | None = None):
    """A core ``Model`` from a saved spec (reference format plus grid/boundary)."""
    from .core.grid import Grid
    from .core.model import Model

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


def model_arrays(model) -> dict:
    """The arrays of a core Model as JSON-able lists (for the store)."""
    return {"x": np.asarray(model.grid.x).tolist(),
            "peq": np.asarray(model.peq).tolist(),
            "p0": None if model.p0 is None else np.asarray(model.p0).tolist(),
            "D": np.atleast_1d(np.asarray(model.D, float)).tolist(),
            "fr": np.asarray(model.fr).tolist()}


# ---------------------------------------------------------------------------
# data generation
# ---------------------------------------------------------------------------
def validate_generation(settings: dict) -> dict:
    """Check generation settings; return them normalised. Raises ValueError."""
    s = dict(settings)
    checks = [("n_trials", int, 1, 10000), ("duration", float, 1e-3, 1e5),
              ("dt", float, 1e-6, 1e-1), ("val_fraction", float, 0.0, 0.99)]
    for key, typ, lo, hi in checks:
        try:
            s[key] = typ(s[key])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{key} must be a number, got {settings.get(key)!r}") from None
        if not lo <= s[key] <= hi:
            raise ValueError(f"{key} must be between {lo} and {hi}, got {s[key]!r}")
    if s["dt"] >= s["duration"]:
        raise ValueError(f"dt ({s['dt']}) must be smaller than the duration ({s['duration']})")
    s["seed"] = None if s.get("seed") in (None, "") else int(s["seed"])
    s["with_trial_end"] = bool(s.get("with_trial_end", True))
    if not s.get("model"):
        raise ValueError("choose a saved model to generate from")
    if not str(s.get("dataset_name") or "").strip():
        raise ValueError("dataset_name must be a non-empty name")
    return s


def _subsample(t, x, n=LATENT_POINTS):
    step = max(1, int(np.ceil(len(t) / n)))
    return np.asarray(t)[::step].tolist(), np.asarray(x)[::step].tolist()


def run_generation(store_path, run_id: str, on_progress=None, simulate_fn=None) -> str:
    """Generate a dataset for run ``run_id`` (settings in its record).

    One trial at a time (trial i uses the i-th child of ``SeedSequence(seed)``)
    so progress is reported and a cancel request is honoured between trials.
    ``on_progress(done, total)`` is called after each trial. Writes the
    dataset and returns the final status.
    """
    store = RunStore(store_path)
    record = store.get_run(run_id)
    store.update_run(run_id, status=RUNNING, started=time.time(), pid=os.getpid(),
                     pid_started=_create_time(), message="starting")
    try:
        s = validate_generation(record["settings"])
        if simulate_fn is None:
            from .core.simulation import simulate as simulate_fn
            from .core.simulation import warm_up
            warm_up()
        spec = store.get_model(s["model"])
        if spec is None:
            raise ValueError(f"no saved model named {s['model']!r}")
        model = build_model(spec)
        children = np.random.SeedSequence(s["seed"]).spawn(s["n_trials"])
        trials, latent = [], {"t": [], "x": []}
        t0 = time.time()
        for i, child in enumerate(children):
            if store.cancel_requested(run_id):
                store.finish_run(run_id, CANCELLED, message=f"cancelled after {i} trials")
                return CANCELLED
            sim = simulate_fn(model, 1, s["duration"], dt=s["dt"],
                              seed=int(child.generate_state(1)[0]),
                              with_trial_end=s["with_trial_end"])
            trials.extend(sim.data.trials)
            if i < LATENT_TRIALS:
                t, x = _subsample(sim.time[0], sim.x[0])
                latent["t"].append(t)
                latent["x"].append(x)
            done = i + 1
            store.update_run(run_id, progress=done / s["n_trials"],
                             message=f"trial {done} of {s['n_trials']}",
                             elapsed=time.time() - t0)
            if on_progress is not None:
                on_progress(done, s["n_trials"])
        from .core.spikedata import SpikeData

        data = SpikeData(trials, model.n_neurons, s["with_trial_end"])
        train, val = split_indices(len(trials), s["val_fraction"], s["seed"])
        meta = {"source": "synthetic", "model": s["model"], "model_spec": spec,
                "n_datasamples": 1, "n_neurons": int(model.n_neurons),
                "n_trials": len(trials), "with_trial_end": s["with_trial_end"],
                "duration": s["duration"], "dt": s["dt"], "seed": s["seed"],
                "splits": [{"train": train, "val": val}], "run_id": run_id,
                "conditions": ["all"]}
        store.save_dataset(s["dataset_name"], [spikedata_to_bytes(data)], meta, latent)
        store.update_run(run_id, refs={"model": s["model"], "dataset": s["dataset_name"]})
        store.finish_run(run_id, DONE, message=f"{len(trials)} trials in "
                         f"{time.time() - t0:.2f} s")
        return DONE
    except Exception as exc:  # the reason goes to the store, never to a browser
        store.finish_run(run_id, FAILED, error=_reason(exc), message="failed")
        return FAILED


# ---------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------
def validate_fit(settings: dict) -> dict:
    """Check fit settings; return them normalised. Raises ValueError."""
    s = dict(settings)
    if not s.get("dataset"):
        raise ValueError("choose a dataset")
    if not s.get("init_model"):
        raise ValueError("choose an initial model")
    if s.get("optimizer") not in ("GD", "ADAM"):
        raise ValueError(f"optimizer must be 'GD' or 'ADAM', got {s.get('optimizer')!r}")
    params = list(s.get("params_to_opt") or [])
    bad = [p for p in params if p not in FIT_PARAMS]
    if not params or bad:
        raise ValueError(f"params_to_opt must be a non-empty subset of {FIT_PARAMS}, got {params!r}")
    s["params_to_opt"] = [p for p in FIT_PARAMS if p in params]
    for key, lo, hi in (("max_epochs", 1, 100000), ("mini_batch_number", 1, 10000)):
        try:
            s[key] = int(s[key])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{key} must be an integer, got {settings.get(key)!r}") from None
        if not lo <= s[key] <= hi:
            raise ValueError(f"{key} must be between {lo} and {hi}, got {s[key]}")
    if s.get("Nv") in (None, ""):
        s["Nv"] = None
    else:
        s["Nv"] = int(s["Nv"])
        if s["Nv"] < 2:
            raise ValueError(f"Nv must be at least 2, got {s['Nv']}")
    lr = dict(s.get("learning_rate") or {})
    if s["optimizer"] == "GD":
        missing = [p for p in s["params_to_opt"] if p not in lr]
        if missing:
            raise ValueError(f"GD needs a learning rate for {missing}")
        lr = {p: float(lr[p]) for p in s["params_to_opt"]}
    else:
        lr = {"alpha": float(lr.get("alpha", 0.05))}
    if any(v <= 0 for v in lr.values()):
        raise ValueError(f"learning rates must be positive, got {lr}")
    s["learning_rate"] = lr
    snaps = sorted({int(e) for e in (s.get("snapshot_epochs") or DEFAULT_SNAPSHOTS)})
    if any(e < 0 for e in snaps):
        raise ValueError(f"snapshot epochs must be ≥ 0, got {snaps}")
    s["snapshot_epochs"] = snaps
    s["seed"] = int(s.get("seed") or 0)
    s["pace"] = float(s.get("pace") or 0.0)
    if not 0.0 <= s["pace"] <= MAX_PACE:
        raise ValueError(f"pace must be between 0 and {MAX_PACE:g} seconds per epoch, got {s['pace']}")
    return s


def _snapshot(model, params: tuple) -> dict:
    arrays = model_arrays(model)
    arrays.pop("x")
    if "F0" not in params:
        arrays["p0"] = None
    if not ({"Fr", "C"} & set(params)):
        arrays["fr"] = None
    return arrays


def run_fit(store_path, run_id: str, fit_fn=None, parent_pid: int | None = None) -> str:
    """Run the fit of run ``run_id``; every epoch goes to the store.

    ``fit_fn`` defaults to :func:`flowdash.core.fitting.fit` (tests pass a
    fake with the same signature). Returns the final status.
    """
    store = RunStore(store_path)
    record = store.get_run(run_id)
    if record is None or record["status"] != "queued":
        return record["status"] if record else FAILED
    store.update_run(run_id, status=RUNNING, started=time.time(), pid=os.getpid(),
                     pid_started=_create_time(), message="loading data")
    try:
        s = validate_fit(record["settings"])
        from .core.fitting import FitOptions

        if fit_fn is None:
            from .core.fitting import fit as fit_fn
        train, val, meta = train_val(store, s["dataset"])
        spec = store.get_model(s["init_model"])
        if spec is None:
            raise ValueError(f"no saved model named {s['init_model']!r}")
        model = build_model(spec, n_datasamples=len(train),
                            peq_override=s.get("peq_override"))
        options = FitOptions(optimizer=s["optimizer"], max_epochs=s["max_epochs"],
                             mini_batch_number=s["mini_batch_number"],
                             params_to_opt=tuple(s["params_to_opt"]),
                             learning_rate=s["learning_rate"], seed=s["seed"], Nv=s["Nv"],
                             snapshot_epochs=tuple(s["snapshot_epochs"]))
        store.set_result(run_id, {"x": np.asarray(model.grid.x).tolist(),
                                  "init": model_arrays(model)})
        store.update_run(run_id, message="epoch 0")
        params = tuple(s["params_to_opt"])
        snaps = set(s["snapshot_epochs"]) | {0}
        state = {"stop": None}

        def on_epoch(rec):
            epoch = int(rec.epoch)
            entry = {"epoch": epoch, "nll_train": _finite_list(rec.nll_train),
                     "nll_val": _finite_list(rec.nll_val),
                     "elapsed": float(rec.seconds), "time": time.time(),
                     "D": np.atleast_1d(np.asarray(rec.model.D, float)).tolist()}
            if epoch in snaps or epoch == s["max_epochs"]:
                entry["snapshot"] = _snapshot(rec.model, params)
            store.append_epoch(run_id, entry)
            store.set_latest(run_id, dict(_snapshot(rec.model, params), epoch=epoch))
            store.update_run(run_id, progress=epoch / s["max_epochs"],
                             message=f"epoch {epoch} of {s['max_epochs']}")
            if s["pace"] > 0:  # a lecture's slow motion: let the class watch each epoch land
                time.sleep(s["pace"])
            if store.cancel_requested(run_id):
                state["stop"] = CANCELLED
            elif parent_pid is not None and os.getppid() != parent_pid:
                state["stop"] = INTERRUPTED
            return state["stop"] is not None

        result = fit_fn(model, train if len(train) > 1 else train[0],
                        None if val is None else (val if len(val) > 1 else val[0]),
                        options, on_epoch=on_epoch)
        store.set_result(run_id, dict(store.get_result(run_id) or {},
                                      final=model_arrays(result.model),
                                      seconds=float(getattr(result, "seconds", 0.0))))
        if state["stop"] == CANCELLED:
            n = store.n_epochs(run_id) - 1
            store.finish_run(run_id, CANCELLED, message=f"cancelled after epoch {n}")
            return CANCELLED
        if state["stop"] == INTERRUPTED:
            store.finish_run(run_id, INTERRUPTED, error="the server stopped",
                             message="interrupted")
            return INTERRUPTED
        store.finish_run(run_id, DONE, message=f"{s['max_epochs']} epochs")
        return DONE
    except Interrupted:
        store.finish_run(run_id, INTERRUPTED, error="the worker was stopped (server shutdown)",
                         message="interrupted")
        return INTERRUPTED
    except Exception as exc:
        store.finish_run(run_id, FAILED, error=_reason(exc), message="failed")
        return FAILED


# ---------------------------------------------------------------------------
# worker processes
# ---------------------------------------------------------------------------
def _on_sigterm(signum, frame):
    raise Interrupted()


def _worker_main(store_path, run_id, kind, fn, parent_pid):
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(1)  # one BLAS thread per worker (PERF_NOTES)
    except Exception:  # pragma: no cover - threadpoolctl is optional here
        limiter = None
    try:
        if kind == "fit":
            run_fit(store_path, run_id, fit_fn=fn, parent_pid=parent_pid)
        else:
            try:
                run_generation(store_path, run_id, simulate_fn=fn)
            except Interrupted:
                RunStore(store_path).finish_run(run_id, INTERRUPTED, error="worker stopped")
    finally:
        if limiter is not None:
            limiter.unregister()


def _spawn(store_path, run_id, kind, fn) -> int:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_worker_main, name=f"flowdash-{kind}-{run_id}",
                       args=(str(store_path), run_id, kind, fn, os.getpid()), daemon=True)
    proc.start()
    store = RunStore(store_path)
    record = store.get_run(run_id)
    if record is not None and record["pid"] is None:
        import psutil
        try:
            started = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            started = None
        store.update_run(run_id, pid=proc.pid, pid_started=started)
    # reap the worker when it ends (no zombies, no module-level registry)
    threading.Thread(target=proc.join, daemon=True, name=f"reap-{run_id}").start()
    return proc.pid


def start_fit(store_path, settings: dict, name: str | None = None, fit_fn=None) -> str:
    """Validate, record a queued fit and start its worker; return the run id."""
    s = validate_fit(settings)
    store = RunStore(store_path)
    run_id = store.create_run("fit", name or f"fit {s['dataset']}", s,
                              refs={"dataset": s["dataset"], "model": s["init_model"]})
    _spawn(store_path, run_id, "fit", fit_fn)
    return run_id


def create_generation(store_path, settings: dict, name: str | None = None) -> str:
    """Validate and record a queued generation run (to run elsewhere)."""
    s = validate_generation(settings)
    store = RunStore(store_path)
    return store.create_run("generation", name or f"generate {s['dataset_name']}", s,
                            refs={"model": s["model"], "dataset": s["dataset_name"]})


def start_generation(store_path, settings: dict, name: str | None = None,
                     simulate_fn=None) -> str:
    """Like :func:`start_fit`, for data generation in a worker process."""
    run_id = create_generation(store_path, settings, name)
    _spawn(store_path, run_id, "generation", simulate_fn)
    return run_id


def cancel(store_path, run_id: str) -> None:
    """Request a cancel; the worker stops at its next check."""
    RunStore(store_path).request_cancel(run_id)


def recover(store_path) -> list[str]:
    """Mark runs whose process is gone as interrupted (call at server start)."""
    return RunStore(store_path).mark_interrupted()


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------
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
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def export_settings_json(store: RunStore, run_id: str) -> str:
    """The run record (settings, refs, status, times) as JSON text."""
    record = store.get_run(run_id)
    if record is None:
        raise ValueError(f"no run {run_id!r}")
    return json.dumps(record, indent=2, default=str)


# ---------------------------------------------------------------------------
def _finite_list(values):
    """Floats as a JSON-able list, one entry per datasample, NaN/inf -> None.

    The length never depends on the values, so every epoch of a run has the
    same number of entries (None stays None: no validation set).
    """
    if values is None:
        return None
    return [float(v) if np.isfinite(v) else None
            for v in np.atleast_1d(np.asarray(values, float))]


def nll_array(values) -> np.ndarray:
    """A stored NLL list (None = not finite) as floats with NaN."""
    return np.array([np.nan if v is None else v for v in values], float)


def _create_time():
    try:
        import psutil
        return psutil.Process(os.getpid()).create_time()
    except Exception:  # pragma: no cover
        return None


def _reason(exc: BaseException) -> str:
    """A one-line reason for the user (the traceback stays in the store log)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 500 else text[:497] + "..."


def _traceback_text() -> str:  # pragma: no cover - debugging aid
    return traceback.format_exc()
