"""The 2021 paper's ablation: one dataset fitted four ways, as one group of fit runs.

Genkin, Hughes & Engel (Nat Commun 2021), Fig. 3, fit the same absorbing
data (with recorded trial ends) with the full non-stationary model and
without each of its non-stationary parts, to show what each contributes:

1. the full model: Dirichlet conditions and the absorption step at the
   trial end;
2. without the absorption operator: Dirichlet conditions, no absorption step;
3. reflecting (Neumann) conditions;
4. reflecting conditions and an equilibrium p0 (p0 = peq, moving with it).

Each variant is a fit run of the ordinary kind ``fit`` whose settings
override the initial model's likelihood setting (``boundary_conditions``,
``absorption_step``) and p0 (``p0_override``) (:func:`flowdash.settings.initial_spec`);
the four share a group id (``settings["group"] = {"id", "member"}``) and
run as the queue allows. Importable without dash.
"""
from __future__ import annotations

import dataclasses
import secrets

from .. import names
from ..settings import SettingsError, check_fit
from . import lifecycle


@dataclasses.dataclass(frozen=True)
class Ablation:
    """One way of fitting the data: the likelihood setting and p0 of the fit."""

    key: str
    label: str
    boundary_conditions: str
    absorption_step: bool
    equilibrium_p0: bool = False

    def settings(self) -> dict:
        """The fit settings that make a fit this variant (see ``settings.check_fit``)."""
        return {"boundary_conditions": self.boundary_conditions,
                "absorption_step": self.absorption_step,
                "p0_override": "equilibrium" if self.equilibrium_p0 else None}

    def apply(self, model):
        """A core ``Model`` as this variant fits it (for scripts that call the core)."""
        return model.replace(boundary_conditions=self.boundary_conditions,
                             absorption_step=self.absorption_step,
                             p0=None if self.equilibrium_p0 else model.p0)


#: The four fits of the 2021 Fig. 3, in the paper's order.
ABLATIONS = (
    Ablation("full", "full model", "dirichlet", True),
    Ablation("no_absorption", "no absorption step", "dirichlet", False),
    Ablation("reflecting", "reflecting", "neumann", False),
    Ablation("reflecting_eq", "reflecting, equilibrium p0", "neumann", False, True),
)
BY_KEY = {a.key: a for a in ABLATIONS}


def submit_group(store, values: dict, name: str | None = None) -> dict:
    """Check the four fits, then queue them as one group.

    Parameters
    ----------
    values : dict
        Fit values shared by the four (``settings.check_fit`` keys: dataset,
        init_model, peq_override, Ne_override, optimizer, learning_rate, ...);
        each variant adds its likelihood setting and p0.
    name : str, optional
        Base of the run names (default ``compare <dataset>``); each run is
        named ``<base> · <variant>``.

    Returns
    -------
    dict
        ``{"group": id, "runs": {variant key: run id}}``.

    Raises
    ------
    SettingsError
        Before anything is queued, with the messages of the variants that
        cannot run, by setting (the full model's first: e.g. its absorption
        step needs data with a recorded trial end).
    """
    group = secrets.token_hex(6)
    errors = {}
    for ablation in ABLATIONS:
        _, found = check_fit(_values(values, ablation, group), store)
        for key, message in found.items():
            errors.setdefault(key, message)
    base = name.strip() if isinstance(name, str) and name.strip() else None
    if base:
        try:
            base = names.validate_name(base, "comparison", names.MAX_RUN_NAME_LENGTH - 30)
        except ValueError as exc:
            errors["name"] = str(exc)
    if errors:
        raise SettingsError(errors)
    base = base or f"compare {values.get('dataset')}"[:names.MAX_RUN_NAME_LENGTH - 30]
    runs = {}
    try:
        for ablation in ABLATIONS:
            runs[ablation.key] = lifecycle.submit(store, "fit", _values(values, ablation, group),
                                                  name=f"{base} · {ablation.label}")
    except SettingsError:   # a model or dataset deleted meanwhile: keep no partial group
        for run_id in runs.values():
            lifecycle.cancel(store, run_id)
        raise
    return {"group": group, "runs": runs}


def _values(values: dict, ablation: Ablation, group: str) -> dict:
    return dict(values, **ablation.settings(), group={"id": group, "member": ablation.key})


def group_of(record: dict) -> dict | None:
    """``{"id", "member"}`` of a run that belongs to a group, else None."""
    group = (record.get("settings") or {}).get("group")
    return group if isinstance(group, dict) and group.get("id") else None


def groups(store) -> list[dict]:
    """The comparisons in the store, newest first: ``{"group", "name", "created",
    "runs": {variant key: run id}}`` (members deleted since are missing)."""
    found = {}
    for record in store.list_runs("fit"):
        group = group_of(record)
        if group is None or group.get("member") not in BY_KEY:
            continue
        entry = found.setdefault(group["id"], {"group": group["id"], "runs": {},
                                               "created": record["created"],
                                               "name": record["name"].rsplit(" · ", 1)[0]})
        entry["runs"][group["member"]] = record["id"]
        entry["created"] = min(entry["created"], record["created"])
    return sorted(found.values(), key=lambda g: -g["created"])
