"""Data page callbacks."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, html, no_update
from dash.exceptions import PreventUpdate

from flowdash import ids as app_ids
from flowdash.pages.components import alert
from flowdash import jobs
from flowdash import settings
from flowdash.pages import menus, theme
from flowdash.pages.data import figures, ids, logic
from flowdash.pages.services import open_store, options
from flowdash.store import NameTaken

#: form field id -> settings key
GEN_FIELDS = {ids.MODEL: "model", ids.TRIALS: "n_trials", ids.DURATION: "duration",
              ids.DT: "dt", ids.SEED: "seed", ids.VAL_FRACTION: "val_fraction",
              ids.NAME: "dataset_name"}
FIELD_IDS = list(GEN_FIELDS)
#: Fields that are menus (marked invalid by their class: ``menus.invalid_class``).
MENUS = (ids.MODEL,)


def _marks(messages):
    """Each field's invalid mark, from its message."""
    return [menus.invalid_class(bool(m)) if f in MENUS else bool(m)
            for f, m in zip(FIELD_IDS, messages)]


def _dataset_options(store, search, value):
    return menus.name_options(store.list_datasets(), search, value)


def _model_options(store, search, value):
    return menus.name_options(store.list_models(), search, value)


menus.searchable(ids.DATASET, _dataset_options)
menus.searchable(ids.MODEL, _model_options)


@callback(Output(ids.MODEL, "options"), Output(ids.DATASET, "options"),
          Output(ids.DATASET, "value"),
          Input(app_ids.URL, "pathname"), State(app_ids.ACTIVE_DATASET, "data"))
def fill_lists(_path, active):
    """Saved models and datasets when the page opens."""
    with open_store() as store:
        models, datasets = store.list_models(), store.list_datasets()
    chosen = active if active in datasets else (datasets[0] if datasets else None)
    return options(models), options(datasets, chosen), chosen


@callback(
    Output(app_ids.ACTIVE_GEN, "data"), Output(ids.JOB, "data", allow_duplicate=True),
    Output(ids.STATUS, "children"),
    *[Output(f, "className" if f in MENUS else "invalid") for f in FIELD_IDS],
    *[Output({"type": ids.FB, "field": f}, "children") for f in FIELD_IDS],
    Input(ids.GENERATE, "n_clicks"),
    *[State(f, "value") for f in FIELD_IDS], State(ids.TRIAL_END, "value"),
    prevent_initial_call=True,
)
def start_generation(_n, *values):
    """Validate the fields (the job layer's rules); queue a generation run for a worker."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    fields = dict(zip(GEN_FIELDS.values(), values), with_trial_end=values[-1])
    with open_store() as store:
        try:
            run_id, errors = jobs.submit(store, "generation", fields), {}
        except settings.SettingsError as exc:
            run_id, errors = None, exc.errors
    messages = [errors.get(GEN_FIELDS[f]) or "" for f in FIELD_IDS]
    if run_id is None:
        return no_update, no_update, alert("Fix the fields marked in red.", "danger"), \
            *_marks(messages), *messages
    return run_id, {"run_id": run_id, "status": "queued"}, alert("Generation queued…", "info"), \
        *_marks([""] * len(FIELD_IDS)), *messages


@callback(Output(app_ids.ACTIVE_DATASET, "data"), Input(ids.DATASET, "value"),
          prevent_initial_call=True)
def remember_dataset(name):
    """The chosen dataset is preselected on the Fit page and after a reload."""
    if not name:
        raise PreventUpdate
    return name


@callback(Output(ids.PROGRESS, "value"), Output(ids.PROGRESS, "label"),
          Output(ids.GENERATE, "disabled"), Output(ids.CANCEL, "disabled"),
          Output(ids.GEN_POLL, "disabled"), Output(ids.JOB, "data"),
          Input(ids.GEN_POLL, "n_intervals"), Input(app_ids.ACTIVE_GEN, "data"),
          State(ids.JOB, "data"))
def follow_generation(_n, run_id, seen):
    """The followed generation run as the job layer reports it (survives reloads).

    ``JOB`` remembers the status last seen; when it turns final, ``announce``
    says how the run ended (once).
    """
    with open_store() as store:
        record = jobs.observe(store, run_id)
    value, label, active = logic.generation_progress(record)
    job = logic.follow_state(record, seen)
    changed = logic.follow_key(job) != logic.follow_key(seen)
    return value, label, active, not active, not active, job if changed else no_update


@callback(Output(ids.STATUS, "children", allow_duplicate=True),
          Output(ids.DATASET, "options", allow_duplicate=True),
          Output(ids.DATASET, "value", allow_duplicate=True),
          Input(ids.JOB, "data"), prevent_initial_call=True)
def announce(job):
    """How the followed generation ended, once: the new dataset is shown at once,
    a failure with its reason."""
    if not job or not job.get("ended"):
        raise PreventUpdate
    with open_store() as store:
        record, datasets = jobs.observe(store, job["run_id"]), store.list_datasets()
    text, colour, dataset = logic.generation_outcome(record)
    return alert(text, colour), options(datasets, dataset), dataset or no_update


@callback(Output(ids.STATUS, "children", allow_duplicate=True),
          Input(ids.CANCEL, "n_clicks"), State(app_ids.ACTIVE_GEN, "data"),
          prevent_initial_call=True)
def cancel_generation(_n, run_id):
    """Ask the job layer to cancel; the page reports the outcome when the run ends."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    with open_store() as store:
        record = jobs.cancel(store, run_id)
    if record is None:
        return no_update
    return alert("Cancel requested: the generation stops after the current trial; "
                 "no dataset is saved.", "warning")


def _about_name(exc) -> bool:
    """The store rejected the dataset name (taken, empty or too long): its ``field``."""
    return getattr(exc, "field", None) == "name"


def _save(samples, meta, name):
    """Save imported datasamples; returns (dataset options, name)."""
    with open_store() as store:
        name = store.save_dataset(name, [jobs.spikedata_to_bytes(s) for s in samples], meta)
        return options(store.list_datasets(), name), name


@callback(Output(ids.UPLOAD_MSG, "children"), Output(ids.DATASET, "options", allow_duplicate=True),
          Output(ids.DATASET, "value", allow_duplicate=True),
          Output(ids.UPLOAD_NAME, "invalid"), Output(ids.UPLOAD_NAME_FB, "children"),
          Input(ids.UPLOAD, "contents"), State(ids.UPLOAD, "filename"),
          State(ids.UPLOAD_NAME, "value"), State(ids.VAL_FRACTION, "value"),
          prevent_initial_call=True)
def upload(contents, filenames, name, val_fraction):
    """Save an uploaded .npz / .csv dataset (never unpickled)."""
    if not contents:  # pages insert components: never act without a real click
        raise PreventUpdate
    try:
        opts, name = _save(*logic.import_upload(contents, filenames, val_fraction), name)
    except (NameTaken, ValueError) as exc:
        if _about_name(exc):
            return "", no_update, no_update, True, str(exc)
        return alert(f"Upload rejected: {exc}", "danger"), no_update, no_update, False, ""
    return alert(f"Saved dataset “{name}”.", "success"), opts, name, False, ""


@callback(Output(ids.TRIALS, "value"), Output(ids.DURATION, "value"), Output(ids.DT, "value"),
          Output(ids.SEED, "value"), Output(ids.VAL_FRACTION, "value"),
          Output(ids.TRIAL_END, "value"), Output(ids.NAME, "value"),
          Input(ids.PRESET, "n_clicks"), Input({"type": ids.PRESET, "key": ALL}, "n_clicks"),
          prevent_initial_call=True)
def preset(_n, _others=None):
    """A preset's data settings (``logic.PRESETS``): the 2020 Fig. 3 data (2 trials ×
    100 s, one for validation, no trial end), the 2021 ramping or stepping data."""
    trigger = ctx.triggered_id
    if not ctx.triggered or not ctx.triggered[0]["value"]:  # inserted by the page, not clicked
        raise PreventUpdate
    p = logic.PRESETS["fig3" if trigger == ids.PRESET else trigger["key"]][1]
    return (p["n_trials"], p["duration"], p["dt"], p["seed"], p["val_fraction"],
            p["with_trial_end"], p["dataset_name"])


@callback(Output(ids.DELETE_CONFIRM, "displayed"), Output(ids.DELETE_CONFIRM, "message"),
          Input(ids.DELETE, "n_clicks"), State(ids.DATASET, "value"), prevent_initial_call=True)
def ask_delete(_n, name):
    """Deleting asks first."""
    if not _n or not name:  # pages insert components: never act without a real click
        raise PreventUpdate
    return True, f"Delete the dataset “{name}”? Runs keep their settings, but its spikes are gone."


@callback(Output(ids.DELETE_MSG, "children"), Output(ids.DATASET, "options", allow_duplicate=True),
          Output(ids.DATASET, "value", allow_duplicate=True),
          Input(ids.DELETE_CONFIRM, "submit_n_clicks"), State(ids.DATASET, "value"),
          prevent_initial_call=True)
def delete_dataset(_n, name):
    """Delete the chosen dataset once confirmed (runs keep a copy of its description)."""
    if not _n or not name:  # pages insert components: never act without a confirmation
        raise PreventUpdate
    with open_store() as store:
        store.delete_dataset(name)
        datasets = store.list_datasets()
    chosen = datasets[0] if datasets else None
    return f"Deleted dataset “{name}”.", options(datasets, chosen), chosen


@callback(Output(ids.SAMPLE, "options"), Output(ids.SAMPLE, "value"),
          Input(ids.DATASET, "value"))
def samples(name):
    """One choice per datasample (condition) of the chosen dataset."""
    with open_store() as store:
        entry = store.get_dataset(name)
    conditions = (entry or {}).get("meta", {}).get("conditions") or ["all"]
    n = len((entry or {}).get("npz", [])) or 1
    # String values: a Select shows the option whose value matches as text.
    return [{"label": conditions[k] if k < len(conditions) else str(k), "value": str(k)}
            for k in range(n)], "0"


@callback(Output(ids.SUMMARY, "children"), Output(ids.RASTER, "figure"),
          Output(ids.LATENT, "figure"), Output(ids.RATES, "figure"),
          Output(ids.SHOW_TRIALS, "invalid"), Output(ids.SHOW_TRIALS_FB, "children"),
          Input(ids.DATASET, "value"), Input(ids.SHOW_TRIALS, "value"), Input(ids.SAMPLE, "value"))
def show_dataset(name, trials_text, sample):
    """Raster, latent paths of the chosen trials, per-neuron rates and counts."""
    with open_store() as store:
        entry, latent = store.get_dataset(name), store.get_latent(name)
    if entry is None:
        empty = theme.message_figure("No dataset chosen.", 240)
        return "", empty, theme.message_figure("", 120), theme.message_figure("", 120), False, ""
    try:
        v = logic.dataset_view(entry, latent, trials_text, int(sample or 0))
    except ValueError as exc:
        return no_update, no_update, no_update, no_update, True, str(exc)
    summary = dbc.Table([html.Tbody([html.Tr([html.Th(k), html.Td(val)])
                                     for k, val in v["summary"]])],
                        size="sm", borderless=True, className="mb-0 w-auto")
    lat = (figures.latent_paths(*v["latent"], v["indices"], v["xrange"]) if v["latent"]
           else theme.message_figure(v["latent_note"], 160))
    return (summary, figures.raster(v["spikes"], v["indices"], v["n_neurons"]), lat,
            figures.rates_and_counts(v["rates"], v["counts"]), False, "")
