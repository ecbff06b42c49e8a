"""The allowed values of a setting, and the error that names the setting.

Each limit is defined once, beside the science that needs it (``grid.NP``,
``spectra.nv_limit(N)``, ``fitting.mini_batch_limit(n)``,
``simulation.dt_limit(duration)``, ...). The core checks its arguments with
them; the settings layer and the dashboard's forms use the same objects
(narrowed with :meth:`Limit.within` where the app caps a resource), so a form
can never accept what the core refuses.

An :class:`InvalidValue` carries the name of the setting as data
(``field``), so a caller maps it to a form field without reading the text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["InvalidValue", "Limit", "format_number"]


class InvalidValue(ValueError):
    """A value that a setting does not allow.

    Attributes
    ----------
    field : str
        The argument's name (``"Np"``, ``"Nv"``, ``"mini_batch_number"``);
        an entry of a mapping argument is ``"argument:key"``
        (``"learning_rate:F"``), a library model parameter its own name.
    """

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def format_number(value) -> str:
    """A number as people write it: ``4294967295``, ``0.0001``, ``100000``, ``2.5``."""
    v = float(value)
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    # 12 significant digits hide binary round-off (1e-3/1e8 -> 0.00000000001)
    return np.format_float_positional(v, precision=12, unique=False, fractional=False, trim="-")


@dataclass(frozen=True)
class Limit:
    """A number of ``kind`` between ``lo`` and ``hi`` (each optional).

    Parameters
    ----------
    name : str
        The setting's name, used in messages and as ``InvalidValue.field``.
    kind : type
        ``int`` (whole numbers) or ``float``.
    lo, hi : float or None
        Bounds (None: unbounded on that side).
    lo_open, hi_open : bool
        Exclusive bounds.
    why : str
        Where a bound comes from (``"N - 2 for this grid"``), added to messages.
    """

    name: str
    kind: type = float
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    why: str = ""

    def allows(self, value) -> bool:
        """True if ``value`` (a number) lies within the limit."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(v) or (self.kind is int and not v.is_integer()):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def describe(self) -> str:
        """``'an integer >= 3'``, ``'an integer in [1, 1791]'``, ``'a number > 0'``, ..."""
        what = "an integer" if self.kind is int else "a number"
        lo = None if self.lo is None else format_number(self.lo)
        hi = None if self.hi is None else format_number(self.hi)
        if lo is not None and hi is not None:
            text = f"{what} in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        elif lo is not None:
            text = f"{what} {'>' if self.lo_open else '>='} {lo}"
        elif hi is not None:
            text = f"{what} {'<' if self.hi_open else '<='} {hi}"
        else:
            text = f"{what}" if self.kind is int else "a finite number"
        return text + (f" ({self.why})" if self.why else "")

    def check(self, value):
        """``value`` as ``kind`` if allowed; else raise.

        Raises
        ------
        TypeError
            Not a number (or not an integer for an ``int`` limit), or a bool.
        InvalidValue
            Outside the limit (``field`` = ``name``).
        """
        bad_type = isinstance(value, (bool, np.bool_)) or (
            self.kind is int and not isinstance(value, (int, np.integer)))
        if not bad_type:
            try:
                v = float(value)
            except (TypeError, ValueError):
                bad_type = True
        if bad_type:
            raise TypeError(f"{self.name} must be {self.describe()}, got {value!r}")
        if not self.allows(v):
            raise InvalidValue(self.name, f"{self.name} must be {self.describe()}, got {value!r}")
        return int(value) if self.kind is int else v

    def within(self, lo: float | None = None, hi: float | None = None) -> "Limit":
        """The same setting with tighter (closed) bounds, e.g. an app's resource cap.

        Raises ValueError if a new bound lies outside this limit.
        """
        for bound in (lo, hi):
            if bound is not None and not self.allows(bound):
                raise ValueError(f"{bound} is outside {self.name}'s limit: {self.describe()}")
        changes = {}
        if lo is not None:
            changes.update(lo=lo, lo_open=False)
        if hi is not None:
            changes.update(hi=hi, hi_open=False)
        return replace(self, **changes)
