"""Model form logic: presets, the form state, parsing and validation (no dash).

The *form state* is what the browser shows, all values as strings::

    {"grid": {"Np": "8", "Ne": "256", "xbegin": "-1", "xend": "1"},
     "boundary_conditions": "neumann", "absorption_step": False, "D": "10",
     "peq": {"model": "double_well", "params": {"xmin": "0.6", ...}},
     "p0": None or {"model": ..., "params": {...}},
     "neurons": [{"model": "rectified_linear", "params": {...}}, ...]}

:func:`parse_form` turns it into a *model spec* (the reference JSON format plus
``grid``, ``boundary_conditions``, ``absorption_step`` and the ``boundary_mode``
they imply), which the store saves and
:func:`flowdash.jobs.build_model` turns into a core ``Model``; it returns the
errors per field so the page can mark them inline.
"""
from __future__ import annotations

import copy
import json
import math

import numpy as np

from flowdash.core import library
from flowdash import settings
from flowdash.core.limits import InvalidValue
from flowdash.settings import D_LIMIT, GRID_LIMITS, parse_list, parse_number

#: Library models that need a Python callable cannot be entered in a browser.
HIDDEN_MODELS = ("custom",)
EQUILIBRIUM = "equilibrium"
MAX_NEURONS = settings.MAX_MODEL_NEURONS  # the caps every server-side entry point applies
MAX_N = settings.MAX_GRID_N
#: Field labels of parameters whose names mislead (the spec keys stay those of
#: the reference format): the double well's xmin/xmax are not the domain ends.
PARAM_LABELS = {("double_well", "xmin"): "xmin: position of a well (a minimum)",
                ("double_well", "xmax"): "xmax: position of the barrier (the maximum)"}


def param_label(model: str, name: str) -> str:
    """The label of a library model parameter's field."""
    return PARAM_LABELS.get((model, name), name)


def peq_model_names() -> list[str]:
    return [n for n in library.PEQ_MODELS if n not in HIDDEN_MODELS]


def rate_model_names() -> list[str]:
    return [n for n in library.RATE_MODELS if n not in HIDDEN_MODELS]


def format_value(value) -> str:
    """A parameter value as the text shown in its field."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if not float(value).is_integer() else str(int(value))
    return "" if value is None else str(value)


def parse_value(text, default):
    """Parse a field's text like its default (number, list of numbers, JSON dict).

    Numbers and lists use the job layer's parser (one set of rules for every
    page). Raises ValueError with a message for the field.
    """
    text = "" if text is None else str(text).strip()
    if not text:
        raise ValueError("required")
    if isinstance(default, dict):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError('expected JSON such as {"model": "cos_square", "params": {}}') from None
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        return value
    if isinstance(default, (list, tuple)):
        return parse_list(text)
    return parse_number(text)


def params_state(registry: str, name: str, params: dict | None = None) -> dict:
    """Form state of one library model: its defaults overridden by ``params``."""
    reg = library.PEQ_MODELS if registry == "peq" else library.RATE_MODELS
    defaults = dict(reg[name].defaults)
    defaults.update(params or {})
    return {"model": name, "params": {k: format_value(v) for k, v in defaults.items()}}


def boundary_state(spec: dict) -> tuple[str, bool]:
    """The two boundary settings of a spec: (conditions, absorption step).

    A spec saved before the settings were separate has only its
    ``boundary_mode``, which implies both (absorbing: Dirichlet with the
    absorption step; reflecting: Neumann without).
    """
    from flowdash.core.model import resolve_boundary

    try:
        return resolve_boundary(spec.get("boundary_mode", "reflecting"),
                                spec.get("boundary_conditions"), spec.get("absorption_step"))
    except (ValueError, TypeError):   # shown as it is; the form marks what is wrong
        return "dirichlet", spec.get("boundary_mode") == "absorbing"


def state_from_spec(spec: dict) -> dict:
    """Form state from a model spec (a preset or a saved model)."""
    g = spec.get("grid", {})
    p0 = spec.get("p0_model")
    conditions, absorption = boundary_state(spec)
    return {
        "grid": {k: format_value(g.get(k, d)) for k, d in
                 (("Np", 8), ("Ne", 16), ("xbegin", -1.0), ("xend", 1.0))},
        "boundary_conditions": conditions, "absorption_step": absorption,
        "D": format_value(spec.get("D", 1.0)),
        "peq": params_state("peq", spec["peq_model"]["model"], spec["peq_model"].get("params")),
        "p0": None if p0 is None else params_state("peq", p0["model"], p0.get("params")),
        "neurons": [params_state("fr", f["model"], f.get("params")) for f in spec["fr_model"]],
    }


def _spec(Np, Ne, bm, peq, D, neurons, p0=None, xbegin=-1.0, xend=1.0):
    """A preset's spec; ``bm`` is the boundary mode (absorbing: Dirichlet with the
    absorption step, reflecting: Neumann without)."""
    absorbing = bm == "absorbing"
    return {"grid": {"Np": Np, "Ne": Ne, "xbegin": xbegin, "xend": xend},
            "boundary_mode": bm, "boundary_conditions": "dirichlet" if absorbing else "neumann",
            "absorption_step": absorbing, "peq_model": peq, "p0_model": p0, "D": D,
            "fr_model": neurons}


#: The 2021 paper's (Genkin, Hughes & Engel, Nat Commun 2021) non-stationary
#: ground truths: trials start in a narrow well at 0 and end at a wall (absorbing).
P0_2021 = {"model": "single_well", "params": {"xmin": 0.0, "miu": 200.0}}
NEURON_2021 = [{"model": "linear", "params": {"slope": 50, "bias": 60}}]


#: Presets that fill the form: key -> (label, spec).
PRESETS = {
    "fig3": ("2020 Fig. 3: double well",
             _spec(8, 256, "reflecting",
                   {"model": "double_well", "params": {"xmin": 0.6, "xmax": 0.0, "depth": 2}},
                   10, [{"model": "rectified_linear", "params": {"slope": 100, "x_thresh": -1}}])),
    "fig3_init": ("2020 Fig. 3: fit start (cos_square)",
                  _spec(8, 256, "reflecting", {"model": "cos_square", "params": {}}, 10,
                        [{"model": "rectified_linear",
                          "params": {"slope": 100, "x_thresh": -1}}])),
    "ramp": ("Ramping, absorbing boundary",
             _spec(8, 16, "absorbing", {"model": "linear_pot", "params": {"slope": -3.0}}, 0.5,
                   [{"model": "rectified_linear", "params": {"slope": 40, "x_thresh": -1}}],
                   p0={"model": "single_well", "params": {"xmin": -0.3, "miu": 100.0}})),
    "ramp2021": ("2021 ramping",
                 _spec(8, 64, "absorbing", {"model": "linear_pot", "params": {"slope": -2.65}},
                       0.56, NEURON_2021, p0=P0_2021)),
    "step2021": ("2021 stepping",
                 _spec(8, 64, "absorbing", {"model": "stepping", "params": {}}, 1.0,
                       NEURON_2021, p0=P0_2021)),
    "multi": ("Three neurons, double well",
              _spec(8, 32, "reflecting", {"model": "double_well", "params": {}}, 2.0,
                    [{"model": "rectified_linear", "params": {"slope": 50, "x_thresh": -1}},
                     {"model": "linear", "params": {"slope": -40, "bias": 50}},
                     {"model": "peaks", "params": {"center": [0.0], "width": [0.3],
                                                   "amp": [80.0]}}])),
}


def preset_state(key: str) -> dict:
    if key not in PRESETS:
        raise ValueError(f"unknown preset {key!r}; allowed: {sorted(PRESETS)}")
    return state_from_spec(PRESETS[key][1])


def apply_event(state: dict, event: str, arg=None) -> dict:
    """A new form state after a structural change.

    Events: ``preset`` (arg = key), ``load`` (arg = spec), ``peq`` / ``p0``
    (arg = model name, or "equilibrium" for p0), ``rate`` (arg = (neuron,
    name)), ``add``, ``remove`` (arg = neuron index), ``replicate`` (arg =
    number of neurons: each gets neuron 1's model and parameters).
    """
    if event == "preset":
        return preset_state(arg)
    if event == "load":
        return state_from_spec(arg)
    state = copy.deepcopy(state)
    if event == "peq" and arg != state["peq"]["model"]:
        state["peq"] = params_state("peq", arg)
    elif event == "p0":
        current = None if state["p0"] is None else state["p0"]["model"]
        if arg in (None, EQUILIBRIUM):
            state["p0"] = None
        elif arg != current:
            state["p0"] = params_state("peq", arg)
    elif event == "rate":
        i, name = arg
        if 0 <= i < len(state["neurons"]) and state["neurons"][i]["model"] != name:
            state["neurons"][i] = params_state("fr", name)
    elif event == "add" and len(state["neurons"]) < MAX_NEURONS:
        state["neurons"].append(params_state("fr", "rectified_linear"))
    elif event == "remove" and len(state["neurons"]) > 1 and 0 <= arg < len(state["neurons"]):
        state["neurons"].pop(arg)
    elif event == "replicate":
        state["neurons"] = [copy.deepcopy(state["neurons"][0]) for _ in range(arg)]
    return state


def parse_neuron_count(text) -> int:
    """The number of neurons asked for by "same model for all" (ValueError: the message)."""
    return parse_number(text, settings.Limit("neurons", int, 1, MAX_NEURONS))


def model_names(state: dict) -> tuple:
    """The chosen library models of a form state (peq, p0, each neuron)."""
    return (state["peq"]["model"], None if state["p0"] is None else state["p0"]["model"],
            tuple(n["model"] for n in state["neurons"]))


def parse_form(state: dict):
    """Validate a form state.

    Returns
    -------
    spec : dict or None
        The model spec, None when there are errors.
    errors : dict
        ``("grid", key)``, ``("D",)``, ``("boundary_conditions",)``,
        ``("absorption_step",)``, ``(target, neuron, param)`` or
        ``(target, neuron, None)`` (the model as a whole) -> message.
    arrays : dict or None
        ``x (N,)``, ``peq (N,)``, ``p0 (N,)`` (equilibrium: peq), ``fr (N, n)``
        in Hz, for the preview.
    """
    from flowdash.core.grid import Grid

    errors = {}
    grid_vals = {}
    for key, limit in (("Np", GRID_LIMITS["Np"]), ("Ne", GRID_LIMITS["Ne"]),
                       ("xbegin", float), ("xend", float)):
        try:
            grid_vals[key] = parse_number(state["grid"].get(key), limit)
        except ValueError as exc:
            errors[("grid", key)] = str(exc)
    grid = None
    if not errors and (grid_vals["Np"] - 1) * grid_vals["Ne"] + 1 > MAX_N:
        errors[("grid", "Ne")] = f"grid too large: (Np−1)·Ne+1 must be ≤ {MAX_N}"
    if not errors:
        try:
            grid = Grid(grid_vals["Np"], grid_vals["Ne"], grid_vals["xbegin"], grid_vals["xend"])
        except InvalidValue as exc:  # the core names the field (the interval: xend)
            errors[("grid", exc.field)] = str(exc)
    try:
        D = parse_number(state.get("D"), D_LIMIT)
    except ValueError as exc:
        errors[("D",)] = str(exc)
        D = None
    absorption = bool(state.get("absorption_step"))
    for key, message in settings.boundary_errors("reflecting", state.get("boundary_conditions"),
                                                 absorption).items():
        errors[(key,)] = message   # the core's rule: an absorption step needs Dirichlet

    def parse_params(target, i, entry, registry):
        defaults = registry[entry["model"]].defaults
        params = {}
        for name, default in defaults.items():
            try:
                params[name] = parse_value(entry["params"].get(name), default)
            except ValueError as exc:
                errors[(target, i, name)] = str(exc)
        return params

    def evaluate(target, i, name, params, fn):
        if grid is None:
            return None
        try:
            with np.errstate(all="ignore"):
                out = fn(name, params)
            if not np.all(np.isfinite(out)):
                raise ValueError("gives non-finite values on this grid")
            return out
        except (ValueError, TypeError, OverflowError, KeyError) as exc:
            field = getattr(exc, "field", None)  # the core names the parameter (InvalidValue)
            errors[(target, i, field if field in params else None)] = str(exc)
            return None

    peq_entry = state["peq"]
    peq_params = parse_params("peq", 0, peq_entry, library.PEQ_MODELS)
    peq = None
    if not any(k[0] == "peq" for k in errors):
        peq = evaluate("peq", 0, peq_entry["model"], peq_params,
                       lambda n, p: library.peq_from_library(grid, n, **p))
    p0_spec, p0 = None, peq
    if state.get("p0") is not None:
        p0_params = parse_params("p0", 0, state["p0"], library.PEQ_MODELS)
        p0_spec = {"model": state["p0"]["model"], "params": p0_params}
        if not any(k[0] == "p0" for k in errors):
            p0 = evaluate("p0", 0, state["p0"]["model"], p0_params,
                          lambda n, p: library.p0_from_library(grid, n, **p))
    fr_specs, rates = [], []
    for i, entry in enumerate(state["neurons"]):
        params = parse_params("fr", i, entry, library.RATE_MODELS)
        fr_specs.append({"model": entry["model"], "params": params})
        if not any(k[0] == "fr" and k[1] == i for k in errors):
            rates.append(evaluate("fr", i, entry["model"], params,
                                  lambda n, p: library.rate_from_library(grid.x, n, **p)))
    if errors:
        return None, errors, None
    spec = {"grid": grid_vals, "boundary_mode": "absorbing" if absorption else "reflecting",
            "boundary_conditions": state["boundary_conditions"], "absorption_step": absorption,
            "peq_model": {"model": peq_entry["model"], "params": peq_params},
            "p0_model": p0_spec, "D": D, "fr_model": fr_specs}
    arrays = {"x": grid.x, "peq": peq, "p0": p0, "fr": np.stack(rates, axis=1)}
    return spec, errors, arrays
