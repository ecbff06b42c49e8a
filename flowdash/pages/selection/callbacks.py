"""Model selection page callbacks: start, cancel and continue both fits through the job
layer; poll and analyse the followed selection (in this process, on its recorded models)."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from flowdash import analysis
from flowdash import ids as app_ids
from flowdash.core.selection import FCASettings
from flowdash.pages import clientside, linesearch, menus
from flowdash.pages.components import alert, status_badge
from flowdash.pages.fit import view as fit_view
from flowdash.pages.selection import ids, view
from flowdash.pages.services import open_store, options

INPUT_OF = {"dataset": ids.DATASET, "init_model": ids.INIT_MODEL, "alpha": ids.ALPHA,
            "epochs": ids.EPOCHS, "batches": ids.BATCHES, "nv": ids.NV, "seed": ids.SEED,
            "name": ids.NAME}
FCA_ALL = {"type": ids.FCA, "name": ALL}


@callback(Output(ids.DATASET, "options"), Output(ids.DATASET2, "options"),
          Output(ids.INIT_MODEL, "options"), Output(ids.SELECT, "options"),
          Output(ids.PAIR_RUN1, "options"), Output(ids.PAIR_RUN2, "options"),
          Output(ids.DATASET, "value"), Output(ids.SELECT, "value", allow_duplicate=True),
          Input(app_ids.URL, "pathname"), State(app_ids.ACTIVE_DATASET, "data"),
          State(ids.SELECT, "value"), prevent_initial_call="initial_duplicate")
def fill_lists(_path, active_dataset, chosen=None):
    """Datasets, models, selections and fit runs when the page opens; follow the
    chosen selection, else the newest."""
    with open_store() as store:
        datasets = store.list_datasets()
        runs = view.fit_run_options(store)
        selections = view.selection_options(store)
        return (options(datasets), options(datasets), options(store.list_models()),
                selections, runs, runs,
                active_dataset if active_dataset in datasets else no_update,
                menus.followed(chosen, selections))


@callback(Output(ids.SEED_BOX, "style"), Output(ids.DATASET2_BOX, "style"),
          Output(ids.VALIDATION_NOTE, "children"), Input(ids.HALVES, "value"))
def halves_fields(halves):
    """The seed for random halves, the second dataset for two; what each half validates on."""
    hide = {"display": "none"}
    return (None if halves == "random" else hide, None if halves == "two_datasets" else hide,
            f"Validation: {view.validation_note(halves)}.")


@callback(Output(ids.GD_BOX, "style"), Output(ids.ADAM_BOX, "style"),
          Input(ids.OPTIMIZER, "value"))
def optimizer_fields(optimizer):
    hide = {"display": "none"}
    return (hide, None) if optimizer == "ADAM" else (None, hide)


@callback(Output(ids.SELECT, "value"), Output(ids.SELECT, "options", allow_duplicate=True),
          Output(ids.MESSAGE, "children"), Output({"type": ids.FB, "field": ALL}, "children"),
          Output(ids.INTERVAL, "disabled", allow_duplicate=True),
          Input(ids.START, "n_clicks"),
          State(ids.DATASET, "value"), State(ids.HALVES, "value"), State(ids.HALVES_SEED, "value"),
          State(ids.DATASET2, "value"), State(ids.INIT_MODEL, "value"),
          State(ids.PEQ_OVERRIDE, "value"), State(ids.OPTIMIZER, "value"),
          State({"type": ids.LR, "param": ALL}, "value"), State(ids.ALPHA, "value"),
          State(ids.PARAMS, "value"), State(ids.EPOCHS, "value"), State(ids.BATCHES, "value"),
          State(ids.NV, "value"), State(ids.SEED, "value"), State(ids.NAME, "value"),
          State({"type": ids.LS, "param": ALL, "part": ALL}, "value"),
          State({"type": ids.LS, "param": ALL, "part": ALL}, "id"),
          prevent_initial_call=True)
def start(_n, dataset, halves, seed, dataset2, init_model, peq, optimizer, lrs, alpha, params,
          epochs, batches, nv, fit_seed, name, ls_values, ls_ids):
    """Validate, then queue both fits (they run side by side on two workers) and follow them."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    f = dict(dataset=dataset, halves=halves, halves_seed=seed, dataset2=dataset2,
             init_model=init_model, peq_override=peq, optimizer=optimizer,
             lr=dict(zip(fit_view.PARAMS, lrs or [])), alpha=alpha, params=params, epochs=epochs,
             batches=batches, nv=nv, seed=fit_seed, name=name,
             line_search=linesearch.values(ls_values, ls_ids))
    with open_store() as store:
        sel_id, errors, problem = view.start(store, f)
        opts = view.selection_options(store)
    feedback = [errors.get(o["id"]["field"], "") for o in ctx.outputs_list[3]]
    if sel_id is None:
        return no_update, no_update, alert(problem, "danger"), feedback, no_update
    return sel_id, opts, alert("Both fits queued.", "success"), feedback, False


@callback(*[Output(i, "invalid") for i in INPUT_OF.values()],
          Output({"type": ids.LR, "param": ALL}, "invalid"), Output(ids.PARAMS, "className"),
          Output(ids.HALVES, "className"), Output(ids.DATASET2, "invalid"),
          Output({"type": ids.LS, "param": ALL, "part": ALL}, "invalid"),
          Input({"type": ids.FB, "field": ALL}, "children"), prevent_initial_call=True)
def mark_invalid(messages):
    """Fields with a message are marked invalid (the message shows beneath)."""
    by_field = {o["id"]["field"]: m for o, m in zip(ctx.inputs_list[0], messages)}
    return (*[bool(by_field.get(f)) for f in INPUT_OF],
            [bool(by_field.get(f"lr-{p}")) for p in fit_view.PARAMS],
            "is-invalid" if by_field.get("params") else "",
            "is-invalid" if by_field.get("halves") else "", bool(by_field.get("dataset2")),
            linesearch.invalid(by_field, [o["id"] for o in (ctx.outputs_list or [[]])[-1]]))


@callback(Output(ids.SELECT, "value", allow_duplicate=True),
          Output(ids.SELECT, "options", allow_duplicate=True),
          Output(ids.MESSAGE, "children", allow_duplicate=True),
          Input(ids.PAIR, "n_clicks"), State(ids.PAIR_RUN1, "value"),
          State(ids.PAIR_RUN2, "value"), prevent_initial_call=True)
def pair(_n, run1, run2):
    """A selection of two fits that ran already (the analysis says if they compare)."""
    if not _n:
        raise PreventUpdate
    with open_store() as store:
        sel_id, problem = view.pair(store, run1, run2)
        opts = view.selection_options(store)
    if sel_id is None:
        return no_update, no_update, alert(problem, "danger")
    return sel_id, opts, alert("Paired.", "success")


@callback(Output(ids.ACTION_MSG, "children"),
          Output(ids.INTERVAL, "disabled", allow_duplicate=True),
          Input(ids.CANCEL, "n_clicks"), Input(ids.CONTINUE, "n_clicks"),
          State(ids.SELECT, "value"), State(ids.MORE, "value"), prevent_initial_call=True)
def act(_cancel, _continue, sel_id, more):
    """Cancel both fits, or continue both for more epochs (each from its saved state)."""
    if not ctx.triggered[0]["value"]:  # inserted by the page, not clicked
        raise PreventUpdate
    what = "cancel" if ctx.triggered_id == ids.CANCEL else "continue"
    with open_store() as store:
        text, colour = view.act(store, sel_id, what, more)
    return alert(text, colour), False


@callback([Output(FCA_ALL, "value")], Input({"type": ids.FCA_PRESET, "paper": ALL}, "n_clicks"),
          State(FCA_ALL, "id"), prevent_initial_call=True)
def fca_defaults(_clicks, fca_ids):
    """The analysis settings of the 2020 or the 2024 paper."""
    if not ctx.triggered_id or not ctx.triggered[0]["value"]:
        raise PreventUpdate
    s = FCASettings.paper_2024() if ctx.triggered_id["paper"] == "2024" else \
        FCASettings.paper_2020()
    return [[str(getattr(s, i["name"])) for i in fca_ids]]


def _half_status(rows):
    return [dbc.Row([
        dbc.Col(html.Div([status_badge(r["status"]), html.Span(f" {r['text']}",
                                                               className="small")]), md=7),
        dbc.Col(dbc.Progress(value=r["progress"], label=f"{r['progress']:.0f} %"), md=5),
    ], className="g-2 mb-1 align-items-center") for r in rows]


@callback(Output(ids.FC_GRAPH, "figure"), Output(ids.NLL_GRAPH, "figure"),
          Output(ids.JS_GRAPH, "figure"), Output(ids.POT_GRAPH, "figure"),
          Output(ids.COND_GRAPH, "figure"), Output(ids.COND_BOX, "style"),
          Output(ids.HALF_STATUS, "children"), Output(ids.NOTE, "children"),
          Output(ids.NOTE, "color"), Output({"type": ids.FCA_FB, "name": ALL}, "children"),
          Output(FCA_ALL, "invalid"), Output(ids.CURSOR, "data"),
          Output(ids.INTERVAL, "disabled"), Output(ids.POLL_DONE, "data"),
          Input(ids.POLL_TICK, "data"), Input(ids.SELECT, "value"), Input(FCA_ALL, "value"),
          State(FCA_ALL, "id"), State(ids.CURSOR, "data"))
def poll(tick, sel_id, fca_values, fca_ids, cursor):
    """Analyse the followed selection on the epochs its fits recorded so far; redraw
    only when something changed (a new record, other settings, a status)."""
    done = tick.get("n") if isinstance(tick, dict) else tick
    values = {i["name"]: v for i, v in zip(fca_ids, fca_values or [])}
    with open_store() as store:
        out = view.poll(store, sel_id, values, cursor)
    names = [i["name"] for i in fca_ids]
    if out is None:
        blank = view.figures_of(analysis.Analysis({}, [], None, error="Start a selection or "
                                                                       "follow one."))
        return (blank["fc"], blank["nll"], blank["js"], blank["pot"], no_update,
                {"display": "none"}, "", "", "light", [""] * len(names),
                [False] * len(names), None, True, done)
    figs = out["figures"]
    text, colour = out["note"]
    errors = out["errors"]
    cond = no_update if figs is None else (figs["cond"] or no_update)
    cond_style = no_update if figs is None else (None if figs["cond"] else {"display": "none"})
    drawn = [no_update] * 4 if figs is None else [figs[k] for k in ("fc", "nll", "js", "pot")]
    return (*drawn, cond, cond_style, _half_status(out["rows"]), text, colour,
            [errors.get(n, "") for n in names], [bool(errors.get(n)) for n in names],
            out["cursor"], out["final"], done)


def _analysis(store, sel_id, fca_ids, fca_values):
    values = {i["name"]: v for i, v in zip(fca_ids, fca_values or [])}
    return view.ANALYST.analyse(store, sel_id, values)


@callback(Output(ids.SAVE_MSG, "children"), Output(ids.SAVE_NAME, "invalid"),
          Output(ids.SAVE_FB, "children"),
          Input(ids.SAVE, "n_clicks"), State(ids.SELECT, "value"), State(ids.SAVE_HALF, "value"),
          State(ids.SAVE_NAME, "value"), State(FCA_ALL, "id"), State(FCA_ALL, "value"),
          prevent_initial_call=True)
def save(_n, sel_id, half, name, fca_ids, fca_values):
    """Save the selected model of a half as a named (tabulated) model: a fit start or a
    ground truth on the other pages."""
    if not _n:
        raise PreventUpdate
    if not sel_id:
        return alert("Follow a selection first.", "light"), False, ""
    with open_store() as store:
        a = _analysis(store, sel_id, fca_ids, fca_values)
        try:
            saved = analysis.save_selected(store, a, int(half or 0), name or "")
        except ValueError as exc:
            if getattr(exc, "field", None) == "name":   # empty, invisible or taken
                return "", True, str(exc)
            errors = getattr(exc, "errors", None)
            return alert(f"Not saved: {'; '.join(errors.values()) if errors else exc}",
                         "danger"), False, ""
    e = a.selected_models[int(half or 0)]["epoch"]
    return alert(f"Saved model “{saved}” (half {int(half or 0) + 1}, epoch {e}).", "success"), \
        False, ""


@callback(Output(ids.DOWNLOAD_NPZ, "data"), Input(ids.EXPORT_NPZ, "n_clicks"),
          State(ids.SELECT, "value"), State(FCA_ALL, "id"), State(FCA_ALL, "value"),
          prevent_initial_call=True)
def export_npz(_n, sel_id, fca_ids, fca_values):
    """The analysis's arrays (FC, JS, epochs, selected models, ground truth) as .npz."""
    if not _n or not sel_id:
        raise PreventUpdate
    with open_store() as store:
        a = _analysis(store, sel_id, fca_ids, fca_values)
    return dcc.send_bytes(analysis.export_npz(a), f"flowdash-selection-{sel_id}.npz")


@callback(Output(ids.DOWNLOAD_JSON, "data"), Input(ids.EXPORT_JSON, "n_clicks"),
          State(ids.SELECT, "value"), State(FCA_ALL, "id"), State(FCA_ALL, "value"),
          prevent_initial_call=True)
def export_json(_n, sel_id, fca_ids, fca_values):
    """The analysis (settings, selected epochs and positions, FC and JS curves) as JSON."""
    if not _n or not sel_id:
        raise PreventUpdate
    with open_store() as store:
        a = _analysis(store, sel_id, fca_ids, fca_values)
    return dict(content=analysis.export_json(a), filename=f"flowdash-selection-{sel_id}.json")


clientside.register(ids, settings_toggle=True)
