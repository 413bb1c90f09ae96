"""HDF5 datasets: one file per task and domain, chunked by image (../shared/DESIGN.md).

Layout of a file::

    images   float32 [N, B, H, W]  raw electrons, sky subtracted, chunked (1, B, H, W)
    labels   int64   [N]           class index        (classification tasks)
    z, ebv   float32 [N]           redshift, E(B−V)   (photo-z)
    split    int8    [N]           0 train, 1 validation, 2 test (same in both domains)
    truth/<name> float64 [N]       every truth parameter of the simulation
    attrs: task, domain, survey, bands, pixel scale, exposure, sky, PSF, magzp, seed, n,
           code_version, classes, split fractions ... (see ``Domain.attrs``)

Files are written without timestamps so that the same seed gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)


def make_splits(n: int, seed: int) -> np.ndarray:
    """Split codes [N] int8 for N = ``n`` objects (0 train, 1 val, 2 test), 70/10/20 by a seeded
    permutation (identical for paired domains)."""
    order = np.random.default_rng(
        np.random.SeedSequence([seed, 0x5B1]).generate_state(1)[0]
    ).permutation(n)
    n_train = int(round(SPLIT_FRACTIONS[0] * n))
    n_val = int(round(SPLIT_FRACTIONS[1] * n))
    split = np.full(n, 2, dtype=np.int8)
    split[order[:n_train]] = 0
    split[order[n_train : n_train + n_val]] = 1
    return split


class DatasetWriter:
    """Writes one domain's file object by object, in index order."""

    def __init__(
        self, path: Path, n: int, bands: int, size: int, attrs: dict, label_kind: str
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = h5py.File(path, "w", track_order=False)
        self._f.create_dataset(
            "images",
            shape=(n, bands, size, size),
            dtype="f4",
            chunks=(1, bands, size, size),
            track_times=False,
        )
        for k, v in attrs.items():
            self._f.attrs[k] = _attr(v)
        self._label_kind = label_kind

    def write(self, index: int, image: np.ndarray) -> None:
        """Store object ``index``'s image [B, H, W] (raw electrons, sky subtracted; as float32)."""
        self._f["images"][index] = image

    def finish(
        self, truth: list[dict[str, float]], split: np.ndarray, extra_attrs: dict | None = None
    ) -> None:
        """Write labels, truth (keys missing for an object's class are NaN), split and attributes.

        ``truth``: one dict per object, in index order (``label``, or ``z`` and ``ebv``, and the
        simulation's parameters); ``split`` [N] int8 codes (``make_splits``)."""
        kw = {"track_times": False}
        if self._label_kind == "class":
            self._f.create_dataset(
                "labels", data=np.array([int(t["label"]) for t in truth], dtype="i8"), **kw
            )
        else:
            for k in ("z", "ebv"):
                self._f.create_dataset(k, data=np.array([t[k] for t in truth], dtype="f4"), **kw)
        grp = self._f.create_group("truth", track_order=False)
        for k in sorted({k for t in truth for k in t} - {"label"}):
            grp.create_dataset(
                k, data=np.array([t.get(k, np.nan) for t in truth], dtype="f8"), **kw
            )
        self._f.create_dataset("split", data=split, **kw)
        for k, v in (extra_attrs or {}).items():
            self._f.attrs[k] = _attr(v)
        self._f.close()

    def abort(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)


def _attr(v):
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, (list, tuple)) and v and isinstance(v[0], str):
        return np.array(v, dtype=h5py.string_dtype())
    return v


@dataclass
class Dataset:
    """A dataset file opened for reading; arrays are read lazily from ``file``."""

    path: Path
    file: h5py.File

    @property
    def attrs(self) -> dict:
        out = {}
        for k, v in self.file.attrs.items():
            if isinstance(v, np.ndarray) and v.dtype.kind == "O":
                v = [x.decode() if isinstance(x, bytes) else str(x) for x in v]
            elif isinstance(v, bytes):
                v = v.decode()
            out[k] = v
        return out

    @property
    def images(self) -> h5py.Dataset:
        return self.file["images"]

    def truth(self, key: str) -> np.ndarray:
        """Truth parameter ``key`` [N] float64, in the simulation's units (NaN where undefined)."""
        return self.file["truth"][key][()]

    def indices(self, split: str) -> np.ndarray:
        """Object indices [M] int64, ascending, of ``split`` ('train', 'val' or 'test')."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.flatnonzero(self.file["split"][()] == SPLITS.index(split))

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_dataset(path: str | Path) -> Dataset:
    """Open a dataset file for reading; raises ``FileNotFoundError``/``ValueError`` with the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no dataset at {path}")
    f = h5py.File(path, "r")
    if "images" not in f or "split" not in f:
        f.close()
        raise ValueError(f"{path} is not a skyguard dataset (needs 'images' and 'split')")
    return Dataset(path, f)


def dataset_paths(root: str | Path, task: str) -> Iterator[Path]:
    """The domain files of ``task`` under ``root`` (``root/task/*.h5``), sorted by name."""
    yield from sorted((Path(root) / task).glob("*.h5"))


def paired_domains(root: str | Path, task: str) -> tuple[dict[str, Path], list[str], dict]:
    """The domain files of ``task`` under ``root`` ({domain: path}), the paired domains in the
    order the datasets record (source first), and the first file's attributes. Raises
    FileNotFoundError, saying how to make them, when there are none or one of a pair is missing.
    """
    paths = {p.stem: p for p in dataset_paths(root, task)}
    if not paths:
        raise FileNotFoundError(
            f"no {task} datasets under {Path(root) / task}; make them with "
            f"'skyguard simulate {task} --n N --out {root}'"
        )
    with open_dataset(next(iter(paths.values()))) as ds:
        attrs = dict(ds.attrs)
    order = [str(d) for d in attrs["paired_domains"]]
    missing = [d for d in order if d not in paths]
    if missing:
        raise FileNotFoundError(f"{task}: domain files {missing} missing under {Path(root) / task}")
    return paths, order, attrs
