"""flowdash benchmark: workloads W1–W9 and W2's scaling, against the reference timings.

    python bench/run.py                # full workloads, table on stdout
    python bench/run.py --quick        # smaller version of each workload
    python bench/run.py --json out.json --plot docs/scaling.png

Each workload runs in its own fresh process, after the numba kernels are
loaded and warmed up there, so that ``peak_mb`` is that process's peak
resident memory (interpreter and libraries included) and one workload's
allocations cannot flatter another's. ``reference_seconds`` comes from
``../shared/reference/timings.md`` (its median where it gives one, else the
lower end of its range, so speed-ups are conservative).

``--quick`` does less work in W1 (2 × 10 s instead of 2 × 100 s), W5 and W9
(a quarter of the trials) and W8 (1,000 of the trial's spikes); there the
reference time is scaled by the share of the work done (``work``: simulated
time, the intervals passed over, or the spikes decoded), so a speed-up still
compares like with like. W6 analyses 40 of the 151 models per path, and the
analysis is not linear in them: quick mode prints no speed-up for it. W2–W4
and W7 do the same work per epoch or call in both modes (quick only repeats
it fewer times).

``startup`` is what every worker process pays once before its first epoch:
the imports and the loading of the numba kernels from their cache, measured
in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9")
SCALING_NE = (16, 64, 256, 1024)
SCALING_NV = (16, 64, 256)

sys.path.insert(0, str(REPO))


# --------------------------------------------------------------------------- workloads
def _example1():
    from flowdash.core.grid import Grid
    from flowdash.core.model import Model
    from flowdash.core.spikedata import load_reference_set

    case = json.loads((REFERENCE / "example1.json").read_text())
    npz = REFERENCE / "example1.npz"
    return case, load_reference_set(npz, "train"), load_reference_set(npz, "val"), Grid, Model


def w1(quick: bool) -> dict:
    """Data generation from example1's ground truth: 2 trials × 100 s, dt 1e-4."""
    from flowdash.core.simulation import simulate, warm_up

    case, _, _, Grid, Model = _example1()
    grid = Grid(**case["grid"])
    model = Model.from_spec(case["ground_truth_model"], grid, case["boundary_mode"])
    warm_up()
    duration = 10.0 if quick else 100.0
    simulate(model, 2, duration, dt=1e-4, seed=1, with_trial_end=False)  # first touch of the arrays
    times, spikes = [], 0
    for seed in range(3):
        t0 = time.perf_counter()
        sim = simulate(model, 2, duration, dt=1e-4, seed=seed, with_trial_end=False)
        times.append(time.perf_counter() - t0)
        spikes = int(sim.data.n_spikes().sum())
    return {"seconds": float(np.median(times)), "detail": f"2 x {duration:g} s, {spikes} spikes",
            "work": duration / 100.0, "work_detail": f"2 x {duration:g} s of 2 x 100 s"}


def _epoch_times(model, train, val, options) -> list[float]:
    from flowdash.core.fitting import fit

    stamps = []
    fit(model, train, val, options, on_epoch=lambda rec: stamps.append(time.perf_counter()))
    return list(np.diff(stamps))


def _w2_epochs(Ne: int, Nv: int, epochs: int) -> list[float]:
    from flowdash.core.fitting import FitOptions

    case, train, val, Grid, Model = _example1()
    grid = Grid(case["grid"]["Np"], Ne)
    model = Model.from_spec(case["init_model"], grid, case["boundary_mode"])
    options = FitOptions(optimizer="GD", max_epochs=epochs, params_to_opt=("F",), learning_rate={"F": 0.005}, Nv=Nv)
    _epoch_times(model, train, val, FitOptions(optimizer="GD", max_epochs=1, params_to_opt=("F",),
                                               learning_rate={"F": 0.005}, Nv=Nv))  # warm-up
    return _epoch_times(model, train, val, options)


def w2(quick: bool) -> dict:
    """One epoch of the example1 fit (training gradient + validation NLL); median over 10."""
    epochs = _w2_epochs(256, 64, 3 if quick else 10)
    return {"seconds": float(np.median(epochs)), "detail": f"median of {len(epochs)} epochs, N = 1793, Nv = 64"}


def _synthetic(spec: dict, n_trials: int, duration: float, seed: int):
    from flowdash.core.grid import Grid
    from flowdash.core.model import Model
    from flowdash.core.simulation import simulate

    grid = Grid(8, 16)
    return grid, simulate(Model.from_spec(spec, grid, "absorbing"), n_trials, duration, seed=seed,
                          with_trial_end=True).data


W3_TRUTH = {
    "peq_model": {"model": "linear_pot", "params": {"slope": -2.65}},
    "p0_model": {"model": "single_well", "params": {"xmin": 0, "miu": 100}},
    "D": 0.56,
    "fr_model": [{"model": "linear", "params": {"slope": 50, "bias": 60}},
                 {"model": "peaks", "params": {"center": [-0.5, 0.5], "width": [0.3, 0.3], "amp": [60, 40]}},
                 {"model": "sinus", "params": {"bias": 40, "amp": 20}}],
}
W4_TRUTH = {
    "peq_model": {"model": "double_well", "params": {"xmin": 0.6, "xmax": 0, "depth": 2}},
    "p0_model": {"model": "single_well", "params": {"xmin": 0, "miu": 100}},
    "D": 0.2,
    "fr_model": [{"model": "linear", "params": {"slope": 30, "bias": 40}},
                 {"model": "linear", "params": {"slope": -30, "bias": 40}}],
}


def w3(quick: bool) -> dict:
    """NLL and all five gradients: 3 neurons, 30 absorbing trials with trial end, full Nv."""
    from flowdash.core.likelihood import Operators, batch_nll_and_grad
    from flowdash.core.model import Model

    grid, data = _synthetic(W3_TRUTH, 30, 5.0, seed=0)
    model = Model.from_spec({**W3_TRUTH, "peq_model": {"model": "cos_square", "params": {}},
                             "p0_model": {"model": "single_well", "params": {"xmin": -0.2, "miu": 30}}},
                            grid, "absorbing")
    times = []
    for _ in range(4 if quick else 21):
        t0 = time.perf_counter()
        batch_nll_and_grad(Operators.build(model), data, ("F", "F0", "D", "Fr", "C"))
        times.append(time.perf_counter() - t0)
    return {"seconds": float(np.median(times[1:])),
            "detail": f"{data.n_trials} trials, {int(data.n_spikes().sum())} spikes, N = {grid.N}, Nv = N-2"}


def w4(quick: bool) -> dict:
    """One ADAM epoch fitting F, F0, D, Fr, C: 2 neurons, 40 + 20 absorbing trials of up to 5 s."""
    from flowdash.core.fitting import FitOptions
    from flowdash.core.model import Model

    grid, data = _synthetic(W4_TRUTH, 60, 5.0, seed=1)
    train, val = data.subset(range(40)), data.subset(range(40, 60))
    model = Model.from_spec({**W4_TRUTH, "peq_model": {"model": "cos_square", "params": {}}, "D": 0.5,
                             "p0_model": {"model": "cos_square", "params": {}}}, grid, "absorbing")
    options = FitOptions(optimizer="ADAM", max_epochs=2 if quick else 11, params_to_opt=("F", "F0", "D", "Fr", "C"),
                         learning_rate={"alpha": 0.05})
    epochs = _epoch_times(model, train, val, options)[1:]
    return {"seconds": float(np.median(epochs)),
            "detail": f"median of {len(epochs)} epochs, {int(data.n_spikes().sum())} spikes"}


def _pmd_model(n_neurons: int, n_conditions: int):
    """The initial model of the PMd fits: uniform peq (one per condition), cos² p0, D 1, linear rates."""
    from flowdash.core.grid import Grid
    from flowdash.core.model import Model

    spec = {"peq_model": {"model": "uniform", "params": {}}, "p0_model": {"model": "cos_square", "params": {}},
            "D": 1.0, "fr_model": [{"model": "linear", "params": {"slope": 10, "bias": 30}}] * n_neurons,
            "params_size": {"peq": n_conditions, "p0": 1, "D": 1, "fr": 1}}
    return Model.from_spec(spec, Grid(8, 16), "absorbing")


PMD_OPTIONS = dict(optimizer="ADAM", params_to_opt=("F", "F0", "D", "Fr", "C"), learning_rate={"alpha": 0.05})


def w5(quick: bool) -> dict:
    """One ADAM epoch on the PMd recordings: 4 conditions, shared D, p0, rates; peq per condition."""
    from flowdash.core.fitting import FitOptions
    from flowdash.core.nwb import PMD_RECIPE, from_nwb
    from flowdash.core.spikedata import even_odd_split

    imported = from_nwb(SHARED / "data" / "pmd_single_neuron_session.nwb", PMD_RECIPE)
    train, val = [], []
    full_sets = list(imported.datasets())
    full = sum(int(d.n_spikes().sum()) + d.n_trials for d in full_sets)
    for data in full_sets:
        if quick:
            data = data.subset(range(data.n_trials // 4))
        even, odd = even_odd_split(data)
        train.append(even)
        val.append(odd)
    model = _pmd_model(1, len(train))
    epochs = _epoch_times(model, train, val, FitOptions(max_epochs=2 if quick else 6, **PMD_OPTIONS))[1:]
    n_trials = sum(d.n_trials for d in train + val)
    spikes = sum(int(d.n_spikes().sum()) for d in train + val)
    return {"seconds": float(np.median(epochs)),
            "detail": f"median of {len(epochs)} epochs, {n_trials} trials, {spikes} spikes",
            "work": (spikes + n_trials) / full,
            "work_detail": f"{n_trials} of {sum(d.n_trials for d in full_sets)} trials"}


def w9(quick: bool) -> dict:
    """One ADAM epoch on the 14-neuron PMd population (NWB): the even trials of each condition.

    Also times the NWB import (path -> datasets with PMD_RECIPE) of both
    recordings, after pynwb is imported (timed apart).
    """
    from flowdash.core.fitting import FitOptions
    from flowdash.core.nwb import PMD_RECIPE, from_nwb

    t0 = time.perf_counter()
    import pynwb  # noqa: F401  (its import is a one-off cost of the first NWB import)

    import_s = {"pynwb_import": time.perf_counter() - t0}
    for key, name in (("single", "pmd_single_neuron_session.nwb"), ("population", "pmd_population_session.nwb")):
        times = []
        for _ in range(1 if quick else 3):
            t0 = time.perf_counter()
            imported = from_nwb(SHARED / "data" / name, PMD_RECIPE)
            times.append(time.perf_counter() - t0)
        import_s[key] = float(np.median(times))
    train = imported.half(0)  # the population: even trials of each condition
    full = sum(int(d.n_spikes().sum()) + d.n_trials for d in train)
    all_trials = sum(d.n_trials for d in train)
    if quick:
        train = [d.subset(range(d.n_trials // 4)) for d in train]
    model = _pmd_model(train[0].n_neurons, len(train))
    epochs = _epoch_times(model, train, None, FitOptions(max_epochs=2 if quick else 6, **PMD_OPTIONS))[1:]
    n_trials = sum(d.n_trials for d in train)
    spikes = sum(int(d.n_spikes().sum()) for d in train)
    return {"seconds": float(np.median(epochs)), "import_seconds": import_s,
            "detail": (f"median of {len(epochs)} epochs, {train[0].n_neurons} neurons, {n_trials} trials, "
                       f"{spikes} spikes; NWB import {import_s['single']:.2f} s (single neuron), "
                       f"{import_s['population']:.2f} s (population), pynwb import "
                       f"{import_s['pynwb_import']:.2f} s"),
            "work": (spikes + n_trials) / full, "work_detail": f"{n_trials} of {all_trials} trials"}


def scaling(quick: bool) -> dict:
    """W2 per-epoch time against Ne (Nv = 64) and Nv (Ne = 256)."""
    epochs = 2 if quick else 5
    rows = []
    for Ne in SCALING_NE[:3] if quick else SCALING_NE:
        rows.append({"series": "N", "Ne": Ne, "N": 7 * Ne + 1, "Nv": 64,
                     "seconds": float(np.median(_w2_epochs(Ne, 64, epochs)))})
    for Nv in SCALING_NV[:2] if quick else SCALING_NV:
        rows.append({"series": "Nv", "Ne": 256, "N": 1793, "Nv": Nv,
                     "seconds": float(np.median(_w2_epochs(256, Nv, epochs)))})
    return {"seconds": float(sum(r["seconds"] for r in rows)), "rows": rows}


def w6(quick: bool) -> dict:
    """Feature consistency analysis of fca_nonequilibrium's two paths, every recorded epoch (151 per path)."""
    from flowdash.core.grid import Grid
    from flowdash.core.selection import FCASettings, FeatureConsistency, FitPath

    case = json.loads((REFERENCE / "selection" / "fca_nonequilibrium.json").read_text())
    npz = np.load(REFERENCE / "selection" / "fca_nonequilibrium.npz")
    settings = dict(case["fca_settings"])
    mode = settings.pop("boundary_mode")
    settings = FCASettings(**{**settings, "num_models": 10000})
    grid = Grid(case["grid"]["Np"], case["grid"]["Ne"])
    R = 40 if quick else len(npz["iter_num1"])
    fitted = case["opt_options"]["params_to_opt"]
    paths = [FitPath(grid, mode, npz[f"iter_num{k}"][:R], npz[f"peq{k}"][:R], npz[f"p0{k}"][:R], npz[f"D{k}"][:R],
                     npz[f"fr{k}"][:R], fitted) for k in (1, 2)]
    FeatureConsistency(*(p.head(12) for p in paths)).analyse(settings)  # warm-up (LAPACK, thread pool)
    times, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        result = FeatureConsistency(*paths).analyse(settings)  # a fresh cache: everything is computed
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out = {"seconds": float(np.median(times)), "cpu_seconds": float(np.median(cpu)),
           "detail": f"median of 3 (CPU {np.median(cpu):.2f} s), {len(result.FCs1)} + {len(result.FCs2)} models, "
                     f"N = {grid.N}, selected position {result.selected}"}
    if R < len(npz["iter_num1"]):  # the analysis is not linear in the models: no like-for-like reference
        out.update(work=None, work_detail=f"{R} of {len(npz['iter_num1'])} models per path")
    return out


def _viterbi_runs(model, data, repeats: int, **kwargs) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeats`` decodes (the model's operators included)."""
    from flowdash.core.viterbi import viterbi

    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        viterbi(model, data, **kwargs)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(times)), float(np.median(cpu))


def w7(quick: bool) -> dict:
    """Viterbi paths of the 10 trials of viterbi_absorbing with the ground-truth model."""
    from flowdash.core.grid import Grid
    from flowdash.core.model import Model
    from flowdash.core.spikedata import load_reference_set

    case = json.loads((REFERENCE / "selection" / "viterbi_absorbing.json").read_text())
    grid = Grid(case["grid"]["Np"], case["grid"]["Ne"])
    model = Model.from_spec(case["ground_truth_model"], grid, case["boundary_mode"])
    data = load_reference_set(REFERENCE / "selection" / "viterbi_absorbing.npz", "data", n_neurons=2,
                              with_trial_end=True)
    _viterbi_runs(model, data.subset([3]), 1)  # warm-up: the numba kernels
    seconds, cpu = _viterbi_runs(model, data, 3 if quick else 11)
    return {"seconds": seconds, "cpu_seconds": cpu,
            "detail": f"median (CPU {cpu:.3f} s), {data.n_trials} trials, "
                      f"{sum(len(isi) for isi, _ in data.trials)} intervals, N = {grid.N}"}


def w8(quick: bool) -> dict:
    """Viterbi path of example1's validation trial (10,309 spikes, N = 1793, Nv = 64, reflecting)."""
    from flowdash.core.spikedata import SpikeData

    case, _, val, Grid, Model = _example1()
    grid = Grid(**case["grid"])
    model = Model.from_spec(case["ground_truth_model"], grid, case["boundary_mode"])
    isi, ids = val.trials[0]
    _viterbi_runs(model, SpikeData([(isi[:20], ids[:20])], 1, False), 1, Nv=64)  # warm-up
    n = 1000 if quick else len(isi)
    seconds, cpu = _viterbi_runs(model, SpikeData([(isi[:n], ids[:n])], 1, False), 3, Nv=64)
    return {"seconds": seconds, "cpu_seconds": cpu,
            "detail": f"median of 3 (CPU {cpu:.1f} s), {n} spikes, N = {grid.N}, Nv = 64",
            # the reference's cost per spike is constant (timings.md)
            "work": n / len(isi), "work_detail": f"{n} of {len(isi)} spikes"}


STARTUP = """
import json, time
t0 = time.perf_counter()
import numpy, scipy.sparse, scipy.linalg, numba
import flowdash.core.fitting, flowdash.core.simulation, flowdash.core.spikedata, flowdash.verify
t1 = time.perf_counter()
flowdash.verify.load_kernels()
t2 = time.perf_counter()
print("RESULT " + json.dumps({"imports": t1 - t0, "kernels": t2 - t1}))
"""


def startup(quick: bool) -> dict:
    """Start-up of a fresh worker: interpreter, imports, numba kernels (from the cache)."""
    runs = []
    for _ in range(2 if quick else 5):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True,
                              cwd=REPO, check=True)
        total = time.perf_counter() - t0
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        runs.append(dict(json.loads(line[len("RESULT "):]), total=total))
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    return {"seconds": med["total"],
            "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "imports": med["imports"], "kernels": med["kernels"],
            "detail": f"median of {len(runs)} fresh processes: imports {med['imports']:.2f} s, "
                      f"kernel loading {med['kernels']:.2f} s, whole process {med['total']:.2f} s"}


RUNNERS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": w7, "W8": w8, "W9": w9,
           "scaling": scaling, "startup": startup}


# --------------------------------------------------------------------------- driver
def reference_seconds() -> dict[str, float]:
    """Reference wall time per workload from timings.md (median if given, else the range's lower end)."""
    out = {}
    for line in (REFERENCE / "timings.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"W\d", cells[0]):
            cell = cells[2]
            median = re.search(r"median ([\d.]+) s", cell)
            out[cells[0]] = float(median.group(1) if median else re.search(r"[\d.]+", cell).group(0))
    return out


def _worker(name: str, quick: bool) -> None:
    result = RUNNERS[name](quick)
    result.setdefault("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(result))


def _run_in_child(name: str, quick: bool) -> dict:
    cmd = [sys.executable, __file__, "--worker", name] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    by_n = [r for r in rows if r["series"] == "N"]
    by_v = [r for r in rows if r["series"] == "Nv"]
    ax = axes[0]
    N = np.array([r["N"] for r in by_n], float)
    t = np.array([r["seconds"] for r in by_n]) * 1e3
    ax.loglog(N, t, "o-", color="#0072B2", label="flowdash")
    ax.loglog(N, t[0] * N / N[0], "--", color="#999999", label="linear in N from the first point")
    ax.set_xticks(N)
    ax.set_xlabel("grid nodes N")
    ax.set_ylabel("epoch time (ms)")
    ax.set_title("W2 epoch vs N (Nv = 64)")
    ax.legend()
    ax = axes[1]
    Nv = [r["Nv"] for r in by_v]
    ax.loglog(Nv, [r["seconds"] * 1e3 for r in by_v], "s-", color="#D55E00")
    ax.set_xticks(Nv)
    ax.set_xlabel("eigenpairs Nv")
    ax.set_ylabel("epoch time (ms)")
    ax.set_title("W2 epoch vs Nv (N = 1793)")
    for a in axes:
        a.grid(True, which="both", alpha=0.3)
        a.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        for axis in (a.xaxis, a.yaxis):
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(NullFormatter())
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller version of each workload")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--plot", type=Path, help="save the scaling plot (PNG) here")
    parser.add_argument("--only", help="comma-separated subset of W1,...,W9,scaling,startup")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.quick)
        return 0
    names = args.only.split(",") if args.only else list(WORKLOADS) + ["scaling", "startup"]
    unknown = [n for n in names if n not in RUNNERS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {list(RUNNERS)}")
    refs = reference_seconds()
    results = {}
    if args.quick:
        print("quick mode: W1, W5, W8 and W9 do less work; their reference times are scaled to "
              "the work done (column 'work'), so the speed-ups compare like with like; W6 has no "
              "like-for-like reference (no speed-up)")
    print(f"{'workload':9} {'seconds':>9} {'peak MB':>8} {'reference s':>12} {'work':>6} "
          f"{'speed-up':>9}  detail")
    for name in names:
        r = _run_in_child(name, args.quick)
        if name in refs and r.get("work", 1.0) is None:
            r["reference_seconds"] = r["speedup"] = None
            print(f"{name:9} {r['seconds']:9.4f} {r['peak_mb']:8.0f} {'—':>12} {'—':>6} {'—':>9}  "
                  f"{r['detail']}; {r['work_detail']}: no like-for-like reference")
        elif name in refs:
            work = r.get("work", 1.0)
            r["reference_seconds"] = refs[name] * work
            r["speedup"] = r["reference_seconds"] / r["seconds"]
            detail = r["detail"] + (f"; reference x {work:.3g} ({r['work_detail']})"
                                    if work != 1.0 else "")
            print(f"{name:9} {r['seconds']:9.4f} {r['peak_mb']:8.0f} {r['reference_seconds']:12.3f} "
                  f"{work:6.3g} {r['speedup']:8.0f}x  {detail}")
        elif name == "startup":
            print(f"{name:9} {r['seconds']:9.2f} {r['peak_mb']:8.0f} {'':12} {'':6} {'':9}  "
                  f"{r['detail']} (once per worker process)")
        else:
            print(f"{name:9} {'':9} {r['peak_mb']:8.0f}")
            for row in r["rows"]:
                print(f"    Ne = {row['Ne']:5d}  N = {row['N']:5d}  Nv = {row['Nv']:4d}  epoch {row['seconds'] * 1e3:8.1f} ms")
        results[name] = r
    if args.json:
        args.json.write_text(json.dumps({"quick": args.quick, "workloads": results}, indent=2))
    if args.plot and "scaling" in results:
        _plot(results["scaling"]["rows"], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
