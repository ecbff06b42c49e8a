"""The job kind ``viterbi``: the most likely latent paths of chosen trials (MATH.md §10.4).

A decode takes a saved dataset (one datasample of it), a model and trials:

* the model is a saved model (``model``: its name), or a fit run's model
  (``fit_run``: the run id, ``epoch``: ``"final"`` for the model after its
  last epoch, or the number of a recorded epoch, whose snapshot is used).
  A model chosen by feature consistency is one of these: a saved model, or
  a fit run's recorded epoch;
* ``trials``: text such as ``"0-4, 7"`` or a list of indices (at most
  :data:`MAX_TRIALS`), within the datasample's trials;
* ``Nv``: eigenpairs of the dark operator (blank: N − 2), as in the likelihood.

The run decodes one trial after the other (progress per trial; a cancel
stops it between trials and keeps the paths decoded so far) and leaves its
paths as the run's result (JSON, :func:`path_record` per trial): per trial
the times ``t`` (s), the latent ``x`` and node ``state_inds`` of the path,
the neuron ``ids`` of the intervals (so the raster comes with the path) and
the ``log_score``; beside them the grid ``x_grid``, the ``peq`` and the rates
``fr`` (N, neurons) of the model row used. :func:`paths_npz` exports them.
"""
from __future__ import annotations

import io
import time

import numpy as np

from ..settings import (SettingsError, check_model_spec, format_number, parse_number,
                        parse_trials, spec_neurons, spec_nodes)
from ..core.limits import Limit
from . import kinds
from .data import build_model, fit_initial_spec, load_dataset
from .runner import JobFailed, Stopped

#: Most trials of one decode.
MAX_TRIALS = 50
#: Most path points of one decode (the run's result stays below ~10 MB of JSON).
MAX_POINTS = 200_000
#: Most (intervals × N²) of one decode: the plain cost of the recursion, O(S·N²);
#: about 30 times the ``example1`` validation trial on its N = 1793 grid (W8).
MAX_WORK = 1e12
#: Most (intervals × N) of one trial: its back-pointers (2 or 4 bytes each).
MAX_TRIAL_CELLS = 100_000_000
#: ``epoch`` of a fit run's model after its last epoch.
FINAL = "final"

#: A tiny decode that loads the Viterbi kernels (worker warm-up): the kernel-table decoder
#: of coarse grids. :func:`warm` also decodes on a grid just finer than the core's
#: ``TABLE_MAX_N`` (absorbing), which the tile decoder takes: a fit's model (a paper
#: preset's grid) is often that fine, and compiling the tile kernels took ~15–30 s of the
#: user's first decode.
WARM_SPEC = {"grid": {"Np": 4, "Ne": 4}, "boundary_mode": "reflecting",
             "peq_model": {"model": "cos_square", "params": {}}, "p0_model": None, "D": 1.0,
             "fr_model": [{"model": "rectified_linear", "params": {"slope": 50}}]}


def warm_specs() -> list[dict]:
    """The models :func:`warm` decodes with: one per decoder of the core (tables, tiles)."""
    from ..core.viterbi import TABLE_MAX_N

    Np = WARM_SPEC["grid"]["Np"]
    tiles = dict(WARM_SPEC, boundary_mode="absorbing",
                 grid={"Np": Np, "Ne": TABLE_MAX_N // (Np - 1) + 1})   # N = (Np-1)·Ne + 1
    return [WARM_SPEC, tiles]


# ---------------------------------------------------------------------------
# the model of a decode
# ---------------------------------------------------------------------------
def spec_rows(spec: dict) -> int:
    """Parameter rows of a saved spec (1: shared by every datasample)."""
    return max([1, *[int(v) for v in (spec.get("params_size") or {}).values()]])


def fit_run_model(store, run_id: str, epoch=FINAL):
    """A fit run's model: after its last epoch (``epoch="final"``) or at a recorded epoch.

    The grid and boundary settings are those the fit used (its initial model
    with its overrides, :func:`flowdash.jobs.data.fit_initial_spec`). At an
    epoch, the recorded model (float64 densities and D: a long fit's or a
    model selection's, on the ``RecordingSchedule``) if there is one, else the
    snapshot (float32 display copies); either holds the fitted parameters
    only, the others are the initial model's. Raises ValueError saying what
    is missing.
    """
    from ..core.grid import Grid
    from ..core.model import Model

    record = store.get_run(run_id)
    if record is None or record["kind"] != "fit":
        raise ValueError(f"there is no fit run {str(run_id)[:40]!r}")
    spec = fit_initial_spec(store, record)
    result = store.get_result(run_id) or {}
    if not spec or "init" not in result:
        raise ValueError(f"the fit run “{record['name']}” recorded no model")
    if epoch in (None, "", FINAL):
        arrays = result.get("final")
        if arrays is None:
            raise ValueError(f"the fit run “{record['name']}” has no final model (it is "
                             f"{record['status']}); choose a recorded epoch")
    else:
        snap = store.read_models(run_id, [int(epoch)])[0] \
            if int(epoch) in store.model_epochs(run_id) else store.read_snapshot(run_id, int(epoch))
        if snap is None:
            raise ValueError(f"epoch {epoch} of the fit run “{record['name']}” has no recorded "
                             "model")
        arrays = {k: (result["init"].get(k) if snap.get(k) is None else snap[k])
                  for k in ("peq", "p0", "D", "fr")}
    g = spec["grid"]
    grid = Grid(int(g["Np"]), int(g["Ne"]), float(g.get("xbegin", -1.0)),
                float(g.get("xend", 1.0)))
    return Model(grid, np.asarray(arrays["peq"], float),
                 None if arrays.get("p0") is None else np.asarray(arrays["p0"], float),
                 np.atleast_1d(np.asarray(arrays["D"], float)), np.asarray(arrays["fr"], float),
                 boundary_mode=spec.get("boundary_mode", "reflecting"),
                 boundary_conditions=spec.get("boundary_conditions"),
                 absorption_step=spec.get("absorption_step"))


def _fit_run_choice(store, run_id, epoch, errors: dict):
    """(spec, rows, epoch, label) of a fit run's model, or Nones with a message in ``errors``."""
    record = store.get_run(run_id)
    if record is None or record["kind"] != "fit":
        errors["model"] = (f"there is no fit run {str(run_id)[:40]!r}" if record is None else
                           f"the run “{record['name']}” is a {record['kind']} run, not a fit")
        return None, 1, None, None
    spec = fit_initial_spec(store, record)
    result = store.get_result(run_id) or {}
    if not spec or "init" not in result:
        errors["model"] = f"the fit run “{record['name']}” recorded no model yet"
        return None, 1, None, None
    rows = len(np.atleast_2d(result["init"]["peq"]))
    if epoch in (None, "", FINAL):
        if "final" not in result:
            errors["epoch"] = (f"the fit has no final model yet (it is {record['status']}); "
                               "choose a recorded epoch")
        return spec, rows, FINAL, f"{record['name']} · final"
    recorded = sorted(set(store.snapshot_epochs(run_id)) | set(store.model_epochs(run_id)))
    try:
        epoch = parse_number(epoch, Limit("epoch", int, 0))
    except ValueError as exc:
        errors["epoch"] = f"{exc} (a recorded epoch, or final)"
        return spec, rows, None, None
    if epoch not in recorded:
        shown = ", ".join(map(str, recorded[:8])) + (" …" if len(recorded) > 8 else "")
        errors["epoch"] = (f"epoch {epoch} has no recorded model; recorded: {shown or 'none'}, "
                           "or final")
    return spec, rows, epoch, f"{record['name']} · epoch {epoch}"


# ---------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------
def check(values: dict, store):
    """Settings, refs and default name of a decode; raises SettingsError per setting.

    Fields: ``dataset``, ``datasample``, ``model`` / ``fit_run`` + ``epoch``,
    ``trials``, ``Nv``.
    """
    errors: dict = {}
    s = {"dataset": values.get("dataset") or None, "model": values.get("model") or None,
         "fit_run": values.get("fit_run") or None, "epoch": None}
    spec, rows, label = None, 1, None
    if s["model"] and s["fit_run"]:
        errors["model"] = "choose a saved model or a fit run, not both"
    elif s["fit_run"]:
        spec, rows, s["epoch"], label = _fit_run_choice(store, s["fit_run"], values.get("epoch"),
                                                        errors)
    elif s["model"]:
        spec = store.get_model(s["model"])
        if spec is None:
            errors["model"] = f"there is no saved model named “{str(s['model'])[:90]}”"
        else:
            rows, label = spec_rows(spec), s["model"]
    else:
        errors["model"] = "choose a saved model or a fit run"
    if spec is not None and check_model_spec(spec):  # the grid and sizes within the caps
        errors["model"] = "this model exceeds the caps: " + "; ".join(
            f"{k}: {m}" for k, m in check_model_spec(spec).items())
        spec = None

    meta = None
    if not s["dataset"]:
        errors["dataset"] = "choose a dataset"
    else:
        meta = store.get_dataset_meta(s["dataset"])
        if meta is None:
            errors["dataset"] = f"there is no dataset named “{str(s['dataset'])[:90]}”"
    n_samples = int((meta or {}).get("n_datasamples") or 1)
    try:
        s["datasample"] = parse_number(values.get("datasample") or 0,
                                       Limit("datasample", int, 0, n_samples - 1))
    except ValueError as exc:
        errors["datasample"], s["datasample"] = f"{exc} (the dataset's conditions)", 0
    if meta is not None and spec is not None:
        n_data, n_model = meta.get("n_neurons"), spec_neurons(spec)
        if n_data is not None and n_data != n_model:
            errors["model"] = (f"the model has {n_model} neuron(s) but the dataset has {n_data}; "
                               f"decode with a model of the dataset's {n_data} neuron(s)")
        elif rows > 1 and s["datasample"] >= rows and "datasample" not in errors:
            errors["datasample"] = (f"the model has parameters for {rows} datasamples; choose "
                                    f"one in [0, {rows - 1}]")

    N = spec_nodes(spec) if spec is not None else None
    from ..core.spectra import nv_limit
    nv = values.get("Nv")
    s["Nv"] = None
    if nv is not None and str(nv).strip():
        try:
            s["Nv"] = parse_number(nv, nv_limit(N) if N else nv_limit())
        except ValueError as exc:
            errors["Nv"] = str(exc)

    s["trials"] = []
    if meta is not None and "datasample" not in errors:
        try:
            samples, _ = load_dataset(store, s["dataset"])
            data = samples[s["datasample"]]
        except (ValueError, IndexError) as exc:
            errors["dataset"] = f"cannot read the dataset: {exc}"
        else:
            try:
                s["trials"] = parse_trials(values.get("trials"), data.n_trials, MAX_TRIALS)
            except ValueError as exc:
                errors["trials"] = str(exc)
            else:
                _check_size(data, s["trials"], N, errors)
    if errors:
        raise SettingsError(errors)
    refs = {"dataset": s["dataset"], "model": label, "model_spec": spec,
            "dataset_meta": meta}
    if s["fit_run"]:
        refs["fit_run"] = s["fit_run"]
    return s, refs, f"decode {s['dataset']}"


def _check_size(data, trials: list[int], N: int | None, errors: dict) -> None:
    """The decode's result, work and memory within the caps (a message for ``trials``)."""
    lengths = [len(data.trials[i][0]) for i in trials]
    points = sum(lengths) + len(lengths)
    if points > MAX_POINTS:
        errors["trials"] = (f"these trials have {format_number(points)} path points (one per "
                            f"spike); at most {format_number(MAX_POINTS)} are decoded at once: "
                            "choose fewer trials")
        return
    if N is None:
        return
    work = float(sum(lengths)) * N * N
    if work > MAX_WORK:
        errors["trials"] = (f"decoding these trials takes intervals × N² = {work:.3g} steps on "
                            f"this model's grid (N = {N}); at most {MAX_WORK:.0e} are allowed: "
                            "choose fewer trials or a coarser grid")
        return
    longest = max(lengths, default=0)
    if longest * N > MAX_TRIAL_CELLS:
        errors["trials"] = (f"trial {trials[lengths.index(longest)]} has {longest} intervals: "
                            f"× N = {N} nodes that is {format_number(longest * N)} back-pointers;"
                            f" at most {format_number(MAX_TRIAL_CELLS)} per trial: choose a "
                            "coarser grid")


# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------
def path_record(path, ids) -> dict:
    """One decoded trial as plain data (see the module docstring)."""
    return {"trial": int(path.trial), "t": np.asarray(path.t, float).tolist(),
            "x": np.asarray(path.x, float).tolist(),
            "state_inds": np.asarray(path.state_inds, int).tolist(),
            "ids": np.asarray(ids, int).tolist(), "log_score": float(path.log_score)}


def decode_model(store, settings: dict, refs: dict):
    """The core Model a decode's settings name (ValueError if it is gone)."""
    if settings.get("fit_run"):
        return fit_run_model(store, settings["fit_run"], settings.get("epoch") or FINAL)
    spec = refs.get("model_spec") or store.get_model(settings["model"])
    if spec is None:
        raise ValueError(f"there is no saved model named “{settings['model']}”")
    return build_model(spec)


def run(store, run_id: str, hooks, viterbi_fn=None) -> str:
    """Decode the run's trials one after the other; returns the summary.

    ``viterbi_fn`` defaults to :func:`flowdash.core.viterbi.viterbi` (tests
    pass a wrapper with the same signature).
    """
    from ..core.likelihood import Operators

    if viterbi_fn is None:
        from ..core.viterbi import viterbi as viterbi_fn
    s = hooks.settings
    hooks.progress(0.0, "loading the data and the model")
    try:
        samples, _ = load_dataset(store, s["dataset"])
        data = samples[s["datasample"]]
        model = decode_model(store, s, hooks.record.get("refs") or {})
    except (ValueError, IndexError) as exc:
        raise JobFailed(f"cannot decode: {exc}") from None
    if data.n_neurons != model.n_neurons:  # the check saw the dataset's meta; the data decide
        raise JobFailed(f"the model has {model.n_neurons} neuron(s) but the data have "
                        f"{data.n_neurons}")
    row = s["datasample"] if model.n_datasamples > 1 else 0
    t0 = time.time()
    try:
        ops = Operators.build(model, row, s.get("Nv"))
    except ValueError as exc:
        raise JobFailed(f"cannot build the model's operators: {exc}") from None
    trials = list(s["trials"])
    result = {"x_grid": np.asarray(model.grid.x).tolist(),
              "peq": np.asarray(model.peq_of(row)).tolist(),
              "fr": np.asarray(model.fr_of(row)).tolist(),
              "boundary_mode": model.boundary_mode,
              "boundary_conditions": model.boundary_conditions,
              "Nv": int(len(ops.lQd)), "model_row": row, "trials": trials, "paths": []}

    def keep():
        result["seconds"] = time.time() - t0
        store.set_result(run_id, result)

    for i, trial in enumerate(trials):
        if hooks.should_stop():
            keep()
            raise Stopped(f"{hooks.stopped} after {i} of {len(trials)} trials; the decoded "
                          "paths are kept")
        hooks.progress(message=f"decoding trial {trial} ({i + 1} of {len(trials)})")
        try:
            path = viterbi_fn(model, data, [trial], datasample=row, operators=ops)[0]
        except ValueError as exc:
            keep()
            raise JobFailed(f"trial {trial} cannot be decoded: {exc}"
                            + (f" (the {i} trial(s) before it are kept)" if i else "")) from None
        result["paths"].append(path_record(path, data.trials[trial][1]))
        hooks.progress((i + 1) / len(trials), f"{i + 1} of {len(trials)} trials decoded")
    keep()
    return f"{len(trials)} trial(s) in {result['seconds']:.2f} s"


def warm() -> None:
    """Load the Viterbi kernels of both decoders (tiny models, one short trial each)."""
    from ..core import viterbi as core_viterbi
    from ..core.simulation import simulate

    for spec in warm_specs():
        model = build_model(spec)
        core_viterbi.viterbi(model, simulate(model, 1, 0.2, dt=1e-3, seed=0,
                                             with_trial_end=True).data)


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------
def paths_npz(result: dict) -> bytes:
    """A decode's paths as npz bytes (no pickles).

    Keys: ``trials`` (the decoded trial indices), ``log_score`` (one per
    trial), ``x_grid``, ``peq``, ``fr`` (N, neurons); per decoded trial i
    ``trial_<i>_t``, ``trial_<i>_x``, ``trial_<i>_state_inds``, ``trial_<i>_ids``.
    """
    paths = (result or {}).get("paths") or []
    arrays = {"trials": np.array([p["trial"] for p in paths], dtype=np.int64),
              "log_score": np.array([p["log_score"] for p in paths], float)}
    for key in ("x_grid", "peq", "fr"):
        if (result or {}).get(key) is not None:
            arrays[key] = np.asarray(result[key], float)
    for p in paths:
        i = p["trial"]
        arrays[f"trial_{i}_t"] = np.asarray(p["t"], float)
        arrays[f"trial_{i}_x"] = np.asarray(p["x"], float)
        arrays[f"trial_{i}_state_inds"] = np.asarray(p["state_inds"], np.int64)
        arrays[f"trial_{i}_ids"] = np.asarray(p["ids"], np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


kinds.register("viterbi", check, run, warm)
