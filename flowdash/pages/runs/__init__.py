"""Runs page: every run with its status, settings, plots, overlays and export.

``register()`` is called by ``app.create_app`` (see ``flowdash.pages.model``).
"""
import dash


def register():
    from flowdash.pages.runs import callbacks  # noqa: F401  (registers callbacks)
    from flowdash.pages.runs.layout import layout

    # last in the navigation bar, after the pages whose runs it lists
    dash.register_page(__name__, path="/runs", name="Runs", title="flowdash · Runs",
                       order=9, layout=layout)
