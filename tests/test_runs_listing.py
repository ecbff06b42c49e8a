"""The Runs page at scale: a page of the run index at a time, polls that send
only what changed, menus searched on the server."""
import time
import types

import pytest
from dash import Patch, no_update
from dash._utils import to_json
from dash.exceptions import PreventUpdate

from flowdash.pages import menus
from flowdash.pages.runs import ids, listing
from flowdash.store import DONE, FAILED, RUNNING
from tests.test_callbacks_pages import app, call, store  # noqa: F401  (fixtures)
from tests.test_callbacks_pages import run_graphs, show_runs

N_RUNS = 4 * listing.PAGE_SIZE + 5   # five pages, the last of 5 rows
FIT = {"dataset": "d", "init_model": "m", "optimizer": "GD", "params_to_opt": ["F"],
       "max_epochs": 100, "learning_rate": {"F": 0.005}}


@pytest.fixture
def many(store):
    """N_RUNS fits and generations, created through the store."""
    made = []
    for k in range(N_RUNS):
        if k % 10 == 9:
            rid = store.create_run("generation", f"make data {k}", {"dataset_name": f"d{k}"},
                                   {"dataset": f"d{k}", "model": "truth"})
        else:
            rid = store.create_run("fit", f"fit {k:03d}", FIT,
                                   {"dataset": "d" if k % 2 else "e", "model": "m"})
        if k != N_RUNS - 4:                  # the 4th newest stays queued
            store.finish_run(rid, FAILED if k % 7 == 3 else DONE)
        made.append(rid)
    return made[::-1]             # newest first


def find(c, fid):
    if getattr(c, "id", None) == fid:
        return c
    children = getattr(c, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            found = find(child, fid)
            if found is not None:
                return found
    return None


def size(value) -> int:
    return len(to_json(value))


def test_a_page_of_runs(store, many):
    body, empty, pages, page, count, every, continue_off, cancel_off, view = show_runs(
        trigger="app-url")
    shown = [tr.id["run"] for tr in body]
    assert shown == many[:listing.PAGE_SIZE] and empty == ""
    assert pages == 5 and page is no_update and count == f"runs 1–20 of {N_RUNS}"
    assert every == listing.FAST_MS and view["live"] is True    # a queued run is shown
    assert size(body) < 20_000                                  # the first draw, too
    # page 4, then a search, a filter and an order
    body, _, _, _, count, *_ = show_runs(page=5, trigger="runs-pager")
    assert [tr.id["run"] for tr in body] == many[80:] and count == f"runs 81–{N_RUNS} of {N_RUNS}"
    body, _, pages, page, count, *_ = show_runs(search="FIT 07", page=5, trigger="runs-search")
    assert page == 1 and pages == 1 and count == "runs 1–9 of 9"   # a new search: page 1
    assert body[0].children[1].children == "fit 078"
    body, *_ = show_runs(kind="generation", status=FAILED, trigger="runs-kind-filter")
    assert [tr.children[1].children for tr in body] == ["make data 59"]
    body, *_ = show_runs(dataset="e", order="name", trigger="runs-order")
    assert body[0].children[1].children == "fit 000"
    body, empty, pages, page, count, *_ = show_runs(search="nothing like it",
                                                    trigger="runs-search")
    assert body == [] and "No run matches" in str(empty) and count == ""
    _, _, pages, page, *_ = show_runs(page=99, trigger="runs-pager")   # past the end: the last
    assert page == 5


def test_a_poll_sends_only_what_changed(store, many, monkeypatch):
    # a running row's "took" ticks with the clock: frozen, so only real changes are sent
    from flowdash.pages.runs import table
    monkeypatch.setattr(table, "time", types.SimpleNamespace(time=lambda: 1e9, strftime=time.strftime,
                                                             localtime=time.localtime))
    *_, every, _, _, view = show_runs(status=DONE, trigger="app-url")
    assert every == listing.SLOW_MS
    with pytest.raises(PreventUpdate):           # nothing shown is active, nothing changed
        show_runs(status=DONE, view=view)
    *_, every, _, _, view = show_runs(view=view, trigger="runs-status-filter")
    assert every == listing.FAST_MS and view["live"] is True    # a queued run is shown
    with pytest.raises(PreventUpdate):           # polled, but nothing changed on the page
        show_runs(view=view)
    # it starts: the next poll sends its row only
    store.start_run(many[3], 1, 0.0)
    body, empty, pages, page, count, every, continue_off, cancel_off, view = show_runs(view=view)
    assert isinstance(body, Patch) and every is no_update and view["live"] is True
    ops = body.to_plotly_json()["operations"]
    assert [op["location"] for op in ops] == [[3]]
    assert all(v is no_update for v in (empty, pages, page, count, continue_off, cancel_off))
    assert size(body) + size(view) < 3_000
    # new runs on top: inserted, the rows they push off the page removed, nothing else sent
    new = [store.create_run("fit", f"newest {k}", FIT, {"dataset": "d"}) for k in range(2)]
    body, *_, view = show_runs(view=view)
    ops = body.to_plotly_json()["operations"]
    assert [(op["operation"], op["location"]) for op in ops] == [
        ("Insert", []), ("Insert", []), ("Delete", [21]), ("Delete", [20])]
    assert [op["params"]["index"] for op in ops[:2]] == [0, 0]
    assert [op["params"]["value"].id["run"] for op in ops[:2]] == new
    assert view["ids"] == new[::-1] + many[:listing.PAGE_SIZE - 2] and size(body) < 3_000
    # another order shows the page whole
    body, *_, view = show_runs(view=view, order="name", trigger="runs-order")
    assert isinstance(body, list) and len(body) == listing.PAGE_SIZE
    # the open run: its row stands out, and Cancel follows its status
    body, *_, cancel_off, view = show_runs(open_id=many[3], view=view, trigger="runs-open")
    assert cancel_off is False
    store.finish_run(many[3], DONE)
    body, *_, cancel_off, view = show_runs(open_id=many[3], view=view)
    assert cancel_off is True and view["live"] is True     # the new runs are queued


def test_menus_hold_a_bounded_number_of_runs(store, many):
    opts = menus.run_options(store, limit=10)
    assert [o["value"] for o in opts] == many[:10]
    assert opts[0]["label"].startswith(f"fit {N_RUNS - 1:03d} (done) · ")
    oldest = many[-1]
    opts = menus.run_options(store, None, oldest, limit=10)      # the chosen run is kept
    assert opts[0]["value"] == oldest and len(opts) == 11
    assert [o["value"] for o in menus.run_options(store, "fit 000")] == [oldest]
    assert [o["value"] for o in menus.run_options(store, oldest[:6])] == [oldest]
    gens = menus.run_options(store, "make data", kind="generation", show_kind=True)
    assert len(gens) == N_RUNS // 10 and "(generation, done)" in gens[0]["label"]
    assert menus.run_options(store, "x" * 10_000) == []
    names = [f"n{k:04d}" for k in range(1000)]
    assert len(menus.name_options(names)) == menus.LIMIT
    assert [o["value"] for o in menus.name_options(names, "N099")] == [
        f"n099{k}" for k in range(10)]
    assert menus.name_options(names, "zzz", "n0999") == [{"label": "n0999", "value": "n0999"}]
    assert menus.name_options(names, None, "not a name")[:1] == [{"label": "n0000",
                                                                   "value": "n0000"}]



def test_the_status_and_kind_filters_say_any_when_nothing_is_chosen(store):
    # dbc.Select shows its placeholder for value "": a blank placeholder made both filters blank
    card = listing.table_card()
    for fid, text in ((ids.STATUS_FILTER, "any status"), (ids.KIND_FILTER, "any kind")):
        select = find(card, fid)
        assert select.value == "" and select.placeholder == text
        assert {"label": text, "value": ""} in select.options


def test_the_page_opens_with_its_first_page_of_runs(store, many, monkeypatch):
    # the layout shows the newest runs itself (no callback asked for them as the page
    # opens): the rows, count, pager and view the table's callback would send
    from flowdash.pages.runs import table
    monkeypatch.setattr(table, "time", types.SimpleNamespace(time=lambda: 1e9, strftime=time.strftime,
                                                             localtime=time.localtime))
    card = listing.table_card()
    body, empty, pages, page, count, every, _, _, view = show_runs(trigger="app-url")
    shown = find(card, ids.BODY).children
    assert [tr.id["run"] for tr in shown] == many[:listing.PAGE_SIZE]
    assert to_json(shown) == to_json(body) and find(card, ids.VIEW).data == view
    assert (find(card, ids.PAGER).max_value, find(card, ids.COUNT).children,
            find(card, ids.INTERVAL).interval) == (pages, count, every) == (
        5, f"runs 1–20 of {N_RUNS}", listing.FAST_MS)            # a queued run is shown
    assert find(card, ids.EMPTY).children == ""
    with pytest.raises(PreventUpdate):           # the first poll: nothing changed
        show_runs(view=find(card, ids.VIEW).data)
    # a store that cannot be read: the page still opens, and its first poll fills the table
    monkeypatch.setattr(listing, "answer", lambda *a, **k: 1 / 0)
    card = listing.table_card()
    assert find(card, ids.BODY).children == [] and find(card, ids.VIEW).data is None
    assert find(card, ids.INTERVAL).interval == listing.FAST_MS


def test_an_empty_store_opens_with_its_note(store):
    card = listing.table_card()
    assert listing.NO_RUNS in str(find(card, ids.EMPTY).children)
    assert find(card, ids.BODY).children == [] and find(card, ids.COUNT).children == ""


def test_the_page_opens_without_a_graph(store, many):
    # a dcc.Graph in the layout makes every opening fetch and start plotly.js (4.8 MB),
    # which delays the table's first page turns: graphs come with an opened or ticked run
    from flowdash.pages.runs.layout import layout
    assert run_graphs(layout()) == []
