"""Make a task's paired datasets over all cores, deterministically.

Objects are generated in chunks by a process pool and written in index order; each object's truth
and noise come from generators keyed by ``(seed, task, index[, domain])`` (``base.py``), so the
files are byte-identical whatever ``workers`` is.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.datasets import SPLIT_FRACTIONS, DatasetWriter, make_splits

from .. import __version__
from .base import Simulator, noise_rng, truth_rng
from .observe import expose, resample

_SIM: Simulator | None = None
_SEED = 0


def make_object(
    sim: Simulator, seed: int, index: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Truth and the noisy stored image of every domain for object ``index``.

    Returns ``(truth, {domain name: [B, H, W] float32 electrons})``.
    """
    truth = sim.draw(truth_rng(seed, sim.task, index))
    scenes: dict[tuple, np.ndarray] = {}
    images: dict[str, np.ndarray] = {}
    noiseless: dict[str, np.ndarray] = {}
    for d in sim.domains:
        if d.optics_key not in scenes:
            scenes[d.optics_key] = sim.render(truth, d)
        rate = scenes[d.optics_key]
        noiseless[d.name] = rate
        img = expose(
            rate, np.asarray(d.exposure), d.sky_rate(), noise_rng(seed, sim.task, index, d.name)
        )
        images[d.name] = resample(img, d.out_size) if d.out_size != d.native_size else img
    annotate = getattr(sim, "annotate", None)
    if annotate is not None:
        truth.update(annotate(truth, noiseless))
    return truth, images


def _init(sim: Simulator, seed: int) -> None:
    global _SIM, _SEED
    # One BLAS thread per worker: the pool already uses every core, and forked workers inherit a
    # BLAS that was initialised with one thread per core.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # stays in force for the worker's life
    _SIM, _SEED = sim, seed
    sim.prepare()


def _work(index: int):
    assert _SIM is not None
    return index, *make_object(_SIM, _SEED, index)


@dataclass
class Result:
    """What ``generate`` made: one file per domain, and how long it took."""

    paths: dict[str, Path]
    n: int
    seconds: float
    workers: int
    extra_attrs: dict


def generate(
    sim: Simulator,
    n: int,
    out: Path,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    label_source: str = "construction",
) -> Result:
    """Simulate ``n`` objects of ``sim.task`` in every domain and write ``out/<task>/<domain>.h5``.

    ``label_source`` ('construction' or 'gm20') chooses what the ``labels`` dataset holds for tasks
    whose simulator annotates a second labelling (morphology: the G–M20 class, 002 §2.1).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if label_source not in ("construction", "gm20"):
        raise ValueError(f"label_source must be 'construction' or 'gm20', got {label_source!r}")
    workers = workers or os.cpu_count() or 1
    start = time.perf_counter()
    sim.prepare()  # build caches once in the parent, so forked workers inherit them
    label_kind = "class" if sim.classes is not None else "regression"
    writers = {}
    for d in sim.domains:
        attrs = {
            **d.attrs(),
            "task": sim.task,
            "seed": seed,
            "n": n,
            "code_version": __version__,
            "label_kind": label_kind,
            "label_source": label_source,
            "split_fractions": list(SPLIT_FRACTIONS),
            "split_names": ["train", "val", "test"],
            "paired_domains": [x.name for x in sim.domains],
        }
        if sim.classes is not None:
            attrs["classes"] = list(sim.classes)
        writers[d.name] = DatasetWriter(
            out / sim.task / f"{d.name}.h5", n, len(d.bands), d.out_size, attrs, label_kind
        )
    truths: list[dict[str, float]] = []
    try:
        with _objects(sim, seed, n, workers) as it:
            for index, truth, images in tqdm(
                it, total=n, desc=f"simulate {sim.task}", disable=not progress, unit="obj"
            ):
                if label_source == "gm20":
                    truth = {
                        **truth,
                        "label": truth["label_gm20"],
                        "label_construction": truth["label"],
                    }
                truths.append(truth)
                for name, img in images.items():
                    writers[name].write(index, img)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    extra = {}
    if truths and "label_gm20" in truths[0]:
        a = np.array([t.get("label_construction", t["label"]) for t in truths], dtype=int)
        b = np.array([t["label_gm20"] for t in truths], dtype=int)
        extra["gm20_agreement"] = float(np.mean(a == b))
        extra["gm20_confusion"] = _confusion(a, b, len(sim.classes or ())).tolist()
    split = make_splits(n, seed)
    for w in writers.values():
        w.finish(truths, split, extra)
    return Result(
        {d.name: writers[d.name].path for d in sim.domains},
        n,
        time.perf_counter() - start,
        workers,
        extra,
    )


@contextmanager
def _objects(sim: Simulator, seed: int, n: int, workers: int) -> Iterator[Iterator[tuple]]:
    """(index, truth, images) for objects 0..n−1 in index order, from a pool of ``workers``
    processes (or in-process for one), each with a one-thread BLAS; cleans up on any exit."""
    from threadpoolctl import threadpool_limits

    if workers == 1:
        with threadpool_limits(1):
            yield ((i, *make_object(sim, seed, i)) for i in range(n))
        return
    pool = mp.get_context("fork").Pool(workers, initializer=_init, initargs=(sim, seed))
    try:
        yield pool.imap(_work, range(n), chunksize=max(1, min(16, n // (4 * workers))))
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _confusion(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """[k, k] counts: rows the construction class, columns the G–M20 class."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (a.astype(int), b.astype(int)), 1)
    return m
