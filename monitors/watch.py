"""One task's drift watch: the latent window, when to test it, and the online detector.

The monitor service keeps one ``DriftWatch`` per served task. Latents arrive in small batches
from the predictor (``add``); the watch keeps the most recent ``keep`` of them, feeds every one to
the online detector (``monitors.online``) and says when the windowed permutation test
(``monitors.drift``) is due: once the last ``window`` latents are there and ``every`` new ones
have come since the previous test. The test itself (``test``) is a plain call the monitor runs in
a worker thread. Numbers and decisions only; publishing is ``monitors.metrics``'s.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import numpy as np

from .config import WatchConfig
from .drift import MMDDrift
from .online import OnlineMMDDrift

log = logging.getLogger("skyguard.monitor")


class DriftWatch:
    """Windows of one task's latents against its bundle's reference latents [N_ref, D]."""

    def __init__(self, task: str, reference: np.ndarray, config: WatchConfig) -> None:
        if config.keep < config.window:
            raise ValueError(f"keep ({config.keep}) must hold a window ({config.window})")
        self.task, self.config = task, config
        self.reference = np.asarray(reference, dtype=np.float32)
        self.detector = MMDDrift(
            self.reference, bandwidth=config.bandwidth, n_permutations=config.n_permutations,
            alpha=config.alpha, seed=config.seed,
        )  # fmt: skip
        self.latents: deque[np.ndarray] = deque(maxlen=config.keep)
        self.received = 0
        self.since_test = 0
        self.last_test: dict | None = None
        self.online: OnlineMMDDrift | None = None
        self.online_error = "" if config.ert else "disabled (ert = 0)"
        self.last_online: dict | None = None
        self.online_alarms = 0
        self._lock = threading.Lock()

    def calibrate_online(self) -> None:
        """Build the online detector (bootstrap calibration: seconds; run it off the event loop).
        A reference set too small for the configured window leaves it off, with the reason."""
        c = self.config
        if not c.ert:
            return
        try:
            det = OnlineMMDDrift(
                self.reference, window=c.online_window, ert=c.ert, bandwidth=c.bandwidth,
                seed=c.seed, n_bootstraps=min(20 * c.ert, 50_000),
            )  # fmt: skip
        except Exception as e:  # too small a reference, or anything else: off, with the reason
            self.online_error = str(e)
            log.warning("online drift detector for %s is off: %s", self.task, e)
            return
        with self._lock:
            self.online = det

    @property
    def fill(self) -> float:
        """Latents available for the next windowed test / window (0–1)."""
        return min(len(self.latents), self.config.window) / self.config.window

    def add(self, latents: np.ndarray) -> int:
        """Append latents [n, D]; returns the online alarms they raised."""
        alarms = 0
        with self._lock:
            for z in np.asarray(latents, dtype=np.float32):
                self.latents.append(z)
                if self.online is not None:
                    res = self.online.decision(self.online.update(z))
                    self.last_online = res
                    if res["is_drift"]:
                        # the run ends at its alarm, as the calibration assumes: one alarm per
                        # excursion, once per ERT latents on reference-like traffic
                        alarms += 1
                        self.online.reset()
            self.received += len(latents)
            self.since_test += len(latents)
            self.online_alarms += alarms
        return alarms

    def due(self) -> bool:
        """Is a windowed test due (a full window and ``every`` new latents since the last)?"""
        return len(self.latents) >= self.config.window and self.since_test >= self.config.every

    def test(self) -> dict:
        """The permutation test of the most recent ``window`` latents (``MMDDrift.predict``)."""
        with self._lock:
            x = np.stack(list(self.latents)[-self.config.window :])
            self.since_test = 0
        result = self.detector.predict(x)
        self.last_test = result
        return result

    def status(self) -> dict:
        return {
            "received": self.received,
            "window": self.config.window,
            "fill": self.fill,
            "last_test": self.last_test,
            "online": self.last_online,
            "online_alarms": self.online_alarms,
            "online_off": self.online_error or None,
        }
