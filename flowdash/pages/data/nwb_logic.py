"""The Data page's NWB import form: files, form values <-> recipe, preview, save (no dash).

The form shows what a file holds (:meth:`NWBSession.summary` as a dict) and
collects *form values*, what the browser shows, numbers as text::

    {"units": [0, 1, ...], "start": "stim_onset_time", "start_offset": "0.12",
     "end_kind": "event" | "duration", "end": "response_time", "end_offset": "0",
     "duration": "1", "filters": [{"column", "op", "values", "low", "high", "other"}],
     "conditions": [{"column", "values"}], "halves": "even_odd", "seed": "0"}

Values of label and number columns travel as JSON text (``encode``), so
``"1"``, ``1`` and ``true`` stay apart. :func:`recipe_from_form` turns form
values into a core :class:`~flowdash.core.nwb.Recipe` and gives every problem
under its *control*: ``units``, ``start``, ``start_offset``, ``end``,
``end_offset``, ``duration``, ``filters:<i>``, ``conditions:<j>``,
``conditions``, ``halves``, ``seed``, ``file``, ``trials`` (no trial left:
the preview's own message) and ``name``. :func:`form_from_recipe` is its
inverse (the PMd button fills the form with ``PMD_RECIPE``).

Files: the recordings in the sample folder (``$FLOWDASH_SAMPLES``, default
``<repo>/../shared/data``) by name, or uploads, kept on the server under
their SHA-256 (``$FLOWDASH_UPLOADS``, default a private folder in the
temporary directory) so that the browser sends a file once; the form then
names it by its hash. Reading never executes anything from a file
(:func:`flowdash.core.nwb.read_nwb`).

Parsing happens in the request, not as a job: reading the 8.4 MB population
file and cutting it takes about 0.25 s (the upload's transfer takes longer),
the server answers requests on threads (one user's import does not hold up
another's), and a job would wait behind the fits that occupy the workers for
a preview the user is waiting for. The upload cap bounds the worst case.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from flowdash import jobs, settings
from flowdash.core.limits import InvalidValue

#: Sample recordings offered by name.
SAMPLES_ENV, UPLOADS_ENV = "FLOWDASH_SAMPLES", "FLOWDASH_UPLOADS"
#: The PMd file the PMd button opens (the single neuron of Genkin et al.).
PMD_FILE = "pmd_single_neuron_session.nwb"
#: Uploads kept on the server: at most this many bytes in all (oldest go first) ...
UPLOAD_CACHE_BYTES = 4 * settings.MAX_UPLOAD_BYTES
#: ... and for at most this long after their last use, s.
UPLOAD_MAX_AGE = 24 * 3600
#: Files read and kept parsed in this process (the form asks for previews often).
SESSION_CACHE = 3
#: Trials drawn per condition in the preview raster (evenly spread over the
#: trials sorted by window length).
MAX_RASTER_TRIALS = 60
#: PSTH bins covered by fewer trials are not drawn (a rate of one or two trials is noise).
MIN_PSTH_TRIALS = 10
#: Preview PSTH bin, s.
PSTH_BIN = 0.02
#: Form controls that get a message (see the module docstring).
CONTROLS = ("file", "units", "start", "start_offset", "end", "end_offset", "duration", "filters",
            "conditions", "halves", "seed", "trials", "name")
#: The core's recipe parts (InvalidValue.field) -> form control.
CONTROL_OF = {"window:start": "start", "window:end": "end", "units": "units", "halves": "halves",
              "conditions": "conditions", "trials": "trials", "file": "file", "seed": "seed"}
HALVES_TEXT = {"even_odd": "even/odd trials within each condition",
               "random": "random halves of each condition",
               "none": "none (all trials train, no validation)"}
OP_TEXT = {"in": "is one of", "range": "in the range", "same_as": "same as",
           "differs_from": "differs from"}

_SHA = re.compile(r"[0-9a-f]{64}")


# ---------------------------------------------------------------------------
# files: samples and uploads
# ---------------------------------------------------------------------------
def warm() -> None:
    """Import the NWB readers in the background (about 1 s, once per server process),
    so that the first file a user opens does not wait for it.

    pandas (which pynwb imports) is imported here first, before the thread: plotly
    looks pandas up in ``sys.modules`` whenever it builds a figure, and a request
    thread that found it half imported by this thread would fail. With pandas
    loaded, pynwb loads nothing else that plotly looks up."""
    import pandas  # noqa: F401

    def load():
        import pynwb  # noqa: F401
        from flowdash.core import nwb  # noqa: F401
    threading.Thread(target=load, name="nwb-warm", daemon=True).start()


def sample_dir() -> Path:
    env = os.environ.get(SAMPLES_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def sample_files() -> list[str]:
    """The ``.nwb`` files of the sample folder, by name."""
    try:
        return sorted(p.name for p in sample_dir().iterdir() if p.suffix == ".nwb" and p.is_file())
    except OSError:
        return []


def upload_dir() -> Path:
    env = os.environ.get(UPLOADS_ENV)
    path = Path(env) if env else Path(tempfile.gettempdir()) / f"flowdash-nwb-uploads-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def decode_upload(contents, filename) -> tuple[str, bytes]:
    """``(file name, bytes)`` of a dcc.Upload data URL, refused over the upload cap
    with the importer's message (before decoding)."""
    name = os.path.basename(str(filename or "uploaded.nwb")) or "uploaded.nwb"
    try:
        body = str(contents).split(",", 1)[1]
    except IndexError:
        raise InvalidValue("file", f"{name}: the upload could not be read") from None
    n = len(body) * 3 // 4 - body[-2:].count("=")
    if n > settings.MAX_UPLOAD_BYTES:
        raise InvalidValue("file", too_large(name, n))
    try:
        return name, base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue("file", f"{name}: the upload could not be read") from None


def too_large(name: str, n: int, cap: int | None = None) -> str:
    """The importer's message for a file over the cap (``core.nwb.read_nwb``)."""
    cap = settings.MAX_UPLOAD_BYTES if cap is None else cap
    return (f"{name} is {n / 2**20:.1f} MB ({n} bytes); files up to {cap / 2**20:.1f} MB "
            f"({cap} bytes) are accepted")


def keep_upload(raw: bytes) -> str:
    """Keep an uploaded file on the server; returns its SHA-256 (its name there)."""
    sha = hashlib.sha256(raw).hexdigest()
    folder = upload_dir()
    path = folder / f"{sha}.nwb"
    if not path.exists():
        tmp = folder / f".{sha}.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, path)
    os.utime(path)
    _evict(folder, keep=path)
    return sha


def _evict(folder: Path, keep: Path) -> None:
    """Drop uploads older than UPLOAD_MAX_AGE, then the oldest beyond UPLOAD_CACHE_BYTES."""
    try:
        files = sorted((p.stat().st_mtime, p.stat().st_size, p) for p in folder.glob("*.nwb"))
    except OSError:
        return
    total = sum(size for _, size, _ in files)
    now = time.time()
    for mtime, size, path in files:
        if path != keep and (now - mtime > UPLOAD_MAX_AGE or total > UPLOAD_CACHE_BYTES):
            try:
                path.unlink()
                total -= size
            except OSError:
                pass


def source_path(source: dict) -> Path:
    """The file a form source names: ``{"kind": "sample", "name": ...}`` (one of
    :func:`sample_files`) or ``{"kind": "upload", "sha256": ..., "name": ...}``."""
    kind = (source or {}).get("kind")
    if kind == "sample":
        name = source.get("name")
        if name not in sample_files():   # only listed names: no paths from the browser
            raise InvalidValue("file", f"there is no sample recording named {str(name)[:80]!r}; "
                                       f"samples: {', '.join(sample_files()) or 'none'}")
        return sample_dir() / name
    if kind == "upload":
        sha = source.get("sha256")
        path = upload_dir() / f"{sha}.nwb" if isinstance(sha, str) and _SHA.fullmatch(sha) else None
        if path is None or not path.exists():
            raise InvalidValue("file", f"{source.get('name') or 'the uploaded file'} is no longer on "
                                       "the server (uploads are kept a day); upload it again")
        os.utime(path)
        return path
    raise InvalidValue("file", "choose a sample recording or upload an .nwb file")


_sessions: OrderedDict = OrderedDict()
_sessions_lock = threading.Lock()


def open_session(source: dict):
    """The parsed file of a form source (:class:`~flowdash.core.nwb.NWBSession`),
    kept for the next previews of this process. Raises InvalidValue ("file")."""
    from flowdash.core.nwb import read_nwb

    path = source_path(source)
    key = (str(path), path.stat().st_mtime_ns)
    with _sessions_lock:
        if key in _sessions:
            _sessions.move_to_end(key)
            return _sessions[key]
    name = source.get("name") if source.get("kind") == "upload" else None
    try:
        session = read_nwb(path, name=name, max_bytes=settings.MAX_UPLOAD_BYTES)
    except ValueError as exc:
        raise InvalidValue("file", str(exc)) from None
    with _sessions_lock:
        _sessions[key] = session
        while len(_sessions) > SESSION_CACHE:
            _sessions.popitem(last=False)
    return session


def open_file(source: dict) -> dict:
    """Read a file for the form: ``{"source", "summary"}`` (JSON-able; the
    summary is :meth:`NWBSummary.to_dict`). Raises InvalidValue ("file")."""
    session = open_session(source)
    return {"source": dict(source, name=session.file_name), "summary": session.summary().to_dict()}


def upload(contents, filename) -> dict:
    """An uploaded file kept on the server and read: as :func:`open_file`."""
    from flowdash.core.nwb import read_nwb

    name, raw = decode_upload(contents, filename)
    try:   # read before keeping: a file that is not NWB is not kept
        read_nwb(raw, name=name, max_bytes=settings.MAX_UPLOAD_BYTES)
    except ValueError as exc:
        raise InvalidValue("file", str(exc)) from None
    return open_file({"kind": "upload", "sha256": keep_upload(raw), "name": name})


# ---------------------------------------------------------------------------
# form values <-> recipe
# ---------------------------------------------------------------------------
def encode(value) -> str:
    """A column value as a form option's value (JSON text)."""
    return json.dumps(value)


def decode(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise ValueError(f"{str(text)[:40]!r} is not a value of this column") from None


def column(summary: dict, name: str) -> dict | None:
    return next((c for c in summary["columns"] if c["name"] == name), None)


def columns_of(summary: dict, *kinds: str) -> list[str]:
    return [c["name"] for c in summary["columns"] if c["kind"] in kinds]


def value_options(summary: dict, name: str | None) -> list[dict]:
    """Dropdown options of a column's values, with their trial counts."""
    col = column(summary, name) if name else None
    if not col or not col.get("values"):
        return []
    return [{"label": f"{_fmt(v)} ({n} trials)", "value": encode(v)} for v, n in col["values"]]


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def unit_options(summary: dict) -> list[dict]:
    """Checklist options of the units: row, NWB id, spikes, mean rate."""
    return [{"label": f"unit {u['index']} (id {u['id']}): {u['n_spikes']:,} spikes, "
                      f"{u['rate']:.1f} Hz", "value": u["index"]} for u in summary["units"]]


def default_form(summary: dict) -> dict:
    """Form values for a newly opened file: all units, the whole trial
    (start_time to stop_time), no filters or conditions, even/odd halves."""
    events = columns_of(summary, "event")
    start = "start_time" if "start_time" in events else (events or [None])[0]
    end = "stop_time" if "stop_time" in events else (events or [None])[-1]
    return {"units": [u["index"] for u in summary["units"]], "start": start, "start_offset": "0",
            "end_kind": "event", "end": end, "end_offset": "0", "duration": "1",
            "filters": [], "conditions": [], "halves": "even_odd", "seed": "0"}


def form_from_recipe(recipe, summary: dict) -> dict:
    """Form values of a recipe (a Recipe or its dict form) on a file."""
    from flowdash.core.nwb import Recipe

    r = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe)
    w = r.window
    form = default_form(summary)
    form.update(
        units=list(r.units) if r.units is not None else [u["index"] for u in summary["units"]],
        start=w.start, start_offset=_num(w.start_offset),
        end_kind="event" if w.end else "duration", end=w.end or form["end"],
        end_offset=_num(w.end_offset), duration=_num(w.duration) if w.duration else form["duration"],
        filters=[{"column": f.column, "op": f.op, "values": [encode(v) for v in f.values],
                  "low": _num(f.low), "high": _num(f.high), "other": f.other} for f in r.filters],
        conditions=[{"column": c.column,
                     "values": [encode(v) for v in c.values] if c.values is not None else
                     [o["value"] for o in value_options(summary, c.column)]}
                    for c in r.conditions],
        halves=r.halves, seed=str(r.seed))
    return form


def _num(v) -> str:
    return "" if v is None else settings.format_number(v)


def new_filter(summary: dict) -> dict:
    """A filter row: the first label column, all its values (edit from there)."""
    labels = columns_of(summary, "label") or columns_of(summary, "number", "event")
    col = labels[0] if labels else None
    op = "in" if col and column(summary, col)["kind"] == "label" else "range"
    return {"column": col, "op": op, "values": [o["value"] for o in value_options(summary, col)],
            "low": "", "high": "", "other": None}


def new_condition(summary: dict, taken=()) -> dict:
    """A condition row: the first label (or few-valued number) column not taken."""
    cols = [c["name"] for c in summary["columns"]
            if c["kind"] in ("label", "number") and c.get("values") and c["name"] not in taken]
    col = cols[0] if cols else None
    return {"column": col, "values": [o["value"] for o in value_options(summary, col)]}


def _seconds(text, control, errors, *, positive=False, blank=None):
    text = "" if text is None else str(text).strip()
    if not text and blank is not None:
        return blank
    limit = settings.Limit(control, float, 0.0, lo_open=True) if positive else float
    try:
        return settings.parse_number(text, limit)
    except ValueError as exc:
        errors[control] = f"{exc} (seconds)"
        return None


def recipe_from_form(form: dict, summary: dict):
    """The recipe of form values on a file, and ``{control: message}``.

    Returns ``(Recipe or None, errors)``; the recipe names the file (name and
    SHA-256) so that it can be applied only to it.
    """
    from flowdash.core.nwb import ConditionColumn, Recipe, TrialFilter, Window

    errors: dict = {}
    units = form.get("units") or []
    if not units:
        errors["units"] = "choose at least one unit"
    start_off = _seconds(form.get("start_offset"), "start_offset", errors, blank=0.0)
    if not form.get("start"):
        errors["start"] = "choose the event column each window starts from"
    window = None
    if form.get("end_kind") == "duration":
        duration = _seconds(form.get("duration"), "duration", errors, positive=True)
        end, end_off = None, 0.0
    else:
        duration = None
        end_off = _seconds(form.get("end_offset"), "end_offset", errors, blank=0.0)
        end = form.get("end")
        if not end:
            errors["end"] = "choose the event column each window ends at"
    if not {"start", "start_offset", "end", "end_offset", "duration"} & set(errors):
        try:
            window = Window(form["start"], start_off, end, end_off, duration)
        except (TypeError, ValueError) as exc:
            errors["duration" if duration is not None else "end"] = str(exc)
    filters = []
    for i, f in enumerate(form.get("filters") or []):
        try:
            filters.append(_filter(f, TrialFilter))
        except (TypeError, ValueError) as exc:
            errors[f"filters:{i}"] = str(exc)
    conditions = []
    for j, c in enumerate(form.get("conditions") or []):
        try:
            if not c.get("column"):
                raise ValueError("choose a column")
            # the order of the conditions: the column's values as listed (the file's order)
            order = [o["value"] for o in value_options(summary, c["column"])]
            chosen = c.get("values") or []
            values = [decode(v) for v in sorted(chosen, key=lambda v: order.index(v)
                                                if v in order else len(order))]
            if not values:
                raise ValueError(f"choose the values of {c['column']} that make conditions, in order")
            conditions.append(ConditionColumn(c["column"], tuple(values)))
        except (TypeError, ValueError) as exc:
            errors[f"conditions:{j}"] = str(exc)
    seed = 0
    if form.get("halves") == "random":
        try:
            seed = settings.parse_number(form.get("seed"), settings.Limit("seed", int, 0, settings.MAX_SEED))
        except ValueError as exc:
            errors["seed"] = str(exc)
    if errors:
        return None, errors
    try:
        recipe = Recipe(window, units=tuple(int(u) for u in units), filters=tuple(filters),
                        conditions=tuple(conditions), halves=form.get("halves") or "even_odd",
                        seed=seed, file_name=summary.get("file_name"),
                        file_sha256=summary.get("file_sha256"))
    except (TypeError, ValueError) as exc:   # what is left: units, halves, duplicate columns
        text = str(exc)
        control = ("units" if text.startswith("units") else "halves" if text.startswith("halves")
                   else "seed" if text.startswith("seed") else "conditions")
        return None, {control: text}
    return recipe, {}


def _filter(f: dict, TrialFilter):
    if not f.get("column"):
        raise ValueError("choose a column")
    op = f.get("op")
    if op == "in":
        values = [decode(v) for v in f.get("values") or []]
        if not values:
            raise ValueError(f"choose the values of {f['column']} to keep")
        return TrialFilter(f["column"], "in", tuple(values))
    if op == "range":
        bounds = {}
        for key in ("low", "high"):
            text = str(f.get(key) or "").strip()
            if text:
                try:
                    bounds[key] = settings.parse_number(text)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return TrialFilter(f["column"], "range", low=bounds.get("low"), high=bounds.get("high"))
    if op in ("same_as", "differs_from"):
        if not f.get("other"):
            raise ValueError("choose the column to compare with")
        return TrialFilter(f["column"], op, other=f["other"])
    raise ValueError(f"choose a test: {', '.join(OP_TEXT.values())}")


def control_of(exc: InvalidValue) -> str:
    """The form control under which a core error goes."""
    field = exc.field
    if field.startswith(("filters:", "conditions:")):
        return field
    return CONTROL_OF.get(field, "trials")


# ---------------------------------------------------------------------------
# preview and save
# ---------------------------------------------------------------------------
def run_import(source: dict, form: dict, summary: dict):
    """Apply the form to its file: ``(NWBImport or None, {control: message})``."""
    from flowdash.core.nwb import from_nwb

    recipe, errors = recipe_from_form(form, summary)
    if recipe is None:
        return None, errors
    try:
        return from_nwb(open_session(source), recipe, psth_bin=PSTH_BIN), {}
    except InvalidValue as exc:
        return None, {control_of(exc): str(exc)}
    except ValueError as exc:   # not expected: the recipe was checked; say it with the preview
        return None, {"trials": str(exc)}


def preview(imp, neuron: int = 0) -> dict:
    """What the preview shows of an import (plain data for the tables and figures).

    ``neuron``: position in the dataset of the neuron whose raster and PSTH are drawn.
    """
    r = imp.report
    neuron = neuron if 0 <= neuron < len(r.unit_indices) else 0
    halves = r.half_sizes
    conditions = [{"condition": c, "trials": r.trials_per_condition[c],
                   "halves": " + ".join(map(str, halves[c])) if c in halves else "—",
                   "spikes": int(r.spikes_per_condition[k].sum())}
                  for k, c in enumerate(r.conditions)]
    lengths = np.concatenate([r.window_lengths[c] for c in r.conditions])
    units = [{"unit": f"unit {u} (id {i})", "spikes": int(n),
              "rate": float(n / lengths.sum()) if lengths.sum() > 0 else float("nan")}
             for u, i, n in zip(r.unit_indices, r.unit_ids, r.spikes_per_neuron)]
    dropped = [{"reason": reason, "trials": n,
                "rows": ", ".join(map(str, r.dropped_trials[reason][:8]))
                + (" …" if n > 8 else "")} for reason, n in r.dropped.items()]
    rasters = {}
    for c in r.conditions:
        ras = r.raster[c]
        order = np.argsort(r.window_lengths[c], kind="stable")
        order = order[np.unique(np.linspace(0, order.size - 1, min(order.size, MAX_RASTER_TRIALS))
                                .round().astype(int))]
        row_of = np.full(r.trials_per_condition[c], -1)
        row_of[order] = np.arange(order.size)
        keep = (ras.neuron == neuron) & (row_of[ras.trial] >= 0)
        offset = imp.recipe.window.start_offset
        rasters[c] = {"time": ras.time[keep], "row": row_of[ras.trial[keep]],
                      "end": r.window_lengths[c][order] + offset, "shown": int(order.size),
                      "of": r.trials_per_condition[c]}
    return {"conditions": conditions, "units": units, "dropped": dropped,
            "n_trials_file": r.n_trials_file, "n_trials_kept": r.n_trials_kept,
            "lengths": {c: r.window_lengths[c] for c in r.conditions},
            "rasters": rasters, "edges": r.psth_edges,
            "psth": {c: np.where(r.psth_trials[c] >= min(MIN_PSTH_TRIALS, r.trials_per_condition[c]),
                                 r.psth[c][neuron], np.nan) for c in r.conditions},
            "align": r.align_event, "start_offset": imp.recipe.window.start_offset,
            "neuron": neuron, "neuron_label": units[neuron]["unit"],
            "window": imp.recipe.window.describe()}


def split_of(imp) -> dict:
    """The dataset split of an import's halves: the first half trains, the second
    validates (``{"kind": "even_odd"}`` as the PMd datasets always had, the
    positions of random halves, or none)."""
    if imp.halves is None:
        return {"kind": "none"}
    if imp.recipe.halves == "even_odd":
        return {"kind": "even_odd"}
    return {"kind": "halves", "halves": imp.recipe.halves, "seed": imp.recipe.seed,
            "train": [imp.halves[c][0].tolist() for c in imp.conditions],
            "val": [imp.halves[c][1].tolist() for c in imp.conditions]}


def dataset_of(imp) -> tuple[list, dict]:
    """``(datasamples, meta)`` of an import: one SpikeData per condition; the
    meta holds the recipe (file name and hash, units, window, filters,
    conditions, halves) so that a fit can be traced to its raw data."""
    samples = imp.datasets()
    r = imp.report
    meta = {"source": "nwb", "files": [r.file_name], "conditions": list(imp.conditions),
            "n_datasamples": len(samples), "n_neurons": int(samples[0].n_neurons),
            "n_trials": int(sum(s.n_trials for s in samples)), "with_trial_end": True,
            "split": split_of(imp), "model_spec": None, "recipe": imp.recipe.to_dict(),
            "unit_ids": list(r.unit_ids), "dropped": dict(r.dropped)}
    return samples, meta


def save(store, name, source: dict, form: dict, summary: dict):
    """Import and save under ``name``: ``(dataset name or None, {control: message}, imp)``."""
    imp, errors = run_import(source, form, summary)
    if imp is None:
        return None, errors, None
    samples, meta = dataset_of(imp)
    try:
        saved = store.save_dataset(name, [jobs.spikedata_to_bytes(s) for s in samples], meta)
    except ValueError as exc:
        if getattr(exc, "field", None) == "name":   # empty, too long or taken
            return None, {"name": str(exc)}, imp
        raise
    return saved, {}, imp


# ---------------------------------------------------------------------------
# the recipe as a readable table (Data summary, Runs page)
# ---------------------------------------------------------------------------
def recipe_rows(recipe: dict | None) -> list[tuple[str, str]]:
    """(label, text) rows of a recipe (its dict form), in reading order."""
    from flowdash.core.nwb import Recipe

    if not recipe:
        return []
    try:
        r = Recipe.from_dict(recipe)
    except (TypeError, ValueError):
        return [("Import recipe", "unreadable")]
    rows = [("NWB file", r.file_name or "—"),
            ("File SHA-256", r.file_sha256 or "—"),
            ("Units (rows)", "all" if r.units is None else ", ".join(map(str, r.units))),
            ("Window", r.window.describe() + " (trial end recorded)"),
            ("Trial filters", "; ".join(f.describe() for f in r.filters) or "none")]
    conds = [f"{c.column} ({', '.join(_fmt(v) for v in c.values)})" if c.values is not None
             else f"{c.column} (all values)" for c in r.conditions]
    rows.append(("Conditions", " × ".join(conds) or "none (one condition)"))
    halves = HALVES_TEXT.get(r.halves, r.halves)
    rows.append(("Halves", halves + (f", seed {r.seed}" if r.halves == "random" else "")))
    return rows
