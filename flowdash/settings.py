"""What a run may ask for: the limits of every setting, and their checks.

Field values arrive as text from the pages or as numbers from scripts; each
check returns the normalised settings and a message per setting, so a page
can show every message next to its field. The limits are defined once here
and the pages read them from here. Importable without dash.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from . import names
from .core import spikedata as _spikedata

if TYPE_CHECKING:  # the store imports this module's model caps
    from .store import RunStore

#: Default snapshot epochs (the iterations shown in the paper's Fig. 3).
DEFAULT_SNAPSHOTS = (1, 6, 13, 50)
#: Longest pause after each epoch that a run may ask for (teaching demos), s.
MAX_PACE = 10.0
MAX_SEED = 2**32 - 1

# The limits of every setting, defined once (the pages validate with the same).
#: Generation: key -> (type, min, max).
GEN_LIMITS = {"n_trials": (int, 1, 10000), "duration": (float, 1e-3, 1e5),
              "dt": (float, 1e-6, 0.1), "val_fraction": (float, 0.0, 0.9),
              "seed": (int, 0, MAX_SEED)}
#: Time steps of one generation (trials × duration/dt): the latent paths
#: alone take 16 bytes per step.
MAX_TOTAL_STEPS = 20_000_000
#: Time steps × neurons of one generation (the spike draws).
MAX_STEP_NEURONS = 200_000_000
#: Fit: key -> (type, min, max or None).
FIT_LIMITS = {"max_epochs": (int, 1, 100000), "mini_batch_number": (int, 1, 10000),
              "seed": (int, 0, MAX_SEED), "Nv": (int, 2, None), "pace": (float, 0.0, MAX_PACE)}
#: Uploads: largest file; most neurons, trials and spikes (the file readers' caps).
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_NEURONS = _spikedata.MAX_NEURONS
MAX_TRIALS = _spikedata.MAX_TRIALS
MAX_SPIKES = _spikedata.MAX_SPIKES

# Model caps: the Model form's, applied at every server-side entry point
# (saving a model, starting a generation or a fit), so a forged request or a
# library-saved spec cannot ask for more than the form allows.
#: Nodes per element: the GLL grid needs at least 3 (``flowdash.core.grid.Grid``).
MIN_NP, MAX_NP = 3, 20
MAX_NE = 2000
#: Largest grid, N = (Np − 1)·Ne + 1 nodes.
MAX_GRID_N = 20001
MAX_MODEL_NEURONS = 12
#: Library parameters per model and the length of a list parameter.
MAX_MODEL_PARAMS = 32
MAX_PARAM_LIST = 1000
#: Longest model or dataset name (characters), and longest run name.
MAX_NAME_LENGTH = names.MAX_NAME_LENGTH
MAX_RUN_NAME_LENGTH = names.MAX_RUN_NAME_LENGTH

def _name_error(name: str, what: str) -> str | None:
    try:
        names.validate_name(name, what)
    except ValueError as exc:
        return str(exc)
    return None


class SettingsError(ValueError):
    """Invalid settings; ``errors`` maps each setting to its message."""

    def __init__(self, errors: dict):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {m}" for k, m in self.errors.items()))


# ---------------------------------------------------------------------------
# parsing of field values (text from a form, or numbers from a script)
# ---------------------------------------------------------------------------
def parse_number(value, kind=float, lo=None, hi=None, lo_open: bool = False):
    """A finite number from a field's text (or a number) within [lo, hi].

    ``kind`` is int or float; ``lo_open`` makes the lower bound exclusive.
    Raises ValueError with a message for the field.
    """
    text = "" if value is None else str(value).strip()
    if not text:
        raise ValueError("required")
    try:
        v = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(v):
        raise ValueError("expected a finite number")
    if kind is int:
        if not v.is_integer():
            raise ValueError("expected a whole number")
        v = int(v)
    low_bad = lo is not None and (v <= lo if lo_open else v < lo)
    if low_bad or (hi is not None and v > hi):
        if lo is not None and hi is not None and not lo_open:
            raise ValueError(f"must be between {lo:g} and {hi:g}")
        parts = ([f"{'>' if lo_open else '≥'} {lo:g}"] if lo is not None else []) + \
            ([f"≤ {hi:g}"] if hi is not None else [])
        raise ValueError("must be " + " and ".join(parts))
    return v


def parse_list(value, kind=float, lo=None, hi=None) -> list:
    """Numbers separated by commas (or a list of numbers), each checked like
    :func:`parse_number`."""
    parts = value if isinstance(value, (list, tuple)) else \
        [p for p in str(value or "").replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError("expected numbers separated by commas")
    out = []
    for p in parts:
        try:
            out.append(parse_number(p, kind, lo, hi))
        except ValueError as exc:
            raise ValueError(f"{str(p).strip()!r}: {exc}") from None
    return out


def _optional_number(values: dict, key: str, limits: dict, errors: dict):
    """``values[key]`` within ``limits[key]``, or None when left blank."""
    value = values.get(key)
    if value is None or not str(value).strip():
        return None
    try:
        return parse_number(values[key], *limits[key])
    except ValueError as exc:
        errors[key] = str(exc)
        return None


def _parse_fields(values: dict, limits: dict, errors: dict) -> dict:
    out = {}
    for key, (kind, lo, hi) in limits.items():
        try:
            out[key] = parse_number(values.get(key), kind, lo, hi)
        except ValueError as exc:
            errors[key] = str(exc)
    return out


def spec_neurons(spec: dict) -> int:
    """Number of neurons of a model spec."""
    return len(spec.get("fr_model") or [])


def _check_library_model(entry, registry, errors: dict, key: str) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
        errors[key] = 'expected {"model": name, "params": {...}}'
        return
    if entry["model"] not in registry:
        errors[key] = (f"unknown model {entry['model'][:40]!r}; allowed: "
                       f"{', '.join(sorted(registry))}")
        return
    params = entry.get("params", {})
    if not isinstance(params, dict) or len(params) > MAX_MODEL_PARAMS:
        errors[key] = f"params must be a dict of at most {MAX_MODEL_PARAMS} entries"
        return
    for name, value in params.items():
        if isinstance(value, (list, tuple)) and len(value) > MAX_PARAM_LIST:
            errors[key] = f"parameter {str(name)[:40]!r} has more than {MAX_PARAM_LIST} values"


def check_model_spec(spec) -> dict:
    """``{field: message}`` for a model spec beyond the Model form's caps
    (empty when it is within them).

    Fields: ``grid.Np``, ``grid.Ne``, ``grid``, ``boundary_mode``, ``D``,
    ``peq_model``, ``p0_model``, ``fr_model``, ``spec``. Checks the structure
    and the sizes (grid, neurons, parameters), not the science (the core
    checks the values when it builds the model).
    """
    from .core import library

    if not isinstance(spec, dict):
        return {"spec": f"a model spec is a dict, got {type(spec).__name__}"}
    errors = {}
    grid = spec.get("grid")
    if not isinstance(grid, dict):
        errors["grid"] = 'expected {"Np": ..., "Ne": ..., "xbegin": ..., "xend": ...}'
    else:
        np_, ne = grid.get("Np"), grid.get("Ne")
        ok = True
        for key, value, lo, hi in (("Np", np_, MIN_NP, MAX_NP), ("Ne", ne, 1, MAX_NE)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                errors[f"grid.{key}"] = f"{key} must be a whole number between {lo} and {hi}"
                ok = False
        if ok and (np_ - 1) * ne + 1 > MAX_GRID_N:
            errors["grid.Ne"] = (f"grid too large: (Np−1)·Ne+1 = {(np_ - 1) * ne + 1}; at most "
                                 f"{MAX_GRID_N} nodes are allowed")
        for key in ("xbegin", "xend"):
            value = grid.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value):
                errors["grid"] = f"{key} must be a finite number"
    if spec.get("boundary_mode", "reflecting") not in ("reflecting", "absorbing"):
        errors["boundary_mode"] = "choose reflecting or absorbing"
    D = spec.get("D")
    if isinstance(D, list):
        D = D[0] if len(D) == 1 else None
    if isinstance(D, bool) or not isinstance(D, (int, float)) or not math.isfinite(D) or D <= 0:
        errors["D"] = "D must be a positive number"
    _check_library_model(spec.get("peq_model"), library.PEQ_MODELS, errors, "peq_model")
    if spec.get("p0_model") is not None:
        _check_library_model(spec["p0_model"], library.PEQ_MODELS, errors, "p0_model")
    fr = spec.get("fr_model")
    if not isinstance(fr, list) or not 1 <= len(fr) <= MAX_MODEL_NEURONS:
        count = len(fr) if isinstance(fr, list) else "no"
        errors["fr_model"] = (f"the model has {count} neurons; between 1 and "
                              f"{MAX_MODEL_NEURONS} are allowed")
    else:
        for i, entry in enumerate(fr):
            _check_library_model(entry, library.RATE_MODELS, errors, "fr_model")
            if "fr_model" in errors:
                errors["fr_model"] = f"neuron {i + 1}: {errors['fr_model']}"
                break
    return errors


def validate_model_spec(spec) -> None:
    """Raise :class:`SettingsError` (``errors`` per field) for a spec beyond the caps."""
    errors = check_model_spec(spec)
    if errors:
        raise SettingsError(errors)


def _spec_message(spec) -> str | None:
    """One line on why a saved spec cannot run here, or None."""
    errors = check_model_spec(spec)
    return None if not errors else "this model exceeds the caps: " + "; ".join(
        f"{k}: {m}" for k, m in errors.items())



def check_generation(values: dict, store: RunStore | None = None):
    """Generation settings from field values, and ``{setting: message}``.

    Keys: model, n_trials, duration, dt, seed (blank: fresh entropy),
    with_trial_end, val_fraction, dataset_name. With a ``store`` the model
    must exist, the dataset name must be free and the work must fit the caps.
    Returns ``(settings or None, errors)``.
    """
    errors = {}
    limits = {k: v for k, v in GEN_LIMITS.items() if k != "seed"}
    s = _parse_fields(values, limits, errors)
    s.update(model=values.get("model"), with_trial_end=bool(values.get("with_trial_end", True)))
    s["seed"] = _optional_number(values, "seed", GEN_LIMITS, errors)
    if "dt" in s and "duration" in s and s["dt"] >= s["duration"]:
        errors["dt"] = "dt must be smaller than the trial duration"
    name = values.get("dataset_name")
    name = name.strip() if isinstance(name, str) else ""
    s["dataset_name"] = name
    if not name:
        errors["dataset_name"] = "give the dataset a name"
    elif _name_error(name, "dataset"):
        errors["dataset_name"] = _name_error(name, "dataset")
    elif store is not None and store.has_dataset(name):
        errors["dataset_name"] = (f"a dataset named “{name}” exists; choose another name "
                                  "or delete the old dataset first")
    spec = None
    if not s["model"]:
        errors["model"] = "save a model on the Model page first, then choose it here"
    elif store is not None:
        spec = store.get_model(s["model"])
        if spec is None:
            errors["model"] = f"there is no saved model named “{str(s['model'])[:90]}”"
        elif _spec_message(spec):
            errors["model"], spec = _spec_message(spec), None
    if not {"n_trials", "duration", "dt"} & set(errors):
        steps = s["n_trials"] * math.ceil(s["duration"] / s["dt"] - 1e-9)
        neurons = spec_neurons(spec) if spec else 1
        if steps > MAX_TOTAL_STEPS:
            errors["n_trials"] = (f"trials × duration/dt = {steps:.3g} time steps; at most "
                                  f"{MAX_TOTAL_STEPS:.0e} are allowed (fewer trials, a shorter "
                                  "duration or a larger dt)")
        elif steps * neurons > MAX_STEP_NEURONS:
            errors["n_trials"] = (f"trials × duration/dt × neurons = {steps * neurons:.3g}; at "
                                  f"most {MAX_STEP_NEURONS:.0e} are allowed (fewer trials, a "
                                  "shorter duration or a larger dt)")
    return (None if errors else s), errors



def fit_options(s: dict):
    """The core ``FitOptions`` of normalised fit settings (raises ValueError)."""
    from .core.fitting import FitOptions

    return FitOptions(optimizer=s["optimizer"], max_epochs=s["max_epochs"],
                      mini_batch_number=s["mini_batch_number"],
                      params_to_opt=tuple(s["params_to_opt"]),
                      learning_rate=s["learning_rate"], seed=s["seed"], Nv=s["Nv"],
                      snapshot_epochs=tuple(s["snapshot_epochs"]))


def check_fit(values: dict, store: RunStore | None = None):
    """Fit settings from field values, and ``{setting: message}``.

    Keys: dataset, init_model, peq_override, optimizer ('GD'/'ADAM'),
    params_to_opt (list), learning_rate ({param: value} for GD,
    {'alpha': value} for ADAM), max_epochs, mini_batch_number, Nv (blank:
    N − 2), snapshot_epochs (text or list), seed, pace. Learning-rate errors
    are keyed ``learning_rate:<param>`` / ``learning_rate:alpha``; errors of the
    core's ``FitOptions`` that name no field are keyed ``options``. With a
    ``store`` the dataset and model must exist and have the same neurons.
    Returns ``(settings or None, errors)``.
    """
    from .core.fitting import FITTABLE, OPTIMIZERS

    errors = {}
    limits = {k: v for k, v in FIT_LIMITS.items() if k != "Nv"}
    values = dict(values, seed=values.get("seed") or 0, pace=values.get("pace") or 0)
    s = _parse_fields(values, limits, errors)
    s.update(dataset=values.get("dataset"), init_model=values.get("init_model"),
             peq_override=values.get("peq_override") or None,
             optimizer=values.get("optimizer") or "GD")
    if s["peq_override"] is not None:
        from .core import library
        if not isinstance(s["peq_override"], str) or s["peq_override"] not in library.PEQ_MODELS:
            errors["peq_override"] = (f"unknown peq model {str(s['peq_override'])[:40]!r}; "
                                      f"allowed: {', '.join(sorted(library.PEQ_MODELS))}")
    if s["optimizer"] not in OPTIMIZERS:
        errors["optimizer"] = f"choose one of {', '.join(OPTIMIZERS)}"
    chosen = list(values.get("params_to_opt") or [])
    s["params_to_opt"] = [p for p in FITTABLE if p in chosen]
    if not s["params_to_opt"] or set(chosen) - set(FITTABLE):
        errors["params_to_opt"] = f"choose at least one of {', '.join(FITTABLE)}"
    lr = dict(values.get("learning_rate") or {})
    keys = s["params_to_opt"] if s["optimizer"] == "GD" else ["alpha"]
    s["learning_rate"] = {}
    for key in keys:
        try:
            s["learning_rate"][key] = parse_number(lr.get(key), float, 0, lo_open=True)
        except ValueError as exc:
            errors[f"learning_rate:{key}"] = str(exc)
    s["Nv"] = _optional_number(values, "Nv", FIT_LIMITS, errors)
    try:
        snaps = values.get("snapshot_epochs")
        s["snapshot_epochs"] = sorted(set(parse_list(
            DEFAULT_SNAPSHOTS if snaps is None else snaps, int, 0)))
    except ValueError as exc:
        errors["snapshot_epochs"] = f"{exc} (e.g. 1, 6, 13, 50)"
    if not errors:
        try:
            fit_options(s)
        except ValueError as exc:
            errors["options"] = str(exc)
    for key, what in (("dataset", "choose a dataset"), ("init_model", "choose a saved model")):
        if not s[key]:
            errors[key] = what
    if store is not None:
        _check_refs(store, s, errors)
    return (None if errors else s), errors


def _check_refs(store: RunStore, s: dict, errors: dict) -> None:
    """The dataset and the initial model exist and fit together."""
    ds = store.get_dataset_meta(s["dataset"]) if s["dataset"] else None
    spec = store.get_model(s["init_model"]) if s["init_model"] else None
    if s["dataset"] and ds is None:
        errors["dataset"] = f"there is no dataset named “{str(s['dataset'])[:90]}”"
    if s["init_model"] and spec is None:
        errors["init_model"] = f"there is no saved model named “{str(s['init_model'])[:90]}”"
    if spec is not None and _spec_message(spec):
        errors["init_model"] = _spec_message(spec)
        return
    if ds is None or spec is None:
        return
    n_data, n_model = ds.get("n_neurons"), spec_neurons(spec)
    if n_data is not None and n_data != n_model:
        errors["init_model"] = (f"the model has {n_model} neuron(s) but the dataset has "
                                f"{n_data}; choose or save a model with {n_data}")
    if "F0" in s["params_to_opt"] and spec.get("p0_model") is None:
        errors["params_to_opt"] = ("F0 cannot be fitted from an equilibrium model "
                                   "(p0 = peq); give the initial model a p0")


