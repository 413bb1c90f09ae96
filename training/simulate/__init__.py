"""Survey mocks for the three tasks (GalSim; constants from surveycodex).

``simulator(task)`` returns the task's simulator; ``runner.generate`` writes its paired domains.
"""

from __future__ import annotations

from .base import Simulator

TASKS = ("morphology", "photoz", "lsbg")


def simulator(task: str, **options) -> Simulator:
    """The simulator of ``task`` ('morphology', 'photoz' or 'lsbg'), built with ``options``."""
    if task == "morphology":
        from .morphology import MorphologySimulator

        return MorphologySimulator(**options)
    if task == "photoz":
        from .photoz import PhotozSimulator

        return PhotozSimulator(**options)
    if task == "lsbg":
        from .lsbg import LsbgSimulator

        return LsbgSimulator(**options)
    raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


__all__ = ["TASKS", "Simulator", "simulator"]
