"""Decode page callbacks: start/cancel through the job layer, poll the run store."""
from __future__ import annotations

from dash import Input, Output, State, callback, dcc, no_update
from dash.exceptions import PreventUpdate

from flowdash import ids as app_ids
from flowdash import jobs
from flowdash.jobs.viterbi import paths_npz
from flowdash.pages import clientside, theme
from flowdash.pages.components import alert, status_badge
from flowdash.pages.decode import figures, ids, logic
from flowdash.pages.services import open_store, options

#: setting -> its input (the FormFeedback beside it is ``{"type": FB, "field": setting}``)
INPUT_OF = {"dataset": ids.DATASET, "datasample": ids.SAMPLE, "model": ids.MODEL,
            "epoch": ids.EPOCH, "trials": ids.TRIALS, "Nv": ids.NV, "name": ids.NAME}
HIDE = {"display": "none"}


@callback(Output(ids.DATASET, "options"), Output(ids.MODEL, "options"),
          Output(ids.RUN_SELECT, "options"), Output(ids.RUN_SELECT, "value"),
          Output(ids.DATASET, "value"),
          Input(app_ids.URL, "pathname"), State(app_ids.ACTIVE_DECODE, "data"),
          State(app_ids.ACTIVE_DATASET, "data"))
def fill_lists(_path, active, active_dataset):
    """Datasets, models (saved and fit runs) and decode runs when the page opens."""
    with open_store() as store:
        datasets = store.list_datasets()
        return (options(datasets), logic.model_options(store), logic.run_options(store),
                active if store.get_run(active) else None,
                active_dataset if active_dataset in datasets else no_update)


@callback(Output(ids.SAMPLE, "options"), Output(ids.SAMPLE, "value"),
          Output(ids.SAMPLE_BOX, "style"), Input(ids.DATASET, "value"))
def samples(dataset):
    """A choice of datasample (condition) for a dataset that has several."""
    with open_store() as store:
        opts = logic.sample_options(store, dataset)
    return opts, "0", None if len(opts) > 1 else HIDE


@callback(Output(ids.EPOCH, "options"), Output(ids.EPOCH, "value"),
          Output(ids.EPOCH_BOX, "style"), Output(ids.NV, "value"), Input(ids.MODEL, "value"),
          prevent_initial_call=True)
def model_chosen(choice):
    """A fit run's final model and recorded epochs (nothing to choose for a saved model),
    and the Nv that suits the model (a fit's own)."""
    with open_store() as store:
        opts, nv = logic.epoch_options(store, choice), logic.nv_for(store, choice)
    if not (choice or "").startswith(logic.FIT):
        return [], None, HIDE, nv
    return opts, opts[0]["value"] if opts else None, None, nv


@callback(Output(app_ids.ACTIVE_DECODE, "data"), Output(ids.MESSAGE, "children"),
          Output(ids.RUN_SELECT, "options", allow_duplicate=True),
          Output(ids.RUN_SELECT, "value", allow_duplicate=True),
          *[Output(i, "invalid") for i in INPUT_OF.values()],
          *[Output({"type": ids.FB, "field": f}, "children") for f in INPUT_OF],
          Input(ids.START, "n_clicks"), *[State(i, "value") for i in INPUT_OF.values()],
          prevent_initial_call=True)
def start(_n, dataset, sample, choice, epoch, trials, nv, name):
    """Validate (the job kind's rules), then queue the decode for a worker."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    values = logic.values_from_fields(dataset, sample, choice, epoch, trials, nv)
    with open_store() as store:
        run_id, errors, problem = logic.start(store, values, name)
        opts = logic.run_options(store) if run_id else no_update
    marks = [bool(errors.get(f)) for f in INPUT_OF] + [errors.get(f, "") for f in INPUT_OF]
    if run_id is None:
        return no_update, alert(problem, "danger"), no_update, no_update, *marks
    return run_id, alert("Decode started.", "success"), opts, run_id, *marks


@callback(Output(app_ids.ACTIVE_DECODE, "data", allow_duplicate=True),
          Input(ids.RUN_SELECT, "value"), prevent_initial_call=True)
def follow(run_id):
    """Follow the chosen decode run (remembered across page changes and reloads)."""
    return run_id or no_update


@callback(Output(ids.CANCEL_MSG, "children"), Input(ids.CANCEL, "n_clicks"),
          State(app_ids.ACTIVE_DECODE, "data"), prevent_initial_call=True)
def cancel(_n, run_id):
    """Ask the worker to stop after the current trial; the decoded paths are kept."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    with open_store() as store:
        record = jobs.cancel(store, run_id)
    if record is None:
        return no_update
    if record["status"] not in ("queued", "running"):
        return alert(f"The decode has already ended ({record['status']}).", "light")
    return alert("Cancel requested: the decode stops after the current trial.", "warning")


@callback(Output(ids.PROGRESS, "value"), Output(ids.PROGRESS, "label"),
          Output(ids.PROGRESS, "striped"), Output(ids.PROGRESS, "animated"),
          Output(ids.PROGRESS_TEXT, "children"), Output(ids.STATUS, "children"),
          Output(ids.INTERVAL, "disabled"), Output(ids.CANCEL, "disabled"),
          Output(ids.TRIAL, "options"), Output(ids.TRIAL, "value"), Output(ids.SHOWN, "data"),
          Output(ids.MESSAGE, "children", allow_duplicate=True),
          Output(ids.CANCEL_MSG, "children", allow_duplicate=True),
          Output(ids.RUN_SELECT, "options", allow_duplicate=True), Output(ids.POLL_DONE, "data"),
          Input(ids.POLL_TICK, "data"), Input(app_ids.ACTIVE_DECODE, "data"),
          State(ids.SHOWN, "data"), State(ids.TRIAL, "value"),
          prevent_initial_call="initial_duplicate")
def poll(tick, run_id, shown, trial):
    """The followed decode as the job layer reports it; its trials once its paths land.

    ``tick`` comes from the interval through a gate (assets/flowdash.js) that
    lets the next one pass once this poll answered it (``POLL_DONE``). The
    result and the list of runs are read when the run's status changes.
    """
    done = tick.get("n") if isinstance(tick, dict) else tick
    with open_store() as store:
        record = jobs.observe(store, run_id) if run_id else None
        if record is None or record["kind"] != "viterbi":
            return (0, "", False, False, "", "", True, True, [], None, None, no_update, "",
                    no_update, done)
        active = logic.is_active(record)
        same = (shown or {}).get("run") == run_id and (shown or {}).get("status") == \
            record["status"]
        result = None if same else store.get_result(run_id)
        runs = no_update if same else logic.run_options(store)  # their statuses changed
    value, label, text = logic.progress(record)
    trials, key = no_update, no_update
    chosen = no_update
    if not same:
        trials, key = logic.decoded_trials(result), logic.shown_key(record, result)
        values = [o["value"] for o in trials]
        chosen = trial if trial in values else (values[0] if values else None)
    return (value, label, active, active, text, status_badge(record["status"]), not active,
            not active, trials, chosen, key, no_update if active else "",
            no_update if same or (shown or {}).get("run") == run_id else "", runs, done)


@callback(Output(ids.GRAPH, "figure"), Output(ids.NOTE, "children"),
          Output(ids.EXPORT_NPZ, "disabled"), Output(ids.EXPORT_JSON, "disabled"),
          Input(ids.TRIAL, "value"), Input(ids.SHOWN, "data"))
def show(trial, shown):
    """The chosen decoded trial: its path over its spikes, the true path, the rates."""
    run_id = (shown or {}).get("run")
    with open_store() as store:
        record = store.get_run(run_id) if run_id else None
        result = store.get_result(run_id) if record else None
        view = logic.trial_view(store, record, result, trial) if trial is not None else None
    no_paths = not (result or {}).get("paths")
    if view is None:
        text = ("Decode trials or choose a decode run." if record is None else
                "No decoded paths yet." if logic.is_active(record) else
                "This decode has no paths.")
        return theme.message_figure(text, 420), "", no_paths, record is None
    return (figures.path_figure(view["t"], view["x"], view["ids"], view["n_neurons"],
                                view["x_grid"], view["fr"], view["true"], view["title"]),
            view["note"], no_paths, False)


@callback(Output(ids.DOWNLOAD_NPZ, "data"), Input(ids.EXPORT_NPZ, "n_clicks"),
          State(ids.SHOWN, "data"), prevent_initial_call=True)
def export_npz(_n, shown):
    """The decoded paths as .npz."""
    if not _n or not (shown or {}).get("run"):  # pages insert components: only a real click
        raise PreventUpdate
    with open_store() as store:
        result = store.get_result(shown["run"])
    if not (result or {}).get("paths"):
        raise PreventUpdate
    return dcc.send_bytes(paths_npz(result), f"flowdash-decode-{shown['run']}.npz")


@callback(Output(ids.DOWNLOAD_JSON, "data"), Input(ids.EXPORT_JSON, "n_clicks"),
          State(ids.SHOWN, "data"), prevent_initial_call=True)
def export_json(_n, shown):
    """The decode's settings and scores as JSON."""
    if not _n or not (shown or {}).get("run"):  # pages insert components: only a real click
        raise PreventUpdate
    with open_store() as store:
        record = store.get_run(shown["run"])
        result = store.get_result(shown["run"]) if record else None
    if record is None:
        raise PreventUpdate
    return dict(content=logic.export_json(record, result),
                filename=f"flowdash-decode-{shown['run']}.json")


clientside.register(ids)
