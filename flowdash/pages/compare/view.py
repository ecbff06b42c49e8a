"""Compare page logic: start the four fits of the 2021 Fig. 3 and follow them live.

Like ``fit/view.py`` this module reads the run store and builds ``Patch``
updates (so it imports dash); it has no callbacks and is tested directly.
The four fits are ordinary fit runs linked by a group id
(:mod:`flowdash.jobs.ablation`); the page polls each one's new epochs
(``read_columns`` from its cursor) and asks the job layer what became of
it (``jobs.observe``: a queued run's place in line).
"""
from __future__ import annotations

import numpy as np
from dash import Patch

from flowdash import jobs, settings
from flowdash.jobs.ablation import ABLATIONS, BY_KEY, submit_group
from flowdash.pages.compare import figures
from flowdash.pages.fit import figures as fit_figures
from flowdash.pages.fit import view as fit_view
from flowdash.store import ACTIVE_STATUSES, FINAL_STATUSES

SHIFTED, RELATIVE = fit_view.SHIFTED, fit_view.RELATIVE
#: The form's first values: the 2021 Figs. 2-3 fit (from a uniform peq on Ne 16,
#: GD on F, lr 0.005; the Fit page's "2021 Figs. 2–3" preset), potentials at the
#: paper's epochs 4, 17 and 40.
DEFAULTS = {"peq": "uniform", "ne": fit_view.PRESETS["ramp2021"][1]["Ne_override"],
            "epochs": "60", "lr": fit_view.PRESETS["ramp2021"][1]["lr"]["F"],
            "shown": "4, 17, 40", "pace": "0"}
#: setting key of the job layer -> field of the form. The full model's absorption
#: step needs the dataset's trial ends: its message goes under the dataset.
FIELD_OF = {"dataset": "dataset", "absorption_step": "dataset", "init_model": "init_model",
            "peq_override": "peq", "Ne_override": "ne", "max_epochs": "epochs",
            "learning_rate:F": "lr", "snapshot_epochs": "shown", "pace": "pace",
            "name": "name", "Nv": "ne"}
FIELDS = ("dataset", "init_model", "peq", "ne", "epochs", "lr", "shown", "pace", "name")
#: Most epochs a panel draws when it is drawn whole (the store decimates longer fits).
MAX_POINTS = 2000


def fit_values(f: dict) -> dict:
    """The fit values the four fits share, from the form's fields
    (``f``: dataset, init_model, peq, ne, epochs, lr, shown, pace)."""
    return {"dataset": f.get("dataset"), "init_model": f.get("init_model"),
            "peq_override": f.get("peq") or None, "Ne_override": f.get("ne"),
            "optimizer": "GD", "params_to_opt": ["F"], "learning_rate": {"F": f.get("lr")},
            "max_epochs": f.get("epochs"), "mini_batch_number": 1, "Nv": None,
            "snapshot_epochs": f.get("shown") or "", "seed": 0, "pace": f.get("pace")}


def start(store, f: dict):
    """Queue the four fits; returns ``(group or None, {field: message}, alert or None)``.

    ``group`` is ``{"group": id, "runs": {variant key: run id}}``. Potentials at
    epochs beyond the last epoch would never be drawn: refused, under their field.
    """
    values = fit_values(f)
    s, _ = settings.check_fit(values, partial=True)
    beyond = settings.fit_warnings(s).get("snapshot_epochs")
    try:
        if beyond:
            raise settings.SettingsError({"snapshot_epochs": beyond})
        group = submit_group(store, values, f.get("name"))
    except settings.SettingsError as exc:
        by_field, other = {}, []
        for key, message in exc.errors.items():
            if key in FIELD_OF:
                by_field.setdefault(FIELD_OF[key], message)
            else:
                other.append(message)
        return None, by_field, " ".join(other) or "Fix the fields marked in red."
    return group, {}, None


def dataset_problem(store, name) -> str:
    """What makes a dataset unfit for the comparison, at once (before Start), or ''."""
    meta = store.get_dataset_meta(name) if name else None
    if meta is not None and meta.get("with_trial_end") is False:
        return (f"“{name}” has no recorded trial ends, and the full model's absorption step "
                "needs them (a trial ends when the latent reaches a wall). Generate the data "
                "with “record trial end” on, e.g. the 2021 ramping data preset.")
    return ""


def truth_model(store, name):
    """The saved ground-truth model of a synthetic dataset (the fits' start), or None."""
    meta = store.get_dataset_meta(name) if name else None
    model = (meta or {}).get("model")
    return model if model and store.get_model(model) is not None else None


# ---------------------------------------------------------------------------
# the live panels
# ---------------------------------------------------------------------------
def status_text(record, n_epochs: int) -> str:
    """The panel's status line: its place in the queue, or how far it is."""
    if record is None:
        return "this run is gone (deleted)"
    E = record["settings"].get("max_epochs")
    if record["status"] == "queued":
        return record.get("message") or "queued"   # its place in line (jobs.observe)
    done = max(0, n_epochs - 1)
    text = f"epoch {done} of {E}"
    if record["status"] in FINAL_STATUSES and record["status"] != "done":
        text += f" · {record['status']}" + (f": {record['error']}" if record.get("error") else "")
    return text


def poll(store, group: dict | None, cursor: dict | None, scale: str = SHIFTED) -> dict | None:
    """Everything the four panels need since ``cursor`` (None: draw them anew).

    Returns ``{"figures": [figure, Patch or None per variant], "status": [(status,
    text) per variant], "note": text or None (unchanged), "shown": the chosen
    epochs (for the colour key), "cursor": ..., "final": nothing more will
    come}``, or None without a group.
    """
    if not group or not group.get("runs"):
        return None
    if not cursor or cursor.get("group") != group.get("group") or cursor.get("scale") != scale:
        cursor = {"group": group.get("group"), "scale": scale, "runs": {}}
    out = {"figures": [], "status": [], "note": None, "shown": []}
    runs, notes, fresh_any = {}, [], False
    for ablation in ABLATIONS:
        rid = group["runs"].get(ablation.key)
        fig, status, c, note = _panel(store, ablation.key, rid, cursor["runs"].get(ablation.key),
                                      scale)
        out["figures"].append(fig)
        out["status"].append(status)
        runs[ablation.key] = c
        fresh_any |= fig is not None and not isinstance(fig, Patch)
        if note:
            notes.append(note)
    if fresh_any:
        out["note"] = notes[0] if notes else ""
    record = next((store.get_run(r) for r in group["runs"].values() if r), None)
    out["shown"] = sorted((record or {}).get("settings", {}).get("snapshot_epochs") or [])
    out["cursor"] = dict(cursor, runs=runs)
    out["final"] = all(c.get("final") for c in runs.values())
    return out


def _panel(store, key, rid, c, scale):
    """(figure, Patch or None; (status, text); cursor; ground-truth note) of one variant."""
    label = BY_KEY[key].label
    record = jobs.observe(store, rid) if rid else None
    if record is None:
        text = status_text(None, 0)
        fig = None if c and c.get("waiting") == text else figures.waiting_figure(label, text)
        return fig, ("gone", text), {"run_id": rid, "waiting": text, "final": True}, ""
    latest = store.get_latest(rid)
    total = store.n_epochs(rid)
    active = record["status"] in ACTIVE_STATUSES
    upto = min(total, latest["epoch"] + 1) if latest and active else total
    status = (record["status"], status_text(record, upto))
    final = record["status"] in FINAL_STATUSES and total == upto
    shown = sorted(record["settings"].get("snapshot_epochs") or [])
    if not c or c.get("run_id") != rid or not c.get("drawn"):
        result = store.get_result(rid) or {}
        if "x" not in result or upto == 0:
            text = status[1] if record["status"] == "queued" else (
                status[1] if not active else "starting…")
            fig = None if c and c.get("waiting") == text else figures.waiting_figure(label, text)
            return fig, status, {"run_id": rid, "waiting": text, "final": final}, ""
        return _draw(store, record, result, latest, upto, shown, label, scale, final) + (
            fit_view.yardstick(store, record, result, scale)[1],)
    if c.get("final"):
        return None, status, c, ""
    patch, c = _extend(store, record, c, latest, upto, shown)
    return patch, status, dict(c, final=final), ""


def _draw(store, record, result, latest, upto, shown, label, scale, final):
    rid = record["id"]
    cols = fit_view._below(store.read_columns(rid, 0, max_points=MAX_POINTS), upto)
    es, tr, _ = fit_view.curves(cols)
    snaps = _snapshots(store, rid, shown, upto)
    gt = result.get("nll_gt")
    rel = scale == RELATIVE and gt is not None
    truth = fit_view._truth(store, record, result)
    fig = figures.panel_figure(label, es, tr, np.asarray(result["x"]), snaps, shown, truth,
                               (latest["epoch"], latest["peq"]) if latest else None, gt, rel,
                               fit_view._x_end(record, es))
    c = {"run_id": rid, "drawn": True, "n": upto, "base": fit_figures.first_finite(tr),
         "gt": gt, "rel": rel, "snaps": sorted(snaps), "final": final}
    return fig, (record["status"], status_text(record, upto)), c


def _snapshots(store, rid, shown, upto, skip=()) -> dict:
    """{epoch: peq} at the chosen epochs recorded below ``upto`` (not in ``skip``)."""
    wanted = set(shown) - set(skip)
    out = {}
    for k in store.snapshot_epochs(rid):
        if k in wanted and k < upto:
            snap = store.read_snapshot(rid, k)
            if snap and snap.get("peq") is not None:
                out[k] = snap["peq"]
    return out


def _extend(store, record, c, latest, upto, shown):
    """A Patch with the new epochs, the chosen epochs reached and the current potential."""
    rid = record["id"]
    if upto <= c["n"]:
        return None, c
    cols = fit_view._below(store.read_columns(rid, c["n"]), upto)
    es, tr, _ = fit_view.curves(cols)
    base = fit_figures.first_finite([c["base"]] + tr)
    patch = Patch()
    patch["data"][figures.NLL]["x"].extend(es)
    patch["data"][figures.NLL]["y"].extend(fit_figures.nll_y(tr, base, c["gt"], c["rel"]))
    snaps = _snapshots(store, rid, shown, upto, skip=c["snaps"])
    for e, peq in snaps.items():
        patch["data"][figures.FIRST_EPOCH + shown.index(e)]["y"] = figures._phi(peq)
    if latest:
        now = figures.now_index(len(shown))
        patch["data"][now]["y"] = figures._phi(latest["peq"])
        patch["data"][now]["name"] = figures.now_label((latest["epoch"], None))
    return patch, dict(c, n=upto, base=base, snaps=sorted(set(c["snaps"]) | set(snaps)))
