"""The contract every task's simulator fulfils, and the per-object random streams.

A simulator draws an object's truth from one generator and renders its noiseless scene per
domain; noise comes from a second generator per (object, domain). Both generators are derived from
``(seed, task, object index[, domain])`` alone, so an object's pixels do not depend on how many
workers made the dataset or in which order.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import numpy as np

from .domains import Domain


class Simulator(Protocol):
    """What ``training.simulate.runner`` needs from a task's simulator."""

    task: str
    #: class names for classification tasks, ``None`` for regression (photo-z)
    classes: tuple[str, ...] | None
    domains: tuple[Domain, ...]

    def prepare(self) -> None:
        """Build per-process caches (PSFs, colour tables) before the first object."""

    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        """Truth of one object: scalars only, including ``label`` (or ``z`` and ``ebv``)."""

    def render(self, truth: dict[str, float], domain: Domain) -> np.ndarray:
        """[B, N, N] noiseless scene in electrons / s / native pixel (N = domain.native_size)."""


def _task_code(task: str) -> int:
    return zlib.crc32(task.encode())


def truth_rng(seed: int, task: str, index: int) -> np.random.Generator:
    """The generator for object ``index``'s truth (shared by every domain of the task)."""
    return np.random.default_rng(np.random.SeedSequence([seed, _task_code(task), index]))


def noise_rng(seed: int, task: str, index: int, domain: str) -> np.random.Generator:
    """The generator for object ``index``'s noise in ``domain``."""
    return np.random.default_rng(
        np.random.SeedSequence([seed, _task_code(task), index, zlib.crc32(domain.encode())])
    )
