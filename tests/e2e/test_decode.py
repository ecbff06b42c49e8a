"""Decoding in a real browser: a small absorbing dataset with two neurons, two trials
decoded with the ground-truth model, each path over its raster with the true path.

Robust under load: every step waits for a condition, never for a fixed time.
"""
import io
import os

import numpy as np
import pytest

from conftest import choose

pytestmark = pytest.mark.e2e
# A screenshot of the page only on request, so a test run leaves the tree clean:
#   FLOWDASH_DECODE_SCREENSHOT=docs/decode-page.png python -m pytest tests/e2e/test_decode.py
SCREENSHOT = os.environ.get("FLOWDASH_DECODE_SCREENSHOT")
TRACES = ("() => { const g = document.querySelector('#decode-graph .js-plotly-plot');"
          " return g && g.data ? g.data.map(d => d.name) : []; }")
TITLE = ("() => { const g = document.querySelector('#decode-graph .js-plotly-plot');"
         " return g && g.layout && g.layout.title ? g.layout.title.text : ''; }")


def test_decode_two_trials_with_the_ground_truth(live_server, browser):
    url = live_server.url
    page = browser.new_page(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # Model: the absorbing preset (one neuron) saved as is, then with a second neuron
    page.goto(url + "/model")
    page.get_by_role("button", name="Ramping, absorbing boundary").click()
    page.wait_for_function("document.querySelector('#model-ne').value === '16'")
    for name, add in (("dec-one", False), ("dec-gt", True)):
        if add:
            page.click("#model-add-neuron")
            page.get_by_text("Neuron 2").first.wait_for()
        page.fill("#model-name", name)
        page.click("#model-save")
        page.get_by_text(f"Saved model “{name}”").wait_for()

    # Data: three short trials from the two-neuron model
    page.get_by_role("link", name="Data").click()
    choose(page, "#data-model", "dec-gt")
    page.fill("#data-trials", "3")
    page.fill("#data-duration", "2")
    page.fill("#data-name", "dec-data")
    page.click("#data-generate")
    page.get_by_text("Saved dataset “dec-data”").wait_for(timeout=60000)

    # Decode: a model with other neurons is refused, with both counts
    page.get_by_role("link", name="Decode").click()
    page.wait_for_selector("#decode-dataset option[value='dec-data']", state="attached")
    page.select_option("#decode-dataset", "dec-data")
    page.wait_for_selector("#decode-model option[value='model:dec-one']", state="attached")
    page.select_option("#decode-model", "model:dec-one")
    page.wait_for_function("document.querySelector('#decode-nv').value === '64'")  # N − 2 = 119
    page.fill("#decode-trials", "0-3")
    page.click("#decode-start")
    page.get_by_text("trial 3 does not exist (0 … 2)").wait_for()
    assert "the model has 1 neuron(s) but the dataset has 2" in \
        page.inner_text("[id='{\"field\":\"model\",\"type\":\"decode-fb\"}']")

    # ... the ground truth decodes trials 0 and 1
    page.select_option("#decode-model", "model:dec-gt")
    page.fill("#decode-trials", "0, 1")
    page.click("#decode-start")
    page.get_by_text("Decode started.").wait_for()
    page.wait_for_function(f"({TRACES})().includes('decoded path')", timeout=30000)
    names = page.evaluate(TRACES)
    assert names.count("neuron 1") == 2 and names.count("neuron 2") == 2   # raster and rates
    assert "true path" in names
    assert page.evaluate(TITLE).startswith("Trial 0 · model dec-gt")
    assert "done: 2 trial(s)" in page.inner_text("#decode-progress-text")
    assert page.inner_text("#decode-note") == "The true latent path is drawn in black."
    last = page.evaluate("(() => { const y = document.querySelector('#decode-graph "
                         ".js-plotly-plot')._fullData.find(d => d.name === 'decoded path').y;"
                         " return y[y.length - 1]; })()")
    assert abs(last) == 1.0              # absorbing: the path ends on a wall

    # the other trial, then the export of both paths
    page.select_option("#decode-trial", "1")
    page.wait_for_function(f"({TITLE})().startsWith('Trial 1 ')")
    with page.expect_download() as info:
        page.click("#decode-export-npz")
    with np.load(io.BytesIO(open(info.value.path(), "rb").read()), allow_pickle=False) as z:
        assert z["trials"].tolist() == [0, 1] and z["trial_1_x"][-1] in (-1.0, 1.0)
        assert z["fr"].shape[1] == 2
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)
    assert errors == []
    page.close()
