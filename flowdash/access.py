"""Who may reach the dashboard, and what they may do there.

* Bound to this machine only (127.0.0.1, ::1, localhost): open, as before.
* Bound to anything else: a password (``FLOWDASH_PASSWORD`` or a password
  file) or read-only mode is required, or the server refuses to start.
* A password: ``/login`` asks for it once per browser session; every other
  request (pages, callbacks, downloads, scripts) is refused without it.
* Read-only (a class watching a lecture): runs can be watched live, but
  every callback that a button, an upload or an Enter key triggers is refused
  unless it only changes what is shown (:data:`VIEW_CLICKS`); the action
  controls (:data:`ACTION_IDS`) are drawn disabled, with a note.
* The ``Host`` header must name this server (:attr:`Access.allowed_hosts`),
  so a web page elsewhere cannot reach it by DNS rebinding.
* A server with neither a password nor read-only mode answers only requests
  from this machine (a WSGI server bound elsewhere, e.g. gunicorn).

Importable without dash (the Flask hooks are installed on ``app.server``).
"""
from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import os
import socket
import time
from dataclasses import dataclass
from urllib.parse import quote

from flowdash.pages.compare import ids as compare_ids
from flowdash.pages.data import ids as data_ids
from flowdash.pages.data import nwb_ids
from flowdash.pages.decode import ids as decode_ids
from flowdash.pages.fit import ids as fit_ids
from flowdash.pages.model import ids as model_ids
from flowdash.pages.runs import ids as runs_ids
from flowdash.pages.selection import ids as sel_ids

#: Names of this machine that are always allowed in the Host header.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
#: Shortest password accepted.
MIN_PASSWORD = 8
#: Input properties through which a user acts (clicks, uploads, Enter).
CLICK_PROPS = frozenset({"n_clicks", "n_submit", "contents", "submit_n_clicks",
                         "n_clicks_timestamp"})
#: Clickable components that only change what is shown (allowed when read-only).
VIEW_CLICKS = frozenset({model_ids.PRESET, model_ids.LOAD, model_ids.ADD_NEURON,
                         model_ids.REMOVE, model_ids.REPLICATE, data_ids.PRESET, fit_ids.PRESET,
                         fit_ids.EXPORT_PNG, fit_ids.PRESENT, fit_ids.SETTINGS_TOGGLE,
                         runs_ids.ROW, runs_ids.EXPORT_NPZ, runs_ids.EXPORT_JSON,
                         sel_ids.SETTINGS_TOGGLE, sel_ids.FCA_PRESET, sel_ids.EXPORT_NPZ,
                         sel_ids.EXPORT_JSON, decode_ids.EXPORT_NPZ, decode_ids.EXPORT_JSON,
                         compare_ids.PRESENT, compare_ids.SETTINGS_TOGGLE,
                         # the NWB form: opening a sample and previewing change nothing stored
                         nwb_ids.PMD, nwb_ids.PREVIEW, nwb_ids.UNITS_ALL, nwb_ids.UNITS_NONE,
                         nwb_ids.ADD_FILTER, nwb_ids.F_REMOVE, nwb_ids.ADD_CONDITION,
                         nwb_ids.C_REMOVE})
#: Controls that change the store: drawn disabled when read-only (a delete's
#: confirmation dialog is refused too, though its button already is).
ACTION_IDS = (model_ids.SAVE, model_ids.DELETE, model_ids.DELETE_CONFIRM, data_ids.GENERATE,
              data_ids.CANCEL, data_ids.UPLOAD, nwb_ids.UPLOAD, nwb_ids.SAVE, data_ids.DELETE,
              data_ids.DELETE_CONFIRM, fit_ids.START, fit_ids.CANCEL, fit_ids.CONTINUE,
              runs_ids.CANCEL, runs_ids.DELETE, runs_ids.DELETE_CONFIRM, runs_ids.CONTINUE,
              sel_ids.START, sel_ids.PAIR, sel_ids.CANCEL, sel_ids.CONTINUE, sel_ids.SAVE,
              decode_ids.START, decode_ids.CANCEL, compare_ids.START, compare_ids.CANCEL)
READ_ONLY_NOTE = ("Read-only: you can watch every run live; starting, cancelling, deleting "
                  "and saving are switched off on this server.")
SESSION_KEY = "flowdash-auth"


class AccessError(ValueError):
    """The server must not start with these settings (the message says why)."""


@dataclass(frozen=True)
class Access:
    """Who may reach the server and what they may do.

    Attributes
    ----------
    password : str or None
        Required at ``/login`` when set.
    read_only : bool
        Nothing can be started, cancelled, deleted or saved.
    allowed_hosts : tuple of str
        Accepted ``Host`` header names (a leading dot also accepts subdomains).
    """

    password: str | None = None
    read_only: bool = False
    allowed_hosts: tuple[str, ...] = LOCAL_NAMES


def is_loopback(host: str | None) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if not host:
        return False
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_password(password: str | None = None, password_file: str | None = None) -> str | None:
    """The password from a file (its first line) or the given text; None if neither."""
    if password_file:
        try:
            with open(password_file, encoding="utf-8") as fh:
                password = fh.readline().rstrip("\r\n")
        except OSError as exc:
            raise AccessError(f"cannot read the password file {password_file!r}: "
                              f"{exc.strerror}") from None
    if password is None or password == "":
        return None
    if len(password) < MIN_PASSWORD:
        raise AccessError(f"the password has {len(password)} characters; use at least "
                          f"{MIN_PASSWORD}")
    return password


def default_hosts(host: str) -> tuple[str, ...]:
    """The bound host and this machine's names (all its addresses for 0.0.0.0 / ::)."""
    names = list(LOCAL_NAMES)
    if host in ("0.0.0.0", "::", ""):
        names += [socket.gethostname(), socket.getfqdn()]
        try:
            import psutil
            names += [a.address.split("%")[0] for addrs in psutil.net_if_addrs().values()
                      for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6)]
        except Exception:  # pragma: no cover - psutil missing: names only
            pass
    else:
        names.append(host)
    return tuple(dict.fromkeys(n.lower().strip("[]") for n in names if n))


def configure(host: str, password: str | None = None, password_file: str | None = None,
              read_only: bool = False, allowed_hosts=None) -> Access:
    """The access rules of a server bound to ``host``; raises AccessError to refuse.

    ``password`` defaults to ``FLOWDASH_PASSWORD``; ``allowed_hosts`` (names,
    or a comma-separated text) to :func:`default_hosts`.
    """
    if password is None:
        password = os.environ.get("FLOWDASH_PASSWORD")
    password = read_password(password, password_file)
    if not is_loopback(host) and not password and not read_only:
        raise AccessError(
            f"refusing to listen on {host}: anyone who can reach it could start, cancel and "
            "delete runs. Set a password (FLOWDASH_PASSWORD=… or --password-file FILE), or "
            "pass --read-only to let others watch without changing anything, or bind to "
            "127.0.0.1.")
    if isinstance(allowed_hosts, str):
        allowed_hosts = [h for h in allowed_hosts.split(",") if h.strip()]
    hosts = tuple(h.strip().lower() for h in allowed_hosts) if allowed_hosts else \
        default_hosts(host)
    return Access(password=password, read_only=bool(read_only),
                  allowed_hosts=tuple(dict.fromkeys(LOCAL_NAMES + hosts)))


def from_env() -> Access:
    """Access of a server started by a WSGI server (gunicorn), from the environment:
    ``FLOWDASH_PASSWORD`` / ``FLOWDASH_PASSWORD_FILE``, ``FLOWDASH_READ_ONLY=1``,
    ``FLOWDASH_ALLOWED_HOSTS`` (comma separated). The bind address is not known
    here, so requests from other machines need a password or read-only mode."""
    return configure("127.0.0.1", password_file=os.environ.get("FLOWDASH_PASSWORD_FILE"),
                     read_only=os.environ.get("FLOWDASH_READ_ONLY", "") not in ("", "0"),
                     allowed_hosts=os.environ.get("FLOWDASH_ALLOWED_HOSTS"))


# ---------------------------------------------------------------------------
# the Flask side
# ---------------------------------------------------------------------------
def host_allowed(host_header: str, allowed: tuple[str, ...]) -> bool:
    """Does a Host header (``name[:port]``) name an allowed host?"""
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":")[0]
    return any(host == a or (a.startswith(".") and (host.endswith(a) or host == a[1:]))
               for a in allowed)


def _component(entry) -> str | None:
    cid = entry.get("id")
    return cid.get("type") if isinstance(cid, dict) else cid


def is_action(payload: dict) -> bool:
    """Does a callback request act (a click, an upload or Enter on anything but a view control)?

    An upload read as a State counts too (the NWB form receives its file after
    a check in the browser)."""
    def entries(items):
        for item in items or []:
            if isinstance(item, list):
                yield from entries(item)
            elif isinstance(item, dict):
                yield item
    return any(e.get("property") in CLICK_PROPS and _component(e) not in VIEW_CLICKS
               for e in entries(payload.get("inputs"))) or \
        any(e.get("property") == "contents" and e.get("value") and _component(e) not in VIEW_CLICKS
            for e in entries(payload.get("state")))


def _token(secret: str, password: str) -> str:
    """What a signed-in session holds: changes when the password or the key changes."""
    return hmac.new(str(secret).encode(), password.encode(), hashlib.sha256).hexdigest()


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


def login_page(error: str = "", next_url: str = "/") -> str:
    note = f'<p class="err">{html.escape(error)}</p>' if error else ""
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>flowdash · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;background:#ecf0f1;display:flex;
justify-content:center;align-items:center;height:100vh;margin:0}}
form{{background:#fff;padding:2rem;border-radius:.4rem;box-shadow:0 2px 8px #0002;width:18rem}}
h1{{font-size:1.3rem;margin:0 0 1rem;color:#2c3e50}}input{{width:100%;box-sizing:border-box;
padding:.5rem;margin:.3rem 0 1rem;font-size:1rem}}button{{width:100%;padding:.5rem;
font-size:1rem;background:#2c3e50;color:#fff;border:0;border-radius:.3rem}}
.err{{color:#c0392b;margin:0 0 1rem}}</style></head><body>
<form method="post" action="/login?next={quote(next_url)}"><h1>flowdash</h1>{note}
<label for="password">Password</label>
<input id="password" name="password" type="password" autofocus autocomplete="current-password">
<button type="submit">Sign in</button></form></body></html>"""


def install(app, access: Access) -> None:
    """Guard a Dash app's Flask server with ``access`` (and add /login, /logout)."""
    from flask import jsonify, redirect, request, session

    server = app.server
    server.config.update(FLOWDASH_ACCESS=access, SESSION_COOKIE_SAMESITE="Lax",
                         SESSION_COOKIE_HTTPONLY=True)

    def signed_in() -> bool:
        token = session.get(SESSION_KEY)
        return bool(token) and hmac.compare_digest(token, _token(server.secret_key,
                                                                 access.password))

    @server.before_request
    def guard():
        if not host_allowed(request.host, access.allowed_hosts):
            return (f"Host {request.host!r} is not served here (allowed: "
                    f"{', '.join(access.allowed_hosts)}; see --allowed-hosts).", 400)
        if request.path in ("/login", "/logout"):
            return None
        if access.password:
            if not signed_in():
                if request.method == "GET" and not request.path.startswith("/_"):
                    return redirect("/login?next=" + quote(request.full_path.rstrip("?")))
                return jsonify(message="sign in first (the session has ended)"), 401
        elif not access.read_only and not is_loopback(request.remote_addr):
            return ("This flowdash server answers only its own machine; start it with a "
                    "password or --read-only to serve others.", 403)
        if access.read_only and request.path.endswith("_dash-update-component") \
                and is_action(request.get_json(silent=True) or {}):
            return jsonify(message=READ_ONLY_NOTE), 403
        return None

    @server.route("/login", methods=["GET", "POST"])
    def login():
        next_url = _safe_next(request.args.get("next"))
        if not access.password:
            return redirect(next_url)
        if request.method == "POST":
            given = request.form.get("password", "")
            if hmac.compare_digest(given.encode(), access.password.encode()):
                session.clear()
                session[SESSION_KEY] = _token(server.secret_key, access.password)
                return redirect(next_url)
            time.sleep(1.0)  # slows guessing down
            return login_page("Wrong password.", next_url), 401
        return login_page("", next_url)

    @server.route("/logout")
    def logout():
        session.pop(SESSION_KEY, None)
        return redirect("/login")

    if access.read_only:
        rule = ", ".join(f"#{i}" for i in ACTION_IDS)
        style = (f"<style>{rule} {{pointer-events: none !important; opacity: .45 !important;}}"
                 "</style>")
        app.index_string = app.index_string.replace("{%css%}", "{%css%}" + style, 1)
