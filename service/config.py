"""Service settings, read once from the environment (``SKYGUARD_*``) when the service starts.

=============================  =================================  ===============================
variable                       default                            meaning
=============================  =================================  ===============================
``SKYGUARD_TASKS``             ``morphology,lsbg,photoz``         tasks to serve
``SKYGUARD_MODEL_<TASK>``      ``skyguard-<task>:latest``         BentoML store tag or bundle dir
``SKYGUARD_PROVIDER``          ``auto``                           ``auto`` (CUDA if present), or
                                                                  ``cuda`` / ``cpu``
``SKYGUARD_MAX_BATCH``         ``64``                             adaptive batching: largest batch
``SKYGUARD_MAX_LATENCY_MS``    ``5000``                           adaptive batching: a request
                                                                  that cannot be answered within
                                                                  this is shed (503)
``SKYGUARD_GATEWAY_WORKERS``   ``1``                              HTTP/decoding worker processes
``SKYGUARD_MAX_UPLOAD_BYTES``  ``16777216``                       per FITS file
``SKYGUARD_MAX_CUTOUTS``       ``256``                            per request
``SKYGUARD_MAX_PIXELS``        ``4000000``                        per HDU, as declared in headers
``SKYGUARD_LATENT_SAMPLE``     ``1.0``                            fraction of latents sent to the
                                                                  monitor
``SKYGUARD_MONITOR_BACKLOG``   ``64``                             unanswered monitor calls before
                                                                  latents are dropped
``SKYGUARD_MONITOR_WINDOW``    ``2000``                           latents kept per task
``SKYGUARD_MONITOR_TIMEOUT_S`` ``10``                             wait for the monitor before
                                                                  counting latents dropped
=============================  =================================  ===============================

A value that cannot be parsed stops start-up with a message naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .fits_input import Limits

TASKS = ("morphology", "lsbg", "photoz")


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return value


def _float(name: str, default: float, lo: float, hi: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} must lie in [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class Settings:
    tasks: tuple[str, ...] = TASKS
    models: dict[str, str] = field(default_factory=dict)
    provider: str = "auto"
    max_batch: int = 64
    max_latency_ms: int = 5000
    gateway_workers: int = 1
    limits: Limits = field(default_factory=Limits)
    latent_sample: float = 1.0
    monitor_backlog: int = 64
    monitor_window: int = 2000
    monitor_timeout_s: float = 10.0

    def model_ref(self, task: str) -> str:
        return self.models.get(task, f"skyguard-{task}:latest")


def from_env() -> Settings:
    """Settings from ``SKYGUARD_*`` variables (module docstring)."""
    tasks = tuple(t.strip() for t in os.environ.get("SKYGUARD_TASKS", ",".join(TASKS)).split(","))
    tasks = tuple(t for t in tasks if t)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"SKYGUARD_TASKS: unknown or no tasks {unknown}; known: {TASKS}")
    provider = os.environ.get("SKYGUARD_PROVIDER", "auto").lower()
    if provider not in ("auto", "cuda", "cpu"):
        raise ValueError(f"SKYGUARD_PROVIDER={provider!r}: choose auto, cuda or cpu")
    models = {t: os.environ[f"SKYGUARD_MODEL_{t.upper()}"] for t in tasks
              if f"SKYGUARD_MODEL_{t.upper()}" in os.environ}  # fmt: skip
    limits = Limits(
        max_bytes=_int("SKYGUARD_MAX_UPLOAD_BYTES", Limits().max_bytes),
        max_cutouts=_int("SKYGUARD_MAX_CUTOUTS", Limits().max_cutouts),
        max_pixels=_int("SKYGUARD_MAX_PIXELS", Limits().max_pixels),
    )
    return Settings(
        tasks=tasks,
        models=models,
        provider=provider,
        max_batch=_int("SKYGUARD_MAX_BATCH", 64),
        max_latency_ms=_int("SKYGUARD_MAX_LATENCY_MS", 5000),
        gateway_workers=_int("SKYGUARD_GATEWAY_WORKERS", 1),
        limits=limits,
        latent_sample=_float("SKYGUARD_LATENT_SAMPLE", 1.0, 0.0, 1.0),
        monitor_backlog=_int("SKYGUARD_MONITOR_BACKLOG", 64),
        monitor_window=_int("SKYGUARD_MONITOR_WINDOW", 2000, minimum=10),
        monitor_timeout_s=_float("SKYGUARD_MONITOR_TIMEOUT_S", 10.0, 0.01, 600.0),
    )
