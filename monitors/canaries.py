"""Adversarial canaries: attacks on a bundle's canary cutouts, scored by the served ONNX model.

A canary run takes the bundle's ``canaries.npz`` (test cutouts the model answered correctly,
raw, balanced over classes), attacks them and records how easily the served model is flipped:

* ``fgsm``, ``pgd_linf``, ``pgd_l2`` — perturbations made with the bundle's torch weights
  (``weights.pt``; ONNX Runtime gives no input gradients) at the task's ``adversarial`` recipe
  values (003 §3: ε, α = ε/10, 10 iterations; L2 with ε·(2n/eπ)^½, n = H·W, and 40 iterations as
  003 Table 1 does), then **scored by the ONNX Runtime session** of the same bundle, so the flip
  is the served model's;
* ``onepixel`` — the differential-evolution one-pixel attack (002 §2.3) run against the ONNX
  session itself (black box), classifiers only.

A canary is *flipped* when a classifier's label changes, or when a photo-z estimate (PDF mean)
moves to |δz| > 0.05 (an outlier, 003 §3.1) — canaries start with |δz| ≤ 0.05. Each run records
the flip ratio, accuracy under attack, median steps (PGD iterations, one-pixel generations; FGSM
is one step) over flipped canaries, the median Euclidean latent distance d_E (002 §4.1) between
a canary and its flipped image in the ONNX latent space, and its wall time. A run stops between
mini-batches once ``budget_s`` is spent (outcome ``over_budget``, figures over the canaries
done), so a canary never starves serving for long.

``CanaryRunner.run`` returns numbers (``CanaryResult``); publishing is ``monitors.metrics``'s.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from core.bundle import Bundle, run_onnx

from .config import ATTACKS, CanaryConfig

#: |δz| above which a photo-z canary counts as flipped (003's outlier bound).
PHOTOZ_FLIP = 0.05

#: Rows per model call of the one-pixel canary. On a CPU session small batches keep the
#: activations in cache (timings: docs/benchmarks.md, attack speed); GPUs want large ones.
ONEPIXEL_CPU_BATCH, ONEPIXEL_GPU_BATCH = 16, 4096


def applicable(task: str, attacks: tuple[str, ...] | list[str] = ATTACKS) -> tuple[str, ...]:
    """The attacks of ``attacks`` that apply to ``task``: the one-pixel attack needs a class to
    flip, so photo-z has the gradient attacks only."""
    return tuple(a for a in attacks if not (a == "onepixel" and task == "photoz"))


@dataclass(frozen=True)
class CanaryResult:
    """One attack's run on one model's canaries (JSON-ready)."""

    task: str
    attack: str
    model: str
    outcome: str  # ok, over_budget, error
    n: int  # canaries attacked
    flipped: int
    flip_ratio: float
    accuracy_under_attack: float
    median_steps: float  # NaN when none flipped
    median_latent_distance: float  # NaN when none flipped
    duration_s: float
    finished_at: float  # unix seconds
    error: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


class CanaryRunner:
    """Attacks one bundle's canaries; ``session`` is an ONNX Runtime session on its model.onnx."""

    def __init__(self, bundle: Bundle, session, config: CanaryConfig | None = None) -> None:
        from training.recipes import load_recipe

        self.bundle, self.session = bundle, session
        self.config = config or CanaryConfig()
        self.task = bundle.task
        self.model_name = f"{bundle.info['name']}:{bundle.path.name}"  # store name:version
        recipe = load_recipe(self.task, "adversarial")
        c = self.config
        self.eps = c.eps_scale * (c.eps if c.eps is not None else recipe.adv_eps)
        self.alpha = c.eps_scale * (c.alpha if c.alpha is not None else recipe.pgd_alpha)
        self.n_iter = c.n_iter if c.n_iter is not None else recipe.adv_iter
        self.bounds = (0.0, 1.0) if self.task != "photoz" else None
        self.x, self.target, self.ebv, self.z = self._canary_inputs()
        self._net = None
        self._clean_latents: np.ndarray | None = None  # the canaries' own, computed once

    def _canary_inputs(self):
        """Preprocessed canaries [N, C, H, W], their targets [N] (class or z bin), E(B−V), z."""
        can = self.bundle.canaries()
        n = min(len(can["images"]), self.config.max_canaries)
        prep = self.bundle.preprocessing
        if self.task == "photoz":
            from training.losses import z_to_bin

            x = prep(can["images"][:n], magzp=can["magzp"][:n])
            z = can["z"][:n].astype(np.float64)
            target = z_to_bin(z, self.bundle.z_edges).numpy()
            return x.astype(np.float32), target, can["ebv"][:n].reshape(-1, 1), z
        return prep(can["images"][:n]).astype(np.float32), can["labels"][:n], None, None

    @property
    def net(self):
        if self._net is None:
            from training.verify import torch_model

            self._net = torch_model(self.bundle)
        return self._net

    def _flipped(self, out: np.ndarray, sl: slice) -> np.ndarray:
        """[n] bool: the served model's answer on attacked canaries sl is no longer right."""
        if self.task == "photoz":
            from training.metrics import pdf_mean

            zp = pdf_mean(out, self.bundle.z_edges)
            return np.abs(zp - self.z[sl]) / (1.0 + self.z[sl]) > PHOTOZ_FLIP
        return out.argmax(1) != self.target[sl]

    def _serve(self, x: np.ndarray, sl: slice) -> tuple[np.ndarray, np.ndarray]:
        ebv = None if self.ebv is None else self.ebv[sl]
        res = run_onnx(self.session, x, ebv)
        return res[self.bundle.info["outputs"][0]], res["latent"]

    def _gradient_batch(self, attack: str, sl: slice) -> tuple[np.ndarray, np.ndarray]:
        """Adversarial images [n, C, H, W] and the step at which each first flipped the torch
        model (FGSM: 1; never: n_iter)."""
        import torch

        from training.attacks import fgsm, pgd
        from training.losses import per_sample_cross_entropy

        x = torch.from_numpy(self.x[sl])
        target = torch.from_numpy(np.asarray(self.target[sl], dtype=np.int64))
        extra = () if self.ebv is None else (torch.from_numpy(self.ebv[sl]),)
        if attack == "fgsm":
            adv = fgsm(self.net, x, target, self.eps, per_sample_cross_entropy,
                       extra=extra, bounds=self.bounds)  # fmt: skip
            return adv.numpy(), np.ones(len(x))
        first = np.full(len(x), np.nan)

        def record(k: int, adv: torch.Tensor) -> None:
            """Note step k for the canaries that PGD's iterate adv [n, C, H, W] first flips."""
            with torch.no_grad():
                probs = torch.softmax(self.net(adv, *extra), 1).numpy()
            hit = self._flipped(probs, sl) & np.isnan(first)
            first[hit] = k

        norm = "linf" if attack == "pgd_linf" else "l2"
        eps, n_iter = self.eps, self.n_iter
        if norm == "l2":  # 003 Table 1: ε scaled by the ε-balls' volumes, 40 iterations
            h, w = self.x.shape[-2:]
            eps, n_iter = self.eps * math.sqrt(2 * h * w / (math.e * math.pi)), 4 * self.n_iter
        alpha = eps / n_iter if norm == "l2" else self.alpha
        adv = pgd(self.net, x, target, eps, alpha, n_iter, per_sample_cross_entropy, norm=norm,
                  extra=extra, bounds=self.bounds, on_step=record)  # fmt: skip
        return adv.numpy(), first

    def _onepixel_batch(self, sl: slice, seed: int) -> tuple[np.ndarray, np.ndarray]:
        from training.attacks.onepixel import one_pixel, onnx_predictor

        c = self.config
        on_cpu = self.session.get_providers()[0] == "CPUExecutionProvider"
        res = one_pixel(
            onnx_predictor(self.session, output_name=self.bundle.info["outputs"][0]),
            self.x[sl], self.target[sl], bounds=self.bounds, population=c.population,
            generations=c.generations, seed=seed, early_stop="flip",  # a flip is what counts
            batch_size=ONEPIXEL_CPU_BATCH if on_cpu else ONEPIXEL_GPU_BATCH,
        )  # fmt: skip
        return res.images.astype(np.float32), res.generations.astype(np.float64)

    def run(self, attack: str) -> CanaryResult:
        """Attack the canaries with ``attack`` and score them on the ONNX session."""
        if attack not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
        if attack not in applicable(self.task):
            raise ValueError("the one-pixel attack is for classifiers; photoz has no class to flip")
        if self._clean_latents is None:
            self._clean_latents = self._serve(self.x, slice(None))[1]
        t0 = time.perf_counter()
        flipped, steps, dist, n, outcome = [], [], [], 0, "ok"
        step = self.config.onepixel_batch if attack == "onepixel" else self.config.batch
        for i, start in enumerate(range(0, len(self.x), step)):
            if time.perf_counter() - t0 > self.config.budget_s:
                outcome = "over_budget"
                break
            sl = slice(start, start + step)
            if attack == "onepixel":
                adv, first = self._onepixel_batch(sl, self.config.seed + i)
            else:
                adv, first = self._gradient_batch(attack, sl)
            lat0 = self._clean_latents[sl]
            out, lat = self._serve(adv, sl)
            f = self._flipped(out, sl)
            flipped.append(f)
            steps.append(first[f])
            dist.append(np.linalg.norm(lat[f] - lat0[f], axis=1))
            n += len(f)
        n_flip = int(sum(int(f.sum()) for f in flipped))
        steps_all = np.concatenate(steps) if steps else np.array([])
        dist_all = np.concatenate(dist) if dist else np.array([])
        steps_all = steps_all[np.isfinite(steps_all)]
        return CanaryResult(
            task=self.task, attack=attack, model=self.model_name, outcome=outcome, n=n,
            flipped=n_flip, flip_ratio=n_flip / n if n else float("nan"),
            accuracy_under_attack=1.0 - n_flip / n if n else float("nan"),
            median_steps=float(np.median(steps_all)) if len(steps_all) else float("nan"),
            median_latent_distance=float(np.median(dist_all)) if len(dist_all) else float("nan"),
            duration_s=time.perf_counter() - t0, finished_at=time.time(),
        )  # fmt: skip
