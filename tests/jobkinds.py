"""A job kind defined outside flowdash, as the next pages will add theirs.

Worker processes import it when ``FLOWDASH_JOB_MODULES=tests.jobkinds``.
"""
from flowdash import jobs


def check(values: dict, store):
    try:
        steps = int(values.get("steps", 3))
    except (TypeError, ValueError):
        raise jobs.SettingsError({"steps": "expected a whole number"}) from None
    if not 1 <= steps <= 1000:
        raise jobs.SettingsError({"steps": "must be between 1 and 1000"})
    return {"steps": steps, "pause": float(values.get("pause", 0.05))}, {}, f"countdown {steps}"


def run(store, run_id, hooks):
    steps = hooks.settings["steps"]
    for i in range(steps):
        hooks.progress((i + 1) / steps, f"step {i + 1} of {steps}")
        if hooks.sleep(hooks.settings["pause"]):
            raise jobs.Stopped(f"{hooks.stopped} after step {i + 1}")
    return f"{steps} steps"


jobs.register_kind("countdown", check, run)
