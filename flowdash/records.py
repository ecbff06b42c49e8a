"""The records that cross layers (store, job layer, pages), defined once.

Every record is plain JSON data (dicts, lists, str, numbers, bool, None), so
it travels unchanged through the store (JSON text in both backends), Celery
and the browser. Arrays inside records are nested lists of floats; the store
keeps large arrays (snapshots, latest parameters, latent paths, spike data)
as ``.npz`` bytes and gives them back as lists.

Importable without dash, diskcache or redis.
"""
from __future__ import annotations

import time
from typing import Any, Literal, Optional, TypedDict

#: Run statuses. ``unreadable`` is never written: the store reports it for a
#: run record it cannot decode (see :func:`unreadable_run`).
QUEUED, RUNNING, DONE, CANCELLED, FAILED, INTERRUPTED = (
    "queued", "running", "done", "cancelled", "failed", "interrupted")
UNREADABLE = "unreadable"
ACTIVE_STATUSES = (QUEUED, RUNNING)
FINAL_STATUSES = (DONE, CANCELLED, FAILED, INTERRUPTED)
#: The job kinds of flowdash itself; the job layer registers more
#: (:mod:`flowdash.jobs.kinds`), so the store checks only a kind's form
#: (:func:`flowdash.names.validate_kind`).
RUN_KINDS = ("generation", "fit")

Status = Literal["queued", "running", "done", "cancelled", "failed", "interrupted",
                 "unreadable"]


# ---------------------------------------------------------------------------
# model spec (the reference's JSON format plus grid and boundary)
# ---------------------------------------------------------------------------
class GridSpec(TypedDict, total=False):
    """``Np`` nodes per element, ``Ne`` elements on ``[xbegin, xend]`` (latent units)."""
    Np: int
    Ne: int
    xbegin: float
    xend: float


class LibraryModel(TypedDict):
    """One entry of the model library: ``model`` (its name in
    ``flowdash.core.library``) and ``params`` (name -> number, list or dict)."""
    model: str
    params: dict


class ModelSpec(TypedDict, total=False):
    """A saved model, as the Model page and ``Model.from_spec`` read it.

    ``grid``; ``boundary_mode`` ('reflecting' or 'absorbing'); ``peq_model``;
    ``p0_model`` (None: p0 = peq); ``D`` (a.u.²/s); ``fr_model`` (one
    library rate model per neuron, Hz); optional ``params_size`` (rows per
    datasample); ``saved`` (Unix time, set by the store).
    """
    grid: GridSpec
    boundary_mode: str
    peq_model: LibraryModel
    p0_model: Optional[LibraryModel]
    D: float
    fr_model: list
    params_size: dict
    saved: float


# ---------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------
class Split(TypedDict, total=False):
    """How a dataset's trials split into training and validation:
    ``{"kind": "random", "val_fraction": f, "seed": s}``,
    ``{"kind": "even_odd"}``, ``{"kind": "halves", "halves": "random", "seed": s,
    "train": [positions per datasample], "val": [...]}`` (an NWB import's
    halves) or ``{"kind": "none"}``."""
    kind: Literal["random", "even_odd", "halves", "none"]
    val_fraction: float
    seed: int
    halves: str
    train: list
    val: list


class DatasetMeta(TypedDict, total=False):
    """What is known about a saved dataset (its spike data are npz blobs).

    ``name``; ``saved`` (Unix time); ``source`` ('synthetic', 'upload', 'nwb'; 'pmd' in older stores);
    ``n_datasamples`` (one blob each), ``conditions`` (a label per
    datasample); ``n_neurons``, ``n_trials`` (all datasamples),
    ``with_trial_end``; ``split``; ``model`` and ``model_spec`` (the ground
    truth of synthetic data, else None); synthetic only: ``duration`` (s),
    ``dt`` (s), ``seed``, ``run_id`` (the generation run); uploads: ``files``;
    NWB imports (``source`` 'nwb'): ``files``, ``recipe`` (``core.nwb.Recipe.to_dict``:
    file name and SHA-256, units, window, filters, conditions, halves),
    ``unit_ids`` (NWB ids of the neurons), ``dropped`` (trials dropped per reason);
    PMd (older stores): ``t_after_onset`` (s).
    """
    name: str
    saved: float
    source: str
    n_datasamples: int
    conditions: list
    n_neurons: int
    n_trials: int
    with_trial_end: bool
    split: Split
    model: Optional[str]
    model_spec: Optional[ModelSpec]
    duration: float
    dt: float
    seed: int
    run_id: str
    files: list
    recipe: dict
    unit_ids: list
    dropped: dict
    t_after_onset: float


class Dataset(TypedDict):
    """A saved dataset: ``meta`` and one ``SpikeData.save_npz`` blob per datasample."""
    meta: DatasetMeta
    npz: list


class Latent(TypedDict):
    """Latent paths of a synthetic dataset, subsampled for display:
    ``t[i]`` (s) and ``x[i]`` (latent units) of trial i (first trials only)."""
    t: list
    x: list


# ---------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------
class RunRecord(TypedDict, total=False):
    """One data generation or fit.

    ``id`` (12 lowercase hex digits); ``kind`` ('generation', 'fit' or another
    registered job kind);
    ``name``; ``status`` (see the constants above); ``settings`` (the checked
    settings of ``flowdash.settings``); ``refs`` (what it used: ``dataset``,
    ``model``, ``model_spec``, ``dataset_meta``); ``created``, ``started``,
    ``finished`` (Unix times or None); ``error`` (one-line reason or None);
    ``pid``, ``pid_started`` and ``host`` of the worker; ``progress`` (0..1);
    ``message`` (short text for the page); ``continued`` (a fit queued again for
    more epochs: one ``{"at", "from_epoch", "to_epoch", "after"}`` per
    continuation). A fit of a model selection has ``refs["selection"] = {"id",
    "half"}``. The job layer may add fields (e.g. ``seed_used``, ``elapsed``,
    ``heartbeat``); they must be JSON data.
    """
    id: str
    kind: str
    name: str
    status: Status
    settings: dict
    refs: dict
    created: float
    started: Optional[float]
    finished: Optional[float]
    error: Optional[str]
    pid: Optional[int]
    pid_started: Optional[float]
    host: str
    progress: float
    message: str


def new_run_record(run_id: str, kind: str, name: str, settings: dict,
                   refs: dict | None = None) -> RunRecord:
    """A queued run record."""
    return RunRecord(id=run_id, kind=kind, name=name, status=QUEUED, settings=dict(settings),
                     refs=dict(refs or {}), created=time.time(), started=None, finished=None,
                     error=None, pid=None, pid_started=None, progress=0.0, message="queued")


def unreadable_run(run_id: str, reason: str) -> RunRecord:
    """What lists show for a run record the store cannot decode: it can be
    deleted, nothing else (its status is neither active nor final)."""
    return RunRecord(id=run_id, kind="unreadable", name=f"(unreadable run {run_id})",
                     status=UNREADABLE, settings={}, refs={}, created=0.0, started=None,
                     finished=None, error=reason, pid=None, pid_started=None, progress=0.0,
                     message="unreadable")


class RunSummary(TypedDict):
    """What the store's run index keeps of each run, to list, search, filter and
    sort thousands of runs without reading their records.

    ``id``, ``kind``, ``name``, ``status`` as in the record; ``dataset`` (the
    dataset a fit used or a generation made, or None); ``model`` (the initial
    or ground-truth model, or None); ``created`` (Unix time); ``seq`` (the
    order of creation: larger is newer).
    """
    id: str
    kind: str
    name: str
    status: Status
    dataset: Optional[str]
    model: Optional[str]
    created: float
    seq: int


def run_summary(record: dict, seq: int) -> RunSummary:
    """The index entry of a run record (``seq``: its place in creation order)."""
    refs = record.get("refs") or {}
    settings = record.get("settings") or {}
    dataset = refs.get("dataset") or settings.get("dataset") or settings.get("dataset_name")
    model = refs.get("model") or settings.get("init_model") or settings.get("model")
    return RunSummary(id=record["id"], kind=str(record.get("kind")), name=str(record.get("name")),
                      status=record["status"],
                      dataset=dataset if isinstance(dataset, str) else None,
                      model=model if isinstance(model, str) else None,
                      created=float(record.get("created") or 0.0), seq=int(seq))


class SelectionRecord(TypedDict, total=False):
    """A model selection: two fit runs (two halves of the data) analysed together.

    ``id`` (12 hex digits, like a run id); ``name``; ``created`` (Unix time);
    ``fits`` ([run id of half 1, run id of half 2]; empty until both are
    queued); ``settings``: ``halves`` ('even_odd', 'random', 'two_datasets'
    or 'paired'), ``dataset``, ``dataset2``, ``halves_seed``, ``validation``
    (what each half validates on, in words), ``fit`` (the fit settings both
    halves share); ``refs``.
    """
    id: str
    name: str
    created: float
    fits: list
    settings: dict
    refs: dict


class Snapshot(TypedDict, total=False):
    """Model parameters at one epoch: ``peq`` (K, N) or (N,), ``p0`` (same or
    None when not fitted), ``D`` (K,), ``fr`` (K, N, n_neurons) or (N,
    n_neurons) in Hz, or None when not fitted. Lists of floats; the store keeps
    epoch snapshots as float32 (display copies, 7 significant digits)."""
    peq: list
    p0: Optional[list]
    D: list
    fr: Optional[list]


class EpochEntry(TypedDict, total=False):
    """One epoch of a fit (epoch 0 is the initial model).

    ``epoch``; ``nll_train`` (one NLL per datasample; None for a non-finite
    value); ``nll_val`` (the same, or None without validation data);
    ``elapsed`` (s since the fit started); ``time`` (Unix time); ``D`` (one
    value per D row); ``snapshot`` (optional :class:`Snapshot`, kept at the
    epochs the job layer chooses, as a float32 display copy); ``model``
    (optional :class:`Snapshot` for the analysis: a recorded model, kept with
    the dtypes given; ``store.read_models``).
    """
    epoch: int
    nll_train: list
    nll_val: Optional[list]
    elapsed: float
    time: float
    D: list
    snapshot: Snapshot


class LatestParams(Snapshot, total=False):
    """The parameters of the most recent epoch (``epoch`` plus a Snapshot)."""
    epoch: int


class EpochColumns(TypedDict):
    """Epochs ``start, start+1, ...`` of a run as columns (one read).

    ``start``; ``n_epochs`` (how many the run has in all); ``epoch`` (n,)
    int; ``nll_train`` (n, K) float with NaN for a missing value; ``nll_val``
    (n, K) or None when the run has no validation data; ``elapsed`` (n,) s;
    ``time`` (n,) Unix times; ``D`` (n, K_D). numpy arrays; with a
    ``max_points`` read the rows are a decimated subset (first, last, the
    validation minimum and evenly spaced epochs), ``epoch`` says which.
    """
    start: int
    n_epochs: int
    epoch: Any
    nll_train: Any
    nll_val: Any
    elapsed: Any
    time: Any
    D: Any
