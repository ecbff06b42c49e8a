"""Component ids of the Model selection page."""
PAGE = "sel-page"
SETTINGS_COL = "sel-settings-col"
LIVE_COL = "sel-live-col"
SETTINGS_TOGGLE = "sel-settings-toggle"

# the selection's form: data, halves and the fit settings both halves share
NAME = "sel-name"
DATASET = "sel-dataset"
HALVES = "sel-halves"                  # RadioItems: even_odd, random, two_datasets
HALVES_SEED = "sel-halves-seed"
SEED_BOX = "sel-seed-box"
DATASET2 = "sel-dataset2"
DATASET2_BOX = "sel-dataset2-box"
VALIDATION_NOTE = "sel-validation-note"
INIT_MODEL = "sel-init-model"
PEQ_OVERRIDE = "sel-peq-override"
PARAMS = "sel-params"
OPTIMIZER = "sel-optimizer"
LR = "sel-lr"                          # pattern: {"type": LR, "param": F|F0|D|Fr|C}
ALPHA = "sel-alpha"
GD_BOX = "sel-gd-box"
ADAM_BOX = "sel-adam-box"
EPOCHS = "sel-epochs"
BATCHES = "sel-batches"
NV = "sel-nv"
SEED = "sel-seed"
LS = "sel-ls"                          # pattern: {"type": LS, "param": C|D, "part": ...}
FB = "sel-fb"                          # pattern: {"type": FB, "field": field}
START = "sel-start"
MESSAGE = "sel-message"

# pairing two existing fits
PAIR_RUN1 = "sel-pair-run1"
PAIR_RUN2 = "sel-pair-run2"
PAIR = "sel-pair"

# the followed selection
SELECT = "sel-select"
CANCEL = "sel-cancel"
MORE = "sel-more"
CONTINUE = "sel-continue"
ACTION_MSG = "sel-action-msg"
HALF_STATUS = "sel-half-status"
NOTE = "sel-note"                      # "analysed epochs 0–1234 of 50,000; fits running"

# the analysis's settings
FCA = "sel-fca"                        # pattern: {"type": FCA, "name": FCASettings field}
FCA_FB = "sel-fca-fb"                  # pattern: {"type": FCA_FB, "name": ...}
FCA_PRESET = "sel-fca-preset"          # pattern: {"type": FCA_PRESET, "paper": "2020"|"2024"}

# the figures (the 2020 paper's Fig. 5; per condition the 2024 paper's Fig. 3)
FC_GRAPH = "sel-fc-graph"
NLL_GRAPH = "sel-nll-graph"
JS_GRAPH = "sel-js-graph"
POT_GRAPH = "sel-pot-graph"
COND_GRAPH = "sel-cond-graph"
COND_BOX = "sel-cond-box"

# the selected model: save, export
SAVE_NAME = "sel-save-name"
SAVE_HALF = "sel-save-half"
SAVE = "sel-save"
SAVE_FB = "sel-save-fb"
SAVE_MSG = "sel-save-msg"
EXPORT_NPZ = "sel-export-npz"
EXPORT_JSON = "sel-export-json"
DOWNLOAD_NPZ = "sel-download-npz"
DOWNLOAD_JSON = "sel-download-json"

# polling
INTERVAL = "sel-interval"
POLL_TICK = "sel-poll-tick"            # dcc.Store: the interval's ticks that reach the poll
POLL_DONE = "sel-poll-done"            # dcc.Store: the tick the poll last answered
CURSOR = "sel-cursor"                  # dcc.Store: what the figures show (skip a redraw)
