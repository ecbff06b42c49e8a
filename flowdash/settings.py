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
           "parse_list", "parse_trials", "check_generation", "check_fit", "fit_warnings", "fit_options",
           "check_model_spec", "validate_model_spec", "GRID_LIMITS", "D_LIMIT", "GEN_LIMITS",
           "FIT_LIMITS", "LINE_SEARCH_LIMITS", "nv_limit", "mini_batch_limit", "searches_limit",
           "line_search_epoch_limit", "parse_line_search", "LINE_SEARCH_WHEN", "LONG_FIT_EPOCHS",
           "MAX_TABULATED_VALUES", "initial_spec",
           "spec_absorption", "boundary_errors"]

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

#: A tabulated model (e.g. a model selection's selected model) holds at most this many
#: values (grid nodes × rows of peq, p0 and rates × neurons): with its base64 float64
#: encoding it stays within the store's model spec and run record sizes.
MAX_TABULATED_VALUES = 6000
#: A fit of at least this many epochs records its models on the core's
#: RecordingSchedule (as a model selection's fits always do), for a later analysis.
LONG_FIT_EPOCHS = 1000
#: Most NLL evaluations of one line search (each is a gradient pass over a batch).
MAX_FUN_EVAL = 100
#: When a line search runs: never, on n log-spaced epochs, every k epochs, or listed epochs.
LINE_SEARCH_WHEN = ("off", "log", "every", "list")

#: Time steps of one generation (trials × duration/dt): the latent paths
#: alone take 16 bytes per step.
MAX_TOTAL_STEPS = 20_000_000
#: Time steps × neurons of one generation (the spike draws).
MAX_STEP_NEURONS = 200_000_000
#: Time steps (trials × duration/dt) of a generation whose trials end at a wall
#: (Dirichlet conditions, e.g. the 2021 paper's 200 trials of up to 100 s): each
#: trial draws its noise for the whole duration but keeps only the steps up to
#: its exit, and those are held to MAX_TOTAL_STEPS (and MAX_STEP_NEURONS) while
#: it runs (``simulate(max_steps=)``).
MAX_DRAWN_STEPS = 500_000_000


def generation_max_steps(n_neurons: int) -> int:
    """The most time steps a generation's trials may hold in all (``simulate(max_steps=)``)."""
    return min(MAX_TOTAL_STEPS, MAX_STEP_NEURONS // max(1, int(n_neurons)))
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
        # line searches on C and D: the schedule's count, the evaluations per search
        "LINE_SEARCH_LIMITS": {"log": fitting.LINE_SEARCH_LOG, "every": fitting.LINE_SEARCH_EVERY,
                               "max_fun_eval": fitting.MAX_FUN_EVAL.within(hi=MAX_FUN_EVAL)},
        "nv_limit": spectra.nv_limit,
        "mini_batch_limit": fitting.mini_batch_limit,
        "searches_limit": fitting.searches_limit,
        "line_search_epoch_limit": fitting.line_search_epoch_limit,
    }


_CORE_LIMITS = ("GRID_LIMITS", "D_LIMIT", "GEN_LIMITS", "FIT_LIMITS", "LINE_SEARCH_LIMITS",
                "nv_limit", "mini_batch_limit", "searches_limit", "line_search_epoch_limit")


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


def parse_trials(value, n_trials: int, most: int) -> list[int]:
    """Trial indices from text such as ``"0-4, 7"`` (or a list of integers), in the
    order given, each once; at most ``most`` of them, each in ``0 … n_trials − 1``.

    A range's size is checked before it is expanded. Raises ValueError with a
    message for the field.
    """
    parts = list(value) if isinstance(value, (list, tuple)) else \
        [p.strip() for p in str(value or "").replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError(f"choose trials, e.g. 0-4, 7 (0 … {n_trials - 1})")
    out: list[int] = []
    for part in parts:
        try:
            if isinstance(part, str):
                a, b = part.split("-", 1) if "-" in part[1:] else (part, part)
                a, b = int(a), int(b)
            elif isinstance(part, bool) or float(part) != int(part):
                raise ValueError
            else:
                a = b = int(part)
        except (ValueError, TypeError, OverflowError):
            raise ValueError(f"{str(part)[:40]!r} is not a trial number or a range like 2-5") \
                from None
        for i in (a, b):
            if not 0 <= i < n_trials:
                raise ValueError(f"trial {i} does not exist (0 … {n_trials - 1})")
        if b < a:
            raise ValueError(f"{part!r}: write a range from low to high ({b}-{a})")
        if b - a + 1 > most or len(out) + b - a + 1 > most:
            raise ValueError(f"at most {most} trials at once")
        out.extend(i for i in range(a, b + 1) if i not in out)
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


def _check_library_model(entry, registry, errors: dict, key: str, tabulated: bool = False) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
        errors[key] = 'expected {"model": name, "params": {...}}'
        return
    if tabulated and entry["model"] == "tabulated":  # its values are checked with the table
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

    Fields: ``grid.Np``, ``grid.Ne``, ``grid``, ``boundary_mode``,
    ``boundary_conditions``, ``absorption_step`` (an absorption step needs
    Dirichlet conditions: the core's rule), ``D``, ``peq_model``,
    ``p0_model``, ``fr_model``, ``spec``. Checks the structure
    and the sizes (grid, neurons, parameters) with the limits the form uses
    (``GRID_LIMITS``, :data:`MAX_GRID_N`, ``D_LIMIT``), not the rest
    of the science (the core checks the values when it builds the model).
    """
    from .core import library
    from .core.grid import check_interval, n_nodes

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
    errors.update(boundary_errors(spec.get("boundary_mode", "reflecting"),
                                   spec.get("boundary_conditions"), spec.get("absorption_step")))
    D = spec.get("D")
    if isinstance(D, list):
        D = D[0] if len(D) == 1 else None
    if not _is_number(D) or not limits["D_LIMIT"].allows(D):
        errors["D"] = f"D must be {limits['D_LIMIT'].describe()}"
    tabulated = "tabulated" in spec
    if tabulated and not {"grid.Np", "grid.Ne", "grid"} & set(errors):
        _check_tabulated(spec, n_nodes(grid["Np"], grid["Ne"]), limits, errors)
    _check_library_model(spec.get("peq_model"), library.PEQ_MODELS, errors, "peq_model", tabulated)
    if spec.get("p0_model") is not None:
        _check_library_model(spec["p0_model"], library.PEQ_MODELS, errors, "p0_model", tabulated)
    fr = spec.get("fr_model")
    if not isinstance(fr, list) or not 1 <= len(fr) <= MAX_MODEL_NEURONS:
        count = len(fr) if isinstance(fr, list) else "no"
        errors["fr_model"] = (f"the model has {count} neurons; between 1 and "
                              f"{MAX_MODEL_NEURONS} are allowed")
    else:
        for i, entry in enumerate(fr):
            _check_library_model(entry, library.RATE_MODELS, errors, "fr_model", tabulated)
            if "fr_model" in errors:
                errors["fr_model"] = f"neuron {i + 1}: {errors['fr_model']}"
                break
    return errors


def _check_tabulated(spec: dict, N: int, limits: dict, errors: dict) -> None:
    """The arrays of a tabulated spec: decodable, on the spec's grid, within the caps."""
    from .core.model import tabulated_values

    table = spec["tabulated"]
    if not isinstance(table, dict):
        errors["tabulated"] = "expected {name: encoded array} for peq, p0, D and rates"
        return
    # the encoded size, before decoding anything (base64: 4 characters per 3 bytes)
    encoded = sum(len(str((v or {}).get("base64", ""))) for v in table.values()
                  if isinstance(v, dict))
    if encoded * 3 // 4 // 8 > MAX_TABULATED_VALUES:
        errors["tabulated"] = (f"the model holds about {encoded * 3 // 4 // 8} values; a tabulated "
                               f"model holds at most {MAX_TABULATED_VALUES} (a coarser grid, or "
                               "fewer neurons)")
        return
    try:
        arrays = tabulated_values(spec, N)
    except ValueError as exc:
        errors["tabulated"] = str(exc)
        return
    for name in ("peq", "D", "fr"):
        if name not in arrays and (name != "D" or "D" in table):
            errors["tabulated"] = f"the tabulated model has no {name}"
            return
    if "D" in arrays and not all(limits["D_LIMIT"].allows(d) for d in arrays["D"]):
        errors["D"] = f"D must be {limits['D_LIMIT'].describe()} in every row"
    fr = spec.get("fr_model")
    if isinstance(fr, list) and arrays["fr"].shape[2] != len(fr):
        errors["fr_model"] = (f"fr_model lists {len(fr)} neuron(s) but the tabulated rates have "
                              f"{arrays['fr'].shape[2]}")


def spec_boundary(spec: dict) -> tuple[str, bool]:
    """(boundary conditions, absorption step) of a (valid) model spec."""
    from .core.model import resolve_boundary

    return resolve_boundary(spec.get("boundary_mode", "reflecting"),
                            spec.get("boundary_conditions"), spec.get("absorption_step"))


def spec_absorption(spec: dict) -> bool:
    """Whether a (valid) model spec's likelihood applies the absorption step."""
    return spec_boundary(spec)[1]


def boundary_errors(mode, conditions, absorption) -> dict:
    """``{setting: message}`` of the two boundary settings (the core's one rule,
    :func:`flowdash.core.model.resolve_boundary`): unknown names, or an
    absorption step without Dirichlet conditions (under ``absorption_step``)."""
    from .core.model import resolve_boundary

    try:
        resolve_boundary(mode, conditions, absorption)
    except InvalidValue as exc:
        return {exc.field: str(exc)}
    except TypeError as exc:
        return {"absorption_step": str(exc)}
    return {}


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
        if spec is not None and spec_boundary(spec)[0] == "dirichlet":   # trials end at a wall
            if steps > MAX_DRAWN_STEPS:
                errors["n_trials"] = (f"trials × duration/dt = {format_number(steps)} time steps; "
                                      f"at most {format_number(MAX_DRAWN_STEPS)} are allowed when "
                                      "trials end at a wall (fewer trials, a shorter duration or "
                                      "a larger dt)")
        elif steps > MAX_TOTAL_STEPS:
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
    """The core ``FitOptions`` of normalised fit settings (raises ValueError).

    A fit that records its models (``record_models``) keeps them on the
    core's ``RecordingSchedule``; otherwise at its snapshot epochs.
    """
    from .core.fitting import FitOptions, RecordingSchedule

    return FitOptions(optimizer=s["optimizer"], max_epochs=s["max_epochs"],
                      mini_batch_number=s["mini_batch_number"],
                      params_to_opt=tuple(s["params_to_opt"]),
                      learning_rate=s["learning_rate"], seed=s["seed"], Nv=s["Nv"],
                      snapshot_epochs=RecordingSchedule() if s.get("record_models")
                      else tuple(s["snapshot_epochs"]),
                      line_search=s.get("line_search") or None)


def _blank(value) -> bool:
    return value is None or not str(value).strip()


def parse_line_search(values, max_epochs=None, mini_batch_number=None):
    """Line searches on C and D from field values; returns ``(line_search or None, errors)``.

    ``values`` maps ``"C"`` / ``"D"`` to either the form's fields ``{"when":
    "off" | "log" | "every" | "list", "value": text (the count n, the step k
    or the epochs), "searches_per_epoch": text, "max_fun_eval": text}`` or the
    core's own entry ``{"epochs": ..., "searches_per_epoch": n, "max_fun_eval":
    m}``. The result is the core's ``FitOptions.line_search``. Errors are
    keyed ``line_search:<C|D>:<epochs|searches_per_epoch|max_fun_eval>``;
    the limits are the core's (``LINE_SEARCH_LIMITS``, ``searches_limit``,
    ``line_search_epoch_limit``).
    """
    limits = core_limits()
    ls_limits = limits["LINE_SEARCH_LIMITS"]
    out, errors = {}, {}
    if values is None:
        return None, errors
    if not isinstance(values, dict) or set(values) - {"C", "D"}:
        return None, {"line_search": "expected {'C': {...}, 'D': {...}}"}
    for p in ("C", "D"):
        entry = values.get(p)
        if not entry:
            continue
        key = f"line_search:{p}"
        if not isinstance(entry, dict):
            errors[f"{key}:epochs"] = "expected the schedule's fields"
            continue
        if "epochs" in entry:   # the core's format (scripts)
            epochs, n, m = entry["epochs"], entry.get("searches_per_epoch", 1), \
                entry.get("max_fun_eval", 5)
        else:
            when = entry.get("when") or "off"
            if when not in LINE_SEARCH_WHEN:
                errors[f"{key}:epochs"] = f"choose one of {', '.join(LINE_SEARCH_WHEN)}"
                continue
            if when == "off":
                continue
            epochs = None
            try:
                if when == "list":
                    limit = limits["line_search_epoch_limit"](max_epochs) if max_epochs else \
                        Limit("epochs", int, 1)
                    epochs = sorted(set(parse_list(entry.get("value"), limit)))
                else:
                    epochs = {when: parse_number(entry.get("value"), ls_limits[when])}
            except ValueError as exc:
                errors[f"{key}:epochs"] = str(exc)
            n, m = entry.get("searches_per_epoch"), entry.get("max_fun_eval")
            n = 1 if _blank(n) else n
            m = 5 if _blank(m) else m
        searches = limits["searches_limit"](mini_batch_number) if mini_batch_number else \
            Limit("searches_per_epoch", int, 1)
        try:
            n = parse_number(n, searches)
        except ValueError as exc:
            errors[f"{key}:searches_per_epoch"] = str(exc)
        try:
            m = parse_number(m, ls_limits["max_fun_eval"])
        except ValueError as exc:
            errors[f"{key}:max_fun_eval"] = str(exc)
        if not any(k.startswith(key) for k in errors):
            out[p] = {"epochs": epochs, "searches_per_epoch": n, "max_fun_eval": m}
    if not errors and out:  # the schedule against the epochs (the core's rule)
        from .core.fitting import line_search_epochs
        for p, entry in out.items():
            try:
                line_search_epochs(entry["epochs"], max_epochs or 1)
            except ValueError as exc:
                errors[f"line_search:{p}:epochs"] = str(exc)
    return (out or None) if not errors else None, errors


def _check_half(half, errors: dict):
    """A model selection's half of a dataset (``jobs.data.half_samples``), normalised."""
    from .jobs.data import HALF_SPLITS  # the job layer owns the split (imported late)

    if half is None:
        return None
    if not isinstance(half, dict) or half.get("split") not in HALF_SPLITS \
            or half.get("index") not in (0, 1):
        errors["half"] = (f"expected {{'split': one of {', '.join(HALF_SPLITS)}, 'index': 0 or 1}}, "
                          f"got {str(half)[:80]}")
        return None
    out = {"split": half["split"], "index": int(half["index"])}
    if half["split"] == "random":
        try:
            out["seed"] = parse_number(half.get("seed", 0),
                                       core_limits()["FIT_LIMITS"]["seed"])
        except ValueError as exc:
            errors["half"] = f"seed: {exc}"
            return None
    return out


#: The fit's initial p0 may be the equilibrium p0 = peq, which moves with peq
#: while it is fitted (MATH.md §1), besides a library model (or as saved).
EQUILIBRIUM_P0 = "equilibrium"
#: Longest member label of a group of runs (e.g. "no absorption step").
MAX_GROUP_MEMBER = 40


def initial_spec(spec: dict, s: dict) -> dict:
    """The initial model's spec as a fit uses it: the saved ``spec`` with the fit's
    overrides of its initial model applied (normalised fit settings ``s``).

    ``peq_override`` (a library peq model with its defaults), ``p0_override``
    (``'equilibrium'``: p0 = peq, or a library model with its defaults),
    ``D_override``, ``Ne_override`` (the fit's grid: the same Np and
    interval, this many elements) and the likelihood setting
    ``boundary_conditions`` / ``absorption_step`` (each None: as saved; the
    result carries both, and the ``boundary_mode`` they imply). Raises the
    core's InvalidValue for an absorption step without Dirichlet conditions.
    The one place a fit's initial model is derived: the fit job, the checks
    and the cost estimate use it.
    """
    from .core.model import resolve_boundary

    out = dict(spec)
    if s.get("peq_override"):
        out["peq_model"] = {"model": s["peq_override"], "params": {}}
    if s.get("p0_override"):
        out["p0_model"] = None if s["p0_override"] == EQUILIBRIUM_P0 else \
            {"model": s["p0_override"], "params": {}}
    if s.get("D_override"):
        out["D"] = float(s["D_override"])
    if s.get("Ne_override"):
        out["grid"] = dict(spec.get("grid") or {}, Ne=int(s["Ne_override"]))
    conditions, absorption = s.get("boundary_conditions"), s.get("absorption_step")
    if conditions is not None or absorption is not None:
        conditions, absorption = resolve_boundary(
            spec.get("boundary_mode", "reflecting"),
            spec.get("boundary_conditions") if conditions is None else conditions,
            spec.get("absorption_step") if absorption is None else absorption)
        out.update(boundary_mode="absorbing" if absorption else "reflecting",
                   boundary_conditions=conditions, absorption_step=absorption)
    return out


def _absorption_value(value, errors: dict):
    """``absorption_step`` of the fit settings: True, False or None (as saved)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    errors["absorption_step"] = f"must be true, false or blank (as saved), got {str(value)[:40]!r}"
    return None


def _group_value(group, errors: dict):
    """A run's group (several runs started together, e.g. a comparison):
    ``{"id": 12 hex digits, "member": short label}`` or None."""
    if group is None:
        return None
    if (not isinstance(group, dict) or not names.is_run_id(group.get("id"))
            or not isinstance(group.get("member"), str)
            or not 0 < len(group["member"]) <= MAX_GROUP_MEMBER):
        errors["group"] = ('expected {"id": 12 lowercase hex digits, "member": a label of 1 to '
                           f'{MAX_GROUP_MEMBER} characters}}')
        return None
    return {"id": group["id"], "member": group["member"]}


def check_fit(values: dict, store: RunStore | None = None, partial: bool = False):
    """Fit settings from field values, and ``{setting: message}``.

    Keys: dataset, init_model, peq_override, p0_override ('equilibrium' or a
    library model), D_override, Ne_override (each blank: as saved), boundary_conditions
    ('dirichlet'/'neumann') and absorption_step (bool) (each blank: as saved;
    the fit's likelihood setting), optimizer ('GD'/'ADAM'),
    params_to_opt (list), learning_rate ({param: value} for GD,
    {'alpha': value} for ADAM), max_epochs, mini_batch_number, Nv (blank:
    N − 2), snapshot_epochs (text or list), seed, pace, group (optional:
    ``{"id", "member"}`` linking runs started together). See
    :func:`initial_spec` for what the overrides do. An absorption step needs
    Dirichlet conditions and data with a recorded trial end (messages under
    ``absorption_step``). Learning-rate errors
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
    s["p0_override"] = values.get("p0_override") or None
    if s["p0_override"] is not None:
        from .core import library
        if not isinstance(s["p0_override"], str) or s["p0_override"] not in (
                EQUILIBRIUM_P0, *library.PEQ_MODELS):
            errors["p0_override"] = (f"unknown p0 {str(s['p0_override'])[:40]!r}; allowed: "
                                     f"{EQUILIBRIUM_P0} (p0 = peq), "
                                     f"{', '.join(sorted(library.PEQ_MODELS))}")
    overrides = {"D_override": core_limits()["D_LIMIT"],
                 "Ne_override": core_limits()["GRID_LIMITS"]["Ne"]}
    for key in overrides:
        s[key] = _optional_number(values, key, overrides, errors)
    s["boundary_conditions"] = values.get("boundary_conditions") or None
    s["absorption_step"] = _absorption_value(values.get("absorption_step"), errors)
    if s["boundary_conditions"] is not None:   # the pair alone; against the model with a store
        errors.update(boundary_errors("reflecting", s["boundary_conditions"],
                                       bool(s["absorption_step"])))
    group = _group_value(values.get("group"), errors)
    if group is not None:
        s["group"] = group
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
    ls, ls_errors = parse_line_search(values.get("line_search"), s.get("max_epochs"),
                                      s.get("mini_batch_number"))
    s["line_search"] = ls
    errors.update(ls_errors)
    s["half"] = _check_half(values.get("half"), errors)
    record = values.get("record_models")
    s["record_models"] = bool(record) if record is not None else (
        s["half"] is not None or s.get("max_epochs", 0) >= LONG_FIT_EPOCHS)
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


def training_trials(store: RunStore, dataset: str, half: dict | None = None) -> list[int]:
    """Training trials of each datasample of a saved dataset (after its split, or of a half)."""
    from .jobs import train_val  # the job layer owns the split; imported late (it imports us)

    train, _, _ = train_val(store, dataset, half)
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
    fitted = None   # the initial model as the fit will use it
    if spec is not None:
        bc, ab = s.get("boundary_conditions"), s.get("absorption_step")
        boundary = boundary_errors(spec.get("boundary_mode", "reflecting"),
                                    spec.get("boundary_conditions") if bc is None else bc,
                                    spec.get("absorption_step") if ab is None else ab)
        errors.update(boundary)
        if not boundary and not {"p0_override", "D_override", "Ne_override",
                                 "peq_override"} & set(errors):
            fitted = initial_spec(spec, s)
    if fitted is not None and spec_nodes(fitted) > MAX_GRID_N:
        errors["Ne_override"] = (f"grid too large: (Np−1)·Ne+1 = {spec_nodes(fitted)}; at most "
                                 f"{MAX_GRID_N} nodes are allowed")
    elif fitted is not None and s.get("Nv") is not None:
        nv = nv_limit(spec_nodes(fitted))
        if not nv.allows(s["Nv"]):
            errors["Nv"] = f"must be {nv.describe()}"
    if fitted is not None and ds is not None and spec_absorption(fitted) \
            and ds.get("with_trial_end") is False:
        errors["absorption_step"] = (
            f"the absorption step needs the trial end, and the dataset “{str(s['dataset'])[:90]}” "
            "has none recorded (a trial must end when the latent reaches a wall); fit without "
            "the absorption step (Dirichlet or reflecting), or use data with trial ends")
    # one mini-batch needs one training trial, which every saved dataset has:
    # read the spike data only when more are asked for
    if ds is not None and (s.get("mini_batch_number", 1) > 1 or s.get("half")):
        try:
            batches = mini_batch_limit(min(training_trials(store, s["dataset"], s.get("half"))))
        except ValueError as exc:
            errors["half" if s.get("half") else "dataset"] = f"cannot read the dataset: {exc}"
        else:
            if not batches.allows(s["mini_batch_number"]):
                errors["mini_batch_number"] = f"must be {batches.describe()}"
    if ds is None or spec is None:
        return
    n_data, n_model = ds.get("n_neurons"), spec_neurons(spec)
    if n_data is not None and n_data != n_model:
        errors["init_model"] = (f"the model has {n_model} neuron(s) but the dataset has "
                                f"{n_data}; choose or save a model with {n_data}")
    p0 = s.get("p0_override") or spec.get("p0_model")
    if "F0" in s["params_to_opt"] and p0 in (None, EQUILIBRIUM_P0):
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
