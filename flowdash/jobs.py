"""The job layer: data generation and fits, recorded in the run store.

Importable without dash; it uses :mod:`flowdash.core`, :mod:`flowdash.store`
and :mod:`flowdash.settings` (the checks of every setting).

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
import logging
import multiprocessing
import os
import signal
import threading
import time

import numpy as np

from .settings import SettingsError, check_fit, check_generation, fit_options
from .store import CANCELLED, DONE, FAILED, INTERRUPTED, RunStore

#: At most this many latent samples are kept per trial for display.
LATENT_POINTS = 4000
#: Latent trajectories are kept for at most this many trials.
LATENT_TRIALS = 50

log = logging.getLogger("flowdash.jobs")


class Interrupted(Exception):
    """The worker was asked to stop (SIGTERM: the server shuts down)."""


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


def split_of(meta: dict) -> dict:
    """How a dataset's trials split into training and validation (its meta).

    ``{"kind": "random", "val_fraction": f, "seed": s}`` (``SpikeData.split``),
    ``{"kind": "even_odd"}`` (``even_odd_split``) or ``{"kind": "none"}``.
    """
    return meta.get("split") or {"kind": "none"}


def split_samples(samples, meta):
    """``(train, val)``: lists of SpikeData per datasample (val None: no validation)."""
    from .core.spikedata import even_odd_split

    sp = split_of(meta)
    if "splits" in meta and "split" not in meta:  # stores written before "split" existed
        pairs = [(s.subset(x["train"]), s.subset(x["val"]) if x["val"] else None)
                 for s, x in zip(samples, meta["splits"])]
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


def train_val(store: RunStore, name: str):
    """Training and validation SpikeData per datasample for a saved dataset."""
    samples, meta = load_dataset(store, name)
    train, val = split_samples(samples, meta)
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
def _subsample(t, x, n=LATENT_POINTS):
    step = max(1, int(np.ceil(len(t) / n)))
    return np.asarray(t)[::step].tolist(), np.asarray(x)[::step].tolist()


#: Set by SIGTERM in a worker: the core's trial hook then stops the simulation.
_TERMINATING = threading.Event()


def _on_sigterm(signum, frame):
    _TERMINATING.set()
    raise Interrupted()


def _catch_sigterm():
    """Turn SIGTERM into :class:`Interrupted` (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    return lambda: signal.signal(signal.SIGTERM, old)


def _stopped(store, run_id, what: str) -> str:
    """Record a cancel (if requested) or an interruption; return the status."""
    if store.cancel_requested(run_id):
        store.finish_run(run_id, CANCELLED, message=f"cancelled {what}")
        return CANCELLED
    store.finish_run(run_id, INTERRUPTED, error="the worker was stopped (server shutdown)",
                     message="interrupted")
    return INTERRUPTED


def run_generation(store_path, run_id: str, on_progress=None, simulate_fn=None) -> str:
    """Generate a dataset for run ``run_id`` (settings in its record).

    ``simulate(model, n, seed=s)`` with a progress hook: trial i uses child i
    of ``SeedSequence(s)``, so the dataset equals that call. A blank seed
    draws fresh entropy, which is recorded. ``on_progress(done, total)`` is
    called after each trial (from a worker thread); a cancel request stops
    the simulation. Writes the dataset and returns the final status.
    """
    from .core.simulation import SimulationStopped

    store = RunStore(store_path)
    if not store.start_run(run_id, os.getpid(), _create_time()):
        record = store.get_run(run_id)
        return record["status"] if record else FAILED
    undo = _catch_sigterm()
    t0, done = time.time(), [0]
    try:
        record = store.get_run(run_id)
        s = record["settings"]
        spec = record["refs"].get("model_spec") or store.get_model(s["model"])
        if spec is None:
            raise ValueError(f"there is no saved model named {s['model']!r}")
        if simulate_fn is None:
            from .core.simulation import simulate as simulate_fn
        model = build_model(spec)
        seed = s["seed"] if s.get("seed") is not None else int(np.random.SeedSequence().entropy)
        store.update_run(run_id, seed_used=seed)

        def on_trial(n, total):
            done[0] = n
            store.update_run(run_id, progress=n / total, message=f"trial {n} of {total}",
                             elapsed=time.time() - t0)
            if on_progress is not None:
                on_progress(n, total)
            return _TERMINATING.is_set() or store.cancel_requested(run_id)

        sim = simulate_fn(model, s["n_trials"], s["duration"], dt=s["dt"], seed=seed,
                          with_trial_end=s["with_trial_end"], on_trial=on_trial)
        latent = {"t": [], "x": []}
        for t, x in list(zip(sim.time, sim.x))[:LATENT_TRIALS]:
            t, x = _subsample(t, x)
            latent["t"].append(t)
            latent["x"].append(x)
        data = sim.data
        meta = {"source": "synthetic", "model": s["model"], "model_spec": spec,
                "n_datasamples": 1, "n_neurons": int(model.n_neurons),
                "n_trials": data.n_trials, "with_trial_end": s["with_trial_end"],
                "duration": s["duration"], "dt": s["dt"], "seed": seed,
                "split": random_split(data.n_trials, s["val_fraction"], seed),
                "run_id": run_id, "conditions": ["all"]}
        saved = store.save_dataset(s["dataset_name"], [spikedata_to_bytes(data)], meta, latent,
                                   unless_cancelled=run_id)
        if saved is None:
            return _stopped(store, run_id, f"after {done[0]} trials; no dataset was saved")
        store.finish_run(run_id, DONE, message=f"{data.n_trials} trials in "
                         f"{time.time() - t0:.2f} s")
        return DONE
    except (SimulationStopped, Interrupted):
        return _stopped(store, run_id, f"after {done[0]} trials; no dataset was saved")
    except Exception as exc:  # the reason goes to the store, the traceback to the log
        log.exception("generation run %s failed", run_id)
        store.finish_run(run_id, FAILED, error=_reason(exc), message="failed")
        return FAILED
    finally:
        undo()


# ---------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------
def _snapshot(model, params: tuple) -> dict:
    arrays = model_arrays(model)
    arrays.pop("x")
    if "F0" not in params:
        arrays["p0"] = None
    if not ({"Fr", "C"} & set(params)):
        arrays["fr"] = None
    return arrays


def truth_arrays(meta: dict):
    """{x, peq} of a synthetic dataset's ground truth, or None."""
    spec = (meta or {}).get("model_spec")
    if not spec:
        return None
    try:
        model = build_model(spec)
    except (ValueError, KeyError, TypeError):
        return None
    return {"x": np.asarray(model.grid.x).tolist(), "peq": np.asarray(model.peq).tolist()}


def run_fit(store_path, run_id: str, fit_fn=None, parent_pid: int | None = None) -> str:
    """Run the fit of run ``run_id``; every epoch goes to the store.

    ``fit_fn`` defaults to :func:`flowdash.core.fitting.fit` (tests pass a
    fake with the same signature). Returns the final status.
    """
    from .core.fitting import FitDiverged

    store = RunStore(store_path)
    if not store.start_run(run_id, os.getpid(), _create_time(), message="loading data"):
        record = store.get_run(run_id)
        return record["status"] if record else FAILED
    try:
        record = store.get_run(run_id)
        s = record["settings"]
        if fit_fn is None:
            from .core.fitting import fit as fit_fn
        train, val, meta = train_val(store, s["dataset"])
        spec = record["refs"].get("model_spec") or store.get_model(s["init_model"])
        if spec is None:
            raise ValueError(f"there is no saved model named {s['init_model']!r}")
        model = build_model(spec, n_datasamples=len(train),
                            peq_override=s.get("peq_override"))
        options = fit_options(s)
        store.set_result(run_id, {"x": np.asarray(model.grid.x).tolist(),
                                  "init": model_arrays(model), "truth": truth_arrays(meta)})
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

        def keep(result):
            store.set_result(run_id, dict(store.get_result(run_id) or {},
                                          final=model_arrays(result.model),
                                          seconds=float(getattr(result, "seconds", 0.0))))

        try:
            result = fit_fn(model, train if len(train) > 1 else train[0],
                            None if val is None else (val if len(val) > 1 else val[0]),
                            options, on_epoch=on_epoch)
        except FitDiverged as exc:  # the finite epochs stay; the user sees the remedy
            keep(exc.result)
            store.finish_run(run_id, FAILED, error=str(exc), message="diverged")
            return FAILED
        keep(result)
        n = store.n_epochs(run_id) - 1
        if state["stop"] == CANCELLED:
            store.finish_run(run_id, CANCELLED, message=f"cancelled after epoch {n}")
            return CANCELLED
        if state["stop"] == INTERRUPTED:
            store.finish_run(run_id, INTERRUPTED, error="the server stopped",
                             message="interrupted")
            return INTERRUPTED
        store.finish_run(run_id, DONE, message=f"{s['max_epochs']} epochs")
        return DONE
    except Interrupted:
        return _stopped(store, run_id, f"after epoch {store.n_epochs(run_id) - 1}")
    except Exception as exc:  # the reason goes to the store, the traceback to the log
        log.exception("fit run %s failed", run_id)
        store.finish_run(run_id, FAILED, error=_reason(exc), message="failed")
        return FAILED


# ---------------------------------------------------------------------------
# worker processes
# ---------------------------------------------------------------------------
def _worker_main(store_path, run_id, kind, fn, parent_pid):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    undo = _catch_sigterm()
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(1)  # one BLAS thread per worker (PERF_NOTES)
    except Exception:  # pragma: no cover - threadpoolctl is optional here
        limiter = None
    try:
        if kind == "fit":
            run_fit(store_path, run_id, fit_fn=fn, parent_pid=parent_pid)
        else:
            run_generation(store_path, run_id, simulate_fn=fn)
    finally:
        undo()
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
    """Validate, record a queued fit and start its worker; return the run id.

    Raises :class:`SettingsError` (``errors`` per setting) before anything
    starts. The run's refs keep the model spec and the dataset meta used.
    """
    store = RunStore(store_path)
    s, errors = check_fit(settings, store)
    if errors:
        raise SettingsError(errors)
    meta = store.get_dataset(s["dataset"])["meta"]
    run_id = store.create_run("fit", name or f"fit {s['dataset']}", s,
                              refs={"dataset": s["dataset"], "model": s["init_model"],
                                    "model_spec": store.get_model(s["init_model"]),
                                    "dataset_meta": meta})
    _spawn(store_path, run_id, "fit", fit_fn)
    return run_id


def create_generation(store_path, settings: dict, name: str | None = None) -> str:
    """Validate and record a queued generation run (run by :func:`run_generation`).

    Raises :class:`SettingsError` (``errors`` per setting). The run's refs
    keep the model spec used.
    """
    store = RunStore(store_path)
    s, errors = check_generation(settings, store)
    if errors:
        raise SettingsError(errors)
    return store.create_run("generation", name or f"generate {s['dataset_name']}", s,
                            refs={"model": s["model"], "dataset": s["dataset_name"],
                                  "model_spec": store.get_model(s["model"])})


def start_generation(store_path, settings: dict, name: str | None = None,
                     simulate_fn=None) -> str:
    """Like :func:`start_fit`, for data generation in a worker process (scripts)."""
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
def _finite_list(values):
    """Floats as a JSON-able list, one entry per datasample, NaN/inf -> None.

    The length never depends on the values, so every epoch of a run has the
    same number of entries (None stays None: no validation set).
    """
    if values is None:
        return None
    return [float(v) if np.isfinite(v) else None
            for v in np.atleast_1d(np.asarray(values, float))]


def _create_time():
    try:
        import psutil
        return psutil.Process(os.getpid()).create_time()
    except Exception:  # pragma: no cover
        return None


def _reason(exc: BaseException) -> str:
    """A one-line reason for the user (the traceback goes to the log)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 500 else text[:497] + "..."
