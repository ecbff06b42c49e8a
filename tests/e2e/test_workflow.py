"""The lecture workflow in a real browser: Fig. 3 preset -> data -> fits -> runs."""
import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
# The README's screenshot is refreshed only on request, so a test run leaves the tree clean:
#   FLOWDASH_SCREENSHOT=docs/fit-page.png python -m pytest tests/e2e
SCREENSHOT = os.environ.get("FLOWDASH_SCREENSHOT")
POINTS = ("() => { const g = document.querySelector('#fit-nll-graph .js-plotly-plot');"
          " return g && g.data && g.data.length ? g.data[0].x.length : 0; }")


def wait_for(fn, timeout=30.0, every=0.1, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def test_fig3_workflow(live_app, browser, tmp_path):
    t_start = time.time()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # Model: the Fig. 3 preset on a small grid, saved as ground truth
    page.goto(live_app + "/")
    page.get_by_role("button", name="2020 Fig. 3: double well").click()
    page.wait_for_function("document.querySelector('#model-ne').value === '256'")
    page.fill("#model-ne", "16")
    page.fill("#model-name", "fig3-small")
    page.click("#model-save")           # saves the fields as they are at the click
    page.get_by_text("Saved model “fig3-small”").wait_for()

    # Data: 2 × 10 s from the saved model (background job with progress)
    page.get_by_role("link", name="Data").click()
    page.wait_for_selector("#data-model option[value='fig3-small']", state="attached")
    page.select_option("#data-model", "fig3-small")
    page.fill("#data-trials", "2")
    page.fill("#data-duration", "10")
    page.fill("#data-name", "fig3-data")
    page.click("#data-generate")
    page.get_by_text("Saved dataset “fig3-data”").wait_for(timeout=60000)
    wait_for(lambda: "done: 2 trials" in page.inner_text("#data-progress"), 10, what="progress done")
    page.wait_for_selector("#data-raster .js-plotly-plot")

    # Two tabs generate the same dataset name at once: both are queued jobs; one saves
    # it, the other fails, and its page says so at once, with the reason
    other = browser.new_page(viewport={"width": 1600, "height": 1000})
    other.on("pageerror", lambda e: errors.append(str(e)))
    other.goto(live_app + "/data")
    for tab in (page, other):
        tab.wait_for_selector("#data-model option[value='fig3-small']", state="attached")
        tab.select_option("#data-model", "fig3-small")
        tab.fill("#data-trials", "20")
        tab.fill("#data-duration", "100")
        tab.fill("#data-name", "twin")
    page.click("#data-generate")
    other.click("#data-generate")
    outcomes = []
    for tab in (page, other):
        wait_for(lambda: "Saved dataset “twin”" in tab.inner_text("#data-status")
                 or "Generation failed" in tab.inner_text("#data-status"), 60, what="outcome")
        outcomes.append(tab.inner_text("#data-status"))
    assert sum("Saved dataset “twin”" in o for o in outcomes) == 1, outcomes
    failed = next(o for o in outcomes if "Generation failed" in o)
    assert "could not be saved" in failed and "“twin” exists" in failed
    other.close()

    # Fit 1: 5 epochs; the curve grows while the run is running
    page.get_by_role("link", name="Fit").click()
    page.wait_for_selector("#fit-dataset option[value='fig3-data']", state="attached")
    page.select_option("#fit-dataset", "fig3-data")
    page.click("#fit-preset")
    page.wait_for_function("document.querySelector('#fit-init-model').value === 'fig3-small'")
    page.fill("#fit-epochs", "5")
    page.fill("#fit-pace", "0.25")  # a lecture's pace, so the curve visibly grows
    page.fill("#fit-name", "short")
    page.click("#fit-start")
    seen_running = []

    def five_points():
        n = page.evaluate(POINTS)
        if "RUNNING" in page.inner_text("#fit-status").upper():
            seen_running.append(n)
        return n >= 5
    wait_for(five_points, 60, what="5 NLL points")
    assert any(n >= 2 for n in seen_running), seen_running   # it grew live
    page.get_by_text("epoch 5 of 5").wait_for(timeout=30000)
    wait_for(lambda: "DONE" in page.inner_text("#fit-status").upper(), 30, what="done")
    assert page.evaluate(POINTS) == 6                          # epochs 0..5

    # Fit 2: long; screenshot mid-run, then cancel and keep the partial curve
    page.fill("#fit-epochs", "2000")
    page.fill("#fit-name", "long")
    page.get_by_label("D", exact=True).check()  # its curve is extended live too
    page.click("#fit-start")
    page.wait_for_function("document.querySelector('#fit-run-select').selectedOptions[0]"
                           ".textContent.startsWith('long')")
    wait_for(lambda: page.evaluate(POINTS) >= 14 and "RUNNING" in
             page.inner_text("#fit-status").upper(), 60, what="long fit running")
    shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "fit-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.click("#fit-cancel")
    wait_for(lambda: "CANCELLED" in page.inner_text("#fit-status").upper(), 30,
             what="cancelled")
    partial = page.evaluate(POINTS)
    assert 2 < partial < 2001
    d_points = page.evaluate("() => document.querySelector('#fit-params-graph .js-plotly-plot').data[0].x.length")
    assert d_points >= partial - 1, (d_points, partial)
    assert "cancelled" in page.inner_text("#fit-progress-text")

    # The queue: two workers are busy, so a third fit waits in line, and can be cancelled there
    for name in ("q1", "q2", "q3"):
        page.fill("#fit-name", name)
        page.click("#fit-start")
        page.wait_for_function("document.querySelector('#fit-run-select').selectedOptions[0]"
                               f".textContent.startsWith('{name}')")
    page.get_by_text("queued: 1st in line (2 of 2 workers busy)").wait_for(timeout=30000)
    page.click("#fit-cancel")
    page.get_by_text("Cancelled before it started.").wait_for()
    wait_for(lambda: "CANCELLED" in page.inner_text("#fit-status").upper(), 30, what="q3 cancelled")
    for name in ("q2", "q1"):                      # free the workers again
        value = page.evaluate("n => [...document.querySelectorAll('#fit-run-select option')]"
                              ".find(o => o.textContent.startsWith(n)).value", name)
        page.select_option("#fit-run-select", value)
        wait_for(lambda: "RUNNING" in page.inner_text("#fit-status").upper(), 30, what=name)
        page.click("#fit-cancel")
        wait_for(lambda: "CANCELLED" in page.inner_text("#fit-status").upper(), 30,
                 what=f"{name} cancelled")

    # Runs: both fits with their statuses, the generation run too
    page.get_by_role("link", name="Runs").click()
    table = page.locator("#runs-table")
    table.get_by_text("long").wait_for()
    rows = {r.split("\t")[1] if "\t" in r else r: r for r in
            table.locator("tbody tr").all_inner_texts()}
    text = "\n".join(rows.values()).lower()
    assert "short" in text and "long" in text and "generate fig3-data" in text
    long_row = next(r for r in rows.values() if "long" in r).lower()
    short_row = next(r for r in rows.values() if "short" in r).lower()
    assert "cancelled" in long_row and "done" in short_row
    assert not errors, errors
    assert time.time() - t_start < 180
