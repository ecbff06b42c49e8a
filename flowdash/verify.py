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
fitted) and ``iter_num``. Every output also has ``seconds``, the wall time
of the computation (data loading excluded).
"""

from __future__ import annotations

import argparse
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

__all__ = ["run_case", "main"]


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
    mode = case["boundary_mode"]
    te = bool(case.get("with_trial_end", False))
    Nv = case.get("Nv")
    K = int(case.get("datasamples", 1))
    if "eval_model" in case:
        model = Model.from_spec(_with_boundary(case, "eval_model"), grid, mode)
        data = _sets(arrays, "data", 1, model.n_neurons, te)[0]
        grads = list(case.get("grad_list", ["F", "D", "Fr", "C"]))
        t0 = time.perf_counter()
        value, grad = nll_and_grad(model, data, Nv=Nv, grads=grads)
        only = nll(model, data, Nv=Nv)
        out = {"loglik": np.float64(value), "loglik_only": np.float64(only)}
        out.update({f"grad_{k}": np.asarray(v) for k, v in grad.items()})
        out["seconds"] = np.float64(time.perf_counter() - t0)
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
    print(f"{Path(args.case).stem}: wrote {len(out)} arrays to {args.out} in {float(out['seconds']):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
