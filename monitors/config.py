"""The monitor's configuration: the drift windows (``WatchConfig``) and the canary attacks
(``CanaryConfig``, ``ATTACKS``). Plain dataclasses with no heavy imports, so that the service's
settings (``service.config``) and the batch-scoring driver build them without torch."""

from __future__ import annotations

from dataclasses import dataclass

from core.distances import Bandwidth

GRADIENT_ATTACKS = ("fgsm", "pgd_linf", "pgd_l2")
ATTACKS = ("onepixel", *GRADIENT_ATTACKS)


@dataclass(frozen=True)
class WatchConfig:
    """window : latents per windowed test (the issue's ≤ 200); every : new latents between
    tests; keep : latents kept for inspection (≥ window); alpha, n_permutations, bandwidth : the
    permutation test; online_window, ert : the online detector (ert in latents; 0 disables it)."""

    window: int = 200
    every: int = 100
    keep: int = 2000
    alpha: float = 0.05
    n_permutations: int = 500
    bandwidth: Bandwidth = "median"
    online_window: int = 32
    ert: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class CanaryConfig:
    """eps, alpha, n_iter : None → the task's ``adversarial`` recipe values (model-input units);
    eps_scale : multiplies ε and α (probe stronger or weaker attacks than the recipe's);
    population, generations : one-pixel DE settings; below the attack's own 400 × 80 (002 §5.2)
    because a canary round must fit its budget on a CPU (≈ 6,000 forward passes per canary);
    batch, onepixel_batch : canaries per mini-batch (the one-pixel attack makes population ×
    generations model calls per canary, so its mini-batches are small and the budget, checked
    between mini-batches, is kept closely); budget_s : wall-time budget of one run; max_canaries :
    at most this many canaries per run (the first ones of the balanced set)."""

    eps: float | None = None
    eps_scale: float = 1.0
    alpha: float | None = None
    n_iter: int | None = None
    population: int = 100
    generations: int = 30
    batch: int = 16
    onepixel_batch: int = 2
    budget_s: float = 120.0
    max_canaries: int = 64
    seed: int = 0
