"""What a scoring job reads, found the same way by both engines.

* **FITS cutouts** — a directory (searched recursively for files named ``*.fits``, ``*.fit``,
  ``*.fts``, ``*.fz`` or ``*.gz``) or a glob pattern (Hadoop's syntax on Spark: ``*``, ``?``,
  ``[ab]``, ``{a,b}``; Python's ``glob`` locally, so keep to the common part). Names starting with
  ``_`` or ``.`` are skipped, as Spark's file sources skip them. One cutout per file; the bytes
  go to ``service.fits_input.read_fits``.
* **an HDF5 dataset** (``*.h5``/``*.hdf5``, the layout of ``core.datasets``): the objects of
  one split, or all, cut into index ranges of one model batch each; ids are those
  ``skyguard cutouts`` writes into ``OBJECT`` (``<task>-<domain>-<index:06d>``), so a dataset
  and the FITS cutouts made from it give the same catalogue rows.

The dataset is checked here, on the driver, once: bands, image size; a mismatch stops the job
before anything runs. Cutout files are checked one by one where they are scored.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: FITS file names, in Hadoop glob syntax (Spark's ``pathGlobFilter``) and as suffixes
FITS_GLOB = "*.{fits,fit,fts,fz,gz}"
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fz", ".gz")
HDF5_SUFFIXES = (".h5", ".hdf5")


def is_hdf5(inputs: str) -> bool:
    return inputs.lower().endswith(HDF5_SUFFIXES)


def is_glob(inputs: str) -> bool:
    return any(ch in inputs for ch in "*?[{")


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def list_fits(inputs: str) -> list[str]:
    """Absolute paths of the FITS files ``inputs`` names (module docstring), sorted."""
    if is_glob(inputs):
        found = [p for p in glob.glob(inputs) if os.path.isfile(p)]
        return sorted(os.path.abspath(p) for p in found if not _hidden(os.path.basename(p)))
    root = Path(inputs)
    if root.is_file():
        return [os.path.abspath(root)]
    if not root.is_dir():
        raise FileNotFoundError(f"no FITS directory, file or glob matches at {inputs}")
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not _hidden(d)]
        out += [
            os.path.abspath(os.path.join(folder, f))
            for f in files
            if f.endswith(FITS_SUFFIXES) and not _hidden(f)
        ]
    return sorted(out)


def local_path(source: str) -> str:
    """A ``file:`` URI as Spark gives it (``file:/a/b``, ``file:///a/b``) as the plain path
    ``/a/b``; any other source (``hdfs://``, ``s3a://``, a path) unchanged."""
    if source.startswith("file://"):
        return source[len("file://") :]
    if source.startswith("file:"):
        return source[len("file:") :]
    return source


@dataclass(frozen=True)
class Dataset:
    """One HDF5 dataset to score, checked against the task's bundle.

    path : the file. indices : the object indices to score, increasing.
    planes : the file's band planes in the task's band order. magzp : their zeropoints [mag]
        (as ``skyguard cutouts`` writes them into MAGZP_<B>), or None.
    id_prefix : ``<task>-<domain>-`` (ids are ``id_prefix + f'{index:06d}'``), or ``''``.
    """

    path: str
    indices: np.ndarray
    planes: tuple[int, ...]
    magzp: tuple[float, ...] | None
    id_prefix: str

    @classmethod
    def open(
        cls, path: str, bands: tuple[str, ...], shape: tuple[int, int], split: str | None = None
    ) -> Dataset:
        from core.datasets import open_dataset

        with open_dataset(path) as ds:
            attrs = ds.attrs
            have = [str(b).strip().lower() for b in attrs.get("bands", [])]
            missing = [b for b in bands if b.lower() not in have]
            if missing:
                raise ValueError(
                    f"{path}: the dataset's bands are {','.join(have) or 'not recorded'}; the "
                    f"model needs {','.join(bands)} (missing {','.join(missing)})"
                )
            if tuple(ds.images.shape[2:]) != tuple(shape):
                raise ValueError(
                    f"{path}: images are {ds.images.shape[2]}×{ds.images.shape[3]}; the model "
                    f"needs {shape[0]}×{shape[1]}"
                )
            planes = tuple(have.index(b.lower()) for b in bands)
            indices = ds.indices(split) if split else np.arange(ds.images.shape[0])
            zp = attrs.get("magzp")
            magzp = None if zp is None else tuple(float(np.asarray(zp)[k]) for k in planes)
            prefix = f"{attrs['task']}-{attrs['domain']}-" if "domain" in attrs else ""
        return cls(os.path.abspath(path), indices.astype(np.int64), planes, magzp, prefix)

    def ranges(self, size: int) -> list[tuple[str, list[int]]]:
        """``(path, indices)`` of at most ``size`` objects each, in index order."""
        idx = self.indices.tolist()
        return [(self.path, idx[i : i + size]) for i in range(0, len(idx), size)]

    def object_id(self, index: int) -> str:
        return f"{self.id_prefix}{index:06d}" if self.id_prefix else str(index)
