"""Plots of a data-generation run on the Runs page (uses the Data page's figures)."""
from __future__ import annotations

from flowdash import jobs
from flowdash.pages import theme
from flowdash.pages.data import figures as data_figures
from flowdash.pages.data import logic as data_logic

#: Trials drawn when a generation run is opened.
SHOWN_TRIALS = "0-4"


def generation_plots(store, record: dict):
    """(raster, latent paths, rates and counts) of the dataset a generation run made.

    Message figures when the run made no dataset (cancelled, failed) or its
    dataset was deleted or replaced since.
    """
    name = (record.get("refs") or {}).get("dataset")
    entry = store.get_dataset(name) if name else None
    if entry is None or entry["meta"].get("run_id") != record["id"]:
        note = (f"The dataset “{name}” of this run is gone." if record["status"] == "done"
                else "This run saved no dataset.")
        return (theme.message_figure(note, 300), theme.message_figure("", 300),
                theme.message_figure("", 120))
    n_trials = jobs.spikedata_from_bytes(entry["npz"][0]).n_trials
    shown = SHOWN_TRIALS if n_trials > 4 else f"0-{n_trials - 1}"
    v = data_logic.dataset_view(entry, store.get_latent(name), shown)
    latent = (data_figures.latent_paths(*v["latent"], v["indices"], v["xrange"]) if v["latent"]
              else theme.message_figure(v["latent_note"], 300))
    return (data_figures.raster(v["spikes"], v["indices"], v["n_neurons"]), latent,
            data_figures.rates_and_counts(v["rates"], v["counts"]))
