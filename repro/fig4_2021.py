"""Fig. 4 of Genkin, Hughes & Engel (Nat Commun 2021): ramping against stepping, then a joint fit.

Two ground truths with the same p0 (a narrow well at 0), neuron (50·x + 60 Hz) and
absorbing boundaries: ramping (linear potential, slope -2.65, D 0.56) and
stepping (the ``stepping`` potential, D 1) — the dashboard's "2021 ramping" and
"2021 stepping" presets. 400 trials of each (up to 100 s, trial end recorded),
each fitted from a uniform peq on Ne 16 by GD on F (lr 0.0025) for 100 epochs:
the potentials at epochs 50 and 100 over the truths, and the NLLs against the
ground truth's. Then F, p0 and D fitted together on the ramping data (the Fit
page's "2021 Fig. 4 joint" preset: from a uniform peq, p0 cos², D 1; GD with
F 0.005, F0 0.05, D 0.0003, 200 epochs).

    python repro/fig4_2021.py            # full size, writes docs/fig4_2021.png
    python repro/fig4_2021.py --quick    # a smoke run in seconds
"""
from __future__ import annotations

import argparse
import time

import numpy as np

try:
    from repro import common
except ImportError:   # run as a script: repro/ is on sys.path, the repo root is not yet
    import common


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 20 trials of up to 10 s each, 4 epochs per fit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(common.ROOT / "docs" / "fig4_2021.png"))
    args = p.parse_args(argv)
    t_all = time.perf_counter()
    n_trials = 20 if args.quick else int(common.DATA_PRESETS["step2021"][1]["n_trials"])
    epochs = 4 if args.quick else int(common.FIT_PRESETS["fig4_2021"][1]["epochs"])
    shown = [2, 4] if args.quick else [50, 100]
    joint_epochs = 4 if args.quick else int(common.FIT_PRESETS["joint2021"][1]["epochs"])
    joint_shown = [1, 2, 4] if args.quick else [10, 50, 100, 200]
    duration = 10.0 if args.quick else None
    out = {"fits": {}}

    panels = {}
    for k, key in enumerate(("ramp2021", "step2021")):
        spec = common.truth_spec(key, Ne=16 if args.quick else None)
        truth, sim, gen_s = common.generate(spec, n_trials, args.seed + k, data_key="step2021",
                                            duration=duration)
        model = common.fit_start(spec, "fig4_2021")
        opts = common.options("fig4_2021", epochs, shown + [epochs])
        result, seconds, gt = common.run_fit(model, sim.data, opts, truth)
        nll = result.nll_train.sum(axis=0)
        errs = {e: common.phi_error(model.grid.x, result.snapshots[e].peq_of(0), truth.grid.x,
                                    truth.peq_of(0)) for e in shown}
        label = common.MODEL_PRESETS[key][0]
        print(f"{label}: {sim.data.n_trials} trials ({sim.data.n_spikes().sum()} spikes, "
              f"generated in {gen_s:.1f} s); fit {seconds:.1f} s "
              f"({seconds / epochs * 1e3:.0f} ms/epoch); NLL_gt {gt:.2f}, NLL {nll[0]:.2f} -> "
              f"{nll[-1]:.2f} (final − truth {nll[-1] - gt:+.2f}); mean |ΔΦ| "
              + ", ".join(f"ep {e}: {v:.2f}" for e, v in errs.items()))
        panels[key] = dict(label=label, truth=truth, result=result, nll=nll, gt=gt, x=model.grid.x,
                           sim=sim)
        out["fits"][key] = {"gt": gt, "final": float(nll[-1]), "seconds": seconds}

    # the joint fit of F, p0 and D on the ramping data
    ramp = panels["ramp2021"]
    spec = common.truth_spec("ramp2021", Ne=16 if args.quick else None)
    start = common.fit_start(spec, "joint2021")
    opts = common.options("joint2021", joint_epochs, range(joint_epochs + 1))   # D every epoch
    result, seconds, gt = common.run_fit(start, ramp["sim"].data, opts, ramp["truth"])
    nll = result.nll_train.sum(axis=0)
    final = result.model
    truth = ramp["truth"]
    p0_l1 = float(truth.grid.w @ np.abs(np.interp(truth.grid.x, final.grid.x, final.p0_of(0))
                                        - truth.p0_of(0)))
    phi_err = common.phi_error(final.grid.x, final.peq_of(0), truth.grid.x, truth.peq_of(0))
    D_path = [result.snapshots[e].D_of(0) for e in sorted(result.snapshots)]
    print(f"joint fit of F, p0, D: {seconds:.1f} s ({seconds / joint_epochs * 1e3:.0f} ms/epoch); "
          f"NLL_gt {gt:.2f}, NLL {nll[0]:.2f} -> {nll[-1]:.2f} (final − truth "
          f"{nll[-1] - gt:+.2f}); D {start.D_of(0):.2f} -> {final.D_of(0):.3f} "
          f"(truth {truth.D_of(0):.2f}); mean |ΔΦ| {phi_err:.2f}; ∫|p0 − p0_true| {p0_l1:.2f}")
    out["joint"] = {"gt": gt, "final": float(nll[-1]), "D": final.D_of(0), "seconds": seconds,
                    "phi_error": phi_err, "p0_l1": p0_l1}
    joint = dict(result=result, nll=nll, gt=gt, x=final.grid.x, shown=joint_shown, D=D_path)
    plot(args.out, panels, joint, shown, dpi=60 if args.quick else 130)
    out["wall"] = time.perf_counter() - t_all
    print(f"figure: {args.out}\nwall time: {out['wall']:.1f} s")
    return out


def plot(out, panels, joint, shown, dpi=130):
    plt = common.matplotlib()
    fig, axes = plt.subplots(3, 4, figsize=(13, 8.6), constrained_layout=True)
    for row, p in enumerate(panels.values()):
        ax = axes[row, 0]
        base = p["nll"][0]
        ax.plot(p["nll"] - base, color="k", lw=1.8, label="training")
        ax.axhline(p["gt"] - base, color="k", ls="--", lw=1.2, label="ground truth")
        ax.set(xlabel="epoch", ylabel="NLL − NLL₀ (nats)", title=f"{p['label']}: NLL")
        ax.legend(frameon=False, fontsize=8)
        xt = p["truth"].grid.x
        for j, e in enumerate(shown, start=1):
            ax = axes[row, j]
            ax.plot(xt, common.phi(p["truth"].peq_of(0)), color=common.TRUTH_GREY, lw=3,
                    label="truth")
            ax.plot(p["x"], common.phi(p["result"].snapshots[e].peq_of(0)), color=common.FIT_BLUE,
                    lw=1.8, label="fit")
            ax.set(xlabel="x", ylabel="Φ(x)", title=f"{p['label']}: epoch {e}",
                   ylim=(None, common.PHI_CLIP + 0.3))
        axes[row, 1].legend(frameon=False, fontsize=8)
        ax = axes[row, 3]
        t, x = p["sim"].time[0], p["sim"].x[0]
        for t, x in list(zip(p["sim"].time, p["sim"].x))[:6]:
            ax.plot(t, x, lw=0.8)
        ax.set(xlabel="time (s)", ylabel="latent x", title=f"{p['label']}: 6 trials")
    truth = panels["ramp2021"]["truth"]
    r = joint["result"]
    ax = axes[2, 0]
    base = joint["nll"][0]
    ax.plot(joint["nll"] - base, color="k", lw=1.8, label="training")
    ax.axhline(joint["gt"] - base, color="k", ls="--", lw=1.2, label="ground truth")
    ax.set(xlabel="epoch", ylabel="NLL − NLL₀ (nats)", title="joint fit of F, p0, D: NLL")
    ax.legend(frameon=False, fontsize=8)
    blues = ["#9ecae1", "#4292c6", "#2171b5", "#08306b"]
    ax1, ax2 = axes[2, 1], axes[2, 2]
    ax1.plot(truth.grid.x, common.phi(truth.peq_of(0)), color=common.TRUTH_GREY, lw=3,
             label="truth")
    ax2.plot(truth.grid.x, truth.p0_of(0), color=common.TRUTH_GREY, lw=3, label="truth")
    for e, c in zip(joint["shown"], blues):
        m = r.snapshots[e]
        ax1.plot(joint["x"], common.phi(m.peq_of(0)), color=c, lw=1.8, label=f"epoch {e}")
        ax2.plot(joint["x"], m.p0_of(0), color=c, lw=1.8, label=f"epoch {e}")
    ax1.set(xlabel="x", ylabel="Φ(x)", title="joint fit: potential",
            ylim=(None, common.PHI_CLIP + 0.3))
    ax2.set(xlabel="x", ylabel="p0(x)", title="joint fit: p0")
    ax1.legend(frameon=False, fontsize=8)
    ax = axes[2, 3]
    epochs = sorted(r.snapshots)
    ax.plot(epochs, joint["D"], "o-", color=common.FIT_BLUE, label="fit")
    ax.axhline(truth.D_of(0), color="k", ls="--", lw=1.2, label="truth")
    ax.set(xlabel="epoch", ylabel="D", title="joint fit: D")
    ax.legend(frameon=False, fontsize=8)
    fig.suptitle("2021 Fig. 4: ramping against stepping (GD on F), and F, p0, D fitted together")
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


if __name__ == "__main__":
    main()
