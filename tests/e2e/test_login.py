"""A password-protected server in a real browser: the login page, then the app."""
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO, free_port

pytestmark = pytest.mark.e2e
PASSWORD = "lecture-hall-2026"


@pytest.fixture(scope="module")
def guarded_app(tmp_path_factory):
    store = tmp_path_factory.mktemp("guarded")
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", FLOWDASH_PASSWORD=PASSWORD)
    log = open(store / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port),
                             "--store", str(store / "s"), "--workers", "0"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        try:
            urllib.request.urlopen(url + "/login", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.time() - t0 > 30:
                proc.kill()
                raise RuntimeError((store / "server.log").read_text())
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()


def test_login_then_the_app_then_sign_out(guarded_app, browser):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(guarded_app + "/runs")
    assert "/login" in page.url
    page.fill("#password", "not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong password.").wait_for()
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(guarded_app + "/runs")
    page.get_by_text("No runs yet").wait_for(timeout=20000)      # a callback answered
    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url("**/login")
    assert not errors, errors
