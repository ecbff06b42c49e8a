"""Small layout helpers shared by the pages."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html


def field(label: str, input_component, feedback_id=None, help_text: str | None = None,
          width: int = 6):
    """A labelled form field with its inline error (dbc.FormFeedback)."""
    children = [dbc.Label(label, html_for=getattr(input_component, "id", None)
                          if isinstance(getattr(input_component, "id", None), str) else None,
                          className="mb-1"),
                input_component]
    if feedback_id is not None:
        children.append(dbc.FormFeedback(id=feedback_id, type="invalid"))
    if help_text:
        children.append(dbc.FormText(help_text))
    return dbc.Col(html.Div(children, className="mb-2"), md=width)


def card(title: str, *children, className: str = "mb-3", **kwargs):
    return dbc.Card([dbc.CardHeader(html.H5(title, className="mb-0")),
                     dbc.CardBody(list(children))], className=className, **kwargs)


def status_badge(status: str):
    colours = {"queued": "secondary", "running": "primary", "done": "success",
               "cancelled": "warning", "failed": "danger", "interrupted": "dark"}
    return dbc.Badge(status, color=colours.get(status, "secondary"), className="status-badge")


def alert(text, color: str):
    """A compact message under a form (success, info, warning, danger)."""
    return dbc.Alert(text, color=color, className="py-1 mb-0")


def live_page(page_ids, title: str, settings, live, class_name: str, intro=None):
    """The frame of a page that starts runs and follows them (Fit, Model selection, Compare):
    a title with the *Hide settings* button, the settings column and the live column.

    ``page_ids`` is the page's ids module (``PAGE``, ``SETTINGS_TOGGLE``, ``SETTINGS_COL``,
    ``LIVE_COL``); "settings-collapsed" on the settings column hides it and the live view
    takes the whole width (assets/style.css, the clientside settings toggle)."""
    heading = html.Div([
        html.H2(title, className="mb-0 me-3"),
        dbc.Button("Hide settings", id=page_ids.SETTINGS_TOGGLE, color="primary", outline=True,
                   size="sm"),
    ], className="d-flex align-items-center flex-wrap gap-1 mb-2 page-title")
    return html.Div(dbc.Container([
        heading,
        *([html.P(intro, className="text-muted mb-2 page-title compare-intro")] if intro else []),
        html.Div([html.Div(settings, id=page_ids.SETTINGS_COL, className="col-12 col-xl-3"),
               html.Div(live, id=page_ids.LIVE_COL, className="col-12 col-xl-9 live-col")],
              className="row"),
    ], fluid=True), id=page_ids.PAGE, className=class_name)
