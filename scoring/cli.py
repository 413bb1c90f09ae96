"""``skyguard score`` (also ``python -m scoring``, and the file spark-submit runs): a thin shell over
``scoring.engines.score``. Only argparse at import, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

TASKS = ("morphology", "lsbg", "photoz")


def build_parser(prog: str = "skyguard score") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Score a directory or glob of FITS cutouts, or an HDF5 dataset, with a task's "
        "model bundle, on Spark (--engine spark) or in this process (--engine local), and write "
        "a Parquet catalogue OUT (one row per cutout: the service's answer, OOD score, model, "
        "or the reason a cutout was refused) with OUT/_summary.json: counts and the drift of "
        "the whole batch against the bundle's reference latents.",
        epilog="example: skyguard score morphology data/cutouts --out out/morphology.parquet "
        "--engine spark --master 'local[*]'",
    )
    p.add_argument("task", choices=TASKS)
    p.add_argument("inputs", help="directory of FITS cutouts (searched recursively), a quoted "
                   "glob ('cutouts/*.fits'), or an HDF5 dataset (.h5)")  # fmt: skip
    p.add_argument("--out", required=True, help="catalogue directory (Parquet)")
    p.add_argument("--model", default=None,
                   help="BentoML store tag or bundle directory (default skyguard-TASK:latest)")  # fmt: skip
    p.add_argument("--engine", choices=("local", "spark"), default="local")
    p.add_argument("--master", default=None,
                   help="Spark master (default: spark-submit's, else local[*])")  # fmt: skip
    p.add_argument("--conf", dest="spark_conf", action="append", default=[], metavar="KEY=VALUE",
                   help="a Spark setting for the session this job starts (repeatable)")  # fmt: skip
    p.add_argument("--batch", dest="batch_size", type=int, default=64,
                   help="cutouts per model call (default 64)")  # fmt: skip
    p.add_argument("--part-size", type=int, default=1024,
                   help="cutouts per part file (local) or per partition (HDF5 on Spark)")  # fmt: skip
    p.add_argument("--split", choices=("train", "val", "test"), default=None,
                   help="HDF5 input: score one split only (default: all objects)")  # fmt: skip
    p.add_argument("--repair", choices=("none", "zero", "median"), default="none",
                   help="non-finite pixels: refuse the cutout (none) or replace them")  # fmt: skip
    p.add_argument("--pdf", dest="with_pdf", action="store_true",
                   help="photoz: also write the 180-bin p(z)")  # fmt: skip
    p.add_argument("--provider", choices=("auto", "cuda", "cpu"), default="auto",
                   help="ONNX Runtime provider on the executors (auto: CUDA when present)")  # fmt: skip
    p.add_argument("--drift-frequencies", type=int, default=5,
                   help="J, random frequencies of the drift test (default 5)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the drift test's frequencies")
    p.add_argument("--alpha", type=float, default=0.05, help="level of the drift test")
    p.add_argument("--overwrite", action="store_true", help="replace an existing catalogue")
    p.add_argument("--summary", default=None,
                   help="summary JSON path (default OUT/_summary.json)")  # fmt: skip
    return p


def _conf(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--conf expects KEY=VALUE, got {pair!r}")
        out.append((key.strip(), value.strip()))
    return tuple(out)


def main(argv: list[str] | None = None, prog: str = "skyguard score") -> int:
    args = build_parser(prog).parse_args(argv)
    from .engines import ScoreJob, score

    try:
        args.spark_conf = _conf(args.spark_conf)
        job = ScoreJob(**{f.name: getattr(args, f.name) for f in fields(ScoreJob)
                          if hasattr(args, f.name)})  # fmt: skip
        summary = score(job)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:  # BundleError too
        print(f"error: {e}", file=sys.stderr)
        return 1
    _report(summary)
    return 0


def _report(s: dict) -> None:
    c, d, t = s["counts"], s["drift"], s["seconds"]
    m = s["model"]
    print(f"{s['task']}: {m['name']}:{m['version']} ({m['architecture']}/{m['recipe']}), "
          f"engine {s['engine']}{' ' + s['master'] if 'master' in s else ''}, "
          f"{s['part_files']} part files")  # fmt: skip
    refused = ", ".join(f"{k} {v}" for k, v in c["refused"].items()) or "none"
    print(f"{c['rows']} cutouts: {c['scored']} scored, refused: {refused}")
    if c["labels"]:
        print("labels: " + ", ".join(f"{k} {v}" for k, v in c["labels"].items()))
    if c["ood_mean"] is not None:
        print(f"OOD score: mean {c['ood_mean']:.1f}, above 95: {c['ood_above_95']}, "
              f"above 99: {c['ood_above_99']}")  # fmt: skip
    if "error" in d:
        print(f"drift: not tested ({d['error']})")
    else:
        print(f"drift vs {d['n_ref']} reference latents: {'DRIFT' if d['is_drift'] else 'none'} "
              f"at α = {d['alpha']} (p = {d['p_value']:.3g}, T² = {d['statistic']:.1f}, "
              f"threshold {d['threshold']:.1f}, MMD² ≈ {d['mmd2']:.2e})")  # fmt: skip
    rate = f"{s['cutouts_per_s']:.1f} cutouts/s" if s["cutouts_per_s"] else "no cutouts"
    print(f"time: setup {t['setup']:.1f} s, scoring {t['score']:.1f} s ({rate}), "
          f"summary {t['summary']:.1f} s, total {t['total']:.1f} s")  # fmt: skip
    print(f"catalogue: {s['catalogue']}")
    if "summary_file" in s:
        print(f"summary: {s['summary_file']}")
