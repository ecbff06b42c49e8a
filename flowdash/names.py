"""Names and ids that users and requests supply: their checks, and safe display.

Every name (model, dataset, run) and every run id that reaches the store is
checked here first, so that a request cannot store a 20 MB id, an invisible
name or a control character. :func:`plot_text` makes user text safe for
Plotly titles and legends, which render a subset of HTML (an ``<a href>`` in
a run name would become a live link). Importable without dash.
"""
from __future__ import annotations

import html
import re
import unicodedata

from .core.limits import InvalidValue

#: Longest model or dataset name, characters.
MAX_NAME_LENGTH = 80
#: Longest run name (default run names add a word to a dataset name).
MAX_RUN_NAME_LENGTH = 120
#: Run ids are 12 lowercase hexadecimal digits (see ``RunStore.create_run``).
RUN_ID_LENGTH = 12
_RUN_ID = re.compile(r"[0-9a-f]{12}")
#: Job kinds ("fit", "generation", and whatever the job layer registers) are
#: short lower-case names: they travel in run records, Celery tasks and URLs.
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")

#: Unicode categories refused in names: control (Cc), format (Cf: zero-width
#: and direction marks), line/paragraph separators, surrogates, private use,
#: unassigned.
_BAD_CATEGORIES = {"Cc": "a control character", "Cf": "an invisible formatting character",
                   "Zl": "a line separator", "Zp": "a paragraph separator",
                   "Cs": "a surrogate", "Co": "a private-use character",
                   "Cn": "an unassigned character"}


def validate_name(name, what: str = "name", max_length: int = MAX_NAME_LENGTH) -> str:
    """The name without surrounding spaces; :class:`InvalidValue` (a ValueError
    whose ``field`` is ``"name"``) saying what is wrong.

    A name is 1..``max_length`` characters of visible text (letters, digits,
    punctuation, spaces); control, zero-width and other invisible characters
    are refused with a message naming the character and its position.
    """
    if not isinstance(name, str):
        raise InvalidValue("name", f"{what} name must be text, got {type(name).__name__}")
    if len(name) > 4 * max_length:  # check the length before looking at each character
        raise InvalidValue("name", f"{what} name is too long ({len(name)} characters; "
                           f"at most {max_length} are allowed)")
    name = name.strip()
    if not name:
        raise InvalidValue("name", f"{what} name must not be empty")
    if len(name) > max_length:
        raise InvalidValue("name", f"{what} name is too long ({len(name)} characters; "
                           f"at most {max_length} are allowed)")
    for i, ch in enumerate(name):
        kind = _BAD_CATEGORIES.get(unicodedata.category(ch))
        if kind:
            label = unicodedata.name(ch, "")
            raise InvalidValue("name", f"{what} name contains {kind}, U+{ord(ch):04X}"
                               f"{' ' + label if label else ''}, at position {i + 1}; use "
                               "visible letters, digits, spaces and punctuation")
    return name


def is_run_id(run_id) -> bool:
    """True for a well-formed run id (12 lowercase hex digits); cheap for any input."""
    return isinstance(run_id, str) and len(run_id) == RUN_ID_LENGTH and \
        _RUN_ID.fullmatch(run_id) is not None


def validate_run_id(run_id) -> str:
    """``run_id`` if well formed, else ValueError (the bad id is not echoed in full)."""
    if not is_run_id(run_id):
        shown = repr(run_id)[:40] + ("…" if len(repr(run_id)) > 40 else "")
        raise ValueError(f"{shown} is not a run id (run ids are {RUN_ID_LENGTH} lowercase "
                         "hexadecimal digits)")
    return run_id


def validate_kind(kind) -> str:
    """``kind`` if it has the form of a job kind's name, else ValueError.

    A kind is 1..32 characters: a lower-case letter, then lower-case letters,
    digits, ``_`` or ``-``. The store checks only the form; which kinds
    exist is the job layer's registry (``flowdash.jobs.kinds``).
    """
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        shown = repr(kind)[:40] + ("…" if len(repr(kind)) > 40 else "")
        raise ValueError("kind must be a short lower-case name (a-z, 0-9, _ or -, at most 32 "
                         f"characters, starting with a letter) such as 'fit', got {shown}")
    return kind


def plot_text(text) -> str:
    """User text for a Plotly title, legend or hover: HTML markup shown as text.

    Plotly renders ``<a>``, ``<b>``, ``<br>`` … in titles and legends; escaping
    ``&``, ``<`` and ``>`` makes it show them literally.
    """
    return html.escape("" if text is None else str(text), quote=False)
