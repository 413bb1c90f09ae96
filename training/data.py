"""A task's paired datasets, read into memory and preprocessed the way its bundle will record.

``load_task(root, task)`` opens ``root/<task>/<domain>.h5`` for both paired domains (the first of
``paired_domains`` is the labelled *source*, the second the *target*: Y10/Y1, deep/shallow,
DES-like/HSC-like) and returns their train/val/test splits as network input. The same object
index is the same galaxy in both domains, so the target's train split is the unlabelled sample
the ``mmd`` recipe aligns to, and its test split measures the domain shift.

Preprocessing is chosen per task here and nowhere else (``preprocessing_for``): the 002 arcsinh
stretch for morphology and lsbg (004 trains on display-stretched sky-viewer cutouts), fluxes in
nanomaggies for photo-z (003), each domain converted with its own zeropoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.datasets import SPLITS, Dataset, open_dataset, paired_domains
from core.preprocess import FluxScale, Preprocessing

from .losses import z_bin_edges

#: Photo-z input unit [nanomaggies] (``preprocess.FluxScale``): attack budgets are in this unit.
PHOTOZ_UNIT_NMGY = 0.01
#: Which tasks are classifications (labels) and which regress redshift into p(z) bins.
TASK_KINDS = {"morphology": "classification", "lsbg": "classification", "photoz": "photoz"}


@dataclass
class Split:
    """One split of one domain, ready for a network.

    x : float32 [N, C, H, W] preprocessed images.
    y : int64 [N] class labels, or float32 [N] spectroscopic redshifts (photo-z).
    ebv : float32 [N, 1] E(B−V) in magnitudes (photo-z), else None.
    index : int64 [N] object indices in the dataset file (the same galaxy in both domains).
    raw : float32 [N, C, H, W] raw cutouts (electrons), kept for canaries; None unless asked.
    """

    x: np.ndarray
    y: np.ndarray
    ebv: np.ndarray | None
    index: np.ndarray
    raw: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, idx: np.ndarray) -> Split:
        """The rows ``idx`` [M] (integer indices or an [N] bool mask) of every array."""
        return Split(
            self.x[idx],
            self.y[idx],
            None if self.ebv is None else self.ebv[idx],
            self.index[idx],
            None if self.raw is None else self.raw[idx],
        )


@dataclass
class DomainData:
    name: str
    path: Path
    attrs: dict
    splits: dict[str, Split]
    preprocessing: Preprocessing | FluxScale


@dataclass
class TaskData:
    """Source (labelled) and target domains of a task, with what a bundle needs to record."""

    task: str
    source: DomainData
    target: DomainData
    classes: list[str] | None
    z_edges: np.ndarray | None
    extra: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return TASK_KINDS[self.task]

    @property
    def preprocessing(self) -> Preprocessing | FluxScale:
        """The source domain's preprocessing: what the bundle records."""
        return self.source.preprocessing

    @property
    def num_outputs(self) -> int:
        return len(self.classes) if self.classes is not None else len(self.z_edges) - 1


def preprocessing_for(task: str, attrs: dict) -> Preprocessing | FluxScale:
    """The preprocessing of ``task`` for a domain with file attributes ``attrs``."""
    if task not in TASK_KINDS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASK_KINDS)}")
    if task == "photoz":
        return FluxScale(
            magzp=tuple(np.asarray(attrs["magzp"], dtype=float)), unit_nmgy=PHOTOZ_UNIT_NMGY
        )
    return Preprocessing()


def _read_domain(
    ds: Dataset, task: str, n_max: int | None, keep_raw: bool, chunk: int = 512
) -> DomainData:
    attrs = ds.attrs
    prep = preprocessing_for(task, attrs)
    splits = {}
    for name in SPLITS:
        idx = ds.indices(name)
        if n_max is not None:
            idx = idx[: max(2, int(round(n_max * len(idx) / len(ds.file["split"]))))]
        # h5py reads sorted index lists; indices() is already sorted
        raw = (
            np.concatenate([ds.images[idx[i : i + chunk]] for i in range(0, len(idx), chunk)])
            if len(idx)
            else np.zeros((0, *ds.images.shape[1:]), np.float32)
        )
        x = prep(raw) if len(raw) else raw
        if TASK_KINDS[task] == "photoz":
            y = ds.file["z"][()][idx].astype(np.float32)
            ebv = ds.file["ebv"][()][idx].astype(np.float32)[:, None]
        else:
            y, ebv = ds.file["labels"][()][idx].astype(np.int64), None
        splits[name] = Split(x, y, ebv, idx.astype(np.int64), raw if keep_raw else None)
    return DomainData(attrs["domain"], ds.path, attrs, splits, prep)


def load_task(
    root: str | Path, task: str, n_max: int | None = None, keep_raw: bool = False
) -> TaskData:
    """Read both domains of ``task`` from ``root/<task>/*.h5``.

    n_max : use only the first ``n_max`` objects' worth of each split (proportionally), for
        quick runs and tests. keep_raw : also keep the raw cutouts (for canary sets).
    """
    paths, order, first = paired_domains(root, task)
    classes = list(first["classes"]) if "classes" in first else None
    domains = []
    for name in order[:2]:
        with open_dataset(paths[name]) as ds:
            domains.append(_read_domain(ds, task, n_max, keep_raw))
    z_edges = None
    if TASK_KINDS[task] == "photoz":
        # 180 bins over [0, 0.4] (losses.z_bin_edges); the mocks' default z range is the same
        z_edges = z_bin_edges()
        z_hi = max(float(d.splits[s].y.max()) for d in domains for s in SPLITS if len(d.splits[s]))
        if z_hi > z_edges[-1]:
            raise ValueError(f"{task}: redshifts up to {z_hi:.3f} exceed the binned range 0–0.4")
    return TaskData(task, domains[0], domains[1], classes, z_edges)
