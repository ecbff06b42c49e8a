"""Model selections: two fits of independent halves of the data, queued together.

A *selection* (MATH.md §10) is a store record (``store.get_selection``) that
pairs two ordinary fit runs; each fit names it in ``refs["selection"]``
(``{"id", "half"}``). Nothing about it is a job: the fits run on the workers
like any fit (side by side when two workers are free), and the analysis
(:mod:`flowdash.analysis`) runs wherever it is asked for, on the models the
fits recorded so far.

How the halves are made (``values["halves"]``):

* ``"even_odd"``: one dataset; half 1 fits trials 0, 2, 4, … of every
  datasample (condition), half 2 trials 1, 3, 5, ….
* ``"random"``: one dataset; each datasample's trials are shuffled with
  ``halves_seed`` and cut in two (``SpikeData.split(0.5, seed)``).
* ``"two_datasets"``: half 1 fits ``dataset``, half 2 ``dataset2`` (the 2020
  paper's two datasamples); they need the same conditions and neurons.

Validation data: halves of one dataset validate each on the *other* half
(the dataset's own train/validation split is not used: every trial fits one
half, and the validation NLL measures how a half's model explains
independent data); two datasets validate each on its own validation split.

From a script::

    sel_id = jobs.submit_selection(store, {"dataset": "ex1", "halves": "even_odd",
                                           "init_model": "ex1-start", "optimizer": "GD",
                                           "learning_rate": {"F": 0.005}, "params_to_opt": ["F"],
                                           "max_epochs": 50000, "Nv": 64})
    run1, run2 = store.get_selection(sel_id)["fits"]
"""
from __future__ import annotations

from .. import names
from ..settings import SettingsError, core_limits, parse_number
from . import kinds
from .lifecycle import cancel, continue_checks, requeue_checked

#: How a selection gets its two halves.
HALVES = ("even_odd", "random", "two_datasets")
#: What each half validates on, per way of halving (shown on the page, kept in the record).
VALIDATION = {"even_odd": "each half validates on the other half",
              "random": "each half validates on the other half",
              "two_datasets": "each dataset validates on its own validation split"}


def _half_values(values: dict, index: int) -> dict:
    """The fit values of half ``index`` (0 or 1)."""
    fit = {k: v for k, v in values.items()
           if k not in ("halves", "halves_seed", "dataset2", "name", "selection")}
    mode = values.get("halves")
    if mode == "two_datasets":
        fit["dataset"] = values.get("dataset") if index == 0 else values.get("dataset2")
        fit["record_models"] = True
    else:
        half = {"split": mode, "index": index}
        if mode == "random":
            half["seed"] = values.get("halves_seed")
        fit["half"] = half
    return fit


def check_selection(values: dict, store) -> tuple[dict, list[dict]]:
    """The selection's settings and the fit values of both halves.

    Raises :class:`SettingsError` with a message per field: the fit's
    settings (as ``check_fit`` names them), ``halves`` (the way of halving
    and its seed), ``dataset2``.
    """
    errors = {}
    mode = values.get("halves")
    if mode not in HALVES:
        errors["halves"] = f"choose one of {', '.join(HALVES)}"
        raise SettingsError(errors)
    seed = None
    if mode == "random":
        try:
            seed = parse_number(values.get("halves_seed", 0) if values.get("halves_seed")
                                not in (None, "") else 0, core_limits()["FIT_LIMITS"]["seed"])
        except ValueError as exc:
            errors["halves"] = f"seed: {exc}"
        values = dict(values, halves_seed=seed)
    if mode == "two_datasets":
        d1, d2 = values.get("dataset"), values.get("dataset2")
        if not d2:
            errors["dataset2"] = "choose the dataset of the second half"
        elif d2 == d1:
            errors["dataset2"] = "choose another dataset than the first half's"
        elif store is not None and store.has_dataset(d1) and store.has_dataset(d2):
            m1, m2 = store.get_dataset_meta(d1) or {}, store.get_dataset_meta(d2) or {}
            for key, what in (("n_datasamples", "datasample(s) (conditions)"),
                              ("n_neurons", "neuron(s)")):
                if m1.get(key, 1) != m2.get(key, 1):
                    errors["dataset2"] = (f"the halves must have the same {what.split(' ')[0][:-3]}s: "
                                          f"“{d1}” has {m1.get(key, 1)} {what}, “{d2}” "
                                          f"{m2.get(key, 1)}")
    fit = kinds.get("fit")
    checked = []
    for index in (0, 1):
        try:
            checked.append(fit.check(_half_values(values, index), store))
        except SettingsError as exc:
            for key, message in exc.errors.items():
                if key == "dataset" and index == 1 and mode == "two_datasets":
                    key = "dataset2"
                elif key == "half":
                    key = "halves"
                errors.setdefault(key, message)
    if errors:
        raise SettingsError(errors)
    s1 = checked[0][0]
    settings = {"halves": mode, "dataset": values.get("dataset"),
                "dataset2": values.get("dataset2") if mode == "two_datasets" else None,
                "halves_seed": seed, "validation": VALIDATION[mode],
                "fit": {k: v for k, v in s1.items() if k not in ("dataset", "half")}}
    return settings, [_half_values(values, i) for i in (0, 1)]


def submit_selection(store, values: dict, name: str | None = None) -> str:
    """Check, then queue both fits of a model selection; returns the selection id.

    ``values``: the fit's values (as for ``jobs.submit(store, "fit", …)``:
    ``init_model``, ``optimizer``, ``learning_rate``, ``params_to_opt``,
    ``max_epochs``, ``mini_batch_number``, ``Nv``, ``seed``,
    ``snapshot_epochs``, ``line_search``, …) plus ``dataset``, ``halves``
    (see the module docstring), ``halves_seed`` (random halves) and
    ``dataset2`` (two datasets). Both fits record their models on the core's
    ``RecordingSchedule``. Raises :class:`SettingsError` per field (``name``:
    the selection's name) before anything is recorded.
    """
    from .lifecycle import submit

    given = name.strip() if isinstance(name, str) else name
    errors = {}
    if given:
        try:
            given = names.validate_name(given, "selection", names.MAX_RUN_NAME_LENGTH)
        except ValueError as exc:
            errors["name"] = str(exc)
    try:
        settings, halves = check_selection(values, store)
    except SettingsError as exc:
        raise SettingsError({**exc.errors, **errors}) from None
    if errors:
        raise SettingsError(errors)
    label = given or f"selection {settings['dataset']}" + (
        f" + {settings['dataset2']}" if settings["dataset2"] else f" ({settings['halves']})")
    sel_id = store.create_selection(label[:names.MAX_RUN_NAME_LENGTH], settings)
    fits = []
    try:
        for index, fit_values in enumerate(halves):
            fit_values = dict(fit_values, selection={"id": sel_id, "half": index})
            fits.append(submit(store, "fit", fit_values,
                               name=f"{label[:names.MAX_RUN_NAME_LENGTH - 9]} · half {index + 1}"))
    except Exception:  # e.g. the dataset was deleted between the check and the second submit
        for run_id in fits:
            cancel(store, run_id)
        store.delete_selection(sel_id)
        raise
    store.set_selection_fits(sel_id, fits)
    return sel_id


def _fits(store, sel_id) -> list[str]:
    record = store.get_selection(sel_id)
    if record is None:
        raise SettingsError({"selection": f"there is no selection {str(sel_id)[:40]!r}"})
    if len(record.get("fits") or []) != 2:
        raise SettingsError({"selection": "this selection's fits were never queued"})
    return list(record["fits"])


def cancel_selection(store, sel_id: str) -> list[dict | None]:
    """Cancel both fits of a selection (each as :func:`jobs.cancel` does); their records."""
    return [cancel(store, run_id) for run_id in _fits(store, sel_id)]


def continue_selection(store, sel_id: str, more_epochs) -> list[dict]:
    """Continue both fits of a selection for ``more_epochs`` more epochs each.

    Both are checked first (:func:`jobs.continue_run`'s checks), so either
    both continue or neither does (SettingsError says why).
    """
    checked = [continue_checks(store, run_id, more_epochs) for run_id in _fits(store, sel_id)]
    return [requeue_checked(store, *c) for c in checked]


def pair_runs(store, run1: str, run2: str, name: str | None = None) -> str:
    """A selection of two fit runs that exist already (e.g. two fits of a
    script); returns its id. Whether they can be compared (grids,
    conditions, fitted parameters) is the analysis's to say."""
    errors = {}
    records = []
    for key, run_id in (("run1", run1), ("run2", run2)):
        record = store.get_run(run_id) if names.is_run_id(run_id) else None
        if record is None or record["kind"] != "fit":
            errors[key] = "choose a fit run"
        records.append(record)
    if not errors and run1 == run2:
        errors["run2"] = "choose another fit than the first"
    given = name.strip() if isinstance(name, str) else name
    if given:
        try:
            given = names.validate_name(given, "selection", names.MAX_RUN_NAME_LENGTH)
        except ValueError as exc:
            errors["name"] = str(exc)
    if errors:
        raise SettingsError(errors)
    label = given or f"{records[0]['name']} vs {records[1]['name']}"
    settings = {"halves": "paired", "dataset": records[0]["settings"].get("dataset"),
                "dataset2": records[1]["settings"].get("dataset"), "halves_seed": None,
                "validation": "each fit's own validation data",
                "fit": {k: v for k, v in records[0]["settings"].items() if k != "dataset"}}
    return store.create_selection(label[:names.MAX_RUN_NAME_LENGTH], settings, [run1, run2])


__all__ = ["HALVES", "VALIDATION", "check_selection", "submit_selection", "cancel_selection",
           "continue_selection", "pair_runs"]
