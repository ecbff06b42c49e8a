"""flowdash: the dashboard.

    python app.py [--host 127.0.0.1] [--port 8050] [--store PATH]

``create_app(store_path)`` builds the app (tests use it in-process or start
this file as a subprocess). Importing this module has no side effects.

Background callbacks use a ``DiskcacheManager`` on ``<store>/callbacks`` by
default; set ``FLOWDASH_CELERY_BROKER`` (e.g. ``redis://localhost:6379/0``)
to use a ``CeleryManager`` instead (workers must import this module and call
``create_app``, with the same ``--store``/``FLOWDASH_STORE`` and
``FLOWDASH_SECRET_KEY``).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import secrets
from pathlib import Path

DEFAULT_STORE = "flowdash-store"
PAGES = ("model", "data", "fit", "runs")
log = logging.getLogger("flowdash")


def make_manager(store_path: str):
    """The background-callback manager: Celery if configured, else diskcache."""
    broker = os.environ.get("FLOWDASH_CELERY_BROKER")
    if broker:
        from celery import Celery
        from dash import CeleryManager

        backend = os.environ.get("FLOWDASH_CELERY_BACKEND", broker)
        celery_app = Celery("flowdash", broker=broker, backend=backend)
        return CeleryManager(celery_app)
    from dash import DiskcacheManager

    from flowdash.store import open_cache

    cache = open_cache(Path(store_path) / "callbacks")
    return DiskcacheManager(cache, expire=3600)


def _on_callback_error(err: Exception):
    """Global callback error handler: log it, show a short note, no traceback."""
    from dash import set_props

    from flowdash import ids

    log.exception("callback failed", exc_info=err)
    set_props(ids.ERROR_TOAST, {"is_open": True,
                                "children": "That request could not be completed "
                                            f"({type(err).__name__}). Other work is not "
                                            "affected; check the inputs and try again."})


def secret_key(store_path: str) -> str:
    """``FLOWDASH_SECRET_KEY``, else a key kept in ``<store>/secret_key`` (mode 0600).

    Every server process and Celery worker on the same store signs background
    jobs with the same key.
    """
    key = os.environ.get("FLOWDASH_SECRET_KEY")
    if key:
        return key
    path = Path(store_path) / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def create_app(store_path: str | os.PathLike = DEFAULT_STORE):
    """Build the Dash app on the run store at ``store_path``.

    Marks runs left active by a previous server as interrupted.
    """
    import dash
    import dash_bootstrap_components as dbc
    from dash import Input, Output, dcc, html

    from flowdash import ids, jobs, settings

    store_path = str(Path(store_path).resolve())
    Path(store_path).mkdir(parents=True, exist_ok=True)
    marked = jobs.recover(store_path)
    if marked:
        log.warning("marked %d run(s) as interrupted", len(marked))
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
        background_callback_manager=make_manager(store_path),
        suppress_callback_exceptions=True,
        title="flowdash",
        on_error=_on_callback_error,
        # the pages ask this every few seconds and say when the server is gone
        health_endpoint="_flowdash/alive",
    )
    app.server.config["FLOWDASH_STORE"] = store_path
    app.server.secret_key = secret_key(store_path)
    # uploads arrive base64-encoded (4/3 of the file) inside a JSON request
    app.server.config["MAX_CONTENT_LENGTH"] = settings.MAX_UPLOAD_BYTES * 4 // 3 + 2**20
    for page in PAGES:
        importlib.import_module(f"flowdash.pages.{page}").register()

    @app.server.before_request
    def _home():
        """Every page has a path named after it; "/" opens the first (Model)."""
        from flask import redirect, request

        if request.path == "/":
            return redirect(app.get_relative_path(f"/{PAGES[0]}"))
        return None

    nav = dbc.Navbar(dbc.Container([
        dbc.NavbarBrand([html.Span("flow", className="brand-a"),
                         html.Span("dash", className="brand-b")], href="/model"),
        dbc.Nav([dbc.NavItem(dbc.NavLink(p["name"], href=p["relative_path"], active="exact"))
                 for p in dash.page_registry.values()], navbar=True, className="me-auto"),
        html.Span("Langevin latent dynamics of spike trains", className="navbar-text small"),
    ], fluid=True), color="primary", dark=True, className="mb-3", id=ids.NAVBAR)
    app.layout = html.Div([
        dcc.Location(id=ids.URL),
        dbc.Alert(id=ids.CONNECTION, color="danger", is_open=False, className="connection-banner"),
        dcc.Interval(id=ids.HEARTBEAT, interval=2000),
        dcc.Store(id=ids.ACTIVE_FIT, storage_type="local"),
        dcc.Store(id=ids.ACTIVE_DATASET, storage_type="local"),
        dcc.Store(id=ids.ACTIVE_GEN, storage_type="local"),
        nav,
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


def main(argv=None):
    parser = argparse.ArgumentParser(description="flowdash dashboard")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    parser.add_argument("--store", default=os.environ.get("FLOWDASH_STORE", DEFAULT_STORE),
                        help="folder of the run store (default ./flowdash-store)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(args.store)
    app.run(host=args.host, port=args.port, debug=False)


if __name__ == "__main__":
    main()
