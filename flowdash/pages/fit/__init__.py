"""Fit page: start fits as worker processes and watch them live.

``register()`` is called by ``app.create_app`` (see ``flowdash.pages.model``).
"""
import dash


def register():
    from flowdash.pages.fit import callbacks  # noqa: F401  (registers callbacks)
    from flowdash.pages.fit.layout import layout

    dash.register_page(__name__, path="/fit", name="Fit", title="flowdash · Fit",
                       order=2, layout=layout)
