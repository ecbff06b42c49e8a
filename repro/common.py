"""What the 2021 reproductions share: the dashboard's presets, data, fits, plots.

The scripts use the numbers of the dashboard's presets (Model, Data and Fit
pages), so a reproduction and a click on a preset run the same science, and
they call the core directly (:func:`flowdash.core.fitting.fit`).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:   # run as a script from anywhere: ``python repro/fig3_2021.py``
    sys.path.insert(0, str(ROOT))

from flowdash.core.fitting import FitOptions, fit  # noqa: E402
from flowdash.core.likelihood import ground_truth_nll  # noqa: E402
from flowdash.core.simulation import simulate  # noqa: E402
from flowdash.jobs.data import build_model  # noqa: E402
from flowdash.pages.data.logic import PRESETS as DATA_PRESETS  # noqa: E402
from flowdash.pages.fit.view import PRESETS as FIT_PRESETS  # noqa: E402
from flowdash.pages.model.form import PRESETS as MODEL_PRESETS  # noqa: E402
from flowdash.settings import initial_spec  # noqa: E402

PHI_CLIP = 6.0
TRUTH_GREY, FIT_BLUE = "#A0A0A0", "#0072B2"


def truth_spec(key: str, Ne: int | None = None) -> dict:
    """A Model-page preset's spec (``ramp2021``, ``step2021``), optionally on Ne elements."""
    spec = dict(MODEL_PRESETS[key][1])
    if Ne:
        spec["grid"] = dict(spec["grid"], Ne=Ne)
    return spec


def generate(spec: dict, n_trials: int, seed: int, data_key: str = "ramp2021",
             duration: float | None = None):
    """Simulate a Data-page preset's trials of a truth (trials of up to its duration, or
    ``duration``); returns (model, Simulation, seconds)."""
    d = DATA_PRESETS[data_key][1]
    model = build_model(spec)
    t0 = time.perf_counter()
    sim = simulate(model, n_trials, duration or float(d["duration"]), dt=float(d["dt"]),
                   seed=seed, with_trial_end=bool(d["with_trial_end"]))
    return model, sim, time.perf_counter() - t0


def fit_start(spec: dict, fit_key: str, **extra):
    """The initial model of a Fit-page preset from a truth's spec (its overrides applied)."""
    f = FIT_PRESETS[fit_key][1]
    s = {"peq_override": f["peq_override"],
         "p0_override": None if f["p0_override"] == "as-saved" else f["p0_override"],
         "D_override": f["D_override"] or None, "Ne_override": f["Ne_override"] or None}
    s.update(extra)
    return build_model(initial_spec(spec, s))


def options(fit_key: str, epochs: int, snapshots, **changes) -> FitOptions:
    """The FitOptions of a Fit-page preset (GD, its rates and parameters)."""
    f = FIT_PRESETS[fit_key][1]
    params = tuple(f["params"])
    kw = dict(optimizer="GD", max_epochs=epochs, params_to_opt=params,
              learning_rate={p: float(f["lr"][p]) for p in params},
              snapshot_epochs=sorted(set(snapshots)))
    kw.update(changes)
    return FitOptions(**kw)


def run_fit(model, data, opts: FitOptions, truth=None):
    """Fit and time; returns (FitResult, seconds, ground truth's NLL in this fit's setting)."""
    t0 = time.perf_counter()
    result = fit(model, data, None, opts)
    seconds = time.perf_counter() - t0
    gt = None if truth is None else ground_truth_nll(truth, data, model)
    return result, seconds, gt


def phi(peq) -> np.ndarray:
    return np.minimum(-np.log(np.asarray(peq, float)), PHI_CLIP)


def phi_error(x_fit, peq_fit, x_true, peq_true) -> float:
    """Mean |Φ_fit − Φ_true| over the fit's grid (truth interpolated), before clipping."""
    true = np.interp(x_fit, x_true, -np.log(np.asarray(peq_true, float)))
    return float(np.mean(np.abs(-np.log(np.asarray(peq_fit, float)) - true)))


def matplotlib():
    import matplotlib as mpl
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False})
    return plt
