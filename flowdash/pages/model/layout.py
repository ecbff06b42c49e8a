"""Model page layout: the form, the live preview, save and load."""
from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from flowdash.core import library
from flowdash.settings import GRID_LIMITS, format_number
from flowdash.pages import multiples, theme
from flowdash.pages.components import card, field
from flowdash.pages.menus import menu
from flowdash.pages.model import form
from flowdash.pages.model import ids


def _range(limit) -> str:
    """``3 … 20``: a limit as a field's help text."""
    return f"{format_number(limit.lo)} … {format_number(limit.hi)}"


def param_fields(target: str, neuron: int, entry: dict | None):
    """The parameter fields of one library model (with inline errors)."""
    if entry is None:
        return html.Div(dbc.FormText("p0 = peq (equilibrium model)."))
    registry = library.RATE_MODELS if target == "fr" else library.PEQ_MODELS
    desc = registry[entry["model"]].description
    cols = []
    for name, text in entry["params"].items():
        key = {"target": target, "neuron": neuron, "name": name, "model": entry["model"]}
        cols.append(field(form.param_label(entry["model"], name),
                          dbc.Input(id={"type": ids.PARAM, **key}, value=text,
                                                    type="text", size="sm", autoComplete="off"),
                          feedback_id={"type": ids.PARAM_FB, **key},
                          width=6 if len(entry["params"]) > 1 else 12))
    return html.Div([
        dbc.FormText(desc, className="d-block mb-1 formula"),
        dbc.Row(cols, className="g-2") if cols else dbc.FormText("no parameters"),
        html.Div(id={"type": ids.MODEL_ERROR, "target": target, "neuron": neuron},
                 className="text-danger small"),
    ])


def _params_text(entry: dict) -> str:
    """``slope 10, bias 30``: a neuron's parameters on its collapsed row."""
    text = ", ".join(f"{k} {v}" for k, v in entry["params"].items())
    return text if len(text) <= 60 else text[:57] + "…"


def neuron_cards(neurons: list[dict]):
    """One card per neuron; a population's parameters fold away (one line each)."""
    rate_options = [{"label": n, "value": n} for n in form.rate_model_names()]
    fold = multiples.small_multiples(len(neurons))
    cards = []
    for i, entry in enumerate(neurons):
        params = param_fields("fr", i, entry)
        if fold:  # the fields stay in the page (the form reads them), folded
            params = html.Details([html.Summary(_params_text(entry), className="small text-muted"),
                                   params], className="neuron-params")
        cards.append(dbc.Card(dbc.CardBody([
            dbc.Row([
                dbc.Col(html.Strong(f"Neuron {i + 1}",
                                    style={"color": theme.color(i)}), width="auto"),
                dbc.Col(dbc.Select(id={"type": ids.RATE, "neuron": i}, options=rate_options,
                                   value=entry["model"], size="sm"), ),
                dbc.Col(dbc.Button("Remove", id={"type": ids.REMOVE, "neuron": i},
                                   color="link", size="sm", disabled=len(neurons) == 1),
                        width="auto"),
            ], align="center", className="g-2 mb-1" if fold else "g-2 mb-2"),
            params,
        ], className="py-1" if fold else None), className="mb-2 neuron-card"))
    if len(neurons) >= form.MAX_NEURONS:
        cards.append(dbc.FormText(f"At most {form.MAX_NEURONS} neurons per model."))
    return cards


def form_outputs(state: dict):
    """Values for the static fields and the dynamic containers of a form state."""
    g = state["grid"]
    return (g["Np"], g["Ne"], g["xbegin"], g["xend"], state["boundary_conditions"],
            state["absorption_step"], state["D"],
            state["peq"]["model"],
            form.EQUILIBRIUM if state["p0"] is None else state["p0"]["model"],
            param_fields("peq", 0, state["peq"]), param_fields("p0", 0, state["p0"]),
            neuron_cards(state["neurons"]))


def layout(**_query):
    state = form.preset_state("fig3")
    (np_, ne, xb, xe, bc, absorption, d, peq, p0, peq_params, p0_params,
     neurons) = form_outputs(state)
    peq_options = [{"label": n, "value": n} for n in form.peq_model_names()]
    presets = dbc.ButtonGroup([
        dbc.Button(label, id={"type": ids.PRESET, "key": key}, color="primary",
                   outline=True, size="sm") for key, (label, _) in form.PRESETS.items()
    ], className="flex-wrap")
    grid_card = card(
        "Grid and dynamics",
        dbc.Row([
            field("Np (nodes per element)", dbc.Input(id=ids.NP, value=np_, type="text"),
                  ids.FB_NP, width=3, help_text=_range(GRID_LIMITS["Np"])),
            field("Ne (elements)", dbc.Input(id=ids.NE, value=ne, type="text"), ids.FB_NE,
                  width=3, help_text=_range(GRID_LIMITS["Ne"])),
            field("x begin", dbc.Input(id=ids.XBEGIN, value=xb, type="text"), ids.FB_XBEGIN,
                  width=3),
            field("x end", dbc.Input(id=ids.XEND, value=xe, type="text"), ids.FB_XEND, width=3),
        ], className="g-2"),
        dbc.Row([
            field("Boundary conditions", dbc.RadioItems(
                id=ids.BOUNDARY, value=bc, inline=True,
                options=[{"label": "Dirichlet (absorbing walls)", "value": "dirichlet"},
                         {"label": "Neumann (reflecting walls)", "value": "neumann"}]),
                  width=12),
            dbc.Col([
                dbc.Switch(id=ids.ABSORPTION, value=absorption,
                           label="absorption step at the trial end (the trial ends at a wall)"),
                html.Div(id=ids.FB_ABSORPTION, className="text-danger small"),
            ], width=12, className="mb-2"),
            field("D (a.u.²/s)", dbc.Input(id=ids.D, value=d, type="text"), ids.FB_D, width=5),
        ], className="g-2"),
    )
    peq_card = card("Equilibrium density peq",
                    dbc.Select(id=ids.PEQ, options=peq_options, value=peq, className="mb-2"),
                    html.Div(peq_params, id=ids.PEQ_PARAMS))
    p0_card = card("Initial density p0",
                   dbc.Select(id=ids.P0, value=p0, className="mb-2",
                              options=[{"label": "equilibrium (p0 = peq)",
                                        "value": form.EQUILIBRIUM}] + peq_options),
                   html.Div(p0_params, id=ids.P0_PARAMS))
    neurons_card = card("Neurons",
                        html.Div(neurons, id=ids.NEURONS),
                        dbc.Button("+ Add neuron", id=ids.ADD_NEURON, color="primary",
                                   outline=True, size="sm"),
                        dbc.InputGroup([
                            dbc.InputGroupText("Same model as neuron 1 for"),
                            dbc.Input(id=ids.REPLICATE_N, value="14", type="text",
                                      style={"maxWidth": "5rem"}, autoComplete="off"),
                            dbc.InputGroupText("neurons"),
                            dbc.Button("Apply", id=ids.REPLICATE, color="primary", outline=True),
                            dbc.FormFeedback(id=ids.FB_REPLICATE, type="invalid"),
                        ], size="sm", className="mt-2 has-validation"),
                        dbc.FormText(f"Every library rate is at least {library.RATE_FLOOR:g} Hz.",
                                     className="d-block mt-1"))
    save_card = card(
        "Save and reuse",
        dbc.Row([
            dbc.Col([dbc.Input(id=ids.NAME, placeholder="model name, e.g. fig3-truth",
                               type="text"),
                     dbc.FormFeedback(id=ids.FB_NAME, type="invalid")], md=7),
            dbc.Col(dbc.Button("Save model", id=ids.SAVE, color="primary"), md="auto"),
        ], className="g-2 mb-2"),
        html.Div(id=ids.SAVE_MSG, className="mb-2"),
        dbc.Row([
            dbc.Col(menu(ids.SAVED, "saved models (type to search)"), md=7),
            dbc.Col([dbc.Button("Load into form", id=ids.LOAD, color="primary",
                                outline=True, className="me-2"),
                     dbc.Button("Delete", id=ids.DELETE, color="danger", outline=True),
                     dcc.ConfirmDialog(id=ids.DELETE_CONFIRM)],
                    md="auto"),
        ], className="g-2"),
        dbc.FormText("A saved model can be the ground truth on the Data page or the "
                     "starting point on the Fit page."),
    )
    return dbc.Container([
        html.Div([html.H2("Model", className="me-3 mb-0"), presets],
                 className="d-flex align-items-center flex-wrap gap-2 mb-3"),
        dcc.Store(id=ids.FORM, data=state),
        dbc.Row([
            dbc.Col([grid_card, peq_card, p0_card, neurons_card], lg=5),
            dbc.Col([card("Live preview",
                          dcc.Graph(id=ids.PREVIEW, config=theme.graph_config("png", "model"),
                                    figure=theme.message_figure("…"))),
                     save_card], lg=7),
        ]),
    ], fluid=True)
