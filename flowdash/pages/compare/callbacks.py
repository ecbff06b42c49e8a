"""Compare page callbacks: start the four fits through the job layer, poll the run store."""
from __future__ import annotations

from dash import ALL, Input, Output, State, callback, ctx, html, no_update
from dash.exceptions import PreventUpdate

from flowdash import ids as app_ids
from flowdash import jobs
from flowdash.jobs.ablation import groups
from flowdash.pages import clientside, menus
from flowdash.pages.compare import figures, ids, view
from flowdash.pages.components import alert, status_badge
from flowdash.pages.services import open_store, options

FORM_IDS = (ids.DATASET, ids.INIT_MODEL, ids.PEQ, ids.NE, ids.EPOCHS, ids.LR, ids.SHOWN,
            ids.PACE, ids.NAME)
FB_ALL = Output({"type": ids.FB, "field": ALL}, "children")


def group_options(store):
    return [{"label": f"{g['name']} · {g['group'][:6]}", "value": g["group"]}
            for g in groups(store)]


@callback(Output(ids.DATASET, "options"), Output(ids.INIT_MODEL, "options"),
          Output(ids.FOLLOW, "options"), Output(ids.FOLLOW, "value"),
          Output(ids.DATASET, "value"),
          Input(app_ids.URL, "pathname"), State(ids.GROUP, "data"),
          State(app_ids.ACTIVE_DATASET, "data"))
def fill_lists(_path, group, active_dataset):
    """Datasets, models and comparisons when the page opens; show the comparison this
    browser followed last, else the newest (a projector's browser has followed none)."""
    with open_store() as store:
        datasets, found = store.list_datasets(), group_options(store)
        shown = menus.followed((group or {}).get("group"), found)
        return (options(datasets), options(store.list_models()), found, shown,
                active_dataset if active_dataset in datasets else no_update)


@callback(Output(ids.INIT_MODEL, "value"),
          Output({"type": ids.FB, "field": "dataset"}, "children", allow_duplicate=True),
          Output(ids.DATASET, "invalid"),
          Input(ids.DATASET, "value"), State(ids.INIT_MODEL, "value"), prevent_initial_call=True)
def dataset_chosen(name, init_model):
    """Start from the dataset's ground truth; say at once what makes it unfit."""
    with open_store() as store:
        truth, problem = view.truth_model(store, name), view.dataset_problem(store, name)
    return truth or init_model or no_update, problem, bool(problem)


@callback(Output(ids.GROUP, "data"), Output(ids.MESSAGE, "children"),
          Output(ids.FOLLOW, "options", allow_duplicate=True),
          Output(ids.FOLLOW, "value", allow_duplicate=True), FB_ALL,
          Input(ids.START, "n_clicks"), *[State(i, "value") for i in FORM_IDS],
          prevent_initial_call=True)
def start(_n, *values):
    """Check the four fits (the job layer's rules), then queue them as one group."""
    if not _n:  # pages insert components: never act without a real click
        raise PreventUpdate
    with open_store() as store:
        group, errors, problem = view.start(store, dict(zip(view.FIELDS, values)))
        opts = group_options(store) if group else no_update
    feedback = [errors.get(o["id"]["field"], "") for o in ctx.outputs_list[-1]]
    if group is None:
        return no_update, alert(problem, "danger"), no_update, no_update, feedback
    return (group, alert("The four fits are queued; they start as workers free up.", "success"),
            opts, group["group"], feedback)


@callback(Output({"type": ids.FB, "field": ALL}, "className"),
          Input({"type": ids.FB, "field": ALL}, "children"))
def show_feedback(messages):
    """A message under a field shows (a FormFeedback hides itself unless its input
    is marked invalid; here the message alone decides)."""
    return ["d-block" if m else "" for m in messages]


@callback(Output(ids.GROUP, "data", allow_duplicate=True), Input(ids.FOLLOW, "value"),
          State(ids.GROUP, "data"), prevent_initial_call=True)
def follow(group_id, group):
    """Show the chosen comparison (remembered across page changes and reloads)."""
    if not group_id or (group or {}).get("group") == group_id:
        raise PreventUpdate
    with open_store() as store:
        found = next((g for g in groups(store) if g["group"] == group_id), None)
    return found or no_update


@callback(Output(ids.MESSAGE, "children", allow_duplicate=True),
          Input(ids.CANCEL, "n_clicks"), State(ids.GROUP, "data"), prevent_initial_call=True)
def cancel(_n, group):
    """Ask the four fits to stop (queued ones never start); what they have is kept."""
    if not _n or not group:  # pages insert components: never act without a real click
        raise PreventUpdate
    with open_store() as store:
        records = [jobs.cancel(store, rid) for rid in group.get("runs", {}).values()]
    ended = sum(1 for r in records if r is not None and r["status"] not in ("queued", "running"))
    return alert(f"Cancel requested: {len(records) - ended} fit(s) stop after their current "
                 f"epoch; {ended} had ended or never started.", "warning")


def colour_key(shown, truth=True):
    """The four panels' colour key, once for the page (large on a projector)."""
    items = []
    for label, line in figures.key(shown, truth):
        dash = {"dot": "dotted", "dash": "dashed"}.get(line["dash"], "solid")
        items.append(html.Span([
            html.Span(style={"display": "inline-block", "width": "2.2em", "verticalAlign": "middle",
                             "borderTop": f"{max(3, line['width'])}px {dash} {line['color']}",
                             "marginRight": "0.4em"}), label], className="me-3 text-nowrap"))
    return items


@callback(Output({"type": ids.GRAPH, "key": ALL}, "figure"),
          Output({"type": ids.PANEL_HEAD, "key": ALL}, "children"),
          Output(ids.NOTE, "children"), Output(ids.KEY, "children"), Output(ids.CURSOR, "data"),
          Output(ids.INTERVAL, "disabled"), Output(ids.POLL_DONE, "data"),
          Input(ids.POLL_TICK, "data"), Input(ids.GROUP, "data"), Input(ids.SCALE, "value"),
          State(ids.CURSOR, "data"))
def poll(tick, group, scale, cursor):
    """Read what is new for each of the four fits; extend the panels with Patches.

    ``tick`` passes the page's gate (assets/flowdash.js, as on the Fit page): the
    next tick reaches the poll only when this one has answered (``POLL_DONE``).
    """
    done = tick.get("n") if isinstance(tick, dict) else tick
    fresh = ctx.triggered_id in (ids.GROUP, ids.SCALE) or not ctx.triggered_id
    with open_store() as store:
        out = view.poll(store, group, None if fresh else cursor, scale or view.SHIFTED)
    n = len(ctx.outputs_list[0]) if ctx.outputs_list else 4
    if out is None:
        return ([no_update] * n, [""] * n,
                "Start the four fits, or choose a comparison in the settings.", "", None, True,
                done)
    figs = [no_update if f is None else f for f in out["figures"]]
    heads = [[status_badge(s), html.Span(" " + text, className="ms-1")]
             for s, text in out["status"]]
    fresh = out["note"] is not None   # a panel was drawn anew: the note and key may change
    return (figs, heads, out["note"] if fresh else no_update,
            colour_key(out["shown"], not out["note"]) if fresh else no_update, out["cursor"], out["final"], done)


clientside.register(ids, presentation=True, settings_toggle=True)
