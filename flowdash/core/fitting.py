"""Gradient-descent fitting of a model to spike data (MATH.md §7).

``fit`` runs epochs of mini-batch GD or ADAM over one or several datasamples
and records the training and validation NLL of every datasample after every
epoch. It knows nothing of the dashboard: progress leaves through the
``on_epoch`` hook, which can also stop the fit.

Long fits: a :class:`FitCheckpoint` (plain arrays and JSON, no pickle) holds
everything the next epochs depend on, so a stopped or interrupted fit
continues exactly with ``fit(..., resume=checkpoint)``, in any process;
:func:`recorded_epochs` says which epochs' models to keep (dense early,
log-spaced late); ``FitOptions.line_search`` schedules searches on C and D.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.optimize import minimize

from ._parallel import blas_threads, submit
from .limits import InvalidValue, Limit
from .likelihood import Operators, batch_nll, batch_nll_and_grad
from .model import PEQ_FLOOR, Model, peq_from_force
from .spectra import solve_spectrum, validate_Nv

__all__ = ["FitOptions", "EpochRecord", "FitResult", "FitDiverged", "fit", "FITTABLE", "OPTIMIZERS",
           "RecordingSchedule", "recorded_epochs", "line_search_epochs", "FitCheckpoint",
           "EPOCHS", "MINI_BATCHES", "LEARNING_RATE", "SEED", "mini_batch_limit", "LINE_SEARCH_LOG",
           "LINE_SEARCH_EVERY", "MAX_FUN_EVAL", "searches_limit", "line_search_epoch_limit"]

FITTABLE = ("F", "F0", "D", "Fr", "C")
OPTIMIZERS = ("GD", "ADAM")
# The model row each fitted parameter lives in.
_ROW_OF = {"F": "peq", "F0": "p0", "D": "D", "Fr": "fr", "C": "fr"}
D_MIN = 0.01
LINE_SEARCH_BOUNDS = {"C": (1.0, 150.0), "D": (0.02, 10.0)}

# The limits of a fit's settings (the forms and the settings layer use the same).
#: Epochs (passes over the training data).
EPOCHS = Limit("max_epochs", int, 1)
#: Mini-batches per datasample and epoch; see :func:`mini_batch_limit`.
MINI_BATCHES = Limit("mini_batch_number", int, 1)
#: A GD learning rate or an ADAM step size.
LEARNING_RATE = Limit("learning_rate", float, 0, lo_open=True)
#: Seed of the mini-batch shuffling.
SEED = Limit("seed", int, 0)


# Line searches on C and D (``FitOptions.line_search``).
#: n of a ``{'log': n}`` schedule: at most n log-spaced searching epochs.
LINE_SEARCH_LOG = Limit("log", int, 1)
#: k of an ``{'every': k}`` schedule: epochs k, 2k, ...
LINE_SEARCH_EVERY = Limit("every", int, 1)
#: NLL evaluations per search (bounded L-BFGS-B); each is one gradient pass over a batch.
MAX_FUN_EVAL = Limit("max_fun_eval", int, 1)


def searches_limit(mini_batch_number: int) -> Limit:
    """Searches per searching epoch: one after each of the first n batches of a datasample."""
    return Limit("searches_per_epoch", int, 1, int(mini_batch_number),
                 why=f"mini_batch_number = {int(mini_batch_number)}")


def line_search_epoch_limit(max_epochs: int) -> Limit:
    """An epoch of a listed line-search schedule: a pass 1 … max_epochs."""
    return Limit("epochs", int, 1, int(max_epochs), why=f"max_epochs = {int(max_epochs)}")


def mini_batch_limit(n_train_trials: int) -> Limit:
    """Mini-batches a datasample of ``n_train_trials`` training trials allows.

    Each batch needs at least one trial.
    """
    return Limit("mini_batch_number", int, 1, int(n_train_trials),
                 why=f"the number of training trials per datasample, {int(n_train_trials)}")


def _is_int(value, low: int = 0) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= low


def recorded_epochs(last_epoch: int, dense_until: int = 500, per_decade: int = 300) -> np.ndarray:
    """Epochs whose models a long fit keeps: dense early, log-spaced late.

    Every epoch ``0 … dense_until``; after that each kept epoch ``e`` is
    followed by ``e + max(1, round(e / q))`` with ``q = round(per_decade / ln 10)``,
    i.e. about ``per_decade`` epochs per decade (steps of ~0.77 % for 300);
    plus ``last_epoch`` itself. The rule does not depend on where the fit
    ends, so a fit continued from a checkpoint keeps the same epochs, and it
    is integer arithmetic, the same on every machine.

    The defaults keep 1,103 models of a 50,000-epoch fit (592 of 1,000;
    1,194 of 100,000). Every epoch up to 500 is kept, so the FCA's mirror
    check, which reads record ``min(500, …)`` as an epoch (MATH.md §10.3
    step 2), reads the right model; and the FCA's ``num_models`` desired
    epochs (step 1) each find a distinct record within 0.4 % of the desired
    epoch for ``num_models`` up to 500.

    Parameters
    ----------
    last_epoch : int
        Last epoch of the fit, >= 0.
    dense_until : int
        Keep every epoch up to this one, >= 0.
    per_decade : int
        About this many kept epochs per decade after ``dense_until``, >= 1.

    Returns
    -------
    ndarray of int, ascending
    """
    for name, value, low in (("last_epoch", last_epoch, 0), ("dense_until", dense_until, 0),
                             ("per_decade", per_decade, 1)):
        if not _is_int(value, low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    q = max(1, round(per_decade / math.log(10)))
    kept = list(range(min(dense_until, last_epoch) + 1))
    e = dense_until
    while True:
        e += max(1, (2 * e + q) // (2 * q))  # e + round(e / q) in integers
        if e > last_epoch:
            break
        kept.append(e)
    if kept[-1] != last_epoch:
        kept.append(last_epoch)
    return np.array(kept, dtype=np.int64)


def line_search_epochs(schedule, max_epochs: int) -> tuple[int, ...]:
    """The epochs of a line-search schedule, ascending.

    Parameters
    ----------
    schedule : sequence of int, or mapping
        A list of epochs in ``[1, max_epochs]`` (:func:`line_search_epoch_limit`);
        ``{'log': n}``: the distinct values of ``round(logspace(0,
        log10(max_epochs), n))`` (at most n epochs from 1 to max_epochs;
        :data:`LINE_SEARCH_LOG`); ``{'every': k}``: ``k, 2k, …`` up to
        max_epochs (:data:`LINE_SEARCH_EVERY`).
    max_epochs : int
        Last epoch of the fit, >= 1.

    Returns
    -------
    tuple of int

    Raises
    ------
    InvalidValue
        ``field`` 'epochs' (a listed epoch, or not a schedule), 'log' or 'every'.
    """
    if not _is_int(max_epochs, 1):
        raise ValueError(f"max_epochs must be an integer >= 1, got {max_epochs!r}")
    if isinstance(schedule, Mapping):
        if len(schedule) != 1 or next(iter(schedule)) not in ("log", "every"):
            raise InvalidValue("epochs", f"a schedule mapping is {{'log': n}} or {{'every': k}}, "
                                         f"got {dict(schedule)!r}")
        (kind, n), = schedule.items()
        limit = LINE_SEARCH_LOG if kind == "log" else LINE_SEARCH_EVERY
        if not _is_int(n) or not limit.allows(n):
            raise InvalidValue(kind, f"{kind!r} must be {limit.describe()}, got {n!r}")
        if kind == "every":
            return tuple(range(n, max_epochs + 1, n))
        return tuple(int(e) for e in np.unique(np.round(np.logspace(0, np.log10(max_epochs), n))))
    if isinstance(schedule, (str, bytes)) or not isinstance(schedule, (Sequence, np.ndarray)):
        raise InvalidValue("epochs", f"expected a list of epochs, {{'log': n}} or {{'every': k}}, "
                                     f"got {schedule!r}")
    epochs = list(schedule)
    limit = line_search_epoch_limit(max_epochs)
    if not all(_is_int(e) and limit.allows(e) for e in epochs):
        raise InvalidValue("epochs", f"epochs must be integers in [1, max_epochs = {max_epochs}], "
                                     f"got {epochs}")
    return tuple(sorted(set(int(e) for e in epochs)))


@dataclass(frozen=True)
class RecordingSchedule:
    """``FitOptions.snapshot_epochs`` value for long fits: :func:`recorded_epochs`.

    Parameters
    ----------
    dense_until : int
        Every epoch up to this one is kept (default 500).
    per_decade : int
        About this many kept epochs per decade after that (default 300).
    """

    dense_until: int = 500
    per_decade: int = 300

    def __post_init__(self):
        recorded_epochs(0, self.dense_until, self.per_decade)  # validates

    def epochs(self, last_epoch: int) -> np.ndarray:
        """The kept epochs of a fit that ends at ``last_epoch`` (ascending, ``last_epoch`` included)."""
        return recorded_epochs(last_epoch, self.dense_until, self.per_decade)


@dataclass(frozen=True)
class FitOptions:
    """Settings of a fit.

    Parameters
    ----------
    optimizer : {'GD', 'ADAM'}
    max_epochs : int
        Number of epochs (passes over the training data), >= 1.
    mini_batch_number : int
        Batches per datasample and epoch, >= 1.
    params_to_opt : sequence of {'F', 'F0', 'D', 'Fr', 'C'}
        Fitted parameters, updated in this order after each batch.
    learning_rate : mapping
        GD: ``{param: rate}`` for every fitted parameter. ADAM: ``{'alpha': a}``
        (a number, or ``{param: a}``) and optional ``beta1`` (0.9),
        ``beta2`` (0.99), ``epsilon`` (1e-8).
    seed : int
        Seed of the mini-batch shuffling.
    Nv : int or None
        Eigenpairs kept (None: N - 2).
    snapshot_epochs : sequence of int, RecordingSchedule, mapping or None
        Epochs whose parameters are kept in ``FitResult.snapshots``: a list
        of epochs, or a :class:`RecordingSchedule` (or a mapping of its
        fields, e.g. ``{'dense_until': 500, 'per_decade': 300}``) for long
        fits. The last completed epoch is always kept. None keeps every
        epoch (mind the memory of a long fit).
    line_search : mapping or None
        Line searches on C (in [1, 150] Hz) and D (in [0.02, 10]):
        ``{'C': {...}, 'D': {...}}`` (either or both), each
        ``{'epochs': E, 'searches_per_epoch': n, 'max_fun_eval': m}``:

        - ``epochs``: the epochs (passes, 1 … max_epochs) that search: a
          list, ``{'log': n}`` (n log-spaced epochs from 1 to max_epochs) or
          ``{'every': k}`` (k, 2k, …); see :func:`line_search_epochs`;
        - ``searches_per_epoch`` (default 1, at most mini_batch_number; the
          reference's ``nSearchPerEpoch``): in a searching epoch, after the
          updates of each of the first n batches of each datasample, that
          batch's NLL is minimised over the parameter rows its datasample
          uses (with one batch: the datasample's whole training data);
        - ``max_fun_eval`` (default 5): NLL evaluations per search
          (bounded L-BFGS-B).

        The parameter need not be in ``params_to_opt``: a search alone can
        fit it. C is searched before D.
    """

    optimizer: str = "ADAM"
    max_epochs: int = 100
    mini_batch_number: int = 1
    params_to_opt: Sequence[str] = ("F",)
    learning_rate: Mapping | None = None
    seed: int = 0
    Nv: int | None = None
    snapshot_epochs: Sequence[int] | RecordingSchedule | Mapping | None = None
    line_search: Mapping | None = None

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for limit, value in ((EPOCHS, self.max_epochs), (MINI_BATCHES, self.mini_batch_number),
                             (SEED, self.seed)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not limit.allows(value):
                raise InvalidValue(limit.name, f"{limit.name} must be {limit.describe()}, got {value!r}")
        params = tuple(self.params_to_opt)
        bad = [p for p in params if p not in FITTABLE]
        if bad or not params or len(set(params)) != len(params):
            raise ValueError(f"params_to_opt must list distinct names among {list(FITTABLE)}, got {list(params)}")
        object.__setattr__(self, "params_to_opt", params)
        object.__setattr__(self, "learning_rate", self._validated_rates())
        object.__setattr__(self, "snapshot_epochs", self._validated_snapshots())
        object.__setattr__(self, "line_search", self._validated_line_search())

    def _validated_line_search(self) -> dict | None:
        if self.line_search is None:
            return None
        if not isinstance(self.line_search, Mapping):
            raise ValueError(f"line_search must be a mapping {{'C': {{...}}, 'D': {{...}}}} or None, "
                             f"got {self.line_search!r}")
        unknown = set(self.line_search) - set(LINE_SEARCH_BOUNDS)
        if unknown:
            raise ValueError(f"line_search has unknown keys {sorted(unknown)}; allowed: C, D")
        out = {}
        for p in LINE_SEARCH_BOUNDS:  # C before D, whatever the mapping's order
            if p not in self.line_search:
                continue
            spec = self.line_search[p]
            where = f"line_search[{p!r}]"
            if not isinstance(spec, Mapping):
                raise ValueError(f"{where} must be a mapping with epochs, searches_per_epoch, max_fun_eval; "
                                 f"got {spec!r}")
            unknown = set(spec) - {"epochs", "searches_per_epoch", "max_fun_eval"}
            if unknown:
                raise ValueError(f"{where} has unknown keys {sorted(unknown)}; "
                                 "allowed: epochs, searches_per_epoch, max_fun_eval")
            if "epochs" not in spec:
                raise ValueError(f"{where} needs 'epochs': a list, {{'log': n}} or {{'every': k}}")
            epochs = spec["epochs"]
            try:
                listed = line_search_epochs(epochs, self.max_epochs)
            except ValueError as exc:
                raise InvalidValue(f"line_search:{p}:epochs", f"{where}['epochs']: {exc}") from None
            # A schedule stays a schedule, so that a copy with another max_epochs spreads it anew.
            epochs = dict(epochs) if isinstance(epochs, Mapping) else listed
            n = spec.get("searches_per_epoch", 1)
            if not _is_int(n) or not searches_limit(self.mini_batch_number).allows(n):
                raise InvalidValue(f"line_search:{p}:searches_per_epoch",
                                   f"{where}['searches_per_epoch'] must be an integer in "
                                   f"[1, mini_batch_number = {self.mini_batch_number}], got {n!r}")
            m = spec.get("max_fun_eval", 5)
            if not _is_int(m) or not MAX_FUN_EVAL.allows(m):
                raise InvalidValue(f"line_search:{p}:max_fun_eval",
                                   f"{where}['max_fun_eval'] must be {MAX_FUN_EVAL.describe()}, got {m!r}")
            out[p] = {"epochs": epochs, "searches_per_epoch": int(n), "max_fun_eval": int(m)}
        return out or None

    def _validated_snapshots(self):
        snaps = self.snapshot_epochs
        if snaps is None or isinstance(snaps, RecordingSchedule):
            return snaps
        if isinstance(snaps, Mapping):
            unknown = set(snaps) - {"dense_until", "per_decade"}
            if unknown:
                raise ValueError(f"snapshot_epochs has unknown keys {sorted(unknown)}; allowed: dense_until, per_decade")
            try:
                return RecordingSchedule(**snaps)
            except ValueError as exc:
                raise ValueError(f"snapshot_epochs: {exc}") from None
        if isinstance(snaps, (str, bytes)) or not isinstance(snaps, Sequence) and not isinstance(snaps, np.ndarray):
            raise ValueError(f"snapshot_epochs must be a list of epochs, a RecordingSchedule or None, got {snaps!r}")
        epochs = list(snaps)
        if not all(_is_int(e) for e in epochs):
            raise ValueError(f"snapshot_epochs must be integers >= 0, got {epochs}")
        return tuple(sorted(set(int(e) for e in epochs)))

    def _validated_rates(self) -> dict:
        lr = dict(self.learning_rate or {})
        if self.optimizer == "GD":
            missing = [p for p in self.params_to_opt if p not in lr]
            if missing:
                raise ValueError(f"GD needs a learning rate for each fitted parameter; missing {missing}")
            unknown = set(lr) - set(FITTABLE)
            if unknown:
                raise ValueError(f"learning_rate has unknown keys {sorted(unknown)}; allowed: {list(FITTABLE)}")
            rates = {p: lr[p] for p in self.params_to_opt}
        else:
            unknown = set(lr) - {"alpha", "beta1", "beta2", "epsilon"}
            if unknown:
                raise ValueError(
                    f"ADAM learning_rate has unknown keys {sorted(unknown)}; allowed: alpha, beta1, beta2, epsilon")
            alpha = lr.get("alpha", 0.05)
            alphas = dict(alpha) if isinstance(alpha, Mapping) else {p: alpha for p in self.params_to_opt}
            missing = [p for p in self.params_to_opt if p not in alphas]
            if missing:
                raise ValueError(f"ADAM alpha is missing for {missing}")
            rates = {p: alphas[p] for p in self.params_to_opt}
            for key, default, lo, hi in (("beta1", 0.9, 0, 1), ("beta2", 0.99, 0, 1), ("epsilon", 1e-8, 0, math.inf)):
                v = lr.get(key, default)
                if not (isinstance(v, (int, float)) and lo <= v < hi) or (key == "epsilon" and v <= 0):
                    raise ValueError(f"ADAM {key} must be a number in [{lo}, {hi}), got {v!r}")
                rates[key] = float(v)
        for p in self.params_to_opt:
            v = rates[p]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not LEARNING_RATE.allows(v):
                raise InvalidValue(f"learning_rate:{'alpha' if self.optimizer == 'ADAM' else p}",
                                   f"learning rate of {p} must be a finite number > 0, got {v!r}")
            rates[p] = float(v)
        return rates


CHECKPOINT_FORMAT = "flowdash.fit_checkpoint"
CHECKPOINT_VERSION = 1
_META_KEYS = {"format", "version", "epoch", "seconds", "optimizer", "params_to_opt", "n_datasamples", "grid",
              "boundary_mode", "rates_rescaled", "rng"}


@dataclass(frozen=True, eq=False)
class FitCheckpoint:
    """Everything that decides a fit's next epochs, as of a completed epoch.

    Plain data only, so that it can be stored anywhere and resumed by
    another process on another machine: ``arrays`` (name → float64 / int64
    ndarray) and ``meta`` (JSON-able). Pass it to ``fit(..., resume=)``.

    Attributes
    ----------
    arrays : dict of str → ndarray
        ``peq`` (R_peq, N), ``p0`` (R_p0, N; absent for an equilibrium
        model), ``D`` (R_D,), ``fr`` (R_fr, N, n_neurons) Hz: the model
        exactly as it is; ``nll_train``, ``nll_val`` (K,): its NLLs (nan
        without validation data); for ADAM, per fitted parameter P:
        ``adam_P_m`` (R, …) and ``adam_P_v`` (R, …) — the moments of each of
        its R rows (m has the parameter's shape: (N,) for F and F0, () for
        D, (N, n_neurons) for Fr, (n_neurons,) for C; v is () for F and F0,
        (n_neurons,) for Fr and C) — and ``adam_P_t`` (R,) int64, the step
        counts.
    meta : dict
        ``format`` ('flowdash.fit_checkpoint'), ``version`` (1), ``epoch``
        (epochs done), ``seconds`` (wall time so far), ``optimizer``,
        ``params_to_opt`` (list), ``n_datasamples`` (K), ``grid`` (``Np``,
        ``Ne``, ``xbegin``, ``xend``), ``boundary_mode``, ``rates_rescaled``
        (the initial rate rescaling was applied), ``rng`` (the mini-batch
        generator: ``bit_generator`` 'PCG64', ``state`` and ``inc`` as
        decimal strings (128-bit), ``has_uint32``, ``uinteger``).
    """

    arrays: Mapping[str, np.ndarray]
    meta: Mapping[str, Any]

    def __post_init__(self):
        try:
            _check_checkpoint(self.arrays, self.meta)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"not a valid flowdash fit checkpoint: {detail}") from None

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return int(self.meta["epoch"])

    @property
    def seconds(self) -> float:
        return float(self.meta["seconds"])

    def model(self, like: Model) -> Model:
        """``like`` (same grid, boundary and rows) with the checkpoint's parameters."""
        a = self.arrays
        return like.replace(peq=a["peq"], p0=a.get("p0"), D=a["D"], fr=a["fr"])

    def to_bytes(self) -> bytes:
        """The checkpoint as an uncompressed ``.npz`` (no pickled objects); see :meth:`from_bytes`."""
        buf = io.BytesIO()
        np.savez(buf, __meta__=np.array(json.dumps(dict(self.meta))), **self.arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "FitCheckpoint":
        """Read :meth:`to_bytes` output; anything else raises ValueError (nothing is unpickled)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        try:
            z = np.load(io.BytesIO(bytes(data)), allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with z:
                meta = json.loads(str(z["__meta__"][()]))
                arrays = {k: z[k] for k in z.files if k != "__meta__"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a flowdash fit checkpoint: {exc}") from None
        return cls(arrays, meta)


def _check_checkpoint(arrays: Mapping, meta: Mapping):
    """Internal consistency of a checkpoint (raises KeyError/TypeError/ValueError)."""
    if not isinstance(meta, Mapping) or not isinstance(arrays, Mapping):
        raise TypeError("arrays and meta must be mappings")
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"format/version must be {CHECKPOINT_FORMAT!r}/{CHECKPOINT_VERSION}, "
                         f"got {meta.get('format')!r}/{meta.get('version')!r}")
    missing = _META_KEYS - set(meta)
    if missing:
        raise ValueError(f"meta lacks {sorted(missing)}")
    if not _is_int(meta["epoch"]) or not _is_int(meta["n_datasamples"], 1):
        raise ValueError("epoch and n_datasamples must be integers")
    if meta["optimizer"] not in OPTIMIZERS or not isinstance(meta["params_to_opt"], list) \
            or not set(meta["params_to_opt"]) <= set(FITTABLE):
        raise ValueError(f"unknown optimizer {meta['optimizer']!r} or params_to_opt {meta['params_to_opt']!r}")
    if not isinstance(meta["rates_rescaled"], bool) or not isinstance(meta["seconds"], (int, float)):
        raise ValueError("rates_rescaled must be true/false and seconds a number")
    g = meta["grid"]
    N = (int(g["Np"]) - 1) * int(g["Ne"]) + 1
    K = meta["n_datasamples"]
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fi":
            raise TypeError(f"{key} must be a numeric ndarray")
    peq, D, fr = arrays["peq"], arrays["D"], arrays["fr"]
    if peq.ndim != 2 or peq.shape[1] != N or D.ndim != 1 or fr.ndim != 3 or fr.shape[1] != N:
        raise ValueError(f"peq, D, fr have shapes {peq.shape}, {D.shape}, {fr.shape} on a grid of N = {N}")
    if "p0" in arrays and (arrays["p0"].ndim != 2 or arrays["p0"].shape[1] != N):
        raise ValueError(f"p0 has shape {arrays['p0'].shape} on a grid of N = {N}")
    for key in ("nll_train", "nll_val"):
        if arrays[key].shape != (K,):
            raise ValueError(f"{key} has shape {arrays[key].shape}, expected ({K},)")
    if meta["optimizer"] == "ADAM":
        rows = {"peq": len(peq), "p0": len(arrays.get("p0", ())), "D": len(D), "fr": len(fr)}
        for p in meta["params_to_opt"]:
            m_shape, v_shape = _adam_shapes(N, fr.shape[2])[p]
            R = rows[_ROW_OF[p]]
            for part, shape in (("m", m_shape), ("v", v_shape), ("t", ())):
                if arrays[f"adam_{p}_{part}"].shape != (R,) + shape:
                    raise ValueError(f"adam_{p}_{part} has shape {arrays[f'adam_{p}_{part}'].shape}, "
                                     f"expected {(R,) + shape}")
    rng = meta["rng"]
    if rng.get("bit_generator") != "PCG64":
        raise ValueError(f"the mini-batch generator must be PCG64, got {rng.get('bit_generator')!r}")
    int(rng["state"]), int(rng["inc"]), int(rng["has_uint32"]), int(rng["uinteger"])


def _make_checkpoint(parts: tuple, options: FitOptions, K: int) -> FitCheckpoint:
    epoch, model, nll_tr, nll_va, adam_rows, rng_state, rescaled, seconds = parts
    arrays = {"peq": np.array(model.peq), "D": np.array(model.D), "fr": np.array(model.fr),
              "nll_train": np.array(nll_tr, dtype=float), "nll_val": np.array(nll_va, dtype=float)}
    if model.p0 is not None:
        arrays["p0"] = np.array(model.p0)
    for p, rows in adam_rows.items():
        arrays[f"adam_{p}_m"] = np.array([m for m, _, _ in rows], dtype=float)
        arrays[f"adam_{p}_v"] = np.array([v for _, v, _ in rows], dtype=float)
        arrays[f"adam_{p}_t"] = np.array([t for _, _, t in rows], dtype=np.int64)
    grid = model.grid
    inner = rng_state["state"]
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": int(epoch),
            "seconds": float(seconds), "optimizer": options.optimizer, "params_to_opt": list(options.params_to_opt),
            "n_datasamples": int(K),
            "grid": {"Np": grid.Np, "Ne": grid.Ne, "xbegin": grid.xbegin, "xend": grid.xend},
            "boundary_mode": model.boundary_mode, "rates_rescaled": bool(rescaled),
            "rng": {"bit_generator": rng_state["bit_generator"], "state": str(inner["state"]),
                    "inc": str(inner["inc"]), "has_uint32": int(rng_state["has_uint32"]),
                    "uinteger": int(rng_state["uinteger"])}}
    return FitCheckpoint(arrays, meta)


def _rng_from(meta_rng: Mapping) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = {"bit_generator": "PCG64",
                               "state": {"state": int(meta_rng["state"]), "inc": int(meta_rng["inc"])},
                               "has_uint32": int(meta_rng["has_uint32"]), "uinteger": int(meta_rng["uinteger"])}
    return rng


def _validate_resume(ckpt: FitCheckpoint, model: Model, K: int, options: FitOptions):
    """A checkpoint must continue this very fit: same grid, rows, parameters, optimizer, datasamples."""
    if not isinstance(ckpt, FitCheckpoint):
        raise TypeError(f"resume must be a FitCheckpoint, got {type(ckpt).__name__}")
    meta, a = ckpt.meta, ckpt.arrays
    grid = model.grid
    theirs = {k: meta["grid"][k] for k in ("Np", "Ne", "xbegin", "xend")}
    ours = {"Np": grid.Np, "Ne": grid.Ne, "xbegin": grid.xbegin, "xend": grid.xend}
    if theirs != ours:
        raise ValueError(f"resume: the checkpoint's grid {theirs} differs from the model's {ours}")
    if meta["boundary_mode"] != model.boundary_mode:
        raise ValueError(f"resume: the checkpoint's boundary_mode {meta['boundary_mode']!r} differs from "
                         f"the model's {model.boundary_mode!r}")
    if ("p0" in a) == model.equilibrium:
        has = "has" if "p0" in a else "has no"
        raise ValueError(f"resume: the checkpoint {has} p0 but the model is {'' if model.equilibrium else 'not '}"
                         "an equilibrium model")
    rows = {"peq": len(a["peq"]), "p0": len(a.get("p0", [0])), "D": len(a["D"]), "fr": len(a["fr"])}
    if rows != model.params_size():
        raise ValueError(f"resume: the checkpoint's parameter rows {rows} differ from the model's "
                         f"{model.params_size()}")
    if a["fr"].shape[2] != model.n_neurons:
        raise ValueError(f"resume: the checkpoint has {a['fr'].shape[2]} neurons, the model {model.n_neurons}")
    if meta["n_datasamples"] != K:
        raise ValueError(f"resume: the checkpoint was fitted to {meta['n_datasamples']} datasample(s), "
                         f"the data has {K}")
    if list(meta["params_to_opt"]) != list(options.params_to_opt):
        raise ValueError(f"resume: the checkpoint fitted params_to_opt {list(meta['params_to_opt'])}, "
                         f"the options say {list(options.params_to_opt)}")
    if meta["optimizer"] != options.optimizer:
        raise ValueError(f"resume: the checkpoint's optimizer is {meta['optimizer']!r}, "
                         f"the options say {options.optimizer!r}")
    if ckpt.epoch > options.max_epochs:
        raise ValueError(f"resume: max_epochs ({options.max_epochs}) is below the checkpoint's epoch "
                         f"({ckpt.epoch}); max_epochs counts every epoch since the fit began")


@dataclass(frozen=True)
class EpochRecord:
    """What ``on_epoch`` receives after each epoch.

    Attributes
    ----------
    epoch : int
        Epochs done (0 = the initial model).
    nll_train, nll_val : ndarray, shape (K,)
        NLL of each datasample's training / validation data (nan without
        validation data).
    model : Model
        The parameters after ``epoch`` epochs.
    seconds : float
        Wall time since the fit started.
    kept : bool
        Whether this epoch's model goes into ``FitResult.snapshots``
        (``snapshot_epochs``, or the final epoch ``max_epochs``).
    """

    epoch: int
    nll_train: np.ndarray
    nll_val: np.ndarray
    model: Model
    seconds: float
    kept: bool = True
    _checkpoint: Callable[[], "FitCheckpoint"] | None = field(default=None, repr=False, compare=False)

    def checkpoint(self) -> "FitCheckpoint":
        """The :class:`FitCheckpoint` after this epoch, to continue the fit from here.

        Built on each call (a few copies of the model-sized arrays), so call
        it only for the epochs you save; it stays valid after the fit moved on.
        """
        if self._checkpoint is None:
            raise ValueError(f"the record of epoch {self.epoch} carries no checkpoint")
        return self._checkpoint()


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    model : Model
        Parameters after the last completed epoch.
    nll_train, nll_val : ndarray, shape (K, epochs + 1)
        NLL of each datasample after 0, 1, … epochs (nan where there is no
        validation data).
    epochs : ndarray, shape (epochs + 1,)
        The epoch numbers recorded.
    snapshots : dict of int → Model
        Parameters at the snapshot epochs that were reached.
    stopped : bool
        True if ``on_epoch`` stopped the fit early (or it diverged).
    seconds : float
        Wall time of the fit (of all its parts, when resumed).
    checkpoint : FitCheckpoint or None
        To continue from the last completed epoch (``fit(..., resume=)``);
        None only when not even epoch 0 was completed.

    A resumed fit's arrays start at the checkpoint's epoch (its NLLs are
    the checkpoint's, not computed again).
    """

    model: Model
    nll_train: np.ndarray
    nll_val: np.ndarray
    epochs: np.ndarray
    snapshots: dict = field(default_factory=dict)
    stopped: bool = False
    seconds: float = 0.0
    checkpoint: "FitCheckpoint | None" = None

    @property
    def best_epoch(self) -> int:
        """Epoch of minimal total validation NLL (training NLL without validation data)."""
        curve = self.nll_val if np.all(np.isfinite(self.nll_val)) else self.nll_train
        return int(self.epochs[np.argmin(curve.sum(axis=0))])


class FitDiverged(ValueError):
    """An epoch's NLL was not finite: the step was too large for this model.

    Attributes
    ----------
    result : FitResult
        Everything up to the last finite epoch.
    """

    def __init__(self, message: str, result: FitResult):
        super().__init__(message)
        self.result = result


class _Adam:
    def __init__(self, alpha, beta1, beta2, eps, shape, v_shape):
        self.alpha, self.beta1, self.beta2, self.eps = alpha, beta1, beta2, eps
        self.m = np.zeros(shape)
        self.v = np.zeros(v_shape)
        self.t = 0

    def step(self, g: np.ndarray, s: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * s
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return self.alpha * m_hat / (np.sqrt(v_hat) + self.eps)


def _adam_s(param: str, g: np.ndarray) -> np.ndarray:
    # The reference's ADAM uses one second moment per function (plain sum
    # over nodes, no quadrature weights), per neuron for the rate shapes.
    if param in ("F", "F0"):
        return np.sum(g**2)
    if param == "Fr":
        return np.sum(g**2, axis=0)
    return g**2


class _State:
    """Mutable parameter rows plus the caches that depend on them."""

    def __init__(self, model: Model, K: int, Nv: int | None):
        self.grid = model.grid
        self.boundary_mode = model.boundary_mode
        self.boundary_conditions = model.boundary_conditions
        self.K = K
        self.Nv = Nv
        self.peq = np.array(model.peq)
        self.p0 = None if model.p0 is None else np.array(model.p0)
        self.D = np.array(model.D)
        self.fr = np.array(model.fr)
        self.version = {"peq": [0] * len(self.peq), "p0": [0] * (0 if self.p0 is None else len(self.p0)),
                        "D": [0] * len(self.D), "fr": [0] * len(self.fr)}
        self._spectra: dict = {}
        self._ops: dict = {}

    def row(self, kind: str, k: int) -> int:
        n = len(getattr(self, kind))
        return 0 if n == 1 else k

    def touch(self, kind: str, r: int):
        self.version[kind][r] += 1

    def model(self) -> Model:
        return Model(self.grid, self.peq.copy(), None if self.p0 is None else self.p0.copy(),
                     self.D.copy(), self.fr.copy(), self.boundary_mode, self.boundary_conditions)

    def key(self, k: int) -> tuple:
        v = self.version
        p0key = None if self.p0 is None else v["p0"][self.row("p0", k)]
        return (v["peq"][self.row("peq", k)], v["D"][self.row("D", k)], v["fr"][self.row("fr", k)], p0key,
                self.row("peq", k), self.row("D", k), self.row("fr", k))

    def ops(self, k: int) -> Operators:
        key = (k,) + self.key(k)
        cached = self._ops.get(k)
        if cached is not None and cached[0] == key:
            return cached[1]
        rp, rd = self.row("peq", k), self.row("D", k)
        skey = (rp, rd, self.version["peq"][rp], self.version["D"][rd])
        spectrum = self._spectra.get(skey)
        if spectrum is None:
            spectrum = solve_spectrum(self.grid, self.peq[rp], float(self.D[rd]), self.boundary_conditions, self.Nv)
            # Old solutions of this row are stale for good.
            self._spectra = {kk: s for kk, s in self._spectra.items() if kk[:2] != (rp, rd)}
            self._spectra[skey] = spectrum
        ops = Operators.build(self.model(), k, self.Nv, spectrum=spectrum)
        self._ops[k] = (key, ops)
        return ops


def _as_list(data, name: str) -> list:
    if data is None:
        return []
    sets = [data] if hasattr(data, "trials") else list(data)
    for d in sets:
        if not hasattr(d, "trials"):
            raise TypeError(f"{name} must be a SpikeData or a list of SpikeData, got {type(d).__name__}")
    return sets


def _rescale_rates(state: _State, train: list):
    """Scale initial rates so that ``Σ w peq f_n`` equals each neuron's data rate."""
    w = state.grid.w
    factors = []
    for k, data in enumerate(train):
        target = np.asarray(data.trial_average_rates(), dtype=float)
        fr = state.fr[state.row("fr", k)]
        model_rate = (w * state.peq[state.row("peq", k)]) @ fr
        factors.append(target[: fr.shape[1]] / model_rate)
    factors = np.array(factors)
    if len(state.fr) == 1:
        state.fr[0] *= factors.mean(axis=0)[None, :]
    else:
        state.fr *= factors[:, None, :]
    for r in range(len(state.fr)):
        state.touch("fr", r)


def _batches(train: list, mini_batch_number: int, rng: np.random.Generator) -> list:
    """(datasample, trial indices) for one epoch, in a shuffled order."""
    out = []
    for k, data in enumerate(train):
        n = data.n_trials
        if mini_batch_number == 1:
            out.append((k, None))
            continue
        order = rng.permutation(n)
        size = math.ceil(n / mini_batch_number)
        out += [(k, order[i:i + size]) for i in range(0, n, size)]
    return [out[i] for i in rng.permutation(len(out))]


def _validate_fit(model: Model, train: list, val: list, options: FitOptions):
    K = len(train)
    if K == 0:
        raise ValueError("train must hold at least one SpikeData")
    if val and len(val) != K:
        raise ValueError(f"val must have one SpikeData per datasample ({K}), got {len(val)}")
    sizes = model.params_size()
    bad = {p: s for p, s in sizes.items() if s not in (1, K)}
    if bad:
        raise ValueError(f"the model's parameters must have 1 or K = {K} rows (one per datasample); got {bad}")
    if "F0" in options.params_to_opt and model.equilibrium:
        raise ValueError("F0 cannot be fitted in an equilibrium model (p0 = peq); give the initial model a p0")
    for d in train + val:
        if d.n_neurons > model.n_neurons:
            raise ValueError(f"the data has {d.n_neurons} neurons but the model has {model.n_neurons}")
        if d.n_trials == 0:
            raise ValueError("every training and validation set needs at least one trial")
    for d in train:
        if not mini_batch_limit(d.n_trials).allows(options.mini_batch_number):
            raise InvalidValue(
                "mini_batch_number",
                f"mini_batch_number ({options.mini_batch_number}) exceeds the number of training trials ({d.n_trials})")
    validate_Nv(model.grid, options.Nv)


def fit(model: Model, train, val=None, options: FitOptions | None = None,
        on_epoch: Callable[[EpochRecord], bool | None] | None = None, *,
        resume: FitCheckpoint | None = None) -> FitResult:
    """Fit ``model`` to spike data by gradient descent on the exact NLL.

    Parameters
    ----------
    model : Model
        Initial model; its parameter rows decide what is shared (1 row) and
        what is per datasample (K rows). When resuming, only its grid,
        boundary setting and rows are used: the parameter values are the
        checkpoint's.
    train : SpikeData or list of K SpikeData
        Training data of each datasample.
    val : SpikeData or list of K SpikeData, optional
        Validation data of each datasample.
    options : FitOptions
    on_epoch : callable, optional
        Called with an :class:`EpochRecord` after epoch 0 (the initial model)
        and after every epoch. If it returns True, the fit stops there and
        returns what it has.
    resume : FitCheckpoint, optional
        Continue a fit from this checkpoint (``FitResult.checkpoint``,
        ``EpochRecord.checkpoint()``): with the same data, options and model
        layout, the epochs after it are exactly those of the uninterrupted
        fit. ``options.max_epochs`` is the total, counted from the start of
        the first fit; ``options.seed`` is unused (the checkpoint holds the
        mini-batch generator's state). The checkpoint's epoch is not
        recorded again: ``on_epoch`` first sees the epoch after it.

    Returns
    -------
    FitResult

    Raises
    ------
    FitDiverged
        When the parameters or an NLL stop being finite (too large a step);
        its ``result`` holds the epochs before.
    ValueError
        Bad data for this model, or a checkpoint that does not fit the
        model, data or options (the message names what differs).
    """
    options = options or FitOptions()
    train, val = _as_list(train, "train"), _as_list(val, "val")
    _validate_fit(model, train, val, options)
    if resume is not None:
        _validate_resume(resume, model, len(train), options)
    # Parallelism comes from running passes side by side; BLAS threads would
    # only compete with them (and spin between calls).
    with blas_threads(1):
        return _fit(model, train, val, options, on_epoch, resume)


def _snapshot_set(options: FitOptions) -> set | None:
    snaps = options.snapshot_epochs
    if isinstance(snaps, RecordingSchedule):
        return set(snaps.epochs(options.max_epochs).tolist())
    return None if snaps is None else set(snaps)


def _adam_shapes(N: int, n_neurons: int) -> dict:
    """(m shape, v shape) of one parameter row's ADAM state."""
    return {"F": ((N,), ()), "F0": ((N,), ()), "D": ((), ()), "Fr": ((N, n_neurons), (n_neurons,)),
            "C": ((n_neurons,), (n_neurons,))}


def _fit(model: Model, train: list, val: list, options: FitOptions, on_epoch,
         resume: FitCheckpoint | None) -> FitResult:
    t0 = time.perf_counter() - (0.0 if resume is None else resume.seconds)
    K = len(train)
    state = _State(model if resume is None else resume.model(model), K, options.Nv)
    params = options.params_to_opt
    if resume is None:
        rng = np.random.default_rng(options.seed)
        rescaled = False
    else:
        rng = _rng_from(resume.meta["rng"])
        rescaled = resume.meta["rates_rescaled"]
    if {"Fr", "C"} & set(params) and not rescaled:
        _rescale_rates(state, train)
        rescaled = True

    adam: dict = {}
    if options.optimizer == "ADAM":
        lr = options.learning_rate
        shapes = _adam_shapes(state.grid.N, state.fr.shape[2])
        for p in params:
            rows = len(getattr(state, _ROW_OF[p]))
            adam[p] = [_Adam(lr[p], lr["beta1"], lr["beta2"], lr["epsilon"], *shapes[p]) for _ in range(rows)]
            if resume is not None:
                for r, a in enumerate(adam[p]):
                    a.m = resume.arrays[f"adam_{p}_m"][r].copy()
                    a.v = resume.arrays[f"adam_{p}_v"][r].copy()
                    a.t = int(resume.arrays[f"adam_{p}_t"][r])

    # With one batch per datasample and no shared fitted parameter, the
    # gradient at the model after epoch e is exactly the first gradient of
    # epoch e+1, so one pass gives both that and NLL_train[e].
    shared_fitted = any(len(getattr(state, _ROW_OF[p])) == 1 for p in params)
    reuse_grad = options.mini_batch_number == 1 and (K == 1 or not shared_fitted)
    grad_cache: dict = {}
    grads_needed = params

    def evaluate(epoch_done: int) -> tuple[np.ndarray, np.ndarray]:
        nll_tr, nll_va = np.empty(K), np.full(K, np.nan)
        for k in range(K):
            ops = state.ops(k)
            # The validation pass shares the spectral solve and runs beside the training pass.
            val_job = submit(batch_nll, ops, val[k]) if val else None
            # Also at the last epoch: a continuation (resume) computes the first gradient
            # with this pass, so the NLL recorded here is the one an uninterrupted fit
            # records at this epoch, to the last bit (the NLL-only pass sums differently).
            if reuse_grad:
                value, grad = batch_nll_and_grad(ops, train[k], grads_needed)
                grad_cache[k] = ((k,) + state.key(k), value, grad)
                nll_tr[k] = value
            else:
                nll_tr[k] = batch_nll(ops, train[k])
            if val_job is not None:
                nll_va[k] = val_job.result()
        return nll_tr, nll_va

    snapshot_set = _snapshot_set(options)
    hist_tr, hist_va, snapshots = [], [], {}
    first_epoch = 0 if resume is None else resume.epoch
    # What the next epochs depend on, as of the last completed epoch: taken
    # by reference every epoch (ADAM replaces its arrays, never writes into
    # them), turned into a FitCheckpoint only when asked.
    last = {"parts": None if resume is None else resume}

    def take_parts(epoch: int, model_now: Model, nll_tr, nll_va) -> tuple:
        return (epoch, model_now, nll_tr, nll_va, {p: [(a.m, a.v, a.t) for a in rows] for p, rows in adam.items()},
                rng.bit_generator.state, rescaled, time.perf_counter() - t0)

    def checkpoint() -> FitCheckpoint | None:
        parts = last["parts"]
        return parts if parts is None or isinstance(parts, FitCheckpoint) else _make_checkpoint(parts, options, K)

    if resume is not None:
        hist_tr.append(resume.arrays["nll_train"].copy())
        hist_va.append(resume.arrays["nll_val"].copy())
        last["model"] = resume.model(model)
    else:
        last["model"] = model

    def result(stopped: bool) -> FitResult:
        if snapshot_set is not None and hist_tr:
            snapshots[first_epoch + len(hist_tr) - 1] = last["model"]
        return FitResult(model=last["model"], nll_train=np.array(hist_tr).reshape(-1, K).T,
                         nll_val=np.array(hist_va).reshape(-1, K).T,
                         epochs=np.arange(first_epoch, first_epoch + len(hist_tr)), snapshots=snapshots,
                         stopped=stopped, seconds=time.perf_counter() - t0, checkpoint=checkpoint())

    def diverged(epoch: int) -> FitDiverged:
        return FitDiverged(f"the fit diverged at epoch {epoch} (the NLL is not finite); "
                           "lower the learning rate(s)", result(True))

    def record(epoch: int) -> bool:
        if not all(np.all(np.isfinite(a)) for a in (state.peq, state.D, state.fr)
                   + (() if state.p0 is None else (state.p0,))):
            raise diverged(epoch)
        try:
            nll_tr, nll_va = evaluate(epoch)
        except (ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError, ValueError) as exc:
            if epoch == 0:
                raise
            # After an update, a numerical failure means the step broke the model
            # (e.g. a rate scale driven to 0 makes every spike impossible).
            raise diverged(epoch) from exc
        if not (np.all(np.isfinite(nll_tr)) and (not val or np.all(np.isfinite(nll_va)))):
            raise diverged(epoch)
        hist_tr.append(nll_tr)
        hist_va.append(nll_va)
        current = last["model"] = state.model()
        parts = last["parts"] = take_parts(epoch, current, nll_tr, nll_va)
        kept = snapshot_set is None or epoch in snapshot_set or epoch == options.max_epochs
        if kept:
            snapshots[epoch] = current
        if on_epoch is None:
            return False
        return bool(on_epoch(EpochRecord(epoch, nll_tr.copy(), nll_va.copy(), current, time.perf_counter() - t0,
                                         kept, lambda: _make_checkpoint(parts, options, K))))

    searching = {p: set(line_search_epochs(spec["epochs"], options.max_epochs))
                 for p, spec in (options.line_search or {}).items()}

    epoch = first_epoch
    stopped = False if resume is not None else record(0)
    while not stopped and epoch < options.max_epochs:
        epoch += 1
        searches = [p for p, epochs in searching.items() if epoch in epochs]
        searched = dict.fromkeys(range(K), 0)
        for k, idx in _batches(train, options.mini_batch_number, rng):
            batch = train[k] if idx is None else train[k].subset(idx)
            cached = grad_cache.pop(k, None)
            if idx is None and cached is not None and cached[0] == (k,) + state.key(k):
                grad = cached[2]
            else:
                _, grad = batch_nll_and_grad(state.ops(k), batch, grads_needed)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is checked below
                _apply_updates(state, k, grad, options, adam)
            for p in searches:
                if searched[k] < options.line_search[p]["searches_per_epoch"]:
                    _line_search(state, p, k, batch, options.line_search[p]["max_fun_eval"])
            searched[k] += 1
        stopped = record(epoch)
    return result(stopped)


def _normalised(grid, logp: np.ndarray) -> np.ndarray:
    p = np.exp(logp - logp.max())
    return np.maximum(p / (grid.w @ p), PEQ_FLOOR)


def _apply_updates(state: _State, k: int, grad: dict, options: FitOptions, adam: dict):
    grid = state.grid
    for p in options.params_to_opt:
        r = state.row(_ROW_OF[p], k)
        g = grad[p]
        if options.optimizer == "GD":
            u = options.learning_rate[p] * g
        else:
            u = adam[p][r].step(g, _adam_s(p, g))
        if p == "F":
            # F is recomputed from peq before each update: AD·Dm is not the
            # identity, so carrying F between updates would drift.
            F = grid.derivative(np.log(state.peq[r])) - u
            state.peq[r] = peq_from_force(grid, F)
            state.touch("peq", r)
        elif p == "F0":
            # A library p0 may be 0 at a wall; the floor every fitted p0 gets keeps log finite.
            F0 = grid.derivative(np.log(np.maximum(state.p0[r], PEQ_FLOOR))) - u
            state.p0[r] = _normalised(grid, grid.antiderivative(F0))
            state.touch("p0", r)
        elif p == "D":
            state.D[r] = max(float(state.D[r] - u), D_MIN)
            state.touch("D", r)
        elif p == "C":
            C = state.fr[r][0]
            C_new = np.maximum(C - u, 0.0)
            state.fr[r] = state.fr[r] * (C_new / C)[None, :]
            state.touch("fr", r)
        elif p == "Fr":
            C = state.fr[r][0].copy()
            Fr = grid.derivative(np.log(state.fr[r])) - u
            state.fr[r] = C[None, :] * np.exp(grid.antiderivative(Fr))
            state.touch("fr", r)


def _line_search(state: _State, p: str, k: int, batch, max_fun_eval: int):
    """Bounded L-BFGS-B on C or D of datasample ``k``'s row, on ``batch``'s NLL."""
    kind = _ROW_OF[p]
    r = state.row(kind, k)
    lo, hi = LINE_SEARCH_BOUNDS[p]

    def set_value(theta):
        if p == "D":
            state.D[r] = theta[0]
        else:
            state.fr[r] = state.fr[r] * (theta / state.fr[r][0])[None, :]
        state.touch(kind, r)

    def objective(theta):
        set_value(theta)
        value, grad = batch_nll_and_grad(state.ops(k), batch, (p,))
        return value, np.atleast_1d(grad[p])

    x0 = np.clip(np.atleast_1d(state.D[r] if p == "D" else state.fr[r][0]).astype(float), lo, hi)
    res = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=[(lo, hi)] * len(x0),
                   options={"maxfun": max_fun_eval})
    set_value(res.x if np.isfinite(res.fun) else x0)
