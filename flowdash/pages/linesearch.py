"""The line-search fields (C and D) that the Fit and Model selection pages share.

Each page gives its own pattern-id types; the values go to
``settings.parse_line_search`` (through the job layer), whose limits are the
core's, and its messages come back keyed ``line_search:<C|D>:<part>``.
"""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from flowdash import settings

PARAMS = ("C", "D")
#: The parts of one parameter's line search, as the form has them.
PARTS = ("when", "value", "searches_per_epoch", "max_fun_eval")
WHEN_LABELS = {"off": "off", "log": "n log-spaced epochs", "every": "every k epochs",
               "list": "listed epochs"}
LABELS = {"C": "C (rate scale, searched in [1, 150] Hz)", "D": "D (searched in [0.02, 10])"}


def field_of(error_key: str) -> str | None:
    """The form field of a settings error key (``line_search:C:epochs`` -> ``ls-C-value``)."""
    parts = error_key.split(":")
    if len(parts) != 3 or parts[0] != "line_search" or parts[1] not in PARAMS:
        return None
    return f"ls-{parts[1]}-{'value' if parts[2] == 'epochs' else parts[2]}"


def block(input_type: str, fb):
    """The fields of both line searches, folded (``html.Details``) below the fit's settings.

    ``input_type``: the pattern-id type of the inputs (``{"type", "param", "part"}``);
    ``fb(field)``: the page's feedback id of a field.
    """
    limits = settings.core_limits()["LINE_SEARCH_LIMITS"]

    def one(p):
        def inp(part, value, placeholder=""):
            return dbc.Input(id={"type": input_type, "param": p, "part": part}, value=value,
                             type="text", autoComplete="off", size="sm", placeholder=placeholder)
        return dbc.Row([
            dbc.Col(dbc.Label(LABELS[p], className="mb-1 small fw-semibold"), md=12),
            dbc.Col([dbc.Select(id={"type": input_type, "param": p, "part": "when"}, value="off",
                                size="sm", options=[{"label": v, "value": k}
                                                    for k, v in WHEN_LABELS.items()])], md=6),
            dbc.Col([inp("value", "", "n, k or epochs"),
                     dbc.FormFeedback(id=fb(f"ls-{p}-value"), type="invalid")], md=6),
            dbc.Col([dbc.Label("searches per epoch", className="mb-0 small"),
                     inp("searches_per_epoch", "1"),
                     dbc.FormFeedback(id=fb(f"ls-{p}-searches_per_epoch"), type="invalid")], md=6),
            dbc.Col([dbc.Label("NLL evaluations per search", className="mb-0 small"),
                     inp("max_fun_eval", "5"),
                     dbc.FormFeedback(id=fb(f"ls-{p}-max_fun_eval"), type="invalid")], md=6),
        ], className="g-1 mb-2")

    return html.Details([
        html.Summary("Line searches on C and D", className="mb-1"),
        one("C"), one("D"),
        dbc.FormText(f"Searches are L-BFGS-B on the batch's NLL after an epoch's first batches; "
                     f"at most {settings.format_number(limits['max_fun_eval'].hi)} evaluations "
                     "per search; searches per epoch at most the mini-batches."),
    ], className="mb-2")


def values(vals, id_list) -> dict:
    """``{"C": {when, value, searches_per_epoch, max_fun_eval}, "D": {...}}`` from
    the pattern inputs' values and ids (``State({...ALL}, "value")`` and ``"id"``)."""
    out = {p: {} for p in PARAMS}
    for v, i in zip(vals or [], id_list or []):
        if i.get("param") in out and i.get("part") in PARTS:
            out[i["param"]][i["part"]] = v
    return out


def invalid(messages_by_field: dict, id_list) -> list[bool]:
    """Which line-search inputs are invalid (a message under them), in ``id_list``'s order."""
    return [bool(messages_by_field.get(f"ls-{i['param']}-{i['part']}")) for i in id_list or []]
