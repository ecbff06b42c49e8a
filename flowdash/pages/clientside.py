"""The clientside callbacks a live page shares (functions of assets/flowdash.js).

Each live page names its components alike in its ``ids`` module (``INTERVAL``,
``POLL_TICK``, ``POLL_DONE``; ``PAGE``, ``PRESENT``; ``SETTINGS_COL``,
``SETTINGS_TOGGLE``), so one call registers what it uses.
"""
from __future__ import annotations

from dash import ClientsideFunction, Input, Output, State, clientside_callback


def register(ids, poll_gate: bool = True, presentation: bool = False,
             settings_toggle: bool = False) -> None:
    """Register the page's clientside callbacks.

    ``poll_gate``: one poll at a time (Dash drops the answer of a callback asked
    again while it runs); ``presentation``: the Presentation button (class
    "presenting" on the page); ``settings_toggle``: hide/show the settings
    column (hidden at first below 1200 px).
    """
    if poll_gate:
        clientside_callback(
            ClientsideFunction("flowdash", "pollGate"),
            Output(ids.POLL_TICK, "data"), Input(ids.INTERVAL, "n_intervals"),
            State(ids.POLL_TICK, "data"), State(ids.POLL_DONE, "data"),
            prevent_initial_call=True)
    if presentation:
        clientside_callback(
            ClientsideFunction("flowdash", "togglePresentation"),
            Output(ids.PAGE, "className"), Output(ids.PRESENT, "children"),
            Input(ids.PRESENT, "n_clicks"), State(ids.PAGE, "className"),
            prevent_initial_call=True)
    if settings_toggle:
        clientside_callback(
            ClientsideFunction("flowdash", "toggleSettings"),
            Output(ids.SETTINGS_COL, "className"), Output(ids.SETTINGS_TOGGLE, "children"),
            Input(ids.SETTINGS_TOGGLE, "n_clicks"), State(ids.SETTINGS_COL, "className"))
