"""The Runs page's table of runs: a page of the store's run index at a time.

A lab's store holds thousands of runs. The table shows one page of them
(:data:`PAGE_SIZE` rows), found on the server in the run index
(:meth:`RunStore.find_runs`: search, filters and order, no run record read);
only the records of the rows shown are read. A poll sends only the rows that
changed (a ``Patch`` of the table body), and polls often only while a run on
the page (or the open run) is queued or running; otherwise it only asks,
rarely, whether the list changed (:meth:`RunStore.index_version`), which
costs one small read and answers nothing when it did not.

Plain logic and layout here; the callbacks are in ``list_callbacks.py``.
"""
from __future__ import annotations

import hashlib
import json
import logging

import dash_bootstrap_components as dbc
from dash import dcc, html

from flowdash import jobs
from flowdash.pages.components import card, status_badge
from flowdash.pages.menus import MAX_SEARCH, menu
from flowdash.pages.runs import ids
from flowdash.pages.runs.table import describe
from flowdash.records import ACTIVE_STATUSES, FINAL_STATUSES, UNREADABLE
from flowdash.store.base import RUN_ORDERS

log = logging.getLogger(__name__)

#: Rows of one page of the table (a page drawn whole stays under 20 KB).
PAGE_SIZE = 20
#: Longest text of a cell, characters (the run view shows all of it).
CELL_TEXT = {"name": 60, "used": 90, "error": 90}
#: Polling periods, ms: while a run shown is queued or running, and otherwise
#: (then a poll only asks whether the list changed).
FAST_MS, SLOW_MS = 1500, 10000
COLUMNS = (("status", "Status"), ("name", "Name"), ("kind", "Kind"), ("created", "Created"),
           ("took", "Took"), ("progress", "Progress"), ("used", "Settings and data"),
           ("error", "Reason"))
#: The status filter: any, the active ones, or one status.
ACTIVE = "active"
STATUS_CHOICES = [{"label": "any status", "value": ""},
                  {"label": "queued or running", "value": ACTIVE}] + [
    {"label": s, "value": s} for s in (*ACTIVE_STATUSES, *FINAL_STATUSES, UNREADABLE)]
ORDER_CHOICES = [{"label": label, "value": value} for value, label in (
    ("newest", "newest first"), ("oldest", "oldest first"), ("name", "name A→Z"),
    ("name_desc", "name Z→A"), ("status", "status"), ("kind", "kind"), ("dataset", "dataset"))]
assert {c["value"] for c in ORDER_CHOICES} == set(RUN_ORDERS)
NO_RUNS = "No runs yet: generate data or start a fit."
NO_MATCH = "No run matches the search and filters."


# ---------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------
def kind_choices() -> list[dict]:
    return [{"label": "any kind", "value": ""}] + [
        {"label": k, "value": k} for k in sorted(jobs.kinds.load())]


def table_card():
    """The card with the filters, the table and its pager, showing the first page.

    The first page is in the layout, so the table shows as the page does (no
    callback is asked for it); the table's callback answers changes and polls.
    """
    body, shown, view = first_page()
    filters = dbc.Row([
        dbc.Col(dbc.Input(id=ids.SEARCH, type="search", placeholder="search names or ids",
                          debounce=300, maxlength=MAX_SEARCH, autocomplete="off"), md=3),
        # dbc.Select puts a hidden placeholder option of value "" first, and the browser
        # shows it for value "": its text must be the "any" entry's, or the filter looks blank
        dbc.Col(dbc.Select(id=ids.STATUS_FILTER, options=STATUS_CHOICES, value="",
                           placeholder=STATUS_CHOICES[0]["label"]), md=2),
        dbc.Col(dbc.Select(id=ids.KIND_FILTER, options=kind_choices(), value="",
                           placeholder="any kind"), md=2),
        dbc.Col(menu(ids.DATASET_FILTER, "any dataset", clearable=True), md=3),
        dbc.Col(dbc.Select(id=ids.ORDER, options=ORDER_CHOICES, value="newest"), md=2),
    ], className="g-2 mb-2")
    head = html.Thead(html.Tr([html.Th(label) for _, label in COLUMNS]))
    table = dbc.Table([head, html.Tbody(body, id=ids.BODY)], hover=True, size="sm",
                      className="mb-0 runs-table")
    return card(
        "All runs", filters,
        html.Div(table, id=ids.TABLE, className="table-responsive stale-offline"),
        html.Div(empty_note(shown["empty"]), id=ids.EMPTY),
        html.Div([
            dbc.Pagination(id=ids.PAGER, max_value=shown["pages"], active_page=shown["page"],
                           fully_expanded=False,
                           first_last=True, previous_next=True, size="sm",
                           className="mb-0 me-3"),
            html.Span(shown["count"], id=ids.COUNT, className="text-muted small"),
        ], className="d-flex align-items-center flex-wrap mt-2"),
        dbc.FormText("Click a row to open its run."),
        dcc.Interval(id=ids.INTERVAL, interval=shown["interval"]), dcc.Store(id=ids.CHANGED),
        dcc.Store(id=ids.VIEW, data=view))


def first_page():
    """(rows, what they show, the view) of the table as a page opens: the newest runs.

    A store that cannot be read now leaves the table empty; its first poll fills it.
    """
    from flowdash.pages.services import open_store

    try:
        with open_store() as store:
            return answer(store, query(), {})
    except Exception:   # noqa: BLE001  (the page must open; the poll says what is wrong)
        log.exception("the Runs page's first page of runs could not be read")
        return [], {"empty": "", "pages": 1, "page": 1, "count": "", "interval": FAST_MS,
                    "cancel": True}, None


def empty_note(text: str):
    """What the table says when it shows no row (``text``), or nothing."""
    return dbc.Alert(text, color="light", className="mb-0") if text else ""


def _cell(key: str, text):
    if key == "status":
        return status_badge(text)
    limit = CELL_TEXT.get(key)
    return text[:limit - 1] + "…" if limit and isinstance(text, str) and len(text) > limit \
        else text


def row(r: dict, open_id=None):
    """One table row (``r`` from :func:`flowdash.pages.runs.table.describe`)."""
    return html.Tr([html.Td(_cell(k, r[k])) for k, _ in COLUMNS],
                   id={"type": ids.ROW, "run": r["id"]},
                   className="table-active" if r["id"] == open_id else None)


def body_update(old: dict, rows: list[dict], digests: list[str], open_id=None):
    """What the table body needs to show ``rows``, given what it shows (``old``:
    ``ids`` and ``digests``): no_update, a Patch of the rows that changed (new
    runs on top: inserted, the rows pushed off the page removed), or every row."""
    from dash import Patch, no_update

    old_ids, old_digests = old.get("ids") or [], old.get("digests") or []
    new_ids = [r["id"] for r in rows]
    shift = new_ids.index(old_ids[0]) if old_ids and old_ids[0] in new_ids else -1
    if shift < 0 or new_ids[shift:] != old_ids[:len(new_ids) - shift] or not old_ids:
        return [row(r, open_id) for r in rows]
    patch, ops = Patch(), 0
    for i in reversed(range(shift)):                  # new runs on top
        patch.insert(0, row(rows[i], open_id))
        ops += 1
    for i in reversed(range(len(new_ids), len(old_ids) + shift)):   # pushed off the page
        del patch[i]
        ops += 1
    for i in range(shift, len(rows)):
        if digests[i] != old_digests[i - shift]:
            patch[i] = row(rows[i], open_id)
            ops += 1
    return patch if ops else no_update


# ---------------------------------------------------------------------------
# a page of runs
# ---------------------------------------------------------------------------
def query(search=None, status=None, kind=None, dataset=None, order=None, page=None) -> dict:
    """The table's query from its controls, bounded (a request may carry anything)."""
    order = order if order in RUN_ORDERS else "newest"
    try:
        page = max(1, int(page or 1))
    except (TypeError, ValueError):
        page = 1
    def text(v):
        return v.strip()[:MAX_SEARCH] if isinstance(v, str) else ""
    return {"search": text(search), "status": text(status), "kind": text(kind),
            "dataset": text(dataset), "order": order, "page": page}


def find(store, q: dict) -> tuple[int, list[dict]]:
    """How many runs match ``q`` and the summaries of its page."""
    status = (ACTIVE_STATUSES if q["status"] == ACTIVE else q["status"]) or None
    return store.find_runs(search=q["search"] or None, status=status, kind=q["kind"] or None,
                           dataset=q["dataset"] or None, order=q["order"],
                           offset=(q["page"] - 1) * PAGE_SIZE, limit=PAGE_SIZE)


def pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


def page_rows(store, q: dict) -> tuple[int, list[dict]]:
    """(runs that match, the rows of the page asked for) — a page past the last
    shows the last. Reads the run index, then the records of the page's rows
    and their epoch counts (two reads)."""
    total, found = find(store, q)
    if not found and q["page"] > pages(total):
        q["page"] = pages(total)
        total, found = find(store, q)
    run_ids = [s["id"] for s in found]
    records = jobs.annotate(store, store.get_runs(run_ids))
    counts = store.n_epochs_many([r["id"] for r in records if r["kind"] == "fit"])
    return total, [describe(r, counts.get(r["id"], 0)) for r in records]


def answer(store, q: dict, view: dict, open_id=None, poll: bool = False):
    """(body, shown, view) of the table for the query ``q``, given what it shows
    (``view``: {} for nothing); ``None`` for a ``poll`` that finds nothing that
    can have changed. ``body`` is every row, or only what changed since ``view``
    (:func:`body_update`); ``shown`` holds the table's other outputs: the empty
    note's text, the pages, the page, the count, the polling period and whether
    Cancel is off (the open run is not active)."""
    version = store.index_version()
    if poll and not view.get("live") and view.get("query") == q \
            and view.get("version") == version:
        return None                  # nothing shown can change: the list is as it was
    if view.get("live") or not view:
        jobs.reap(store)             # a worker that died shows up at once
    total, rows = page_rows(store, q)
    opened = store.get_run(open_id) if open_id else None
    open_active = opened is not None and opened["status"] in ACTIVE_STATUSES
    digests = [digest(r, open_id) for r in rows]
    body = (body_update(view, rows, digests, open_id) if view.get("query") == q
            else [row(r, open_id) for r in rows])
    is_live = live(rows) or open_active
    filtered = any(q[k] for k in ("search", "status", "kind", "dataset"))
    shown = {"empty": "" if rows else NO_MATCH if filtered else NO_RUNS,
             "pages": pages(total), "page": q["page"], "count": count_text(total, q, len(rows)),
             "interval": FAST_MS if is_live else SLOW_MS,
             "continue": not jobs.can_continue(opened), "cancel": not open_active}
    return body, shown, {"query": q, "ids": [r["id"] for r in rows], "digests": digests,
                         "version": version, "live": is_live, "shown": shown}


def digest(r: dict, open_id=None) -> str:
    """A row's fingerprint: a poll resends a row only when it changed."""
    blob = json.dumps([r, r["id"] == open_id], sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=6).hexdigest()


def live(rows: list[dict]) -> bool:
    """Whether a row shown is queued or running (the table then polls often)."""
    return any(r["status"] in ACTIVE_STATUSES for r in rows)


def count_text(total: int, q: dict, shown: int) -> str:
    if not total:
        return ""
    first = (q["page"] - 1) * PAGE_SIZE + 1
    return f"runs {first:,}–{first + shown - 1:,} of {total:,}"
