"""The monitor service (DESIGN.md, "Runtime topology"): one worker that receives the predictor's
latents, runs the drift tests and the canary schedule, and owns skyguard's monitoring metrics.

* **Drift.** Per task a ``monitors.watch.DriftWatch`` on the served bundle's reference latents:
  every latent goes through the online detector (bootstrap-calibrated for an expected run time,
  built in a thread after start-up), and once ``SKYGUARD_DRIFT_WINDOW`` latents are there the
  windowed permutation MMD² test runs every ``SKYGUARD_DRIFT_EVERY`` new latents, in a thread.
* **Canaries.** Every ``SKYGUARD_CANARY_INTERVAL_S`` (first round ``SKYGUARD_CANARY_DELAY_S``
  after start), each task's canaries are attacked (``monitors.canaries``) and scored by an ONNX
  Runtime session on the served bundle's model.onnx with the predictor's execution provider,
  capped at ``SKYGUARD_CANARY_THREADS`` CPU threads and ``SKYGUARD_CANARY_BUDGET_S`` per attack;
  ``run_canaries`` starts a round on request.

* **Memory.** glibc keeps the heap that the canaries' threads (torch autograd, ONNX Runtime,
  numpy) freed, per malloc arena, so without care the worker's RSS grows round after round to
  several GB that nothing uses. The worker limits glibc to ``SKYGUARD_MONITOR_ARENAS`` arenas
  (``mallopt(M_ARENA_MAX)``, before its threads start) and hands free heap back to the system
  (``malloc_trim(0)``) after every canary run and every ``SKYGUARD_MONITOR_TRIM_S``; each round
  logs its RSS and heap figures (``bench/memory.py``).

The predictor names the bundle it serves with each batch of latents; a different one (a new
default model picked up by a restarted predictor) replaces the task's watch and canaries, so the
monitor always judges the model that answered.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import logging
import time
from pathlib import Path

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument

from core.store import load as load_checked
from monitors.canaries import ATTACKS, CanaryResult, CanaryRunner, applicable
from monitors.metrics import (
    LATENTS_RECEIVED,
    init_monitor,
    publish_canary,
    publish_drift_test,
    publish_drift_window,
    reset_drift,
    switch_canary_model,
)
from monitors.watch import DriftWatch

from .config import settings
from .runtime import choose_providers

log = logging.getLogger("skyguard.monitor")
SETTINGS = settings()


# --- glibc's heap ---------------------------------------------------------------------------------
M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


def _libc():
    """glibc, or None (another C library: nothing to tune)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt, libc.mallinfo2  # noqa: B018 (glibc ≥ 2.33)
    except (OSError, AttributeError):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    return libc


_LIBC = _libc()


def rss_mib() -> float:
    """This process's resident set [MiB] (/proc/self/status)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def heap() -> dict[str, float]:
    """glibc's heap, all arenas [MiB]: in use, free but kept, and mmapped blocks."""
    if _LIBC is None:
        return {}
    m = _LIBC.mallinfo2()
    mib = 1 / 2**20
    return {"rss": rss_mib(), "heap_in_use": m.uordblks * mib, "heap_free": m.fordblks * mib,
            "mmapped": m.hblkhd * mib}  # fmt: skip


def trim() -> None:
    """Hand the free heap of every arena back to the system (glibc's ``malloc_trim(0)``)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def limit_arenas(n: int) -> None:
    """At most ``n`` malloc arenas from now on (0: glibc's default, 8 per core)."""
    if _LIBC is not None and n:
        _LIBC.mallopt(M_ARENA_MAX, n)


def _model_label(bundle) -> str:
    """The bundle's store name:version: the canary metrics' ``model`` label, as the canary
    results (``CanaryRunner.model_name``) and ``/v1/robustness`` name it."""
    return f"{bundle.info['name']}:{bundle.path.name}"


@bentoml.service(name="skyguard-monitor", workers=1, traffic={"timeout": 600})
class Monitor:
    """Drift windows and canaries of every served task."""

    def __init__(self) -> None:
        import torch

        limit_arenas(SETTINGS.monitor_arenas)  # before this worker's threads start
        torch.set_num_threads(SETTINGS.canary_threads)  # this worker must not starve serving
        # schema and sha256 checked here; ONNX parity is the predictor's (it serves the model)
        self.bundles = {t: load_checked(SETTINGS.model_ref(t)) for t in SETTINGS.tasks}
        self.watches = {t: self._watch(t) for t in SETTINGS.tasks}
        self._testing: set[str] = set()
        self._runners: dict[str, object] = {}
        self.canary_results: dict[str, dict[str, dict]] = {t: {} for t in SETTINGS.tasks}
        self._canary_lock = asyncio.Lock()
        self._requested: asyncio.Task | None = None  # the round run_canaries started
        self._follow_locks = {t: asyncio.Lock() for t in SETTINGS.tasks}
        self._background: set[asyncio.Task] = set()
        init_monitor(
            {t: _model_label(b) for t, b in self.bundles.items()},
            {t: applicable(t, SETTINGS.canary_attacks) for t in self.watches},
        )

    def _watch(self, task: str) -> DriftWatch:
        return DriftWatch(task, self.bundles[task].reference_latents(), SETTINGS.watch)

    def _spawn(self, coro) -> asyncio.Task:
        job = asyncio.ensure_future(coro)
        self._background.add(job)
        job.add_done_callback(self._background.discard)
        return job

    @bentoml.on_startup
    async def _start(self) -> None:
        for watch in self.watches.values():
            reset_drift(watch.task)
            self._spawn(asyncio.to_thread(watch.calibrate_online))
            publish_drift_window(watch.task, watch.fill, None, 0)
        self._spawn(self._canary_schedule())
        if SETTINGS.monitor_trim_s:
            self._spawn(self._trim_schedule())

    async def _trim_schedule(self) -> None:
        while True:
            await asyncio.sleep(SETTINGS.monitor_trim_s)
            await asyncio.to_thread(trim)

    @bentoml.on_shutdown
    async def _stop(self) -> None:
        for job in list(self._background):
            job.cancel()

    # --- drift ----------------------------------------------------------------------------
    async def _follow(self, task: str, bundle_path: str) -> None:
        """Switch the task's watch and canaries to the bundle the predictor says it serves."""
        if not bundle_path or str(self.bundles[task].path) == bundle_path:
            return
        async with self._follow_locks[task]:  # concurrent ingests: one reload, not one each
            if str(self.bundles[task].path) == bundle_path:
                return
            log.warning("%s: predictor serves %s, monitor had %s; following the predictor",
                        task, bundle_path, self.bundles[task].path)  # fmt: skip
            bundle = await asyncio.to_thread(load_checked, bundle_path)
            if bundle.task != task:
                raise InvalidArgument(f"{bundle_path} is a {bundle.task} bundle, not {task}")
            old, new = _model_label(self.bundles[task]), _model_label(bundle)
            self.bundles[task] = bundle
            self.watches[task] = self._watch(task)
            self.canary_results[task] = {}
            reset_drift(task)
            if new != old:
                switch_canary_model(task, old, new, applicable(task, SETTINGS.canary_attacks))
            self._spawn(asyncio.to_thread(self.watches[task].calibrate_online))

    async def _windowed_test(self, watch: DriftWatch) -> None:
        try:
            result = await asyncio.to_thread(watch.test)
            if self.watches[watch.task] is watch:  # not a model replaced meanwhile
                publish_drift_test(watch.task, result)
        except Exception:  # a failed test must not stop the monitor; it is logged
            log.exception("%s: windowed drift test failed", watch.task)
        finally:
            self._testing.discard(watch.task)

    @bentoml.api
    async def ingest(self, task: str, latents: np.ndarray, bundle: str = "") -> dict:
        """Add latents [N, D] of ``task`` (served by ``bundle``, a bundle directory)."""
        if task not in self.watches:
            raise InvalidArgument(f"task {task!r} is not served; served: {list(self.watches)}")
        await self._follow(task, bundle)
        watch = self.watches[task]
        lat = np.asarray(latents, dtype=np.float32)
        if lat.ndim != 2 or lat.shape[1] != watch.reference.shape[1]:
            raise InvalidArgument(
                f"latents must be [N, {watch.reference.shape[1]}], got shape {lat.shape}"
            )
        LATENTS_RECEIVED.labels(task=task).inc(len(lat))  # before the await: a caller that
        alarms = await asyncio.to_thread(watch.add, lat)  # gives up does not undo the add
        publish_drift_window(task, watch.fill, watch.last_online, alarms)
        if watch.due() and task not in self._testing:
            self._testing.add(task)
            self._spawn(self._windowed_test(watch))
        return {"task": task, "received": watch.received, "fill": watch.fill}

    @bentoml.api
    async def status(self) -> dict:
        """Per task: latents received, window fill, the latest windowed test and online result."""
        return {
            t: {
                "model": _model_label(self.bundles[t]),
                "bundle": str(self.bundles[t].path),
                **w.status(),
            }
            for t, w in self.watches.items()
        }

    # --- canaries -------------------------------------------------------------------------
    def _runner(self, task: str):
        from core.bundle import onnx_session

        bundle = self.bundles[task]
        runner = self._runners.get(task)
        if runner is None or runner.bundle is not bundle:  # none yet, or the model changed
            session = onnx_session(  # shares the cores with serving: no busy-waiting pool
                bundle.onnx_path,
                choose_providers(SETTINGS.provider),
                SETTINGS.canary_threads,
                spin=False,
            )
            runner = CanaryRunner(bundle, session, SETTINGS.canary)
            self._runners[task] = runner
        return runner

    def _run_one(self, task: str, attack: str) -> dict:
        t0 = time.perf_counter()
        try:
            return self._runner(task).run(attack).to_dict()
        except Exception as e:  # one attack failing must not end the round; it is counted
            log.exception("%s: canary %s failed", task, attack)
            return CanaryResult(
                task=task, attack=attack, model=_model_label(self.bundles[task]), outcome="error",
                n=0, flipped=0, flip_ratio=float("nan"), accuracy_under_attack=float("nan"),
                median_steps=float("nan"), median_latent_distance=float("nan"),
                duration_s=time.perf_counter() - t0, finished_at=time.time(),
                error=f"{type(e).__name__}: {e}",
            ).to_dict()  # fmt: skip
        finally:
            if SETTINGS.monitor_trim_s:  # what the run freed goes back, not kept per arena
                trim()

    async def _round(self, tasks: list[str], attacks: list[str]) -> list[dict]:
        out = []
        async with self._canary_lock:
            for task in tasks:
                for attack in applicable(task, attacks):
                    result = await asyncio.to_thread(self._run_one, task, attack)
                    # the model may have been switched while the run went on: then the run is
                    # counted, but its figures are a retired model's and are not shown
                    live = result["model"] == _model_label(self.bundles[task])
                    publish_canary(result, live=live)
                    if live:
                        self.canary_results[task][attack] = result
                    out.append(result)
        # the worker's memory after a round, in its log (bench/memory.py reads it)
        memory = json.dumps({k: round(v, 1) for k, v in heap().items()})
        print(f"skyguard monitor: canary round of {len(out)} runs done; memory MiB {memory}",
              flush=True)  # fmt: skip
        return out

    async def _canary_schedule(self) -> None:
        if not SETTINGS.canary_interval_s:
            return
        await asyncio.sleep(SETTINGS.canary_delay_s)
        while True:
            try:
                await self._round(list(self.watches), list(SETTINGS.canary_attacks))
            except Exception:  # the schedule must outlive one bad round; the stale alert shows it
                log.exception("canary round failed")
            await asyncio.sleep(SETTINGS.canary_interval_s)

    @bentoml.api
    async def run_canaries(self, task: str = "", attack: str = "") -> dict:
        """Start one canary round now (all tasks / configured attacks unless named) and return
        at once: a round can outlast any HTTP timeout. ``GET /v1/robustness`` shows the results;
        a round already running is not doubled."""
        tasks = [task] if task else list(self.watches)
        attacks = [attack] if attack else list(SETTINGS.canary_attacks)
        if unknown := [t for t in tasks if t not in self.watches]:
            raise InvalidArgument(f"tasks {unknown} are not served; served: {list(self.watches)}")
        if bad := [a for a in attacks if a not in ATTACKS]:
            raise InvalidArgument(f"unknown attacks {bad}")
        # check and take in one step: the spawned round takes the lock only once it runs, so a
        # second call before then would see it free; no await lies between this check and the
        # assignment, so on the one event loop no other call can come in between
        requested = self._requested is not None and not self._requested.done()
        if self._canary_lock.locked() or requested:
            return {"started": False, "reason": "a canary round is running"}
        self._requested = self._spawn(self._round(tasks, attacks))
        return {"started": True, "tasks": tasks, "attacks": attacks}

    @bentoml.api
    async def robustness(self) -> dict:
        """The latest canary run per task and attack, with the model it attacked."""
        return {t: {"model": _model_label(self.bundles[t]), "bundle": str(self.bundles[t].path), "attacks": r}
                for t, r in self.canary_results.items()}  # fmt: skip
