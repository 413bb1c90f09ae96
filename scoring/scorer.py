"""The function every partition of a scoring job runs — Spark's ``mapInPandas`` on each executor,
or the local engine in its own process: input frames in, catalogue frames out.

Per process it loads the bundle once (``service.runtime.TaskModel``: the checked bundle, its ONNX
Runtime session on CUDA when the executor has onnxruntime-gpu and a GPU, else CPU, and the OOD
scorer) and keeps it for every later partition the process runs (Spark reuses its Python
workers). Within a partition, cutouts go through the model in batches of ``batch_size``.

Each cutout takes the service's path: ``read_fits`` (or ``from_array`` for HDF5 rows), the
gateway's refusals of photo-z cutouts without E(B−V) and of non-finite preprocessed input,
``TaskSpec.pack``, ``TaskModel.infer``, ``TaskSpec.answer``; a cutout refused anywhere on that path
becomes a row with its error, and the partition goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from service.fits_input import Cutout, InputError, Limits, Repair, from_array, read_fits
from service.runtime import TaskModel, TaskSpec, checked_outputs, model_rows

from . import catalogue
from .drift import fourier_features
from .inputs import Dataset, local_path

#: columns of the input frames: FITS files (Spark's binaryFile source) or HDF5 index ranges
FITS_COLUMNS = ("path", "content")
RANGE_COLUMNS = ("path", "indices")


@dataclass(frozen=True, eq=False)
class PartitionConfig:
    """What a partition needs to know; pickled to every executor with the function.

    task : the task. bundle_dir : the checked bundle directory on the driver.
    shipped : the bundle was sent with ``SparkContext.addFile`` and is found on an executor by
        its directory name (``SparkFiles.get``) rather than at ``bundle_dir``.
    batch_size : cutouts per model call. repair, limits : as in ``service.fits_input``.
    with_pdf : photo-z: also write p(z). provider : ``auto`` (CUDA when present), ``cuda``,
        ``cpu``. frequencies : [D, J] the drift test's frequencies (``scoring.drift``).
    dataset : the HDF5 dataset of the job, when it scores one.
    """

    task: str
    bundle_dir: str
    frequencies: np.ndarray
    shipped: bool = False
    batch_size: int = 64
    repair: Repair = "none"
    with_pdf: bool = False
    provider: str = "auto"
    limits: Limits = field(default_factory=Limits)
    dataset: Dataset | None = None


#: the process's models, by (bundle directory, provider, thread cap): one ONNX Runtime session
#: per process
_MODELS: dict[tuple[str, str, int], TaskModel] = {}


def task_model(cfg: PartitionConfig) -> TaskModel:
    """The process's model for ``cfg``, loaded and checked on first use.

    On a Spark executor (``cfg.shipped``) every concurrent task has its own Python worker and
    session, so a session's CPU pool is capped at the task's ``spark.task.cpus`` and does not
    spin: ``spark.executor.cores`` sessions of the executor's core count each, busy-waiting
    between operators, would oversubscribe the cores. The local engine is one process, whose
    session keeps ONNX Runtime's defaults (every core, spinning)."""
    path, threads = cfg.bundle_dir, 0
    if cfg.shipped:
        from pyspark import SparkFiles, TaskContext

        path = SparkFiles.get(Path(cfg.bundle_dir).name)
        context = TaskContext.get()
        threads = max(1, context.cpus()) if context is not None else 1
    key = (path, cfg.provider, threads)
    if key not in _MODELS:
        spec = TaskSpec.from_ref(cfg.task, path)
        _MODELS[key] = TaskModel(spec, cfg.provider, spin=not cfg.shipped, threads=threads)
    return _MODELS[key]


class PartitionScorer:
    """``__call__(frames) -> frames``: Spark's ``mapInPandas`` function of a scoring job.

    Input frames hold FITS files (``path``, ``content``: Spark's binaryFile columns) or HDF5
    index ranges (``path``, ``indices``); output frames are catalogue rows (``scoring.catalogue``),
    one per cutout, in input order.
    """

    def __init__(self, cfg: PartitionConfig) -> None:
        self.cfg = cfg
        self.columns = catalogue.schema(cfg.task, cfg.with_pdf)

    def __call__(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = task_model(self.cfg)
        for df in frames:
            if "content" in df.columns:
                yield from self._files(model, df)
            else:
                for path, indices in zip(df["path"], df["indices"], strict=True):
                    yield self._dataset_range(model, path, np.asarray(indices, np.int64))

    def _files(self, model: TaskModel, df: pd.DataFrame) -> Iterator[pd.DataFrame]:
        spec, cfg = model.spec, self.cfg
        for start in range(0, len(df), cfg.batch_size):
            part = df.iloc[start : start + cfg.batch_size]
            sources = [local_path(p) for p in part["path"]]
            items: list[Cutout | InputError] = []
            for source, content in zip(sources, part["content"], strict=True):
                name = os.path.basename(source)
                try:
                    cut = read_fits(bytes(content), name, spec.bands, spec.shape, cfg.limits,
                                    cfg.repair)  # fmt: skip
                except InputError as e:
                    cut = e
                items.append(cut)
            yield self._score(model, items, sources, [None] * len(items))

    def _dataset_range(self, model: TaskModel, path: str, indices: np.ndarray) -> pd.DataFrame:
        from core.datasets import open_dataset

        ds, spec = self.cfg.dataset, model.spec
        with open_dataset(path) as f:
            images = f.images[indices][:, list(ds.planes)]
            ebv = f.file["ebv"][indices] if "ebv" in f.file else None
        ids = [ds.object_id(int(i)) for i in indices]
        limits = replace(self.cfg.limits, max_cutouts=max(len(indices), 1))
        items = from_array(images, spec.bands, spec.shape, ids, self.cfg.repair, limits)
        magzp = None if ds.magzp is None else np.asarray(ds.magzp)
        for k, c in enumerate(items):
            if isinstance(c, Cutout):
                items[k] = replace(c, magzp=magzp, ebv=None if ebv is None else float(ebv[k]))
        return self._score(model, items, [path] * len(items), indices.tolist(), ids)

    def _score(
        self,
        model: TaskModel,
        items: list[Cutout | InputError],
        sources: Sequence[str],
        indices: Sequence[int | None],
        ids: Sequence[str | None] | None = None,
    ) -> pd.DataFrame:
        spec = model.spec
        known = ids or [None] * len(items)
        ids = [c.id if isinstance(c, Cutout) else i for c, i in zip(items, known, strict=True)]
        rows, kept = model_rows(spec, items)
        out: list[dict] = [{}] * len(items)
        if kept:
            scores, latent = model.infer(rows)
            answered = set(checked_outputs(scores, items, kept)[1])  # non-finite: refused
            features = fourier_features(latent, self.cfg.frequencies)
            finite = np.isfinite(features).all(1)
            for j, k in enumerate(kept):
                if k not in answered:
                    continue
                answer = spec.answer(scores[j], items[k], self.cfg.with_pdf)
                f = features[j] if finite[j] else None
                out[k] = catalogue.answer_row(answer, sources[k], indices[k], f)
        for k, e in enumerate(items):
            if isinstance(e, InputError):
                out[k] = catalogue.error_row(e, spec.model_facts, sources[k], indices[k], ids[k])
        return catalogue.frame(out, self.columns)
