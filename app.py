"""flowdash: the dashboard.

    python app.py [--host 127.0.0.1] [--port 8050] [--store FOLDER|redis://HOST:PORT/DB]
                  [--workers N] [--password-file FILE] [--read-only] [--allowed-hosts NAMES]

``main`` checks who may reach the server (:mod:`flowdash.access`), starts the
worker pool that runs the jobs (N warm worker processes, default one per
core; none when ``FLOWDASH_BROKER`` sends jobs to Celery workers) and runs
the server; the pool stops with it. The run store is a folder (the default,
``./flowdash-store``) or a Redis database shared by several servers and
workers (:func:`flowdash.store.open_store`). ``create_app(store, access)``
builds the app (tests use it in-process or start this file as a subprocess);
``wsgi()`` is the target of a WSGI server (``gunicorn 'app:wsgi()'``): the
app configured from the environment, without a worker pool. The app needs
no background-callback manager: every job goes through :mod:`flowdash.jobs`.
Importing this module has no side effects.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
from pathlib import Path

DEFAULT_STORE = "flowdash-store"
PAGES = ("model", "data", "fit", "selection", "decode", "runs", "compare")
log = logging.getLogger("flowdash")


def _on_callback_error(err: Exception):
    """Global callback error handler: log it, show a short note, no traceback."""
    from dash import set_props

    from flowdash import ids

    log.exception("callback failed", exc_info=err)
    set_props(ids.ERROR_TOAST, {"is_open": True,
                                "children": "That request could not be completed "
                                            f"({type(err).__name__}). Other work is not "
                                            "affected; check the inputs and try again."})


def secret_key(store) -> str:
    """``FLOWDASH_SECRET_KEY``, else the key kept in the run store (created once:
    ``<folder>/secret_key``, mode 0600, or a key in Redis).

    Every server process on the same store signs sessions with the same key, so
    a sign-in holds across server processes (gunicorn), machines and restarts.
    """
    return os.environ.get("FLOWDASH_SECRET_KEY") or store.secret_key()


def create_app(store_location: str | os.PathLike = DEFAULT_STORE, access=None):
    """Build the Dash app on the run store at ``store_location`` (a folder or
    ``redis://host:port/db``; raises :class:`flowdash.store.StoreError` if it
    cannot be used).

    ``access`` (:class:`flowdash.access.Access`) defaults to this machine only.
    """
    import dash
    import dash_bootstrap_components as dbc
    from dash import Input, Output, dcc, html

    from flowdash import access as access_rules
    from flowdash import ids, settings
    from flowdash.store import open_store

    access = access or access_rules.Access()
    store = open_store(store_location)
    try:
        location, key = store.location, secret_key(store)
    finally:
        store.close()
    here = Path(__file__).resolve().parent
    app = dash.Dash(
        __name__,
        # Pages are the packages flowdash.pages.<page>; they are imported
        # below as ordinary modules so each registers its callbacks exactly
        # once (Dash's own page loader re-executes files), hence pages_folder="".
        use_pages=True,
        pages_folder="",
        assets_folder=str(here / "assets"),
        # Bootswatch "flatly" (Bootstrap 5.3) is served from assets/ so the
        # app works offline (a lecture hall projector); no CDN request.
        suppress_callback_exceptions=True,
        title="flowdash",
        on_error=_on_callback_error,
        # the pages ask this every few seconds and say when the server is gone
        health_endpoint="_flowdash/alive",
    )
    app.server.config["FLOWDASH_STORE"] = location
    app.server.secret_key = key
    # uploads arrive base64-encoded (4/3 of the file) inside a JSON request
    app.server.config["MAX_CONTENT_LENGTH"] = settings.MAX_UPLOAD_BYTES * 4 // 3 + 2**20
    access_rules.install(app, access)
    for page in PAGES:
        importlib.import_module(f"flowdash.pages.{page}").register()

    @app.server.before_request
    def _home():
        """Every page has a path named after it; "/" opens the first (Model)."""
        from flask import redirect, request

        if request.path == "/":
            return redirect(app.get_relative_path(f"/{PAGES[0]}"))
        return None

    extra = [html.A("Sign out", href="/logout", className="navbar-text small ms-3 text-light")] \
        if access.password else []
    nav = dbc.Navbar(dbc.Container([
        dbc.NavbarBrand([html.Span("flow", className="brand-a"),
                         html.Span("dash", className="brand-b")], href="/model"),
        dbc.Nav([dbc.NavItem(dbc.NavLink(p["name"], href=p["relative_path"], active="exact"))
                 for p in dash.page_registry.values()], navbar=True, className="me-auto"),
        html.Span("Langevin latent dynamics of spike trains", className="navbar-text small"),
        *extra,
    ], fluid=True), color="primary", dark=True, className="mb-3", id=ids.NAVBAR)
    note = [dbc.Alert(access_rules.READ_ONLY_NOTE, color="info", className="mx-3 py-2",
                      id=ids.READ_ONLY_NOTE)] if access.read_only else []
    app.layout = html.Div([
        dcc.Location(id=ids.URL),
        dbc.Alert(id=ids.CONNECTION, color="danger", is_open=False, className="connection-banner"),
        dcc.Interval(id=ids.HEARTBEAT, interval=2000),
        dcc.Store(id=ids.ACTIVE_FIT, storage_type="local"),
        dcc.Store(id=ids.ACTIVE_DATASET, storage_type="local"),
        dcc.Store(id=ids.ACTIVE_GEN, storage_type="local"),
        dcc.Store(id=ids.ACTIVE_DECODE, storage_type="local"),
        nav,
        *note,
        dbc.Toast(id=ids.ERROR_TOAST, header="Request failed", is_open=False, dismissable=True,
                  icon="danger", duration=8000,
                  style={"position": "fixed", "top": 70, "right": 20, "zIndex": 2000}),
        dash.page_container,
    ])
    # Is the server there? (assets/flowdash.js: a banner, and no live status while it is not)
    app.clientside_callback(
        dash.ClientsideFunction("flowdash", "checkConnection"),
        Output(ids.CONNECTION, "children"), Output(ids.CONNECTION, "is_open"),
        Output(ids.CONNECTION, "color"), Input(ids.HEARTBEAT, "n_intervals"))
    return app


def wsgi():
    """The Flask server for a WSGI server: ``gunicorn --threads 8 'app:wsgi()'``.

    Configured from the environment: ``FLOWDASH_STORE``, ``FLOWDASH_PASSWORD``
    (or ``FLOWDASH_PASSWORD_FILE``), ``FLOWDASH_READ_ONLY=1``,
    ``FLOWDASH_ALLOWED_HOSTS``, ``FLOWDASH_BROKER``. It starts no workers:
    run ``python -m flowdash.worker --store …`` (or Celery workers) beside it,
    so that several server processes never start several pools.
    """
    from flowdash import access

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return create_app(os.environ.get("FLOWDASH_STORE", DEFAULT_STORE), access.from_env()).server


def main(argv=None):
    from flowdash import access

    parser = argparse.ArgumentParser(description="flowdash dashboard")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    parser.add_argument("--store", default=os.environ.get("FLOWDASH_STORE", DEFAULT_STORE),
                        help="the run store: a folder or redis://host:port/db (default "
                             "$FLOWDASH_STORE or ./flowdash-store)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="jobs that run at once, each in a warm worker process; more wait "
                             "in a queue (default: the number of cores; 0: no workers here)")
    parser.add_argument("--password-file", default=None,
                        help="file whose first line is the password (else $FLOWDASH_PASSWORD)")
    parser.add_argument("--read-only", action="store_true",
                        help="others may watch runs but not start, cancel, delete or save")
    parser.add_argument("--allowed-hosts", default=None,
                        help="comma-separated names the Host header may carry (default: the "
                             "bound host and this machine's names)")
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error(f"--workers must be 0 or more, got {args.workers}")
    try:
        rules = access.configure(args.host, password_file=args.password_file,
                                 read_only=args.read_only, allowed_hosts=args.allowed_hosts)
    except access.AccessError as exc:
        parser.exit(2, f"flowdash: {exc}\n")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from flowdash.store import StoreError
    try:
        app = create_app(args.store, rules)
    except (StoreError, ValueError, TypeError) as exc:  # say why, no traceback
        parser.exit(2, f"flowdash: {exc}\n")
    pool = _start_workers(app.server.config["FLOWDASH_STORE"], args.workers)

    def on_term(signum, frame):  # stop like Ctrl-C, so that the workers stop in order
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        app.run(host=args.host, port=args.port, debug=False)
    except KeyboardInterrupt:
        pass
    finally:
        if pool is not None:
            pool.stop()


def _start_workers(location: str, workers: int):
    """The embedded pool, unless Celery runs the jobs or no workers were asked for."""
    broker = os.environ.get("FLOWDASH_BROKER")
    if broker:
        log.info("jobs go to Celery at %s; start workers with: celery -A flowdash.tasks "
                 "worker --concurrency <cores>", broker)
        return None
    if workers == 0:
        log.info("no workers here: runs wait until `python -m flowdash.worker --store %s` "
                 "takes them", location)
        return None
    from flowdash.jobs import LocalPool

    return LocalPool(location, workers).start()


if __name__ == "__main__":
    main()
