"""The Langevin latent-dynamics model: peq, p0, D and firing rates (MATH.md §1, §3)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any, Mapping

import numpy as np

from .grid import Grid
from .limits import InvalidValue, Limit

__all__ = [
    "Model",
    "BOUNDARY_MODES",
    "BOUNDARY_CONDITIONS",
    "PEQ_FLOOR",
    "D_LIMIT",
    "force_from_peq",
    "peq_from_force",
    "rates_from_shape",
    "resolve_boundary",
    "shape_from_rates",
    "TABULATED",
    "encode_array",
    "decode_array",
    "tabulated_spec",
    "tabulated_values",
]

BOUNDARY_MODES = ("absorbing", "reflecting")
BOUNDARY_CONDITIONS = ("dirichlet", "neumann")
# What a boundary mode means when nothing overrides it: (conditions, absorption step).
_MODE_DEFAULTS = {"absorbing": ("dirichlet", True), "reflecting": ("neumann", False)}
PEQ_FLOOR = 1e-5  # peq and p0 are clipped below at this value after every update
#: The noise magnitude D (a.u.²/s); the forms use the same limit.
D_LIMIT = Limit("D", float, 0, lo_open=True)
#: The model name of a parameter whose node values a spec holds (``spec["tabulated"]``).
TABULATED = "tabulated"
#: The parameters a tabulated spec may hold, and their dimensions after the row.
_TABULATED_DIMS = {"peq": 1, "p0": 1, "D": 0, "fr": 2}


def force_from_peq(grid: Grid, peq: np.ndarray) -> np.ndarray:
    """Driving force ``F = Dm · log peq``, shape (N,) (units 1/x)."""
    return grid.derivative(np.log(peq))


def peq_from_force(grid: Grid, F: np.ndarray) -> np.ndarray:
    """peq from a force: ``exp(AD·F)`` normalised so ``w·peq = 1``, clipped at 1e-5.

    Parameters
    ----------
    grid : Grid
    F : ndarray, shape (N,)

    Returns
    -------
    peq : ndarray, shape (N,)
    """
    logp = grid.antiderivative(F)
    # Shifting by the maximum avoids overflow; it cancels in the normalisation.
    p = np.exp(logp - logp.max())
    p /= grid.w @ p
    return np.maximum(p, PEQ_FLOOR)


def shape_from_rates(grid: Grid, fr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split rates into shape and scale: ``Fr = Dm · log f``, ``C = f(xbegin)``.

    Parameters
    ----------
    fr : ndarray, shape (N, n_neurons), Hz

    Returns
    -------
    Fr : ndarray, shape (N, n_neurons)
    C : ndarray, shape (n_neurons,), Hz
    """
    return grid.derivative(np.log(fr)), fr[0].copy()


def rates_from_shape(grid: Grid, Fr: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Inverse of :func:`shape_from_rates`: ``f_n = C_n · exp(AD · Fr_n)``, Hz."""
    return C[None, :] * np.exp(grid.antiderivative(Fr))


def _as_rows(name: str, value, N: int | None) -> np.ndarray:
    arr = np.array(value, dtype=float)
    if N is not None:
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != N:
            raise ValueError(f"{name} must have shape (N,) or (K, N) with N = {N}, got {np.shape(value)}")
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """A latent-dynamics model on a grid.

    Each parameter has one row per model instance: one row when it is shared
    by all datasamples, K rows when each of K datasamples has its own.

    Parameters
    ----------
    grid : Grid
    peq : ndarray, shape (N,) or (K_peq, N)
        Equilibrium density, positive, ``w·peq ≈ 1``.
    p0 : ndarray, shape (N,) or (K_p0, N), or None
        Initial density (non-negative); ``None`` makes an equilibrium model
        (``p0 = peq``).
    D : float or ndarray, shape (K_D,)
        Noise magnitude, > 0 (units x²/s).
    fr : ndarray, shape (N, n_neurons) or (K_fr, N, n_neurons)
        Firing rates at the nodes, Hz, non-negative.
    boundary_mode : {'absorbing', 'reflecting'}
        Shorthand for the two boundary settings below, as in the reference:
        'absorbing' = Dirichlet conditions and the absorption step,
        'reflecting' = Neumann conditions and no absorption step. After
        construction it is 'absorbing' exactly when the absorption step
        applies (so the reference's ``boundary_mode`` + ``boundary_conditions``
        pair describes any model).
    boundary_conditions : {'dirichlet', 'neumann'}, optional
        Boundary conditions of the spectral problem (MATH.md §4): paths that
        vanish at the walls (absorbing process) or zero flux (reflecting
        process). Also what :func:`~flowdash.core.simulation.simulate`
        generates: Dirichlet kills the path at a wall. Default: from
        ``boundary_mode``.
    absorption_step : bool, optional
        Whether the likelihood applies the absorption step at the trial end
        (MATH.md §5 step 3, ``Gabs`` in §6): the trial ends *because* the
        path reached a wall. It needs Dirichlet conditions. False with
        Dirichlet conditions is the 2021 paper's ablation "without the
        absorption operator". Default: from ``boundary_mode``.
    """

    grid: Grid
    peq: np.ndarray
    p0: np.ndarray | None
    D: np.ndarray
    fr: np.ndarray
    boundary_mode: str = "absorbing"
    boundary_conditions: str | None = None
    absorption_step: bool | None = None

    def __post_init__(self):
        N = self.grid.N
        if not isinstance(self.grid, Grid):
            raise TypeError(f"grid must be a flowdash.core.grid.Grid, got {type(self.grid).__name__}")
        conditions, absorption = resolve_boundary(self.boundary_mode, self.boundary_conditions,
                                                  self.absorption_step)
        object.__setattr__(self, "boundary_conditions", conditions)
        object.__setattr__(self, "absorption_step", absorption)
        object.__setattr__(self, "boundary_mode", "absorbing" if absorption else "reflecting")
        peq = _as_rows("peq", self.peq, N)
        if not np.all(np.isfinite(peq)) or np.any(peq <= 0):
            raise ValueError("peq must be finite and positive at every node")
        p0 = None
        if self.p0 is not None:
            p0 = _as_rows("p0", self.p0, N)
            # Library p0 models are normalised but not clipped, so p0 may touch 0 (e.g. at a wall).
            if not np.all(np.isfinite(p0)) or np.any(p0 < 0) or np.any(p0 @ self.grid.w <= 0):
                raise ValueError("p0 must be finite, non-negative and have a positive integral")
        D = np.atleast_1d(np.array(self.D, dtype=float))
        if D.ndim != 1 or not all(D_LIMIT.allows(d) for d in D):
            raise InvalidValue("D", f"D must be a finite number > 0 (or one per datasample), got {self.D!r}")
        fr = np.array(self.fr, dtype=float)
        if fr.ndim == 2:
            fr = fr[None]
        if fr.ndim != 3 or fr.shape[1] != N or fr.shape[2] < 1:
            raise ValueError(
                f"fr must have shape (N, n_neurons) or (K, N, n_neurons) with N = {N}, got {np.shape(self.fr)}")
        if not np.all(np.isfinite(fr)) or np.any(fr < 0):
            raise ValueError("firing rates fr must be finite and non-negative (Hz)")
        sizes = {"peq": len(peq), "D": len(D), "fr": len(fr)}
        if p0 is not None:
            sizes["p0"] = len(p0)
        K = max(sizes.values())
        bad = {k: v for k, v in sizes.items() if v not in (1, K)}
        if bad:
            raise ValueError(f"each parameter needs 1 row (shared) or K = {K} rows (one per datasample); got {bad}")
        for name, arr in (("peq", peq), ("p0", p0), ("D", D), ("fr", fr)):
            if arr is not None:
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # -- shape ------------------------------------------------------------
    @property
    def n_neurons(self) -> int:
        return self.fr.shape[2]

    @property
    def n_datasamples(self) -> int:
        sizes = [len(self.peq), len(self.D), len(self.fr)] + ([] if self.p0 is None else [len(self.p0)])
        return max(sizes)

    @property
    def equilibrium(self) -> bool:
        return self.p0 is None

    def params_size(self) -> dict[str, int]:
        """Rows per parameter: ``{'peq': k, 'p0': k, 'D': k, 'fr': k}``."""
        return {"peq": len(self.peq), "p0": 1 if self.p0 is None else len(self.p0),
                "D": len(self.D), "fr": len(self.fr)}

    # -- per datasample ---------------------------------------------------
    def _row(self, arr: np.ndarray, k: int) -> np.ndarray:
        if not 0 <= k < self.n_datasamples:
            raise ValueError(f"datasample must be in [0, {self.n_datasamples - 1}], got {k}")
        return arr[0] if len(arr) == 1 else arr[k]

    def peq_of(self, k: int = 0) -> np.ndarray:
        """peq used by datasample ``k``, shape (N,)."""
        return self._row(self.peq, k)

    def p0_of(self, k: int = 0) -> np.ndarray:
        """p0 used by datasample ``k`` (its peq for an equilibrium model), shape (N,)."""
        return self.peq_of(k) if self.p0 is None else self._row(self.p0, k)

    def D_of(self, k: int = 0) -> float:
        return float(self._row(self.D, k))

    def fr_of(self, k: int = 0) -> np.ndarray:
        """Rates used by datasample ``k``, shape (N, n_neurons), Hz."""
        return self._row(self.fr, k)

    def replace(self, **changes) -> "Model":
        """A copy with some fields replaced (validated again).

        A new ``boundary_mode`` brings its own default boundary settings
        unless ``boundary_conditions`` / ``absorption_step`` are given too.
        """
        if "boundary_mode" in changes:
            changes.setdefault("boundary_conditions", None)
            changes.setdefault("absorption_step", None)
        return dataclasses.replace(self, **changes)

    # -- construction from the reference's JSON format ---------------------
    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], grid: Grid, boundary_mode: str,
                  n_datasamples: int | None = None) -> "Model":
        """Build a model from a dictionary in the reference format.

        Parameters
        ----------
        spec : mapping
            ``peq_model`` and ``p0_model`` (``{"model": name, "params": {...}}``;
            ``p0_model`` None = equilibrium), ``D`` (number), ``fr_model`` (one
            ``{"model", "params"}`` per neuron), optional ``params_size``
            (``{"peq": k, ...}``, 1 = shared, K = one per datasample; every row
            starts from the same library model), optional
            ``boundary_conditions`` ('dirichlet' / 'neumann', as in the
            reference cases) and ``absorption_step`` (bool), which override
            what ``boundary_mode`` implies.
        boundary_mode : {'absorbing', 'reflecting'}
        """
        from . import library

        for key in ("peq_model", "D", "fr_model"):
            if key not in spec:
                raise ValueError(f"model spec is missing {key!r}")
        sizes = {"peq": 1, "p0": 1, "D": 1, "fr": 1}
        sizes.update(spec.get("params_size") or {})
        unknown = set(sizes) - {"peq", "p0", "D", "fr"}
        if unknown:
            raise ValueError(f"params_size has unknown keys {sorted(unknown)}; allowed: peq, p0, D, fr")
        fr_list = spec["fr_model"]
        if isinstance(fr_list, Mapping):
            fr_list = [fr_list]
        if not fr_list:
            raise ValueError("fr_model must list at least one neuron")
        table = tabulated_values(spec, grid.N)

        def rows(name: str, library_value: np.ndarray) -> np.ndarray:
            """The tabulated rows (tiled to params_size) or the library value tiled."""
            if name not in table:
                return np.tile(library_value, (sizes[name],) + (1,) * library_value.ndim)
            arr = table[name]
            want = sizes[name] if name in (spec.get("params_size") or {}) else len(arr)
            if len(arr) == want:
                return arr
            if len(arr) == 1:
                return np.tile(arr, (want,) + (1,) * (arr.ndim - 1))
            raise ValueError(f"the tabulated {name} has {len(arr)} rows but params_size asks for {want}")

        tab_peq = _is_tabulated(spec["peq_model"])
        peq = rows("peq", np.empty(0) if tab_peq else library.peq_from_spec(grid, spec["peq_model"]))
        p0 = None
        if spec.get("p0_model") is not None:
            tab_p0 = _is_tabulated(spec["p0_model"])
            p0 = rows("p0", np.empty(0) if tab_p0 else library.p0_from_spec(grid, spec["p0_model"]))
        tab_fr = [_is_tabulated(f) for f in fr_list]
        if any(tab_fr) and not all(tab_fr):
            raise ValueError("fr_model: either every neuron is tabulated or none is")
        if all(tab_fr) and table["fr"].shape[2] != len(fr_list):
            raise ValueError(f"the tabulated rates have {table['fr'].shape[2]} neurons but fr_model lists "
                             f"{len(fr_list)}")
        fr = rows("fr", np.empty(0) if all(tab_fr) else
                  np.stack([library.rate_from_spec(grid.x, f) for f in fr_list], axis=1))
        D = rows("D", np.array(float(spec["D"])))
        return cls(grid=grid, peq=peq, p0=p0, D=D, fr=fr,
                   boundary_mode=boundary_mode,
                   boundary_conditions=spec.get("boundary_conditions"),
                   absorption_step=spec.get("absorption_step"))


def resolve_boundary(boundary_mode: str = "absorbing", boundary_conditions: str | None = None,
                     absorption_step: bool | None = None) -> tuple[str, bool]:
    """The two boundary settings from a mode and optional overrides.

    Parameters
    ----------
    boundary_mode : {'absorbing', 'reflecting'}
        Supplies the defaults: absorbing = ('dirichlet', True), reflecting =
        ('neumann', False).
    boundary_conditions : {'dirichlet', 'neumann'} or None
        Case-insensitive (the reference writes 'Dirichlet').
    absorption_step : bool or None

    Returns
    -------
    (boundary_conditions, absorption_step)

    Raises
    ------
    InvalidValue
        (a ValueError) whose ``field`` names the setting: ``boundary_mode`` or
        ``boundary_conditions`` for an unknown name, ``absorption_step`` for
        an absorption step without Dirichlet conditions.
    TypeError
        ``absorption_step`` that is not a bool or None.
    """
    if boundary_mode not in BOUNDARY_MODES:
        raise InvalidValue("boundary_mode", f"boundary_mode must be one of {BOUNDARY_MODES}, got {boundary_mode!r}")
    default_conditions, default_absorption = _MODE_DEFAULTS[boundary_mode]
    conditions = default_conditions if boundary_conditions is None else boundary_conditions
    if not isinstance(conditions, str) or conditions.lower() not in BOUNDARY_CONDITIONS:
        raise InvalidValue("boundary_conditions", f"boundary_conditions must be one of {BOUNDARY_CONDITIONS} or "
                           f"None, got {boundary_conditions!r}")
    conditions = conditions.lower()
    absorption = default_absorption if absorption_step is None else absorption_step
    if not isinstance(absorption, (bool, np.bool_)):
        raise TypeError(f"absorption_step must be True, False or None, got {absorption_step!r}")
    if absorption and conditions != "dirichlet":
        raise InvalidValue(
            "absorption_step",
            f"the absorption step needs Dirichlet boundary conditions (it is the exit through an absorbing "
            f"wall), got boundary_conditions={conditions!r} with absorption_step=True; use "
            f"boundary_conditions='dirichlet', or absorption_step=False (boundary_mode='reflecting')")
    return conditions, bool(absorption)


# ---------------------------------------------------------------------------
# tabulated models: a spec that holds the node values of a model exactly
# ---------------------------------------------------------------------------
def _is_tabulated(entry) -> bool:
    return isinstance(entry, Mapping) and entry.get("model") == TABULATED


def encode_array(values) -> dict:
    """Float64 values as plain JSON data: ``{"dtype": "float64", "shape": [...], "base64": text}``.

    The bytes are little-endian IEEE doubles, so :func:`decode_array` gives
    back the very same numbers (a JSON list of decimals would be about twice
    as long for the same exactness).
    """
    arr = np.ascontiguousarray(np.asarray(values, dtype="<f8"))
    return {"dtype": "float64", "shape": list(arr.shape),
            "base64": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_array(entry, name: str = "array") -> np.ndarray:
    """Inverse of :func:`encode_array` (raises ValueError naming ``name``)."""
    if not isinstance(entry, Mapping) or set(entry) != {"dtype", "shape", "base64"}:
        raise ValueError(f"{name} must be {{'dtype': 'float64', 'shape': [...], 'base64': ...}}")
    if entry["dtype"] != "float64":
        raise ValueError(f"{name}: dtype must be 'float64', got {entry['dtype']!r}")
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise ValueError(f"{name}: shape must be a list of sizes, got {shape!r}")
    if not isinstance(entry["base64"], str):
        raise ValueError(f"{name}: base64 must be text")
    try:
        raw = base64.b64decode(entry["base64"].encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError(f"{name}: base64 is not valid base64 text") from None
    if len(raw) != 8 * int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"{name}: {len(raw)} bytes do not hold shape {shape} of float64")
    arr = np.frombuffer(raw, dtype="<f8").reshape(shape).astype(float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has values that are not finite")
    return arr


def tabulated_values(spec: Mapping, N: int) -> dict:
    """The decoded arrays of ``spec["tabulated"]`` ({} for a library spec), shapes checked.

    ``peq``, ``p0``: (rows, N); ``D``: (rows,); ``fr``: (rows, N, neurons).
    """
    table = spec.get("tabulated")
    if table is None:
        used = [k for k in ("peq_model", "p0_model") if _is_tabulated(spec.get(k))]
        if used or any(_is_tabulated(f) for f in (spec.get("fr_model") or [])
                       if not isinstance(spec.get("fr_model"), Mapping)):
            raise ValueError("the spec names tabulated parameters but holds no 'tabulated' arrays")
        return {}
    if not isinstance(table, Mapping) or set(table) - set(_TABULATED_DIMS):
        raise ValueError(f"tabulated must map some of {list(_TABULATED_DIMS)} to encoded arrays")
    out = {}
    for name, value in table.items():
        if value is None:
            continue
        arr = decode_array(value, f"tabulated {name}")
        extra = _TABULATED_DIMS[name]
        ok = arr.ndim == 1 + extra and len(arr) >= 1 and (extra == 0 or arr.shape[1] == N)
        if not ok or (name == "fr" and arr.shape[2] < 1):
            what = {0: "(rows,)", 1: f"(rows, N = {N})", 2: f"(rows, N = {N}, neurons)"}[extra]
            raise ValueError(f"tabulated {name} has shape {list(arr.shape)}; expected {what}")
        out[name] = arr
    return out


def tabulated_spec(model: "Model", **extra) -> dict:
    """A model spec holding ``model``'s node values exactly (:func:`Model.from_spec` reads it).

    The spec names each parameter ``{"model": "tabulated"}`` and keeps the
    arrays (float64, see :func:`encode_array`) under ``"tabulated"``; its
    ``params_size`` gives the rows (one per datasample / condition). Keys in
    ``extra`` (e.g. where the model came from) are added as they are.
    """
    g = model.grid
    marker = {"model": TABULATED, "params": {}}
    table = {"peq": encode_array(model.peq), "D": encode_array(model.D), "fr": encode_array(model.fr),
             "p0": None if model.p0 is None else encode_array(model.p0)}
    spec = {"grid": {"Np": g.Np, "Ne": g.Ne, "xbegin": float(g.xbegin), "xend": float(g.xend)},
            "boundary_mode": model.boundary_mode, "boundary_conditions": model.boundary_conditions,
            "absorption_step": bool(model.absorption_step),
            "peq_model": dict(marker), "p0_model": None if model.p0 is None else dict(marker),
            "D": float(model.D[0]), "fr_model": [dict(marker) for _ in range(model.n_neurons)],
            "params_size": {k: int(v) for k, v in model.params_size().items()},
            "tabulated": table}
    spec.update(extra)
    return spec
