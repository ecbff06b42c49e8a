"""What a run may ask for: the limits of every setting, and their checks.

Field values arrive as text from the pages or as numbers from scripts; each
check returns the normalised settings and a message per setting, so a page
can show every message next to its field.

Every limit is the core's own (``flowdash.core.grid.NP``,
``spectra.nv_limit``, ``fitting.mini_batch_limit``,
``simulation.dt_limit``, ...), narrowed here only where the app caps a
resource (``Limit.within``); the pages and every server-side entry point
(saving a model, starting a generation or a fit) read them from here.
Importable without dash, and without the numerical core: the limits that come
from it (``GRID_LIMITS``, ``D_LIMIT``, ``GEN_LIMITS``, ``FIT_LIMITS``,
``nv_limit``, ``mini_batch_limit``) are built on first use, so the job layer,
the store and a worker's parent import this module without loading numba.
"""
from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING

from . import names
from .core import spikedata as _spikedata
from .core.limits import InvalidValue, Limit, format_number

if TYPE_CHECKING:  # the store imports this module's model caps
    from .store import RunStore

__all__ = ["SettingsError", "InvalidValue", "Limit", "format_number", "parse_number",
           "parse_list", "check_generation", "check_fit", "fit_warnings", "fit_options",
           "check_model_spec", "validate_model_spec", "GRID_LIMITS", "D_LIMIT", "GEN_LIMITS",
           "FIT_LIMITS", "nv_limit", "mini_batch_limit"]

#: Default snapshot epochs (the iterations shown in the paper's Fig. 3).
DEFAULT_SNAPSHOTS = (1, 6, 13, 50)
#: Longest pause after each epoch that a run may ask for (teaching demos), s.
MAX_PACE = 10.0
#: Seeds are kept to 32 bits (what a person types and a record shows).
MAX_SEED = 2**32 - 1

# Model caps: the core's grid limits narrowed for the Model form's live
# preview (GRID_LIMITS, below), applied at every server-side entry point too
# (saving a model, starting a generation or a fit), so a forged request or a
# library-saved spec cannot ask for more than the form allows.
#: Most nodes per element and elements of a grid (narrowing ``core.grid.NP``, ``NE``).
MAX_NP, MAX_NE = 20, 2000
#: Largest grid, N = (Np − 1)·Ne + 1 nodes.
MAX_GRID_N = 20001
#: Neurons of one model (a population recording: the PMd file has 14; Neuropixels
#: sessions keep a few dozen well-isolated units per area).
MAX_MODEL_NEURONS = 32
#: Library parameters per model and the length of a list parameter.
MAX_MODEL_PARAMS = 32
MAX_PARAM_LIST = 1000
#: Longest model or dataset name (characters), and longest run name.
MAX_NAME_LENGTH = names.MAX_NAME_LENGTH
MAX_RUN_NAME_LENGTH = names.MAX_RUN_NAME_LENGTH

#: Time steps of one generation (trials × duration/dt): the latent paths
#: alone take 16 bytes per step.
MAX_TOTAL_STEPS = 20_000_000
#: Time steps × neurons of one generation (the spike draws).
MAX_STEP_NEURONS = 200_000_000
#: Uploads: largest file; most neurons, trials and spikes (the file readers' caps).
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_NEURONS = _spikedata.MAX_NEURONS
MAX_TRIALS = _spikedata.MAX_TRIALS
MAX_SPIKES = _spikedata.MAX_SPIKES


@cache
def core_limits() -> dict:
    """The limits that come from the core (built once, on first use).

    ``GRID_LIMITS`` (the Model page's grid: ``core.grid.NP``/``NE`` within the
    caps), ``D_LIMIT`` (``core.model.D_LIMIT``), ``GEN_LIMITS`` (generation:
    setting -> Limit; ``dt`` also obeys ``simulation.dt_limit(duration)``),
    ``FIT_LIMITS`` (fit: setting -> Limit; ``Nv`` also obeys
    ``spectra.nv_limit(N)`` of the initial model's grid, ``mini_batch_number``
    ``fitting.mini_batch_limit(n)`` of the dataset's training trials), and the
    functions ``nv_limit`` and ``mini_batch_limit``. Each is also a module
    attribute (``settings.FIT_LIMITS``).
    """
    from .core import fitting, simulation, spectra
    from .core import grid as core_grid
    from .core import model as core_model

    return {
        "GRID_LIMITS": {"Np": core_grid.NP.within(hi=MAX_NP),
                        "Ne": core_grid.NE.within(hi=MAX_NE)},
        "D_LIMIT": core_model.D_LIMIT,
        "GEN_LIMITS": {"n_trials": simulation.N_TRIALS.within(hi=10000),
                       "duration": simulation.DURATION.within(lo=1e-3, hi=1e5),
                       "dt": Limit("dt", float, 0, lo_open=True).within(lo=1e-6, hi=0.1),
                       # 0 = no validation set; else the share of trials SpikeData.split sets aside
                       "val_fraction": Limit("val_fraction", float, 0.0, 0.9),
                       "seed": simulation.SEED.within(hi=MAX_SEED)},
        "FIT_LIMITS": {"max_epochs": fitting.EPOCHS.within(hi=100000),
                       "mini_batch_number": fitting.MINI_BATCHES.within(hi=10000),
                       "seed": fitting.SEED.within(hi=MAX_SEED), "Nv": spectra.nv_limit(),
                       "learning_rate": fitting.LEARNING_RATE,
                       "pace": Limit("pace", float, 0.0, MAX_PACE)},
        "nv_limit": spectra.nv_limit,
        "mini_batch_limit": fitting.mini_batch_limit,
    }


_CORE_LIMITS = ("GRID_LIMITS", "D_LIMIT", "GEN_LIMITS", "FIT_LIMITS", "nv_limit", "mini_batch_limit")


def __getattr__(name):  # the core's limits as module attributes, built on first use
    if name not in _CORE_LIMITS:  # e.g. the import system asking for __path__
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return core_limits()[name]


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
def parse_number(value, limit: Limit | type = float):
    """A finite number from a field's text (or a number) within ``limit``.

    ``limit`` is a :class:`Limit`, or just ``int``/``float``. Raises
    ValueError with a message for the field ("must be an integer in [1, 15]").
    """
    if not isinstance(limit, Limit):
        limit = Limit("value", limit)
    text = "" if value is None else str(value).strip()
    if not text:
        raise ValueError("required")
    try:
        v = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(v):
        raise ValueError("expected a finite number")
    if limit.kind is int:
        if not v.is_integer():
            raise ValueError("expected a whole number")
        v = int(v)
    if not limit.allows(v):
        raise ValueError(f"must be {limit.describe()}")
    return v


def parse_list(value, limit: Limit | type = float) -> list:
    """Numbers separated by commas (or a list of numbers), each checked like
    :func:`parse_number`."""
    parts = value if isinstance(value, (list, tuple)) else \
        [p for p in str(value or "").replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError("expected numbers separated by commas")
    out = []
    for p in parts:
        try:
            out.append(parse_number(p, limit))
        except ValueError as exc:
            raise ValueError(f"{str(p).strip()!r}: {exc}") from None
    return out


def _optional_number(values: dict, key: str, limits: dict, errors: dict):
    """``values[key]`` within ``limits[key]``, or None when left blank."""
    value = values.get(key)
    if value is None or not str(value).strip():
        return None
    try:
        return parse_number(values[key], limits[key])
    except ValueError as exc:
        errors[key] = str(exc)
        return None


def _parse_fields(values: dict, limits: dict, errors: dict) -> dict:
    out = {}
    for key, limit in limits.items():
        try:
            out[key] = parse_number(values.get(key), limit)
        except ValueError as exc:
            errors[key] = str(exc)
    return out


# ---------------------------------------------------------------------------
# model specs
# ---------------------------------------------------------------------------
def spec_neurons(spec: dict) -> int:
    """Number of neurons of a model spec."""
    return len(spec.get("fr_model") or [])


def spec_nodes(spec: dict) -> int:
    """Grid nodes N of a model spec."""
    from .core.grid import n_nodes

    g = spec.get("grid") or {}
    return n_nodes(g.get("Np", 8), g.get("Ne", 16))


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


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_model_spec(spec) -> dict:
    """``{field: message}`` for a model spec beyond the Model form's caps
    (empty when it is within them).

    Fields: ``grid.Np``, ``grid.Ne``, ``grid``, ``boundary_mode``, ``D``,
    ``peq_model``, ``p0_model``, ``fr_model``, ``spec``. Checks the structure
    and the sizes (grid, neurons, parameters) with the limits the form uses
    (``GRID_LIMITS``, :data:`MAX_GRID_N`, ``D_LIMIT``), not the rest
    of the science (the core checks the values when it builds the model).
    """
    from .core import library
    from .core.grid import check_interval, n_nodes
    from .core.model import BOUNDARY_MODES

    if not isinstance(spec, dict):
        return {"spec": f"a model spec is a dict, got {type(spec).__name__}"}
    limits, errors = core_limits(), {}
    grid = spec.get("grid")
    if not isinstance(grid, dict):
        errors["grid"] = 'expected {"Np": ..., "Ne": ..., "xbegin": ..., "xend": ...}'
    else:
        sizes = {}
        for key in ("Np", "Ne"):
            value, limit = grid.get(key), limits["GRID_LIMITS"][key]
            if isinstance(value, bool) or not isinstance(value, int) or not limit.allows(value):
                errors[f"grid.{key}"] = f"{key} must be {limit.describe()}"
            else:
                sizes[key] = value
        if len(sizes) == 2 and n_nodes(sizes["Np"], sizes["Ne"]) > MAX_GRID_N:
            errors["grid.Ne"] = (f"grid too large: (Np−1)·Ne+1 = "
                                 f"{n_nodes(sizes['Np'], sizes['Ne'])}; at most "
                                 f"{MAX_GRID_N} nodes are allowed")
        bounds = (grid.get("xbegin", -1.0), grid.get("xend", 1.0))
        if not all(_is_number(b) for b in bounds):
            errors["grid"] = "xbegin and xend must be numbers"
        else:
            try:
                check_interval(*bounds)
            except ValueError as exc:
                errors["grid"] = str(exc)
    if spec.get("boundary_mode", "reflecting") not in BOUNDARY_MODES:
        errors["boundary_mode"] = "choose reflecting or absorbing"
    D = spec.get("D")
    if isinstance(D, list):
        D = D[0] if len(D) == 1 else None
    if not _is_number(D) or not limits["D_LIMIT"].allows(D):
        errors["D"] = f"D must be {limits['D_LIMIT'].describe()}"
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


# ---------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------
def check_generation(values: dict, store: RunStore | None = None):
    """Generation settings from field values, and ``{setting: message}``.

    Keys: model, n_trials, duration, dt, seed (blank: fresh entropy),
    with_trial_end, val_fraction, dataset_name. With a ``store`` the model
    must exist, the dataset name must be free and the work must fit the caps.
    Returns ``(settings or None, errors)``.
    """
    from .core.simulation import dt_limit

    errors, gen_limits = {}, core_limits()["GEN_LIMITS"]
    limits = {k: v for k, v in gen_limits.items() if k != "seed"}
    s = _parse_fields(values, limits, errors)
    s.update(model=values.get("model"), with_trial_end=bool(values.get("with_trial_end", True)))
    s["seed"] = _optional_number(values, "seed", gen_limits, errors)
    if "dt" in s and "duration" in s:
        dt = dt_limit(s["duration"])
        if not dt.allows(s["dt"]):
            errors["dt"] = f"must be {dt.describe()}"
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
            errors["n_trials"] = (f"trials × duration/dt = {format_number(steps)} time steps; at "
                                  f"most {format_number(MAX_TOTAL_STEPS)} are allowed (fewer "
                                  "trials, a shorter duration or a larger dt)")
        elif steps * neurons > MAX_STEP_NEURONS:
            errors["n_trials"] = (f"trials × duration/dt × neurons = {format_number(steps * neurons)};"
                                  f" at most {format_number(MAX_STEP_NEURONS)} are allowed (fewer "
                                  "trials, a shorter duration or a larger dt)")
    return (None if errors else s), errors


# ---------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------
def fit_options(s: dict):
    """The core ``FitOptions`` of normalised fit settings (raises ValueError)."""
    from .core.fitting import FitOptions

    return FitOptions(optimizer=s["optimizer"], max_epochs=s["max_epochs"],
                      mini_batch_number=s["mini_batch_number"],
                      params_to_opt=tuple(s["params_to_opt"]),
                      learning_rate=s["learning_rate"], seed=s["seed"], Nv=s["Nv"],
                      snapshot_epochs=tuple(s["snapshot_epochs"]))


def check_fit(values: dict, store: RunStore | None = None, partial: bool = False):
    """Fit settings from field values, and ``{setting: message}``.

    Keys: dataset, init_model, peq_override, optimizer ('GD'/'ADAM'),
    params_to_opt (list), learning_rate ({param: value} for GD,
    {'alpha': value} for ADAM), max_epochs, mini_batch_number, Nv (blank:
    N − 2), snapshot_epochs (text or list), seed, pace. Learning-rate errors
    are keyed ``learning_rate:<param>`` / ``learning_rate:alpha``; an error of
    the core's ``FitOptions`` goes to the field it names
    (``InvalidValue.field``), or to ``options``. With a ``store`` the dataset
    and model must exist and fit together, Nv must suit the model's grid and
    the mini-batches the dataset's training trials.
    Returns ``(settings or None, errors)``; with ``partial`` the settings that
    parsed even when others did not (for warnings and estimates as one types).
    """
    from .core.fitting import FITTABLE, OPTIMIZERS

    errors, fit_limits = {}, core_limits()["FIT_LIMITS"]
    limits = {k: v for k, v in fit_limits.items() if k not in ("Nv", "learning_rate")}
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
            s["learning_rate"][key] = parse_number(lr.get(key), fit_limits["learning_rate"])
        except ValueError as exc:
            errors[f"learning_rate:{key}"] = str(exc)
    s["Nv"] = _optional_number(values, "Nv", fit_limits, errors)
    try:
        snaps = values.get("snapshot_epochs")
        s["snapshot_epochs"] = sorted(set(parse_list(
            DEFAULT_SNAPSHOTS if snaps is None else snaps, Limit("snapshot_epochs", int, 0))))
    except ValueError as exc:
        errors["snapshot_epochs"] = f"{exc} (e.g. 1, 6, 13, 50)"
    if not errors:
        try:
            fit_options(s)
        except InvalidValue as exc:
            errors[exc.field if exc.field in fit_limits or ":" in exc.field else "options"] = str(exc)
        except ValueError as exc:
            errors["options"] = str(exc)
    for key, what in (("dataset", "choose a dataset"), ("init_model", "choose a saved model")):
        if not s[key]:
            errors[key] = what
    if store is not None:
        _check_refs(store, s, errors)
    return (None if errors and not partial else s), errors


def training_trials(store: RunStore, dataset: str) -> list[int]:
    """Training trials of each datasample of a saved dataset (after its split)."""
    from .jobs import train_val  # the job layer owns the split; imported late (it imports us)

    train, _, _ = train_val(store, dataset)
    return [d.n_trials for d in train]


def _check_refs(store: RunStore, s: dict, errors: dict) -> None:
    """The dataset and the initial model exist and fit together; Nv suits the
    model's grid and the mini-batches the dataset's training trials."""
    from .core.fitting import mini_batch_limit
    from .core.spectra import nv_limit

    ds = store.get_dataset_meta(s["dataset"]) if s["dataset"] else None
    spec = store.get_model(s["init_model"]) if s["init_model"] else None
    if s["dataset"] and ds is None:
        errors["dataset"] = f"there is no dataset named “{str(s['dataset'])[:90]}”"
    if s["init_model"] and spec is None:
        errors["init_model"] = f"there is no saved model named “{str(s['init_model'])[:90]}”"
    if spec is not None and _spec_message(spec):
        errors["init_model"] = _spec_message(spec)
        return
    if spec is not None and s.get("Nv") is not None:
        nv = nv_limit(spec_nodes(spec))
        if not nv.allows(s["Nv"]):
            errors["Nv"] = f"must be {nv.describe()}"
    # one mini-batch needs one training trial, which every saved dataset has:
    # read the spike data only when more are asked for
    if ds is not None and s.get("mini_batch_number", 1) > 1:
        try:
            batches = mini_batch_limit(min(training_trials(store, s["dataset"])))
        except ValueError as exc:
            errors["dataset"] = f"cannot read the dataset: {exc}"
        else:
            if not batches.allows(s["mini_batch_number"]):
                errors["mini_batch_number"] = f"must be {batches.describe()}"
    if ds is None or spec is None:
        return
    n_data, n_model = ds.get("n_neurons"), spec_neurons(spec)
    if n_data is not None and n_data != n_model:
        errors["init_model"] = (f"the model has {n_model} neuron(s) but the dataset has "
                                f"{n_data}; choose or save a model with {n_data}")
    if "F0" in s["params_to_opt"] and spec.get("p0_model") is None:
        errors["params_to_opt"] = ("F0 cannot be fitted from an equilibrium model "
                                   "(p0 = peq); give the initial model a p0")


def fit_warnings(s: dict) -> dict:
    """``{setting: message}`` for settings that run but probably not as meant.

    ``s`` holds (possibly partial) normalised fit settings: snapshot epochs
    beyond the last epoch are never drawn.
    """
    warnings = {}
    last = s.get("max_epochs")
    beyond = [e for e in s.get("snapshot_epochs") or [] if last is not None and e > last]
    if beyond:
        warnings["snapshot_epochs"] = (
            f"{', '.join(map(str, beyond))} {'lies' if len(beyond) == 1 else 'lie'} beyond the "
            f"last epoch ({last}) and will not be drawn")
    return warnings
