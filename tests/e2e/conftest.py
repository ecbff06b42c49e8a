"""Browser tests: the ``e2e`` marker and a live app on a free port."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FLOWDASH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``python app.py`` on a port and a store, with ``workers`` warm workers (the
    queue's size does not depend on the machine's cores); can be stopped and
    started again."""

    def __init__(self, store: Path, workers: int = 2):
        self.store, self.port, self.workers = store, free_port(), workers
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = self.log = None

    def start(self):
        self.log = open(self.store / "server.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "--port", str(self.port), "--store",
             str(self.store), "--workers", str(self.workers)],
            cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=self.log,
            stderr=subprocess.STDOUT)
        t0 = time.time()
        while True:
            try:
                urllib.request.urlopen(self.url + "/_flowdash/alive", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None or time.time() - t0 > 30:
                    self.proc.kill()
                    raise RuntimeError((self.store / "server.log").read_text())
                time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """The app on a free port with a temporary store (tests may stop and restart it)."""
    server = LiveServer(tmp_path_factory.mktemp("store"))
    server.start()
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture(scope="session")
def live_app(live_server):
    """The running app's URL."""
    return live_server.url


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def wait_for(fn, timeout=30.0, every=0.1, what="condition"):
    """``fn()`` once it is truthy, polled every ``every`` s for at most ``timeout`` s."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def choose(page, selector, label, search=None):
    """Pick the entry of a menu (dcc.Dropdown, :mod:`flowdash.pages.menus`) whose text
    starts with ``label``, typing ``search`` first (the server finds what the menu
    does not hold)."""
    page.click(selector)
    if search:
        page.keyboard.type(search)
    option = page.locator("[role=option]").filter(has_text=label).first
    option.wait_for(timeout=30000)
    option.click()
    t0 = time.time()
    while not page.inner_text(selector).strip().startswith(label):
        if time.time() - t0 > 10:
            raise AssertionError(f"timed out waiting for {label} chosen in {selector}")
        time.sleep(0.1)
