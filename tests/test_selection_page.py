"""The Model selection page: its figures (pure), its logic, its callbacks; the Fit and
Runs pages' continue controls, line-search fields and thinned live curves."""
import json

import numpy as np
import plotly.graph_objects as go
import pytest
from dash import no_update

from flowdash import jobs
from flowdash.pages import linesearch
from flowdash.pages.fit import view as fit_view
from flowdash.pages.selection import figures, view
from flowdash.store import DONE, open_store

from tests.test_selection_jobs import GEN, SPEC  # one dataset for both

FORM = dict(dataset="d", halves="even_odd", halves_seed="0", dataset2=None, init_model="gt",
            peq_override="cos_square", optimizer="GD", lr={"F": "0.005"}, alpha="0.05",
            params=["F"], epochs="6", batches="1", nv="", seed="0", name="")


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "s")
    s.save_model("gt", SPEC)
    assert jobs.execute(s, jobs.submit(s, "generation", GEN)) == DONE
    yield s
    s.close()


@pytest.fixture
def done_selection(store):
    sel_id, errors, _ = view.start(store, FORM)
    assert errors == {}
    for run_id in store.get_selection(sel_id)["fits"]:
        assert jobs.execute(store, run_id) == DONE
    return sel_id


# --- figures --------------------------------------------------------------------------
def test_fc_epoch_figure_draws_both_halves_on_a_log_epoch_axis_with_the_truth():
    fig = figures.fc_epoch_figure([0, 1, 10], [1.0, 2.0, 3.0], [0, 2, 10], [1.0, 2.5, 3.5],
                                  truth_fc=2.2, selected=((10, 3.0), (2, 2.5)))
    assert [t.name for t in fig.data] == ["half 1", "half 2", "selected", "selected"]
    assert list(fig.data[0].x) == [1, 1, 10]              # epoch 0 at 1 on the log axis
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.title.text == "epoch (log scale)"
    assert fig.layout.yaxis.title.text == "feature complexity FC (a.u.)"
    assert fig.layout.shapes[0].y0 == 2.2 and "ground truth 2.2" in fig.layout.annotations[0].text
    label = fig.layout.annotations[0]   # above the left end, clear of the rising FC curves
    assert (label.x, label.xanchor, label.yanchor) == (0, "left", "bottom")
    assert fig.data[2].marker.symbol == "star" and fig.data[3].showlegend is False
    noneq = figures.fc_epoch_figure([0], [1.0], [0], [1.0], non_equilibrium=True)
    assert noneq.layout.yaxis.title.text == "feature complexity FC (nats)" and not noneq.layout.shapes


def test_nll_and_js_figures_mark_the_selected_early_and_late_models():
    fig = figures.nll_fc_figure([1, 2, 3], [10.0, 8.0, np.nan], [1, 2], [11.0, 9.0], selected=1)
    assert [t.name for t in fig.data] == ["half 1", "selected", "half 2"]
    assert list(fig.data[0].y) == [0.0, -2.0, None]      # shifted, a gap for a missing value
    assert fig.data[1].y == (-2.0,)
    assert fig.layout.yaxis.title.text == "validation NLL − NLL₀ (nats)"
    js = figures.js_fc_figure([1, 2, 3, 4], [0.0, 1e-3, 3e-3, 1e-2], 0.002, 0.008,
                              {"selected": 1, "early": 0, "late": 2})
    assert [t.name for t in js.data] == ["JS", "selected", "early", "late"]
    assert js.data[0].y[0] is None                         # JS = 0 has no place on a log axis
    assert [t.marker.symbol for t in js.data[1:]] == ["star", "triangle-up", "square"]
    assert js.layout.yaxis.type == "log" and js.layout.yaxis.title.text == "JS divergence (nats)"
    assert [s.y0 for s in js.layout.shapes] == [0.002, 0.008]
    texts = [a.text for a in js.layout.annotations]
    assert texts == ["threshold 0.002", "late 0.008"]
    assert js.layout.annotations[0].y == pytest.approx(np.log10(0.002))   # log axis: log10


def test_potentials_and_per_condition_figures():
    x = np.linspace(-1, 1, 5)
    peq = np.array([[0.1, 0.3, 0.2, 0.3, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]])
    models = [{"peq": peq, "p0": peq, "D": np.array([1.0, 2.0]), "fr": np.ones((1, 5, 2)),
               "epoch": 7, "mirrored": False},
              {"peq": peq, "p0": peq, "D": np.array([1.0, 2.0]), "fr": np.ones((1, 5, 2)),
               "epoch": 9, "mirrored": True}]
    truth = {"x": x, "peq": peq, "p0": peq, "D": np.array([1.0]), "fr": np.ones((1, 5, 2))}
    pot = figures.potentials_figure(x, models, truth)
    assert [t.name for t in pot.data] == ["ground truth", "half 1 (epoch 7)",
                                          "half 2 (epoch 9) (mirrored)"]
    assert min(pot.data[1].y) == 0.0 and pot.layout.xaxis.title.text == "latent state x (a.u.)"
    per = [{"epochs": np.arange(4), "relative": np.zeros((4, 2))}] * 2
    cond = figures.conditions_figure(x, models, truth, per, ["left", "right"])
    titles = [a.text for a in cond.layout.annotations]
    assert titles[:4] == ["left: Φ·D", "p0", "rates", "(NLL₀ − NLL)/|NLL₀|"]
    assert "right: Φ·D" in titles
    phi_d = [t for t in cond.data if t.name == "half 1 (epoch 7)"][0]
    np.testing.assert_allclose(phi_d.y, (-np.log(peq[0]) + np.log(peq[0]).max()) * 1.0)
    assert cond.layout.yaxis.title.text == "Φ(x)·D (a.u.³/s)"
    assert cond.layout.yaxis3.title.text == "firing rate (Hz)"
    assert cond.layout.xaxis4.type == "log"


# --- the page's logic --------------------------------------------------------------------
def test_start_maps_errors_to_fields(store):
    sel_id, errors, problem = view.start(store, dict(FORM, epochs="0", halves="two_datasets",
                                                     line_search={"D": {"when": "log",
                                                                        "value": "x"}}))
    assert sel_id is None
    assert set(errors) == {"epochs", "dataset2", "ls-D-value"}
    assert store.list_selections() == []


def test_poll_analyses_and_redraws_only_on_change(store, done_selection):
    out = view.poll(store, done_selection, {"FC_stride": "2"}, None)
    a = out["analysis"]
    assert a.result is not None and out["final"]
    assert set(out["figures"]) == {"fc", "nll", "js", "pot", "cond"} and out["figures"]["cond"] is None
    text, colour = out["note"]
    assert text.startswith("analysed epochs 0–6 of 6; fits done · selected: epoch ")
    assert "(ground truth " in text and colour == "success"
    assert [r["text"] for r in out["rows"]] == ["half 1: epoch 6 of 6 · 7 models analysed",
                                                "half 2: epoch 6 of 6 · 7 models analysed"]
    again = view.poll(store, done_selection, {"FC_stride": "2"}, json.loads(json.dumps(out["cursor"])))
    assert again["figures"] is None                       # nothing new: no redraw
    other = view.poll(store, done_selection, {"FC_stride": "2", "JS_thres": "1e-9"}, out["cursor"])
    assert other["figures"] is not None
    bad = view.poll(store, done_selection, {"FC_stride": "20"}, None)
    assert "larger than the path" in bad["errors"]["FC_stride"]
    assert bad["note"][1] == "warning" and bad["figures"]["fc"].layout.annotations[0].text == \
        "Fix the analysis settings."
    assert view.poll(store, None, {}, None) is None


def test_cancel_and_continue_both(store, done_selection):
    text, colour = view.act(store, done_selection, "continue", "3")
    assert colour == "success" and "to epoch 9" in text
    text, colour = view.act(store, done_selection, "cancel")
    assert colour == "warning" and "cancelled, cancelled" in text
    text, colour = view.act(store, done_selection, "continue", "x")
    assert colour == "warning" and "expected a number" in text
    assert view.act(store, None, "cancel")[1] == "light"


def test_pair_two_fits(store):
    a = jobs.submit(store, "fit", dict(dataset="d", init_model="gt", optimizer="GD",
                                       learning_rate={"F": 0.005}, params_to_opt=["F"],
                                       max_epochs=3, mini_batch_number=1))
    sel_id, problem = view.pair(store, a, a)
    assert sel_id is None and "choose another fit" in problem
    sel_id, problem = view.pair(store, a, None)
    assert sel_id is None and problem == "choose a fit run"


# --- callbacks ----------------------------------------------------------------------------
def test_save_and_export_callbacks(store, done_selection, monkeypatch):
    from flowdash.pages.selection import callbacks as cb
    monkeypatch.setattr(cb, "open_store", lambda: __import__("contextlib").nullcontext(store))
    fca_ids = [{"type": "sel-fca", "name": "FC_stride"}]
    msg, invalid, fb = cb.save(1, done_selection, "1", "picked", fca_ids, ["2"])
    assert "Saved model “picked” (half 2, epoch" in str(msg) and not invalid
    assert store.get_model("picked")["source"]["half"] == 2
    msg, invalid, fb = cb.save(1, done_selection, "0", "picked", fca_ids, ["2"])
    assert invalid and "exists" in fb
    msg, invalid, fb = cb.save(1, done_selection, "0", "p", fca_ids, ["99"])
    assert "Not saved: nothing is selected yet" in str(msg)
    npz = cb.export_npz(1, done_selection, fca_ids, ["2"])
    assert npz["filename"].endswith(".npz") and npz["base64"]
    js = cb.export_json(1, done_selection, fca_ids, ["2"])
    assert json.loads(js["content"])["fca_settings"]["FC_stride"] == 2


def test_a_fresh_browser_follows_the_newest_selection(store, monkeypatch):
    from flowdash.pages import menus
    from flowdash.pages.selection import callbacks as cb
    monkeypatch.setattr(cb, "open_store", lambda: __import__("contextlib").nullcontext(store))
    assert cb.fill_lists("/selection", None, None)[-1] is None      # none yet: nothing to follow
    older = view.start(store, FORM)[0]
    newer = view.start(store, dict(FORM, name="second"))[0]
    out = cb.fill_lists("/selection", "d", None)
    assert out[-1] == newer and out[3][0]["value"] == newer         # nothing chosen: the newest
    assert cb.fill_lists("/selection", "d", older)[-1] == older     # the browser's choice stays
    assert cb.fill_lists("/selection", "d", "gone")[-1] == newer    # a deleted one: the newest
    assert menus.followed("b", [{"value": "a"}, {"value": "b"}]) == "b"
    assert menus.followed(None, []) is None


# --- the Fit page: line searches, continue, thinned live curves ------------------------------
def test_line_search_fields_and_their_errors():
    vals = ["log", "5", "1", "5", "off", "", "1", "5"]
    ids = [{"type": "x", "param": p, "part": part} for p in ("C", "D")
           for part in linesearch.PARTS]
    assert linesearch.values(vals, ids) == {
        "C": {"when": "log", "value": "5", "searches_per_epoch": "1", "max_fun_eval": "5"},
        "D": {"when": "off", "value": "", "searches_per_epoch": "1", "max_fun_eval": "5"}}
    assert linesearch.field_of("line_search:C:epochs") == "ls-C-value"
    assert linesearch.field_of("line_search:D:max_fun_eval") == "ls-D-max_fun_eval"
    assert linesearch.field_of("max_epochs") is None
    assert linesearch.invalid({"ls-C-value": "bad"}, ids)[:2] == [False, True]
    by_field, alert = fit_view.field_errors({"line_search:C:epochs": "must be", "options": "x"})
    assert by_field == {"ls-C-value": "must be"} and alert == "x"


def test_the_fit_pages_continue(store):
    rid = jobs.submit(store, "fit", dict(dataset="d", init_model="gt", optimizer="GD",
                                         learning_rate={"F": 0.005}, params_to_opt=["F"],
                                         max_epochs=3, mini_batch_number=1))
    text, colour = fit_view.continue_run(store, rid, "2")
    assert colour == "warning" and "still queued" in text
    assert jobs.execute(store, rid) == DONE
    text, colour = fit_view.continue_run(store, rid, "2")
    assert colour == "success" and text.endswith("from epoch 3 to 5.")
    assert fit_view.continue_run(store, None, "2")[1] == "light"


def test_a_long_fits_live_curve_is_thinned():
    record = {"settings": {"max_epochs": 50_000}}
    assert fit_view.display_stride(record) == 10
    assert fit_view.display_stride({"settings": {"max_epochs": 5000}}) == 1
    cols = {"epoch": np.arange(95, 112), "nll_train": np.ones((17, 1)), "nll_val": None,
            "elapsed": np.zeros(17), "time": np.zeros(17), "D": np.ones((17, 1))}
    assert fit_view.thinned(cols, 10, False)["epoch"].tolist() == [100, 110]
    assert fit_view.thinned(cols, 10, True)["epoch"].tolist() == [100, 110, 111]
    assert fit_view.thinned(cols, 1, False) is cols
