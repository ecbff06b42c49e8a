"""Model page callbacks (thin: parse, call form/core/store, build figures)."""
from __future__ import annotations

from dash import ALL, Input, Output, State, callback, ctx, no_update
from dash.exceptions import PreventUpdate

from flowdash import ids as app_ids
from flowdash.pages.components import alert
from flowdash.pages import theme
from flowdash.pages.model import figures, form, ids
from flowdash.pages.model.layout import form_outputs
from flowdash.pages.services import open_store, options
from flowdash.pages import menus


def _saved_options(store, search, value):
    return menus.name_options(store.list_models(), search, value)


menus.searchable(ids.SAVED, _saved_options)

PARAMS_ALL = {"type": ids.PARAM, "target": ALL, "neuron": ALL, "name": ALL, "model": ALL}
GRID_KEYS = (("Np", ids.NP, ids.FB_NP), ("Ne", ids.NE, ids.FB_NE),
             ("xbegin", ids.XBEGIN, ids.FB_XBEGIN), ("xend", ids.XEND, ids.FB_XEND))


def state_from_fields(structure, grid_values, boundary, absorption, D, param_values, param_ids):
    """Form state from the structure store and the current field values.

    Fields rendered for another model than the structure says are ignored.
    """
    state = {"grid": dict(zip(("Np", "Ne", "xbegin", "xend"), grid_values)),
             "boundary_conditions": boundary, "absorption_step": bool(absorption), "D": D,
             "peq": {"model": structure["peq"]["model"], "params": {}},
             "p0": None if structure["p0"] is None else
             {"model": structure["p0"]["model"], "params": {}},
             "neurons": [{"model": n["model"], "params": {}} for n in structure["neurons"]]}
    for value, pid in zip(param_values or [], param_ids or []):
        t, i = pid["target"], pid["neuron"]
        entry = (state["neurons"][i] if t == "fr" and i < len(state["neurons"])
                 else state.get(t) if t in ("peq", "p0") else None)
        if entry is not None and entry["model"] == pid["model"]:
            entry["params"][pid["name"]] = value
    for target, entry in (("peq", state["peq"]), ("p0", state["p0"])):
        if entry is not None and not entry["params"]:
            entry["params"] = form.params_state("peq", entry["model"])["params"]
    return state


@callback(
    Output(ids.NP, "value"), Output(ids.NE, "value"), Output(ids.XBEGIN, "value"),
    Output(ids.XEND, "value"), Output(ids.BOUNDARY, "value"), Output(ids.ABSORPTION, "value"),
    Output(ids.D, "value"),
    Output(ids.PEQ, "value"), Output(ids.P0, "value"), Output(ids.PEQ_PARAMS, "children"),
    Output(ids.P0_PARAMS, "children"), Output(ids.NEURONS, "children"),
    Output(ids.FORM, "data"),
    Input({"type": ids.PRESET, "key": ALL}, "n_clicks"), Input(ids.LOAD, "n_clicks"),
    Input(ids.ADD_NEURON, "n_clicks"), Input({"type": ids.REMOVE, "neuron": ALL}, "n_clicks"),
    Input(ids.PEQ, "value"), Input(ids.P0, "value"),
    Input({"type": ids.RATE, "neuron": ALL}, "value"),
    State(ids.FORM, "data"), State(ids.NP, "value"), State(ids.NE, "value"),
    State(ids.XBEGIN, "value"), State(ids.XEND, "value"), State(ids.BOUNDARY, "value"),
    State(ids.ABSORPTION, "value"),
    State(ids.D, "value"), State(PARAMS_ALL, "value"), State(PARAMS_ALL, "id"),
    State(ids.SAVED, "value"),
    prevent_initial_call=True,
)
def restructure(_presets, _load, _add, _remove, peq, p0, rates, structure, np_, ne, xb, xe,
                boundary, absorption, D, param_values, param_ids, saved):
    """Presets, loading, model choices and adding/removing neurons re-render the form."""
    event = _event(ctx.triggered_id, ctx.triggered[0]["value"], peq, p0, rates, saved)
    if event is None:
        return (no_update,) * 13
    state = state_from_fields(structure, (np_, ne, xb, xe), boundary, absorption, D,
                              param_values, param_ids)
    state = form.apply_event(state, *event)
    if event[0] in ("peq", "p0", "rate") and form.model_names(state) == form.model_names(structure):
        return (no_update,) * 13
    return (*form_outputs(state), state)


def _event(trigger, value, peq, p0, rates, saved):
    """The form event ``(name, arg)`` of a trigger, or None (nothing to do)."""
    kind = trigger.get("type") if isinstance(trigger, dict) else trigger
    if kind in (ids.PRESET, ids.REMOVE, ids.LOAD, ids.ADD_NEURON) and not value:
        return None  # inserted by the page, not clicked
    if kind == ids.LOAD:
        with open_store() as store:
            spec = store.get_model(saved)
        # a tabulated model (a selected model) has node values, not library fields
        return None if spec is None or "tabulated" in spec else ("load", spec)
    return {ids.PRESET: lambda: ("preset", trigger["key"]),
            ids.REMOVE: lambda: ("remove", trigger["neuron"]),
            ids.RATE: lambda: ("rate", (trigger["neuron"], rates[trigger["neuron"]])),
            ids.ADD_NEURON: lambda: ("add", None),
            ids.PEQ: lambda: ("peq", peq), ids.P0: lambda: ("p0", p0)}[kind]()


@callback(
    Output(ids.PREVIEW, "figure"),
    *[Output(i, "invalid") for _, i, _ in GRID_KEYS], Output(ids.D, "invalid"),
    *[Output(fb, "children") for _, _, fb in GRID_KEYS], Output(ids.FB_D, "children"),
    Output(PARAMS_ALL, "invalid"),
    Output({"type": ids.PARAM_FB, "target": ALL, "neuron": ALL, "name": ALL, "model": ALL},
           "children"),
    Output({"type": ids.MODEL_ERROR, "target": ALL, "neuron": ALL}, "children"),
    Output(ids.FB_ABSORPTION, "children"),
    Input(ids.FORM, "data"), Input(ids.NP, "value"), Input(ids.NE, "value"),
    Input(ids.XBEGIN, "value"), Input(ids.XEND, "value"), Input(ids.BOUNDARY, "value"),
    Input(ids.ABSORPTION, "value"),
    Input(ids.D, "value"), Input(PARAMS_ALL, "value"), State(PARAMS_ALL, "id"),
    State({"type": ids.MODEL_ERROR, "target": ALL, "neuron": ALL}, "id"),
)
def collect(structure, np_, ne, xb, xe, boundary, absorption, D, param_values, param_ids,
            error_ids):
    """Validate every field, mark errors inline and redraw the live preview."""
    state = state_from_fields(structure, (np_, ne, xb, xe), boundary, absorption, D,
                              param_values, param_ids)
    spec, errors, arrays = form.parse_form(state)
    if spec is None:
        fig = theme.message_figure("Fix the fields marked in red to see the preview.")
    else:
        fig = figures.model_preview(arrays["x"], arrays["peq"], arrays["p0"], arrays["fr"],
                                    equilibrium=spec["p0_model"] is None)
    grid_err = [errors.get(("grid", k)) for k, _, _ in GRID_KEYS]
    param_err = [errors.get((p["target"], p["neuron"], p["name"])) for p in param_ids or []]
    model_err = [errors.get((e["target"], e["neuron"], None)) for e in error_ids or []]
    return (fig, *[bool(e) for e in grid_err], ("D",) in errors,
            *[e or "" for e in grid_err], errors.get(("D",), ""),
            [bool(e) for e in param_err], [e or "" for e in param_err],
            [e or "" for e in model_err],
            errors.get(("absorption_step",)) or errors.get(("boundary_conditions",), ""))


@callback(
    Output(ids.SAVE_MSG, "children"), Output(ids.SAVED, "options"),
    Output(ids.NAME, "invalid"), Output(ids.FB_NAME, "children"),
    Input(ids.SAVE, "n_clicks"), State(ids.NAME, "value"), State(ids.FORM, "data"),
    State(ids.NP, "value"), State(ids.NE, "value"), State(ids.XBEGIN, "value"),
    State(ids.XEND, "value"), State(ids.BOUNDARY, "value"), State(ids.ABSORPTION, "value"),
    State(ids.D, "value"), State(PARAMS_ALL, "value"), State(PARAMS_ALL, "id"),
    prevent_initial_call=True,
)
def save_model(_n, name, structure, np_, ne, xb, xe, boundary, absorption, D, param_values,
               param_ids):
    """Save the model in the fields at click time (parsed here) under a new name."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    state = state_from_fields(structure, (np_, ne, xb, xe), boundary, absorption, D,
                              param_values, param_ids)
    spec = form.parse_form(state)[0]
    if spec is None:
        return alert("The model has errors; fix the fields marked in red.", "danger"), \
            no_update, False, ""
    try:
        with open_store() as store:
            name = store.save_model(name, spec)
            names = store.list_models()
    except ValueError as exc:
        if getattr(exc, "field", None) == "name":  # empty, too long, invisible or taken
            return "", no_update, True, str(exc)
        return alert(f"Not saved: {exc}", "danger"), no_update, False, ""
    return alert(f"Saved model “{name}”.", "success"), options(names), False, ""


@callback(Output(ids.SAVE_MSG, "children", allow_duplicate=True),
          Input(ids.LOAD, "n_clicks"), State(ids.SAVED, "value"), prevent_initial_call=True)
def load_note(_n, saved):
    """A tabulated model (saved from a model selection) is used as it is: say so."""
    if not _n or not saved:
        raise PreventUpdate
    with open_store() as store:
        spec = store.get_model(saved)
    if spec is None or "tabulated" not in spec:
        return ""
    src = spec.get("source") or {}
    where = f" (epoch {src['epoch']} of half {src.get('half')} of a model selection)" \
        if "epoch" in src else ""
    return alert(f"“{saved}” is a tabulated model{where}: its values on the grid cannot be "
                 "edited here; choose it on the Data, Fit and Model selection pages as it is.",
                 "info")


@callback(Output(ids.DELETE_CONFIRM, "displayed"), Output(ids.DELETE_CONFIRM, "message"),
          Input(ids.DELETE, "n_clicks"), State(ids.SAVED, "value"), prevent_initial_call=True)
def ask_delete(_n, name):
    """Deleting asks first."""
    if not _n or not name:  # pages insert components: never act without a real click
        raise PreventUpdate
    return True, f"Delete the saved model “{name}”? Runs keep the spec they used."


@callback(Output(ids.SAVE_MSG, "children", allow_duplicate=True),
          Output(ids.SAVED, "options", allow_duplicate=True),
          Output(ids.SAVED, "value"),
          Input(ids.DELETE_CONFIRM, "submit_n_clicks"), State(ids.SAVED, "value"),
          prevent_initial_call=True)
def delete_model(_n, name):
    """Delete the chosen saved model once confirmed (runs keep a copy of the spec they used)."""
    if not _n or not name:  # pages insert components: never act without a confirmation
        raise PreventUpdate
    with open_store() as store:
        store.delete_model(name)
        names = store.list_models()
    return alert(f"Deleted model “{name}”.", "success"), options(names), None


@callback(Output(ids.SAVED, "options", allow_duplicate=True),
          Input(app_ids.URL, "pathname"), prevent_initial_call="initial_duplicate")
def list_saved(_path):
    """Fill the list of saved models when the page opens."""
    with open_store() as store:
        return options(store.list_models())


@callback(
    Output(ids.NP, "value", allow_duplicate=True), Output(ids.NE, "value", allow_duplicate=True),
    Output(ids.XBEGIN, "value", allow_duplicate=True), Output(ids.XEND, "value", allow_duplicate=True),
    Output(ids.BOUNDARY, "value", allow_duplicate=True),
    Output(ids.ABSORPTION, "value", allow_duplicate=True), Output(ids.D, "value", allow_duplicate=True),
    Output(ids.PEQ, "value", allow_duplicate=True), Output(ids.P0, "value", allow_duplicate=True),
    Output(ids.PEQ_PARAMS, "children", allow_duplicate=True),
    Output(ids.P0_PARAMS, "children", allow_duplicate=True),
    Output(ids.NEURONS, "children", allow_duplicate=True), Output(ids.FORM, "data", allow_duplicate=True),
    Output(ids.REPLICATE_N, "invalid"), Output(ids.FB_REPLICATE, "children"),
    Input(ids.REPLICATE, "n_clicks"), State(ids.REPLICATE_N, "value"),
    State(ids.FORM, "data"), State(ids.NP, "value"), State(ids.NE, "value"),
    State(ids.XBEGIN, "value"), State(ids.XEND, "value"), State(ids.BOUNDARY, "value"),
    State(ids.ABSORPTION, "value"),
    State(ids.D, "value"), State(PARAMS_ALL, "value"), State(PARAMS_ALL, "id"),
    prevent_initial_call=True,
)
def same_model_for_all(_n, count, structure, np_, ne, xb, xe, boundary, absorption, D,
                       param_values, param_ids):
    """A population: n neurons with neuron 1's rate model and parameters (edit from there)."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    try:
        n = form.parse_neuron_count(count)
    except ValueError as exc:
        return (no_update,) * 13 + (True, str(exc))
    state = state_from_fields(structure, (np_, ne, xb, xe), boundary, absorption, D,
                              param_values, param_ids)
    state = form.apply_event(state, "replicate", n)
    return (*form_outputs(state), state, False, "")
