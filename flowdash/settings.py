"""What a run may ask for: the limits of every setting, and their checks.

Field values arrive as text from the pages or as numbers from scripts; each
check returns the normalised settings and a message per setting, so a page
can show every message next to its field. The limits are defined once here
and the pages read them from here. Importable without dash.
"""
from __future__ import annotations

import math

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
#: Uploads: largest file, most neurons, most trials.
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_NEURONS = 1000
MAX_TRIALS = 100000

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
    name = str(values.get("dataset_name") or "").strip()
    s["dataset_name"] = name
    if not name:
        errors["dataset_name"] = "give the dataset a name"
    elif len(name) > 80:
        errors["dataset_name"] = "at most 80 characters"
    elif store is not None and store.has_dataset(name):
        errors["dataset_name"] = (f"a dataset named “{name}” exists; choose another name "
                                  "or delete the old dataset first")
    spec = None
    if not s["model"]:
        errors["model"] = "save a model on the Model page first, then choose it here"
    elif store is not None:
        spec = store.get_model(s["model"])
        if spec is None:
            errors["model"] = f"there is no saved model named “{s['model']}”"
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
    ds = store.get_dataset(s["dataset"]) if s["dataset"] else None
    spec = store.get_model(s["init_model"]) if s["init_model"] else None
    if s["dataset"] and ds is None:
        errors["dataset"] = f"there is no dataset named “{s['dataset']}”"
    if s["init_model"] and spec is None:
        errors["init_model"] = f"there is no saved model named “{s['init_model']}”"
    if ds is None or spec is None:
        return
    n_data, n_model = ds["meta"].get("n_neurons"), spec_neurons(spec)
    if n_data is not None and n_data != n_model:
        errors["init_model"] = (f"the model has {n_model} neuron(s) but the dataset has "
                                f"{n_data}; choose or save a model with {n_data}")
    if "F0" in s["params_to_opt"] and spec.get("p0_model") is None:
        errors["params_to_opt"] = ("F0 cannot be fitted from an equilibrium model "
                                   "(p0 = peq); give the initial model a p0")


