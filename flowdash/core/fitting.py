"""Gradient-descent fitting of a model to spike data (MATH.md §7).

``fit`` runs epochs of mini-batch GD or ADAM over one or several datasamples
and records the training and validation NLL of every datasample after every
epoch. It knows nothing of the dashboard: progress leaves through the
``on_epoch`` hook, which can also stop the fit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy.optimize import minimize

from ._parallel import blas_threads, submit
from .likelihood import Operators, batch_nll, batch_nll_and_grad
from .model import PEQ_FLOOR, Model, peq_from_force
from .spectra import solve_spectrum, validate_Nv

__all__ = ["FitOptions", "EpochRecord", "FitResult", "FitDiverged", "fit", "FITTABLE", "OPTIMIZERS"]

FITTABLE = ("F", "F0", "D", "Fr", "C")
OPTIMIZERS = ("GD", "ADAM")
# The model row each fitted parameter lives in.
_ROW_OF = {"F": "peq", "F0": "p0", "D": "D", "Fr": "fr", "C": "fr"}
D_MIN = 0.01
LINE_SEARCH_BOUNDS = {"C": (1.0, 150.0), "D": (0.02, 10.0)}


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
    snapshot_epochs : sequence of int or None
        Epochs whose parameters are kept in ``FitResult.snapshots``;
        None keeps every epoch.
    line_search : mapping or None
        ``{'epochs': [...], 'params': ['C', 'D'], 'max_fun': 5}``: after each
        listed epoch, minimise the training NLL over C (in [1, 150] Hz)
        and/or D (in [0.02, 10]) by bounded L-BFGS-B.
    """

    optimizer: str = "ADAM"
    max_epochs: int = 100
    mini_batch_number: int = 1
    params_to_opt: Sequence[str] = ("F",)
    learning_rate: Mapping | None = None
    seed: int = 0
    Nv: int | None = None
    snapshot_epochs: Sequence[int] | None = None
    line_search: Mapping | None = None

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name, value in (("max_epochs", self.max_epochs), ("mini_batch_number", self.mini_batch_number)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        params = tuple(self.params_to_opt)
        bad = [p for p in params if p not in FITTABLE]
        if bad or not params or len(set(params)) != len(params):
            raise ValueError(f"params_to_opt must list distinct names among {list(FITTABLE)}, got {list(params)}")
        object.__setattr__(self, "params_to_opt", params)
        object.__setattr__(self, "learning_rate", self._validated_rates())
        if self.line_search is not None:
            ls = dict(self.line_search)
            unknown = set(ls) - {"epochs", "params", "max_fun"}
            if unknown:
                raise ValueError(f"line_search has unknown keys {sorted(unknown)}; allowed: epochs, params, max_fun")
            lp = tuple(ls.get("params", ("C", "D")))
            if any(p not in LINE_SEARCH_BOUNDS for p in lp):
                raise ValueError(f"line_search params must be among ['C', 'D'], got {list(lp)}")
            ls["params"] = lp
            ls["epochs"] = tuple(int(e) for e in ls.get("epochs", ()))
            ls["max_fun"] = int(ls.get("max_fun", 5))
            object.__setattr__(self, "line_search", ls)

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
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not np.isfinite(v) or v <= 0:
                raise ValueError(f"learning rate of {p} must be a finite number > 0, got {v!r}")
            rates[p] = float(v)
        return rates


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
    """

    epoch: int
    nll_train: np.ndarray
    nll_val: np.ndarray
    model: Model
    seconds: float


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
        True if ``on_epoch`` stopped the fit early.
    seconds : float
        Wall time of the fit.
    """

    model: Model
    nll_train: np.ndarray
    nll_val: np.ndarray
    epochs: np.ndarray
    snapshots: dict = field(default_factory=dict)
    stopped: bool = False
    seconds: float = 0.0

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
        if options.mini_batch_number > d.n_trials:
            raise ValueError(
                f"mini_batch_number ({options.mini_batch_number}) exceeds the number of training trials ({d.n_trials})")
    validate_Nv(model.grid, options.Nv)


def fit(model: Model, train, val=None, options: FitOptions | None = None,
        on_epoch: Callable[[EpochRecord], bool | None] | None = None) -> FitResult:
    """Fit ``model`` to spike data by gradient descent on the exact NLL.

    Parameters
    ----------
    model : Model
        Initial model; its parameter rows decide what is shared (1 row) and
        what is per datasample (K rows).
    train : SpikeData or list of K SpikeData
        Training data of each datasample.
    val : SpikeData or list of K SpikeData, optional
        Validation data of each datasample.
    options : FitOptions
    on_epoch : callable, optional
        Called with an :class:`EpochRecord` after epoch 0 (the initial model)
        and after every epoch. If it returns True, the fit stops there and
        returns what it has.

    Returns
    -------
    FitResult

    Raises
    ------
    FitDiverged
        When the parameters or an NLL stop being finite (too large a step);
        its ``result`` holds the epochs before.
    """
    options = options or FitOptions()
    train, val = _as_list(train, "train"), _as_list(val, "val")
    _validate_fit(model, train, val, options)
    # Parallelism comes from running passes side by side; BLAS threads would
    # only compete with them (and spin between calls).
    with blas_threads(1):
        return _fit(model, train, val, options, on_epoch)


def _fit(model: Model, train: list, val: list, options: FitOptions, on_epoch) -> FitResult:
    t0 = time.perf_counter()
    K = len(train)
    state = _State(model, K, options.Nv)
    params = options.params_to_opt
    rng = np.random.default_rng(options.seed)
    if {"Fr", "C"} & set(params):
        _rescale_rates(state, train)

    adam: dict = {}
    if options.optimizer == "ADAM":
        lr = options.learning_rate
        N, n_neurons = state.grid.N, state.fr.shape[2]
        shapes = {"F": ((N,), ()), "F0": ((N,), ()), "D": ((), ()), "Fr": ((N, n_neurons), (n_neurons,)),
                  "C": ((n_neurons,), (n_neurons,))}
        for p in params:
            rows = len(getattr(state, _ROW_OF[p]))
            adam[p] = [_Adam(lr[p], lr["beta1"], lr["beta2"], lr["epsilon"], *shapes[p]) for _ in range(rows)]

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
            if reuse_grad and epoch_done < options.max_epochs:
                value, grad = batch_nll_and_grad(ops, train[k], grads_needed)
                grad_cache[k] = ((k,) + state.key(k), value, grad)
                nll_tr[k] = value
            else:
                nll_tr[k] = batch_nll(ops, train[k])
            if val_job is not None:
                nll_va[k] = val_job.result()
        return nll_tr, nll_va

    snapshot_set = None if options.snapshot_epochs is None else set(int(e) for e in options.snapshot_epochs)
    hist_tr, hist_va, snapshots = [], [], {}
    stopped = False

    last = {"model": model}

    def result(stopped: bool) -> FitResult:
        return FitResult(model=last["model"], nll_train=np.array(hist_tr).reshape(-1, K).T,
                         nll_val=np.array(hist_va).reshape(-1, K).T, epochs=np.arange(len(hist_tr)),
                         snapshots=snapshots, stopped=stopped, seconds=time.perf_counter() - t0)

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
        if snapshot_set is None or epoch in snapshot_set:
            snapshots[epoch] = current
        if on_epoch is None:
            return False
        return bool(on_epoch(EpochRecord(epoch, nll_tr.copy(), nll_va.copy(), current, time.perf_counter() - t0)))

    stopped = record(0)
    epoch = 0
    while not stopped and epoch < options.max_epochs:
        for k, idx in _batches(train, options.mini_batch_number, rng):
            cached = grad_cache.pop(k, None)
            if idx is None and cached is not None and cached[0] == (k,) + state.key(k):
                grad = cached[2]
            else:
                batch = train[k] if idx is None else train[k].subset(idx)
                _, grad = batch_nll_and_grad(state.ops(k), batch, grads_needed)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is checked below
                _apply_updates(state, k, grad, options, adam)
        epoch += 1
        if options.line_search and epoch in options.line_search["epochs"]:
            _line_search(state, train, options)
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


def _line_search(state: _State, train: list, options: FitOptions):
    """Bounded L-BFGS-B on C and/or D of every row, on the full training NLL."""
    ls = options.line_search
    for p in ls["params"]:
        if p not in options.params_to_opt:
            continue
        kind = _ROW_OF[p]
        lo, hi = LINE_SEARCH_BOUNDS[p]
        for r in range(len(getattr(state, kind))):
            users = [k for k in range(state.K) if state.row(kind, k) == r]

            def set_value(theta):
                if p == "D":
                    state.D[r] = theta[0]
                else:
                    state.fr[r] = state.fr[r] * (theta / state.fr[r][0])[None, :]
                state.touch(kind, r)

            def objective(theta):
                set_value(theta)
                total, jac = 0.0, np.zeros_like(theta)
                for k in users:
                    value, grad = batch_nll_and_grad(state.ops(k), train[k], (p,))
                    total += value
                    jac += np.atleast_1d(grad[p])
                return total, jac

            x0 = np.atleast_1d(state.D[r] if p == "D" else state.fr[r][0]).astype(float)
            x0 = np.clip(x0, lo, hi)
            res = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=[(lo, hi)] * len(x0),
                           options={"maxfun": ls["max_fun"]})
            set_value(res.x if np.isfinite(res.fun) else x0)
