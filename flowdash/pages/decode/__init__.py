"""Decode page: the most likely latent paths (Viterbi) of chosen trials, over their spikes.

``register()`` is called by ``app.create_app`` (see ``flowdash.pages.model``).
"""
import dash


def register():
    from flowdash.pages.decode import callbacks  # noqa: F401  (registers callbacks)
    from flowdash.pages.decode.layout import layout

    dash.register_page(__name__, path="/decode", name="Decode", title="flowdash · Decode",
                       order=3, layout=layout)
