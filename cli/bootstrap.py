"""What ``make serve`` does before starting the server: make sure every task has a model bundle in
the BentoML store (training the ``quick`` recipe, with progress, when the store has none) and
write a few example FITS cutouts for the README's curl lines.

Run:  python -m cli.bootstrap [--data data/train] [--examples data/examples]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from service.config import TASKS, settings

#: The example cutouts: (task, source domain, layout, compression).
EXAMPLES = (
    ("morphology", "y10", "cube", None),
    ("morphology", "y1", "cube", None),
    ("lsbg", "des", "bands", "RICE_1"),
    ("photoz", "deep", "cube", "GZIP_2"),
)


def ensure_models(tasks: tuple[str, ...], data_root: Path, out_root: Path) -> dict[str, str]:
    """{task: tag} of the newest stored bundle of each task, training quick ones where missing."""
    from core.store import list_models
    from training.runs import train

    tags = {}
    for task in tasks:
        rows = list_models(task)
        if rows:
            tags[task] = rows[0]["tag"]
            print(f"{task}: using {tags[task]} ({rows[0]['labels'].get('recipe')})")
            continue
        print(f"{task}: no model in the BentoML store; training the quick recipe")
        t0 = time.perf_counter()
        res = train(task, "regular", quick=True, data_root=data_root, out_root=out_root)
        tags[task] = res.tag
        print(f"{task}: stored {res.tag} after {time.perf_counter() - t0:.0f} s")
    return tags


def write_examples(data_root: Path, out: Path, per_domain: int = 3) -> list[Path]:
    """A few test-split cutouts per task as FITS files: ``<task>_<domain>_<k>.fits``, k = 1, 2, …
    (the object's dataset index is in the OBJECT keyword)."""
    from training.cutouts import write_cutouts

    paths = []
    for task, domain, layout, compression in EXAMPLES:
        src = data_root / task / f"{domain}.h5"
        if not src.is_file():
            continue
        written = write_cutouts(
            src, out / ".tmp", n=per_domain, split="test", layout=layout, compression=compression
        )
        for k, p in enumerate(written, 1):
            paths.append(p.replace(out / f"{task}_{domain}_{k}.fits"))
    (out / ".tmp").rmdir()
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/train")
    ap.add_argument("--runs", default="out/runs")
    ap.add_argument("--examples", default="data/examples")
    args = ap.parse_args(argv)
    tasks = settings().tasks
    ensure_models(tuple(t for t in TASKS if t in tasks), Path(args.data), Path(args.runs))
    from training.runs import ensure_datasets

    for task in tasks:  # examples need the datasets even when the models came from elsewhere
        ensure_datasets(Path(args.data), task, 300)
    paths = write_examples(Path(args.data), Path(args.examples))
    print(f"{len(paths)} example cutouts in {args.examples}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
