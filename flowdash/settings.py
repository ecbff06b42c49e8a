"""What a run may ask for: the limits of every setting, and their checks.

Field values arrive as text from the pages or as numbers from scripts; each
check returns the normalised settings and a message per setting, so a page
can show every message next to its field.

Every limit is the core's own (``flowdash.core.grid.NP``,
``spectra.nv_limit``, ``fitting.mini_batch_limit``,
``simulation.dt_limit``, ...), narrowed here only where the app caps a
resource (``Limit.within``); the pages read them from here. Importable
without dash.
"""
from __future__ import annotations

import math

from .core import fitting, grid, model as core_model, simulation, spectra
from .core.limits import InvalidValue, Limit, format_number
from .store import RunStore

__all__ = ["SettingsError", "InvalidValue", "Limit", "format_number", "parse_number",
           "parse_list", "check_generation", "check_fit", "fit_warnings", "fit_options",
           "GRID_LIMITS", "D_LIMIT", "GEN_LIMITS", "FIT_LIMITS", "nv_limit", "mini_batch_limit"]

#: Default snapshot epochs (the iterations shown in the paper's Fig. 3).
DEFAULT_SNAPSHOTS = (1, 6, 13, 50)
#: Longest pause after each epoch that a run may ask for (teaching demos), s.
MAX_PACE = 10.0
#: Seeds are kept to 32 bits (what a person types and a record shows).
MAX_SEED = 2**32 - 1

#: Model page: the grid (the core's limits; the caps keep the live preview quick).
GRID_LIMITS = {"Np": grid.NP.within(hi=20), "Ne": grid.NE.within(hi=2000)}
#: Largest grid the Model page accepts, nodes.
MAX_N = 20001
#: Noise magnitude D (the core's limit).
D_LIMIT = core_model.D_LIMIT
#: Generation: setting -> Limit. ``dt`` also obeys ``simulation.dt_limit(duration)``.
GEN_LIMITS = {"n_trials": simulation.N_TRIALS.within(hi=10000),
              "duration": simulation.DURATION.within(lo=1e-3, hi=1e5),
              "dt": Limit("dt", float, 0, lo_open=True).within(lo=1e-6, hi=0.1),
              # 0 = no validation set; else the share of trials SpikeData.split sets aside
              "val_fraction": Limit("val_fraction", float, 0.0, 0.9),
              "seed": simulation.SEED.within(hi=MAX_SEED)}
#: Time steps of one generation (trials × duration/dt): the latent paths
#: alone take 16 bytes per step.
MAX_TOTAL_STEPS = 20_000_000
#: Time steps × neurons of one generation (the spike draws).
MAX_STEP_NEURONS = 200_000_000
#: Fit: setting -> Limit. ``Nv`` also obeys ``spectra.nv_limit(N)`` of the
#: initial model's grid, ``mini_batch_number`` ``fitting.mini_batch_limit(n)``
#: of the dataset's training trials.
FIT_LIMITS = {"max_epochs": fitting.EPOCHS.within(hi=100000),
              "mini_batch_number": fitting.MINI_BATCHES.within(hi=10000),
              "seed": fitting.SEED.within(hi=MAX_SEED), "Nv": spectra.nv_limit(),
              "learning_rate": fitting.LEARNING_RATE,
              "pace": Limit("pace", float, 0.0, MAX_PACE)}
nv_limit = spectra.nv_limit
mini_batch_limit = fitting.mini_batch_limit
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


def spec_neurons(spec: dict) -> int:
    """Number of neurons of a model spec."""
    return len(spec.get("fr_model") or [])


def spec_nodes(spec: dict) -> int:
    """Grid nodes N of a model spec."""
    g = spec.get("grid") or {}
    return grid.n_nodes(g.get("Np", 8), g.get("Ne", 16))


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
    if "dt" in s and "duration" in s:
        dt = simulation.dt_limit(s["duration"])
        if not dt.allows(s["dt"]):
            errors["dt"] = f"must be {dt.describe()}"
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
            errors["n_trials"] = (f"trials × duration/dt = {format_number(steps)} time steps; at "
                                  f"most {format_number(MAX_TOTAL_STEPS)} are allowed (fewer "
                                  "trials, a shorter duration or a larger dt)")
        elif steps * neurons > MAX_STEP_NEURONS:
            errors["n_trials"] = (f"trials × duration/dt × neurons = {format_number(steps * neurons)};"
                                  f" at most {format_number(MAX_STEP_NEURONS)} are allowed (fewer "
                                  "trials, a shorter duration or a larger dt)")
    return (None if errors else s), errors


def fit_options(s: dict):
    """The core ``FitOptions`` of normalised fit settings (raises ValueError)."""
    return fitting.FitOptions(optimizer=s["optimizer"], max_epochs=s["max_epochs"],
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
    errors = {}
    limits = {k: v for k, v in FIT_LIMITS.items() if k not in ("Nv", "learning_rate")}
    values = dict(values, seed=values.get("seed") or 0, pace=values.get("pace") or 0)
    s = _parse_fields(values, limits, errors)
    s.update(dataset=values.get("dataset"), init_model=values.get("init_model"),
             peq_override=values.get("peq_override") or None,
             optimizer=values.get("optimizer") or "GD")
    if s["optimizer"] not in fitting.OPTIMIZERS:
        errors["optimizer"] = f"choose one of {', '.join(fitting.OPTIMIZERS)}"
    chosen = list(values.get("params_to_opt") or [])
    s["params_to_opt"] = [p for p in fitting.FITTABLE if p in chosen]
    if not s["params_to_opt"] or set(chosen) - set(fitting.FITTABLE):
        errors["params_to_opt"] = f"choose at least one of {', '.join(fitting.FITTABLE)}"
    lr = dict(values.get("learning_rate") or {})
    keys = s["params_to_opt"] if s["optimizer"] == "GD" else ["alpha"]
    s["learning_rate"] = {}
    for key in keys:
        try:
            s["learning_rate"][key] = parse_number(lr.get(key), FIT_LIMITS["learning_rate"])
        except ValueError as exc:
            errors[f"learning_rate:{key}"] = str(exc)
    s["Nv"] = _optional_number(values, "Nv", FIT_LIMITS, errors)
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
            errors[exc.field if exc.field in FIT_LIMITS or ":" in exc.field else "options"] = str(exc)
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
    ds = store.get_dataset(s["dataset"]) if s["dataset"] else None
    spec = store.get_model(s["init_model"]) if s["init_model"] else None
    if s["dataset"] and ds is None:
        errors["dataset"] = f"there is no dataset named “{s['dataset']}”"
    if s["init_model"] and spec is None:
        errors["init_model"] = f"there is no saved model named “{s['init_model']}”"
    if spec is not None and s.get("Nv") is not None:
        nv = spectra.nv_limit(spec_nodes(spec))
        if not nv.allows(s["Nv"]):
            errors["Nv"] = f"must be {nv.describe()}"
    if ds is not None and "mini_batch_number" in s:
        batches = fitting.mini_batch_limit(min(training_trials(store, s["dataset"])))
        if not batches.allows(s["mini_batch_number"]):
            errors["mini_batch_number"] = f"must be {batches.describe()}"
    if ds is None or spec is None:
        return
    n_data, n_model = ds["meta"].get("n_neurons"), spec_neurons(spec)
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
