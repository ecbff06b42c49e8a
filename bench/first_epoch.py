"""First-epoch latency in the browser: a click on Start → the first point of the NLL curve.

    python bench/first_epoch.py [--repeats 5] [--workers 2] [--repo PATH]

Starts ``python app.py`` on a temporary store, puts Example 1 into it through the job
API (the 2020 Fig. 3 model at Ne = 256, and 2 × 100 s of its spikes without trial end),
then, in headless Chromium, opens the Fit page, applies the Fig. 3 fit preset (GD on F,
50 epochs, Nv = 64, shown in the paper's layout) and measures in the page, for each
repeat, the time from the click on Start to the first NLL point drawn. Each repeat waits for the previous fit to end.
``--repo`` runs the ``app.py`` of another checkout on the same store (a baseline).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CHROMIUM = os.environ.get("FLOWDASH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Click Start, then wait (in the page) for a new NLL trace with a point; returns ms.
#: The NLL is drawn in the view shown: the preset selects the paper layout, whose
#: first trace is the training NLL; the overlay view has its own NLL graph.
MEASURE = """async () => {
  const view = document.querySelector('#fit-view input[value=paper]');
  const paper = Boolean(view && view.checked);
  const graph = () => document.querySelector(
    (paper ? '#fit-paper-graph' : '#fit-nll-graph') + ' .js-plotly-plot');
  const old = graph() && graph().data ? graph().data[0] : null;
  const t0 = performance.now(), clicked = Date.now() / 1000;
  document.querySelector('#fit-start').click();
  while (true) {
    const g = graph();
    if (g && g.data && g.data.length && g.data[0] !== old && g.data[0].x.length >= 1)
      return [performance.now() - t0, clicked];
    if (performance.now() - t0 > 60000) return [-1, clicked];
    await new Promise(r => requestAnimationFrame(r));
  }
}"""


def prepare(store_path: str) -> None:
    """Example 1's model and data in the store (run here, in-process)."""
    from flowdash import jobs
    from flowdash.pages.model.form import PRESETS
    from flowdash.store import open_store

    store = open_store(store_path)
    store.save_model("fig3", PRESETS["fig3"][1])
    rid = jobs.submit(store, "generation", dict(model="fig3", n_trials=2, duration=100.0,
                                                dt=1e-4, seed=0, with_trial_end=False,
                                                val_fraction=0.5, dataset_name="example1"))
    assert jobs.execute(store, rid) == "done", store.get_run(rid)
    store.close()


def phases(store_path: str, clicked: float, drawn: float) -> str:
    """Where the time went: click → run queued → claimed → epoch 0 stored → drawn."""
    from flowdash.store import open_store

    store = open_store(store_path)
    try:
        rec = store.list_runs("fit")[0]
        first = store.read_epoch(rec["id"], 0) or {}
    finally:
        store.close()
    if not rec.get("started") or "time" not in first:
        return "no epoch 0 yet"
    return (f"queued +{rec['created'] - clicked:.3f}, claimed +{rec['started'] - rec['created']:.3f}, "
            f"epoch 0 stored +{first['time'] - rec['started']:.3f}, drawn "
            f"+{clicked + drawn - first['time']:.3f} s")


def choose(page, selector: str, label: str) -> None:
    """Pick an entry of a menu (a dcc.Dropdown filled by the server; a native select
    in an older checkout run with ``--repo``)."""
    page.wait_for_selector(selector)
    if page.evaluate(f"document.querySelector('{selector}').tagName") == "SELECT":
        page.wait_for_selector(f"{selector} option[value='{label}']", state="attached")
        page.select_option(selector, label)
        return
    page.click(selector)
    option = page.locator("[role=option]").filter(has_text=label).first
    option.wait_for(timeout=30000)
    option.click()
    page.wait_for_function(f"document.querySelector('{selector}').innerText.trim() === "
                           f"'{label}'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repo", default=str(REPO), help="checkout whose app.py to run")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        prepare(store)
        port = free_port()
        cmd = [sys.executable, "app.py", "--port", str(port), "--store", store]
        if Path(args.repo).resolve() == REPO:
            cmd += ["--workers", str(args.workers)]
        log = open(os.path.join(tmp, "server.log"), "w")
        server = subprocess.Popen(cmd, cwd=args.repo, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            t0 = time.time()
            while True:
                try:
                    urllib.request.urlopen(url, timeout=1)
                    break
                except OSError:
                    if server.poll() is not None or time.time() - t0 > 60:
                        raise RuntimeError(open(os.path.join(tmp, "server.log")).read())
                    time.sleep(0.2)
            time.sleep(8)  # let the workers load their kernels (they start with the server)
            times = []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(url + "/fit")
                choose(page, "#fit-dataset", "example1")
                page.click("#fit-preset")
                page.wait_for_function(
                    "(e => (e.value || e.innerText || '').trim() === 'fig3')"
                    "(document.querySelector('#fit-init-model'))")
                for k in range(args.repeats):
                    ms, clicked = page.evaluate(MEASURE)
                    times.append(ms / 1000)
                    print(f"repeat {k + 1}: {ms / 1000:.3f} s from the click to the first "
                          f"NLL point ({phases(store, clicked, ms / 1000)})", flush=True)
                    page.wait_for_function(
                        "document.querySelector('#fit-status').innerText.toUpperCase()"
                        ".includes('DONE')", timeout=120000)
                browser.close()
            print(f"median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
                  f"max {max(times):.3f} s over {len(times)} clicks")
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


if __name__ == "__main__":
    main()
