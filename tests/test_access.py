"""Access rules: who may reach the server, the login, read-only mode, the Host header."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import app as app_module
from flowdash import access
from flowdash.access import Access, AccessError

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def keep_the_current_app():
    """Dash's request handling sets its app context variable in the caller's context;
    undo it, so that other tests' callbacks keep finding their own app."""
    from dash._get_app import app_context
    previous = app_context.get(None)
    yield
    app_context.set(previous)


def test_binding_beyond_localhost_needs_a_password_or_read_only(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOWDASH_PASSWORD", raising=False)
    assert access.configure("127.0.0.1") == Access(allowed_hosts=access.LOCAL_NAMES)
    for host in ("0.0.0.0", "192.168.1.20", "::"):
        with pytest.raises(AccessError, match=f"refusing to listen on {host}: anyone who can "
                                              "reach it could start, cancel and delete runs"):
            access.configure(host)
    assert access.configure("0.0.0.0", read_only=True).read_only
    monkeypatch.setenv("FLOWDASH_PASSWORD", PASSWORD)
    assert access.configure("192.168.1.20").password == PASSWORD
    (tmp_path / "pw").write_text("from a file long enough\nsecond line ignored\n")
    assert access.configure("0.0.0.0", password_file=str(tmp_path / "pw")).password == \
        "from a file long enough"
    with pytest.raises(AccessError, match="the password has 5 characters; use at least 8"):
        access.configure("0.0.0.0", password="short")
    with pytest.raises(AccessError, match="cannot read the password file"):
        access.configure("0.0.0.0", password_file=str(tmp_path / "missing"))


def test_app_refuses_to_start_and_says_why(monkeypatch):
    env = {k: v for k, v in __import__("os").environ.items() if k != "FLOWDASH_PASSWORD"}
    out = subprocess.run([sys.executable, "app.py", "--host", "0.0.0.0", "--workers", "0"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "refusing to listen on 0.0.0.0" in out.stderr and "--read-only" in out.stderr


def test_allowed_hosts():
    assert access.default_hosts("10.1.2.3") == ("localhost", "127.0.0.1", "::1", "10.1.2.3")
    wild = access.default_hosts("0.0.0.0")
    assert "127.0.0.1" in wild and len(wild) > 3
    rules = access.configure("127.0.0.1", allowed_hosts="dash.lab.org, .class.edu")
    allowed = rules.allowed_hosts
    assert access.host_allowed("localhost:8050", allowed)
    assert access.host_allowed("[::1]:8050", allowed)
    assert access.host_allowed("DASH.lab.org", allowed)
    assert access.host_allowed("room1.class.edu:80", allowed)
    assert not access.host_allowed("attacker.example:8050", allowed)
    assert not access.host_allowed("dash.lab.org.attacker.example", allowed)
    assert not access.host_allowed("", allowed)


def payload(*inputs):
    return {"output": "x.children", "outputs": {"id": "x", "property": "children"},
            "inputs": list(inputs), "state": [], "changedPropIds": []}


def test_what_counts_as_an_action():
    start = {"id": "fit-start", "property": "n_clicks", "value": 1}
    poll = {"id": "fit-interval", "property": "n_intervals", "value": 3}
    upload = {"id": "data-upload", "property": "contents", "value": "data:..."}
    preset = [{"id": {"type": "model-preset", "key": "fig3"}, "property": "n_clicks", "value": 1}]
    export = {"id": "runs-export-npz", "property": "n_clicks", "value": 1}
    unknown = {"id": "some-new-button", "property": "n_clicks", "value": 1}
    assert access.is_action(payload(start)) and access.is_action(payload(poll, upload))
    assert access.is_action(payload(unknown))            # a new button is refused until listed
    assert not access.is_action(payload(poll)) and not access.is_action(payload(preset, poll))
    assert not access.is_action(payload(export)) and not access.is_action({})
    # what only changes the view: a run's row, the Fig. 3 data preset; a delete's
    # confirmation acts
    row = [{"id": {"type": "runs-row", "run": "0123456789ab"}, "property": "n_clicks", "value": 1}]
    data_preset = {"id": "data-preset", "property": "n_clicks", "value": 1}
    confirmed = {"id": "runs-delete-confirm", "property": "submit_n_clicks", "value": 1}
    assert not access.is_action(payload(row)) and not access.is_action(payload(data_preset))
    assert access.is_action(payload(confirmed))


def client_for(tmp_path, rules, name="store"):
    dash_app = app_module.create_app(tmp_path / name, rules)
    # Dash gives its page callbacks to the first app of a process only, so a callback of a
    # later app may answer 500 here; what matters is whether the guard let it through.
    dash_app.server.config["PROPAGATE_EXCEPTIONS"] = False
    return dash_app, dash_app.server.test_client()


def post_callback(client, *inputs, **kw):
    return client.post("/_dash-update-component", data=json.dumps(payload(*inputs)),
                       content_type="application/json", **kw)


def test_password_login_guards_pages_callbacks_and_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(access.time, "sleep", lambda s: None)   # the pause after a wrong try
    _, client = client_for(tmp_path, Access(password=PASSWORD))
    page = client.get("/fit")
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/fit"
    for path in ("/_dash-layout", "/_dash-dependencies"):
        assert client.get(path).status_code == 401
    poll = {"id": "fit-interval", "property": "n_intervals", "value": 1}
    assert post_callback(client, poll).status_code == 401
    form = client.get("/login?next=/fit")
    assert form.status_code == 200 and b'type="password"' in form.data
    wrong = client.post("/login?next=/fit", data={"password": "nope"})
    assert wrong.status_code == 401 and b"Wrong password." in wrong.data
    right = client.post("/login?next=/fit", data={"password": PASSWORD})
    assert right.status_code == 302 and right.headers["Location"] == "/fit"
    assert client.get("/fit").status_code == 200
    assert client.get("/_dash-layout").status_code == 200
    assert post_callback(client, poll).status_code not in (401, 403)
    assert client.post("/login?next=//evil.example", data={"password": PASSWORD}) \
        .headers["Location"] == "/"                          # no open redirect
    client.get("/logout")
    assert client.get("/_dash-layout").status_code == 401


def test_a_changed_password_ends_the_sessions(tmp_path):
    _, client = client_for(tmp_path, Access(password=PASSWORD))
    client.post("/login", data={"password": PASSWORD})
    assert client.get("/_dash-layout").status_code == 200
    _, other = client_for(tmp_path, Access(password=PASSWORD + "!"))   # same store, same key
    with client.session_transaction() as sess:
        token = dict(sess)
    with other.session_transaction() as sess:
        sess.update(token)
    assert other.get("/_dash-layout").status_code == 401


def test_read_only_refuses_actions_and_shows_the_controls_disabled(tmp_path):
    dash_app, client = client_for(tmp_path, Access(read_only=True))
    start = {"id": "fit-start", "property": "n_clicks", "value": 1}
    refused = post_callback(client, start)
    assert refused.status_code == 403 and "Read-only" in refused.get_json()["message"]
    for action in ({"id": "runs-delete", "property": "n_clicks", "value": 1},
                   {"id": "data-upload", "property": "contents", "value": "data:,x"},
                   {"id": "model-save", "property": "n_clicks", "value": 1}):
        assert post_callback(client, action).status_code == 403
    poll = {"id": "fit-interval", "property": "n_intervals", "value": 1}
    assert post_callback(client, poll).status_code not in (401, 403)
    index = client.get("/fit").data.decode()
    assert all(f"#{i}" in index for i in access.ACTION_IDS) and "pointer-events: none" in index
    layout = client.get("/_dash-layout").data.decode()
    assert access.READ_ONLY_NOTE in layout


def test_host_header_and_other_machines(tmp_path):
    _, client = client_for(tmp_path, Access())
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400
    assert client.get("/model", headers={"Host": "127.0.0.1:8050"}).status_code == 200
    home = client.get("/", headers={"Host": "127.0.0.1:8050"})       # "/" opens the Model page
    assert home.status_code == 302 and home.headers["Location"].endswith("/model")
    far = client.get("/", environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert far.status_code == 403 and b"password or --read-only" in far.data
    _, watched = client_for(tmp_path, Access(read_only=True), "store2")
    assert watched.get("/model", environ_base={"REMOTE_ADDR": "10.0.0.5"}).status_code == 200


def test_wsgi_target_reads_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWDASH_STORE", str(tmp_path / "w"))
    monkeypatch.setenv("FLOWDASH_READ_ONLY", "1")
    monkeypatch.setenv("FLOWDASH_ALLOWED_HOSTS", "dash.lab.org")
    monkeypatch.delenv("FLOWDASH_PASSWORD", raising=False)
    server = app_module.wsgi()
    rules = server.config["FLOWDASH_ACCESS"]
    assert rules.read_only and "dash.lab.org" in rules.allowed_hosts and rules.password is None
    client = server.test_client()
    assert client.get("/model", headers={"Host": "dash.lab.org"}).status_code == 200


def test_every_clickable_control_is_classified(tmp_path):
    """A new button is refused in read-only mode until it is listed as a view control
    (VIEW_CLICKS) or drawn disabled there too (ACTION_IDS)."""
    code = ("import json, sys, app; a = app.create_app(sys.argv[1]); "
            "print(a.server.test_client().get('/_dash-dependencies').data.decode())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], cwd=REPO,
                         capture_output=True, text=True, check=True, timeout=120)
    clicks = set()
    for cb in json.loads(out.stdout.strip().splitlines()[-1]):
        for i in cb["inputs"]:
            if i["property"] in access.CLICK_PROPS:
                cid = json.loads(i["id"])["type"] if i["id"].startswith("{") else i["id"]
                clicks.add(cid)
    assert clicks == set(access.VIEW_CLICKS) | set(access.ACTION_IDS)
