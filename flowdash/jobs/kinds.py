"""The registry of job kinds: kind name -> how to check, run and warm it.

A job kind is three plain functions::

    check(values: dict, store) -> (settings: dict, refs: dict, name: str)
        Validate what a page or script asks for (raise
        :class:`flowdash.settings.SettingsError` with a message per setting)
        before anything is recorded; ``refs`` are kept with the run (e.g. the
        model spec used), ``name`` is the run's default name.
    run(store, run_id, hooks) -> str | None
        Do the work of one queued run in a worker (any process, any machine).
        Report with ``hooks.progress``, stop when ``hooks.should_stop()``
        says so, and return a one-line summary (the run's final message).
        See :class:`flowdash.jobs.runner.Hooks` for the rest of the contract.
    warm() -> None (optional)
        Load what makes the first run slow (numba kernels) at worker start.

Register a kind from its own module with :func:`register` and add the
module to :data:`MODULES`; every worker (embedded, ``python -m
flowdash.worker`` or Celery) imports these modules at start, so adding a kind
never touches the queue, the workers or the pages' polling.
"""
from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Callable

#: Modules that register job kinds (imported by :func:`load`). Extra modules
#: (tests, plug-ins) can be named in ``FLOWDASH_JOB_MODULES`` (comma separated).
MODULES = ("flowdash.jobs.generation", "flowdash.jobs.fit", "flowdash.jobs.viterbi")

log = logging.getLogger("flowdash.jobs")


@dataclass(frozen=True)
class JobKind:
    """One kind of job (see the module docstring for the three functions)."""

    name: str
    check: Callable
    run: Callable
    warm: Callable | None = None


_KINDS: dict[str, JobKind] = {}


def register(name: str, check: Callable, run: Callable, warm: Callable | None = None) -> JobKind:
    """Register (or replace) the job kind ``name``; returns it."""
    kind = JobKind(name, check, run, warm)
    _KINDS[name] = kind
    return kind


def modules() -> tuple[str, ...]:
    extra = os.environ.get("FLOWDASH_JOB_MODULES", "")
    return MODULES + tuple(m.strip() for m in extra.split(",") if m.strip())


def load() -> dict[str, JobKind]:
    """Import every kind module; returns name -> JobKind."""
    for module in modules():
        importlib.import_module(module)
    return dict(_KINDS)


def get(name: str) -> JobKind:
    """The kind ``name``; raises ValueError naming the known kinds."""
    if name not in _KINDS:
        load()
    if name not in _KINDS:
        raise ValueError(f"unknown job kind {name!r}; known kinds: {', '.join(sorted(_KINDS))} "
                         "(a module that registers more is named in FLOWDASH_JOB_MODULES)")
    return _KINDS[name]


def warm_all() -> None:
    """Run every kind's ``warm`` (at worker start); a failing warm-up only costs speed."""
    for kind in load().values():
        if kind.warm is not None:
            try:
                kind.warm()
            except Exception:
                log.warning("warming up the job kind %r failed; its first run will be slower",
                            kind.name, exc_info=True)
