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
``SKYGUARD_LATENCY_TARGET_MS`` ``2000``                           latency a request is admitted
                                                                  for: the queue bound is the
                                                                  task's measured throughput ×
                                                                  this (``service.admission``)
``SKYGUARD_QUEUE_CUTOUTS``     ``0``                              cutouts in flight per task and
                                                                  gateway worker past which a
                                                                  request is shed (503 with
                                                                  Retry-After, before its body
                                                                  is read); 0: throughput ×
                                                                  latency target
                                                                  (``SKYGUARD_MAX_CUTOUTS``
                                                                  until measured)
``SKYGUARD_MAX_UPLOAD_BYTES``  ``16777216``                       per FITS file
``SKYGUARD_MAX_CUTOUTS``       ``256``                            per request
``SKYGUARD_MAX_PIXELS``        ``4000000``                        per HDU, as declared in headers
``SKYGUARD_LATENT_SAMPLE``     ``1.0``                            fraction of latents sent to the
                                                                  monitor
``SKYGUARD_MONITOR_BACKLOG``   ``64``                             unanswered monitor calls before
                                                                  latents are dropped
``SKYGUARD_MONITOR_WINDOW``    ``2000``                           latents kept per task
``SKYGUARD_DRIFT_WINDOW``      ``200``                            latents per windowed MMD² test
``SKYGUARD_DRIFT_EVERY``       ``100``                            new latents between tests
``SKYGUARD_DRIFT_ALPHA``       ``0.05``                           level of the windowed test
``SKYGUARD_DRIFT_PERMUTATIONS`` ``500``                           permutations per test
``SKYGUARD_DRIFT_BANDWIDTH``   ``median``                         ``median`` heuristic or 002's
                                                                  ``multi`` widths
``SKYGUARD_ONLINE_WINDOW``     ``32``                             online detector's window
``SKYGUARD_ONLINE_ERT``        ``2000``                           online detector: latents
                                                                  between false alarms (0: off)
``SKYGUARD_CANARY_INTERVAL_S`` ``3600``                           seconds between canary rounds
                                                                  (0: only on request)
``SKYGUARD_CANARY_DELAY_S``    ``60``                             first round after start-up
``SKYGUARD_CANARY_ATTACKS``    ``onepixel,fgsm,pgd_linf,pgd_l2``  attacks per round
``SKYGUARD_CANARY_BUDGET_S``   ``120``                            wall time per attack run
``SKYGUARD_CANARY_MAX``        ``64``                             canaries per run
``SKYGUARD_CANARY_THREADS``    ``1``                              CPU threads the canaries use
``SKYGUARD_CANARY_EPS_SCALE``  ``1``                              FGSM/PGD ε and step × this
                                                                  (1: the adversarial recipe's)
``SKYGUARD_CANARY_POPULATION`` ``100``                            one-pixel DE population
``SKYGUARD_CANARY_GENERATIONS`` ``30``                            one-pixel DE generations (max)
``SKYGUARD_MONITOR_ARENAS``    ``2``                              glibc malloc arenas of the
                                                                  monitor worker (0: glibc's
                                                                  default, 8 per core)
``SKYGUARD_MONITOR_TRIM_S``    ``60``                             seconds between the monitor's
                                                                  returns of free heap to the
                                                                  system (``malloc_trim``), also
                                                                  done after each canary run
                                                                  (0: never)
``SKYGUARD_MONITOR_TIMEOUT_S`` ``10``                             wait for the monitor before
                                                                  counting latents dropped
``SKYGUARD_API_TOKENS``        (none)                             bearer tokens, comma-separated
                                                                  (``service.auth``); none here
                                                                  nor in the file: the API is
                                                                  open
``SKYGUARD_API_TOKENS_FILE``   (none)                             a file of bearer tokens, one a
                                                                  line, ``#`` comments; added to
                                                                  the variable's
``SKYGUARD_SHOW_PATHS``        ``0``                              ``1``: answers and ``/v1`` show
                                                                  server file-system paths
=============================  =================================  ===============================

A value that cannot be parsed stops start-up with a message naming the variable; so do a token
file that cannot be read or holds no token, and a token that is too short or not of RFC 6750's
token characters (the message names the variable or file and line, never the token).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal, get_args

from core.distances import Bandwidth
from monitors.config import ATTACKS, CanaryConfig, WatchConfig

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


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if raw.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name}={raw!r}: choose 1 or 0")


# RFC 6750's b64token: what a client can send after "Bearer " unquoted
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MIN_TOKEN_LENGTH = 16


def _token(value: str, where: str) -> str:
    # the value itself is never repeated in a message: it may be a real token with a typo
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{where}: a token may hold only letters, digits and -._~+/ (then '=')")
    if len(value) < MIN_TOKEN_LENGTH:
        raise ValueError(f"{where}: a token must have at least {MIN_TOKEN_LENGTH} characters, "
                         f"this one has {len(value)}")  # fmt: skip
    return value


def api_tokens() -> tuple[str, ...]:
    """The bearer tokens of ``SKYGUARD_API_TOKENS`` (comma-separated; unset or empty: none) and
    of the file ``SKYGUARD_API_TOKENS_FILE`` (one a line; blank lines and lines starting with
    ``#`` skipped), in order, without repeats. () : authentication off."""
    tokens: list[str] = []
    raw = os.environ.get("SKYGUARD_API_TOKENS", "")
    if raw.strip():
        parts = [p.strip() for p in raw.split(",")]
        if not any(parts):
            raise ValueError("SKYGUARD_API_TOKENS is set but holds no token")
        tokens += [_token(p, f"SKYGUARD_API_TOKENS (item {k + 1})")
                   for k, p in enumerate(parts) if p]  # fmt: skip
    if path := os.environ.get("SKYGUARD_API_TOKENS_FILE", "").strip():
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"SKYGUARD_API_TOKENS_FILE={path!r} cannot be read: "
                             f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}") from None  # fmt: skip
        found = [
            _token(line.strip(), f"SKYGUARD_API_TOKENS_FILE={path!r}, line {k + 1}")
            for k, line in enumerate(text.splitlines())
            if line.strip() and not line.strip().startswith("#")
        ]
        if not found:
            raise ValueError(f"SKYGUARD_API_TOKENS_FILE={path!r} holds no token")
        tokens += found
    return tuple(dict.fromkeys(tokens))


Provider = Literal["auto", "cuda", "cpu"]


@dataclass(frozen=True)
class Settings:
    """Every setting of the service, read and checked once per process (``settings()``) and
    passed down: the drift windows as the monitor's ``WatchConfig``, the attacks as its
    ``CanaryConfig``, the request limits as ``Limits``."""

    tasks: tuple[str, ...] = TASKS
    models: dict[str, str] = field(default_factory=dict)
    provider: Provider = "auto"
    max_batch: int = 64
    max_latency_ms: int = 5000
    gateway_workers: int = 1
    latency_target_ms: int = 2000
    queue_cutouts: int = 0  # 0: adaptive (throughput × latency target)
    limits: Limits = field(default_factory=Limits)
    latent_sample: float = 1.0
    monitor_backlog: int = 64
    monitor_timeout_s: float = 10.0
    monitor_arenas: int = 2
    monitor_trim_s: float = 60.0
    watch: WatchConfig = field(default_factory=WatchConfig)
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    canary_interval_s: float = 3600.0
    canary_delay_s: float = 60.0
    canary_attacks: tuple[str, ...] = ATTACKS
    canary_threads: int = 1
    # never in a repr: Settings may be printed or logged
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    show_paths: bool = False

    def model_ref(self, task: str) -> str:
        return self.models.get(task, f"skyguard-{task}:latest")


@cache
def settings() -> Settings:
    """This process's settings: ``from_env()`` read once, shared by every module that asks."""
    return from_env()


def from_env() -> Settings:
    """Settings from ``SKYGUARD_*`` variables (module docstring)."""
    tasks = tuple(t.strip() for t in os.environ.get("SKYGUARD_TASKS", ",".join(TASKS)).split(","))
    tasks = tuple(t for t in tasks if t)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"SKYGUARD_TASKS: unknown or no tasks {unknown}; known: {TASKS}")
    provider = os.environ.get("SKYGUARD_PROVIDER", "auto").lower()
    if provider not in get_args(Provider):
        raise ValueError(f"SKYGUARD_PROVIDER={provider!r}: choose auto, cuda or cpu")
    models = {t: os.environ[f"SKYGUARD_MODEL_{t.upper()}"] for t in tasks
              if f"SKYGUARD_MODEL_{t.upper()}" in os.environ}  # fmt: skip
    bandwidth = os.environ.get("SKYGUARD_DRIFT_BANDWIDTH", "median")
    if bandwidth not in get_args(Bandwidth):
        raise ValueError(f"SKYGUARD_DRIFT_BANDWIDTH={bandwidth!r}: choose median or multi")
    attacks = tuple(
        a.strip()
        for a in os.environ.get("SKYGUARD_CANARY_ATTACKS", ",".join(Settings.canary_attacks)).split(
            ","
        )
        if a.strip()
    )
    if bad := [a for a in attacks if a not in ATTACKS]:
        raise ValueError(f"SKYGUARD_CANARY_ATTACKS: unknown {bad}; known: {list(ATTACKS)}")
    window = _int("SKYGUARD_DRIFT_WINDOW", 200, minimum=4)
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
        latency_target_ms=_int("SKYGUARD_LATENCY_TARGET_MS", 2000),
        queue_cutouts=_int("SKYGUARD_QUEUE_CUTOUTS", 0, minimum=0),
        limits=limits,
        latent_sample=_float("SKYGUARD_LATENT_SAMPLE", 1.0, 0.0, 1.0),
        monitor_backlog=_int("SKYGUARD_MONITOR_BACKLOG", 64),
        monitor_timeout_s=_float("SKYGUARD_MONITOR_TIMEOUT_S", 10.0, 0.01, 600.0),
        monitor_arenas=_int("SKYGUARD_MONITOR_ARENAS", 2, minimum=0),
        monitor_trim_s=_float("SKYGUARD_MONITOR_TRIM_S", 60.0, 0.0, 1e7),
        watch=WatchConfig(
            window=window,
            every=_int("SKYGUARD_DRIFT_EVERY", 100),
            keep=max(_int("SKYGUARD_MONITOR_WINDOW", 2000, minimum=10), window),
            alpha=_float("SKYGUARD_DRIFT_ALPHA", 0.05, 1e-6, 0.5),
            n_permutations=_int("SKYGUARD_DRIFT_PERMUTATIONS", 500, minimum=19),
            bandwidth=bandwidth,
            online_window=_int("SKYGUARD_ONLINE_WINDOW", 32, minimum=2),
            ert=_int("SKYGUARD_ONLINE_ERT", 2000, minimum=0),
        ),
        canary=CanaryConfig(
            budget_s=_float("SKYGUARD_CANARY_BUDGET_S", 120.0, 0.1, 1e5),
            max_canaries=_int("SKYGUARD_CANARY_MAX", 64),
            eps_scale=_float("SKYGUARD_CANARY_EPS_SCALE", 1.0, 1e-3, 1e3),
            # below the attack's 400 × 80 (002 §5.2): a canary round must fit its CPU budget
            population=_int("SKYGUARD_CANARY_POPULATION", 100, minimum=4),
            generations=_int("SKYGUARD_CANARY_GENERATIONS", 30),
        ),
        canary_interval_s=_float("SKYGUARD_CANARY_INTERVAL_S", 3600.0, 0.0, 1e7),
        canary_delay_s=_float("SKYGUARD_CANARY_DELAY_S", 60.0, 0.0, 1e7),
        canary_attacks=attacks,
        canary_threads=_int("SKYGUARD_CANARY_THREADS", 1),
        api_tokens=api_tokens(),
        show_paths=_bool("SKYGUARD_SHOW_PATHS", False),
    )
