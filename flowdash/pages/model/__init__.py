"""Model page: grid, boundary, peq, p0, D and neurons, with a live preview.

``register()`` is called by ``app.create_app`` after the Dash app exists; it
imports the callbacks (a module import, so they register exactly once per
process) and registers the page. Importing this package has no side effects,
so tests can import ``figures``, ``form`` and ``callbacks`` without an app.
"""
import dash


def register():
    from flowdash.pages.model import callbacks  # noqa: F401  (registers callbacks)
    from flowdash.pages.model.layout import layout

    dash.register_page(__name__, path="/model", name="Model",
                       title="flowdash · Model", order=0, layout=layout)
