"""NWB import: a recorded session cut into datasets ready to fit.

An NWB 2 file (Neurodata Without Borders, the format of DANDI) holds a
``units`` table (spike times of each unit, seconds on the session clock) and
a ``trials`` table (one row per trial: ``start_time``, ``stop_time``, event
times, numbers and labels). Three steps, each a plain function on plain
records so that a form can drive them:

1. :func:`read_nwb` opens a file once (a path, ``bytes`` or a binary
   file-like, e.g. a browser upload) and returns an :class:`NWBSession` of
   read-only arrays; :meth:`NWBSession.summary` (or :func:`summarize`)
   describes it for filling a form.
2. A :class:`Recipe` (frozen, validated, JSON-able through ``to_dict`` /
   ``from_dict``) says what to cut: which units, each trial's window, filters
   on trial columns, the conditions and the halves.
3. :func:`from_nwb` applies a recipe and returns an :class:`NWBImport`: one
   :class:`~flowdash.core.spikedata.SpikeData` per condition (ISI format, trial
   end recorded, times relative to the window start), the halves per
   condition and an :class:`ImportReport` for the preview.

:data:`PMD_RECIPE` holds the published choices for the PMd recordings
(Genkin et al. 2023/2024).

Safety: the file is read with h5py and pynwb only. HDF5 stores no Python
objects and nothing is unpickled. pynwb reads the schema that the file
caches (``load_namespaces=True``, so files that use extensions still open):
those are JSON documents from which hdmf builds plain container classes; no
code is loaded from the file. Before pynwb sees the file, every link is
checked: links to other files (HDF5 external links) and datasets whose bytes
live elsewhere (virtual or external storage) are refused, so a file cannot
make the server read anything but itself.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import os
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from .limits import InvalidValue
from .spikedata import TRIAL_END, SpikeData

__all__ = [
    "ColumnSummary",
    "ConditionColumn",
    "ImportReport",
    "NWBImport",
    "NWBSession",
    "NWBSummary",
    "PMD_RECIPE",
    "Raster",
    "Recipe",
    "TrialFilter",
    "UnitSummary",
    "Window",
    "from_nwb",
    "read_nwb",
    "summarize",
]

#: Column kinds of the trials table.
KINDS = ("event", "number", "label", "unsupported")
#: Ways to split each condition's trials in two.
HALVES = ("even_odd", "random", "none")
#: Filter operations.
FILTER_OPS = ("in", "range", "same_as", "differs_from")

#: Spikes within this distance (s) of a window edge are kept and put on the
#: edge: event arithmetic (onset + 0.12 on a session clock of thousands of
#: seconds) carries float noise that must not decide a spike's fate.
EDGE_TOL = 1e-9
#: A number column with at most this many distinct values lists them (and
#: may define conditions without stating its values).
MAX_LISTED_VALUES = 20
#: The PSTH never has more bins than this (its bin widens instead).
MAX_PSTH_BINS = 1000

_RECIPE_FORMAT = 1
_HASH_CHUNK = 1 << 20


# ---------------------------------------------------------------------------
# small validation helpers
# ---------------------------------------------------------------------------


def _seconds(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        allowed = "finite and > 0" if positive else "finite"
        raise ValueError(f"{name} must be {allowed} (seconds), got {value!r}")
    return v


def _name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a trials column name (non-empty text), got {value!r}")
    return value


def _value(what: str, v: Any) -> str | bool | int | float:
    """A label or number value as JSON keeps it (str, bool, int or finite float)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and math.isfinite(v):
        return float(v)
    if isinstance(v, str):
        return v
    raise TypeError(f"{what}: {v!r} is not a value; allowed text, true/false or a finite number")


def _values(what: str, values: Any) -> tuple:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{what} must be a list of values, got {values!r}")
    out = tuple(_value(what, v) for v in values)
    if not out:
        raise ValueError(f"{what} is empty; list at least one value")
    # 1 and 1.0 and True are equal in Python: compare with their types.
    seen = set()
    for v in out:
        key = (type(v) is str, v)
        if key in seen:
            raise ValueError(f"{what} lists {v!r} twice")
        seen.add(key)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _check_keys(what: str, d: Any, allowed: Sequence[str]) -> Mapping:
    if not isinstance(d, Mapping):
        raise TypeError(f"{what} must be a mapping (JSON object), got {type(d).__name__}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; allowed: {', '.join(allowed)}")
    return d


# ---------------------------------------------------------------------------
# the recipe
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Each trial's window: from an event plus an offset to another event plus
    an offset, or for a fixed duration.

    Attributes
    ----------
    start : str
        Event column (session seconds) the window starts from; also the event
        the report's rasters and PSTHs are aligned to.
    start_offset : float
        Seconds added to ``start`` (e.g. 0.12 = 120 ms after stimulus onset).
    end : str or None
        Event column the window ends at; None with ``duration``.
    end_offset : float
        Seconds added to ``end`` (only with ``end``).
    duration : float or None
        Fixed window length in seconds (> 0), instead of ``end``.

    The trial end (the window's end) is always recorded.
    """

    start: str
    start_offset: float = 0.0
    end: str | None = None
    end_offset: float = 0.0
    duration: float | None = None

    def __post_init__(self):
        _name("window start", self.start)
        object.__setattr__(self, "start_offset", _seconds("window start_offset", self.start_offset))
        object.__setattr__(self, "end_offset", _seconds("window end_offset", self.end_offset))
        if (self.end is None) == (self.duration is None):
            raise ValueError(
                "a window needs exactly one of end (an event column) and duration (seconds); got "
                f"end={self.end!r}, duration={self.duration!r}"
            )
        if self.end is not None:
            _name("window end", self.end)
        else:
            object.__setattr__(self, "duration", _seconds("window duration", self.duration, positive=True))
            if self.end_offset != 0:
                raise ValueError(
                    f"window end_offset={self.end_offset!r} only applies with an end event; with a fixed "
                    "duration leave it 0"
                )

    def describe(self) -> str:
        """E.g. ``"stim_onset_time + 0.12 s to response_time"``."""
        def at(col, off):
            return col + (f" {'+' if off > 0 else '-'} {abs(off):g} s" if off else "")
        start = at(self.start, self.start_offset)
        if self.end is None:
            return f"{start}, for {self.duration:g} s"
        return f"{start} to {at(self.end, self.end_offset)}"

    def to_dict(self) -> dict:
        return {"start": self.start, "start_offset": self.start_offset, "end": self.end,
                "end_offset": self.end_offset, "duration": self.duration}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Window":
        d = _check_keys("window", d, ("start", "start_offset", "end", "end_offset", "duration"))
        if "start" not in d:
            raise ValueError("window has no 'start' (the event column the window starts from)")
        return cls(**d)


@dataclass(frozen=True)
class TrialFilter:
    """Keep only the trials that pass a test on a trials column.

    Attributes
    ----------
    column : str
        The trials column tested.
    op : str
        ``"in"`` (the value is one of ``values``), ``"range"`` (``low <=
        value <= high``, either bound may be None), ``"same_as"`` /
        ``"differs_from"`` (equal / not equal to column ``other`` in the same
        trial, e.g. ``correct_response`` same as ``chosen_side``).
    values : tuple
        For ``"in"``: text, true/false or numbers, matching the column.
    low, high : float or None
        For ``"range"``.
    other : str or None
        For ``"same_as"`` and ``"differs_from"``.

    A trial with NaN in a tested column never passes.
    """

    column: str
    op: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    other: str | None = None

    def __post_init__(self):
        _name("filter column", self.column)
        if self.op not in FILTER_OPS:
            raise ValueError(f"filter on {self.column!r}: op {self.op!r} is unknown; allowed: {', '.join(FILTER_OPS)}")
        where = f"filter {self.op!r} on {self.column!r}"
        if self.op == "in":
            object.__setattr__(self, "values", _values(f"{where}: values", self.values))
        elif self.values is not None and not (isinstance(self.values, (tuple, list)) and not self.values):
            raise ValueError(f"{where}: values only apply to op 'in'")
        else:
            object.__setattr__(self, "values", ())
        if self.op == "range":
            if self.low is None and self.high is None:
                raise ValueError(f"{where}: give low, high or both")
            for bound in ("low", "high"):
                if getattr(self, bound) is not None:
                    v = getattr(self, bound)
                    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                        raise TypeError(f"{where}: {bound} must be a number, got {v!r}")
                    if not math.isfinite(float(v)):
                        raise ValueError(f"{where}: {bound} must be finite, got {v!r}")
                    object.__setattr__(self, bound, float(v))
            if self.low is not None and self.high is not None and self.low > self.high:
                raise ValueError(f"{where}: low {self.low!r} is above high {self.high!r}")
        elif self.low is not None or self.high is not None:
            raise ValueError(f"{where}: low and high only apply to op 'range'")
        if self.op in ("same_as", "differs_from"):
            _name(f"{where}: other", self.other)
            if self.other == self.column:
                raise ValueError(f"{where}: other must be another column, got {self.other!r}")
        elif self.other is not None:
            raise ValueError(f"{where}: other only applies to ops 'same_as' and 'differs_from'")

    def describe(self) -> str:
        """E.g. ``"correct_response same as chosen_side"``."""
        if self.op == "in":
            return f"{self.column} in {{{', '.join(_fmt(v) for v in self.values)}}}"
        if self.op == "range":
            lo = f"{self.low:g} <= " if self.low is not None else ""
            hi = f" <= {self.high:g}" if self.high is not None else ""
            return f"{lo}{self.column}{hi}"
        return f"{self.column} {self.op.replace('_', ' ')} {self.other}"

    def to_dict(self) -> dict:
        d: dict = {"column": self.column, "op": self.op}
        if self.op == "in":
            d["values"] = list(self.values)
        elif self.op == "range":
            d["low"], d["high"] = self.low, self.high
        else:
            d["other"] = self.other
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "TrialFilter":
        d = _check_keys("filter", d, ("column", "op", "values", "low", "high", "other"))
        for key in ("column", "op"):
            if key not in d:
                raise ValueError(f"filter has no {key!r}")
        return cls(**d)


@dataclass(frozen=True)
class ConditionColumn:
    """One column that splits trials into conditions.

    Attributes
    ----------
    column : str
        A label column, or a number column with few values.
    values : tuple or None
        The values kept, in the order the conditions take; trials with other
        values are dropped (and counted). None: every value in the file,
        sorted.
    """

    column: str
    values: tuple | None = None

    def __post_init__(self):
        _name("condition column", self.column)
        if self.values is not None:
            object.__setattr__(self, "values", _values(f"condition {self.column!r}: values", self.values))

    def to_dict(self) -> dict:
        return {"column": self.column, "values": None if self.values is None else list(self.values)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ConditionColumn":
        d = _check_keys("condition", d, ("column", "values"))
        if "column" not in d:
            raise ValueError("condition has no 'column'")
        return cls(**d)


@dataclass(frozen=True)
class Recipe:
    """What to import from an NWB session (frozen, validated, JSON-able).

    Attributes
    ----------
    window : Window
        Each trial's window; the trial end is recorded.
    units : tuple of int or None
        Rows of the units table to import (0-based positions, not the NWB
        unit ids), in the order of the dataset's neuron ids. None: all.
    filters : tuple of TrialFilter
        Every filter must pass for a trial to be kept.
    conditions : tuple of ConditionColumn
        One datasample per combination of their values; the first column
        varies slowest, values in the stated order. Empty: one condition
        ``"all"``.
    halves : str
        ``"even_odd"`` (trials 0, 2, 4, … and 1, 3, 5, … within each
        condition), ``"random"`` (a random half of each condition, seeded) or
        ``"none"``.
    seed : int
        Seed of ``numpy.random.default_rng`` for ``halves="random"``.
    file_name, file_sha256 : str or None
        The file the recipe was made for; when ``file_sha256`` is set,
        :func:`from_nwb` refuses a file with other content. None: any file.
    """

    window: Window
    units: tuple[int, ...] | None = None
    filters: tuple[TrialFilter, ...] = ()
    conditions: tuple[ConditionColumn, ...] = ()
    halves: str = "even_odd"
    seed: int = 0
    file_name: str | None = None
    file_sha256: str | None = None

    def __post_init__(self):
        if not isinstance(self.window, Window):
            raise TypeError(f"window must be a Window, got {type(self.window).__name__}")
        if self.units is not None:
            if isinstance(self.units, (str, bytes)) or not isinstance(self.units, (Sequence, np.ndarray)):
                raise TypeError(f"units must be a list of units-table rows (0, 1, …) or None, got {self.units!r}")
            units = []
            for u in self.units:
                if isinstance(u, (bool, np.bool_)) or not isinstance(u, (int, np.integer)) or u < 0:
                    raise ValueError(f"units: {u!r} is not a units-table row; allowed 0, 1, 2, …")
                if int(u) in units:
                    raise ValueError(f"units lists row {int(u)} twice")
                units.append(int(u))
            if not units:
                raise ValueError("units is empty; choose at least one unit (or None for all)")
            object.__setattr__(self, "units", tuple(units))
        for attr, kind in (("filters", TrialFilter), ("conditions", ConditionColumn)):
            items = getattr(self, attr)
            if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
                raise TypeError(f"{attr} must be a list of {kind.__name__}, got {items!r}")
            for i, item in enumerate(items):
                if not isinstance(item, kind):
                    raise TypeError(f"{attr}[{i}] must be a {kind.__name__}, got {type(item).__name__}")
            object.__setattr__(self, attr, tuple(items))
        columns = [c.column for c in self.conditions]
        dup = sorted({c for c in columns if columns.count(c) > 1})
        if dup:
            raise ValueError(f"conditions list the column {dup[0]!r} twice")
        if self.halves not in HALVES:
            raise ValueError(f"halves must be one of {', '.join(HALVES)}; got {self.halves!r}")
        if isinstance(self.seed, (bool, np.bool_)) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        for attr in ("file_name", "file_sha256"):
            v = getattr(self, attr)
            if v is not None and not isinstance(v, str):
                raise TypeError(f"{attr} must be text or None, got {v!r}")
        sha = self.file_sha256
        if sha is not None and (len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha)):
            raise ValueError(f"file_sha256 must be 64 lower-case hex digits (a SHA-256), got {sha!r}")

    def columns(self) -> list[str]:
        """Every trials column the recipe reads, in a stable order."""
        names = [self.window.start] + ([self.window.end] if self.window.end else [])
        for f in self.filters:
            names += [f.column] + ([f.other] if f.other else [])
        names += [c.column for c in self.conditions]
        return list(dict.fromkeys(names))

    def to_dict(self) -> dict:
        """JSON-able form (``json.dumps`` works on it); see :meth:`from_dict`."""
        return {
            "format": _RECIPE_FORMAT,
            "file_name": self.file_name,
            "file_sha256": self.file_sha256,
            "units": None if self.units is None else list(self.units),
            "window": self.window.to_dict(),
            "filters": [f.to_dict() for f in self.filters],
            "conditions": [c.to_dict() for c in self.conditions],
            "halves": self.halves,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Recipe":
        """The recipe of :meth:`to_dict` (after a JSON round trip too)."""
        d = _check_keys("recipe", d, ("format", "file_name", "file_sha256", "units", "window", "filters",
                                      "conditions", "halves", "seed"))
        if d.get("format", _RECIPE_FORMAT) != _RECIPE_FORMAT:
            raise ValueError(f"recipe format {d['format']!r} is not supported; this version reads {_RECIPE_FORMAT}")
        if "window" not in d:
            raise ValueError("recipe has no 'window'")
        kw = {k: v for k, v in d.items() if k != "format"}
        kw["window"] = Window.from_dict(d["window"])
        for key, kind in (("filters", TrialFilter), ("conditions", ConditionColumn)):
            items = d.get(key) or []
            if not isinstance(items, (list, tuple)):
                raise TypeError(f"recipe {key} must be a list, got {type(items).__name__}")
            kw[key] = tuple(kind.from_dict(x) for x in items)
        return cls(**kw)


#: The published choices for the PMd recordings (Genkin et al.): from 120 ms
#: after stimulus onset to the response, trial end recorded; conditions
#: chosen side × difficulty (Left/easy, Left/hard, Right/easy, Right/hard);
#: even/odd halves within each condition. Fits with it use an absorbing
#: boundary, shared D, p0 and rates and a potential per condition.
PMD_RECIPE = Recipe(
    window=Window("stim_onset_time", 0.12, "response_time"),
    conditions=(ConditionColumn("chosen_side", ("Left", "Right")),
                ConditionColumn("stim_difficulty", ("easy", "hard"))),
    halves="even_odd",
)


# ---------------------------------------------------------------------------
# the session (one read of the file)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitSummary:
    """One row of the units table: ``index`` (row, what a recipe names), NWB
    ``id``, ``n_spikes`` and the mean ``rate`` over the session (Hz)."""

    index: int
    id: int
    n_spikes: int
    rate: float


@dataclass(frozen=True)
class ColumnSummary:
    """One trials column.

    Attributes
    ----------
    name : str
    kind : str
        ``"event"`` (a time in session seconds: every finite value lies in its
        trial's ``[start_time, stop_time]``), ``"number"``, ``"label"`` (text
        or true/false) or ``"unsupported"`` (ragged, multi-dimensional or a
        reference to another table; see ``note``).
    n_nan : int
        Trials where the value is NaN (numbers and events).
    min, max : float or None
        Over the finite values (numbers and events).
    values : tuple of (value, count) or None
        Distinct values with their trial counts, sorted: labels, and numbers
        with at most MAX_LISTED_VALUES distinct values.
    note : str
        Why a column is unsupported ("" otherwise).
    """

    name: str
    kind: str
    n_nan: int = 0
    min: float | None = None
    max: float | None = None
    values: tuple | None = None
    note: str = ""


@dataclass(frozen=True)
class NWBSummary:
    """What a form needs to offer choices for a file.

    Attributes
    ----------
    file_name, file_sha256 : str
    n_bytes : int
    n_trials : int
    t_start, t_stop : float
        Earliest and latest trial edge or spike, session seconds.
    duration : float
        ``t_stop - t_start``, seconds; the units' mean rates use it.
    units : tuple of UnitSummary
    columns : tuple of ColumnSummary
        In the trials table's order.
    """

    file_name: str
    file_sha256: str
    n_bytes: int
    n_trials: int
    t_start: float
    t_stop: float
    duration: float
    units: tuple[UnitSummary, ...]
    columns: tuple[ColumnSummary, ...]

    def column(self, name: str) -> ColumnSummary:
        for c in self.columns:
            if c.name == name:
                return c
        raise ValueError(f"the trials table has no column {name!r}; columns: {', '.join(c.name for c in self.columns)}")

    def names(self, *kinds: str) -> list[str]:
        """Column names of the given kinds (all when none given)."""
        return [c.name for c in self.columns if not kinds or c.kind in kinds]

    def to_dict(self) -> dict:
        """JSON-able form: units and columns as lists of dicts, ``values`` as
        lists of ``[value, count]``."""
        return {
            "file_name": self.file_name, "file_sha256": self.file_sha256, "n_bytes": self.n_bytes,
            "n_trials": self.n_trials, "t_start": self.t_start, "t_stop": self.t_stop,
            "duration": self.duration,
            "units": [vars(u).copy() for u in self.units],
            "columns": [{**vars(c), "values": None if c.values is None else [list(v) for v in c.values]}
                        for c in self.columns],
        }


@dataclass(frozen=True, eq=False)
class _Column:
    kind: str
    data: np.ndarray | None  # float64 (events, numbers), object str or bool (labels)
    note: str = ""


@dataclass(frozen=True, eq=False)
class NWBSession:
    """The parts of an NWB file the importer uses, as read-only arrays.

    Attributes
    ----------
    file_name, file_sha256 : str
        Name given (or the path's base name) and SHA-256 of the content.
    n_bytes : int
    unit_ids : ndarray of int, shape (n_units,)
        NWB ids of the units table's rows.
    spike_times : tuple of ndarray, shape (n_spikes_u,), session seconds
        Per unit, sorted.
    columns : dict str -> _Column
        The trials table's columns (kind and values), in table order.
    """

    file_name: str
    file_sha256: str
    n_bytes: int
    unit_ids: np.ndarray
    spike_times: tuple[np.ndarray, ...]
    columns: dict = field(repr=False)
    n_trials: int = 0

    def column(self, name: str, where: str, kinds: Sequence[str] = ("event", "number", "label"),
               field: str = "recipe") -> _Column:
        """The column, or an InvalidValue (``field``: the recipe part) naming it,
        the recipe field and what is allowed."""
        if name not in self.columns:
            raise InvalidValue(
                field, f"{where}: the trials table has no column {name!r}; columns: {', '.join(self.columns)}"
            )
        col = self.columns[name]
        if col.kind == "unsupported":
            raise InvalidValue(field, f"{where}: column {name!r} cannot be used ({col.note})")
        if col.kind not in kinds:
            raise InvalidValue(field, f"{where}: column {name!r} holds {_KIND_TEXT[col.kind]}; "
                                      f"allowed here: {' or '.join(_KIND_TEXT[k] for k in kinds)}")
        return col

    def summary(self) -> NWBSummary:
        """Units (spike counts, mean rates) and trials columns (kinds, NaNs,
        ranges, values with counts) for a form."""
        edges = [self.columns["start_time"].data, self.columns["stop_time"].data]
        edges += [s[[0, -1]] for s in self.spike_times if s.size]
        edges = np.concatenate(edges)
        t_start, t_stop = float(np.nanmin(edges)), float(np.nanmax(edges))
        duration = t_stop - t_start
        units = tuple(
            UnitSummary(i, int(uid), int(s.size), float(s.size / duration) if duration > 0 else float("nan"))
            for i, (uid, s) in enumerate(zip(self.unit_ids, self.spike_times))
        )
        cols = []
        for name, col in self.columns.items():
            if col.kind == "unsupported":
                cols.append(ColumnSummary(name, col.kind, note=col.note))
                continue
            values = _distinct(col)
            if col.kind == "label":
                cols.append(ColumnSummary(name, col.kind, values=values))
                continue
            finite = col.data[np.isfinite(col.data)]
            cols.append(ColumnSummary(
                name, col.kind, n_nan=int(col.data.size - finite.size),
                min=float(finite.min()) if finite.size else None,
                max=float(finite.max()) if finite.size else None,
                values=values if values is not None and len(values) <= MAX_LISTED_VALUES else None))
        return NWBSummary(self.file_name, self.file_sha256, self.n_bytes, self.n_trials, t_start, t_stop,
                          duration, units, tuple(cols))


_KIND_TEXT = {"event": "event times", "number": "numbers", "label": "labels (text or true/false)",
              "unsupported": "unsupported values"}


def _distinct(col: _Column) -> tuple | None:
    """Sorted (value, count) pairs of a label or number column (NaN left out)."""
    data = col.data
    if col.kind != "label":
        data = data[np.isfinite(data)]
    if data.size == 0:
        return ()
    vals, counts = np.unique(data, return_counts=True)
    if col.kind == "label":
        vals = [bool(v) if data.dtype == bool else str(v) for v in vals]
    else:
        vals = [int(v) if float(v).is_integer() and abs(v) < 2**53 else float(v) for v in vals]
    return tuple(zip(vals, (int(c) for c in counts)))


def _source(src: Any, name: str | None, max_bytes: int | None):
    """(file name, sha256, n_bytes, what h5py opens) for a path, bytes or file-like."""
    if max_bytes is not None:
        if isinstance(max_bytes, (bool, np.bool_)) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive integer or None, got {max_bytes!r}")

    def check_size(n: int, fname: str) -> None:
        if max_bytes is not None and n > max_bytes:
            raise ValueError(f"{fname} is {n / 2**20:.1f} MB ({n} bytes); files up to "
                             f"{max_bytes / 2**20:.1f} MB ({max_bytes} bytes) are accepted")

    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        fname = name or os.path.basename(path)
        try:
            n = os.path.getsize(path)
            check_size(n, fname)
            sha = hashlib.sha256()
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
                    sha.update(chunk)
        except OSError as exc:
            raise ValueError(f"cannot read the NWB file {path!r}: {exc.strerror}") from None
        return fname, sha.hexdigest(), n, path
    fname = name or "uploaded.nwb"
    if isinstance(src, (bytes, bytearray, memoryview)):
        raw = bytes(src)
    elif hasattr(src, "read"):
        raw = src.read() if max_bytes is None else src.read(max_bytes + 1)
        if not isinstance(raw, (bytes, bytearray)):
            raise TypeError(f"{fname}: read() returned {type(raw).__name__}; open the file in binary mode")
        raw = bytes(raw)
    else:
        raise TypeError(f"the NWB file must be a path, bytes or a binary file-like object, got {type(src).__name__}")
    check_size(len(raw), fname)
    return fname, hashlib.sha256(raw).hexdigest(), len(raw), io.BytesIO(raw)


def _refuse_outside_data(h5, fname: str) -> None:
    """Refuse links to other files and datasets stored outside this one."""
    import h5py

    problem = []

    def visit(path, link):
        if isinstance(link, h5py.ExternalLink):
            problem.append(f"/{path} links to another file ({link.filename!r})")
        elif isinstance(link, h5py.HardLink):
            obj = h5.get(path)
            if isinstance(obj, h5py.Dataset) and (obj.is_virtual or obj.external):
                problem.append(f"dataset /{path} keeps its values outside the file")
        return True if problem else None  # a non-None return stops the visit

    h5.visititems_links(visit)
    if problem:
        raise ValueError(f"{fname} refers to data outside itself: {problem[0]}; only self-contained files "
                         "are read")


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def read_nwb(src: Any, *, name: str | None = None, max_bytes: int | None = None) -> NWBSession:
    """Open an NWB 2 file and read its units and trials tables.

    Parameters
    ----------
    src : path, bytes or binary file-like
        The ``.nwb`` (HDF5) file; bytes and file-likes are read in memory
        (browser uploads).
    name : str, optional
        File name to report (default: the path's base name, or
        ``"uploaded.nwb"``).
    max_bytes : int, optional
        Refuse larger files (the upload cap) before reading them.

    Returns
    -------
    NWBSession

    Raises
    ------
    ValueError
        Over the cap, not HDF5, HDF5 but not NWB 2, data outside the file,
        no trials table or no trials, no units table or no units, a unit's
        spike times not finite — each naming the file and the table, unit or
        column.
    """
    fname, sha, n_bytes, target = _source(src, name, max_bytes)
    import h5py

    try:
        h5 = h5py.File(target, "r")
    except OSError as exc:
        raise ValueError(f"{fname} is not a readable HDF5 file, so not an NWB file ({exc})") from None
    nwb_io = None
    try:
        version = h5.attrs.get("nwb_version")
        if version is None:
            old = "nwb_version" in h5 and isinstance(h5["nwb_version"], h5py.Dataset)
            raise ValueError(f"{fname} is an HDF5 file but not an NWB 2 file"
                             + ("; NWB 1 files are not read: convert it to NWB 2" if old
                                else " (its root has no nwb_version attribute)"))
        _refuse_outside_data(h5, fname)
        from pynwb import NWBHDF5IO

        with warnings.catch_warnings():
            # pynwb warns about cached namespaces it already knows; not the user's concern.
            warnings.simplefilter("ignore")
            try:
                nwb_io = NWBHDF5IO(file=h5, mode="r", load_namespaces=True)
                nwb = nwb_io.read()
            except Exception as exc:  # pynwb/hdmf raise many types on malformed files
                raise ValueError(f"{fname} (NWB {_text(version)}) cannot be read: "
                                 f"{type(exc).__name__}: {exc}") from None
            try:
                unit_ids, spikes = _read_units(nwb.units, fname)
                columns, n_trials = _read_trials(nwb.trials, fname)
            except ValueError:
                raise
            except Exception as exc:  # e.g. a compression filter this machine lacks
                raise ValueError(f"{fname}: the units or trials table cannot be read: "
                                 f"{type(exc).__name__}: {exc}") from None
    finally:
        if nwb_io is not None:
            nwb_io.close()
        h5.close()
    return NWBSession(fname, sha, n_bytes, unit_ids, spikes, columns, n_trials)


def _read_units(units, fname: str) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    from hdmf.common.table import VectorIndex

    if units is None:
        raise ValueError(f"{fname} has no units table (/units), so no spike times to import")
    if "spike_times" not in units.colnames:
        raise ValueError(f"{fname}: the units table has no spike_times column; columns: {', '.join(units.colnames)}")
    n_units = len(units)
    if n_units == 0:
        raise ValueError(f"{fname}: the units table has no rows (no units)")
    col = units["spike_times"]
    if not isinstance(col, VectorIndex):
        raise ValueError(f"{fname}: units spike_times has no index (spike_times_index); it cannot be split by unit")
    ends = np.asarray(col.data[:], dtype=np.int64)
    flat = np.asarray(col.target.data[:], dtype=np.float64)
    if ends.shape != (n_units,) or np.any(np.diff(ends) < 0) or (n_units and ends[-1] != flat.size) or ends[0] < 0:
        raise ValueError(f"{fname}: units spike_times_index does not split spike_times into {n_units} units")
    ids = np.asarray(units.id.data[:], dtype=np.int64)
    spikes = []
    for u, t in enumerate(np.split(flat, ends[:-1])):
        bad = ~np.isfinite(t)
        if bad.any():
            raise ValueError(f"{fname}: unit {u} (id {ids[u]}) has {int(bad.sum())} spike times that are not "
                             "finite numbers")
        t = np.sort(t)
        t.setflags(write=False)
        spikes.append(t)
    ids.setflags(write=False)
    return ids, tuple(spikes)


def _read_trials(trials, fname: str) -> tuple[dict, int]:
    from hdmf.common.table import DynamicTableRegion, VectorIndex

    if trials is None:
        raise ValueError(f"{fname} has no trials table (/intervals/trials); the importer cuts each trial's "
                         "window from its events")
    n = len(trials)
    if n == 0:
        raise ValueError(f"{fname}: the trials table has no rows (no trials)")
    columns: dict[str, _Column] = {}
    for name in trials.colnames:
        col = trials[name]
        if isinstance(col, VectorIndex):
            columns[name] = _Column("unsupported", None, "several values per trial (a ragged column)")
            continue
        if isinstance(col, DynamicTableRegion):
            columns[name] = _Column("unsupported", None, "it refers to rows of another table")
            continue
        data = np.asarray(col.data[:])
        if data.ndim != 1 or data.shape[0] != n:
            columns[name] = _Column("unsupported", None, f"not one value per trial (shape {data.shape})")
            continue
        if data.dtype.kind == "b":
            columns[name] = _Column("label", data.astype(bool))
        elif data.dtype.kind in "iuf":
            columns[name] = _Column("number", data.astype(np.float64))
        elif data.dtype.kind in "OSU" and all(isinstance(v, (str, bytes, np.str_, np.bytes_)) for v in data):
            columns[name] = _Column("label", np.array([_text(v) for v in data], dtype=object))
        else:
            columns[name] = _Column("unsupported", None, f"values of type {data.dtype} are neither numbers nor text")
    for edge in ("start_time", "stop_time"):
        if edge not in columns or columns[edge].kind != "number":
            raise ValueError(f"{fname}: the trials table has no numeric {edge} column")
    start, stop = columns["start_time"].data, columns["stop_time"].data
    for name, col in columns.items():
        if col.kind != "number":
            continue
        finite = np.isfinite(col.data)
        v = col.data[finite]
        if v.size and np.all((v >= start[finite] - EDGE_TOL) & (v <= stop[finite] + EDGE_TOL)):
            columns[name] = _Column("event", col.data)
    for col in columns.values():
        if col.data is not None:
            col.data.setflags(write=False)
    return columns, n


def summarize(src: Any, *, name: str | None = None, max_bytes: int | None = None) -> NWBSummary:
    """:func:`read_nwb` then :meth:`NWBSession.summary`."""
    return read_nwb(src, name=name, max_bytes=max_bytes).summary()


# ---------------------------------------------------------------------------
# the import
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Raster:
    """Spikes of one condition for a raster: flat arrays, one entry per spike.

    ``trial`` (position within the condition), ``neuron`` (dataset neuron id),
    ``time`` (seconds from the trial's window-start event, e.g. stimulus
    onset — not from the window start)."""

    trial: np.ndarray
    neuron: np.ndarray
    time: np.ndarray


@dataclass(frozen=True, eq=False)
class ImportReport:
    """What an import kept and dropped, for the preview (arrays only).

    Attributes
    ----------
    file_name, file_sha256 : str
    n_trials_file, n_trials_kept : int
    unit_indices, unit_ids : tuple of int
        Units-table rows and NWB ids of the dataset's neurons 0, 1, …
    conditions : tuple of str
    trials_per_condition : dict str -> int
    half_sizes : dict str -> (int, int)
        Trials in each half per condition (empty with ``halves="none"``).
    spikes_per_neuron : ndarray of int, shape (n_neurons,)
        Spikes inside the kept windows.
    spikes_per_condition : ndarray of int, shape (n_conditions, n_neurons)
    window_lengths : dict str -> ndarray, shape (n_trials_c,), s
    dropped : dict str -> int
        Trials dropped per reason, in the order the checks run: ``"filter:
        <filter>"``, ``"condition: <column> not in {…}"``, ``"NaN in
        <event column>"``, ``"negative window"``, ``"empty window"``. Each
        trial is dropped for its first reason only.
    dropped_trials : dict str -> ndarray of int
        The trials-table rows behind each count.
    align_event : str
        The event the rasters and PSTHs are aligned to (the window start's).
    raster : dict str -> Raster
    psth_edges : ndarray, shape (n_bins + 1,), s from the align event
    psth : dict str -> ndarray, shape (n_neurons, n_bins), Hz
        Spikes per bin over the time the windows cover it (NaN where no
        window covers it).
    psth_trials : dict str -> ndarray, shape (n_bins,)
        Trials covering each bin (fractional at window edges).
    """

    file_name: str
    file_sha256: str
    n_trials_file: int
    n_trials_kept: int
    unit_indices: tuple[int, ...]
    unit_ids: tuple[int, ...]
    conditions: tuple[str, ...]
    trials_per_condition: dict
    half_sizes: dict
    spikes_per_neuron: np.ndarray
    spikes_per_condition: np.ndarray
    window_lengths: dict
    dropped: dict
    dropped_trials: dict
    align_event: str
    raster: dict = field(repr=False)
    psth_edges: np.ndarray = field(repr=False)
    psth: dict = field(repr=False)
    psth_trials: dict = field(repr=False)

    def to_dict(self) -> dict:
        """JSON-able form (arrays as lists, NaN as None)."""
        def plain(x):
            if isinstance(x, np.ndarray):
                return [plain(v) for v in x.tolist()] if x.ndim else plain(x.item())
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, Raster):
                return {"trial": plain(x.trial), "neuron": plain(x.neuron), "time": plain(x.time)}
            if isinstance(x, dict):
                return {k: plain(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [plain(v) for v in x]
            return x
        return {k: plain(getattr(self, k)) for k in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class NWBImport:
    """The datasets of an import.

    Attributes
    ----------
    recipe : Recipe
        The recipe as applied: file name and hash filled in, units and
        condition values explicit (rerunning it gives the same datasets).
    conditions : tuple of str
        Condition names, values joined by ``"/"`` (e.g. ``"Left/easy"``), in
        the recipe's order; ``("all",)`` without condition columns.
    data : dict str -> SpikeData
        Per condition: trial end recorded, times relative to the window
        start, only spikes inside the window.
    trial_index : dict str -> ndarray of int
        Trials-table row of each trial of the condition (table order).
    halves : dict str -> (ndarray, ndarray) or None
        Positions (within the condition) of the two halves; None with
        ``halves="none"``.
    report : ImportReport
    """

    recipe: Recipe
    conditions: tuple[str, ...]
    data: dict
    trial_index: dict
    halves: dict | None
    report: ImportReport = field(repr=False)

    def datasets(self) -> list[SpikeData]:
        """One SpikeData per condition, in order (the datasamples of a fit)."""
        return [self.data[c] for c in self.conditions]

    def half(self, k: int) -> list[SpikeData]:
        """Half ``k`` (0: even / first, 1: odd / second) of every condition, in order."""
        if self.halves is None:
            raise ValueError("this import has no halves (recipe halves='none')")
        if k not in (0, 1):
            raise ValueError(f"half must be 0 or 1, got {k!r}")
        return [self.data[c].subset(self.halves[c][k]) for c in self.conditions]


def _matches(col: _Column, values: tuple, where: str, field: str) -> np.ndarray:
    """Boolean mask of trials whose value is one of ``values`` (type-checked)."""
    if col.kind == "label":
        want = bool if col.data.dtype == bool else str
        for v in values:
            if type(v) is not want:
                raise InvalidValue(field, f"{where}: {v!r} is not a value of this column; it holds "
                                          f"{'true/false' if want is bool else 'text'}")
        present = {v for v, _ in _distinct(col)}
        missing = [v for v in values if v not in present]
        if missing:
            raise InvalidValue(field, f"{where}: no trial has the value {missing[0]!r}; values: "
                                      f"{', '.join(_fmt(v) for v in sorted(present))}")
        return np.isin(col.data, np.array(values, dtype=col.data.dtype))
    for v in values:
        if isinstance(v, (bool, str)):
            raise InvalidValue(field, f"{where}: {v!r} is not a number; this column holds numbers")
    return np.isin(col.data, np.array(values, dtype=np.float64))


def _filter_pass(session: NWBSession, f: TrialFilter, i: int) -> np.ndarray:
    where, fld = f"filters[{i}] ({f.describe()})", f"filters:{i}"
    if f.op == "in":
        return _matches(session.column(f.column, where, field=fld), f.values, where, fld)
    if f.op == "range":
        col = session.column(f.column, where, ("event", "number"), fld)
        ok = np.isfinite(col.data)
        if f.low is not None:
            ok &= col.data >= f.low
        if f.high is not None:
            ok &= col.data <= f.high
        return ok
    a, b = session.column(f.column, where, field=fld), session.column(f.other, where, field=fld)
    if (a.kind == "label") != (b.kind == "label") or (a.kind == "label" and a.data.dtype != b.data.dtype):
        raise InvalidValue(fld, f"{where}: {f.column!r} holds {_KIND_TEXT[a.kind]} and {f.other!r} holds "
                         f"{_KIND_TEXT[b.kind]}; compare columns of the same kind")
    same = a.data == b.data
    if a.kind == "label":
        return same if f.op == "same_as" else ~same
    finite = np.isfinite(a.data) & np.isfinite(b.data)
    return finite & (same if f.op == "same_as" else ~same)


def _halves(n_trials: dict, kind: str, seed: int) -> dict | None:
    if kind == "none":
        return None
    rng = np.random.default_rng(seed)
    out = {}
    for c, n in n_trials.items():
        if n < 2:
            raise InvalidValue("halves", f"condition {c!r} has {n} trial; halves ({kind}) need at least 2 trials in every "
                             "condition: choose halves 'none', fewer filters or fewer condition columns")
        if kind == "even_odd":
            a, b = np.arange(0, n, 2), np.arange(1, n, 2)
        else:
            perm = rng.permutation(n)
            a, b = np.sort(perm[: (n + 1) // 2]), np.sort(perm[(n + 1) // 2:])
        a.setflags(write=False)
        b.setflags(write=False)
        out[c] = (a, b)
    return out


def _psth(lengths: dict, rasters: dict, offset: float, n_neurons: int, bin_width: float):
    """PSTH edges, rates (Hz) and covering trials per condition, from the align event."""
    top = max(float(offset + lengths[c].max()) for c in lengths)
    n_bins = max(1, math.ceil((top - offset) / bin_width - 1e-9))
    if n_bins > MAX_PSTH_BINS:
        n_bins, bin_width = MAX_PSTH_BINS, (top - offset) / MAX_PSTH_BINS
    edges = offset + bin_width * np.arange(n_bins + 1)
    rates, trials = {}, {}
    for c, length in lengths.items():
        # time each window covers each bin: overlap of [offset, offset + length] with the bin
        cover = np.clip(np.minimum(offset + length[:, None], edges[None, 1:]) - edges[None, :-1], 0, bin_width)
        exposure = cover.sum(axis=0)
        r = rasters[c]
        k = np.clip(((r.time - offset) / bin_width).astype(np.int64), 0, n_bins - 1)
        counts = np.zeros((n_neurons, n_bins))
        np.add.at(counts, (r.neuron, k), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates[c] = np.where(exposure > 0, counts / exposure, np.nan)
        trials[c] = exposure / bin_width
    return edges, rates, trials


def from_nwb(src: Any, recipe: Recipe | Mapping, *, name: str | None = None, max_bytes: int | None = None,
             psth_bin: float = 0.02) -> NWBImport:
    """Import an NWB session as one SpikeData per condition.

    Parameters
    ----------
    src : path, bytes, binary file-like or NWBSession
        The file (see :func:`read_nwb`), or a session already read.
    recipe : Recipe or its ``to_dict`` form
    name : str, optional
        File name to report for bytes / file-likes.
    max_bytes : int, optional
        Upload cap (see :func:`read_nwb`).
    psth_bin : float
        PSTH bin width of the report, seconds (widened so that there are at
        most MAX_PSTH_BINS bins).

    Returns
    -------
    NWBImport

    Raises
    ------
    ValueError
        Any problem of :func:`read_nwb`; a recipe made for another file;
        unknown or unusable columns (naming the recipe field and listing the
        columns); unknown units or label values; no trial left; a condition
        without trials; a unit without spikes in every window; halves
        impossible (a condition with fewer than 2 trials). Problems of the
        recipe against the file are :class:`~flowdash.core.limits.InvalidValue`
        whose ``field`` names the recipe part: ``"file"`` (made for another
        file), ``"units"``, ``"window:start"``, ``"window:end"``,
        ``"filters:<i>"``, ``"conditions:<j>"``, ``"conditions"`` (a
        combination without trials), ``"halves"``, ``"trials"`` (none left). Trials with NaN
        events or empty / negative windows are not errors: they are dropped
        and counted in the report.
    """
    if isinstance(recipe, Mapping):
        recipe = Recipe.from_dict(recipe)
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe or its dict form, got {type(recipe).__name__}")
    psth_bin = _seconds("psth_bin", psth_bin, positive=True)
    session = src if isinstance(src, NWBSession) else read_nwb(src, name=name, max_bytes=max_bytes)
    if recipe.file_sha256 is not None and recipe.file_sha256 != session.file_sha256:
        raise InvalidValue(
            "file", f"the recipe was made for {recipe.file_name or 'another file'} (sha256 {recipe.file_sha256[:12]}…); "
            f"{session.file_name} has other content (sha256 {session.file_sha256[:12]}…)"
        )
    n_units = len(session.spike_times)
    units = recipe.units if recipe.units is not None else tuple(range(n_units))
    for u in units:
        if u >= n_units:
            raise InvalidValue("units", f"units: row {u} is not in the units table; it has {n_units} units, rows "
                             f"0..{n_units - 1}")
    win = recipe.window
    start_col = session.column(win.start, "window start", ("event", "number"), "window:start")
    end_col = session.column(win.end, "window end", ("event", "number"), "window:end") if win.end else None

    n = session.n_trials
    keep = np.ones(n, dtype=bool)
    dropped: dict[str, np.ndarray] = {}

    def drop(reason: str, fail: np.ndarray) -> None:
        rows = np.flatnonzero(keep & fail)
        if rows.size:
            dropped[reason] = rows
            keep[rows] = False

    for i, f in enumerate(recipe.filters):
        drop(f"filter: {f.describe()}", ~_filter_pass(session, f, i))
    codes, cond_values = [], []
    for j, cc in enumerate(recipe.conditions):
        where, fld = f"conditions[{j}] ({cc.column})", f"conditions:{j}"
        col = session.column(cc.column, where, ("number", "label"), fld)
        values = cc.values
        if values is None:
            listed = _distinct(col)
            if col.kind == "number" and len(listed) > MAX_LISTED_VALUES:
                raise InvalidValue(fld, f"{where}: {cc.column!r} has {len(listed)} distinct values; list the values "
                                 f"wanted (at most {MAX_LISTED_VALUES} are taken by default) or filter by range")
            values = tuple(v for v, _ in listed)
        drop(f"condition: {cc.column} not in {{{', '.join(_fmt(v) for v in values)}}}",
             ~_matches(col, values, where, fld))
        code = np.full(n, -1)
        data = col.data
        for k, v in enumerate(values):
            code[data == v] = k
        codes.append(code)
        cond_values.append(values)
    for col_name, col in ((win.start, start_col), (win.end, end_col)):
        if col is not None:
            drop(f"NaN in {col_name}", np.isnan(col.data))
    with np.errstate(invalid="ignore"):
        starts = start_col.data + win.start_offset
        ends = end_col.data + win.end_offset if end_col is not None else starts + win.duration
        drop("negative window", ends < starts)
        drop("empty window", ends == starts)
    if not keep.any():
        raise InvalidValue("trials", f"no trial is left of the {n} in {session.file_name}: "
                           + "; ".join(f"{len(r)} dropped for {reason}" for reason, r in dropped.items()))

    conditions, trial_index = [], {}
    for combo in itertools.product(*[range(len(v)) for v in cond_values]):
        label = "/".join(_fmt(vals[k]) for vals, k in zip(cond_values, combo)) or "all"
        mask = keep.copy()
        for code, k in zip(codes, combo):
            mask &= code == k
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            where = ", ".join(f"{cc.column} = {_fmt(vals[k])!s}"
                              for cc, vals, k in zip(recipe.conditions, cond_values, combo))
            raise InvalidValue("conditions", f"condition {label!r} ({where}) has no trials left after the "
                               "filters and window checks; leave that value out of the condition or change "
                               "the filters")
        if label in trial_index:
            raise InvalidValue("conditions", f"two conditions are both named {label!r}; condition values "
                               "must differ as text")
        conditions.append(label)
        rows.setflags(write=False)
        trial_index[label] = rows
    halves = _halves({c: trial_index[c].size for c in conditions}, recipe.halves, recipe.seed)

    rows_all = np.flatnonzero(keep)
    lo = [np.searchsorted(session.spike_times[u], starts[rows_all] - EDGE_TOL, "left") for u in units]
    hi = [np.searchsorted(session.spike_times[u], ends[rows_all] + EDGE_TOL, "right") for u in units]
    counts_all = np.array([int((h - l).sum()) for l, h in zip(lo, hi)], dtype=np.int64)
    silent = [k for k in range(len(units)) if counts_all[k] == 0]
    if silent:
        names = ", ".join(f"row {units[k]} (id {session.unit_ids[units[k]]})" for k in silent)
        raise InvalidValue("units", f"unit{'s' if len(silent) > 1 else ''} {names} "
                           f"ha{'ve' if len(silent) > 1 else 's'} no spikes inside any kept window; leave "
                           f"{'them' if len(silent) > 1 else 'it'} out of units")
    pos = np.full(n, -1)
    pos[rows_all] = np.arange(rows_all.size)

    data, lengths, rasters = {}, {}, {}
    spikes_per_condition = np.zeros((len(conditions), len(units)), dtype=np.int64)
    for ci, c in enumerate(conditions):
        trials, r_trial, r_neuron, r_time = [], [], [], []
        for j, row in enumerate(trial_index[c]):
            p = pos[row]
            a, b = starts[row], ends[row]
            parts = [session.spike_times[u][lo[k][p]:hi[k][p]] for k, u in enumerate(units)]
            t = np.concatenate(parts)
            ids = np.repeat(np.arange(len(units)), [x.size for x in parts])
            order = np.argsort(t, kind="stable")  # ties keep neuron order
            rel = np.clip(t[order], a, b) - a
            ids = ids[order]
            # intervals from the window start through each spike to the window end (the trial end)
            trials.append((np.diff(np.concatenate(([0.0], rel, [b - a]))), np.append(ids, TRIAL_END)))
            r_trial.append(np.full(ids.size, j))
            r_neuron.append(ids)
            r_time.append(rel + win.start_offset)
            spikes_per_condition[ci] += np.bincount(ids, minlength=len(units))
        data[c] = SpikeData(trials, len(units), with_trial_end=True)
        lengths[c] = ends[trial_index[c]] - starts[trial_index[c]]
        rasters[c] = Raster(np.concatenate(r_trial), np.concatenate(r_neuron), np.concatenate(r_time))
    edges, psth, psth_trials = _psth(lengths, rasters, win.start_offset, len(units), psth_bin)

    applied = replace(
        recipe, units=tuple(units), file_name=session.file_name, file_sha256=session.file_sha256,
        conditions=tuple(ConditionColumn(cc.column, vals) for cc, vals in zip(recipe.conditions, cond_values)))
    report = ImportReport(
        file_name=session.file_name, file_sha256=session.file_sha256, n_trials_file=n,
        n_trials_kept=int(rows_all.size), unit_indices=tuple(units),
        unit_ids=tuple(int(session.unit_ids[u]) for u in units), conditions=tuple(conditions),
        trials_per_condition={c: int(trial_index[c].size) for c in conditions},
        half_sizes={} if halves is None else {c: (int(a.size), int(b.size)) for c, (a, b) in halves.items()},
        spikes_per_neuron=spikes_per_condition.sum(axis=0), spikes_per_condition=spikes_per_condition,
        window_lengths=lengths, dropped={k: int(v.size) for k, v in dropped.items()}, dropped_trials=dropped,
        align_event=win.start, raster=rasters, psth_edges=edges, psth=psth, psth_trials=psth_trials)
    return NWBImport(applied, tuple(conditions), data, trial_index, halves, report)
