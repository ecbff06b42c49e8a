"""Compare page: the four fits of the 2021 Fig. 3 side by side, live, for a lecture.

``register()`` is called by ``app.create_app`` (see ``flowdash.pages.model``).
"""
import dash


def register():
    from flowdash.pages.compare import callbacks  # noqa: F401  (registers callbacks)
    from flowdash.pages.compare.layout import layout

    dash.register_page(__name__, path="/compare", name="Compare", title="flowdash · Compare",
                       order=4, layout=layout)
