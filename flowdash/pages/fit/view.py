"""Fit page logic: the form and the live view of a run.

Unlike ``figures.py`` this module reads the run store and builds ``Patch``
updates (so it imports dash); it has no callbacks and is tested directly.
"""
from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict

import numpy as np
from dash import Patch

from flowdash import cost, jobs, settings
from flowdash.core.fitting import FITTABLE
from flowdash.jobs.fit import NO_TRUTH
from flowdash.pages import linesearch, theme
from flowdash.pages.fit import figures
from flowdash.store import ACTIVE_STATUSES, FINAL_STATUSES

PARAMS = FITTABLE
DEFAULT_LR = {"F": "0.005", "F0": "0.005", "D": "0.1", "Fr": "0.0005", "C": "1"}
#: The Initial peq choice that keeps the saved model's peq (a Select cannot
#: show an option whose value is empty).
AS_SAVED = "as-saved"
#: Views of a fit: the paper's Fig. 3 layout, or all snapshots overlaid.
PAPER, OVERLAY = "paper", "overlay"
#: Scales of the NLL panel: the change from epoch 0, or relative to the ground
#: truth's NLL, (NLL_gt − NLL)/NLL_gt (the 2021 paper's view; needs a ground truth).
SHIFTED, RELATIVE = "shifted", "relative"
NLL_SCALES = {SHIFTED: "NLL − NLL₀", RELATIVE: "relative to the truth"}
#: The page warns when the training NLL stayed above its lowest value in
#: RISING_EPOCHS of the last RISING_WINDOW epochs: three in a row when it rises,
#: and also a zig-zag that keeps coming back to (but never below) its lowest value.
RISING_EPOCHS, RISING_WINDOW = 3, 6
#: The fit's likelihood setting (the Likelihood choice): (boundary conditions,
#: absorption step) and its label; AS_SAVED keeps the initial model's. The 2021
#: paper's ablations fit absorbing data with each (``jobs.ablation``).
LIKELIHOODS = {
    AS_SAVED: ((None, None), "as saved in the model"),
    "full": (("dirichlet", True), "absorbing: Dirichlet + absorption step"),
    "no_absorption": (("dirichlet", False), "Dirichlet, no absorption step"),
    "reflecting": (("neumann", False), "reflecting (Neumann)"),
}
#: setting key of the job layer -> form field of the page
FIELD_OF = {"dataset": "dataset", "init_model": "init_model", "params_to_opt": "params",
            "max_epochs": "epochs", "mini_batch_number": "batches", "Nv": "nv",
            "snapshot_epochs": "snapshots", "seed": "seed", "pace": "pace", "name": "name",
            "learning_rate:alpha": "alpha", "p0_override": "p0", "D_override": "d",
            "Ne_override": "ne", "boundary_conditions": "likelihood",
            "absorption_step": "likelihood",
            **{f"learning_rate:{p}": f"lr-{p}" for p in PARAMS}}


def likelihood_choice(boundary_conditions, absorption_step) -> str:
    """The Likelihood choice of two fit settings (AS_SAVED when both are None)."""
    for key, (pair, _) in LIKELIHOODS.items():
        if pair == (boundary_conditions, absorption_step):
            return key
    return AS_SAVED


def _chosen(value):
    """A select's value, None for "as saved"."""
    return None if value in (None, "", AS_SAVED) else value


def values_from_fields(f: dict) -> dict:
    """The job layer's fit values from the form's fields.

    ``f`` keys: dataset, init_model, peq_override, p0_override, D_override,
    Ne_override, likelihood (a key of :data:`LIKELIHOODS`), optimizer, lr (dict
    param->text), alpha, params (list), epochs, batches, nv, snapshots, seed, pace.
    """
    adam = f.get("optimizer") == "ADAM"
    conditions, absorption = LIKELIHOODS.get(f.get("likelihood") or AS_SAVED,
                                             LIKELIHOODS[AS_SAVED])[0]
    return {"dataset": f.get("dataset"), "init_model": f.get("init_model"),
            "peq_override": _chosen(f.get("peq_override")),
            "p0_override": _chosen(f.get("p0_override")),
            "D_override": f.get("D_override"), "Ne_override": f.get("Ne_override"),
            "boundary_conditions": conditions, "absorption_step": absorption,
            "optimizer": f.get("optimizer"),
            "params_to_opt": f.get("params") or [],
            "learning_rate": {"alpha": f.get("alpha")} if adam else dict(f.get("lr") or {}),
            "max_epochs": f.get("epochs"), "mini_batch_number": f.get("batches"),
            "Nv": f.get("nv"), "snapshot_epochs": f.get("snapshots") or "",
            "seed": f.get("seed"), "pace": f.get("pace"), "line_search": f.get("line_search")}


def start(store, f: dict):
    """Queue a fit from the form; returns ``(run_id or None, {field: message}, alert)``.

    Errors of a field go to the field; others (the core's options) to the alert.
    """
    try:
        run_id = jobs.submit(store, "fit", values_from_fields(f), name=f.get("name"))
    except settings.SettingsError as exc:
        return None, *field_errors(exc.errors)
    return run_id, {}, None


def field_errors(errors: dict) -> tuple[dict, str]:
    """``({form field: message}, alert text)`` of the job layer's errors per setting."""
    by_field, other = {}, []
    for key, message in errors.items():
        field = FIELD_OF.get(key) or linesearch.field_of(key)
        if field:
            by_field[field] = message
        else:
            other.append(message)
    return by_field, " ".join(other) or "Fix the fields marked in red."


def continue_run(store, run_id, more) -> tuple[str, str]:
    """Continue the followed run for ``more`` epochs; returns (message, alert colour)."""
    if not run_id:
        return "Follow a fit run first.", "light"
    try:
        record = jobs.continue_run(store, run_id, more)
    except settings.SettingsError as exc:
        return " ".join(exc.errors.values()), "warning"
    note = record["continued"][-1]
    return (f"Continuing “{record['name']}” from epoch {note['from_epoch']} to "
            f"{note['to_epoch']}.", "success")


def preflight(store, f: dict) -> dict:
    """What the form tells before Start: warnings per field and the epoch estimate.

    Returns ``{"warnings": {field: message}, "estimate": text, "slow": bool}``;
    the estimate is empty until a dataset and a model are chosen and Nv and
    the mini-batches are valid for them.
    """
    s, errors = settings.check_fit(values_from_fields(f), store, partial=True)
    warnings = {FIELD_OF[k]: m for k, m in settings.fit_warnings(s).items()}
    out = {"warnings": warnings, "estimate": "", "slow": False}
    blocked = {"dataset", "init_model", "Nv", "mini_batch_number", "max_epochs", "Ne_override",
               "D_override", "p0_override", "boundary_conditions", "absorption_step"} & set(errors)
    if blocked or not s.get("dataset") or not s.get("init_model"):
        return out
    spec = settings.initial_spec(store.get_model(s["init_model"]), s)
    train, val, _ = jobs.train_val(store, s["dataset"])
    N = settings.spec_nodes(spec)
    Nv = s.get("Nv") or N - 2
    shared = set(s["params_to_opt"]) - {"F"}      # peq is per datasample, the rest shared
    per_epoch = cost.epoch_seconds(
        N, Nv, [cost.intervals(d) for d in train],
        None if val is None else [cost.intervals(d) for d in val],
        mini_batches=s["mini_batch_number"], reuse_gradient=len(train) == 1 or not shared)
    pace = s.get("pace") or 0.0
    text = (f"≈ {fmt_seconds(per_epoch, small=True)} per epoch"
            + (f" (+ {fmt_seconds(pace, small=True)} pace)" if pace else "")
            + f", ≈ {fmt_seconds((per_epoch + pace) * s['max_epochs'])} for "
            f"{s['max_epochs']} epochs")
    out["slow"] = per_epoch > cost.SLOW_EPOCH
    if out["slow"]:
        text += (f": Nv = {Nv} of N = {N} makes each epoch slow; "
                 "Nv = 64 is usually enough" if Nv > 64 else ": a large dataset or grid")
    out["estimate"] = text
    return out


def _preset(label, peq, lr, epochs, snapshots, params=("F",), nv="", p0=AS_SAVED, D="",
            Ne=""):
    return (label, {"peq_override": peq, "p0_override": p0, "D_override": D, "Ne_override": Ne,
                    "likelihood": AS_SAVED, "optimizer": "GD", "lr": {**DEFAULT_LR, **lr},
                    "params": list(params), "epochs": epochs, "batches": "1", "nv": nv,
                    "snapshots": snapshots, "view": PAPER})


#: The Fit page's presets: key -> (button label, field values). Each starts from
#: the dataset's ground-truth model (``preset``), shown in the paper layout.
#: 2020 Fig. 3: GD on F from cos², lr 0.005, 50 epochs, Nv 64. 2021 (Genkin,
#: Hughes & Engel): from a uniform peq on Ne 16 with every eigenpair, GD on F,
#: lr 0.005 (Figs. 2-3) or 0.0025 (Fig. 4, 100 epochs); the Fig. 4 joint fit
#: also fits p0 and D, from the reference's non-stationary start (uniform peq,
#: p0 cos², D 1; its ``fca_nonequilibrium`` case), by GD with rates that bring
#: the three to the truth together in about 200 epochs on 400 ramping trials
#: (F 0.005, F0 0.05, D 0.0003: a sweep, see repro/fig4_2021.py; ADAM with
#: α 0.05 or 0.01 stalled far above the truth's NLL).
PRESETS = {
    "fig3": _preset("2020 Fig. 3", "cos_square", {"F": "0.005"}, "50", "1, 6, 13, 50", nv="64"),
    "ramp2021": _preset("2021 Figs. 2–3", "uniform", {"F": "0.005"}, "100", "4, 17, 40, 100",
                        Ne="16"),
    "fig4_2021": _preset("2021 Fig. 4", "uniform", {"F": "0.0025"}, "100", "50, 100", Ne="16"),
    "joint2021": _preset("2021 Fig. 4 joint (F, p0, D)", "uniform",
                         {"F": "0.005", "F0": "0.05", "D": "0.0003"}, "200", "10, 50, 100, 200",
                         params=("F", "F0", "D"), p0="cos_square", D="1", Ne="16"),
}


def preset(key: str, ground_truth: str | None) -> dict:
    """Field values of a preset (:data:`PRESETS`) from the dataset's ground truth."""
    return dict(PRESETS[key][1], init_model=ground_truth)


def fig3_preset(ground_truth: str | None):
    """Field values of the 2020 Fig. 3 fit (GD on F, lr 0.005, 50 epochs, Nv 64), shown
    in the paper's layout."""
    return preset("fig3", ground_truth)


# ---------------------------------------------------------------------------
# live view
# ---------------------------------------------------------------------------
#: Most epochs drawn when a run's curves are drawn whole: the store decimates a
#: longer fit (``read_columns(max_points=)``: the first and last epochs, the
#: minima of the NLLs and evenly spaced epochs); live updates add every epoch.
MAX_POINTS = 5000


def curves(cols):
    """Epoch numbers and NLLs summed over datasamples, from the store's columns
    (:meth:`RunStore.read_columns`).

    A missing value (NaN: a non-finite NLL was stored as None) makes the
    epoch's sum missing (None), so the curve shows a gap; ``val`` is None per
    epoch when the run has no validation set.
    """
    es = np.asarray(cols["epoch"]).tolist()
    return es, _totals(cols["nll_train"], len(es)), _totals(cols["nll_val"], len(es))


def _totals(matrix, n):
    if matrix is None or not np.shape(matrix)[-1]:
        return [None] * n
    return [float(v) if np.isfinite(v) else None for v in np.asarray(matrix).sum(axis=1)]


def _row(cols, i) -> dict:
    """Epoch, elapsed s and Unix time of row ``i`` of the columns (JSON-able)."""
    def num(v):
        return float(v) if np.isfinite(v) else 0.0
    return {"epoch": int(cols["epoch"][i]), "elapsed": num(cols["elapsed"][i]),
            "time": num(cols["time"][i])}


def _truth(store, record, result):
    """(x, peq) of the dataset's ground truth, or None for real data."""
    truth = result.get("truth") if "truth" in result else jobs.truth_arrays(
        (record["refs"].get("dataset_meta")
         or store.get_dataset_meta(record["refs"].get("dataset"))))
    return None if truth is None else (np.asarray(truth["x"]), np.asarray(truth["peq"]))


def yardstick(store, record, result, scale: str = SHIFTED):
    """``(nll_gt or None, note)``: the ground truth's NLL on the run's training data
    (the dashed line) and, when there is none, one short note saying why."""
    gt = result.get("nll_gt")
    if gt is not None and np.isfinite(gt):
        return float(gt), ""
    if "x" not in result:        # nothing recorded yet: nothing to say
        return None, ""
    why = result.get("nll_gt_note") or (
        NO_TRUTH if _truth(store, record, result) is None
        else "this run was started before flowdash recorded the ground truth's NLL")
    extra = " The relative view needs it." if scale == RELATIVE else ""
    return None, f"No ground-truth line: {why}.{extra}"


def _x_end(record, epochs) -> int:
    """The last epoch the ground truth's line reaches: the planned epochs of a run
    that goes on (its curve grows towards the end), the last one of a run that ended."""
    last = int(epochs[-1]) if len(epochs) else 0
    if record["status"] in FINAL_STATUSES:
        return max(last, 1)
    return max(last, int(record["settings"].get("max_epochs") or 0), 1)


def _wanted(record) -> list[int]:
    return sorted(record["settings"].get("snapshot_epochs") or [])


def snapshots(store, record, upto: int | None = None, since: int = 0) -> dict:
    """{epoch: peq} at the run's snapshot epochs recorded so far (below ``upto``
    if given, from ``since``; epoch record k is epoch k; the store keeps them as
    float32 display copies)."""
    wanted = set(_wanted(record))
    out = {}
    for k in store.snapshot_epochs(record["id"]):
        if k in wanted and since <= k and (upto is None or k < upto):
            snap = store.read_snapshot(record["id"], k)
            if snap and snap.get("peq") is not None:
                out[k] = snap["peq"]
    return out


def potential(store, record, snaps, latest, result=None):
    """The overlay potential figure from the snapshots (:func:`snapshots`) of a run."""
    result = result if result is not None else (store.get_result(record["id"]) or {})
    if "x" not in result:
        return theme.message_figure("Waiting for the first epoch…", 400)
    wanted = set(_wanted(record))
    last = (latest["epoch"], latest["peq"]) if latest and latest["epoch"] not in wanted else None
    return figures.potential_figure(np.asarray(result["x"]), sorted(snaps.items()),
                                    _truth(store, record, result), last)


def paper(store, record, cols, snaps, latest, result=None, scale: str = SHIFTED):
    """The paper-layout figure of a run (its epochs' columns and snapshots so far)."""
    result = result if result is not None else (store.get_result(record["id"]) or {})
    if "x" not in result:
        return theme.message_figure("Waiting for the first epoch…", 380)
    now = (latest["epoch"], latest["peq"]) if latest else None
    return figures.paper_figure(*curves(cols), np.asarray(result["x"]), snaps, _wanted(record),
                                _truth(store, record, result), now,
                                rows=len(np.atleast_2d(result["init"]["peq"])),
                                nll_gt=result.get("nll_gt"), relative_to_truth=scale == RELATIVE,
                                x_end=_x_end(record, cols["epoch"]))


def nll(store, record, cols, result=None, scale: str = SHIFTED, title=None):
    """The overlay NLL figure of a run (its epochs' columns) with the ground truth's line."""
    result = result if result is not None else (store.get_result(record["id"]) or {})
    return figures.nll_figure(*curves(cols), **({"title": title} if title else {}),
                              nll_gt=result.get("nll_gt"), relative_to_truth=scale == RELATIVE,
                              x_end=_x_end(record, cols["epoch"]))


def _drawn_potential(store, record, upto, latest) -> dict:
    """What the overlay potential figure shows: its snapshot epochs and whether
    it has the dashed "now" curve (not at a snapshot epoch)."""
    wanted = set(_wanted(record))
    return {"snaps": [k for k in store.snapshot_epochs(record["id"]) if k in wanted and k < upto],
            "now": bool(latest) and latest["epoch"] not in wanted}


def _potential_update(store, record, cursor, upto, latest):
    """The overlay potential figure after new epochs: a Patch of the dashed "now"
    curve while the snapshots drawn stay the same (one read: the snapshot list),
    the whole figure when they changed. Returns (the figure, a Patch or None; the
    cursor)."""
    shown, pot = _drawn_potential(store, record, upto, latest), cursor.get("pot")
    if pot and pot["snaps"] == shown["snaps"] and pot["now"] == shown["now"]:
        if not shown["now"]:
            return None, cursor
        patch = Patch()
        for k, row in enumerate(np.atleast_2d(latest["peq"])):
            patch["data"][pot["now_at"] + k]["y"] = figures.phi(row)
            patch["data"][pot["now_at"] + k]["name"] = figures.now_label(latest["epoch"])
        return patch, cursor
    # a new snapshot reaches every viewer of the run at once: draw it once for them
    key = ("potential", store.location, record["id"], tuple(shown["snaps"]),
           latest["epoch"] if shown["now"] else None)
    fig = _shared(key, lambda: potential(store, record, snapshots(store, record, upto), latest))
    return fig, dict(cursor, pot=_potential_index(fig, shown, latest))


def _potential_index(fig, shown: dict, latest) -> dict:
    now_rows = len(np.atleast_2d(latest["peq"])) if shown["now"] else 0
    return dict(shown, now_at=len(fig.data) - now_rows)


def side_figures(store, record, cols, latest=None):
    """The overlay potential figure and the D/p0/rates figure of a run (its epochs' columns)."""
    result = store.get_result(record["id"]) or {}
    if "x" not in result:
        return (theme.message_figure("Waiting for the first epoch…", 400),
                theme.message_figure("", 200))
    latest = latest if latest is not None else store.get_latest(record["id"])
    pot = potential(store, record, snapshots(store, record), latest, result)
    return pot, params(record, cols, latest, result)


def params(record, cols, latest, result):
    """The D/p0/rates figure of a run (its epochs' columns, the latest parameters)."""
    fitted = set(record["settings"].get("params_to_opt") or [])
    D = np.asarray(cols["D"]).tolist() if "D" in fitted else None
    p0 = (latest["epoch"], latest["p0"]) if latest and latest.get("p0") is not None else None
    fr = (latest["epoch"], latest["fr"]) if latest and latest.get("fr") is not None else None
    return figures.params_figure(np.asarray(cols["epoch"]).tolist(), D, np.asarray(result["x"]),
                                 p0, fr)


def params_patch(record, cols, latest) -> Patch:
    """Extend the D traces by the new epochs' columns and replace p0 and the
    rates (trace order of :func:`figures.params_figure`)."""
    patch, i = Patch(), 0
    if "D" in (record["settings"].get("params_to_opt") or []):
        D = np.asarray(cols["D"], float)
        for k in range(D.shape[1]):
            patch["data"][k]["x"].extend(np.asarray(cols["epoch"]).tolist())
            patch["data"][k]["y"].extend(D[:, k].tolist())
        i = D.shape[1]
    if latest and latest.get("p0") is not None:
        for k, row in enumerate(np.atleast_2d(latest["p0"])):
            patch["data"][i + k]["y"] = list(row)
            patch["data"][i + k]["name"] = f"p0 (epoch {latest['epoch']})"
        i += np.atleast_2d(latest["p0"]).shape[0]
    if latest and latest.get("fr") is not None:
        arr = np.asarray(latest["fr"], float)
        arr = arr.reshape((-1,) + arr.shape[-2:])
        for n in range(arr.shape[2]):
            patch["data"][i + n]["y"] = arr[0, :, n].tolist()
            patch["data"][i + n]["name"] = f"neuron {n + 1} (epoch {latest['epoch']})"
    return patch


def progress(record, first=None, last=None):
    """(percent, bar label, text) of a run from its first and last epoch records."""
    E = int(record["settings"].get("max_epochs") or 1)
    done = last["epoch"] if last else 0
    if last:
        elapsed = last["elapsed"]
        if record["status"] in ACTIVE_STATUSES:
            elapsed += max(0.0, time.time() - last.get("time", time.time()))
    elif record.get("started"):
        elapsed = (record.get("finished") or time.time()) - record["started"]
    else:
        elapsed = 0.0
    text = f"epoch {done} of {E} · elapsed {fmt_seconds(elapsed)}"
    if record["status"] == "queued":
        text = record.get("message") or "queued"   # its place in line (jobs.observe)
    elif record["status"] in ACTIVE_STATUSES and first and last and done > 0:
        per = (last["elapsed"] - first["elapsed"]) / done
        text += f" · about {fmt_seconds(per * (E - done))} left"
    elif record["status"] in FINAL_STATUSES:
        text += f" · {record['status']}"
        if record.get("error"):
            text += f": {record['error']}"
    return 100.0 * done / E, f"{done}/{E}", text


def fmt_seconds(s: float, small: bool = False) -> str:
    """``1.5 s``, ``1 min 15 s``, ``2 h 05 min``; with ``small``, ``45 ms`` below 1 s."""
    s = max(0.0, float(s))
    if small and s < 1:
        return f"{s * 1000:.0f} ms" if s >= 0.001 else "< 1 ms"
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def rising(train, best=None, first=None, recent: int = 0):
    """Which recent epochs' training NLL stayed above its lowest earlier value.

    ``train`` are new training NLLs (None = missing); ``best``, ``first`` and
    ``recent`` carry on from earlier epochs. ``recent`` is a bit mask of the
    last :data:`RISING_WINDOW` epochs (lowest bit = newest; 1 = above the
    lowest value); a new lowest value clears it. A value within 0.1 % of the
    descent so far above the lowest counts as reaching it (a converged fit
    jitters). Returns ``(recent, best, first)``.
    """
    full = (1 << RISING_WINDOW) - 1
    for v in train:
        if v is None:
            continue
        if first is None:
            first = best = v
            continue
        tol = 1e-3 * max(first - best, 0.0) + 1e-9 * abs(best)
        if v < best:
            recent, best = 0, v
        else:
            recent = ((recent << 1) | (v > best + tol)) & full
    return recent, best, first


def rising_warning(recent: int) -> str:
    """The live warning of a training NLL that keeps rising or zig-zags ('' when it does not)."""
    n = bin(recent).count("1")
    if n < RISING_EPOCHS:
        return ""
    return (f"The training NLL stayed above its lowest value in {n} of the last {RISING_WINDOW} "
            "epochs (it rises or zig-zags): the learning rate is probably too large. Cancel and "
            "start again with a smaller one (e.g. 10 times smaller).")


def display_stride(record) -> int:
    """Every how many epochs a live view draws a point: a run of up to :data:`MAX_POINTS`
    epochs draws them all, a longer one about MAX_POINTS (50,000 epochs: every 10th), so
    the browser redraws a curve of bounded size at each poll however long the fit."""
    return max(1, -(-int(record["settings"].get("max_epochs") or 1) // MAX_POINTS))


def thinned(cols, stride: int, keep_last: bool):
    """The columns' rows of epochs that are multiples of ``stride`` (and the last row
    with ``keep_last``: a finished run's curve ends at its last epoch)."""
    if stride <= 1 or not len(cols["epoch"]):
        return cols
    epochs = np.asarray(cols["epoch"])
    keep = epochs % stride == 0
    if keep_last:
        keep[-1] = True
    out = dict(cols)
    for key in ("epoch", "nll_train", "nll_val", "elapsed", "time", "D"):
        if out.get(key) is not None and len(np.shape(out[key])):
            out[key] = np.asarray(out[key])[keep]
    return out


def _nll_patch(new_curves, cursor, arrow_index=None, shown=None):
    """Extend the NLL curves by the new epochs (:func:`curves`); returns the patch
    and the cursor with its new baseline, best epoch and rising mask.

    Overlay view (``arrow_index`` None): trace 2 and the layout shape mark the
    validation minimum. Paper view: the layout annotation ``arrow_index``.
    ``shown``: the curves drawn (thinned, :func:`thinned`); the minimum and the
    rising mask come from every new epoch.
    """
    es, tr, va = new_curves
    rel = bool(cursor.get("rel"))   # relative to the truth: the validation curve is not drawn
    base_t = figures.first_finite([cursor["base"][0]] + tr)
    base_v = figures.first_finite([cursor["base"][1]] + va)
    patch = Patch()
    s_es, s_tr, s_va = shown or new_curves
    patch["data"][0]["x"].extend(s_es)
    patch["data"][0]["y"].extend(figures.nll_y(s_tr, base_t, cursor.get("gt"), rel))
    if not rel:
        patch["data"][1]["x"].extend(s_es)
        patch["data"][1]["y"].extend(figures.shifted(s_va, base_v))
    best_e, best_v = cursor["best"]
    for e, v in zip(es, va):
        if v is not None and (best_v is None or v < best_v):
            best_e, best_v = e, v
    if best_e is not None and base_v is not None and not rel:
        if arrow_index is None:
            patch["data"][2]["x"] = [best_e]
            patch["data"][2]["y"] = [best_v - base_v]
            patch["layout"]["shapes"] = figures.min_marker_shape(best_e)
        else:
            patch["layout"]["annotations"][arrow_index] = figures.paper_arrow(best_e, best_v - base_v)
    recent, best_t, first_t = rising(tr, *cursor["rise"][1:], recent=cursor["rise"][0])
    return patch, dict(cursor, base=[base_t, base_v], best=[best_e, best_v],
                       rise=[recent, best_t, first_t])


def _paper_patch(patch, cursor, new_snaps, shown, latest):
    """Add the new snapshots ({epoch: peq}) to their panels and move the dashed
    "now" curve to the first panel not reached (epochs below ``shown`` are)."""
    idx = cursor["paper"]
    panels = idx["panels"]
    for e, peq in new_snaps.items():
        if e in panels:
            j = panels.index(e)
            for k, row in enumerate(np.atleast_2d(peq)[:len(idx["fit"][j])]):
                patch["data"][idx["fit"][j][k]]["y"] = figures.phi(row)
    reached = set(idx["reached"]) | {p for p in panels if p < shown}
    now_at = next((j for j, p in enumerate(panels) if p not in reached), None)
    for j, traces in enumerate(idx["now"]):
        rows = np.atleast_2d(latest["peq"]) if latest and j == now_at else []
        for k, i in enumerate(traces):
            patch["data"][i]["y"] = figures.phi(rows[k]) if k < len(rows) else []
            patch["data"][i]["showlegend"] = j == now_at and k == 0
            if latest:
                patch["data"][i]["name"] = figures.now_label(latest["epoch"])
    return dict(idx, reached=sorted(reached))


def _below(cols, upto: int):
    """The columns' rows of epochs below ``upto``."""
    keep = np.asarray(cols["epoch"]) < upto
    if keep.all():
        return cols
    cut = dict(cols)
    for key in ("epoch", "nll_train", "nll_val", "elapsed", "time", "D"):
        if cut.get(key) is not None and len(np.shape(cut[key])):
            cut[key] = np.asarray(cut[key])[keep]
    return cut


def _draw(store, record, cols, new, upto, latest, view, scale=SHIFTED):
    """The figures of a run drawn whole (the first poll of a view) and the cursor."""
    run_id = record["id"]
    out = {"nll": None, "potential": None, "paper": None, "params": None}
    es, tr, va = new
    result = store.get_result(run_id) or {}
    gt, out["note"] = yardstick(store, record, result, scale)
    cursor = {"run_id": run_id, "view": view, "scale": scale, "n": upto,
              "best": list(figures.best_epoch(es, va)),
              "base": [figures.first_finite(tr), figures.first_finite(va)],
              "rise": list(rising(tr)), "drawn": "x" in result,
              "gt": gt, "rel": scale == RELATIVE and gt is not None,
              "first": _row(cols, 0), "last": _row(cols, -1)}
    if not cursor["drawn"]:
        waiting = theme.message_figure("Waiting for the first epoch…", 380)
        out.update(nll=figures.nll_figure(es, tr, va), potential=waiting, paper=waiting,
                   params=theme.message_figure("", 200))
        cursor["rel"] = False
    elif view == PAPER:
        snaps = snapshots(store, record, upto)
        out["paper"] = paper(store, record, cols, snaps, latest, result, scale)
        truth = _truth(store, record, result)
        panels = figures.paper_panels(_wanted(record))
        index = figures.paper_trace_index(len(panels),
                                          len(np.atleast_2d(result["init"]["peq"])),
                                          0 if truth is None else len(np.atleast_2d(truth[1])))
        cursor["paper"] = dict(index, panels=panels, arrow=len(panels) + 1,
                               reached=[p for p in panels if p < cursor["n"]])
        out["params"] = params(record, cols, latest, result)
    else:
        out["nll"] = nll(store, record, cols, result, scale)
        out["potential"] = potential(store, record, snapshots(store, record, upto), latest,
                                     result)
        cursor["pot"] = _potential_index(out["potential"],
                                         _drawn_potential(store, record, upto, latest), latest)
        out["params"] = params(record, cols, latest, result)
    return out, cursor


#: Whole drawings of a run shared by the viewers who open it at the same moment (a
#: class following one fit): (store, run, view, its state) -> (figures, cursor).
_DRAWN: "OrderedDict[tuple, tuple]" = OrderedDict()
_DRAWN_LOCK = threading.Lock()
_DRAWN_SIZE = 32


_DRAWING: dict[tuple, threading.Event] = {}


def _drawn(store, record, cols, new, upto, latest, view, total, scale=SHIFTED):
    """:func:`_draw`, once per state of a run: viewers who ask while it is being
    drawn wait for that drawing (a class opening the page at once)."""
    key = (store.location, record["id"], view, scale, record["status"], record.get("message"),
           record.get("error"), total, upto, latest["epoch"] if latest else None)
    figs, cursor = _shared(key, lambda: _draw(store, record, cols, new, upto, latest, view,
                                                  scale))
    return dict(figs), dict(cursor)


def _shared(key, build):
    """``build()``, once per ``key`` among the requests of this process: those who
    ask while it is being built wait for it (bounded); the last few are kept."""
    for _ in range(2):
        with _DRAWN_LOCK:
            hit = _DRAWN.get(key)
            busy = None if hit is not None else _DRAWING.get(key)
            if hit is None and busy is None:
                _DRAWING[key] = threading.Event()
        if hit is not None:
            return hit
        if busy is not None:             # another request builds it: wait (bounded)
            busy.wait(30)
            continue
        try:
            hit = build()
            with _DRAWN_LOCK:
                _DRAWN[key] = hit
                while len(_DRAWN) > _DRAWN_SIZE:
                    _DRAWN.popitem(last=False)
            return hit
        finally:
            with _DRAWN_LOCK:
                _DRAWING.pop(key).set()
    return build()                       # the other build failed or took too long


@functools.lru_cache(maxsize=1)
def _waiting() -> dict:
    """The figures of a run without an epoch yet (the same for every run)."""
    waiting = theme.message_figure("Waiting for the first epoch…", 380)
    return dict(nll=figures.nll_figure([], [], []), potential=waiting, paper=waiting,
                params=theme.message_figure("", 200))


#: How often the page polls a run, ms: often until its first epoch shows (a fit's
#: first epoch lands a fraction of a second after Start), then at the usual pace.
POLL_FIRST_MS, POLL_MS = 150, 500


def poll_interval(out: dict) -> int:
    """The polling period for a run as :func:`poll` left it."""
    waiting = out["record"]["status"] in ACTIVE_STATUSES and not out["cursor"]["n"]
    return POLL_FIRST_MS if waiting else POLL_MS


def poll(store, run_id, cursor, view: str = OVERLAY, scale: str = SHIFTED):
    """Everything the live view needs since ``cursor`` (None = rebuild).

    The job layer says what became of the run (``jobs.observe``). Reads the
    latest parameters first and then the NLL columns of the new epochs only
    (``read_columns`` from the cursor: one or two chunks), up to the latest
    parameters' epoch (the worker appends an epoch before it publishes its
    parameters), so the curves, the "now" legend and the progress text name
    the same epoch; plus single keys (the snapshots, the result). Epoch
    record k is epoch k. Returns a dict: ``record``, ``nll`` and
    ``potential`` (overlay view) or ``paper`` (paper view) — a full figure, a
    ``Patch`` or None —, ``params``, ``progress``, ``cursor`` (JSON: ``n``
    epochs shown, the curves' ``base`` and ``best``, the rising mask, the
    ``first`` and ``last`` epoch's times, the paper's trace index, whether the
    figures were ``drawn`` with the run's grid or say it is ``waiting`` for
    its first epoch, the NLL ``scale``, the ground truth's NLL ``gt`` and
    whether the curve is ``rel``ative to it), ``final`` (nothing more will
    come), ``warning``, ``note`` (why there is no ground-truth line: text on
    a fresh draw, else None).

    While a run has no epoch yet, only the first poll draws (the "waiting"
    figures); the next ones return no figure, so that the fast polls before the
    first epoch stay cheap.
    """
    record = jobs.observe(store, run_id)   # the job layer says what became of it
    if record is None or record["kind"] != "fit":
        return None
    latest = store.get_latest(run_id)
    total = store.n_epochs(run_id)
    # a finished run writes nothing more: show every epoch it has
    upto = min(total, latest["epoch"] + 1) if latest and record["status"] in ACTIVE_STATUSES \
        else total
    fresh = (not cursor or cursor.get("run_id") != run_id or not cursor["n"]
             or "last" not in cursor or cursor.get("view") != view
             or cursor.get("scale", SHIFTED) != scale)
    if not fresh and not cursor.get("drawn", True):   # drawn before the fit had its grid
        fresh = "x" in (store.get_result(run_id) or {})
    start = 0 if fresh else cursor["n"]
    cols = _below(store.read_columns(run_id, start, max_points=MAX_POINTS if fresh else None),
                  upto)
    new = curves(cols)
    out = {"record": record, "nll": None, "potential": None, "paper": None, "params": None,
           "note": None}
    if fresh and not new[0]:   # nothing recorded yet: say so once, then wait cheaply
        shown = bool(cursor) and cursor.get("run_id") == run_id and cursor.get("view") == view \
            and cursor.get("waiting") and cursor.get("scale", SHIFTED) == scale
        cursor = {"run_id": run_id, "view": view, "scale": scale, "n": 0, "waiting": True,
                  "drawn": False, "best": [None, None], "base": [None, None],
                  "rise": list(rising([])), "first": None, "last": None}
        if not shown:
            out.update(_waiting(), note="")
    elif fresh:
        figs, cursor = _drawn(store, record, cols, new, upto, latest, view, total, scale)
        out.update(figs)
    elif new[0]:
        # a long run draws every k-th epoch (and its last one when it has ended)
        shown_cols = thinned(cols, display_stride(record),
                             record["status"] in FINAL_STATUSES and upto == total)
        shown = curves(shown_cols)
        if view == PAPER and cursor["drawn"]:
            patch, cursor = _nll_patch(new, cursor, cursor["paper"]["arrow"], shown)
            fresh_snaps = snapshots(store, record, upto, since=cursor["n"])
            cursor["paper"] = _paper_patch(patch, cursor, fresh_snaps, upto, latest)
            out["paper"] = patch
        elif view == PAPER:   # still a message: only the cursor moves on
            cursor = _nll_patch(new, cursor)[1]
        else:
            out["nll"], cursor = _nll_patch(new, cursor, shown=shown)
            if cursor["drawn"]:   # the dashed "now" curve moves; snapshots are added rarely
                out["potential"], cursor = _potential_update(store, record, cursor, upto,
                                                             latest)
        if cursor["drawn"]:
            out["params"] = params_patch(record, shown_cols, latest)
        cursor = dict(cursor, n=upto, last=_row(cols, -1))
    out["final"] = record["status"] in FINAL_STATUSES and total == cursor["n"]
    out["progress"] = progress(record, cursor["first"], cursor["last"])
    out["warning"] = rising_warning(cursor["rise"][0])
    out["cursor"] = cursor
    return out
