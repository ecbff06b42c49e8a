"""Rows of the runs table (plain data, no dash)."""
from __future__ import annotations

import time

from flowdash.pages.fit.view import fmt_seconds


def describe(record: dict, n_epochs: int) -> dict:
    """One table row: status, name, kind, when, how long, what it used, error."""
    s = record.get("settings") or {}
    refs = record.get("refs") or {}
    if record["kind"] == "fit":
        used = (f"data {refs.get('dataset')}, init {refs.get('model')}"
                + (f" (peq {s.get('peq_override')})" if s.get("peq_override") else "")
                + f"; {s.get('optimizer')} on {', '.join(s.get('params_to_opt') or [])}")
        progress = f"{max(0, n_epochs - 1)}/{s.get('max_epochs')} epochs"
    else:
        used = (f"model {refs.get('model')} → {refs.get('dataset')}; "
                f"{s.get('n_trials')} × {s.get('duration')} s")
        progress = f"{100 * (record.get('progress') or 0):.0f} %"
    if record["status"] == "queued":
        progress = record.get("message") or "queued"   # its place in line (jobs.annotate)
    end = record.get("finished") or (time.time() if record.get("started") else None)
    took = fmt_seconds(end - record["started"]) if record.get("started") and end else "—"
    return {"id": record["id"], "status": record["status"], "name": record["name"],
            "kind": record["kind"],
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["created"])),
            "took": took, "progress": progress, "used": used,
            "error": record.get("error") or ""}
