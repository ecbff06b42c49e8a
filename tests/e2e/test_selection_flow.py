"""Model selection in a real browser at a small size, and continuing a fit.

An Example-1-like model (double well, Ne 16) and a 4-trial dataset; even/odd
halves; 60 GD epochs per half on two workers. The four panels appear and grow
while the fits run; a new threshold recomputes without a new run; the
selected model is saved and the analysis exported. Then a finished fit
continues for 10 more epochs and its NLL curve stays one curve.
Every step waits for a condition, never for a fixed time.
"""
import json
import time

import pytest

from conftest import choose, wait_for

from flowdash import jobs
from flowdash.store import open_store

pytestmark = pytest.mark.e2e

TRUTH = {"grid": {"Np": 8, "Ne": 16, "xbegin": -1.0, "xend": 1.0}, "boundary_mode": "reflecting",
         "peq_model": {"model": "double_well", "params": {"xmin": 0.6, "xmax": 0.0, "depth": 2}},
         "p0_model": None, "D": 10.0,
         "fr_model": [{"model": "rectified_linear", "params": {"slope": 100, "x_thresh": -1}}]}
PANELS = ("sel-fc-graph", "sel-nll-graph", "sel-js-graph", "sel-pot-graph")
POINTS = ("() => { const g = document.querySelector('#sel-fc-graph .js-plotly-plot');"
          " return g && g.data && g.data.length ? g.data[0].x.length : 0; }")
FIT_X = ("() => { const g = document.querySelector('#fit-nll-graph .js-plotly-plot');"
         " return g && g.data && g.data.length ? Array.from(g.data[0].x) : []; }")


def fca(name):
    return f"[id='{json.dumps({'name': name, 'type': 'sel-fca'}, separators=(',', ':'))}']"


@pytest.fixture(scope="module")
def data(live_server):
    """The model and the dataset, made through the job layer (the server's workers)."""
    store = open_store(live_server.store)
    if "sel-truth" not in store.list_models():
        store.save_model("sel-truth", TRUTH)
        rid = jobs.submit(store, "generation", dict(
            model="sel-truth", n_trials=4, duration=20.0, dt=1e-4, seed=2, with_trial_end=False,
            val_fraction=0.5, dataset_name="sel-4trials"))
        assert jobs.wait(store, rid, timeout=60)["status"] == "done"
    yield store
    store.close()


def test_model_selection_live_threshold_save_export(browser, live_app, data):
    store = data
    page = browser.new_page(viewport={"width": 1024, "height": 768}, accept_downloads=True)
    page.goto(live_app + "/selection")
    page.wait_for_selector("#sel-dataset option[value='sel-4trials']", state="attached")
    page.click("#sel-settings-toggle")          # hidden at first below 1200 px
    page.select_option("#sel-dataset", "sel-4trials")
    page.select_option("#sel-init-model", "sel-truth")
    page.fill("#sel-epochs", "60")
    page.fill("#sel-name", "e2e selection")
    runs_before = len(store.list_runs("fit"))
    page.click("#sel-start")
    page.wait_for_selector("#sel-message .alert-success")
    sel_id = wait_for(lambda: next((s["id"] for s in store.list_selections()
                                    if s["name"] == "e2e selection"), None), what="the selection")
    assert len(store.list_runs("fit")) == runs_before + 2

    # the four panels appear and grow while both fits run
    wait_for(lambda: page.evaluate(POINTS) >= 2, timeout=40, what="the first analysed models")
    first = page.evaluate(POINTS)
    for gid in PANELS:
        assert page.locator(f"#{gid} .js-plotly-plot").count() == 1
    wait_for(lambda: page.evaluate(POINTS) > first, timeout=40, what="the panels to grow")
    note = wait_for(lambda: "fits done" in page.inner_text("#sel-note") and
                    page.inner_text("#sel-note"), timeout=60, what="both fits to end")
    assert note.startswith("analysed epochs 0–60 of 60; fits done · selected: epoch ")
    assert "(ground truth " in note

    # a new threshold recomputes at once, without a new run
    runs = len(store.list_runs())
    page.fill(fca("JS_thres"), "1e-9")
    wait_for(lambda: "selected: epoch 0 (half 1)" in page.inner_text("#sel-note"), timeout=15,
             what="the selection at the new threshold")
    page.fill(fca("JS_thres"), "0")
    wait_for(lambda: "must be a finite number > 0" in page.inner_text(
        f"[id='{json.dumps({'name': 'JS_thres', 'type': 'sel-fca-fb'}, separators=(',', ':'))}']"),
        timeout=15, what="the threshold's message")
    page.fill(fca("JS_thres"), "0.002")
    wait_for(lambda: "selected: epoch" in page.inner_text("#sel-note"), timeout=15,
             what="the analysis back")
    assert len(store.list_runs()) == runs

    # save the selected model; export the analysis
    page.fill("#sel-save-name", "e2e selected")
    page.click("#sel-save")
    page.wait_for_selector("#sel-save-msg .alert-success")
    spec = store.get_model("e2e selected")
    assert spec["peq_model"]["model"] == "tabulated" and spec["source"]["selection"] == sel_id
    with page.expect_download() as npz:
        page.click("#sel-export-npz")
    assert npz.value.suggested_filename == f"flowdash-selection-{sel_id}.npz"
    with page.expect_download() as js:
        page.click("#sel-export-json")
    summary = json.loads(open(js.value.path()).read())
    assert summary["analysed_upto_epoch"] == 60 and summary["fca_settings"]["JS_thres"] == 0.002
    page.close()


def test_a_finished_fit_continues_as_one_curve(browser, live_app, data):
    store = data
    rid = jobs.submit(store, "fit", dict(dataset="sel-4trials", init_model="sel-truth",
                                         peq_override="cos_square", optimizer="GD",
                                         learning_rate={"F": 0.005}, params_to_opt=["F"],
                                         max_epochs=20, mini_batch_number=1, Nv=64),
                      name="e2e continue")
    assert jobs.wait(store, rid, timeout=60)["status"] == "done"
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(live_app + "/fit")
    choose(page, "#fit-run-select", "e2e continue")
    wait_for(lambda: page.evaluate(FIT_X)[-1:] == [20], what="the finished fit's curve")
    page.fill("#fit-more", "10")
    page.click("#fit-continue")
    page.wait_for_selector("#fit-cancel-msg .alert-success")
    assert "from epoch 20 to 30" in page.inner_text("#fit-cancel-msg")
    wait_for(lambda: page.evaluate(FIT_X)[-1:] == [30], timeout=60, what="the continued curve")
    assert page.evaluate(FIT_X) == list(range(31))             # one curve, no gap, no repeat
    assert store.read_columns(rid)["epoch"].tolist() == list(range(31))
    assert store.get_run(rid)["status"] == "done"
    page.close()
