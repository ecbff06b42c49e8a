"""Model library: named equilibrium densities, initial densities and rates.

Implements MATH.md §9. Every peq/p0 model is defined through an
(unnormalised) density on the grid nodes, usually ``exp(-U(x))`` for a
potential ``U``; :func:`peq_from_library` normalises it with the grid's
quadrature weights (``Σ w·peq = 1``) and clips it below at ``1e-5`` (no
renormalisation afterwards, as in the reference), :func:`p0_from_library`
only normalises. Rate models return firing rates in Hz, floored at 1 Hz.

The registries :data:`PEQ_MODELS` and :data:`RATE_MODELS` map a model name to
a :class:`LibraryModel`, whose ``defaults`` list every parameter the model
accepts (the dashboard builds its forms from them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np
from scipy.interpolate import CubicSpline

from .limits import InvalidValue

__all__ = [
    "LibraryModel",
    "PEQ_MODELS",
    "RATE_MODELS",
    "PEQ_CLIP",
    "RATE_FLOOR",
    "peq_from_library",
    "p0_from_library",
    "rate_from_library",
    "peq_from_spec",
    "p0_from_spec",
    "rate_from_spec",
]

#: Lower clip of library peq models (MATH.md §3, §9).
PEQ_CLIP = 1e-5
#: Lower floor of library rates, Hz (MATH.md §9).
RATE_FLOOR = 1.0


class GridLike(Protocol):
    """What the peq models need from a grid (``flowdash.core.grid.Grid``)."""

    x: np.ndarray
    w: np.ndarray
    xbegin: float
    xend: float


@dataclass(frozen=True)
class LibraryModel:
    """One named model of the library.

    Attributes
    ----------
    func : callable
        Peq/p0 models: ``func(grid, **params) -> ndarray, shape (N,)``, an
        unnormalised, non-negative density on ``grid.x``.
        Rate models: ``func(x, **params) -> ndarray, shape (N,)``, the rate in
        Hz before the 1 Hz floor.
    defaults : dict
        Every accepted parameter with its default value.
    description : str
        One-line human description (formula) shown in the dashboard.
    """

    func: Callable[..., np.ndarray]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def _boltzmann(U: np.ndarray) -> np.ndarray:
    """exp(-U), shifted by min(U) so that deep wells do not overflow.

    The shift is a constant factor and disappears in the normalisation.
    """
    U = np.asarray(U, dtype=np.float64)
    if not np.all(np.isfinite(U)):
        raise ValueError("the potential U(x) is not finite on the whole grid")
    return np.exp(-(U - U.min()))


def _as_float(name: str, value: Any) -> float:
    """Convert a scalar parameter to float, with a clear error."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidValue(name, f"parameter {name!r} must be a real number, got {value!r}") from None
    if not np.isfinite(out):
        raise InvalidValue(name, f"parameter {name!r} must be finite, got {value!r}")
    return out


def _as_vector(name: str, value: Any, min_len: int = 1) -> np.ndarray:
    """Convert a list-like parameter to a finite 1-D float array."""
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise InvalidValue(name, f"parameter {name!r} must be a list of numbers, got {value!r}") from None
    if arr.ndim != 1 or arr.size < min_len:
        raise InvalidValue(
            name, f"parameter {name!r} must be a flat list of at least {min_len} numbers, got {value!r}"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidValue(name, f"parameter {name!r} must contain finite numbers only, got {value!r}")
    return arr


def _knots(interp_x: Any, interp_y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate the knots of ``manual``/``stepping`` potentials."""
    kx = _as_vector("interp_x", interp_x, min_len=2)
    ky = _as_vector("interp_y", interp_y, min_len=2)
    if kx.size != ky.size:
        raise InvalidValue(
            "interp_y", f"interp_x and interp_y must have the same length, got {kx.size} and {ky.size}"
        )
    if np.any(np.diff(kx) <= 0):
        raise InvalidValue("interp_x", f"interp_x must be strictly increasing, got {kx.tolist()}")
    return kx, ky


def _hermite_flat(x: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """Piecewise cubic through (kx, ky) with zero slope at every knot.

    On each segment ``U = y_i + (y_{i+1} - y_i)·(3t² − 2t³)``, ``t ∈ [0, 1]``.
    Outside ``[kx[0], kx[-1]]`` U is held constant, which keeps it C¹ since
    the end slopes are zero.
    """
    xc = np.clip(x, kx[0], kx[-1])
    i = np.clip(np.searchsorted(kx, xc, side="right") - 1, 0, kx.size - 2)
    t = (xc - kx[i]) / (kx[i + 1] - kx[i])
    return ky[i] + (ky[i + 1] - ky[i]) * t * t * (3.0 - 2.0 * t)


def _outer_spline(
    peak_x: float, peak_y: float, end_x: float, end_y: float, mid_x: float, mid_y: float
) -> CubicSpline | None:
    """Clamped cubic spline for an outer ``stepping`` segment (MATH.md §9).

    The segment runs from the barrier peak ``(peak_x, peak_y)`` (the knot it
    shares with the inner segment) to the domain end ``(end_x, end_y)``. The
    extra anchor knot is the midpoint ``(mid_x, mid_y)`` of the neighbouring
    inner segment mirrored about the peak. While the spline would overshoot
    the peak (go beyond ``peak_y`` on the side away from ``mid_y`` between the
    peak and the anchor), or the anchor is not strictly inside the segment,
    the anchor moves halfway towards the peak. Returns ``None`` if no
    admissible anchor is found (caller falls back to the flat Hermite piece).
    """
    side = np.sign(peak_y - mid_y)  # +1: the peak is a maximum of this stretch
    anchor = 2.0 * peak_x - mid_x
    lo, hi = min(peak_x, end_x), max(peak_x, end_x)
    for _ in range(64):
        if lo < anchor < hi:
            xs = np.array([peak_x, anchor, end_x])
            ys = np.array([peak_y, mid_y, end_y])
            order = np.argsort(xs)
            spline = CubicSpline(xs[order], ys[order], bc_type="clamped")
            if side == 0:
                return spline
            # Extremes between the peak and the anchor: the ends plus the
            # stationary points of the cubic piece there.
            a, b = min(peak_x, anchor), max(peak_x, anchor)
            crit = spline.derivative().roots(extrapolate=False)
            crit = crit[(crit > a) & (crit < b)]
            vals = spline(np.concatenate(([a, b], crit)))
            # tolerance: the spline passes through the peak itself
            tol = 1e-12 * max(1.0, abs(peak_y))
            if np.all(side * (vals - peak_y) <= tol):
                return spline
        anchor = peak_x + 0.5 * (anchor - peak_x)
    return None


# ---------------------------------------------------------------------------
# peq / p0 models: func(grid, **params) -> unnormalised density on grid.x
# ---------------------------------------------------------------------------


def _cos_square(grid: GridLike) -> np.ndarray:
    centre = 0.5 * (grid.xbegin + grid.xend)
    L = grid.xend - grid.xbegin
    return np.cos(np.pi * (grid.x - centre) / L) ** 2


def _cos_fourth_power(grid: GridLike) -> np.ndarray:
    centre = 0.5 * (grid.xbegin + grid.xend)
    L = grid.xend - grid.xbegin
    return np.cos(np.pi * (grid.x - centre) / L) ** 4


def _uniform(grid: GridLike) -> np.ndarray:
    return np.ones_like(grid.x, dtype=np.float64)


def _linear_pot(grid: GridLike, slope: float = 1.0) -> np.ndarray:
    slope = _as_float("slope", slope)
    return _boltzmann(slope * grid.x)


def _single_well(grid: GridLike, xmin: float = 0.0, miu: float = 10.0, sig: float = 0.0) -> np.ndarray:
    xmin, miu, sig = _as_float("xmin", xmin), _as_float("miu", miu), _as_float("sig", sig)
    y = grid.x - xmin
    return _boltzmann(0.5 * miu * y**2 + sig * y)


def _double_well(
    grid: GridLike, xmax: float = 0.0, xmin: float = 0.3, depth: float = 4.0, sig: float = 0.0
) -> np.ndarray:
    xmax, xmin = _as_float("xmax", xmax), _as_float("xmin", xmin)
    depth, sig = _as_float("depth", depth), _as_float("sig", sig)
    if xmin == xmax:
        raise InvalidValue("xmin", f"double_well needs xmin != xmax, got xmin = xmax = {xmin}")
    y = grid.x - xmax
    r = y / (xmin - xmax)
    return _boltzmann(depth * r**4 - 2.0 * depth * r**2 + sig * y)


def _mixture(
    grid: GridLike,
    theta: float = 0.5,
    model1: Mapping[str, Any] | None = None,
    model2: Mapping[str, Any] | None = None,
) -> np.ndarray:
    theta = _as_float("theta", theta)
    if not 0.0 <= theta <= 1.0:
        raise InvalidValue("theta", f"parameter 'theta' must be in [0, 1], got {theta}")
    model1 = dict(_MIXTURE_DEFAULT_1 if model1 is None else model1)
    model2 = dict(_MIXTURE_DEFAULT_2 if model2 is None else model2)
    # Each component is a normalised density (not clipped), so theta is the
    # weight of component 1 in probability mass.
    p1 = _normalised_density(grid, *_unpack_spec(model1, "model1"), what="peq")
    p2 = _normalised_density(grid, *_unpack_spec(model2, "model2"), what="peq")
    return theta * p1 + (1.0 - theta) * p2


def _manual(
    grid: GridLike,
    interp_x: Any = (-1.0, -0.5, 0.0, 0.3, 1.0),
    interp_y: Any = (0.0, 4.0, 0.0, 1.0, -1.0),
) -> np.ndarray:
    kx, ky = _knots(interp_x, interp_y)
    return _boltzmann(_hermite_flat(np.asarray(grid.x, dtype=np.float64), kx, ky))


def _stepping(
    grid: GridLike,
    interp_x: Any = (-1.0, -0.5, 0.0, 0.3, 1.0),
    interp_y: Any = (0.0, 4.0, 0.0, 1.0, -1.0),
) -> np.ndarray:
    kx, ky = _knots(interp_x, interp_y)
    x = np.asarray(grid.x, dtype=np.float64)
    U = _hermite_flat(x, kx, ky)
    m = kx.size - 1  # number of segments
    if m >= 2:
        # First segment [kx0, kx1]: peak kx1, neighbour [kx1, kx2].
        # Last segment [kx_{m-1}, kx_m]: peak kx_{m-1}, neighbour [kx_{m-2}, kx_{m-1}].
        # The flat Hermite piece takes the mean value at the midpoint.
        for seg, peak, nb_lo, nb_hi, end in ((0, 1, 1, 2, 0), (m - 1, m - 1, m - 2, m - 1, m)):
            mid_x = 0.5 * (kx[nb_lo] + kx[nb_hi])
            mid_y = 0.5 * (ky[nb_lo] + ky[nb_hi])
            spline = _outer_spline(kx[peak], ky[peak], kx[end], ky[end], mid_x, mid_y)
            if spline is None:
                continue
            lo, hi = kx[seg], kx[seg + 1]
            if seg == 0:
                sel = x <= hi  # includes any extension left of the first knot
            else:
                sel = x >= lo
            U[sel] = spline(np.clip(x[sel], lo, hi))
    return _boltzmann(U)


def _custom_peq(grid: GridLike, func: Callable[[np.ndarray], Any] | None = None) -> np.ndarray:
    if func is None or not callable(func):
        raise ValueError(
            f"custom model needs parameter 'func': a callable x -> unnormalised density, got {func!r}"
        )
    return _call_custom(func, grid.x)


def _call_custom(func: Callable[[np.ndarray], Any], x: np.ndarray) -> np.ndarray:
    out = func(np.array(x, dtype=np.float64))  # a copy: the callable may not modify the grid
    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"custom func must return numbers, got {type(out).__name__}") from None
    if arr.ndim == 0:
        arr = np.full(np.shape(x), float(arr))
    if arr.shape != np.shape(x):
        raise ValueError(f"custom func must return shape {np.shape(x)}, got {arr.shape}")
    return arr


_MIXTURE_DEFAULT_1 = {"model": "cos_square", "params": {}}
_MIXTURE_DEFAULT_2 = {"model": "double_well", "params": {}}
_DEFAULT_KX = [-1.0, -0.5, 0.0, 0.3, 1.0]
_DEFAULT_KY = [0.0, 4.0, 0.0, 1.0, -1.0]

#: Equilibrium / initial density models, name -> LibraryModel.
PEQ_MODELS: dict[str, LibraryModel] = {
    "cos_square": LibraryModel(
        _cos_square, {}, "cos²(π·y/L), y = x − centre, L = domain length"
    ),
    "cos_fourth_power": LibraryModel(
        _cos_fourth_power, {}, "cos⁴(π·y/L), y = x − centre, L = domain length"
    ),
    "uniform": LibraryModel(_uniform, {}, "constant density"),
    "linear_pot": LibraryModel(_linear_pot, {"slope": 1.0}, "U = slope·x"),
    "single_well": LibraryModel(
        _single_well,
        {"xmin": 0.0, "miu": 10.0, "sig": 0.0},
        "U = ½·miu·(x−xmin)² + sig·(x−xmin)",
    ),
    "double_well": LibraryModel(
        _double_well,
        {"xmax": 0.0, "xmin": 0.3, "depth": 4.0, "sig": 0.0},
        "U = depth·r⁴ − 2·depth·r² + sig·y, y = x−xmax, r = y/(xmin−xmax): "
        "wells at xmax ± (xmin−xmax), barrier at xmax",
    ),
    "mixture": LibraryModel(
        _mixture,
        {"theta": 0.5, "model1": _MIXTURE_DEFAULT_1, "model2": _MIXTURE_DEFAULT_2},
        "theta·peq1 + (1−theta)·peq2; model1/model2 are {'model': name, 'params': {...}}",
    ),
    "manual": LibraryModel(
        _manual,
        {"interp_x": _DEFAULT_KX, "interp_y": _DEFAULT_KY},
        "U through (interp_x, interp_y) with zero slope at every knot",
    ),
    "stepping": LibraryModel(
        _stepping,
        {"interp_x": _DEFAULT_KX, "interp_y": _DEFAULT_KY},
        "like manual, outer segments are clamped splines through a mirrored anchor knot",
    ),
    "custom": LibraryModel(
        _custom_peq, {"func": None}, "func(x) -> unnormalised density (a Python callable)"
    ),
}


# ---------------------------------------------------------------------------
# rate models: func(x, **params) -> rate in Hz before the floor
# ---------------------------------------------------------------------------


def _rectified_linear(x: np.ndarray, slope: float = 50.0, x_thresh: float = -1.0) -> np.ndarray:
    slope, x_thresh = _as_float("slope", slope), _as_float("x_thresh", x_thresh)
    return slope * (x - x_thresh)


def _linear(x: np.ndarray, slope: float = 50.0, bias: float = 2.0) -> np.ndarray:
    slope, bias = _as_float("slope", slope), _as_float("bias", bias)
    return slope * x + bias


def _peaks(
    x: np.ndarray,
    center: Any = (-0.5, 0.5),
    width: Any = (0.3, 0.5),
    amp: Any = (100.0, 80.0),
) -> np.ndarray:
    c, wd, a = _as_vector("center", center), _as_vector("width", width), _as_vector("amp", amp)
    if not c.size == wd.size == a.size:
        raise InvalidValue(
            "center", f"center, width and amp must have the same length, got {c.size}, {wd.size}, {a.size}"
        )
    if np.any(wd == 0):
        raise InvalidValue("width", f"parameter 'width' must be non-zero, got {wd.tolist()}")
    return np.sum(a * np.exp(-((x[:, None] - c) ** 2) / wd**2), axis=1)


def _sinus(x: np.ndarray, bias: float = 100.0, amp: float = 30.0, freq: float = np.pi) -> np.ndarray:
    bias, amp, freq = _as_float("bias", bias), _as_float("amp", amp), _as_float("freq", freq)
    return amp * np.sin(freq * x) + bias


def _cos_square_rate(
    x: np.ndarray, amp: float = 1000.0, freq: float = np.pi / 2, bias: float = 0.0
) -> np.ndarray:
    amp, freq, bias = _as_float("amp", amp), _as_float("freq", freq), _as_float("bias", bias)
    return amp * np.cos(freq * x) ** 2 + bias * x


def _custom_rate(x: np.ndarray, func: Callable[[np.ndarray], Any] | None = None) -> np.ndarray:
    if func is None or not callable(func):
        raise ValueError(
            f"custom rate model needs parameter 'func': a callable x -> rate in Hz, got {func!r}"
        )
    f = _call_custom(func, x)
    # A user function that returns negative rates is almost certainly a bug
    # (library models are floored by definition; a custom one is trusted).
    if np.any(f < 0):
        raise ValueError(f"custom rate func returned negative rates (min {np.nanmin(f):.3g} Hz); rates must be >= 0")
    return f


#: Firing-rate models (Hz), name -> LibraryModel.
RATE_MODELS: dict[str, LibraryModel] = {
    "rectified_linear": LibraryModel(
        _rectified_linear, {"slope": 50.0, "x_thresh": -1.0}, f"max(slope·(x − x_thresh), {RATE_FLOOR:g} Hz)"
    ),
    "linear": LibraryModel(_linear, {"slope": 50.0, "bias": 2.0}, "slope·x + bias"),
    "peaks": LibraryModel(
        _peaks,
        {"center": [-0.5, 0.5], "width": [0.3, 0.5], "amp": [100.0, 80.0]},
        "Σ amp·exp(−(x−center)²/width²)",
    ),
    "sinus": LibraryModel(
        _sinus, {"bias": 100.0, "amp": 30.0, "freq": float(np.pi)}, "amp·sin(freq·x) + bias"
    ),
    "cos_square": LibraryModel(
        _cos_square_rate,
        {"amp": 1000.0, "freq": float(np.pi / 2), "bias": 0.0},
        "amp·cos²(freq·x) + bias·x",
    ),
    "custom": LibraryModel(_custom_rate, {"func": None}, "func(x) -> rate in Hz (a Python callable)"),
}


# ---------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------


def _lookup(registry: Mapping[str, LibraryModel], name: Any, params: Mapping[str, Any], kind: str) -> LibraryModel:
    """Find a model and check its parameter names, with helpful errors."""
    if not isinstance(name, str) or name not in registry:
        raise ValueError(
            f"unknown {kind} model {name!r}; allowed: {', '.join(sorted(registry))}"
        )
    model = registry[name]
    unknown = sorted(set(params) - set(model.defaults))
    if unknown:
        allowed = ", ".join(model.defaults) if model.defaults else "none"
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for {kind} model {name!r}; "
            f"allowed: {allowed}"
        )
    return model


def _unpack_spec(spec: Any, label: str) -> tuple[str, dict[str, Any]]:
    """Read ``{'model': name, 'params': {...}}`` (reference JSON format)."""
    if not isinstance(spec, Mapping) or "model" not in spec:
        raise ValueError(
            f"{label} must be a dict {{'model': name, 'params': {{...}}}}, got {spec!r}"
        )
    params = spec.get("params") or {}
    if not isinstance(params, Mapping):
        raise ValueError(f"{label}['params'] must be a dict, got {params!r}")
    extra = sorted(set(spec) - {"model", "params"})
    if extra:
        raise ValueError(f"{label} has unknown key(s) {extra}; allowed: 'model', 'params'")
    return spec["model"], dict(params)


def _check_grid(grid: Any) -> np.ndarray:
    for attr in ("x", "w", "xbegin", "xend"):
        if not hasattr(grid, attr):
            raise TypeError(f"grid must have attribute {attr!r} (a flowdash Grid), got {type(grid).__name__}")
    x = np.asarray(grid.x, dtype=np.float64)
    w = np.asarray(grid.w, dtype=np.float64)
    if x.ndim != 1 or w.shape != x.shape:
        raise ValueError(f"grid.x and grid.w must be 1-D of equal length, got {x.shape} and {w.shape}")
    return w


def _normalised_density(grid: GridLike, name: Any, params: Mapping[str, Any], what: str) -> np.ndarray:
    """Evaluate a peq model and normalise it so that Σ w·p = 1 (no clip)."""
    w = _check_grid(grid)
    model = _lookup(PEQ_MODELS, name, params, what)
    p = np.asarray(model.func(grid, **params), dtype=np.float64)
    if p.shape != w.shape:
        raise ValueError(f"{what} model {name!r} returned shape {p.shape}, expected {w.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{what} model {name!r} gives non-finite values; check its parameters")
    if np.any(p < 0):
        raise ValueError(f"{what} model {name!r} gives negative density values (min {p.min():.3g})")
    mass = float(w @ p)
    if not np.isfinite(mass) or mass <= 0:
        raise ValueError(f"{what} model {name!r} cannot be normalised: its integral is {mass!r}")
    p = p / mass
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{what} model {name!r} cannot be normalised (overflow)")
    return p


def peq_from_library(grid: GridLike, name: str, **params: Any) -> np.ndarray:
    """Equilibrium density of a library model on the grid nodes.

    Parameters
    ----------
    grid : Grid
        Provides ``x`` (N,), ``w`` (N,) quadrature weights, ``xbegin``, ``xend``.
    name : str
        A key of :data:`PEQ_MODELS`.
    **params
        Model parameters (names as in ``PEQ_MODELS[name].defaults``); missing
        ones take their defaults.

    Returns
    -------
    peq : ndarray, shape (N,)
        Normalised so that ``Σ w·peq = 1`` and then clipped below at
        :data:`PEQ_CLIP` (1e-5), without renormalising (MATH.md §9).

    Raises
    ------
    ValueError
        Unknown model or parameter, or a density that cannot be normalised
        (non-finite, negative or zero everywhere).
    """
    p = _normalised_density(grid, name, params, "peq")
    return np.maximum(p, PEQ_CLIP)


def p0_from_library(grid: GridLike, name: str, **params: Any) -> np.ndarray:
    """Initial density ``p0`` of a library model: like :func:`peq_from_library`
    but only normalised (``Σ w·p0 = 1``), not clipped.

    Returns
    -------
    p0 : ndarray, shape (N,)
    """
    return _normalised_density(grid, name, params, "p0")


def rate_from_library(x: Any, name: str, **params: Any) -> np.ndarray:
    """Firing rate of a library model at positions ``x``.

    Parameters
    ----------
    x : array_like, shape (N,)
        Latent positions (usually ``grid.x``).
    name : str
        A key of :data:`RATE_MODELS`.
    **params
        Model parameters (names as in ``RATE_MODELS[name].defaults``).

    Returns
    -------
    f : ndarray, shape (N,)
        Rate in Hz, floored: ``max(f, 1)``.

    Raises
    ------
    ValueError
        Unknown model or parameter, or non-finite rates.
    """
    model = _lookup(RATE_MODELS, name, params, "rate")
    xa = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if xa.ndim != 1 or not np.all(np.isfinite(xa)):
        raise ValueError("x must be a 1-D array of finite positions")
    f = np.asarray(model.func(xa, **params), dtype=np.float64)
    if f.shape != xa.shape:
        raise ValueError(f"rate model {name!r} returned shape {f.shape}, expected {xa.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"rate model {name!r} gives non-finite rates; check its parameters")
    # The floor also removes negative values of e.g. a rectified linear rate:
    # that is the model's definition (MATH.md §9), not an error.
    return np.maximum(f, RATE_FLOOR)


def peq_from_spec(grid: GridLike, spec: Mapping[str, Any]) -> np.ndarray:
    """:func:`peq_from_library` from ``{'model': name, 'params': {...}}``.

    Returns
    -------
    peq : ndarray, shape (N,)
        Normalised (``Σ w·peq = 1``), then clipped below at 1e-5.
    """
    name, params = _unpack_spec(spec, "peq_model")
    return peq_from_library(grid, name, **params)


def p0_from_spec(grid: GridLike, spec: Mapping[str, Any]) -> np.ndarray:
    """:func:`p0_from_library` from ``{'model': name, 'params': {...}}``.

    Returns
    -------
    p0 : ndarray, shape (N,)
        Normalised (``Σ w·p0 = 1``), not clipped.
    """
    name, params = _unpack_spec(spec, "p0_model")
    return p0_from_library(grid, name, **params)


def rate_from_spec(x: Any, spec: Mapping[str, Any]) -> np.ndarray:
    """:func:`rate_from_library` from ``{'model': name, 'params': {...}}``.

    Returns
    -------
    f : ndarray, same shape as ``x``
        Firing rate in Hz, floored at 1 Hz.
    """
    name, params = _unpack_spec(spec, "fr_model")
    return rate_from_library(x, name, **params)
