"""Fig. 3 of Genkin et al. (2024): model selection on one PMd neuron, by feature consistency.

The single PMd neuron (``pmd_single_neuron_session.nwb``) read with the
core's :data:`~flowdash.core.nwb.PMD_RECIPE`: window from 120 ms after
stimulus onset to the response, trial end recorded, 4 conditions
(choice × difficulty). The two datasamples of the analysis are the even and
the odd trials of each condition (``NWBImport.half(0)`` / ``half(1)``). Each
half is fitted separately, from the same start, on *all* of its trials: no
validation split inside a half. That is the reference's convention for the
2024 non-equilibrium selection (``selection/fca_nonequilibrium``: "each
datasample fitted separately, no validation"): the two halves check each
other through the feature consistency analysis, and splitting a half again
would halve the data each fit sees and make the two paths noisier.

Fit (the paper's settings, except Ne and the length): ADAM (alpha 0.05) on
F, F0, D, Fr, C; 20 mini-batches per condition and epoch; line searches on
C and D (1 per searching epoch, 5 evaluations each) at the epochs of the
paper's schedule, 30 log-spaced searches over 5000 epochs, of which those
up to the last epoch here apply (this run is the start of the paper's fit);
peq per condition, D, p0 and rates shared; absorbing with the trial end;
Np 8, Ne 16, Nv N-2. Start: uniform peq, cos² p0, D 1, rate 10·x + 30 Hz
(the start of bench/run.py's W5). 300 epochs (the notebook's advice for a
real selection), every epoch's model recorded.

Then the FCA with ``FCASettings.paper_2024()`` (JS 0.0015, stride 5,
smoothing 10, offset 4, T 1 s, 10 steps, 100 analysed models):
non-equilibrium FC and time-dependent JS, mirror check included. Draws, per
condition, Φ·D of both halves at the selected models (half 2 mirrored when
the analysis mirrored it), p0, the rate, the relative NLL per condition
((NLL − NLL₀)/|NLL₀| of each half's training data, NLL₀ the start's), and
JS against FC with the threshold and the selected model.

Last, one epoch at the paper's own size (Ne 64, 20 mini-batches, half 1)
is timed, with and without a line search, and the paper's 5000 epochs
(30 of them searching) are projected for both halves.

    python repro/fig3_2024.py            # full size, writes docs/fig3_2024.png
    python repro/fig3_2024.py --quick    # a smoke run: a quarter of the trials, 12 epochs
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:   # run as a script from anywhere: ``python repro/fig3_2024.py``
    sys.path.insert(0, str(ROOT))

from flowdash.core.fitting import FitOptions, fit, line_search_epochs  # noqa: E402
from flowdash.core.grid import Grid  # noqa: E402
from flowdash.core.model import Model  # noqa: E402
from flowdash.core.nwb import PMD_RECIPE, from_nwb  # noqa: E402
from flowdash.core.selection import FCASettings, FeatureConsistency, FitPath  # noqa: E402

DATA_NAME = "pmd_single_neuron_session.nwb"
FITTED = ("F", "F0", "D", "Fr", "C")
PAPER_EPOCHS, PAPER_SEARCHES, PAPER_NE = 5000, 30, 64
HALF_COLOURS = ("#0072B2", "#D55E00")   # half 1 (even trials), half 2 (odd trials)


def data_path() -> Path:
    """The recording in shared/data beside the repo (``../shared`` from main, ``../../shared`` from a worktree)."""
    for base in ROOT.parents:
        p = base / "shared" / "data" / DATA_NAME
        if p.is_file():
            return p
    raise FileNotFoundError(f"{DATA_NAME} not found in shared/data beside {ROOT} or its parents")


def start_model(n_conditions: int, Ne: int) -> Model:
    """Uniform peq (one row per condition), cos² p0, D 1, one linear rate; absorbing."""
    spec = {"peq_model": {"model": "uniform", "params": {}},
            "p0_model": {"model": "cos_square", "params": {}}, "D": 1.0,
            "fr_model": [{"model": "linear", "params": {"slope": 10, "bias": 30}}],
            "params_size": {"peq": n_conditions, "p0": 1, "D": 1, "fr": 1}}
    return Model.from_spec(spec, Grid(8, Ne), "absorbing")


def options(epochs: int, mini_batches: int, search_epochs) -> FitOptions:
    search = {"epochs": list(search_epochs), "searches_per_epoch": 1, "max_fun_eval": 5}
    return FitOptions(optimizer="ADAM", max_epochs=epochs, mini_batch_number=mini_batches,
                      params_to_opt=FITTED, learning_rate={"alpha": 0.05}, seed=0,
                      snapshot_epochs=None,   # every epoch's model: the FCA's records
                      line_search={"C": dict(search), "D": dict(search)} if search_epochs else None)


def paper_search_epochs(up_to: int) -> list[int]:
    """The paper's line-search epochs (30 log-spaced over 5000) up to ``up_to``."""
    return [e for e in line_search_epochs({"log": PAPER_SEARCHES}, PAPER_EPOCHS) if e <= up_to]


def path_of(result) -> FitPath:
    epochs = sorted(result.snapshots)
    return FitPath.from_models(epochs, [result.snapshots[e] for e in epochs], FITTED)


def time_paper_epoch(halves, quick: bool) -> dict:
    """Seconds of one epoch at Ne 64 (20 mini-batches) on half 1: plain, and with both line searches.

    Epoch 1 warms up (kernels, first touch); epochs 2 and 4 are plain, epoch 3 searches C and D.
    """
    model = start_model(len(halves), PAPER_NE)
    stamps, cpu = [], []

    def stamp(rec):
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())   # CPU of all threads: less sensitive to the shared machine's load

    fit(model, halves, None, options(4, 20, [3]), on_epoch=stamp)
    d, c = np.diff(stamps), np.diff(cpu)   # [k]: epoch k + 1
    plain, search = float(np.mean([d[1], d[3]])), float(d[2])
    one_half = (PAPER_EPOCHS - PAPER_SEARCHES) * plain + PAPER_SEARCHES * search
    return {"plain": plain, "search": search, "warm_up": float(d[0]), "one_half": one_half,
            "both_halves": 2 * one_half, "plain_cpu": float(np.mean([c[1], c[3]])), "search_cpu": float(c[2]),
            "quick": quick}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: a quarter of each condition's trials, 12 epochs, 4 mini-batches")
    p.add_argument("--epochs", type=int, default=None, help="epochs per half (default 300)")
    p.add_argument("--no-paper-timing", action="store_true", help="skip the Ne 64 epoch timing")
    p.add_argument("--out", default=str(ROOT / "docs" / "fig3_2024.png"))
    args = p.parse_args(argv)
    t_all = time.perf_counter()
    epochs = args.epochs or (12 if args.quick else 300)
    mini_batches = 4 if args.quick else 20

    t0 = time.perf_counter()
    imported = from_nwb(data_path(), PMD_RECIPE)
    conditions = list(imported.conditions)
    halves = [imported.half(0), imported.half(1)]
    if args.quick:
        halves = [[d.subset(range(d.n_trials // 4)) for d in h] for h in halves]
    print(f"data: {DATA_NAME}, read in {time.perf_counter() - t0:.2f} s; "
          + "; ".join(f"{c}: {halves[0][k].n_trials}+{halves[1][k].n_trials} trials, "
                      f"{int(halves[0][k].n_spikes().sum())}+{int(halves[1][k].n_spikes().sum())} spikes"
                      for k, c in enumerate(conditions)))

    searches = paper_search_epochs(epochs)
    opts = options(epochs, mini_batches, searches)
    start = start_model(len(conditions), 16)
    print(f"fit: ADAM alpha 0.05 on {', '.join(FITTED)}; {mini_batches} mini-batches; Ne 16, N {start.grid.N}; "
          f"{epochs} epochs per half; line searches on C and D at epochs {searches}")
    fits = []
    for h, train in enumerate(halves, start=1):
        c0 = time.process_time()
        result = fit(start, train, None, opts)
        cpu = time.process_time() - c0
        nll = result.nll_train   # (conditions, epochs + 1)
        fits.append(dict(result=result, nll=nll, rel=(nll - nll[:, :1]) / np.abs(nll[:, :1])))
        print(f"half {h} ({'even' if h == 1 else 'odd'} trials): {result.seconds:.1f} s "
              f"({result.seconds / epochs:.2f} s/epoch, CPU {cpu / epochs:.2f} s/epoch); NLL {nll.sum(axis=0)[0]:.1f} -> "
              f"{nll.sum(axis=0)[-1]:.1f}; D {start.D_of(0):.2f} -> {result.model.D_of(0):.3f}")

    t0 = time.perf_counter()
    paths = [path_of(f["result"]) for f in fits]
    if not np.array_equal(paths[0].epochs, paths[1].epochs):
        raise RuntimeError("both halves must record the same epochs (a fit stopped early?)")
    settings = FCASettings.paper_2024()
    fca = FeatureConsistency(*paths).analyse(settings)
    fca_s = time.perf_counter() - t0
    e1, e2 = fca.selected_epochs
    _, r2 = fca.selected_records
    sel = fca.selected
    crossed = bool(np.any(fca.JS[fca.offset_position:] > settings.JS_thres))
    print(f"FCA (JS {settings.JS_thres}, stride {settings.FC_stride}, smoothing {settings.smoothing_kernel}, "
          f"offset {settings.epoch_offset}; {len(fca.FCs1)} analysed models): {fca_s:.1f} s; "
          f"mirror {'detected: half 2 reversed' if fca.invert else 'not detected'}")
    # both paths record every epoch: path 2's analysed records are path 1's, so FCs2 lines up with min_inds_1
    fc2 = dict(zip(fca.min_inds_1.tolist(), fca.FCs2.tolist()))
    print(f"selected: position {sel}, epoch {e1} (half 1) / {e2} (half 2); FC {fca.FCs1[sel]:.3f} (half 1), "
          f"{fc2.get(r2, float('nan')):.3f} (half 2); "
          f"JS there {fca.JS[sel]:.2e}; max JS after the offset {fca.JS[fca.offset_position:].max():.2e}"
          + ("" if crossed else " — the threshold is never crossed: the last analysed model is selected")
          + (" — crossed at once at the offset" if fca.crossed_at_once else ""))
    m1, m2 = fits[0]["result"].snapshots[e1], fits[1]["result"].snapshots[e2]
    print(f"selected D: {m1.D_of(0):.3f} (half 1), {m2.D_of(0):.3f} (half 2); relative NLL at the selection "
          + ", ".join(f"{c} {fits[0]['rel'][k, e1]:+.4f}/{fits[1]['rel'][k, e2]:+.4f}"
                      for k, c in enumerate(conditions)))

    out = {"epochs": epochs, "fit_seconds": [f["result"].seconds for f in fits], "fca_seconds": fca_s,
           "selected_epochs": (e1, e2), "selected_FC": float(fca.FCs1[sel]), "invert": fca.invert,
           "crossed": crossed, "D": (m1.D_of(0), m2.D_of(0))}
    plot(args.out, conditions, fits, fca, (m1, m2), settings, epochs, dpi=60 if args.quick else 130)
    fit_wall = time.perf_counter() - t_all
    print(f"figure: {args.out}\nwall time (data, fits, FCA, figure): {fit_wall:.1f} s")
    out["wall"] = fit_wall

    if not args.no_paper_timing:
        t = time_paper_epoch(halves[0], args.quick)
        print(f"paper size (Ne {PAPER_NE}, N {start_model(1, PAPER_NE).grid.N}, 20 mini-batches, half 1"
              f"{', quick data' if args.quick else ''}): one epoch {t['plain']:.2f} s, with the C and D "
              f"line searches {t['search']:.2f} s (CPU {t['plain_cpu']:.2f} s and {t['search_cpu']:.2f} s; "
              f"warm-up epoch {t['warm_up']:.2f} s); projected "
              f"{PAPER_EPOCHS} epochs ({PAPER_SEARCHES} searching): {t['one_half'] / 3600:.2f} h per half, "
              f"{t['both_halves'] / 3600:.2f} h for both (reference W5: 7.8 s per one-mini-batch Ne 16 epoch)")
        out["paper_epoch"] = t
        print(f"wall time (all): {time.perf_counter() - t_all:.1f} s")
    return out


def plot(out, conditions, fits, fca, selected, settings, epochs, dpi=130):
    import matplotlib as mpl
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})

    n = len(conditions)
    fig, axes = plt.subplots(3, max(n, 4), figsize=(3.2 * max(n, 4), 8.4), constrained_layout=True)
    m1, m2 = selected
    x = m1.grid.x
    flip = (lambda a: a[::-1]) if fca.invert else (lambda a: a)   # half 2 as the analysis saw it
    e1, e2 = fca.selected_epochs
    labels = (f"half 1 (even), epoch {e1}", f"half 2 (odd), epoch {e2}" + (", mirrored" if fca.invert else ""))

    # row 1: JS against FC, FC against epoch, p0, rate
    ax = axes[0, 0]
    ax.plot(fca.FCs1, fca.JS_raw, color="#bbb", lw=1, label="JS")
    ax.plot(fca.FCs1, fca.JS, color="k", lw=1.8, label=f"smoothed ({settings.smoothing_kernel})")
    ax.axhline(settings.JS_thres, color="#CC79A7", ls="--", lw=1.2, label=f"threshold {settings.JS_thres}")
    ax.axvline(fca.FCs1[fca.offset_position], color="#ddd", lw=0.8, zorder=0)
    ax.plot(fca.FCs1[fca.selected], fca.JS[fca.selected], "o", color="#CC79A7", ms=8, mfc="none", mew=2,
            label="selected")
    ax.set(xlabel="feature complexity (half 1)", ylabel="JS (time-dependent)", title="feature consistency")
    ax.legend(frameon=False, fontsize=7)
    ax = axes[0, 1]
    ax.plot(fca.epochs1, fca.FCs1, color=HALF_COLOURS[0], lw=1.6, label="half 1")
    # both paths record every epoch, so path 2's analysed records are path 1's
    ax.plot(fca.epochs1, fca.FCs2,
            color=HALF_COLOURS[1], lw=1.6, label="half 2")
    ax.axvline(e1, color=HALF_COLOURS[0], ls=":", lw=1)
    ax.axvline(e2, color=HALF_COLOURS[1], ls=":", lw=1)
    ax.set(xscale="symlog", xlabel="epoch", ylabel="feature complexity", title="FC along the fits")
    ax.legend(frameon=False, fontsize=7)
    ax = axes[0, 2]
    ax.plot(x, m1.p0_of(0), color=HALF_COLOURS[0], lw=1.8, label=labels[0])
    ax.plot(x, flip(m2.p0_of(0)), color=HALF_COLOURS[1], lw=1.8, ls="--", label=labels[1])
    ax.set(xlabel="latent x", ylabel="p0(x)", title="initial density p0 (shared)")
    ax.legend(frameon=False, fontsize=7)
    ax = axes[0, 3]
    ax.plot(x, m1.fr_of(0)[:, 0], color=HALF_COLOURS[0], lw=1.8)
    ax.plot(x, flip(m2.fr_of(0)[:, 0]), color=HALF_COLOURS[1], lw=1.8, ls="--")
    ax.set(xlabel="latent x", ylabel="rate (Hz)",
           title=f"firing rate f(x); D {m1.D_of(0):.2f} / {m2.D_of(0):.2f}")
    for ax in axes[0, 4:]:
        ax.set_axis_off()

    # row 2: Φ·D per condition; row 3: relative NLL per condition
    for k, c in enumerate(conditions):
        ax = axes[1, k]
        for m, colour, ls, f, lab in ((m1, HALF_COLOURS[0], "-", lambda a: a, labels[0]),
                                      (m2, HALF_COLOURS[1], "--", flip, labels[1])):
            phi_d = -np.log(f(m.peq_of(k))) * m.D_of(k)
            ax.plot(x, phi_d - phi_d.min(), color=colour, lw=1.8, ls=ls, label=lab)
        ax.set(xlabel="latent x", title=f"{c}: potential")
        if k == 0:
            ax.set_ylabel("Φ(x)·D (x²/s)")
            ax.legend(frameon=False, fontsize=7)
        ax = axes[2, k]
        for h, (f, e) in enumerate(zip(fits, (e1, e2))):
            ax.plot(np.arange(f["rel"].shape[1]), f["rel"][k], color=HALF_COLOURS[h], lw=1.4,
                    label=f"half {h + 1}")
            ax.axvline(e, color=HALF_COLOURS[h], ls=":", lw=1)
        ax.set(xlabel="epoch", title=f"{c}: relative NLL")
        if k == 0:
            ax.set_ylabel("(NLL − NLL₀)/|NLL₀|")
            ax.legend(frameon=False, fontsize=7)
    fig.suptitle(f"2024 Fig. 3: one PMd neuron, 4 conditions, even/odd halves; ADAM on F, F0, D, Fr, C, "
                 f"{epochs} epochs; FCA JS {settings.JS_thres}, stride {settings.FC_stride}, smoothing "
                 f"{settings.smoothing_kernel}, offset {settings.epoch_offset}")
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


if __name__ == "__main__":
    main()
