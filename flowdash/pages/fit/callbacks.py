"""Fit page callbacks: start/cancel through the job layer, poll the run store."""
from __future__ import annotations

from dash import ALL, ClientsideFunction, Input, Output, State, callback, clientside_callback, \
    ctx, no_update
from dash.exceptions import PreventUpdate

from flowdash import ids as app_ids
from flowdash import jobs
from flowdash.pages import clientside, linesearch, menus
from flowdash.pages.components import alert, status_badge
from flowdash.pages.fit import ids, view
from flowdash.pages.services import open_store, options

FIELDS = ("dataset", "init_model", "params", "alpha", "epochs", "batches", "nv",
          "snapshots", "seed", "pace", "name", "p0", "d", "ne", "likelihood") + tuple(
    f"lr-{p}" for p in view.PARAMS)
#: Text fields and selects marked invalid with their message; menus are marked by their class.
INPUT_OF = {"alpha": ids.ALPHA, "epochs": ids.EPOCHS, "batches": ids.BATCHES, "nv": ids.NV,
            "snapshots": ids.SNAPSHOTS, "seed": ids.SEED, "pace": ids.PACE, "name": ids.NAME,
            "p0": ids.P0_OVERRIDE, "d": ids.D_OVERRIDE, "ne": ids.NE_OVERRIDE,
            "likelihood": ids.LIKELIHOOD}
MENU_OF = {"dataset": ids.DATASET, "init_model": ids.INIT_MODEL}
#: The form's fields, in the order of :func:`fields`.
FORM_IDS = (ids.DATASET, ids.INIT_MODEL, ids.PEQ_OVERRIDE, ids.OPTIMIZER,
            {"type": ids.LR, "param": ALL}, ids.ALPHA, ids.PARAMS, ids.EPOCHS, ids.BATCHES,
            ids.NV, ids.SNAPSHOTS, ids.SEED, ids.PACE, ids.P0_OVERRIDE, ids.D_OVERRIDE,
            ids.NE_OVERRIDE, ids.LIKELIHOOD)
FORM_STATES = tuple(State(i, "value") for i in FORM_IDS)


#: The line-search fields (pattern inputs; their values, then their ids).
LS_STATES = (State({"type": ids.LS, "param": ALL, "part": ALL}, "value"),
             State({"type": ids.LS, "param": ALL, "part": ALL}, "id"))


def fields(dataset, init_model, peq_override, optimizer, lrs, alpha, params, epochs, batches,
           nv, snapshots, seed, pace, p0_override=None, D_override=None, Ne_override=None,
           likelihood=None, name=None, ls_values=None, ls_ids=None) -> dict:
    """The form's values as the dict :mod:`view` takes."""
    return dict(dataset=dataset, init_model=init_model, peq_override=peq_override,
                optimizer=optimizer, lr=dict(zip(view.PARAMS, lrs or [])), alpha=alpha,
                params=params, epochs=epochs, batches=batches, nv=nv, snapshots=snapshots,
                seed=seed, pace=pace, p0_override=p0_override, D_override=D_override,
                Ne_override=Ne_override, likelihood=likelihood, name=name,
                line_search=linesearch.values(ls_values, ls_ids) if ls_ids else None)


def run_options(store, search=None, value=None):
    """The fit runs of the "follow a run" menu: the newest, the followed one, and
    any other by typing (from the run index; no run record is read)."""
    return menus.run_options(store, search, value, kind="fit")


def _dataset_options(store, search, value):
    return menus.name_options(store.list_datasets(), search, value)


def _model_options(store, search, value):
    return menus.name_options(store.list_models(), search, value)


menus.searchable(ids.RUN_SELECT, run_options)
menus.searchable(ids.DATASET, _dataset_options)
menus.searchable(ids.INIT_MODEL, _model_options)


@callback(Output(ids.DATASET, "options"), Output(ids.INIT_MODEL, "options"),
          Output(ids.RUN_SELECT, "options"), Output(ids.RUN_SELECT, "value"),
          Output(ids.DATASET, "value"),
          Input(app_ids.URL, "pathname"), State(app_ids.ACTIVE_FIT, "data"),
          State(app_ids.ACTIVE_DATASET, "data"))
def fill_lists(_path, active_fit, active_dataset):
    """Datasets, models and fit runs when the page opens; follow the active run."""
    with open_store() as store:
        datasets = store.list_datasets()
        followed = active_fit if store.get_run(active_fit) else None
        chosen = active_dataset if active_dataset in datasets else None
        return (options(datasets, chosen), options(store.list_models()),
                run_options(store, None, followed), followed, chosen or no_update)


@callback(Output(ids.GD_BOX, "style"), Output(ids.ADAM_BOX, "style"),
          Input(ids.OPTIMIZER, "value"))
def optimizer_fields(optimizer):
    """GD shows a learning rate per parameter, ADAM one step size."""
    hide = {"display": "none"}
    return (hide, None) if optimizer == "ADAM" else (None, hide)


@callback(Output(ids.INIT_MODEL, "value"), Output(ids.PEQ_OVERRIDE, "value"),
          Output(ids.OPTIMIZER, "value"), Output({"type": ids.LR, "param": ALL}, "value"),
          Output(ids.PARAMS, "value"), Output(ids.EPOCHS, "value"), Output(ids.BATCHES, "value"),
          Output(ids.NV, "value"), Output(ids.SNAPSHOTS, "value"), Output(ids.VIEW, "value"),
          Output(ids.P0_OVERRIDE, "value"), Output(ids.D_OVERRIDE, "value"),
          Output(ids.NE_OVERRIDE, "value"), Output(ids.LIKELIHOOD, "value"),
          Input(ids.PRESET, "n_clicks"), State(ids.DATASET, "value"),
          State(ids.INIT_MODEL, "value"), Input({"type": ids.PRESET, "key": ALL}, "n_clicks"),
          prevent_initial_call=True)
def preset(_n, dataset, init_model, _others=None):
    """A preset (``view.PRESETS``: the 2020 Fig. 3 fit, the 2021 fits) from the
    dataset's ground truth, shown in the paper's layout."""
    if not ctx.triggered or not ctx.triggered[0]["value"]:  # inserted by the page, not clicked
        raise PreventUpdate
    with open_store() as store:
        meta = store.get_dataset_meta(dataset)   # no spike data read
    truth = (meta or {}).get("model") or init_model
    trigger = ctx.triggered_id
    p = view.preset("fig3" if trigger == ids.PRESET else trigger["key"], truth)
    return (p["init_model"], p["peq_override"], p["optimizer"],
            [p["lr"][q] for q in view.PARAMS], p["params"], p["epochs"], p["batches"],
            p["nv"], p["snapshots"], p["view"], p["p0_override"], p["D_override"],
            p["Ne_override"], p["likelihood"])


@callback(Output(ids.ESTIMATE, "children"), Output(ids.ESTIMATE, "className"),
          Output(ids.SNAPSHOT_WARN, "children"), *[Input(i, "value") for i in FORM_IDS])
def preflight(*values):
    """As one types: the estimated time per epoch and the warnings (nothing starts)."""
    with open_store() as store:
        out = view.preflight(store, fields(*values))
    css = "small mt-1 " + ("text-warning-emphasis fw-semibold" if out["slow"] else "text-muted")
    return out["estimate"], css, out["warnings"].get("snapshots", "")


@callback(
    Output(app_ids.ACTIVE_FIT, "data"), Output(ids.MESSAGE, "children"),
    Output(ids.RUN_SELECT, "options", allow_duplicate=True),
    Output(ids.RUN_SELECT, "value", allow_duplicate=True),
    Output({"type": ids.FB, "field": ALL}, "children"),
    Input(ids.START, "n_clicks"), *FORM_STATES, State(ids.NAME, "value"), *LS_STATES,
    prevent_initial_call=True,
)
def start(_n, *values):
    """Validate (the job layer's rules), then queue the fit for a worker."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    with open_store() as store:
        run_id, errors, problem = view.start(store, fields(*values))
        opts = run_options(store, None, run_id) if run_id else None
    feedback = [errors.get(o["id"]["field"], "") for o in ctx.outputs_list[-1]]
    if run_id is None:
        return no_update, alert(problem, "danger"), no_update, no_update, feedback
    return run_id, alert("Fit started.", "success"), opts, run_id, feedback


@callback(*[Output(i, "invalid") for i in INPUT_OF.values()],
          Output({"type": ids.LR, "param": ALL}, "invalid"), Output(ids.PARAMS, "className"),
          *[Output(i, "className") for i in MENU_OF.values()],
          Output({"type": ids.LS, "param": ALL, "part": ALL}, "invalid"),
          Input({"type": ids.FB, "field": ALL}, "children"), prevent_initial_call=True)
def mark_invalid(messages):
    """Fields with a message are marked invalid (the message shows beneath)."""
    by_field = {o["id"]["field"]: m for o, m in zip(ctx.inputs_list[0], messages)}
    return (*[bool(by_field.get(f)) for f in INPUT_OF],
            [bool(by_field.get(f"lr-{p}")) for p in view.PARAMS],
            "is-invalid" if by_field.get("params") else "",
            *[menus.invalid_class(bool(by_field.get(f))) for f in MENU_OF],
            linesearch.invalid(by_field, [o["id"] for o in (ctx.outputs_list or [[]])[-1]]))


@callback(Output(ids.CANCEL_MSG, "children", allow_duplicate=True),
          Output(ids.INTERVAL, "disabled", allow_duplicate=True),
          Input(ids.CONTINUE, "n_clicks"), State(app_ids.ACTIVE_FIT, "data"),
          State(ids.MORE, "value"), prevent_initial_call=True)
def continue_run(_n, run_id, more):
    """Continue the followed run (done, cancelled or interrupted) for more epochs: the
    same run appends them, from its saved state; the poll follows it again. A refused
    continue leaves the poll alone: a running fit refused must still be followed."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    with open_store() as store:
        text, colour = view.continue_run(store, run_id, more)
    return alert(text, colour), (False if colour == "success" else no_update)


@callback(Output(app_ids.ACTIVE_FIT, "data", allow_duplicate=True),
          Input(ids.RUN_SELECT, "value"), prevent_initial_call=True)
def follow(run_id):
    """Follow the chosen run (remembered across page changes and reloads)."""
    return run_id or no_update


@callback(Output(ids.CANCEL_MSG, "children", allow_duplicate=True),
          Input(ids.CANCEL, "n_clicks"), State(app_ids.ACTIVE_FIT, "data"),
          prevent_initial_call=True)
def cancel(_n, run_id):
    """Ask the worker to stop after the current epoch; what it has is kept.

    The answer has its own place: the poll clears "Fit started." when the run
    ends, which a cancel makes happen at once.
    """
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    if not run_id:
        return no_update
    with open_store() as store:
        record = jobs.cancel(store, run_id)
    if record is None:
        return no_update
    if record["status"] == "cancelled" and not record.get("started"):
        return alert("Cancelled before it started.", "warning")
    if record["status"] != "running":
        return alert(f"The fit has already ended ({record['status']}).", "light")
    return alert("Cancel requested: the fit stops after the current epoch.", "warning")


@callback(Output(ids.PAPER_BOX, "style"), Output(ids.OVERLAY_BOX, "style"),
          Output(ids.EXPORT_PNG, "style"), Input(ids.VIEW, "value"))
def show_view(which):
    """The paper's layout (one figure, with its PNG export) or the overlay (two)."""
    hide = {"display": "none"}
    return (None, hide, None) if which == view.PAPER else (hide, None, hide)


@callback(Output(ids.NLL_GRAPH, "figure"), Output(ids.POTENTIAL_GRAPH, "figure"),
          Output(ids.PAPER_GRAPH, "figure"), Output(ids.PARAMS_GRAPH, "figure"),
          Output(ids.PROGRESS, "value"), Output(ids.PROGRESS, "label"),
          Output(ids.PROGRESS, "striped"), Output(ids.PROGRESS, "animated"),
          Output(ids.PROGRESS_TEXT, "children"), Output(ids.STATUS, "children"),
          Output(ids.LIVE_WARNING, "children"), Output(ids.CURSOR, "data"),
          Output(ids.INTERVAL, "disabled"), Output(ids.CANCEL, "disabled"),
          Output(ids.INTERVAL, "interval"),
          Output(ids.MESSAGE, "children", allow_duplicate=True),
          Output(ids.CANCEL_MSG, "children", allow_duplicate=True),
          Output(ids.POLL_DONE, "data"), Output(ids.GT_NOTE, "children"),
          Output(ids.CONTINUE, "disabled"),
          Input(ids.POLL_TICK, "data"), Input(app_ids.ACTIVE_FIT, "data"),
          Input(ids.VIEW, "value"), State(ids.CURSOR, "data"), Input(ids.NLL_SCALE, "value"),
          prevent_initial_call="initial_duplicate")
def poll(tick, run_id, which, cursor, scale=view.SHIFTED):
    """Read what is new in the run store; extend the curves with a Patch.

    ``tick`` comes from the interval through a gate (assets/flowdash.js) that
    lets the next one pass once this poll answers it (``POLL_DONE``). "Fit
    started." goes when the run ends; a Cancel's answer when another run is
    followed.
    """
    done = tick.get("n") if isinstance(tick, dict) else tick
    followed = ctx.triggered_id == app_ids.ACTIVE_FIT
    with open_store() as store:
        out = view.poll(store, run_id, None if followed else cursor, which or view.OVERLAY,
                        scale or view.SHIFTED)
    cancel_msg = "" if followed else no_update
    if out is None:
        return (no_update,) * 12 + (True, True, no_update, no_update, cancel_msg, done, "", True)
    value, label, text = out["progress"]
    status = out["record"]["status"]
    active = status in ("queued", "running")
    warning = alert(out["warning"], "warning") if out["warning"] else ""
    figs = [no_update if out[k] is None else out[k]
            for k in ("nll", "potential", "paper", "params")]
    return (*figs, value, label, active, active, text, status_badge(status), warning,
            out["cursor"], out["final"], not active, view.poll_interval(out),
            "" if out["final"] else no_update, cancel_msg, done,
            no_update if out["note"] is None else out["note"],
            not jobs.can_continue(out["record"]))   # the job layer says, not the page


clientside.register(ids, presentation=True, settings_toggle=True)


clientside_callback(
    ClientsideFunction("flowdash", "exportPng"),
    Output(ids.EXPORT_DONE, "children"), Input(ids.EXPORT_PNG, "n_clicks"),
    State(ids.PAPER_GRAPH, "id"), State(ids.VIEW, "value"), prevent_initial_call=True)
