"""Run a reference case and write what flowdash computes under the reference's key names.

Usage::

    python -m flowdash.verify CASE.json OUT.npz

``CASE.json`` and its ``CASE.npz`` follow the layout of the shared reference
cases (see ``../shared/reference/README.md``). Gradient cases (with
``eval_model``) produce ``loglik``, ``loglik_only`` and ``grad_*`` (and
``loglik_gt``, the ground truth's NLL in the same likelihood setting, when
the case has a ``ground_truth_model``); a case-level
``boundary_conditions`` overrides what ``boundary_mode`` implies; fit
cases (with ``init_model``) produce ``logliks``, ``logliksCV``,
``results_peq`` (and ``results_p0``, ``results_D``, ``results_fr`` when
fitted) and ``iter_num``. Selection cases (MATH.md §10; the runner
contract of ``../shared/reference/README.md``): FC cases (``models``) produce
``FC`` and ``JS_st`` or ``JS_t``; FCA cases (``fca_settings``) ``FCs1``,
``FCs2``, ``min_inds_1``, ``min_inds_2``, ``JS``, ``FC_opt_ind`` (plus
``invert``, ``FC_opt_ind_extra`` and the ``*_all`` / ``*_mirror2`` variants
where the case has them); Viterbi cases (``viterbi_call``) ``traj_i`` and
``state_inds_i`` per trial. Every output also has ``seconds`` (what it
covers per case type: :data:`SECONDS`): for a gradient case the wall time of
one NLL + gradient call, for a fit case that of the whole fit (every epoch
and the initial evaluation), for a Viterbi case that of decoding every trial;
each after the numba kernels were loaded (:func:`load_kernels`, a one-time
cost per process that ``bench/run.py`` reports as start-up), data loading
excluded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from .core.fitting import FitOptions, fit
from .core.grid import Grid
from .core.likelihood import ground_truth_nll, nll, nll_and_grad
from .core.model import Model
from .core.spikedata import load_reference_set

__all__ = ["run_case", "main", "load_kernels", "SECONDS"]

#: What ``seconds`` covers, per case type (printed by the command line).
SECONDS = {"gradient": "one NLL + gradient call, kernels loaded beforehand",
           "fit": "the whole fit, kernels loaded beforehand",
           "fc": "every feature complexity and divergence",
           "fca": "the feature consistency analysis and the case's variants",
           "viterbi": "decoding every trial, kernels loaded beforehand"}


def load_kernels() -> None:
    """Load (or compile) every numba kernel of the likelihood and the simulation.

    A tiny NLL with all five gradients and a tiny simulation: afterwards
    nothing is compiled or loaded from the cache, so timings measure work.
    """
    from .core.simulation import warm_up
    from .core.spikedata import SpikeData

    grid = Grid(4, 2)
    spec = {"peq_model": {"model": "uniform", "params": {}},
            "p0_model": {"model": "cos_square", "params": {}}, "D": 1.0,
            "fr_model": [{"model": "linear", "params": {"slope": 10, "bias": 30}}]}
    data = SpikeData.from_spike_times([[np.array([0.1, 0.3])], [np.array([0.2])]],
                                      starts=[0.0, 0.0], ends=[0.5, 0.4], with_trial_end=True)
    for mode in ("absorbing", "reflecting"):
        model = Model.from_spec(spec, grid, mode)
        nll_and_grad(model, data, grads=("F", "F0", "D", "Fr", "C"))
        nll(model, data)
    warm_up()


def _grid(case: dict) -> Grid:
    g = case["grid"]
    return Grid(int(g["Np"]), int(g["Ne"]), float(g.get("xbegin", -1.0)), float(g.get("xend", 1.0)))


def _sets(arrays, prefix: str, K: int, n_neurons: int, with_trial_end: bool) -> list:
    names = [prefix] if K == 1 and f"{prefix}_ntrials" in arrays else [f"{prefix}{k}" for k in range(K)]
    return [load_reference_set(arrays, name, n_neurons=n_neurons, with_trial_end=with_trial_end) for name in names]


def _with_boundary(case: dict, key: str) -> dict:
    """The model spec ``case[key]`` with the case-level ``boundary_conditions`` (the 2021 ablation)."""
    return {"boundary_conditions": case.get("boundary_conditions"), **case[key]}


def run_case(case_path: str | Path) -> dict:
    """Compute a reference case; returns the output arrays by key name."""
    case_path = Path(case_path)
    case = json.loads(case_path.read_text())
    arrays = np.load(case_path.with_suffix(".npz"), allow_pickle=False)
    grid = _grid(case)
    for key, runner in _SELECTION_RUNNERS:
        if key(case):
            return runner(case, arrays, grid)
    mode = case["boundary_mode"]
    te = bool(case.get("with_trial_end", False))
    Nv = case.get("Nv")
    K = int(case.get("datasamples", 1))
    if "eval_model" in case:
        model = Model.from_spec(_with_boundary(case, "eval_model"), grid, mode)
        data = _sets(arrays, "data", 1, model.n_neurons, te)[0]
        grads = list(case.get("grad_list", ["F", "D", "Fr", "C"]))
        load_kernels()
        t0 = time.perf_counter()
        value, grad = nll_and_grad(model, data, Nv=Nv, grads=grads)
        seconds = time.perf_counter() - t0
        only = nll(model, data, Nv=Nv)
        out = {"loglik": np.float64(value), "loglik_only": np.float64(only)}
        out.update({f"grad_{k}": np.asarray(v) for k, v in grad.items()})
        out["seconds"] = np.float64(seconds)
        if "ground_truth_model" in case:
            truth = Model.from_spec(case["ground_truth_model"], grid, mode)
            out["loglik_gt"] = np.float64(ground_truth_nll(truth, data, model, Nv=Nv))
        return out

    model = Model.from_spec(_with_boundary(case, "init_model"), grid, mode)
    train = _sets(arrays, "train", K, model.n_neurons, te)
    val = _sets(arrays, "val", K, model.n_neurons, te)
    o = case["opt_options"]
    options = FitOptions(optimizer=case.get("optimizer", "ADAM"), max_epochs=int(o["max_epochs"]),
                         mini_batch_number=int(o.get("mini_batch_number", 1)),
                         params_to_opt=tuple(o["params_to_opt"]), learning_rate=o.get("learning_rate"),
                         Nv=Nv, seed=int(o.get("seed", 0)))
    load_kernels()
    t0 = time.perf_counter()
    result = fit(model, train, val, options)
    seconds = time.perf_counter() - t0
    snaps = [result.snapshots[e] for e in result.epochs]
    squeeze = (lambda a: a[0]) if K == 1 else (lambda a: a)
    out = {"logliks": squeeze(result.nll_train), "logliksCV": squeeze(result.nll_val),
           "iter_num": result.epochs, "results_peq": np.array([m.peq for m in snaps])}
    fitted = set(options.params_to_opt)
    if "F0" in fitted:
        out["results_p0"] = np.array([m.p0 for m in snaps])
    if "D" in fitted:
        out["results_D"] = np.array([m.D for m in snaps])
    if {"Fr", "C"} & fitted:
        out["results_fr"] = np.array([m.fr for m in snaps])
    out["seconds"] = np.float64(seconds)
    return out


# --------------------------------------------------------------------------- selection (MATH.md §10)
def _fc_case(case: dict, arrays, grid: Grid) -> dict:
    """Feature complexity of each model and the divergence of each pair."""
    from .core import selection

    M = len(case["models"])
    non_eq = "p0_0" in arrays.files
    if non_eq:
        mode, T = case["boundary_mode"], float(case["terminal_time"])
        n = int(case["number_of_timesteps"])
        models = [(arrays[f"peq_{i}"], arrays[f"p0_{i}"], arrays[f"D_{i}"]) for i in range(M)]
    else:
        models = [arrays[f"peq_{i}"] for i in range(M)]
    pairs = arrays["pairs"]
    t0 = time.perf_counter()
    if non_eq:
        FC = [selection.fc_nonequilibrium(grid, *mdl, mode, T) for mdl in models]
        JS = [selection.js_timedep(grid, models[a], models[b], mode, T, n) for a, b in pairs]
    else:
        FC = [selection.fc_equilibrium(grid, peq) for peq in models]
        JS = [selection.js_equilibrium(grid, models[a], models[b]) for a, b in pairs]
    seconds = time.perf_counter() - t0
    return {"FC": np.array(FC), ("JS_t" if non_eq else "JS_st"): np.array(JS), "seconds": np.float64(seconds)}


def _fca_case(case: dict, arrays, grid: Grid) -> dict:
    """The feature consistency analysis of the two paths, with the case's variants."""
    from .core.selection import FCASettings, FeatureConsistency, FitPath

    fs = dict(case["fca_settings"])
    mode = fs.pop("boundary_mode", case.get("boundary_mode", "reflecting"))
    settings = FCASettings(**fs)
    files = set(arrays.files)
    if "opt_options" in case:
        fitted = set(case["opt_options"]["params_to_opt"])
    else:  # the recorded arrays say what was fitted
        fitted = {"F"} | {p for key, ps in (("p01", {"F0"}), ("D1", {"D"}), ("fr1", {"Fr", "C"}))
                          if key in files for p in ps}

    def path(k: int) -> FitPath:
        get = lambda name: arrays[f"{name}{k}"] if f"{name}{k}" in files else None  # noqa: E731
        return FitPath(grid, mode, arrays[f"iter_num{k}"], arrays[f"peq{k}"], get("p0"), get("D"), get("fr"),
                       frozenset(fitted))

    path1, path2 = path(1), path(2)
    out: dict = {}
    t0 = time.perf_counter()

    def record(result, suffix: str = "") -> None:
        for key in ("FCs1", "FCs2", "min_inds_1", "min_inds_2", "JS"):
            out[key + suffix] = np.asarray(getattr(result, key))
        out["FC_opt_ind" + suffix] = np.int64(result.selected)
        if result.non_equilibrium:
            out["invert" + suffix] = np.bool_(result.invert)

    fca = FeatureConsistency(path1, path2)
    result = fca.analyse(settings)
    record(result)
    if "JS_thres_extra" in files:
        out["FC_opt_ind_extra"] = np.array([result.select(float(t))[0] for t in arrays["JS_thres_extra"]])
    if "FCs1_all" in files:
        record(fca.analyse(dataclasses.replace(settings, num_models=10000)), "_all")
    if "FCs1_mirror2" in files:
        record(FeatureConsistency(path1, path2.mirrored(), fca.cache).analyse(settings), "_mirror2")
    out["seconds"] = np.float64(time.perf_counter() - t0)
    return out


def _viterbi_case(case: dict, arrays, grid: Grid) -> dict:
    """Viterbi paths of every trial of ``data`` with the ground-truth model."""
    from .core.viterbi import viterbi

    model = Model.from_spec(case["ground_truth_model"], grid, case["boundary_mode"])
    te = bool(case.get("with_trial_end", False))
    data = _sets(arrays, "data", 1, model.n_neurons, te)[0]
    _load_viterbi_kernels(model, te, case.get("Nv"))
    t0 = time.perf_counter()
    paths = viterbi(model, data, Nv=case.get("Nv"))
    seconds = time.perf_counter() - t0
    out: dict = {"seconds": np.float64(seconds)}
    for i, p in enumerate(paths):
        out[f"traj_{i}"] = p.x
        out[f"state_inds_{i}"] = p.state_inds
    return out


def _load_viterbi_kernels(model: Model, with_trial_end: bool, Nv) -> None:
    """Decode a one-spike trial with the case's model (the same kernels as the
    case's own trials), so that the timed decoding loads nothing."""
    from .core.spikedata import SpikeData
    from .core.viterbi import viterbi

    spikes = [np.array([0.01])] + [np.array([])] * (model.n_neurons - 1)
    viterbi(model, SpikeData.from_spike_times([spikes], starts=[0.0], ends=[0.02],
                                              with_trial_end=with_trial_end), Nv=Nv)


_SELECTION_RUNNERS = (
    (lambda case: "fca_settings" in case, _fca_case),
    (lambda case: "models" in case, _fc_case),
    (lambda case: "viterbi_call" in case, _viterbi_case),
)


def _kind(out: dict) -> str:
    """The case type of a runner output (a key of :data:`SECONDS`)."""
    if "loglik" in out:
        return "gradient"
    if "FC_opt_ind" in out:
        return "fca"
    if "FC" in out:
        return "fc"
    if "traj_0" in out:
        return "viterbi"
    return "fit"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowdash.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("case", help="reference case .json (its .npz must sit beside it)")
    parser.add_argument("out", help="output .npz")
    args = parser.parse_args(argv)
    try:
        out = run_case(args.case)
    except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        print(f"flowdash.verify: cannot run {args.case}: {exc}", file=sys.stderr)
        return 2
    np.savez(args.out, **out)
    print(f"{Path(args.case).stem}: wrote {len(out)} arrays to {args.out}; seconds = "
          f"{float(out['seconds']):.3f} ({SECONDS[_kind(out)]}, data loading excluded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
