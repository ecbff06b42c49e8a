"""The job kind ``generation``: simulate trials from a saved model, save a dataset."""
from __future__ import annotations

import time

import numpy as np

from ..core.limits import InvalidValue
from ..settings import SettingsError, check_generation, generation_max_steps
from . import kinds
from .data import build_model, random_split, spikedata_to_bytes
from .runner import JobFailed, Stopped

#: At most this many latent samples are kept per trial for display.
LATENT_POINTS = 4000
#: Latent trajectories are kept for at most this many trials.
LATENT_TRIALS = 50

#: A tiny model whose simulation loads the numba kernels (worker warm-up).
WARM_SPEC = {"grid": {"Np": 4, "Ne": 4}, "boundary_mode": "reflecting",
             "peq_model": {"model": "cos_square", "params": {}}, "p0_model": None, "D": 1.0,
             "fr_model": [{"model": "rectified_linear", "params": {"slope": 50}}]}


def check(values: dict, store):
    """Settings, refs and default name of a generation (see ``check_generation``)."""
    s, errors = check_generation(values, store)
    if errors:
        raise SettingsError(errors)
    return s, {"model": s["model"], "dataset": s["dataset_name"],
               "model_spec": store.get_model(s["model"])}, f"generate {s['dataset_name']}"


def _subsample(t, x, n=LATENT_POINTS):
    step = max(1, int(np.ceil(len(t) / n)))
    return np.asarray(t)[::step].tolist(), np.asarray(x)[::step].tolist()


def run(store, run_id: str, hooks, simulate_fn=None) -> str:
    """Simulate the run's trials and save its dataset; returns the summary.

    ``simulate(model, n, seed=s)`` with a progress hook: trial i uses child i
    of ``SeedSequence(s)``, so the dataset equals that call. A blank seed
    draws fresh entropy, which is recorded (``seed_used``). A stop between
    trials saves nothing.
    """
    from ..core.simulation import SimulationStopped

    if simulate_fn is None:
        from ..core.simulation import simulate as simulate_fn
    t0, done = time.time(), [0]
    s = hooks.settings
    spec = hooks.record["refs"].get("model_spec") or store.get_model(s["model"])
    if spec is None:
        raise JobFailed(f"there is no saved model named “{s['model']}”")
    model = build_model(spec)
    seed = s["seed"] if s.get("seed") is not None else int(np.random.SeedSequence().entropy)
    hooks.progress(0.0, f"trial 0 of {s['n_trials']}", seed_used=seed)

    def on_trial(n, total):  # called from the simulation's threads
        done[0] = n
        hooks.progress(n / total, f"trial {n} of {total}")
        return hooks.should_stop()

    def stopped():
        return Stopped(f"{hooks.stopped} after {done[0]} of {s['n_trials']} trials; "
                       "no dataset was saved")
    try:
        sim = simulate_fn(model, s["n_trials"], s["duration"], dt=s["dt"], seed=seed,
                          with_trial_end=s["with_trial_end"], on_trial=on_trial,
                          max_steps=generation_max_steps(model.n_neurons))
    except SimulationStopped:
        raise stopped() from None
    except InvalidValue as exc:   # the trials outlasted the cap (they did not reach a wall)
        if exc.field != "max_steps":
            raise
        raise JobFailed(f"{exc}; no dataset was saved") from None
    latent = {"t": [], "x": []}
    for t, x in list(zip(sim.time, sim.x))[:LATENT_TRIALS]:
        t, x = _subsample(t, x)
        latent["t"].append(t)
        latent["x"].append(x)
    data = sim.data
    meta = {"source": "synthetic", "model": s["model"], "model_spec": spec,
            "n_datasamples": 1, "n_neurons": int(model.n_neurons),
            "n_trials": data.n_trials, "with_trial_end": s["with_trial_end"],
            "duration": s["duration"], "dt": s["dt"], "seed": seed,
            "split": random_split(data.n_trials, s["val_fraction"], seed),
            "run_id": run_id, "conditions": ["all"]}
    try:
        saved = store.save_dataset(s["dataset_name"], [spikedata_to_bytes(data)], meta, latent,
                                   unless_cancelled=run_id)
    except ValueError as exc:  # the name was taken meanwhile (another run or an upload)
        raise JobFailed(f"the dataset could not be saved: {exc}") from None
    if saved is None:  # a cancel came after the last trial: it wins, nothing is saved
        hooks.should_stop()
        raise stopped()
    return f"{data.n_trials} trials in {time.time() - t0:.2f} s"


def warm() -> None:
    """Load the simulation kernels (a tiny model, two short trials)."""
    from ..core.simulation import simulate

    simulate(build_model(WARM_SPEC), 2, 0.05, dt=1e-3, seed=0, with_trial_end=True)


kinds.register("generation", check, run, warm)
