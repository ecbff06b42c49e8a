"""The Fit page's poll stays cheap with a class watching (bench/load.py): a poll
moves the dashed "now" curve with a Patch instead of drawing the potentials
again, and viewers who open a run at the same moment share one drawing."""
import os
import socket
import time

import numpy as np
from dash import Patch

from flowdash.jobs import model_arrays
from flowdash.pages.fit import view
from flowdash.store import open_store
from tests.test_callbacks_pages import SPEC


def live_fit(tmp_path):
    """A running fit written the way the fit job writes it, with a live worker."""
    from flowdash.jobs import build_model

    store = open_store(tmp_path / "store")
    model = build_model(SPEC)
    rid = store.create_run("fit", "watched", {"max_epochs": 9, "snapshot_epochs": [2],
                                              "params_to_opt": ["F"]}, refs={"dataset": "d"})
    store.start_run(rid, os.getpid(), None)
    store.beat(f"{socket.gethostname()}:{os.getpid()}", {"time": time.time(), "run": rid})
    store.set_result(rid, {"x": np.asarray(model.grid.x).tolist(), "init": model_arrays(model),
                           "truth": None})
    return store, rid, np.asarray(model.peq)


def add_epoch(store, rid, k, peq):
    entry = {"epoch": k, "nll_train": [10.0 - k], "nll_val": [11.0 - k], "elapsed": 0.1 * k,
             "time": time.time(), "D": [10.0]}
    if k == 2:
        entry["snapshot"] = {"peq": peq, "p0": None, "D": [10.0], "fr": None}
    store.append_epoch(rid, entry)
    store.set_latest(rid, {"epoch": k, "peq": peq, "p0": None, "D": [10.0], "fr": None})


def test_the_overlay_moves_the_now_curve_with_a_patch(tmp_path):
    store, rid, peq = live_fit(tmp_path)
    for k in (0, 1):
        add_epoch(store, rid, k, peq)
    out = view.poll(store, rid, None, view.OVERLAY)
    names = [t.name for t in out["potential"].data]
    assert names == ["now (epoch 1)"] and out["cursor"]["pot"]["now_at"] == 0
    add_epoch(store, rid, 2, peq)            # a snapshot epoch: drawn again, no "now" curve
    out = view.poll(store, rid, out["cursor"], view.OVERLAY)
    assert [t.name for t in out["potential"].data] == ["epoch 2"]
    add_epoch(store, rid, 3, peq)            # the "now" curve is back: drawn again
    out = view.poll(store, rid, out["cursor"], view.OVERLAY)
    assert [t.name for t in out["potential"].data] == ["epoch 2", "now (epoch 3)"]
    add_epoch(store, rid, 4, 0.5 * peq)      # then only the "now" curve moves
    out = view.poll(store, rid, out["cursor"], view.OVERLAY)
    assert isinstance(out["potential"], Patch)
    ops = out["potential"].to_plotly_json()["operations"]
    assert [(op["location"], op["params"]["value"] if op["location"][-1] == "name" else None)
            for op in ops] == [(["data", 1, "y"], None), (["data", 1, "name"], "now (epoch 4)")]
    assert np.allclose(ops[0]["params"]["value"], np.minimum(-np.log(0.5 * peq[0]), 6),
                       rtol=0, atol=0.5e-4)              # a display copy: 4 decimals


def test_viewers_who_open_a_run_together_share_its_drawing(tmp_path):
    store, rid, peq = live_fit(tmp_path)
    for k in range(4):
        add_epoch(store, rid, k, peq)
    for which in (view.OVERLAY, view.PAPER):
        first, second = (view.poll(store, rid, None, which) for _ in range(2))
        figure = "potential" if which == view.OVERLAY else "paper"
        assert first[figure] is second[figure] and first["cursor"] == second["cursor"]
        assert first["cursor"] is not second["cursor"]           # each viewer its own cursor
    add_epoch(store, rid, 4, peq)                                 # a new epoch: a new drawing
    assert view.poll(store, rid, None, view.PAPER)["paper"] is not first["paper"]
