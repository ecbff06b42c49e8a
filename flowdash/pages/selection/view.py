"""Model selection page logic: the form, and the live analysis of the followed selection.

No callbacks (tested directly). The analysis runs in this web process on
one :class:`flowdash.analysis.Analyst` per process (bounded memory): the
fits occupy the workers, and an analysis queued behind them would wait.
"""
from __future__ import annotations

import json

import numpy as np

from flowdash import analysis, jobs, settings
from flowdash.pages import linesearch, menus, theme
from flowdash.pages.fit import view as fit_view
from flowdash.pages.selection import figures
from flowdash.store import ACTIVE_STATUSES

#: The analyst of this process: recorded models and memoised spectra of the
#: selections analysed here (at most ~512 MB of paths, 2 × 128 MB of cache).
ANALYST = analysis.Analyst()
HALVES = (("even_odd", "even / odd trials"), ("random", "random halves (seed)"),
          ("two_datasets", "two datasets"))
#: form field of the job layer's setting keys (beyond the Fit page's)
FIELD_OF = dict(fit_view.FIELD_OF, halves="halves", dataset2="dataset2",
                **{"half": "halves"})
FCA_LABELS = {"JS_thres": "JS threshold", "FC_stride": "FC stride",
              "smoothing_kernel": "smoothing", "epoch_offset": "offset",
              "num_models": "models", "terminal_time": "T (s)",
              "number_of_timesteps": "time steps", "late_JS_thres": "late thr."}
#: What each analysis setting means (the field's tooltip).
FCA_HELP = {"JS_thres": "the divergence above which the two halves disagree (nats)",
            "FC_stride": "half-width of the window of half-2 models matched to each half-1 model",
            "smoothing_kernel": "width of the moving average of the divergence (0: none)",
            "epoch_offset": "records before this index are not selected",
            "num_models": "models analysed per half (log-spaced epochs)",
            "terminal_time": "T of the non-equilibrium FC and divergence (s)",
            "number_of_timesteps": "time points of the non-equilibrium divergence",
            "late_JS_thres": "the threshold of the 2020 analysis's late model"}
POLL_MS = 1000


def selection_options(store) -> list[dict]:
    return [{"label": f"{s['name']} · {s['id'][:6]}", "value": s["id"]}
            for s in store.list_selections()]


def fit_run_options(store) -> list[dict]:
    """The newest fit runs (at most ``menus.LIMIT``, from the run index: no record is read)."""
    return [{"label": f"{r['name']} · {r['id'][:6]}", "value": r["id"]}
            for r in store.find_runs(kind="fit", limit=menus.LIMIT)[1]]


def values_from_fields(f: dict) -> dict:
    """The job layer's selection values from the form's fields (the Fit page's
    fields plus ``halves``, ``halves_seed``, ``dataset2``)."""
    values = fit_view.values_from_fields(dict(f, snapshots=f.get("snapshots") or "1, 6, 13, 50",
                                              pace="0"))
    values.update(halves=f.get("halves"), halves_seed=f.get("halves_seed"),
                  dataset2=f.get("dataset2"))
    return values


def start(store, f: dict):
    """Queue both fits; returns ``(selection id or None, {field: message}, alert)``."""
    try:
        sel_id = jobs.submit_selection(store, values_from_fields(f), name=f.get("name"))
    except settings.SettingsError as exc:
        by_field, other = {}, []
        for key, message in exc.errors.items():
            field = FIELD_OF.get(key) or linesearch.field_of(key)
            if field:
                by_field[field] = message
            else:
                other.append(message)
        return None, by_field, " ".join(other) or "Fix the fields marked in red."
    return sel_id, {}, None


def pair(store, run1, run2, name=None):
    """A selection of two existing fits; returns (selection id or None, message)."""
    try:
        return jobs.pair_runs(store, run1, run2, name), None
    except settings.SettingsError as exc:
        return None, " ".join(exc.errors.values())


def act(store, sel_id, what: str, more=None) -> tuple[str, str]:
    """Cancel or continue both fits of a selection; returns (message, alert colour)."""
    if not sel_id:
        return "Choose a selection first.", "light"
    try:
        if what == "cancel":
            records = jobs.cancel_selection(store, sel_id)
            states = ", ".join(r["status"] for r in records if r)
            return f"Cancel requested (fits: {states}); each stops after its current epoch.", \
                "warning"
        records = jobs.continue_selection(store, sel_id, more)
    except settings.SettingsError as exc:
        return " ".join(exc.errors.values()), "warning"
    ends = sorted({r["settings"]["max_epochs"] for r in records})
    return f"Both fits continue, to epoch {' and '.join(map(str, ends))}.", "success"


def validation_note(halves: str) -> str:
    return jobs.selection.VALIDATION.get(halves, "")


# ---------------------------------------------------------------------------
# the live analysis
# ---------------------------------------------------------------------------
def half_rows(a: analysis.Analysis) -> list[dict]:
    """Per fit: name, status, progress (0..100) and a line of text."""
    rows = []
    for h in a.halves:
        done = max(h.last_epoch, 0)
        rows.append({"name": h.name, "status": h.status, "run_id": h.run_id,
                     "progress": 100.0 * done / max(h.max_epochs, 1),
                     "text": f"half {h.index + 1}: epoch {done:,} of {h.max_epochs:,} · "
                             f"{h.n_records} models analysed"
                             + (" (display snapshots only: this fit recorded no models)"
                                if h.display_only else "")})
    return rows


def note(a: analysis.Analysis) -> tuple[str, str]:
    """The line above the figures and its colour."""
    if a.error:
        return a.error, "danger"
    text = a.status_text
    if a.waiting:
        return f"{text}; waiting for {a.waiting} more recorded model{'s' * (a.waiting > 1)}", \
            "info"
    if a.errors:
        return f"{text}; fix the analysis settings marked in red", "warning"
    r = a.result
    if r is None:
        return text, "info"
    e1, e2 = r.selected_epochs
    sel = f"selected: epoch {e1:,} (half 1) and {e2:,} (half 2), FC {r.FCs1[r.selected]:.3g}"
    if a.truth_fc is not None:
        sel += f" (ground truth {a.truth_fc:.3g})"
    if r.crossed_at_once:
        sel += "; the divergence exceeds the threshold from the start"
    if r.invert:
        sel += "; half 2 is a mirror image (x → −x) of half 1 and is compared mirrored"
    return f"{text} · {sel}", "success" if not a.running else "primary"


def figures_of(a: analysis.Analysis) -> dict:
    """The figures of an analysis (message figures while there is none)."""
    r = a.result
    if r is None:
        msg = a.error or ("Waiting for recorded models…" if a.waiting or a.upto < 0 else
                          "Fix the analysis settings.")
        blank = theme.message_figure(msg, 330)
        return {"fc": blank, "nll": theme.message_figure("", 330),
                "js": theme.message_figure("", 330), "pot": theme.message_figure("", 330),
                "cond": None}
    s = r.settings
    noneq = r.non_equilibrium
    sel = r.selected
    selected = ((a.epochs1[sel], r.FCs1[sel]),
                (r.epochs2[sel], float(a.FC2[np.searchsorted(r.analysed_2, r.min_inds_2[sel])])))
    out = {"fc": figures.fc_epoch_figure(a.epochs1, a.FC1, a.epochs2, a.FC2, a.truth_fc, selected,
                                         noneq),
           "nll": figures.nll_fc_figure(a.FC1, a.val1, a.FC2, a.val2, sel, noneq),
           "js": figures.js_fc_figure(a.FC1, r.JS, s.JS_thres, s.late_JS_thres,
                                      {"selected": sel, "early": r.early, "late": r.late}, noneq),
           "pot": figures.potentials_figure(a.x, a.selected_models, a.truth),
           "cond": None}
    if noneq:
        labels = (a.selection.get("refs") or {}).get("conditions")
        out["cond"] = figures.conditions_figure(a.x, a.selected_models, a.truth, a.per_condition,
                                                labels)
    return out


def cursor_key(a: analysis.Analysis, values: dict) -> list:
    """What the figures show: a poll with the same key draws nothing new (JSON data,
    as the browser gives it back)."""
    return json.loads(json.dumps(
        [a.selection.get("id"), a.upto, [h.n_records for h in a.halves],
         [h.status for h in a.halves], sorted((values or {}).items()), a.error, a.waiting,
         sorted(a.errors.items())], default=str))


def poll(store, sel_id, values: dict, cursor) -> dict | None:
    """Analyse the followed selection on what its fits recorded so far.

    Returns None without a selection, else a dict: ``analysis``, ``rows``
    (:func:`half_rows`), ``note`` (text, colour), ``errors`` ({FCA setting:
    message}), ``figures`` (None: unchanged since ``cursor``), ``cursor``,
    ``final`` (both fits ended and the figures show it all).
    """
    if not sel_id or store.get_selection(sel_id) is None:
        return None
    for run_id in store.get_selection(sel_id).get("fits") or []:
        jobs.observe(store, run_id)   # a dead worker's fit becomes interrupted
    a = ANALYST.analyse(store, sel_id, values)
    key = cursor_key(a, values)
    return {"analysis": a, "rows": half_rows(a), "note": note(a), "errors": a.errors,
            "figures": None if cursor == key else figures_of(a), "cursor": key,
            "final": not a.running}


def running(a: analysis.Analysis) -> bool:
    return any(h.status in ACTIVE_STATUSES for h in a.halves)
