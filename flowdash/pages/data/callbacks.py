"""Data page callbacks."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, html, no_update
from dash.exceptions import PreventUpdate

from flowdash import ids as app_ids
from flowdash import jobs
from flowdash.pages import theme
from flowdash.pages.data import figures, ids, logic
from flowdash.pages.services import open_store, options, store_path
from flowdash.store import ACTIVE_STATUSES, CANCELLED

#: form field id -> settings key
GEN_FIELDS = {ids.MODEL: "model", ids.TRIALS: "n_trials", ids.DURATION: "duration",
              ids.DT: "dt", ids.SEED: "seed", ids.VAL_FRACTION: "val_fraction",
              ids.NAME: "dataset_name"}
FIELD_IDS = list(GEN_FIELDS)


def _alert(text, color):
    return dbc.Alert(text, color=color, className="py-1 mb-0")


@callback(Output(ids.MODEL, "options"), Output(ids.DATASET, "options"),
          Output(ids.DATASET, "value"),
          Input(app_ids.URL, "pathname"), State(app_ids.ACTIVE_DATASET, "data"))
def fill_lists(_path, active):
    """Saved models and datasets when the page opens."""
    with open_store() as store:
        models, datasets = store.list_models(), store.list_datasets()
    return options(models), options(datasets), active if active in datasets else (
        datasets[0] if datasets else None)


@callback(
    Output(ids.JOB, "data"), Output(ids.STATUS, "children"),
    *[Output(f, "invalid") for f in FIELD_IDS],
    *[Output({"type": ids.FB, "field": f}, "children") for f in FIELD_IDS],
    Input(ids.GENERATE, "n_clicks"),
    *[State(f, "value") for f in FIELD_IDS], State(ids.TRIAL_END, "value"),
    prevent_initial_call=True,
)
def start_generation(_n, model, n_trials, duration, dt, seed, val_fraction, name, trial_end):
    """Validate the fields; record a queued generation run for the background job."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    settings, errors = logic.validate_generation_fields(
        model, n_trials, duration, dt, seed, trial_end, val_fraction, name)
    keyed = {f: errors.get(GEN_FIELDS[f]) for f in FIELD_IDS}
    marks = [bool(keyed[f]) for f in FIELD_IDS] + [keyed[f] or "" for f in FIELD_IDS]
    if settings is None:
        return no_update, _alert("Fix the fields marked in red.", "danger"), *marks
    run_id = jobs.create_generation(store_path(), settings)
    return {"run_id": run_id}, _alert("Generation queued…", "info"), *marks


@callback(
    Output(ids.STATUS, "children", allow_duplicate=True),
    Output(ids.DATASET, "options", allow_duplicate=True),
    Output(ids.DATASET, "value", allow_duplicate=True),
    Output(app_ids.ACTIVE_DATASET, "data"),
    Input(ids.JOB, "data"),
    background=True,
    progress=[Output(ids.PROGRESS, "value"), Output(ids.PROGRESS, "label")],
    running=[(Output(app_ids.GEN_RUNNING, "data"), True, False)],
    cancel=[Input(ids.CANCEL, "n_clicks")],
    interval=250,
    prevent_initial_call=True,
)
def generate(set_progress, job):
    """Background job: simulate trial by trial, report progress, save the dataset."""
    if not job or not job.get("run_id"):
        raise PreventUpdate
    run_id = job["run_id"]
    set_progress((0, "starting"))
    status = jobs.run_generation(store_path(), run_id, on_progress=lambda done, total:
                                 set_progress((100 * done / total, f"{done}/{total} trials")))
    with open_store() as store:
        record, datasets = store.get_run(run_id), store.list_datasets()
    name = record["settings"]["dataset_name"]
    if status == "done":
        return (_alert(f"Saved dataset “{name}”: {record['message']}.", "success"),
                options(datasets), name, name)
    text = record.get("error") or record.get("message") or status
    return _alert(f"Generation {status}: {text}", "danger" if status == "failed"
                  else "warning"), options(datasets), no_update, no_update


@callback(Output(ids.GENERATE, "disabled"), Output(ids.CANCEL, "disabled"),
          Input(app_ids.GEN_RUNNING, "data"))
def buttons(running):
    """Generate and Cancel follow the background job."""
    return bool(running), not running


@callback(Output(ids.STATUS, "children", allow_duplicate=True),
          Output(ids.PROGRESS, "label", allow_duplicate=True),
          Input(ids.CANCEL, "n_clicks"), State(ids.JOB, "data"), prevent_initial_call=True)
def cancel_generation(_n, job):
    """Dash kills the job process; record the run as cancelled."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    if not job:
        return no_update, no_update
    with open_store() as store:
        store.request_cancel(job["run_id"])
        rec = store.get_run(job["run_id"])
        if rec and rec["status"] in ACTIVE_STATUSES:
            store.finish_run(job["run_id"], CANCELLED, message="cancelled by the user")
    return _alert("Generation cancelled; no dataset was saved.", "warning"), "cancelled"


@callback(Output(ids.UPLOAD_MSG, "children"), Output(ids.DATASET, "options", allow_duplicate=True),
          Output(ids.DATASET, "value", allow_duplicate=True),
          Input(ids.UPLOAD, "contents"), State(ids.UPLOAD, "filename"),
          State(ids.UPLOAD_NAME, "value"), State(ids.VAL_FRACTION, "value"),
          prevent_initial_call=True)
def upload(contents, filenames, name, val_fraction):
    """Save an uploaded .npz / .csv dataset (never unpickled)."""
    if not contents:  # pages insert components: never act without a real click
        raise PreventUpdate
    try:
        samples, meta = logic.import_upload(contents, filenames, val_fraction)
        with open_store() as store:
            name = store.save_dataset(name, [jobs.spikedata_to_bytes(s) for s in samples], meta)
            datasets = store.list_datasets()
    except (ValueError, TypeError) as exc:
        return _alert(f"Upload rejected: {exc}", "danger"), no_update, no_update
    return _alert(f"Saved dataset “{name}”.", "success"), options(datasets), name


@callback(Output(ids.PMD_MSG, "children"), Output(ids.DATASET, "options", allow_duplicate=True),
          Output(ids.DATASET, "value", allow_duplicate=True),
          Input(ids.PMD_LOAD, "n_clicks"), State(ids.PMD_CONDITIONS, "value"),
          State(ids.PMD_NAME, "value"), prevent_initial_call=True)
def load_pmd(_n, conditions, name):
    """Load the real PMd recordings through the core's loader."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    try:
        samples, meta = logic.import_pmd(conditions)
        with open_store() as store:
            name = store.save_dataset(name, [jobs.spikedata_to_bytes(s) for s in samples], meta)
            datasets = store.list_datasets()
    except ValueError as exc:
        return _alert(str(exc), "danger"), no_update, no_update
    return (_alert(f"Saved dataset “{name}”: {meta['n_trials']} trials in "
                   f"{len(samples)} conditions.", "success"), options(datasets), name)


@callback(Output(ids.SUMMARY, "children"), Output(ids.RASTER, "figure"),
          Output(ids.LATENT, "figure"), Output(ids.RATES, "figure"),
          Output(ids.SHOW_TRIALS, "invalid"), Output(ids.SHOW_TRIALS_FB, "children"),
          Input(ids.DATASET, "value"), Input(ids.SHOW_TRIALS, "value"))
def show_dataset(name, trials_text):
    """Raster, latent paths of the chosen trials, per-neuron rates and counts."""
    with open_store() as store:
        entry, latent = store.get_dataset(name), store.get_latent(name)
    if entry is None:
        empty = theme.message_figure("No dataset chosen.", 240)
        return "", empty, theme.message_figure("", 120), theme.message_figure("", 120), False, ""
    try:
        v = logic.dataset_view(entry, latent, trials_text)
    except ValueError as exc:
        return no_update, no_update, no_update, no_update, True, str(exc)
    summary = dbc.Table([html.Tbody([html.Tr([html.Th(k), html.Td(val)])
                                     for k, val in v["summary"]])],
                        size="sm", borderless=True, className="mb-0 w-auto")
    lat = (figures.latent_paths(*v["latent"], v["indices"], v["xrange"]) if v["latent"]
           else theme.message_figure("No latent trajectories (not synthetic data).", 160))
    return (summary, figures.raster(v["trials"], v["indices"], v["n_neurons"]), lat,
            figures.rates_and_counts(v["rates"], v["counts"]), False, "")
