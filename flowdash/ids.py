"""App-wide component ids (components that exist on every page)."""

#: dcc.Location of the whole app.
URL = "app-url"
#: dcc.Store (local storage): the fit run the Fit page follows.
ACTIVE_FIT = "app-active-fit"
#: dcc.Store (local storage): the decode run the Decode page follows.
ACTIVE_DECODE = "app-active-decode"
#: dcc.Store (local storage): the generation run this browser started last
#: (the Data page follows its progress from the run store, across reloads).
ACTIVE_GEN = "app-active-gen"
#: dcc.Store (local storage): the dataset last generated/loaded (pre-selects it).
ACTIVE_DATASET = "app-active-dataset"
#: Navigation bar.
NAVBAR = "app-navbar"
#: dbc.Toast shown when a callback fails (no traceback reaches the browser).
ERROR_TOAST = "app-error-toast"
#: dbc.Alert shown on every page of a read-only server.
READ_ONLY_NOTE = "app-read-only-note"
#: dbc.Alert shown while the server does not answer (and briefly when it is back).
CONNECTION = "app-connection"
#: dcc.Interval of the connection check (clientside, assets/flowdash.js).
HEARTBEAT = "app-heartbeat"
