"""Figs. 2-3 of Genkin, Hughes & Engel (Nat Commun 2021): what each non-stationary part is worth.

Ramping data (the dashboard's "2021 ramping" presets: linear potential of slope
-2.65, p0 a narrow well at 0, D 0.56, one neuron at 50·x + 60 Hz, absorbing,
200 trials of up to 100 s with the trial end, generated on Ne 64) fitted four
ways from a uniform peq on Ne 16 by GD on F (lr 0.005): the full model, without
the absorption step, reflecting, and reflecting with an equilibrium p0
(``flowdash.jobs.ablation.ABLATIONS``). Draws each fit's NLL against the
ground truth's NLL in that fit's likelihood setting (dashed), and its
potential at epochs 4, 17 and 40 over the truth, as in the paper's Fig. 3.

    python repro/fig3_2021.py            # full size, writes docs/fig3_2021.png
    python repro/fig3_2021.py --quick    # a smoke run in seconds
"""
from __future__ import annotations

import argparse
import time

import numpy as np

try:
    from repro import common
except ImportError:   # run as a script: repro/ is on sys.path, the repo root is not yet
    import common

from flowdash.jobs.ablation import ABLATIONS  # noqa: E402  (common puts the root on the path)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 20 trials of up to 10 s on Ne 16, 4 epochs")
    p.add_argument("--epochs", type=int, default=None, help="epochs per fit (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(common.ROOT / "docs" / "fig3_2021.png"))
    args = p.parse_args(argv)
    t_all = time.perf_counter()
    n_trials = 20 if args.quick else int(common.DATA_PRESETS["ramp2021"][1]["n_trials"])
    epochs = args.epochs or (4 if args.quick else 100)
    shown = [1, 2, 4] if args.quick else [4, 17, 40]
    shown = [e for e in shown if e <= epochs]

    spec = common.truth_spec("ramp2021", Ne=16 if args.quick else None)
    truth, sim, gen_s = common.generate(spec, n_trials, args.seed,
                                        duration=10.0 if args.quick else None)
    data = sim.data
    print(f"data: {data.n_trials} ramping trials, {data.n_spikes().sum()} spikes, "
          f"generated in {gen_s:.2f} s")
    start = common.fit_start(spec, "ramp2021")
    opts = common.options("ramp2021", epochs, shown + [epochs])
    fits = []
    for ablation in ABLATIONS:
        model = ablation.apply(start)
        result, seconds, gt = common.run_fit(model, data, opts, truth)
        nll = result.nll_train.sum(axis=0)
        errs = {e: common.phi_error(model.grid.x, result.snapshots[e].peq_of(0), truth.grid.x,
                                    truth.peq_of(0)) for e in shown if e in result.snapshots}
        fits.append(dict(ablation=ablation, result=result, seconds=seconds, gt=gt, nll=nll,
                         errs=errs, x=model.grid.x))
        best = int(np.argmin(nll))
        print(f"{ablation.label:28s} {seconds:6.1f} s ({seconds / epochs * 1e3:.0f} ms/epoch); "
              f"NLL_gt {gt:.2f}; NLL epoch 0 {nll[0]:.2f} -> {nll[-1]:.2f} "
              f"(final − truth {nll[-1] - gt:+.2f}, lowest at epoch {best}); mean |ΔΦ| "
              + ", ".join(f"ep {e}: {v:.2f}" for e, v in errs.items()))
    plot(args.out, truth, sim, fits, shown, epochs, dpi=60 if args.quick else 130)
    wall = time.perf_counter() - t_all
    print(f"figure: {args.out}\nwall time: {wall:.1f} s")
    return {"wall": wall, "fits": [{"key": f["ablation"].key, "gt": f["gt"],
                                    "final": float(f["nll"][-1]), "seconds": f["seconds"]}
                                   for f in fits]}


def plot(out, truth, sim, fits, shown, epochs, dpi=130):
    plt = common.matplotlib()
    n = len(shown)
    fig = plt.figure(figsize=(3.0 * (n + 1.4), 2.3 * (len(fits) + 1)), constrained_layout=True)
    grid = fig.add_gridspec(len(fits) + 1, n + 1, width_ratios=[1.4] + [1] * n)
    # Fig. 2: the ramping model and its trials
    x = truth.grid.x
    ax = fig.add_subplot(grid[0, 0])
    for t, path in list(zip(sim.time, sim.x))[:8]:
        ax.plot(t, path, lw=0.8)
    ax.set(xlabel="time (s)", ylabel="latent x", title="latent trajectories (8 trials)")
    ax = fig.add_subplot(grid[0, 1])
    ax.plot(x, common.phi(truth.peq_of(0)), color="k", lw=2)
    ax.set(xlabel="x", ylabel="Φ(x)", title="ground-truth potential")
    if n > 1:
        ax = fig.add_subplot(grid[0, 2])
        ax.plot(x, truth.p0_of(0), color="#009E73", lw=2)
        ax.set(xlabel="x", ylabel="p0(x)", title="initial density p0")
    if n > 2:
        ax = fig.add_subplot(grid[0, 3])
        ax.plot(x, truth.fr_of(0)[:, 0], color="#E69F00", lw=2)
        ax.set(xlabel="x", ylabel="rate (Hz)", title="firing rate f(x)")
    # Fig. 3: one row per fit
    for row, f in enumerate(fits, start=1):
        ax = fig.add_subplot(grid[row, 0])
        base = f["nll"][0]
        ax.plot(np.arange(len(f["nll"])), f["nll"] - base, color="k", lw=1.8, label="training")
        ax.axhline(f["gt"] - base, color="k", ls="--", lw=1.2, label="ground truth")
        for e in shown:
            ax.axvline(e, color="#ccc", lw=0.8, zorder=0)
        ax.set(xlabel="epoch", ylabel="NLL − NLL₀ (nats)", title=f["ablation"].label)
        if row == 1:
            ax.legend(frameon=False, fontsize=8)
        for j, e in enumerate(shown, start=1):
            ax = fig.add_subplot(grid[row, j])
            ax.plot(x, common.phi(truth.peq_of(0)), color=common.TRUTH_GREY, lw=3)
            snap = f["result"].snapshots.get(e)
            if snap is not None:
                ax.plot(f["x"], common.phi(snap.peq_of(0)), color=common.FIT_BLUE, lw=1.8)
            ax.set(xlabel="x", title=f"epoch {e}", ylim=(None, common.PHI_CLIP + 0.3))
            if j == 1:
                ax.set_ylabel("Φ(x)")
    fig.suptitle(f"2021 Fig. 3: the full model and its ablations ({epochs} epochs, GD on F)")
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


if __name__ == "__main__":
    main()
