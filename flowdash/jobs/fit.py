"""The job kind ``fit``: gradient descent on a saved dataset, every epoch to the store.

What a fit leaves in the store, whatever stops it:

* one epoch record per epoch (``append_epoch`` at index k for epoch k, so a
  repeated append is a no-op and a gap an error), with the parameters at the
  snapshot epochs (the store keeps those as float32 display copies);
* ``latest``: the fitted parameters after the last recorded epoch (float64,
  written every epoch, so even a killed worker leaves it);
* ``result``: the grid, the initial model, the ground truth, the ground
  truth's NLL on the training data in the fit's likelihood setting
  (``nll_gt``, the yardstick of the 2021 figures; or ``nll_gt_note``, why
  there is none) and, when the fit ends in any way but a kill, ``final``
  (every array of the model after the last recorded epoch) and ``seconds``;
* the checkpoint (``set_checkpoint``: :meth:`FitCheckpoint.to_bytes`) of
  the last recorded epoch when the fit ends in any way but a kill: done,
  cancelled, interrupted (the first or the second signal) or diverged; and
  at its first epoch and then every :data:`CHECKPOINT_SECONDS` while it runs,
  so a killed worker loses at most that much and can always be continued. ``fit(..., resume=FitCheckpoint.from_bytes(
  store.get_checkpoint(run_id)))`` with the run's ``refs["model_spec"]``,
  dataset and settings continues it exactly;
* with ``record_models`` (a model selection's fits, and long fits): the
  model at each epoch of the core's ``RecordingSchedule`` (dense early,
  sparse late) and at the last epoch, as the epoch record's ``model``
  (``store.read_models``): the fitted densities and D as float64 (the
  analysis reads them exactly as fitted), fitted rates as float32 (only the
  analysis's mirror check reads them). Parameters that are not fitted stay
  those of ``result["init"]``.

A run that :func:`flowdash.jobs.lifecycle.continue_run` queued again finds
its checkpoint and resumes from it: the epochs after it are appended to the
same log (one NLL curve), ``result["init"]`` stays the first start.
"""
from __future__ import annotations

import time

import numpy as np

from .. import names
from ..settings import SettingsError, check_fit, fit_options
from . import kinds
from .data import (build_model, finite_list, fit_initial_spec, model_arrays, reason, train_val,
                   truth_arrays)
from .runner import Interrupted, JobFailed

#: A tiny fit that loads the likelihood and fitting kernels (worker warm-up).
WARM_SPEC = {"grid": {"Np": 4, "Ne": 4}, "boundary_mode": "reflecting",
             "peq_model": {"model": "cos_square", "params": {}}, "p0_model": None, "D": 1.0,
             "fr_model": [{"model": "rectified_linear", "params": {"slope": 50}}]}


#: While a fit runs, its checkpoint is saved at least this often (s).
CHECKPOINT_SECONDS = 30.0


def check(values: dict, store):
    """Settings, refs and default name of a fit (see ``check_fit``).

    ``values["selection"]`` (``{"id": selection id, "half": 0 | 1}``, set by
    :func:`flowdash.jobs.selection.submit_selection`) links the fit to its
    model selection in ``refs["selection"]``.
    """
    s, errors = check_fit(values, store)
    link = values.get("selection")
    if link is not None and not (isinstance(link, dict) and names.is_run_id(link.get("id"))
                                 and link.get("half") in (0, 1)):
        errors["selection"] = "expected {'id': a selection id, 'half': 0 or 1}"
    if errors:
        raise SettingsError(errors)
    refs = {"dataset": s["dataset"], "model": s["init_model"],
            "model_spec": store.get_model(s["init_model"]),
            "dataset_meta": store.get_dataset_meta(s["dataset"])}
    if link is not None:
        refs["selection"] = {"id": link["id"], "half": int(link["half"])}
    half = f" (half {s['half']['index'] + 1})" if s.get("half") else ""
    return s, refs, f"fit {s['dataset']}{half}"


def _snapshot(model, params: tuple) -> dict:
    """The fitted parameters of a model (others None) as arrays (the store packs
    them as npz: no conversion to lists every epoch)."""
    return {"peq": np.asarray(model.peq),
            "p0": None if model.p0 is None or "F0" not in params else np.asarray(model.p0),
            "D": np.atleast_1d(np.asarray(model.D, float)),
            "fr": np.asarray(model.fr) if {"Fr", "C"} & set(params) else None}


def _recorded(model, params: tuple) -> dict:
    """What the analysis keeps of a recorded model: the fitted densities and D in
    float64, fitted rates in float32 (read by the mirror check only)."""
    out = _snapshot(model, params)
    if out["fr"] is not None:
        out["fr"] = out["fr"].astype(np.float32)
    return out


def run(store, run_id: str, hooks, fit_fn=None) -> str:
    """Fit the run's initial model to its dataset; returns the summary.

    ``fit_fn`` defaults to :func:`flowdash.core.fitting.fit` (tests pass a
    fake with the same signature).
    """
    from ..core.fitting import FitDiverged

    if fit_fn is None:
        from ..core.fitting import fit as fit_fn
    from ..core.fitting import FitCheckpoint

    s = hooks.settings
    hooks.progress(message="loading data")
    try:
        train, val, meta = train_val(store, s["dataset"], s.get("half"))
    except ValueError as exc:  # e.g. the dataset was deleted before a continuation
        raise JobFailed(f"the data cannot be read: {exc}") from None
    spec = fit_initial_spec(store, hooks.record)
    if spec is None:
        raise JobFailed(f"there is no saved model named “{s['init_model']}”")
    model = build_model(spec, n_datasamples=len(train))
    options = fit_options(s)
    blob = store.get_checkpoint(run_id)
    resume = None
    if blob is not None:  # queued again by continue_run: go on from the saved state
        try:
            resume = FitCheckpoint.from_bytes(blob)
        except ValueError as exc:
            raise JobFailed(f"this run's checkpoint cannot be read ({exc}); start a new fit") from None
    else:   # the result (with the ground truth's NLL) of the first start stays
        hooks.progress(message="the ground truth's NLL")
        store.set_result(run_id, {"x": np.asarray(model.grid.x).tolist(),
                                  "init": model_arrays(model), "truth": truth_arrays(meta),
                                  **ground_truth_yardstick(meta, train, model)})
    hooks.progress(message="epoch 0" if resume is None else f"continuing after epoch {resume.epoch}")
    params = tuple(s["params_to_opt"])
    snaps = set(s["snapshot_epochs"]) | {0}
    record_models = bool(s.get("record_models"))
    last = {"model": model if resume is None else resume.model(model),
            "epoch": None if resume is None else resume.epoch, "record": None,
            "saved": -float("inf")}   # the first epoch saves one: a fit killed early continues too

    def on_epoch(rec):
        epoch = int(rec.epoch)
        stop = hooks.should_stop()
        entry = {"epoch": epoch, "nll_train": finite_list(rec.nll_train),
                 "nll_val": finite_list(rec.nll_val),
                 "elapsed": float(rec.seconds), "time": time.time(),
                 "D": np.atleast_1d(np.asarray(rec.model.D, float)).tolist()}
        if epoch in snaps or epoch == s["max_epochs"]:
            entry["snapshot"] = _snapshot(rec.model, params)
        # the schedule's epochs, and the last one of a fit that stops here
        if record_models and (getattr(rec, "kept", True) or stop or epoch == s["max_epochs"]):
            entry["model"] = _recorded(rec.model, params)
        store.append_epoch(run_id, entry, expected=epoch)
        store.set_latest(run_id, dict(_snapshot(rec.model, params), epoch=epoch))
        last.update(model=rec.model, epoch=epoch, record=rec)
        if time.monotonic() - last["saved"] >= CHECKPOINT_SECONDS:  # a kill loses little
            checkpoint = _checkpoint_of(rec)
            if checkpoint is not None:
                store.set_checkpoint(run_id, checkpoint.to_bytes())
            last["saved"] = time.monotonic()
        hooks.progress(epoch / s["max_epochs"], f"epoch {epoch} of {s['max_epochs']}")
        if s["pace"] > 0 and not stop:  # a lecture's slow motion: let the class watch each epoch land
            stop = hooks.sleep(s["pace"])
        return stop

    def keep(final_model, seconds=None, checkpoint=None):
        result = dict(store.get_result(run_id) or {}, final=model_arrays(final_model))
        if seconds is not None:
            result["seconds"] = float(seconds)
        store.set_result(run_id, result)
        if checkpoint is not None and last["epoch"] is not None:
            store.set_checkpoint(run_id, checkpoint.to_bytes())

    t0 = time.time()
    extra = {} if resume is None else {"resume": resume}
    try:
        result = fit_fn(model, train if len(train) > 1 else train[0],
                        None if val is None else (val if len(val) > 1 else val[0]),
                        options, on_epoch=on_epoch, **extra)
    except FitDiverged as exc:  # the finite epochs stay; say what went wrong
        keep(exc.result.model, getattr(exc.result, "seconds", None),
             getattr(exc.result, "checkpoint", None))
        if last["epoch"] is None:
            raise JobFailed(epoch0_message(model, train, val, exc)) from None
        raise JobFailed(str(exc)) from None
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        if last["epoch"] is not None:
            raise
        raise JobFailed(epoch0_message(model, train, val, exc)) from None
    except Interrupted:  # stopped at once: keep the last recorded epoch's arrays and state
        before = 0.0 if resume is None else resume.seconds
        keep(last["model"], before + time.time() - t0, _checkpoint_of(last["record"]))
        raise
    keep(result.model, result.seconds, getattr(result, "checkpoint", None))
    n = last["epoch"] or 0
    if hooks.stopped:
        return f"{hooks.stopped} after epoch {n}"
    return f"{s['max_epochs']} epochs"


#: Why a run has no ground-truth NLL (``nll_gt_note``): its data is not synthetic.
NO_TRUTH = "no ground truth: the dataset is not synthetic (recorded or uploaded data)"


def ground_truth_yardstick(meta: dict, train, model) -> dict:
    """``{"nll_gt": NLL}`` of the ground truth on the training data, or
    ``{"nll_gt_note": why not}``.

    The truth is the dataset's model spec (synthetic data keeps it in its
    meta), on its own grid, with every eigenpair; the likelihood setting
    (boundary conditions, absorption step) is the fit's (``model``):
    :func:`flowdash.core.likelihood.ground_truth_nll`. Summed over the
    datasamples, like the fit's training NLL.
    """
    from ..core.likelihood import ground_truth_nll

    spec = (meta or {}).get("model_spec")
    if not spec:
        return {"nll_gt_note": NO_TRUTH}
    try:
        truth = build_model(spec)
        value = ground_truth_nll(truth, list(train), model)
    except (ValueError, TypeError, KeyError, ArithmeticError, np.linalg.LinAlgError) as exc:
        return {"nll_gt_note": f"the ground truth's NLL could not be computed ({reason(exc)})"}
    if not np.isfinite(value):
        return {"nll_gt_note": "the ground truth's NLL is not finite on this data"}
    return {"nll_gt": float(value)}


def _checkpoint_of(rec):
    """The checkpoint after a recorded epoch (``EpochRecord.checkpoint``); None
    without a record or for a record that carries none (a test's fake core)."""
    try:
        return rec.checkpoint()
    except (AttributeError, ValueError):
        return None


# ---------------------------------------------------------------------------
# an initial model that cannot explain the data
# ---------------------------------------------------------------------------
def epoch0_message(model, train, val, exc: Exception) -> str:
    """Why the initial model fails at epoch 0, before any step (so not the learning rate)."""
    from ..core.fitting import FitDiverged

    findings = initial_model_problems(model, list(train) + list(val or []))
    if isinstance(exc, ValueError) and not isinstance(exc, FitDiverged) and not findings:
        return str(exc)  # a setting the core refused before epoch 0: its own message is clear
    # FitDiverged's own text advises a smaller learning rate: not at epoch 0
    cause = "" if isinstance(exc, FitDiverged) else f" ({type(exc).__name__}: {exc})"
    detail = "; ".join(findings) if findings else (
        "check that p0 has mass where the latent can start (away from absorbing walls), that "
        "every neuron that spikes has a positive rate where the latent can be, and that the "
        f"model has as many neurons as the data{cause}")
    return ("The initial model cannot explain the data: its likelihood is not finite at "
            f"epoch 0, before any step, so the learning rate is not the cause. {detail}.")


def initial_model_problems(model, datasets) -> list[str]:
    """What in an initial model makes the data impossible (a list of findings)."""
    grid, out = model.grid, []
    n_data = max((d.n_neurons for d in datasets), default=0)
    if n_data > model.n_neurons:
        out.append(f"the data has {n_data} neurons but the model has {model.n_neurons}")
    counts = np.zeros(max(n_data, model.n_neurons), dtype=np.int64)
    for d in datasets:
        counts[:d.n_neurons] += d.n_spikes()
    w = np.asarray(grid.w)
    for k in range(model.n_datasamples):
        where = f" (datasample {k})" if model.n_datasamples > 1 else ""
        D = float(model.D_of(k))
        if not np.isfinite(D) or D <= 0:
            out.append(f"D{where} is {D:g}; it must be a finite number > 0")
        peq = np.asarray(model.peq_of(k), float)
        if not np.all(np.isfinite(peq)) or w @ peq <= 0:
            out.append(f"peq{where} is not a finite density with a positive integral")
        p0 = np.asarray(model.p0_of(k), float)
        mass = float(w @ p0)
        if not np.isfinite(mass) or mass <= 0:
            out.append(f"p0{where} has no mass")
        elif model.boundary_mode == "absorbing":
            inside = float(w[1:-1] @ p0[1:-1]) / mass
            edge = max(float(w[:grid.Np] @ p0[:grid.Np]), float(w[-grid.Np:] @ p0[-grid.Np:]))
            if inside < 1e-9 or edge / mass > 1 - 1e-6:
                out.append(f"p0{where} puts (almost) all its mass on an absorbing wall, where "
                           "the latent is absorbed at once; move it inside the domain")
        fr = np.asarray(model.fr_of(k), float).reshape(len(grid.x), -1)
        for n in range(min(fr.shape[1], len(counts))):
            if not np.all(np.isfinite(fr[:, n])):
                out.append(f"the rate of neuron {n + 1}{where} is not finite")
            elif counts[n] > 0 and fr[:, n].max() <= 0:
                out.append(f"neuron {n + 1} fires {counts[n]} spikes but its rate{where} is 0 "
                           "everywhere")
            elif counts[n] > 0 and float(p0[fr[:, n] > 0] @ w[fr[:, n] > 0]) <= 1e-12 * mass:
                out.append(f"neuron {n + 1} fires but its rate{where} is 0 wherever p0 puts "
                           "mass")
    return out


def warm() -> None:
    """Load the likelihood and fitting kernels (one epoch on a tiny model)."""
    from ..core.fitting import FitOptions, fit
    from ..core.simulation import simulate

    model = build_model(WARM_SPEC)
    data = simulate(model, 2, 0.5, dt=1e-3, seed=0, with_trial_end=True).data
    fit(model, data.subset([0]), data.subset([1]),
        FitOptions(optimizer="GD", max_epochs=1, params_to_opt=("F",),
                   learning_rate={"F": 0.005}))


kinds.register("fit", check, run, warm)
