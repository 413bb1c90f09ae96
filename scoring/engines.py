"""A scoring job from start to summary, on one of two engines that run the same partition
function (``scoring.scorer.PartitionScorer``) and so write the same rows:

* ``spark`` — FITS files read with Spark's ``binaryFile`` source (HDF5: index ranges spread over
  ``parallelize``), ``mapInPandas`` on the executors, the catalogue written with
  ``DataFrame.write.parquet``; then the written catalogue's tally columns are read back, one tally
  per partition, and added up on the driver. The bundle travels to the executors with
  ``SparkContext.addFile``: executors need no model store. Spark's file sources make no row of an
  empty file; when rows are missing, the listed files without one are scored (as empty) and
  appended, so every file has its row.
* ``local`` — the same function over parts of ``part_size`` cutouts, one after another in this
  process, each written as ``part-NNNNN.parquet`` with pyarrow. For small jobs, and for checking.

Either way the catalogue directory also gets ``_summary.json`` (Spark and pyarrow skip names
starting with ``_`` when they read the directory back): counts, refusals by reason, the drift test
of the whole batch against the bundle's reference latents (``scoring.drift``) and timings.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pandas as pd

from service.fits_input import REPAIRS, Limits, Repair

from . import catalogue
from .catalogue import Tally
from .drift import FourierDrift
from .inputs import FITS_GLOB, Dataset, is_glob, is_hdf5, list_fits
from .scorer import PartitionConfig, PartitionScorer

Engine = Literal["local", "spark"]
ENGINES = ("local", "spark")
SUMMARY_NAME = "_summary.json"
OPEN_COST = "spark.sql.files.openCostInBytes"
#: what opening a cutout file costs, in bytes read, when splitting files into Spark partitions
CUTOUT_OPEN_COST = 256 * 1024


@dataclass(frozen=True)
class ScoreJob:
    """One batch-scoring run; checked once, when made.

    task : ``morphology``, ``lsbg`` or ``photoz``. inputs : a directory or glob of FITS cutouts,
        or an HDF5 dataset (``scoring.inputs``). out : the catalogue directory (Parquet).
    model : BentoML store tag or bundle directory (default ``skyguard-<task>:latest``, as the
        service). engine : ``local`` or ``spark``.
    master : Spark master URL (default: spark-submit's, else ``local[*]``). spark_conf : extra
        ``(key, value)`` Spark settings for a session this job starts.
    batch_size : cutouts per model call (and per Arrow batch on Spark).
    part_size : cutouts per part file (local engine) and per partition (HDF5 on Spark; FITS files
        are split by Spark's file source).
    split : HDF5 only: score one split (train, val, test) instead of all objects.
    repair, with_pdf, provider : as the service's ``repair``, ``pdf`` and ``SKYGUARD_PROVIDER``.
    drift_frequencies, seed, alpha : the drift test's J (at most (N_ref − 1) / 2 for a bundle
        with N_ref reference latents), frequency seed and level.
    overwrite : replace an existing catalogue. summary : where the summary JSON goes (default
        ``out/_summary.json``; give a local path when ``out`` is not on this machine's disk).
    """

    task: str
    inputs: str
    out: str
    model: str | None = None
    engine: Engine = "local"
    master: str | None = None
    spark_conf: tuple[tuple[str, str], ...] = ()
    batch_size: int = 64
    part_size: int = 1024
    split: str | None = None
    repair: Repair = "none"
    with_pdf: bool = False
    provider: str = "auto"
    drift_frequencies: int = 5
    seed: int = 0
    alpha: float = 0.05
    overwrite: bool = False
    summary: str | None = None
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        from service.config import TASKS

        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.repair not in REPAIRS:
            raise ValueError(f"repair must be one of {REPAIRS}, got {self.repair!r}")
        if self.provider not in ("auto", "cuda", "cpu"):
            raise ValueError(f"provider must be auto, cuda or cpu, got {self.provider!r}")
        for name in ("batch_size", "part_size", "drift_frequencies"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.split is not None and not is_hdf5(self.inputs):
            raise ValueError("split applies to an HDF5 dataset input only")

    @property
    def model_ref(self) -> str:
        return self.model or f"skyguard-{self.task}:latest"

    @property
    def summary_path(self) -> str | None:
        if self.summary:
            return self.summary
        return None if _remote(self.out) else os.path.join(_plain(self.out), SUMMARY_NAME)


def score(job: ScoreJob) -> dict:
    """Run ``job``: write its catalogue and summary; return the summary."""
    from service.runtime import TaskSpec

    t0 = time.perf_counter()
    spec = TaskSpec.from_ref(job.task, job.model_ref)
    reference = spec.bundle.reference_latents()
    # the test needs more reference latents than features (tiny test bundles have a handful)
    n_frequencies = max(1, min(job.drift_frequencies, (len(reference) - 1) // 2))
    drift = FourierDrift(reference, n_frequencies, job.alpha, job.seed)
    dataset = None
    if is_hdf5(job.inputs):
        dataset = Dataset.open(job.inputs, spec.bands, spec.shape, job.split)
    elif not _remote(job.inputs) and not list_fits(job.inputs):
        raise FileNotFoundError(f"no FITS files at {job.inputs} (looked for {FITS_GLOB})")
    shared = ("task", "batch_size", "repair", "with_pdf", "provider", "limits")
    cfg = PartitionConfig(
        bundle_dir=str(spec.bundle.path),
        frequencies=drift.frequencies,
        dataset=dataset,
        **{name: getattr(job, name) for name in shared},
    )
    run = _run_spark if job.engine == "spark" else _run_local
    tally, facts = run(job, cfg, t0)
    summary = {
        "task": job.task,
        "model": {**spec.model_facts, "ref": job.model_ref, "bundle": str(spec.bundle.path)},
        "outputs": {"classes": spec.bundle.classes}
        if spec.bundle.classes
        else {"z_bins": len(spec.bundle.z_edges) - 1},
        "inputs": job.inputs,
        "catalogue": job.out,
        **facts,
        "counts": tally.counts(),
        "drift": _drift(drift, tally),
    }
    seconds = summary["seconds"]
    seconds["total"] = time.perf_counter() - t0
    summary["cutouts_per_s"] = tally.rows / seconds["score"] if seconds["score"] > 0 else None
    if job.summary_path:
        Path(job.summary_path).write_text(json.dumps(summary, indent=1) + "\n")
        summary["summary_file"] = job.summary_path
    return summary


def _drift(drift: FourierDrift, tally: Tally) -> dict:
    if tally.drift is None or tally.drift.n < 2:
        n = 0 if tally.drift is None else tally.drift.n
        return {"error": f"{n} scored cutouts with finite latents; the test needs at least 2"}
    return drift.predict(tally.drift)


# --- local --------------------------------------------------------------------------------------


def _run_local(job: ScoreJob, cfg: PartitionConfig, t0: float) -> tuple[Tally, dict]:
    import pyarrow.parquet as pq

    out = Path(_plain(job.out))
    _clear(out, job.overwrite)
    out.mkdir(parents=True)
    columns = catalogue.schema(job.task, job.with_pdf)
    scorer = PartitionScorer(cfg)
    t1 = time.perf_counter()
    tally, n_parts = Tally(), 0
    for n_parts, frame in enumerate(_local_parts(job, cfg), start=1):
        df = pd.concat(list(scorer(iter([frame]))), ignore_index=True)
        pq.write_table(catalogue.to_arrow(df, columns), out / f"part-{n_parts - 1:05d}.parquet")
        tally = tally + Tally.of(df)
    (out / "_SUCCESS").touch()
    t2 = time.perf_counter()
    facts = {
        "engine": "local",
        "part_files": n_parts,
        "seconds": {"setup": t1 - t0, "score": t2 - t1, "summary": 0.0},
    }
    return tally, facts


def _local_parts(job: ScoreJob, cfg: PartitionConfig):
    """Input frames of ``part_size`` cutouts each, as Spark would hand them to a partition."""
    if cfg.dataset is not None:
        ranges = cfg.dataset.ranges(job.batch_size)
        per = max(1, job.part_size // job.batch_size)
        for i in range(0, len(ranges), per):
            paths, indices = zip(*ranges[i : i + per], strict=True)
            yield pd.DataFrame({"path": paths, "indices": indices})
        return
    files = list_fits(job.inputs)
    for i in range(0, len(files), job.part_size):
        paths = files[i : i + job.part_size]
        yield pd.DataFrame({"path": paths, "content": [Path(p).read_bytes() for p in paths]})


def _clear(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise FileExistsError(f"{out} exists; choose another output or pass --overwrite")
    stray = [
        p.name
        for p in out.iterdir()
        if not (p.name.startswith(("_", ".")) or p.name.startswith("part-"))
    ]
    if not out.is_dir() or stray:
        raise FileExistsError(
            f"{out} does not look like a catalogue (holds {stray[:3]}); not overwriting it"
        )
    shutil.rmtree(out)


# --- spark --------------------------------------------------------------------------------------


def spark_session(job: ScoreJob):
    """The active Spark session, or a new one for ``job`` (and whether this call made it).

    Without a master from the job or from spark-submit, Spark runs in this process (``local[*]``)
    and its Python workers run this interpreter.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started this driver
    if not under_submit and (job.master is None or job.master.startswith("local")):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(f"skyguard-score-{job.task}")
    if job.master:
        builder = builder.master(job.master)
    for key, value in job.spark_conf:
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark, True


def _run_spark(job: ScoreJob, cfg: PartitionConfig, t0: float) -> tuple[Tally, dict]:
    from pyspark.sql.pandas.types import from_arrow_schema

    spark, created = spark_session(job)
    try:
        sc = spark.sparkContext
        # one Arrow batch is one model batch: a partition's cutouts are never all in memory
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(job.batch_size))
        if not sc.getConf().contains(OPEN_COST):
            # Spark prices opening a file like reading 4 MB, which packs ~30 cutouts into a task
            # and lets per-task Python overhead dominate (measured: 1.9x slower on 480 cutouts)
            spark.conf.set(OPEN_COST, str(CUTOUT_OPEN_COST))
        sc.addFile(cfg.bundle_dir, recursive=True)
        scorer = PartitionScorer(replace(cfg, shipped=True))
        schema = from_arrow_schema(scorer.columns)
        listed = None
        if cfg.dataset is not None:
            ranges = cfg.dataset.ranges(job.batch_size)
            n_parts = max(1, math.ceil(len(ranges) * job.batch_size / job.part_size))
            source = spark.createDataFrame(
                sc.parallelize(ranges, n_parts), "path string, indices array<bigint>"
            )
        else:
            reader = spark.read.format("binaryFile")
            if not is_glob(job.inputs):
                reader = reader.option("recursiveFileLookup", "true")
                reader = reader.option("pathGlobFilter", FITS_GLOB)
            files = reader.load(job.inputs)
            listed = files.inputFiles()  # the driver's listing, made by load()
            source = files.select("path", "content")
        t1 = time.perf_counter()
        mode = "overwrite" if job.overwrite else "errorifexists"
        source.mapInPandas(scorer, schema).write.mode(mode).parquet(job.out)
        t2 = time.perf_counter()
        tally = _tally(spark, job.out, scorer.columns.names)
        if listed is not None and tally.rows < len(listed):
            _score_empty_files(spark, scorer, schema, job.out, listed)
            tally = _tally(spark, job.out, scorer.columns.names)
        t3 = time.perf_counter()
        facts = {
            "engine": "spark",
            "master": sc.master,
            "parallelism": sc.defaultParallelism,
            "part_files": _part_files(job.out),
            "seconds": {"setup": t1 - t0, "score": t2 - t1, "summary": t3 - t2},
        }
        return tally, facts
    finally:
        if created:
            spark.stop()


def _tally(spark, out: str, columns: list[str]) -> Tally:
    """The summary's tally of a written catalogue: one per partition, added on the driver."""
    wanted = [*catalogue.TALLY_COLUMNS, *(["label"] if "label" in columns else [])]
    written = spark.read.parquet(_glob_escaped(out)).select(*wanted)
    parts = written.mapInPandas(catalogue.tally_partition, "tally string").collect()
    return sum((Tally.from_json(r["tally"]) for r in parts), Tally())


def _score_empty_files(spark, scorer: PartitionScorer, schema, out: str, listed: list[str]):
    """Append the rows of listed files that have none: Spark's file sources make no split, and
    so no row, of an empty file, but an empty cutout (a failed transfer) must get its row and its
    error like any other broken file. Only runs when rows are missing."""
    from .inputs import local_path

    have = {r["source"] for r in spark.read.parquet(_glob_escaped(out)).select("source").collect()}
    missing = [(p, b"") for p in listed if local_path(p) not in have]
    rows = spark.createDataFrame(missing, "path string, content binary")
    rows.mapInPandas(scorer, schema).write.mode("append").parquet(out)


def _part_files(out: str) -> int | None:
    """Parquet files in a local catalogue directory (one per non-empty partition)."""
    return None if _remote(out) else len(list(Path(_plain(out)).glob("part-*.parquet")))


def _glob_escaped(path: str) -> str:
    """``path`` with Hadoop's glob characters escaped: Spark reads 'out[1]' as a pattern."""
    return re.sub(r"([\\\[\]{}*?])", r"\\\1", path)


def _remote(location: str) -> bool:
    """Whether ``location`` is a URI of another file system (hdfs://, s3a://, ...)."""
    return "://" in location and not location.startswith("file:")


def _plain(location: str) -> str:
    from .inputs import local_path

    return local_path(location)
