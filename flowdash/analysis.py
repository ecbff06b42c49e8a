"""The feature consistency analysis of a model selection, on what its fits recorded so far.

No dash import: the Model selection page, scripts and tests use it alike.
The analysis runs in the calling process (a web server's request, a
script), never as a queued job: while both fits of a selection run on two
workers a queued analysis would wait behind them. An :class:`Analyst` holds
what makes repeated analyses cheap, bounded in memory:

* a :class:`PathReader` reads each fit's recorded models and NLL columns
  once and then only what is new (``store.model_epochs`` /
  ``read_models`` / ``read_columns`` from where it stopped);
* a core :class:`~flowdash.core.selection.ModelCache` memoises the
  per-model spectra, FC values and densities (a re-analysis with other
  settings, or of paths that grew, computes only what is new);
* the last results per selection: a change of the thresholds only
  re-selects on the divergence curve already computed.

Both paths are cut to the epochs both fits have reached, so a running
selection is analysed on the same span of both fits ("analysed epochs
0–1234 of 50,000; fits running").

From a script::

    from flowdash.analysis import Analyst
    analysis = Analyst().analyse(store, sel_id, {"JS_thres": 0.002, "FC_stride": 5})
    analysis.result.selected_epochs, analysis.truth_fc
    blob, text = export_npz(analysis), export_json(analysis)
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from . import jobs
from .settings import SettingsError, parse_number
from .store import ACTIVE_STATUSES

#: The FCA settings a page or script may give, in order, with their kind and the
#: 2020 defaults (``FCASettings.paper_2020``; the 2024 ones differ in
#: threshold, smoothing and offset).
FCA_FIELDS = (("JS_thres", float), ("FC_stride", int), ("smoothing_kernel", int),
              ("epoch_offset", int), ("num_models", int), ("terminal_time", float),
              ("number_of_timesteps", int), ("late_JS_thres", float))
#: Points per curve of the per-condition NLL panels (thinned for display).
CURVE_POINTS = 1500


def fca_settings(values: dict | None, non_equilibrium: bool | None = None):
    """``FCASettings`` from field values (text or numbers); raises SettingsError per field.

    Blank fields take the paper's default (2024 for non-equilibrium paths,
    2020 otherwise). The limits are the core's (``FCASettings`` and its
    ``SettingError.setting``).
    """
    from .core.selection import FCASettings, SettingError

    base = FCASettings.paper_2024() if non_equilibrium else FCASettings.paper_2020()
    given, errors = {}, {}
    for name, kind in FCA_FIELDS:
        value = (values or {}).get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            given[name] = parse_number(value, kind)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise SettingsError(errors)
    try:
        return dataclasses.replace(base, **given)
    except SettingError as exc:
        raise SettingsError({exc.setting: str(exc)}) from None


# ---------------------------------------------------------------------------
# reading what the fits recorded
# ---------------------------------------------------------------------------
@dataclass
class RunPath:
    """What one fit recorded so far (grown in place by :class:`PathReader`)."""

    run_id: str
    epochs: list = field(default_factory=list)         # recorded models' epochs
    arrays: dict = field(default_factory=dict)         # name -> list of arrays
    display_only: bool = False                         # no recorded models: float32 snapshots
    n_cols: int = 0
    col_epoch: list = field(default_factory=list)
    col_train: list = field(default_factory=list)      # arrays (n, K)
    col_val: list = field(default_factory=list)
    record: dict | None = None
    init: dict | None = None
    nbytes: int = 0
    _stacked: dict = field(default_factory=dict)
    _paths: dict = field(default_factory=dict)   # (records, upto) -> (FitPath, spec)

    def stacked(self, name: str, n: int) -> np.ndarray | None:
        """The first ``n`` records of ``name`` as one array (R, ...), or None."""
        values = self.arrays.get(name)
        if not values or any(v is None for v in values[:n]):
            return None
        key = (name, n)
        if key not in self._stacked:
            self._stacked = {k: v for k, v in self._stacked.items() if k[0] != name}
            self._stacked[key] = np.stack(values[:n])
        return self._stacked[key]

    def columns(self, key: str) -> np.ndarray:
        parts = self.col_train if key == "train" else self.col_val
        parts = [p for p in parts if p is not None]
        return np.concatenate(parts) if parts else np.zeros((0, 0))


class PathReader:
    """Recorded models and NLL columns of fit runs, read once, then only what is new.

    Keeps at most ``max_bytes`` of arrays (least recently used runs go first).
    """

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes = int(max_bytes)
        self._runs: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def read(self, store, run_id: str) -> RunPath:
        with self._lock:
            path = self._runs.pop(run_id, None) or RunPath(run_id)
            self._runs[run_id] = path
            try:
                self._grow(store, path)
            except Exception:
                self._runs.pop(run_id, None)
                raise
            while sum(p.nbytes for p in self._runs.values()) > self.max_bytes and len(self._runs) > 1:
                self._runs.popitem(last=False)
            return path

    @staticmethod
    def _grow(store, path: RunPath) -> None:
        run_id = path.run_id
        path.record = store.get_run(run_id)
        if path.record is None:
            raise ValueError(f"the fit run {run_id} was deleted")
        if path.init is None:
            result = store.get_result(run_id) or {}
            path.init = result.get("init")
        epochs = store.model_epochs(run_id)
        path.display_only = not epochs
        if path.display_only:   # a fit that recorded no models: its display snapshots
            epochs = store.snapshot_epochs(run_id)
        if epochs[:len(path.epochs)] != path.epochs:   # the log was replaced: start again
            path.epochs, path.arrays, path.nbytes, path._stacked = [], {}, 0, {}
            path._paths = {}
        new = epochs[len(path.epochs):]
        if new:
            models = (store.read_models(run_id, new) if not path.display_only else
                      [store.read_snapshot(run_id, k, as_lists=False) for k in new])
            for k, m in zip(new, models):
                if m is None:   # unreadable: stop here, the next read tries again
                    break
                path.epochs.append(int(k))
                for name in ("peq", "p0", "D", "fr"):
                    value = m.get(name)
                    value = None if value is None else np.asarray(value, float)
                    path.arrays.setdefault(name, []).append(value)
                    path.nbytes += 0 if value is None else value.nbytes
        n = store.n_epochs(run_id)
        if n > path.n_cols:
            cols = store.read_columns(run_id, path.n_cols)
            got = len(cols["epoch"])
            if got:
                path.col_epoch.extend(np.asarray(cols["epoch"]).tolist())
                path.col_train.append(np.asarray(cols["nll_train"], float))
                path.col_val.append(None if cols["nll_val"] is None else
                                    np.asarray(cols["nll_val"], float))
                path.n_cols += got


# ---------------------------------------------------------------------------
# the analysis
# ---------------------------------------------------------------------------
@dataclass
class Half:
    """One fit of a selection as the analysis saw it."""

    index: int
    run_id: str
    name: str
    status: str
    max_epochs: int
    last_epoch: int            # last recorded model's epoch (-1: none yet)
    n_records: int             # recorded models within the analysed span
    display_only: bool


@dataclass
class Analysis:
    """Everything a page, an export or a script shows of one analysis.

    ``result`` is the core's :class:`~flowdash.core.selection.FCAResult`
    (None while waiting or on an error). ``upto``: the last analysed epoch
    (both paths cut there); ``running``: a fit is still queued or running;
    ``waiting``: recorded models still needed before the analysis can run;
    ``errors``: {FCA setting: message}; ``error``: a message about the pair
    (e.g. the paths cannot be compared). Curves (numpy arrays):
    ``epochs1``/``FC1`` and ``epochs2``/``FC2`` (analysed models of each
    half), ``val1``/``val2`` (validation NLL summed over datasamples at those
    epochs, NaN without validation data), ``selected_models`` (per half:
    peq, p0, D, fr as analysed: half 2 mirrored when ``result.invert``),
    ``truth`` (``{"x", "peq", "p0", "D", "fr"}`` of the ground truth or None),
    ``truth_fc``, ``per_condition`` (epochs and relative NLL per condition per
    half).
    """

    selection: dict
    halves: list
    settings: object
    upto: int = -1
    running: bool = False
    waiting: int | None = None
    errors: dict = field(default_factory=dict)
    error: str | None = None
    result: object = None
    non_equilibrium: bool = False
    x: np.ndarray | None = None
    epochs1: np.ndarray | None = None
    epochs2: np.ndarray | None = None
    FC1: np.ndarray | None = None
    FC2: np.ndarray | None = None
    val1: np.ndarray | None = None
    val2: np.ndarray | None = None
    selected_models: list = field(default_factory=list)
    truth: dict | None = None
    truth_fc: float | None = None
    per_condition: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status_text(self) -> str:
        """"analysed epochs 0–1234 of 50,000; fits running" and the like."""
        total = max((h.max_epochs for h in self.halves), default=0)
        if self.upto < 0:
            return f"no recorded models yet (0 of {total:,} epochs)" + \
                ("; fits running" if self.running else "")
        text = f"analysed epochs 0–{self.upto:,} of {total:,}"
        statuses = sorted({h.status for h in self.halves})
        if self.running:
            return text + "; fits running"
        return text + f"; fits {' and '.join(statuses)}"


class Analyst:
    """Runs analyses of selections in this process, with bounded memory.

    Parameters
    ----------
    max_path_bytes : int
        Recorded models kept in memory (all runs).
    max_cache_bytes : int
        The core ModelCache's spectra and densities (each half of it).
    """

    def __init__(self, max_path_bytes: int = 512 * 2**20, max_cache_bytes: int = 128 * 2**20):
        from .core.selection import ModelCache

        self.reader = PathReader(max_path_bytes)
        self.cache = ModelCache(max_cache_bytes, max_cache_bytes)
        self._results: OrderedDict = OrderedDict()
        self._truth: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def analyse(self, store, sel_id: str, values: dict | None = None) -> Analysis:
        """The analysis of selection ``sel_id`` with FCA settings ``values`` (field
        values, see :func:`fca_settings`), on the epochs both fits recorded so far.

        Raises ValueError for an unknown selection. Setting errors come back
        in ``Analysis.errors``, a pair that cannot be compared in ``error``.
        """
        t0 = time.perf_counter()
        with self._lock:
            out = self._analyse(store, sel_id, values)
        out.seconds = time.perf_counter() - t0
        return out

    # -- pieces -----------------------------------------------------------------
    def _analyse(self, store, sel_id, values) -> Analysis:
        from .core.selection import FeatureConsistency, SettingError

        selection = store.get_selection(sel_id)
        if selection is None:
            raise ValueError(f"there is no selection {str(sel_id)[:40]!r}")
        if len(selection.get("fits") or []) != 2:
            return Analysis(selection, [], None, error="this selection's fits were never queued")
        paths, halves = [], []
        for index, run_id in enumerate(selection["fits"]):
            try:
                path = self.reader.read(store, run_id)
            except ValueError as exc:
                return Analysis(selection, halves, None, error=str(exc))
            paths.append(path)
            rec = path.record
            halves.append(Half(index, run_id, rec["name"], rec["status"],
                               int(rec["settings"].get("max_epochs") or 0),
                               path.epochs[-1] if path.epochs else -1, 0, path.display_only))
        running = any(h.status in ACTIVE_STATUSES for h in halves)
        try:
            built = [self._fit_path(store, p) for p in paths]
        except ValueError as exc:
            return Analysis(selection, halves, None, running=running, error=str(exc))
        non_eq = built[0] is not None and built[0][0].non_equilibrium
        out = Analysis(selection, halves, None, running=running, non_equilibrium=bool(non_eq))
        try:
            settings = fca_settings(values, non_eq)
        except SettingsError as exc:
            out.errors = exc.errors
            return out
        out.settings = settings
        if any(b is None for b in built):
            out.waiting = 2
            return out
        upto = min(built[0][0].epochs[-1], built[1][0].epochs[-1])
        cut = [self._cut(path, p, upto) for path, (p, _) in zip(paths, built)]
        out.upto = int(upto)
        for h, p in zip(halves, cut):
            h.n_records = p.n_records
        needed = max(2, settings.FC_stride + 1, settings.smoothing_kernel, settings.epoch_offset + 2)
        have = min(p.n_records for p in cut)
        if running and have < needed <= settings.num_models:
            out.waiting = needed - have
            return out
        key = (sel_id, tuple(int(p.epochs[-1]) for p in cut), tuple(p.n_records for p in cut),
               dataclasses.replace(settings, JS_thres=1.0, late_JS_thres=1.0))
        try:
            result = self._memo(key, settings, lambda: FeatureConsistency(
                cut[0], cut[1], self.cache).analyse(settings))
        except SettingError as exc:
            out.errors = {exc.setting: str(exc)}
            return out
        except ValueError as exc:   # the pair cannot be compared (the core says why)
            out.error = str(exc)
            return out
        out.result = result
        self._curves(out, paths, cut, built)
        out.truth, out.truth_fc = self._truth_of(store, selection, paths[0], cut[0], settings)
        return out

    def _memo(self, key, settings, compute):
        """The FCA of ``key`` (everything but the thresholds); a new threshold only re-selects."""
        from .core.selection import EARLY_FC_GAP

        base = self._results.get(key)
        if base is None:
            base = compute()
            self._results[key] = base
            while len(self._results) > 16:
                self._results.popitem(last=False)
        else:
            self._results.move_to_end(key)
        if (base.settings.JS_thres, base.settings.late_JS_thres) == \
                (settings.JS_thres, settings.late_JS_thres):
            return base
        selected, at_once = base.select(settings.JS_thres)
        late, _ = base.select(settings.late_JS_thres)
        early = int(np.argmax(base.FCs1 > base.FCs1[selected] - EARLY_FC_GAP))
        return dataclasses.replace(base, selected=selected, crossed_at_once=at_once, late=late,
                                   early=early, settings=settings)

    @staticmethod
    def _cut(path: RunPath, fitpath, upto: int):
        """The path's records up to epoch ``upto`` (memoised: a FitPath copies and checks
        its arrays, which a poll with nothing new should not pay again)."""
        n = int(np.searchsorted(fitpath.epochs, upto, side="right"))
        if n == fitpath.n_records:
            return fitpath
        key = ("cut", fitpath.n_records, n)
        if key not in path._paths:
            path._paths = {k: v for k, v in path._paths.items() if k[0] != "cut"}
            path._paths[key] = fitpath.head(n)
        return path._paths[key]

    def _fit_path(self, store, path: RunPath):
        """(FitPath, model layout) of what a fit recorded, or None with no record yet
        (memoised per record count)."""
        if not path.epochs or path.init is None:
            return None
        key = ("full", len(path.epochs))
        if key not in path._paths:
            path._paths = {k: v for k, v in path._paths.items() if k[0] != "full"}
            path._paths[key] = self._new_fit_path(store, path)
        return path._paths[key]

    def _new_fit_path(self, store, path: RunPath):
        from .core.model import resolve_boundary
        from .core.selection import FitPath, spectrum_mode

        rec = path.record
        spec = jobs.fit_initial_spec(store, rec)   # the grid and boundary the fit used
        if spec is None:
            raise ValueError(f"the initial model of “{rec['name']}” is gone")
        grid = _grid(spec)
        conditions, _ = resolve_boundary(spec.get("boundary_mode", "reflecting"),
                                         spec.get("boundary_conditions"),
                                         spec.get("absorption_step"))
        n = len(path.epochs)
        init = path.init
        peq = path.stacked("peq", n)
        D = path.stacked("D", n)
        if D is None:
            D = np.tile(np.atleast_1d(np.asarray(init["D"], float)), (n, 1))
        p0 = path.stacked("p0", n)
        if p0 is None and init.get("p0") is not None:   # not fitted: the initial p0 throughout
            p0 = np.tile(np.atleast_2d(np.asarray(init["p0"], float)), (n, 1, 1))
        fr = path.stacked("fr", n)
        fitted = frozenset(rec["settings"].get("params_to_opt") or ["F"])
        fitpath = FitPath(grid, spectrum_mode(conditions), np.asarray(path.epochs), peq,
                          p0, D, fr, fitted)
        return fitpath, spec

    def _curves(self, out: Analysis, paths, cut, built) -> None:
        r = out.result
        p1, p2 = cut
        out.x = np.asarray(p1.grid.x)
        out.epochs1 = np.asarray(r.epochs1)
        out.epochs2 = np.asarray(p2.epochs[r.analysed_2])
        out.FC1, out.FC2 = np.asarray(r.FCs1), np.asarray(r.FCs2)
        out.val1 = _val_at(paths[0], out.epochs1)
        out.val2 = _val_at(paths[1], out.epochs2)
        s1, s2 = r.selected_records
        out.selected_models = [_model_at(paths[0], p1, s1, False),
                               _model_at(paths[1], p2, s2, r.invert)]
        out.per_condition = [_relative(p, out.upto) for p in paths]

    def _truth_of(self, store, selection, path: RunPath, fitpath, settings):
        """The ground truth's arrays and FC (the first half's dataset), memoised."""
        from .core.selection import fc_equilibrium, fc_nonequilibrium, spectrum_mode

        dataset = path.record["settings"].get("dataset")
        meta = store.get_dataset_meta(dataset) or {}
        if not meta.get("model_spec"):
            return None, None
        key = (dataset, meta.get("saved"), fitpath.non_equilibrium, settings.terminal_time)
        if key not in self._truth:
            model = jobs.truth_model(meta)
            if model is None:
                return None, None
            arrays = {"x": np.asarray(model.grid.x), "peq": np.asarray(model.peq),
                      "p0": None if model.p0 is None else np.asarray(model.p0),
                      "D": np.asarray(model.D), "fr": np.asarray(model.fr)}
            try:
                if fitpath.non_equilibrium:
                    fc = fc_nonequilibrium(model.grid, model.peq,
                                           model.peq if model.p0 is None else model.p0, model.D,
                                           spectrum_mode(model.boundary_conditions),
                                           settings.terminal_time)
                else:
                    fc = fc_equilibrium(model.grid, model.peq)
            except ValueError:
                fc = None
            self._truth[key] = (arrays, fc)
            while len(self._truth) > 8:
                self._truth.popitem(last=False)
        return self._truth[key]


def _grid(spec: dict):
    from .core.grid import Grid

    g = spec["grid"]
    return Grid(int(g["Np"]), int(g["Ne"]), float(g.get("xbegin", -1.0)), float(g.get("xend", 1.0)))


def _val_at(path: RunPath, epochs: np.ndarray) -> np.ndarray:
    """Validation NLL (summed over datasamples; training NLL without validation data) at epochs."""
    val, train = path.columns("val"), path.columns("train")
    curve = val if val.size and np.isfinite(val).any() else train
    out = np.full(len(epochs), np.nan)
    if curve.size:
        ok = np.asarray(epochs) < len(curve)
        out[ok] = curve[np.asarray(epochs)[ok]].sum(axis=1)
    return out


def _model_at(path: RunPath, fitpath, record: int, mirrored: bool) -> dict:
    """The full model of a record (fitted arrays from the path, the rest initial)."""
    init = path.init
    fr = fitpath.fr[record] if fitpath.fr is not None else np.asarray(init["fr"], float)
    fr = np.asarray(fr, float).reshape((-1,) + np.shape(fr)[-2:])
    model = {"epoch": int(fitpath.epochs[record]), "peq": np.asarray(fitpath.peq[record]),
             "p0": None if fitpath.p0 is None else np.asarray(fitpath.p0[record]),
             "D": np.asarray(fitpath.D[record]), "fr": fr, "mirrored": bool(mirrored)}
    if mirrored:   # drawn as the analysis compared it
        for name in ("peq", "p0", "fr"):
            if model[name] is not None:
                model[name] = np.flip(model[name], axis=1)
    return model


def _relative(path: RunPath, upto: int) -> dict:
    """Per condition: (NLL₀ − NLL)/|NLL₀| of the validation (else training) data, thinned."""
    val, train = path.columns("val"), path.columns("train")
    curve = val if val.size and np.isfinite(val).any() else train
    n = min(len(curve), upto + 1) if upto >= 0 else len(curve)
    if not n:
        return {"epochs": np.zeros(0, int), "relative": np.zeros((0, 0)), "validation": bool(val.size)}
    step = max(1, math.ceil(n / CURVE_POINTS))
    idx = np.unique(np.concatenate([np.arange(0, n, step), [n - 1]]))
    base = curve[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = (base[None, :] - curve[idx]) / np.abs(base)[None, :]
    return {"epochs": idx, "relative": rel, "validation": bool(val.size and np.isfinite(val).any())}


# ---------------------------------------------------------------------------
# saving and exporting
# ---------------------------------------------------------------------------
def selected_spec(store, analysis: Analysis, half: int) -> dict:
    """The selected model of half ``half`` (0 or 1) as a tabulated model spec.

    The model as that half fitted it (not mirrored), on its initial model's
    grid and boundary setting, with every parameter at full precision
    (float64 densities and D; rates as recorded). The spec names its origin
    (``source``). Raises ValueError when there is nothing selected.
    """
    from .core.model import tabulated_spec

    if analysis.result is None:
        raise ValueError("nothing is selected yet")
    run_id = analysis.selection["fits"][half]
    record = store.get_run(run_id)
    if record is None:
        raise ValueError("that fit was deleted")
    model = jobs.build_model(jobs.fit_initial_spec(store, record),
                             n_datasamples=_rows(analysis, half))
    m = analysis.selected_models[half]
    arrays = {k: m[k] for k in ("peq", "p0", "D", "fr")}
    if m["mirrored"]:
        for name in ("peq", "p0", "fr"):
            if arrays[name] is not None:
                arrays[name] = np.flip(arrays[name], axis=1)
    model = model.replace(peq=arrays["peq"], p0=arrays["p0"] if model.p0 is not None else None,
                          D=arrays["D"], fr=arrays["fr"])
    return tabulated_spec(model, source={"selection": analysis.selection["id"], "run": run_id,
                                         "half": half + 1, "epoch": m["epoch"]})


def _rows(analysis: Analysis, half: int) -> int:
    m = analysis.selected_models[half]
    return max(len(np.atleast_2d(m["peq"])), len(np.atleast_1d(m["D"])),
               1 if m["p0"] is None else len(np.atleast_2d(m["p0"])))


def save_selected(store, analysis: Analysis, half: int, name: str) -> str:
    """Save the selected model of a half under ``name`` (never overwrites).

    Raises ``store.NameTaken`` / ``InvalidValue`` (field 'name'),
    :class:`SettingsError` for a model beyond the caps (e.g. too many values
    to tabulate) or ValueError when nothing is selected.
    """
    return store.save_model(name, selected_spec(store, analysis, half))


def summary(analysis: Analysis) -> dict:
    """The analysis as plain JSON data: settings, selected epochs and positions, FC, JS."""
    r = analysis.result
    out = {"selection": {k: analysis.selection.get(k) for k in ("id", "name", "settings", "fits")},
           "halves": [dataclasses.asdict(h) for h in analysis.halves],
           "fca_settings": None if analysis.settings is None else dataclasses.asdict(analysis.settings),
           "analysed_upto_epoch": analysis.upto, "status": analysis.status_text,
           "ground_truth_fc": analysis.truth_fc}
    if r is not None:
        def pos(i):
            return {"position": int(i), "epoch_half1": int(r.epochs1[i]),
                    "epoch_half2": int(r.epochs2[i]), "FC": float(r.FCs1[i]),
                    "JS": float(r.JS[i])}
        out.update(selected=pos(r.selected), early=pos(r.early), late=pos(r.late),
                   crossed_at_once=bool(r.crossed_at_once), invert=bool(r.invert),
                   non_equilibrium=bool(r.non_equilibrium),
                   curves={"epochs1": analysis.epochs1.tolist(), "FC1": r.FCs1.tolist(),
                           "epochs2": analysis.epochs2.tolist(), "FC2": r.FCs2.tolist(),
                           "JS": r.JS.tolist(), "JS_raw": r.JS_raw.tolist(),
                           "matched_epochs2": r.epochs2.tolist(),
                           "val1": _nan_none(analysis.val1), "val2": _nan_none(analysis.val2)})
    return out


def _nan_none(a) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, float)]


def export_json(analysis: Analysis) -> str:
    """:func:`summary` as JSON text."""
    return json.dumps(summary(analysis), indent=2)


def export_npz(analysis: Analysis) -> bytes:
    """The analysis's arrays as ``.npz`` bytes (no pickles): FC and JS curves, epochs,
    record indices, the selected models of both halves (as analysed) and the ground truth."""
    r = analysis.result
    arrays = {"analysed_upto_epoch": np.array(analysis.upto)}
    if r is not None:
        arrays.update(FC1=r.FCs1, FC2=r.FCs2, JS=r.JS, JS_raw=r.JS_raw, epochs1=analysis.epochs1,
                      epochs2=analysis.epochs2, matched_epochs2=r.epochs2,
                      records1=r.min_inds_1, matched_records2=r.min_inds_2,
                      records2=r.analysed_2, val1=analysis.val1, val2=analysis.val2,
                      selected=np.array(r.selected), early=np.array(r.early),
                      late=np.array(r.late), invert=np.array(r.invert), x=analysis.x)
        for h, m in enumerate(analysis.selected_models, start=1):
            arrays[f"selected{h}_epoch"] = np.array(m["epoch"])
            for name in ("peq", "p0", "D", "fr"):
                if m[name] is not None:
                    arrays[f"selected{h}_{name}"] = np.asarray(m[name], float)
    if analysis.truth is not None:
        for name, value in analysis.truth.items():
            if value is not None:
                arrays[f"truth_{name}"] = np.asarray(value, float)
        if analysis.truth_fc is not None:
            arrays["truth_FC"] = np.array(analysis.truth_fc)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


__all__ = ["Analyst", "Analysis", "Half", "PathReader", "RunPath", "fca_settings", "FCA_FIELDS",
           "selected_spec", "save_selected", "summary", "export_json", "export_npz"]
