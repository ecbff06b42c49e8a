"""The 2021 paper in the dashboard (issue 11): the two boundary settings in the forms
and fit settings, the ground truth's NLL as a yardstick, the presets, the comparison
of the four Fig. 3 fits (jobs.ablation and the Compare page), the reproductions."""
import time

import numpy as np
import plotly.graph_objects as go
import pytest
from dash import Patch

from flowdash import jobs, settings
from flowdash.core.likelihood import ground_truth_nll, relative_nll
from flowdash.core.limits import InvalidValue
from flowdash.core.model import resolve_boundary
from flowdash.jobs import ablation
from flowdash.jobs import fit as fit_kind
from flowdash.pages.compare import figures as cmp_figures
from flowdash.pages.compare import view as cmp_view
from flowdash.pages.data import logic as data_logic
from flowdash.pages.fit import figures as fit_figures
from flowdash.pages.fit import view as fit_view
from flowdash.pages.model import form as model_form
from flowdash.store import DONE, open_store

#: A small ramping truth: absorbing (Dirichlet + absorption step), non-equilibrium.
RAMP = {"grid": {"Np": 6, "Ne": 8, "xbegin": -1.0, "xend": 1.0}, "boundary_mode": "absorbing",
        "boundary_conditions": "dirichlet", "absorption_step": True,
        "peq_model": {"model": "linear_pot", "params": {"slope": -2.65}},
        "p0_model": {"model": "single_well", "params": {"xmin": 0.0, "miu": 200.0}},
        "D": 0.56, "fr_model": [{"model": "linear", "params": {"slope": 50, "bias": 60}}]}
NEUMANN_WITH_ABSORPTION = dict(RAMP, boundary_conditions="neumann")


def core_message(conditions, absorption):
    with pytest.raises(InvalidValue) as info:
        resolve_boundary("reflecting", conditions, absorption)
    return info.value.field, str(info.value)


# --- the two boundary settings -------------------------------------------------
def test_absorption_without_dirichlet_is_refused_under_its_field_with_the_cores_message():
    field, message = core_message("neumann", True)
    assert field == "absorption_step" and "needs Dirichlet boundary conditions" in message
    # a saved spec (every server-side entry point)
    assert settings.check_model_spec(NEUMANN_WITH_ABSORPTION) == {"absorption_step": message}
    assert settings.check_model_spec(RAMP) == {}
    # the Model form: the same message under the absorption switch, no spec
    state = model_form.state_from_spec(RAMP)
    assert (state["boundary_conditions"], state["absorption_step"]) == ("dirichlet", True)
    spec, errors, _ = model_form.parse_form(dict(state, boundary_conditions="neumann"))
    assert spec is None and errors == {("absorption_step",): message}
    spec, errors, _ = model_form.parse_form(dict(state, absorption_step=False))
    assert errors == {} and (spec["boundary_conditions"], spec["absorption_step"],
                             spec["boundary_mode"]) == ("dirichlet", False, "reflecting")
    assert jobs.build_model(spec).boundary_conditions == "dirichlet"


def test_model_page_shows_the_message_under_the_switch():
    from flowdash.pages.model import callbacks as model_cb
    state = model_form.state_from_spec(RAMP)
    values, pids = [], []
    for target, entries in (("peq", [state["peq"]]), ("p0", [state["p0"]]),
                            ("fr", state["neurons"])):
        for i, e in enumerate(entries):
            for name, v in e["params"].items():
                values.append(v)
                pids.append({"target": target, "neuron": i, "name": name, "model": e["model"]})
    g = state["grid"]
    args = (g["Np"], g["Ne"], g["xbegin"], g["xend"])
    out = model_cb.collect(state, *args, "neumann", True, "0.56", values, pids, [])
    assert out[-1] == core_message("neumann", True)[1]
    assert "Fix the fields" in out[0].layout.annotations[0].text
    assert model_cb.collect(state, *args, "dirichlet", True, "0.56", values, pids, [])[-1] == ""


def test_specs_saved_before_the_two_settings_keep_their_meaning():
    old = {k: v for k, v in RAMP.items() if k not in ("boundary_conditions", "absorption_step")}
    assert model_form.boundary_state(old) == ("dirichlet", True)
    assert model_form.boundary_state(dict(old, boundary_mode="reflecting")) == ("neumann", False)
    for key in ("fig3", "ramp", "ramp2021", "step2021"):   # every preset is a valid spec
        spec = model_form.PRESETS[key][1]
        assert settings.check_model_spec(spec) == {}
        assert model_form.parse_form(model_form.preset_state(key))[0]["boundary_mode"] == \
            spec["boundary_mode"]


# --- a fit's overrides of its initial model ------------------------------------
def fit_values(**kw):
    v = dict(dataset="ramp-data", init_model="ramp", optimizer="GD", params_to_opt=["F"],
             learning_rate={"F": 0.005}, max_epochs=2, mini_batch_number=1, Nv=None,
             snapshot_epochs=[1, 2])
    v.update(kw)
    return v


@pytest.fixture
def store(tmp_path):
    """A store with the small ramping truth "ramp", 12 absorbing trials with trial ends
    ("ramp-data"), the same trials without a ground truth ("ramp-real") and 4 trials
    without trial ends ("ramp-no-end")."""
    s = open_store(tmp_path / "store")
    s.save_model("ramp", RAMP)
    for name, n, end in (("ramp-data", 12, True), ("ramp-no-end", 4, False)):
        rid = jobs.submit(s, "generation", dict(model="ramp", n_trials=n, duration=20.0, dt=1e-3,
                                                seed=1, with_trial_end=end, val_fraction=0,
                                                dataset_name=name))
        assert jobs.execute(s, rid) == DONE
    entry = s.get_dataset("ramp-data")
    s.save_dataset("ramp-real", entry["npz"], dict(entry["meta"], source="upload",
                                                   model_spec=None, model=None))
    yield s
    s.close()


def test_fit_overrides_are_validated_and_applied(store):
    _, errors = settings.check_fit(fit_values(p0_override="nonsense", D_override="-1",
                                              Ne_override="0", absorption_step="yes"))
    assert set(errors) == {"p0_override", "D_override", "Ne_override", "absorption_step"}
    assert "equilibrium (p0 = peq)" in errors["p0_override"]
    message = core_message("neumann", True)[1]
    _, errors = settings.check_fit(fit_values(boundary_conditions="neumann", absorption_step=True))
    assert errors == {"absorption_step": message}
    # against the saved model: neumann alone keeps its absorption step, so it is refused too
    _, errors = settings.check_fit(fit_values(boundary_conditions="neumann"), store)
    assert errors == {"absorption_step": message}
    s, errors = settings.check_fit(fit_values(
        peq_override="uniform", p0_override="equilibrium", D_override="1", Ne_override="4",
        boundary_conditions="neumann", absorption_step=False, Nv="19"), store)
    assert errors == {}
    spec = settings.initial_spec(RAMP, s)
    assert spec["peq_model"]["model"] == "uniform" and spec["p0_model"] is None
    assert spec["D"] == 1.0 and spec["grid"]["Ne"] == 4 and spec["grid"]["Np"] == 6
    assert (spec["boundary_mode"], spec["boundary_conditions"], spec["absorption_step"]) == (
        "reflecting", "neumann", False)
    # Nv is checked on the fit's grid (Ne 4: N − 2 = 19), F0 needs a p0 of its own
    _, errors = settings.check_fit(fit_values(Ne_override="4", Nv="22"), store)
    assert errors == {"Nv": "must be an integer in [1, 19] (N - 2 for this grid)"}
    _, errors = settings.check_fit(fit_values(p0_override="equilibrium", params_to_opt=["F", "F0"],
                                              learning_rate={"F": 0.005, "F0": 0.005}), store)
    assert "F0 cannot be fitted from an equilibrium model" in errors["params_to_opt"]
    assert settings.check_fit(fit_values(p0_override="cos_square", params_to_opt=["F", "F0"],
                                         learning_rate={"F": 0.005, "F0": 0.005}), store)[1] == {}


def test_an_absorption_step_needs_data_with_trial_ends(store):
    _, errors = settings.check_fit(fit_values(dataset="ramp-no-end"), store)
    assert set(errors) == {"absorption_step"}
    assert "needs the trial end" in errors["absorption_step"]
    assert "“ramp-no-end” has none recorded" in errors["absorption_step"]
    for conditions in ("dirichlet", "neumann"):   # without the step, such data can be fitted
        assert settings.check_fit(fit_values(dataset="ramp-no-end", absorption_step=False,
                                             boundary_conditions=conditions), store)[1] == {}


# --- the ground truth's NLL as a yardstick ------------------------------------
def test_a_fit_stores_the_ground_truths_nll_in_its_likelihood_setting(store):
    train = jobs.train_val(store, "ramp-data")[0]
    truth = jobs.build_model(RAMP)
    values = {}
    for key, overrides in (("full", {}), ("no_absorption", ablation.BY_KEY["no_absorption"]
                                          .settings())):
        rid = jobs.submit(store, "fit", fit_values(peq_override="uniform", Ne_override="4",
                                                   **overrides))
        assert jobs.execute(store, rid) == DONE
        result = store.get_result(rid)
        fitted = jobs.build_model(settings.initial_spec(RAMP, store.get_run(rid)["settings"]))
        assert fitted.grid.Ne == 4 and result["init"]["peq"][0][0] == pytest.approx(0.5)
        expected = ground_truth_nll(truth, train, fitted)   # on the truth's own grid
        assert result["nll_gt"] == pytest.approx(expected, rel=1e-12)
        values[key] = result["nll_gt"]
    assert values["full"] != pytest.approx(values["no_absorption"])   # the setting matters
    # real data: no line, and the run says why
    rid = jobs.submit(store, "fit", fit_values(dataset="ramp-real"))
    assert jobs.execute(store, rid) == DONE
    result = store.get_result(rid)
    assert "nll_gt" not in result and result["nll_gt_note"] == fit_kind.NO_TRUTH
    record = store.get_run(rid)
    gt, note = fit_view.yardstick(store, record, result, fit_view.RELATIVE)
    assert gt is None and note.startswith("No ground-truth line: no ground truth")
    assert note.endswith("The relative view needs it.")


def test_nll_figure_draws_the_ground_truth_dashed_and_the_relative_view():
    epochs, train, val = [0, 1, 2], [-100.0, -110.0, -115.0], [-50.0, -52.0, -51.0]
    fig = fit_figures.nll_figure(epochs, train, val, nll_gt=-112.0, x_end=10)
    gt = fig.data[3]
    assert gt.name == fit_figures.GT_NAME and gt.line.dash == "dash" and gt.showlegend
    assert list(gt.x) == [0, 10] and list(gt.y) == [-12.0, -12.0]      # NLL_gt − NLL₀
    rel = fit_figures.nll_figure(epochs, train, val, nll_gt=-112.0, relative_to_truth=True)
    assert list(rel.data[0].y) == pytest.approx(list(relative_nll(train, -112.0)))
    assert len(rel.data[1].x) == 0 and len(rel.data[2].x) == 0       # validation: other trials
    assert list(rel.data[3].y) == [0.0, 0.0] and "relative" in rel.layout.yaxis.title.text
    # no ground truth: no line, and no relative view
    none = fit_figures.nll_figure(epochs, train, val, relative_to_truth=True)
    assert len(none.data[3].x) == 0 and list(none.data[0].y) == [0, -10, -15]
    # the paper layout: the line is the last trace, in the NLL panel
    paper = fit_figures.paper_figure(epochs, train, val, np.linspace(-1, 1, 5), {1: np.ones(5)},
                                     [1], nll_gt=-112.0, x_end=2)
    assert paper.data[-1].name == fit_figures.GT_NAME and list(paper.data[-1].y) == [-12.0, -12.0]
    assert paper.data[-1].xaxis == "x"


def test_fit_page_poll_draws_the_line_and_patches_the_relative_curve(store):
    rid = jobs.submit(store, "fit", fit_values(max_epochs=3))
    assert jobs.execute(store, rid) == DONE
    gt = store.get_result(rid)["nll_gt"]
    for view in (fit_view.OVERLAY, fit_view.PAPER):
        out = fit_view.poll(store, rid, None, view)
        fig = out["nll" if view == fit_view.OVERLAY else "paper"]
        line = next(t for t in fig.data if t.name == fit_figures.GT_NAME)
        assert line.y[0] == pytest.approx(gt - out["cursor"]["base"][0]) and out["note"] == ""
    out = fit_view.poll(store, rid, None, fit_view.OVERLAY, fit_view.RELATIVE)
    assert out["cursor"]["rel"] and out["cursor"]["gt"] == gt
    store.append_epoch(rid, {"epoch": 4, "nll_train": [gt], "nll_val": None, "elapsed": 1.0,
                             "time": time.time(), "D": [0.56]})
    later = fit_view.poll(store, rid, out["cursor"], fit_view.OVERLAY, fit_view.RELATIVE)
    ops = later["nll"].to_plotly_json()["operations"]
    assert {"operation": "Extend", "location": ["data", 0, "y"], "params": {"value": [0.0]}} in ops
    assert not any(op["location"][:2] == ["data", 1] for op in ops)   # validation stays empty
    # a switch of scale draws anew
    again = fit_view.poll(store, rid, later["cursor"], fit_view.OVERLAY, fit_view.SHIFTED)
    assert isinstance(again["nll"], go.Figure) and not again["cursor"]["rel"]


# --- presets --------------------------------------------------------------------
def test_presets_of_the_2021_paper():
    ramp, step = model_form.PRESETS["ramp2021"][1], model_form.PRESETS["step2021"][1]
    assert ramp["peq_model"] == {"model": "linear_pot", "params": {"slope": -2.65}}
    assert ramp["p0_model"] == {"model": "single_well", "params": {"xmin": 0.0, "miu": 200.0}}
    assert ramp["D"] == 0.56 and ramp["grid"]["Ne"] == 64
    assert ramp["fr_model"] == [{"model": "linear", "params": {"slope": 50, "bias": 60}}]
    assert (ramp["boundary_conditions"], ramp["absorption_step"]) == ("dirichlet", True)
    assert step["peq_model"] == {"model": "stepping", "params": {}} and step["D"] == 1.0
    assert step["p0_model"] == ramp["p0_model"] and step["fr_model"] == ramp["fr_model"]
    data = data_logic.PRESETS["ramp2021"][1]
    assert (data["n_trials"], data["duration"], data["with_trial_end"]) == ("200", "100", True)
    assert data_logic.PRESETS["step2021"][1]["n_trials"] == "400"
    fit = fit_view.preset("ramp2021", "truth")
    assert fit["init_model"] == "truth" and fit["peq_override"] == "uniform"
    assert fit["Ne_override"] == "16" and fit["optimizer"] == "GD" and fit["params"] == ["F"]
    assert fit["lr"]["F"] == "0.005" and fit["likelihood"] == fit_view.AS_SAVED
    assert fit_view.preset("fig4_2021", None)["lr"]["F"] == "0.0025"
    joint = fit_view.preset("joint2021", None)
    assert joint["params"] == ["F", "F0", "D"] and joint["p0_override"] == "cos_square"
    assert joint["D_override"] == "1"
    # every fit preset passes the job layer's checks as the page sends it
    for key in fit_view.PRESETS:
        values = fit_view.values_from_fields(dict(fit_view.preset(key, "m"), dataset="d",
                                                  seed="0", pace="0", alpha="0.05"))
        assert settings.check_fit(values)[1] == {}, key


def test_the_2021_data_presets_pass_the_generation_caps(tmp_path):
    s = open_store(tmp_path / "caps")
    s.save_model("ramp2021", model_form.PRESETS["ramp2021"][1])
    s.save_model("fig3", model_form.PRESETS["fig3"][1])
    for key in ("ramp2021", "step2021"):
        values = dict(data_logic.PRESETS[key][1], model="ramp2021")
        assert settings.check_generation(values, s)[1] == {}, key
    # trials that cannot end early (Neumann) are held to the full-length cap
    _, errors = settings.check_generation(dict(data_logic.PRESETS["ramp2021"][1], model="fig3"),
                                          s)
    assert "at most 20000000 are allowed" in errors["n_trials"]


def test_simulate_holds_trials_to_the_steps_they_keep():
    from flowdash.core.simulation import simulate
    model = jobs.build_model(RAMP)
    sim = simulate(model, 4, 50.0, dt=1e-3, seed=0, max_steps=10**6)
    assert sum(len(x) for x in sim.x) < 4 * 50_000         # absorbed long before 50 s
    with pytest.raises(InvalidValue) as info:
        simulate(model.replace(boundary_mode="reflecting"), 4, 5.0, dt=1e-3, seed=0,
                 max_steps=6000)
    assert info.value.field == "max_steps" and "more than the 6000 allowed" in str(info.value)


# --- the comparison: four fit runs as one group ---------------------------------
def compare_fields(**kw):
    f = dict(dataset="ramp-data", init_model="ramp", peq="uniform", ne="4", epochs="3", lr="0.005",
             shown="1, 2", pace="0", name="")
    f.update(kw)
    return f


def start_group(store):
    group, errors, _ = cmp_view.start(store, compare_fields(name="lecture"))
    assert errors == {}
    return group


def test_a_fresh_browser_shows_the_newest_comparison(store, monkeypatch):
    from contextlib import nullcontext

    from flowdash.pages.compare import callbacks as cmp_cb
    monkeypatch.setattr(cmp_cb, "open_store", lambda: nullcontext(store))
    assert cmp_cb.fill_lists("/compare", None, None)[3] is None
    older, newer = start_group(store), start_group(store)
    assert cmp_cb.fill_lists("/compare", None, None)[3] == newer["group"]
    assert cmp_cb.fill_lists("/compare", older, None)[3] == older["group"]


def test_comparison_queues_four_linked_fits_or_nothing(store):
    group, errors, problem = cmp_view.start(store, compare_fields(dataset="ramp-no-end"))
    assert group is None and "needs the trial end" in errors["dataset"] and problem
    assert store.list_runs("fit") == []                        # nothing queued
    assert "no recorded trial ends" in cmp_view.dataset_problem(store, "ramp-no-end")
    assert cmp_view.dataset_problem(store, "ramp-data") == ""
    assert cmp_view.truth_model(store, "ramp-data") == "ramp"
    assert cmp_view.truth_model(store, "ramp-real") is None
    group, errors, _ = cmp_view.start(store, compare_fields(shown="1, 9"))
    assert group is None and "beyond the last epoch" in errors["shown"]
    group = start_group(store)
    assert list(group["runs"]) == [a.key for a in ablation.ABLATIONS]
    records = [store.get_run(group["runs"][a.key]) for a in ablation.ABLATIONS]
    assert {r["settings"]["group"]["id"] for r in records} == {group["group"]}
    assert [r["settings"]["group"]["member"] for r in records] == list(group["runs"])
    assert [(r["settings"]["boundary_conditions"], r["settings"]["absorption_step"],
             r["settings"]["p0_override"]) for r in records] == [
        ("dirichlet", True, None), ("dirichlet", False, None), ("neumann", False, None),
        ("neumann", False, "equilibrium")]
    assert records[0]["name"] == "lecture · full model"
    assert all(r["status"] == "queued" for r in records)
    assert ablation.groups(store)[0]["runs"] == group["runs"]
    # the page shows each one's place in the queue before it runs
    out = cmp_view.poll(store, group, None)
    assert [s for s, _ in out["status"]] == ["queued"] * 4
    assert out["status"][1][1].startswith("queued: 2nd in line")


def test_comparison_panels_grow_with_their_own_ground_truth_lines(store):
    group = start_group(store)
    for key in ("full", "no_absorption"):
        assert jobs.execute(store, group["runs"][key]) == DONE
    out = cmp_view.poll(store, group, None)
    full, noabs, refl, _ = out["figures"]
    assert isinstance(full, go.Figure) and isinstance(noabs, go.Figure)
    assert refl.layout.annotations[0].text.startswith("queued")  # still waiting
    gts = {}
    for key, fig in (("full", full), ("no_absorption", noabs)):
        result = store.get_result(group["runs"][key])
        gts[key] = result["nll_gt"]
        base = out["cursor"]["runs"][key]["base"]          # the fit's NLL at epoch 0
        assert fig.data[cmp_figures.GT].y[0] == pytest.approx(result["nll_gt"] - base)
        assert len(fig.data[cmp_figures.NLL].x) == 4            # epochs 0..3
        assert fig.data[cmp_figures.TRUTH].name == "true potential" and len(
            fig.data[cmp_figures.TRUTH].x) == 41              # the truth's own grid (Ne 8)
        assert [len(fig.data[cmp_figures.FIRST_EPOCH + j].y) for j in range(2)] == [21, 21]
    assert gts["full"] != pytest.approx(gts["no_absorption"])
    assert out["note"] == "" and out["shown"] == [1, 2] and not out["final"]
    # the other two run; the next poll extends their panels, the done ones stay
    for key in ("reflecting", "reflecting_eq"):
        assert jobs.execute(store, group["runs"][key]) == DONE
    later = cmp_view.poll(store, group, out["cursor"])
    assert later["figures"][0] is None and later["figures"][1] is None
    assert all(isinstance(f, go.Figure) for f in later["figures"][2:]) and later["final"]
    # new epochs arrive as a Patch (a cursor that has shown the first two only)
    cursor = dict(later["cursor"])
    cursor["runs"] = dict(cursor["runs"], full=dict(cursor["runs"]["full"], final=False, n=2))
    patched = cmp_view.poll(store, group, cursor)
    assert isinstance(patched["figures"][0], Patch)
    ops = patched["figures"][0].to_plotly_json()["operations"]
    assert {"operation": "Extend", "location": ["data", cmp_figures.NLL, "x"],
            "params": {"value": [2, 3]}} in ops


def test_comparison_figures_and_key():
    x = np.linspace(-1, 1, 9)
    peq = np.full(9, 0.5)
    fig = cmp_figures.panel_figure("full model", [0, 1, 2], [-10.0, -12.0, -13.0], x,
                                   {4: peq}, [4, 17, 40], (x, peq), (2, peq), nll_gt=-14.0,
                                   x_end=40)
    assert fig.layout.title.text == "full model" and fig.layout.showlegend is False
    assert [t.name for t in fig.data] == ["fit", "ground truth's NLL", "true potential",
                                          "epoch 4", "epoch 17", "epoch 40", "now (epoch 2)"]
    assert list(fig.data[cmp_figures.GT].y) == [-4.0, -4.0] and list(fig.data[1].x) == [0, 40]
    assert len(fig.data[cmp_figures.FIRST_EPOCH].y) == 9 and len(fig.data[4].y) == 0
    assert cmp_figures.now_index(3) == 6 and fig.data[6].line.dash == "dot"
    colors = cmp_figures.epoch_colors(3)
    assert colors == [cmp_figures.BLUES[0], cmp_figures.BLUES[2], cmp_figures.BLUES[5]]
    assert [t.line.color for t in fig.data[3:6]] == colors
    rel = cmp_figures.panel_figure("x", [0, 1], [-10.0, -12.0], x, {}, [4], None, None,
                                   nll_gt=-14.0, relative_to_truth=True)
    assert list(rel.data[0].y) == pytest.approx([relative_nll(-10.0, -14.0),
                                                 relative_nll(-12.0, -14.0)])
    assert list(rel.data[1].y) == [0.0, 0.0] and len(rel.data[cmp_figures.TRUTH].x) == 0
    labels = [label for label, _ in cmp_figures.key([4, 17, 40])]
    assert labels == ["true potential", "epoch 4", "epoch 17", "epoch 40", "now",
                      "ground truth's NLL"]
    assert [label for label, _ in cmp_figures.key([4], truth=False)] == ["epoch 4", "now"]
    waiting = cmp_figures.waiting_figure("reflecting", "queued: 3rd in line")
    assert waiting.layout.title.text == "reflecting"


def test_ablations_apply_to_core_models():
    model = jobs.build_model(RAMP)
    got = [(m.boundary_conditions, m.absorption_step, m.equilibrium)
           for m in (a.apply(model) for a in ablation.ABLATIONS)]
    assert got == [("dirichlet", True, False), ("dirichlet", False, False),
                   ("neumann", False, False), ("neumann", False, True)]


def test_reproductions_run_quick(tmp_path):
    """The smoke runs of repro/ (the full runs are not part of the suite)."""
    from repro import fig3_2021, fig4_2021
    out = fig3_2021.main(["--quick", "--out", str(tmp_path / "fig3.png")])
    assert (tmp_path / "fig3.png").stat().st_size > 10_000
    assert [f["key"] for f in out["fits"]] == [a.key for a in ablation.ABLATIONS]
    assert all(np.isfinite(f["gt"]) and np.isfinite(f["final"]) for f in out["fits"])
    out = fig4_2021.main(["--quick", "--out", str(tmp_path / "fig4.png")])
    assert (tmp_path / "fig4.png").stat().st_size > 10_000
    assert set(out["fits"]) == {"ramp2021", "step2021"} and out["joint"]["D"] != 1.0
