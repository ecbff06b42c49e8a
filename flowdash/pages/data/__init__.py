"""Data page: generate, upload or load spike data; raster, latents, rates.

``register()`` is called by ``app.create_app`` (see ``flowdash.pages.model``).
"""
import dash


def register():
    from flowdash.pages.data import callbacks, nwb_callbacks  # noqa: F401  (registers callbacks)
    from flowdash.pages.data import nwb_logic
    from flowdash.pages.data.layout import layout

    dash.register_page(__name__, path="/data", name="Data", title="flowdash · Data",
                       order=1, layout=layout)
    nwb_logic.warm()
