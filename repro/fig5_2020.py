"""Fig. 5 of Genkin & Engel (2020), from scratch: model selection by feature consistency.

Two datasamples like Example 1 (each 2 trials × 100 s of the double-well
ground truth: one trial trains, one validates) are fitted side by side, in two
processes, by GD on F from the cos_square start (lr 0.005, Nv 64, Np 8,
Ne 256) for 50,000 epochs. The NLLs are kept at every epoch and the models
every epoch up to 100, then about every 0.5 % (≈ 460 per decade; 1,400 per
fit). The feature consistency analysis (MATH.md §10.3; JS threshold 0.002,
stride 5, late model at 0.008, early at FC_selected − 4) then selects the
model, and the figure shows the paper's panels::

    python repro/fig5_2020.py                       # ≈ 1 h on 2 quiet cores
    python repro/fig5_2020.py --epochs 2000         # a shorter path
    python repro/fig5_2020.py --analyse-only        # redo the analysis and figure

The paths are written to ``--work`` (default ``~/.cache/flowdash/fig5_2020``)
every 1,000 epochs, so ``--analyse-only`` also works on fits still running.
The figure goes to ``docs/fig5_2020.png``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:   # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

SEEDS = (101, 102)           # one per datasample
DENSE_UNTIL, GROWTH = 100, 1.005
TRUTH_GREY, COLOURS = "#A0A0A0", ("#0072B2", "#D55E00")
PHI_CLIP = 6.0


def recorded_epochs(last: int) -> list[int]:
    """Every epoch up to DENSE_UNTIL, then one each time the epoch grows by 0.5 %."""
    e = np.arange(1, last + 1)
    step = np.floor(np.log(e) / np.log(GROWTH))
    keep = (e <= DENSE_UNTIL) | np.r_[True, step[1:] != step[:-1]]
    return sorted(set(e[keep].tolist()) | {0, last})


def models():
    """(truth, start) of the Model page's 2020 Fig. 3 presets."""
    from flowdash.jobs.data import build_model
    from flowdash.pages.model.form import PRESETS
    return build_model(PRESETS["fig3"][1]), build_model(PRESETS["fig3_init"][1])


def fit_half(k: int, epochs: int, out: Path) -> None:
    """Generate datasample ``k`` and fit it; writes ``out`` every 1,000 epochs."""
    from flowdash.core.fitting import FitOptions, fit
    from flowdash.core.simulation import simulate

    truth, start = models()
    t0 = time.perf_counter()
    sim = simulate(truth, n_trials=2, duration=100.0, dt=1e-4, seed=SEEDS[k], with_trial_end=False)
    train, val = sim.data.subset([0]), sim.data.subset([1])
    keep = set(recorded_epochs(epochs))
    nll_train, nll_val, kept, peq = [], [], [], []

    def save(done=False):
        np.savez(out, nll_train=np.array(nll_train), nll_val=np.array(nll_val),
                 epochs=np.array(kept, dtype=np.int64), peq=np.array(peq),
                 seconds=time.perf_counter() - t0, done=done,
                 n_spikes=[sum(len(i) for i, _ in d.trials) for d in (train, val)])

    def on_epoch(r):
        nll_train.append(r.nll_train[0])
        nll_val.append(r.nll_val[0])
        if r.epoch in keep:
            kept.append(r.epoch)
            peq.append(r.model.peq[0].copy())
        if r.epoch % 1000 == 0:
            save()
            print(f"fit {k + 1}: epoch {r.epoch}, {time.perf_counter() - t0:.0f} s", flush=True)

    opts = FitOptions(optimizer="GD", max_epochs=epochs, params_to_opt=("F",),
                      learning_rate={"F": 0.005}, Nv=64, snapshot_epochs=())
    fit(start, train, val, opts, on_epoch=on_epoch)
    save(done=True)


def run_fits(epochs: int, work: Path) -> float:
    """Both fits side by side, one process and one core each; returns the wall time."""
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--half", str(k), "--epochs", str(epochs),
                               "--work", str(work)], env=env) for k in (0, 1)]
    if any(p.wait() for p in procs):
        raise SystemExit("a fit failed; see its output above")
    return time.perf_counter() - t0


def analyse(work: Path, figure: Path) -> dict:
    from flowdash.core.selection import FCASettings, FeatureConsistency, FitPath, fc_equilibrium

    truth, _ = models()
    grid = truth.grid
    z = [dict(np.load(work / f"path{k + 1}.npz")) for k in (0, 1)]
    last = min(int(a["epochs"][-1]) for a in z)      # a fit still running: the epochs both have
    paths = [FitPath(grid, "reflecting", a["epochs"][a["epochs"] <= last], a["peq"][a["epochs"] <= last])
             for a in z]
    settings = FCASettings.paper_2020()
    t0 = time.perf_counter()
    r = FeatureConsistency(*paths).analyse(settings)
    seconds = time.perf_counter() - t0
    gt_fc = fc_equilibrium(grid, truth.peq[0])
    out = dict(last_epoch=last, selected_FC=float(r.FCs1[r.selected]), truth_FC=gt_fc,
               selected_epochs=r.selected_epochs, early_FC=float(r.FCs1[r.early]),
               late_FC=float(r.FCs1[r.late]), crossed_at_once=r.crossed_at_once,
               analysis_seconds=seconds, fit_seconds=[float(a["seconds"]) for a in z],
               val_min_epochs=[int(np.argmin(a["nll_val"])) for a in z],
               spikes=[a["n_spikes"].tolist() for a in z])
    _plot(figure, grid, truth, z, paths, r, gt_fc, out)
    return out


def _plot(figure, grid, truth, z, paths, r, gt_fc, out) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = grid.x
    phi = lambda peq: np.minimum(-np.log(peq), PHI_CLIP)  # noqa: E731
    fig, ax = plt.subplots(2, 3, figsize=(14, 8), constrained_layout=True)
    a = ax[0, 0]                                   # FC against epoch
    from flowdash.core.selection import fc_equilibrium
    for k, (p, c) in enumerate(zip(paths, COLOURS)):
        fc = [fc_equilibrium(grid, q[0]) for q in p.peq[p.epochs >= 1]]
        a.semilogx(p.epochs[p.epochs >= 1], fc, color=c, label=f"datasample {k + 1}")
    a.axhline(gt_fc, color=TRUTH_GREY, ls="--", label="ground truth")
    a.set(xlabel="epoch", ylabel="feature complexity (FC)", title="a  FC along the two fits")
    a.legend(frameon=False)
    a = ax[0, 1]                                   # validation NLL against FC
    for k, (zk, c) in enumerate(zip(z, COLOURS)):
        e = (r.epochs1 if k == 0 else r.epochs2)
        fc = r.FCs1 if k == 0 else np.array([fc_equilibrium(grid, paths[1].peq[i][0]) for i in r.min_inds_2])
        nll = zk["nll_val"][e]
        a.plot(fc, (nll - zk["nll_val"][0]) / zk["n_spikes"][1], ".-", color=c, ms=3,
               label=f"datasample {k + 1}")
    a.axvline(gt_fc, color=TRUTH_GREY, ls="--")
    a.set(xlabel="FC", ylabel="validation NLL − start (nats per spike)", title="b  validation NLL")
    a = ax[0, 2]                                   # JS against FC
    a.semilogy(r.FCs1, np.maximum(r.JS, 1e-7), ".-", color="k", ms=3)
    a.axhline(r.settings.JS_thres, color="k", ls=":", label=f"threshold {r.settings.JS_thres}")
    a.axhline(r.settings.late_JS_thres, color="0.5", ls=":", label=f"late {r.settings.late_JS_thres}")
    for i, name, c in ((r.early, "early", "#009E73"), (r.selected, "selected", "#CC0000"),
                       (r.late, "late", "#7F00FF")):
        a.plot(r.FCs1[i], max(r.JS[i], 1e-7), "o", color=c, ms=8, label=f"{name}: FC {r.FCs1[i]:.2f}")
    a.axvline(gt_fc, color=TRUTH_GREY, ls="--")
    a.set(xlabel="FC (datasample 1)", ylabel="JS divergence of the matched pair",
          title="c  feature consistency")
    a.legend(frameon=False, fontsize=8)
    for a, i, name in ((ax[1, 0], r.early, "early"), (ax[1, 1], r.selected, "selected"),
                       (ax[1, 2], r.late, "late")):
        a.plot(x, phi(truth.peq[0]), color=TRUTH_GREY, lw=3, label="ground truth")
        for k, (p, rec, c) in enumerate(zip(paths, (r.min_inds_1[i], r.min_inds_2[i]), COLOURS)):
            a.plot(x, phi(p.peq[rec][0]), color=c, label=f"datasample {k + 1}, epoch {p.epochs[rec]}")
        a.set(xlabel="latent x", ylabel="Φ(x) = −log peq", title=f"{name} model (FC {r.FCs1[i]:.2f})")
        a.legend(frameon=False, fontsize=8)
    fig.suptitle(f"2020 Fig. 5 from scratch: {out['last_epoch']:,} epochs per fit; selected FC "
                 f"{out['selected_FC']:.2f} vs ground truth {gt_fc:.2f}")
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=50_000)
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "flowdash" / "fig5_2020")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "fig5_2020.png")
    ap.add_argument("--analyse-only", action="store_true")
    ap.add_argument("--half", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.half is not None:
        return fit_half(a.half, a.epochs, a.work / f"path{a.half + 1}.npz")
    if not a.analyse_only:
        wall = run_fits(a.epochs, a.work)
        print(f"both fits: {a.epochs:,} epochs each, side by side, wall time {wall:.0f} s "
              f"({wall / 3600:.2f} h; target < 1 h)")
    out = analyse(a.work, a.figure)
    print(f"analysed up to epoch {out['last_epoch']:,} (fits took {out['fit_seconds'][0]:.0f} s and "
          f"{out['fit_seconds'][1]:.0f} s); FCA {out['analysis_seconds']:.2f} s")
    print(f"selected FC {out['selected_FC']:.2f} at epochs {out['selected_epochs']} "
          f"(ground truth FC {out['truth_FC']:.2f}); early FC {out['early_FC']:.2f}, "
          f"late FC {out['late_FC']:.2f}; threshold crossed at once: {out['crossed_at_once']}")
    print(f"validation NLL minimum at epochs {out['val_min_epochs']}; spikes (train, val) "
          f"{out['spikes']}; figure: {a.figure}")


if __name__ == "__main__":
    main()
