"""Online MMD² drift detector for a stream of latents, calibrated to an expected run time.

The stream is watched through a sliding window of the ``W`` most recent latents. After each new
latent the detector computes the unbiased MMD² between the window and a fixed reference set R
(002 eq. 2, the kernels of ``core.mmd``) and raises an alarm when it exceeds a threshold.

**Calibration (bootstrap, once at construction).** The reference latents are split at random into
R (used by the statistic) and a disjoint calibration pool C. ``n_bootstraps`` streams of length
``W + T`` are drawn from C without replacement — what a stream from the reference distribution
looks like — and their statistics after every step are computed in bulk. The thresholds h_t,
t = 0 … T−1 steps after the window first fills, are chosen so that the *hazard* is 1/ERT: among
the bootstrap streams that have not alarmed before step t, a fraction 1/ERT exceeds h_t. A run
length with constant hazard 1/ERT is geometric with mean ERT, so on reference-like traffic false
alarms come on average once per ERT tested latents. After T steps the statistic's conditional
law is stationary and the mean of the last W thresholds is used from then on.

**Cost per latent.** One kernel row against the window (W values) and one against R (|R| values),
then O(W) bookkeeping: the window's kernel matrix is kept in a ring buffer, so the within-window
sum is updated by subtracting the evicted latent's row and adding the new one. No O(W²) work is
done per latent. Memory: the [W, W] window kernel and R.

``update`` adds a latent, ``score`` reads the statistic without changing the stream, ``decision``
decides; publishing to Prometheus is separate (``monitors.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.mmd import Bandwidth, gaussian_kernel, sigmas_for, squared_distances


@dataclass(frozen=True)
class OnlineScore:
    """statistic : MMD² of the current window against R (NaN while the window fills);
    threshold : h_t for this step (NaN while the window fills); step : tested latents since the
    window first filled (−1 while it fills); fill : latents in the window / W."""

    statistic: float
    threshold: float
    step: int
    fill: float

    @property
    def is_drift(self) -> bool:
        return bool(self.step >= 0 and self.statistic > self.threshold)


class OnlineMMDDrift:
    """Sliding-window MMD² detector with bootstrap thresholds for an expected run time.

    x_ref : np.ndarray  # [N_ref, D] reference latents (the bundle's reference_latents.npy);
                        #   split into R (statistic) and the calibration pool C (N_ref − n_r).
    window : W, latents per sliding window.
    ert : expected run time, in tested latents, between false alarms on reference-like traffic.
    n_r : size of R (default: half of x_ref). C must hold at least W + T latents.
    horizon : T, steps after the window fills with their own threshold (default 2 W).
    n_bootstraps : calibration streams (default 20 · ERT, so every hazard quantile rests on ≥ 20
                   exceedances at the first step).
    bandwidth : "median" (heuristic on R, fixed at construction) or "multi" (002's widths).
    """

    def __init__(
        self,
        x_ref: np.ndarray,
        window: int = 100,
        ert: int = 1000,
        *,
        n_r: int | None = None,
        horizon: int | None = None,
        n_bootstraps: int | None = None,
        bandwidth: Bandwidth = "median",
        seed: int = 0,
        chunk: int = 64,
    ) -> None:
        x_ref = np.asarray(x_ref, dtype=np.float64)
        if x_ref.ndim != 2 or not np.all(np.isfinite(x_ref)):
            raise ValueError(f"x_ref must be a finite [N_ref, D] array, got shape {x_ref.shape}")
        horizon = 2 * window if horizon is None else horizon
        n_r = len(x_ref) // 2 if n_r is None else n_r
        if window < 2 or horizon < 1:
            raise ValueError(f"need window >= 2 and horizon >= 1, got {window}, {horizon}")
        if ert < 3 * window:
            raise ValueError(f"ert ({ert}) must be at least 3 windows ({3 * window} latents)")
        if n_r < 2 or len(x_ref) - n_r < window + horizon:
            raise ValueError(
                f"{len(x_ref)} reference latents cannot hold R ({n_r}) and a calibration pool of "
                f"window + horizon = {window + horizon}; pass fewer n_r or a shorter window/horizon"
            )
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(x_ref))
        self.r = torch.from_numpy(x_ref[order[:n_r]])
        pool = torch.from_numpy(x_ref[order[n_r:]])
        self.window, self.ert, self.horizon = window, ert, horizon
        self.sigmas = sigmas_for(squared_distances(self.r, self.r), bandwidth)
        k_rr = self._k(self.r, self.r)
        self.c_rr = float((k_rr.sum() - k_rr.diagonal().sum()) / (n_r * (n_r - 1)))
        self._r_np = self.r.numpy()
        self._r_sq = (self._r_np**2).sum(1)
        self._sig2 = (self.sigmas**2).numpy()
        self.thresholds = self._calibrate(
            pool, n_bootstraps or 20 * ert, np.random.default_rng(rng.integers(2**63)), chunk
        )
        self.steady_threshold = float(self.thresholds[-window:].mean())
        self.reset()

    def _k(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return gaussian_kernel(squared_distances(x, y), self.sigmas)

    def _k_row(self, z: np.ndarray, y: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
        """k(z, y_j) [M] for one latent z [D] against y [M, D] with ‖y_j‖² = y_sq: numpy, as
        torch's per-call overhead dominates at this size."""
        d2 = np.maximum(y_sq + z @ z - 2.0 * (y @ z), 0.0)
        return np.exp(-d2[None, :] / (2.0 * self._sig2[:, None])).sum(0)

    def _stream_statistics(self, k_cc: torch.Tensor, r_c: torch.Tensor, idx: np.ndarray):
        """MMD² after each of the T steps [B, T] of the streams idx [B, W + T] into the pool."""
        w = self.window
        i = torch.from_numpy(idx)
        g = k_cc[i[:, :, None], i[:, None, :]]  # [B, L, L], zero diagonal
        p = torch.nn.functional.pad(
            g.cumsum(1).cumsum(2), (1, 0, 1, 0)
        )  # prefix sums [B, L+1, L+1]
        ends = torch.arange(w, idx.shape[1] + 1)  # window [e − W, e)
        starts = ends - w
        s_ww = p[:, ends, ends] - p[:, starts, ends] - p[:, ends, starts] + p[:, starts, starts]
        q = torch.nn.functional.pad(r_c[i].cumsum(1), (1, 0))
        m_wr = (q[:, ends] - q[:, starts]) / w
        return (s_ww / (w * (w - 1)) + self.c_rr - 2.0 * m_wr)[:, : self.horizon]

    def _calibrate(
        self, pool: torch.Tensor, n_bootstraps: int, rng: np.random.Generator, chunk: int
    ) -> np.ndarray:
        k_cc = self._k(pool, pool)
        k_cc.fill_diagonal_(0.0)
        r_c = self._k(pool, self.r).mean(1)
        length = self.window + self.horizon
        stats = []
        for start in range(0, n_bootstraps, chunk):
            b = min(chunk, n_bootstraps - start)
            idx = np.argsort(rng.random((b, len(pool))), axis=1)[:, :length]
            stats.append(self._stream_statistics(k_cc, r_c, idx))
        s = torch.cat(stats).numpy()  # [B, T]
        alive = np.ones(len(s), dtype=bool)
        thresholds = np.empty(self.horizon)
        for t in range(self.horizon):
            thresholds[t] = np.quantile(s[alive, t], 1.0 - 1.0 / self.ert)
            alive &= s[:, t] <= thresholds[t]
        return thresholds

    def reset(self) -> None:
        """Forget the stream (after an alarm has been handled, or a new model is loaded)."""
        d = self.r.shape[1]
        self._win = np.zeros((self.window, d))
        self._win_sq = np.zeros(self.window)
        self._k_win = np.zeros((self.window, self.window))
        self._r_mean = np.zeros(self.window)
        self._s_ww = 0.0
        self._seen = 0

    def update(self, x: np.ndarray) -> OnlineScore:
        """Add one latent x [D] to the stream (evicting the oldest once the window is full) and
        return the statistic after it (``score``)."""
        z = np.asarray(x, dtype=np.float64).reshape(-1)
        if z.shape[0] != self.r.shape[1] or not np.isfinite(z).all():
            raise ValueError(f"x must be a finite [{self.r.shape[1]}] latent, got {np.shape(x)}")
        w, slot = self.window, self._seen % self.window
        n = min(self._seen, w)  # latents in the window before this one
        if n == w:  # evict the oldest latent, which sits in this slot
            self._s_ww -= 2.0 * float(self._k_win[slot].sum())
        row = self._k_row(z, self._win, self._win_sq)
        row[slot] = 0.0
        if n < w:
            row[n:] = 0.0  # empty slots
        self._s_ww += 2.0 * float(row.sum())
        self._k_win[slot], self._k_win[:, slot] = row, row
        self._r_mean[slot] = self._k_row(z, self._r_np, self._r_sq).mean()
        self._win[slot], self._win_sq[slot] = z, z @ z
        self._seen += 1
        return self.score()

    def score(self) -> OnlineScore:
        """The statistic of the stream as it stands (pure: the stream is not changed); NaN while
        the first window fills."""
        w = self.window
        step = self._seen - w
        if step < 0:
            return OnlineScore(float("nan"), float("nan"), -1, self._seen / w)
        stat = self._s_ww / (w * (w - 1)) + self.c_rr - 2.0 * float(self._r_mean.mean())
        h = self.thresholds[step] if step < self.horizon else self.steady_threshold
        return OnlineScore(stat, float(h), step, 1.0)

    def decision(self, s: OnlineScore) -> dict:
        """What the monitor reports of a score: drift when the statistic exceeds its step's
        threshold, with the expected run time the thresholds were calibrated for."""
        return {
            "is_drift": s.is_drift,
            "statistic": s.statistic,
            "threshold": s.threshold,
            "step": s.step,
            "fill": s.fill,
            "ert": self.ert,
        }
