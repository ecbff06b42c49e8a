"""Model selection page: two fits of two halves, their feature consistency live.

``register()`` is called by ``app.create_app`` (see ``flowdash.pages.model``).
"""
import dash


def register():
    from flowdash.pages.selection import callbacks  # noqa: F401  (registers callbacks)
    from flowdash.pages.selection.layout import layout

    dash.register_page(__name__, path="/selection", name="Model selection",
                       title="flowdash · Model selection", order=2.5, layout=layout)
