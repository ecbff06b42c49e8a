"""Spike data in the ISI format (MATH.md §2), its validation and its files.

A trial is a pair of equal-length arrays: inter-spike intervals ``isi``
(seconds, the first one measured from the trial start) and ``ids``, the
0-based neuron id of the spike that ends each interval. With a recorded trial
end the last entry is the interval from the last spike to the end of the
trial, with id ``-1``.

File formats (all loaders accept a path, ``bytes`` or a binary/text file-like
object, so that the dashboard can pass uploaded content directly; nothing is
ever unpickled):

- ``.npz``: the reference layout ``S_ntrials``, ``S_isi_i``, ``S_ids_i`` for a
  set prefix ``S`` plus metadata ``S_n_neurons``, ``S_with_trial_end``.
- CSV: a spikes table ``trial,neuron,time`` (one row per spike, absolute
  times in seconds) and a trials table ``trial,start,end``.
"""

from __future__ import annotations

import array
import csv
import io
import math
import os
import zipfile
from typing import Any, BinaryIO, Iterable, Mapping, Sequence, Union

import numpy as np

__all__ = [
    "SpikeData",
    "TRIAL_END",
    "concatenate",
    "load_reference_set",
    "even_odd_split",
    "from_nwb",
    "read_nwb",
    "summarize",
    "Recipe",
    "PMD_RECIPE",
]

#: Neuron id that marks the trial-end interval.
TRIAL_END = -1

PathOrBuffer = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, io.TextIOBase]

_NPZ_FORMAT = 1

#: Caps of the file readers (npz, CSV): a file beyond them is refused from
#: its parsed columns or its zip directory, before any per-trial structure
#: or array is built.
MAX_TRIALS = 100_000
MAX_NEURONS = 1000
MAX_SPIKES = 20_000_000
__all__ += ["NpzArchive", "MAX_TRIALS", "MAX_NEURONS", "MAX_SPIKES", "MAX_NPZ_BYTES",
            "MAX_NPZ_MEMBERS"]

#: Members of an npz archive (two arrays per trial plus metadata).
MAX_NPZ_MEMBERS = 2 * MAX_TRIALS + 64
#: Total expanded size of an npz archive's arrays, bytes.
MAX_NPZ_BYTES = 512 * 2**20


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def _validate_n_neurons(n_neurons: Any) -> int:
    if isinstance(n_neurons, (bool, np.bool_)) or not isinstance(n_neurons, (int, np.integer)):
        raise TypeError(f"n_neurons must be an integer >= 1, got {n_neurons!r}")
    if n_neurons < 1:
        raise ValueError(f"n_neurons must be an integer >= 1, got {n_neurons}")
    return int(n_neurons)


def _validate_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


def _validate_trial(
    i: int, trial: Any, n_neurons: int, with_trial_end: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Check one ``(isi, ids)`` pair and return read-only float64/int64 copies."""
    if isinstance(trial, Mapping) or not isinstance(trial, (tuple, list)) or len(trial) != 2:
        raise TypeError(f"trial {i} must be a pair (isi, ids) of arrays, got {type(trial).__name__}")
    isi_in, ids_in = trial
    isi = np.asarray(isi_in)
    ids = np.asarray(ids_in)
    if isi.ndim != 1:
        raise ValueError(f"trial {i}: isi must be 1-D, got shape {isi.shape}")
    if ids.ndim != 1:
        raise ValueError(f"trial {i}: ids must be 1-D, got shape {ids.shape}")
    if isi.dtype.kind not in "iuf":
        raise TypeError(f"trial {i}: isi must be real numbers (seconds), got dtype {isi.dtype}")
    if ids.dtype.kind not in "iuf":
        raise TypeError(f"trial {i}: ids must be integer neuron ids, got dtype {ids.dtype}")
    if isi.shape != ids.shape:
        raise ValueError(
            f"trial {i}: isi and ids must have the same length, got {isi.size} and {ids.size}"
        )
    isi = np.array(isi, dtype=np.float64)
    bad = ~np.isfinite(isi) | (isi < 0)
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(
            f"trial {i}: isi[{j}] = {float(isi[j])!r}; intervals must be finite and >= 0 seconds"
        )
    if ids.dtype.kind == "f":
        if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
            raise TypeError(f"trial {i}: ids must be integer neuron ids, got non-integer values")
    ids = np.array(ids, dtype=np.int64)
    if with_trial_end:
        if ids.size == 0 or ids[-1] != TRIAL_END:
            raise ValueError(
                f"trial {i}: with_trial_end=True needs the last entry to be the trial end "
                f"(id {TRIAL_END}); got " + ("an empty trial" if ids.size == 0 else f"id {ids[-1]}")
            )
        spikes = ids[:-1]
    else:
        if ids.size == 0:
            raise ValueError(
                f"trial {i} is empty; without trial end every trial needs at least one spike"
            )
        spikes = ids
    bad = (spikes < 0) | (spikes >= n_neurons)
    if bad.any():
        j = int(np.argmax(bad))
        if spikes[j] == TRIAL_END:
            where = "the last entry" if with_trial_end else "any entry (with_trial_end=False)"
            raise ValueError(
                f"trial {i}: ids[{j}] = -1 (trial end) is only allowed as {where}"
            )
        raise ValueError(
            f"trial {i}: ids[{j}] = {spikes[j]} is out of range; allowed neuron ids are "
            f"0..{n_neurons - 1}" + (" and -1 as the last entry" if with_trial_end else "")
        )
    return _readonly(isi), _readonly(ids)


# ---------------------------------------------------------------------------
# input plumbing (paths, bytes, file-like)
# ---------------------------------------------------------------------------


def _read_bytes(src: PathOrBuffer, what: str) -> bytes:
    """Return the whole content of a path, bytes or a file-like object."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    if isinstance(src, (str, os.PathLike)):
        try:
            with open(src, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise ValueError(f"cannot read {what} file {os.fspath(src)!r}: {exc.strerror}") from None
    if hasattr(src, "read"):
        data = src.read()
        if isinstance(data, str):
            return data.encode("utf-8")
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
        raise TypeError(f"{what}: read() returned {type(data).__name__}, expected bytes or str")
    raise TypeError(
        f"{what} must be a path, bytes or a file-like object, got {type(src).__name__}"
    )


def _open_npz(src: Any) -> Mapping[str, np.ndarray]:
    """An npz archive, checked before any array is read (paths, bytes, file-likes).

    Mappings and ``np.load`` results are used as they are.
    """
    if isinstance(src, Mapping) or isinstance(src, np.lib.npyio.NpzFile):
        return src
    return NpzArchive(_read_bytes(src, "npz"))


class NpzArchive(Mapping):
    """A ``.npz`` archive whose every member was checked before reading.

    At opening, each member's size in the zip directory and its ``.npy``
    header (shape, dtype) are read — no array data — and compared with the
    caps: :data:`MAX_NPZ_MEMBERS` members, :data:`MAX_NPZ_BYTES` expanded
    in all (a zip bomb is refused from its directory), no object arrays
    (they need pickle), and a header that matches the member's size. Arrays
    are read on access, without pickle.

    Raises
    ------
    ValueError
        Naming the member and what is wrong; for something that is not a zip
        archive, that it is not an npz archive.
    """

    def __init__(self, raw: bytes):
        self._raw = raw
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(raw))
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            raise ValueError("not a valid .npz file: it is not an npz archive (a .npz file is "
                             "a zip archive of .npy arrays, as numpy.savez writes it); this file "
                             + ("is empty" if not raw else "looks like text"
                                if _looks_like_text(raw) else "holds other bytes")
                             + ", perhaps renamed to .npz") from None
        if len(infos) > MAX_NPZ_MEMBERS:
            raise ValueError(f"npz file has {len(infos)} members; at most {MAX_NPZ_MEMBERS} are "
                             "allowed")
        total = sum(i.file_size for i in infos)
        if total > MAX_NPZ_BYTES:
            raise ValueError(f"npz file expands to {total / 2**20:.0f} MB; at most "
                             f"{MAX_NPZ_BYTES / 2**20:.0f} MB are allowed (a compressed file "
                             "that expands this much is refused before it is read)")
        self._members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise ValueError(f"npz member {info.filename!r} is not a .npy array")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"npz member {info.filename!r} uses an unsupported compression")
            self._check_header(info)
            self._members[info.filename[:-4]] = info

    def _check_header(self, info: zipfile.ZipInfo) -> None:
        key = info.filename[:-4]
        fmt = np.lib.format
        try:
            with self._zip.open(info) as fp:
                version = fmt.read_magic(fp)
                if version == (1, 0):
                    shape, _, dtype = fmt.read_array_header_1_0(fp, max_header_size=10000)
                elif version == (2, 0):
                    shape, _, dtype = fmt.read_array_header_2_0(fp, max_header_size=10000)
                else:
                    raise ValueError(f"npy format version {version} is not supported")
                offset = fp.tell()
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
            raise ValueError(f"npz key {key!r}: not a readable .npy array ({exc})") from None
        if dtype.hasobject:
            raise ValueError(f"npz key {key!r} holds Python objects, which cannot be read "
                             "without pickle; flowdash never unpickles")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != info.file_size - offset:
            raise ValueError(f"npz key {key!r} declares shape {shape} of {dtype} "
                             f"({nbytes} bytes) but holds {info.file_size - offset} bytes")

    def __getitem__(self, key: str) -> np.ndarray:
        info = self._members[key]
        with self._zip.open(info) as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)

    def __iter__(self):
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    @property
    def files(self) -> list[str]:
        return list(self._members)


def _looks_like_text(raw: bytes) -> bool:
    head = raw[:512]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c >= 32 or c in (9, 10, 13) for c in head)


def _npz_get(npz: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    if key not in npz:
        raise ValueError(f"npz file has no key {key!r}")
    try:
        return npz[key]
    except ValueError as exc:  # object arrays need pickle: refuse them
        raise ValueError(f"npz key {key!r} cannot be read without pickle: {exc}") from None


def _npz_scalar_int(npz: Mapping[str, np.ndarray], key: str) -> int:
    val = np.asarray(_npz_get(npz, key))
    if val.size == 1 and val.dtype.kind in "iub":
        return int(val.ravel()[0])
    if val.size == 1 and val.dtype.kind == "f" and float(val.ravel()[0]).is_integer():
        return int(val.ravel()[0])
    raise ValueError(f"npz key {key!r} must be a single integer, got {val!r}")


def _npz_prefixes(npz: Mapping[str, np.ndarray]) -> list[str]:
    return sorted(k[: -len("_ntrials")] for k in npz.keys() if k.endswith("_ntrials"))


# ---------------------------------------------------------------------------
# the container
# ---------------------------------------------------------------------------


class SpikeData:
    """Validated spike trains of several trials in the ISI format.

    Parameters
    ----------
    trials : sequence of (isi, ids)
        Per trial: ``isi`` shape (n_i,), seconds, finite and >= 0;
        ``ids`` shape (n_i,), int neuron ids in ``0..n_neurons-1``, with
        ``-1`` (trial end) allowed and required as the last entry exactly when
        ``with_trial_end``. At least one trial; without trial end every
        trial needs at least one spike.
    n_neurons : int
        Number of neurons (>= 1); neurons may have no spikes.
    with_trial_end : bool
        Whether each trial's last interval runs to the recorded trial end.

    Raises
    ------
    TypeError, ValueError
        With the trial, entry and allowed values named.

    Notes
    -----
    The arrays are stored as read-only float64 / int64 copies; a SpikeData
    is immutable.
    """

    __slots__ = ("_trials", "_n_neurons", "_with_trial_end", "_packed")

    def __init__(self, trials: Sequence[tuple[Any, Any]], n_neurons: int, with_trial_end: bool = True):
        n_neurons = _validate_n_neurons(n_neurons)
        with_trial_end = _validate_flag("with_trial_end", with_trial_end)
        if isinstance(trials, (str, bytes, Mapping)) or not isinstance(trials, Iterable):
            raise TypeError(f"trials must be a list of (isi, ids) pairs, got {type(trials).__name__}")
        trials = list(trials)
        if not trials:
            raise ValueError("trials is empty; a SpikeData needs at least one trial")
        self._trials = tuple(
            _validate_trial(i, t, n_neurons, with_trial_end) for i, t in enumerate(trials)
        )
        self._n_neurons = n_neurons
        self._with_trial_end = with_trial_end
        self._packed = None

    # -- basic properties ---------------------------------------------------
    @property
    def trials(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """The trials as read-only ``(isi (n_i,) s, ids (n_i,) int)`` pairs."""
        return self._trials

    @property
    def n_neurons(self) -> int:
        """Number of neurons."""
        return self._n_neurons

    def packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All trials end to end, as the likelihood passes read them.

        Returns
        -------
        isi : ndarray, shape (n_intervals,), s
        ids : ndarray, shape (n_intervals,), int
        offsets : ndarray, shape (n_trials + 1,), int
            Trial t is ``isi[offsets[t]:offsets[t + 1]]``.
        """
        # Built once: a fit reads the same data every epoch.
        if self._packed is None:
            offsets = np.concatenate(([0], np.cumsum([len(isi) for isi, _ in self._trials]))).astype(np.int64)
            isi = np.concatenate([isi for isi, _ in self._trials]).astype(np.float64)
            ids = np.concatenate([ids for _, ids in self._trials]).astype(np.int64)
            self._packed = tuple(_readonly(a) for a in (isi, ids, offsets))
        return self._packed

    @property
    def with_trial_end(self) -> bool:
        """Whether each trial ends with a trial-end interval (id -1)."""
        return self._with_trial_end

    @property
    def n_trials(self) -> int:
        """Number of trials."""
        return len(self._trials)

    def __len__(self) -> int:
        return len(self._trials)

    def __repr__(self) -> str:
        return (
            f"SpikeData(n_trials={self.n_trials}, n_neurons={self.n_neurons}, "
            f"with_trial_end={self.with_trial_end}, n_spikes={self.n_spikes().tolist()})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpikeData):
            return NotImplemented
        return (
            self.n_neurons == other.n_neurons
            and self.with_trial_end == other.with_trial_end
            and self.n_trials == other.n_trials
            and all(
                np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
                for a, b in zip(self._trials, other._trials)
            )
        )

    __hash__ = None  # type: ignore[assignment]  # equality by value, mutable-free but large

    def n_spikes(self) -> np.ndarray:
        """Spike count of each neuron over all trials.

        Returns
        -------
        counts : ndarray of int64, shape (n_neurons,)
        """
        counts = np.zeros(self._n_neurons, dtype=np.int64)
        for _, ids in self._trials:
            counts += np.bincount(ids[ids >= 0], minlength=self._n_neurons)
        return counts

    def durations(self) -> np.ndarray:
        """Length of each trial: the sum of its intervals, trial end included.

        Without trial end this is the time from trial start to the last spike.

        Returns
        -------
        durations : ndarray, shape (n_trials,), seconds
        """
        return np.array([isi.sum() for isi, _ in self._trials], dtype=np.float64)

    def trial_average_rates(self) -> np.ndarray:
        """Trial-average firing rate of each neuron (MATH.md §2).

        Total spike count over all trials divided by the total of all
        intervals (trial ends included) — not a mean of per-trial rates.

        Returns
        -------
        rates : ndarray, shape (n_neurons,), Hz
        """
        total = float(self.durations().sum())
        if total <= 0:
            raise ValueError("the data has zero total duration; rates are undefined")
        return self.n_spikes() / total

    # -- spike times -----------------------------------------------------------
    @classmethod
    def from_spike_times(
        cls,
        spike_times: Sequence[Sequence[Any]],
        starts: Any = None,
        ends: Any = None,
        with_trial_end: bool = True,
        n_neurons: int | None = None,
    ) -> "SpikeData":
        """Build from absolute spike times.

        Parameters
        ----------
        spike_times : list (per trial) of list (per neuron) of array_like
            Absolute spike times in seconds; every trial lists the same number
            of neurons (empty lists for silent neurons).
        starts : array_like, shape (n_trials,), optional
            Trial start times, seconds (default 0).
        ends : array_like, shape (n_trials,), optional
            Trial end times, seconds. Required when ``with_trial_end``;
            otherwise optional (only used to check that spikes lie inside the
            trial) and the trial's data ends at its last spike.
        with_trial_end : bool
            Record the interval from the last spike to ``ends`` (id -1).
        n_neurons : int, optional
            Defaults to the number of per-neuron lists.

        Returns
        -------
        SpikeData

        Notes
        -----
        Spikes of different neurons at the same time are ordered by neuron id.
        """
        with_trial_end = _validate_flag("with_trial_end", with_trial_end)
        if isinstance(spike_times, (str, bytes)) or not isinstance(spike_times, Sequence):
            raise TypeError("spike_times must be a list (per trial) of lists (per neuron) of times")
        n_trials = len(spike_times)
        if n_trials == 0:
            raise ValueError("spike_times is empty; at least one trial is needed")
        per_trial_neurons = set()
        for i, tr in enumerate(spike_times):
            if isinstance(tr, (str, bytes, np.ndarray)) or not isinstance(tr, Sequence):
                raise TypeError(
                    f"spike_times[{i}] must be a list with one array of times per neuron, "
                    f"got {type(tr).__name__}"
                )
            per_trial_neurons.add(len(tr))
        if len(per_trial_neurons) != 1:
            raise ValueError(
                f"every trial of spike_times must list the same number of neurons, got {sorted(per_trial_neurons)}"
            )
        listed = per_trial_neurons.pop()
        if n_neurons is None:
            n_neurons = listed
        n_neurons = _validate_n_neurons(n_neurons)
        if listed != n_neurons:
            raise ValueError(
                f"spike_times lists {listed} neurons per trial but n_neurons = {n_neurons}"
            )
        starts_a = _trial_vector("starts", starts, n_trials, default=0.0)
        if with_trial_end and ends is None:
            raise ValueError("ends is required when with_trial_end=True")
        ends_a = _trial_vector("ends", ends, n_trials, default=np.nan)
        times_list, ids_list = [], []
        for i, tr in enumerate(spike_times):
            t_parts, n_parts = [], []
            for n, ts in enumerate(tr):
                t = np.asarray(ts, dtype=np.float64) if np.size(ts) else np.zeros(0)
                if t.ndim != 1:
                    raise ValueError(f"spike_times[{i}][{n}] must be a 1-D list of times")
                t_parts.append(t)
                n_parts.append(np.full(t.size, n, dtype=np.int64))
            times_list.append(np.concatenate(t_parts))
            ids_list.append(np.concatenate(n_parts))
        return cls(
            _events_to_trials(times_list, ids_list, starts_a, ends_a, with_trial_end),
            n_neurons,
            with_trial_end,
        )

    def to_spike_times(
        self, starts: Any = None
    ) -> tuple[list[list[np.ndarray]], np.ndarray, np.ndarray]:
        """Absolute spike times per trial and neuron.

        Parameters
        ----------
        starts : array_like, shape (n_trials,), optional
            Trial start times in seconds (default 0).

        Returns
        -------
        spike_times : list (per trial) of list (per neuron) of ndarray, seconds
        starts : ndarray, shape (n_trials,), seconds
        ends : ndarray, shape (n_trials,), seconds
            Trial end; without trial end, the time of the last spike.
        """
        starts_a = _trial_vector("starts", starts, self.n_trials, default=0.0)
        out, ends = [], np.empty(self.n_trials)
        for i, (isi, ids) in enumerate(self._trials):
            t = starts_a[i] + np.cumsum(isi)
            ends[i] = t[-1] if t.size else starts_a[i]
            out.append([t[ids == n] for n in range(self._n_neurons)])
        return out, starts_a, ends

    # -- selections ------------------------------------------------------------
    def subset(self, indices: Any) -> "SpikeData":
        """The trials at ``indices`` (int sequence or boolean mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_trials,):
                raise ValueError(
                    f"boolean mask must have shape ({self.n_trials},), got {idx.shape}"
                )
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif idx.dtype.kind not in "iu" or idx.ndim != 1:
            raise TypeError(f"indices must be a 1-D list of trial indices or a boolean mask, got {indices!r}")
        if idx.size == 0:
            raise ValueError("subset would be empty; select at least one trial")
        bad = (idx < -self.n_trials) | (idx >= self.n_trials)
        if bad.any():
            raise ValueError(
                f"trial index {int(idx[np.argmax(bad)])} is out of range; allowed 0..{self.n_trials - 1}"
            )
        return self._new([self._trials[int(i)] for i in idx])

    def split(self, val_fraction: float, seed: int | None = 0) -> tuple["SpikeData", "SpikeData"]:
        """Random split of the trials into training and validation sets.

        Parameters
        ----------
        val_fraction : float
            Fraction of trials for validation, in (0, 1); the count is
            rounded and kept between 1 and n_trials - 1.
        seed : int or None
            Seed of ``numpy.random.default_rng`` for the shuffle.

        Returns
        -------
        train, val : SpikeData
            Each keeps the original trial order.
        """
        try:
            vf = float(val_fraction)
        except (TypeError, ValueError):
            raise ValueError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}") from None
        if not 0.0 < vf < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        if self.n_trials < 2:
            raise ValueError(f"cannot split {self.n_trials} trial; at least 2 trials are needed")
        n_val = min(max(int(round(vf * self.n_trials)), 1), self.n_trials - 1)
        perm = np.random.default_rng(seed).permutation(self.n_trials)
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        return self.subset(train_idx), self.subset(val_idx)

    @classmethod
    def concatenate(cls, datasets: Sequence["SpikeData"]) -> "SpikeData":
        """Trials of several datasets, in order (same n_neurons and with_trial_end)."""
        return concatenate(datasets)

    def _new(self, trials: list[tuple[np.ndarray, np.ndarray]]) -> "SpikeData":
        # Trials of a valid SpikeData are already validated read-only arrays.
        obj = object.__new__(SpikeData)
        obj._trials = tuple(trials)
        obj._n_neurons = self._n_neurons
        obj._with_trial_end = self._with_trial_end
        obj._packed = None
        return obj

    # -- npz ---------------------------------------------------------------------
    def save_npz(self, path: Union[str, os.PathLike, BinaryIO], prefix: str = "data") -> None:
        """Write the reference layout: ``{prefix}_ntrials``, ``{prefix}_isi_i``,
        ``{prefix}_ids_i``, plus ``{prefix}_n_neurons`` and
        ``{prefix}_with_trial_end``. ``path`` is used as given (no ``.npz``
        appended) or may be a binary file-like object."""
        _validate_prefix(prefix)
        arrays = self._npz_arrays(prefix)
        if isinstance(path, (str, os.PathLike)):
            with open(path, "wb") as fh:
                np.savez(fh, **arrays)
        else:
            np.savez(path, **arrays)

    def _npz_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            f"{prefix}_ntrials": np.array(self.n_trials),
            f"{prefix}_n_neurons": np.array(self.n_neurons),
            f"{prefix}_with_trial_end": np.array(self.with_trial_end),
            f"{prefix}_flowdash_format": np.array(_NPZ_FORMAT),
        }
        for i, (isi, ids) in enumerate(self._trials):
            arrays[f"{prefix}_isi_{i}"] = isi
            arrays[f"{prefix}_ids_{i}"] = ids
        return arrays

    @classmethod
    def load_npz(
        cls,
        src: PathOrBuffer,
        prefix: str | None = None,
        n_neurons: int | None = None,
        with_trial_end: bool | None = None,
    ) -> "SpikeData":
        """Read a set written by :meth:`save_npz` or a reference ``.npz``.

        Parameters
        ----------
        src : path, bytes or binary file-like
        prefix : str, optional
            The set to read; may be omitted when the file holds one set.
        n_neurons, with_trial_end : optional
            Override / supply metadata missing from reference files (see
            :func:`load_reference_set`).

        Returns
        -------
        SpikeData

        Raises
        ------
        ValueError
            A malformed file, naming the key and what is wrong (never unpickled).
        """
        npz = _open_npz(src)
        if prefix is None:
            prefixes = _npz_prefixes(npz)
            if len(prefixes) != 1:
                raise ValueError(
                    "npz file holds "
                    + (f"the sets {prefixes}; pass prefix= one of them" if prefixes else
                       "no spike data (no key ending in '_ntrials')")
                )
            prefix = prefixes[0]
        return load_reference_set(npz, prefix, n_neurons=n_neurons, with_trial_end=with_trial_end)

    # -- csv ---------------------------------------------------------------------
    def save_csv(
        self,
        spikes_path: Union[str, os.PathLike, io.TextIOBase],
        trials_path: Union[str, os.PathLike, io.TextIOBase],
        starts: Any = None,
    ) -> None:
        """Write two CSV tables.

        ``spikes_path``: header ``trial,neuron,time``, one row per spike in
        chronological order within each trial (absolute seconds, full
        precision). ``trials_path``: header ``trial,start,end``. Both begin
        with comment lines ``# n_neurons=…`` and ``# with_trial_end=…`` so
        that a round trip is lossless. ``starts`` (n_trials,) shifts the
        trials (default 0).
        """
        spike_times, starts_a, ends = self.to_spike_times(starts)
        meta = [f"# n_neurons={self.n_neurons}", f"# with_trial_end={str(self.with_trial_end).lower()}"]
        spike_lines = meta + ["trial,neuron,time"]
        for i, (isi, ids) in enumerate(self._trials):
            t = starts_a[i] + np.cumsum(isi)
            for n, tt in zip(ids, t):
                if n >= 0:
                    spike_lines.append(f"{i},{int(n)},{float(tt)!r}")
        trial_lines = meta + ["trial,start,end"] + [
            f"{i},{float(s)!r},{float(e)!r}" for i, (s, e) in enumerate(zip(starts_a, ends))
        ]
        _write_text(spikes_path, "\n".join(spike_lines) + "\n")
        _write_text(trials_path, "\n".join(trial_lines) + "\n")

    @classmethod
    def load_csv(
        cls,
        spikes: PathOrBuffer,
        trials: PathOrBuffer | None = None,
        with_trial_end: bool | None = None,
        n_neurons: int | None = None,
    ) -> "SpikeData":
        """Read the CSV tables of :meth:`save_csv` (or hand-made ones).

        Parameters
        ----------
        spikes : path, bytes or file-like
            Header ``trial,neuron,time``; one row per spike; ``trial`` and
            ``neuron`` 0-based integers, ``time`` absolute seconds. Lines
            starting with ``#`` are comments (``# n_neurons=3`` and
            ``# with_trial_end=true`` are read as metadata).
        trials : path, bytes or file-like, optional
            Header ``trial,start,end``; each trial 0..n_trials-1 exactly once,
            ``start <= end``. Without it, trials are those in the spikes table
            (0..max), each starting at 0, and there is no trial end.
        with_trial_end : bool, optional
            Default: the metadata line, else True when a trials table is given.
        n_neurons : int, optional
            Default: the metadata line, else 1 + the largest neuron id.

        Raises
        ------
        ValueError
            Naming the table, row, column and what is allowed.
        """
        meta_s, rows_s = _parse_csv(spikes, "spikes", ("trial", "neuron", "time"), (int, int, float),
                                    MAX_SPIKES)
        meta_t: dict[str, str] = {}
        rows_t = None
        if trials is not None:
            meta_t, rows_t = _parse_csv(trials, "trials", ("trial", "start", "end"), (int, float, float),
                                        MAX_TRIALS)
        meta = {**meta_t, **meta_s}
        if with_trial_end is None:
            if "with_trial_end" in meta:
                v = meta["with_trial_end"].strip().lower()
                if v not in ("true", "false", "1", "0"):
                    raise ValueError(f"metadata with_trial_end={v!r}; allowed: true, false")
                with_trial_end = v in ("true", "1")
            else:
                with_trial_end = rows_t is not None
        with_trial_end = _validate_flag("with_trial_end", with_trial_end)
        s_trial, s_neuron, s_time = (np.frombuffer(c, dtype=np.int64 if c.typecode == "q" else
                                                   np.float64) for c in rows_s)
        # ids and counts are checked on the columns, before any per-trial structure
        for name, col in (("neuron", s_neuron), ("trial", s_trial)):
            neg = np.flatnonzero(col < 0)
            if neg.size:
                r = int(neg[0])
                raise ValueError(f"spikes table row {r + 1}, column {name!r}: {col[r]} is negative; "
                                 "allowed 0, 1, 2, …")
        for name, col, cap in (("neuron", s_neuron, MAX_NEURONS), ("trial", s_trial, MAX_TRIALS)):
            big = np.flatnonzero(col >= cap)
            if big.size:
                r = int(big[0])
                raise ValueError(f"spikes table row {r + 1}, column {name!r}: {col[r]} is too large; "
                                 f"at most {cap} {name}s (ids 0..{cap - 1}) are allowed")
        if n_neurons is None:
            if "n_neurons" in meta:
                try:
                    n_neurons = int(meta["n_neurons"])
                except ValueError:
                    raise ValueError(f"metadata n_neurons={meta['n_neurons']!r} is not an integer") from None
            else:
                if s_neuron.size == 0:
                    raise ValueError("spikes table has no rows; pass n_neurons=")
                n_neurons = int(s_neuron.max()) + 1
        n_neurons = _validate_n_neurons(n_neurons)
        _check_cap("neurons", n_neurons, MAX_NEURONS, "n_neurons")
        big = np.flatnonzero(s_neuron >= n_neurons)
        if big.size:
            r = int(big[0])
            raise ValueError(
                f"spikes table row {r + 1}, column 'neuron': {s_neuron[r]} is out of range; "
                f"allowed 0..{n_neurons - 1}"
            )
        if rows_t is not None:
            t_trial, t_start, t_end = (np.frombuffer(c, dtype=np.int64 if c.typecode == "q" else
                                                     np.float64) for c in rows_t)
            n_trials = t_trial.size
            if n_trials == 0:
                raise ValueError("trials table has no rows; at least one trial is needed")
            seen = np.zeros(n_trials, dtype=bool)
            for r, t in enumerate(t_trial):
                if not 0 <= t < n_trials:
                    raise ValueError(
                        f"trials table row {r + 1}, column 'trial': {t} is out of range; the table has "
                        f"{n_trials} rows so trials must be numbered 0..{n_trials - 1}"
                    )
                if seen[t]:
                    raise ValueError(f"trials table row {r + 1}, column 'trial': trial {t} appears twice")
                seen[t] = True
            for r in range(n_trials):
                if t_end[r] < t_start[r]:
                    raise ValueError(
                        f"trials table row {r + 1}: end {float(t_end[r])!r} is before start {float(t_start[r])!r}; "
                        f"allowed start <= end"
                    )
            starts = np.empty(n_trials)
            ends = np.empty(n_trials)
            starts[t_trial], ends[t_trial] = t_start, t_end
            unknown = np.flatnonzero(s_trial >= n_trials)
            if unknown.size:
                r = int(unknown[0])
                raise ValueError(
                    f"spikes table row {r + 1}, column 'trial': trial {s_trial[r]} is not in the trials "
                    f"table; allowed 0..{n_trials - 1}"
                )
            outside = np.flatnonzero((s_time < starts[s_trial]) | (s_time > ends[s_trial])) if s_time.size else []
            if len(outside):
                r = int(outside[0])
                k = int(s_trial[r])
                raise ValueError(
                    f"spikes table row {r + 1}, column 'time': {float(s_time[r])!r} is outside trial {k} "
                    f"[{float(starts[k])!r}, {float(ends[k])!r}] of the trials table"
                )
        else:
            if s_trial.size == 0:
                raise ValueError("spikes table has no rows and no trials table was given")
            n_trials = int(s_trial.max()) + 1
            starts = np.zeros(n_trials)
            ends = np.full(n_trials, np.nan)
            neg = np.flatnonzero(s_time < 0)
            if neg.size:
                r = int(neg[0])
                raise ValueError(
                    f"spikes table row {r + 1}, column 'time': {float(s_time[r])!r} is negative; without a trials "
                    f"table every trial starts at 0"
                )
        order = np.argsort(s_trial, kind="stable")
        bounds = np.searchsorted(s_trial[order], np.arange(n_trials + 1))
        times_list = [s_time[order[bounds[k]:bounds[k + 1]]] for k in range(n_trials)]
        ids_list = [s_neuron[order[bounds[k]:bounds[k + 1]]].astype(np.int64) for k in range(n_trials)]
        if not with_trial_end:
            empty = [k for k in range(n_trials) if times_list[k].size == 0]
            if empty:
                raise ValueError(
                    f"trial {empty[0]} has no spikes; without trial end every trial needs at least one spike"
                )
        return cls(_events_to_trials(times_list, ids_list, starts, ends, with_trial_end), n_neurons, with_trial_end)


# ---------------------------------------------------------------------------
# module-level helpers
# ---------------------------------------------------------------------------


def _trial_vector(name: str, value: Any, n_trials: int, default: float) -> np.ndarray:
    if value is None:
        return np.full(n_trials, default, dtype=np.float64)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of {n_trials} times in seconds, got {value!r}") from None
    if arr.shape != (n_trials,):
        raise ValueError(f"{name} must have shape ({n_trials},) (one per trial), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr.copy()


def _events_to_trials(
    times_list: list[np.ndarray],
    ids_list: list[np.ndarray],
    starts: np.ndarray,
    ends: np.ndarray,
    with_trial_end: bool,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Absolute spike times -> ISI trials; stable sort keeps tie order."""
    trials = []
    for i, (t, ids) in enumerate(zip(times_list, ids_list)):
        if t.size and not np.all(np.isfinite(t)):
            raise ValueError(f"trial {i}: spike times must be finite")
        order = np.argsort(t, kind="stable")
        t, ids = t[order], ids[order]
        if t.size and t[0] < starts[i]:
            raise ValueError(f"trial {i}: spike at {float(t[0])!r} s is before the trial start {float(starts[i])!r} s")
        if np.isfinite(ends[i]):
            if ends[i] < starts[i]:
                raise ValueError(f"trial {i}: end {float(ends[i])!r} s is before start {float(starts[i])!r} s")
            if t.size and t[-1] > ends[i]:
                raise ValueError(f"trial {i}: spike at {float(t[-1])!r} s is after the trial end {float(ends[i])!r} s")
        isi = np.diff(t, prepend=starts[i])
        if with_trial_end:
            isi = np.append(isi, ends[i] - (t[-1] if t.size else starts[i]))
            ids = np.append(ids, TRIAL_END)
        trials.append((isi, ids))
    return trials


def _validate_prefix(prefix: Any) -> None:
    if not isinstance(prefix, str) or not prefix or not prefix.replace("_", "").isalnum():
        raise ValueError(f"prefix must be a non-empty name of letters, digits and '_', got {prefix!r}")


def concatenate(datasets: Sequence[SpikeData]) -> SpikeData:
    """All trials of several datasets, in order.

    Parameters
    ----------
    datasets : sequence of SpikeData
        Same ``n_neurons`` and ``with_trial_end``.

    Returns
    -------
    SpikeData
    """
    datasets = list(datasets)
    if not datasets:
        raise ValueError("concatenate needs at least one SpikeData")
    for k, d in enumerate(datasets):
        if not isinstance(d, SpikeData):
            raise TypeError(f"datasets[{k}] must be a SpikeData, got {type(d).__name__}")
    first = datasets[0]
    for k, d in enumerate(datasets[1:], start=1):
        if d.n_neurons != first.n_neurons or d.with_trial_end != first.with_trial_end:
            raise ValueError(
                f"datasets[{k}] has n_neurons={d.n_neurons}, with_trial_end={d.with_trial_end}; "
                f"expected n_neurons={first.n_neurons}, with_trial_end={first.with_trial_end} as datasets[0]"
            )
    return first._new([t for d in datasets for t in d.trials])


def load_reference_set(
    npz: Any,
    prefix: str,
    n_neurons: int | None = None,
    with_trial_end: bool | None = None,
) -> SpikeData:
    """Read one spike set (``train``, ``val``, ``data``, ``train0`` …) of a
    reference ``.npz`` (layout ``S_ntrials``, ``S_isi_i``, ``S_ids_i``).

    Parameters
    ----------
    npz : path, bytes, file-like, or an opened ``np.load`` result / mapping
    prefix : str
        The set's prefix ``S``.
    n_neurons : int, optional
        Default: the ``S_n_neurons`` key if present, else 1 + the largest id.
    with_trial_end : bool, optional
        Default: the ``S_with_trial_end`` key if present, else whether the
        trials end with id -1.

    Returns
    -------
    SpikeData
    """
    _validate_prefix(prefix)
    npz = _open_npz(npz)
    if f"{prefix}_ntrials" not in npz:
        raise ValueError(
            f"npz file has no spike set {prefix!r}; sets present: {_npz_prefixes(npz) or 'none'}"
        )
    n_trials = _npz_scalar_int(npz, f"{prefix}_ntrials")
    if n_trials < 1:
        raise ValueError(f"{prefix}_ntrials = {n_trials}; at least one trial is needed")
    if n_trials > MAX_TRIALS:
        raise ValueError(f"{prefix}_ntrials = {n_trials}; at most {MAX_TRIALS} trials are allowed")
    trials = [
        (_npz_get(npz, f"{prefix}_isi_{i}"), _npz_get(npz, f"{prefix}_ids_{i}")) for i in range(n_trials)
    ]
    if with_trial_end is None:
        key = f"{prefix}_with_trial_end"
        if key in npz:
            with_trial_end = bool(_npz_scalar_int(npz, key))
        else:
            with_trial_end = all(np.size(ids) and np.asarray(ids).ravel()[-1] == TRIAL_END for _, ids in trials)
    if n_neurons is None:
        key = f"{prefix}_n_neurons"
        if key in npz:
            n_neurons = _npz_scalar_int(npz, key)
        else:
            max_id = max((int(np.max(ids)) for _, ids in trials if np.size(ids)), default=-1)
            n_neurons = max(max_id + 1, 1)
    _check_cap("neurons", n_neurons, MAX_NEURONS, "the highest neuron id + 1, or n_neurons")
    spikes = sum(int(np.size(ids)) for _, ids in trials)
    _check_cap("spikes", spikes, MAX_SPIKES, "entries of the ids arrays")
    return SpikeData(trials, n_neurons, with_trial_end)


def _check_cap(what: str, value: int, cap: int, counted: str) -> None:
    if isinstance(value, (int, np.integer)) and value > cap:
        raise ValueError(f"the data has {value} {what} ({counted}); at most {cap} are allowed")


# ---------------------------------------------------------------------------
# CSV plumbing
# ---------------------------------------------------------------------------


def _write_text(dst: Any, text: str) -> None:
    if isinstance(dst, (str, os.PathLike)):
        with open(dst, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    elif hasattr(dst, "write"):
        try:
            dst.write(text)
        except TypeError:
            dst.write(text.encode("utf-8"))
    else:
        raise TypeError(f"destination must be a path or a writable file, got {type(dst).__name__}")


def _parse_csv(
    src: PathOrBuffer, table: str, columns: tuple[str, ...], kinds: tuple[type, ...],
    max_rows: int,
) -> tuple[dict[str, str], tuple[array.array, ...]]:
    """Strictly parse a small numeric CSV table of at most ``max_rows`` rows.

    Returns the metadata of ``# key=value`` comment lines and one packed
    column per header name (``array('q')`` of integers or ``array('d')``;
    8 bytes per value). Every problem raises ValueError naming the table, the
    row (data row number, 1-based, and the file line) and the column.
    """
    raw = _read_bytes(src, f"{table} table")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{table} table is not UTF-8 text (byte {exc.start})") from None
    meta: dict[str, str] = {}
    cols = tuple(array.array("q" if kind is int else "d") for kind in kinds)
    header_seen = False
    row = 0
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        for line_no, fields in enumerate(reader, start=1):
            if not fields or all(not f.strip() for f in fields):
                continue  # blank line
            if fields[0].lstrip().startswith("#"):
                comment = ",".join(fields).lstrip()[1:].strip()
                if "=" in comment:
                    key, _, val = comment.partition("=")
                    meta[key.strip()] = val.strip()
                continue
            if not header_seen:
                names = tuple(f.strip().lower() for f in fields)
                if names != columns:
                    raise ValueError(
                        f"{table} table line {line_no}: header must be {','.join(columns)!r}, got "
                        f"{','.join(fields)!r}"
                    )
                header_seen = True
                continue
            row += 1
            if row > max_rows:
                raise ValueError(f"{table} table has more than {max_rows} rows; at most {max_rows} "
                                 "are allowed")
            where = f"{table} table row {row} (line {line_no})"
            if len(fields) != len(columns):
                raise ValueError(
                    f"{where}: expected {len(columns)} columns ({','.join(columns)}), got {len(fields)}"
                )
            for c, (name, kind, f) in enumerate(zip(columns, kinds, fields)):
                cols[c].append(_parse_cell(f, kind, f"{where}, column {name!r}"))
    except csv.Error as exc:
        raise ValueError(f"{table} table is not valid CSV: {exc}") from None
    if not header_seen:
        raise ValueError(f"{table} table has no header; expected {','.join(columns)!r}")
    return meta, cols


def _parse_cell(text: str, kind: type, where: str) -> Any:
    s = text.strip()
    if kind is int:
        try:
            v = int(s)
        except ValueError:
            raise ValueError(f"{where}: {text[:40]!r} is not an integer; allowed 0, 1, 2, …") from None
        if not -2**62 < v < 2**62:
            raise ValueError(f"{where}: {text[:40]!r} is out of range; allowed 0, 1, 2, …")
        return v
    try:
        v = float(s)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number; expected seconds, e.g. 0.125") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: {text!r} is not finite; expected seconds, e.g. 0.125")
    return v


# ---------------------------------------------------------------------------
# recorded sessions (NWB)
# ---------------------------------------------------------------------------

# Real recordings arrive as NWB files; the importer (which needs pynwb, slow
# to import) lives in flowdash.core.nwb and its names are served from here on
# first use. The PMd recordings are its PMD_RECIPE.
_NWB_NAMES = ("from_nwb", "read_nwb", "summarize", "Recipe", "Window", "TrialFilter", "ConditionColumn",
              "NWBImport", "NWBSession", "NWBSummary", "ImportReport", "PMD_RECIPE")


def __getattr__(name: str) -> Any:
    if name in _NWB_NAMES:
        from . import nwb

        return getattr(nwb, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def even_odd_split(data: SpikeData) -> tuple[SpikeData, SpikeData]:
    """Split into trials 0, 2, 4, … and 1, 3, 5, … (feature-consistency halves).

    Returns
    -------
    even, odd : SpikeData
    """
    if not isinstance(data, SpikeData):
        raise TypeError(f"data must be a SpikeData, got {type(data).__name__}")
    if data.n_trials < 2:
        raise ValueError(f"even/odd split needs at least 2 trials, got {data.n_trials}")
    return data.subset(np.arange(0, data.n_trials, 2)), data.subset(np.arange(1, data.n_trials, 2))
