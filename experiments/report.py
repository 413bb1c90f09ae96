"""What every experiment report shares: the scale block, Markdown tables, and the files written.

An experiment (``experiments.<name>``) computes its numbers into one JSON-able dict and
its figures into PNGs; this module only formats and writes them: ``report.md`` (readable on its
own, PNGs linked by relative path), ``report.json`` (every number) in the report directory.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MISSING = "—"


class Stopwatch:
    """Wall time per stage of an experiment: ``lap(stage)`` records the seconds since the last lap
    (or the start) under ``stages[stage]``; ``total()`` is the seconds since the start."""

    def __init__(self) -> None:
        self.start = self._last = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = round(now - self._last, 1)
        self._last = now

    def total(self) -> float:
        return round(time.perf_counter() - self.start, 1)


def run_header(
    experiment: str, paper: str, command: str | None, device: str, watch: Stopwatch
) -> dict:
    """The keys every ``report.json`` opens with: which experiment and seed paper, the command,
    the environment and the wall time (whole and per stage)."""
    return {
        "experiment": experiment,
        "seed_paper": paper,
        "command": command,
        "environment": environment(device),
        "wall_time_s": watch.total(),
        "stage_seconds": watch.stages,
    }


def fmt(x: float | int | None, digits: int = 3) -> str:
    """A number for a table: ``digits`` decimals for floats, as is for ints, "—" for None/NaN."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return MISSING
    if isinstance(x, int | np.integer):
        return str(int(x))
    return f"{float(x):.{digits}f}"


def beside(ours: float | None, seed: float | None, digits: int = 3, seed_digits: int = 2) -> str:
    """Our figure with the seed's in parentheses, each to its decimals: ``0.713 (0.70)``."""
    return f"{fmt(ours, digits)} ({fmt(seed, seed_digits)})"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; cells are strings already formatted."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def environment(device: str) -> dict:
    """Where the experiment ran: device, CPU cores and torch threads, versions, git revision."""
    import torch

    from training import __version__
    from training.export import _git_revision  # the one place the project asks git

    return {
        "device": device,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "skyguard": __version__,
        "git_revision": _git_revision(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _jsonable(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _finite(o):
    """NaN and inf become None: JSON has no NaN."""
    if isinstance(o, float):
        return o if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def write_report(out_dir: Path, markdown: str, numbers: dict) -> tuple[Path, Path]:
    """Write ``out_dir/report.md`` and ``out_dir/report.json``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "report.md", out_dir / "report.json"
    md.write_text(markdown.rstrip() + "\n")
    js.write_text(json.dumps(_finite(numbers), indent=1, default=_jsonable) + "\n")
    return md, js
