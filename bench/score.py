"""Batch-scoring throughput: FITS cutouts per second through ``skyguard score`` on the local
engine and on Spark in local mode with one and with two cores, so that Spark's overhead
(``local[1]`` / local engine) and its scaling (``local[2]`` / ``local[1]``) are known ratios.

Same bundle (morphology ConvNet, a quick one: speed does not depend on the weights), same files,
same batch size, one machine. Each engine scores the set ``1 + --warm`` times in one session:

* **cold** — the first job: Spark's Python workers start, import numpy/astropy/ONNX Runtime
  and load the bundle (once per worker process); the local engine loads the bundle;
* **warm** — the later jobs, on the same session and workers: the steady state of a long job,
  where the start-up above is spread over millions of cutouts. The best and the median of them
  are printed (this machine is shared: the best is the least disturbed), and the ratios use the
  best.

cutouts/s counts the scoring pass (read, decode, preprocess, ONNX Runtime, answer, write Parquet)
and leaves out what each job does once: loading and checking the bundle on the driver, starting
the Spark session (its seconds are printed apart), and the summary (drift tally) pass, whose
seconds are printed too. The distinct cutouts are the test and train objects of both domains;
the set is made up to ``--cutouts`` files by copies (decoding and scoring cost the same).

Run:  .venv/bin/python bench/score.py [--objects 100] [--cutouts 1200] [--batch 64] [--warm 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def setup(tmp: Path, n_objects: int, n_cutouts: int) -> tuple[str, Path]:
    """A quick morphology bundle and ``n_cutouts`` FITS files of its mocks: (tag, directory)."""
    from training.cutouts import write_cutouts
    from training.runs import ensure_datasets, train

    data = tmp / "data"
    ensure_datasets(data, "morphology", n_objects, progress=False)
    res = train("morphology", "regular", quick=True, data_root=data, out_root=tmp / "runs",
                progress=False, architecture="convnet", epochs=1, n_max=n_objects, n_boot=10,
                n_canaries=6, n_parity=4)  # fmt: skip
    fits = tmp / "fits"
    made = []
    for domain in ("y10", "y1"):
        made += write_cutouts(data / "morphology" / f"{domain}.h5", fits / "a", n=None,
                              indices=range(n_objects))  # fmt: skip
    for k in range(n_cutouts - len(made)):  # copies, to reach the asked number of files
        src = made[k % len(made)]
        dst = fits / f"copy{k // len(made)}" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return res.tag, fits


def run_engine(
    engine: str, master: str | None, tag: str, fits: Path, out: Path, batch: int, warm: int
):
    """Score ``fits`` 1 + ``warm`` times on one engine: (session seconds, [summaries])."""
    from scoring import ScoreJob, score

    session_s, spark = 0.0, None
    if engine == "spark":
        from pyspark.sql import SparkSession

        t0 = time.perf_counter()
        spark = (
            SparkSession.builder.master(master)
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        spark.range(1).count()
        session_s = time.perf_counter() - t0
    runs = []
    try:
        for k in range(1 + warm):
            job = ScoreJob("morphology", str(fits), str(out / f"{engine}-{master or ''}-{k}".replace("[", "").replace("]", "")),
                           model=tag, engine=engine, batch_size=batch)  # fmt: skip
            runs.append(score(job))
    finally:
        if spark is not None:
            spark.stop()
    return session_s, runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects", type=int, default=100, help="mock objects per domain")
    ap.add_argument("--cutouts", type=int, default=1200, help="FITS files to score")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--warm", type=int, default=3, help="warm jobs after the cold one")
    args = ap.parse_args(argv)
    print(f"# .venv/bin/python bench/score.py {' '.join(argv or sys.argv[1:])}")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory(prefix="skyguard-bench-score-") as tmp:
        tmp = Path(tmp)
        os.environ["BENTOML_HOME"] = str(tmp / "bentoml")
        os.environ["BENTOML_DO_NOT_TRACK"] = "true"
        tag, fits = setup(tmp, args.objects, args.cutouts)
        n = sum(1 for _ in fits.rglob("*.fits"))
        print(f"# {n} FITS cutouts (morphology g,r,i 3×100×100 float32, {2 * args.objects} "
              f"distinct), batch {args.batch}, {os.cpu_count()} cores, model {tag}, "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"{'engine':<16}{'session s':>10}{'cold c/s':>10}{'warm c/s best':>15}"
              f"{'median':>8}{'scoring s':>11}{'summary s':>11}{'files':>7}")  # fmt: skip
        best = {}
        for engine, master in (("local", None), ("spark", "local[1]"), ("spark", "local[2]")):
            session_s, runs = run_engine(engine, master, tag, fits, tmp / "out", args.batch,
                                         args.warm)  # fmt: skip
            assert all(r["counts"]["scored"] == n for r in runs), runs[-1]["counts"]
            name = master if master else "local engine"
            rates = [r["cutouts_per_s"] for r in runs[1:]]
            top = runs[1 + int(np.argmax(rates))]
            best[name] = max(rates)
            print(f"{name:<16}{session_s:>10.1f}{runs[0]['cutouts_per_s']:>10.1f}"
                  f"{best[name]:>15.1f}{np.median(rates):>8.1f}{top['seconds']['score']:>11.2f}"
                  f"{top['seconds']['summary']:>11.2f}{top['part_files']:>7}")  # fmt: skip
        print(f"Spark overhead, local[1] / local engine (best warm): "
              f"{best['local[1]'] / best['local engine']:.2f}")  # fmt: skip
        print(f"Spark scaling, local[2] / local[1] (best warm):      "
              f"{best['local[2]'] / best['local[1]']:.2f}")  # fmt: skip
        print(f"# load average after the runs: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
