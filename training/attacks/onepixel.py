"""One-pixel attack by differential evolution (002 §2.3; Su et al. 2017; DE: Storn & Price 1997).

A candidate is one pixel and the values it is set to, z = (row, col, v_1 … v_C): the perturbed
image is the original with every band at (row, col) *replaced* by v (so ‖e(x)‖₀ = 1 over pixel
positions, 002 §2.3, L = 1). Rows and columns are searched as reals in [0, H) and [0, W) and
floored; values are searched in ``bounds``, the valid range of the model's *input*, after
preprocessing (the 002 arcsinh stretch maps to [0, 1], ``trainer.input_bounds``).

The evolution is Su et al.'s DE/rand/1 without crossover: each generation every member i gets a
child z_r1 + F (z_r2 − z_r3) (r1, r2, r3 distinct and ≠ i), clipped to the search box, and the
child replaces its parent only if its fitness is strictly better (greedy, one-to-one). Fitness is
the true class's probability (untargeted, minimised) or the target class's (targeted, maximised).

The attack is a black box: it needs only a :data:`Predictor`, a function from input images
[M, C, H, W] float32 to class probabilities [M, K], so it runs against a torch model
(:func:`torch_predictor`) or the served ONNX Runtime session (:func:`onnx_predictor`) alike. Each
generation scores the children of *all* images still under attack as one stack of
images × population rows (cut into passes of at most ``batch_size`` rows to bound memory), and an
image leaves the stack as soon as its attack stops early. Classifiers only (``probs`` outputs:
morphology, lsbg); the photo-z p(z) has no class to flip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch
    from onnxruntime import InferenceSession
    from torch import nn

#: predict(images [M, C, H, W] float32, model-input units) → class probabilities [M, K]
Predictor = Callable[[np.ndarray], np.ndarray]

#: When an image's attack ends early (``one_pixel``'s ``early_stop``).
StopRule = Literal["threshold", "flip", "off"]

#: "threshold" early stop (issue 4; Su et al. stop untargeted attacks at a true class below 5%):
#: the target class passes this probability (targeted) …
TARGET_STOP = 0.5
#: … or the true class falls below this one (untargeted).
TRUE_STOP = 0.05


def torch_predictor(
    model: nn.Module, device: str | torch.device | None = None, *, softmax: bool = True
) -> Predictor:
    """A :data:`Predictor` of a torch classifier returning logits [M, K] (``softmax=True``, the
    skyguard networks) or probabilities (``softmax=False``).

    ``device`` defaults to that of the model's first parameter (CPU for one without). The model
    is used as it is: call ``model.eval()`` first, or batch norm mixes the candidates' statistics.
    """
    import torch

    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    dev = torch.device(device)

    def predict(x: np.ndarray) -> np.ndarray:
        """Images [M, C, H, W] (model-input units) → probabilities [M, K] float32."""
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev))
            if softmax:
                out = torch.softmax(out, dim=1)
        return out.float().cpu().numpy()

    return predict


def onnx_predictor(
    session: InferenceSession,
    input_name: str = "image",
    output_name: str = "probs",
    extra: dict[str, np.ndarray] | None = None,
) -> Predictor:
    """A :data:`Predictor` of an ``onnxruntime.InferenceSession`` (a bundle's ``model.onnx``:
    input ``image`` [M, C, H, W], output ``probs`` [M, K]); only ``output_name`` is computed.

    ``extra`` are further inputs, each one row [1, ...] repeated to the batch: the same for every
    candidate and image (an input that varies per image is not supported).
    """
    extra = {k: np.ascontiguousarray(v)[:1] for k, v in (extra or {}).items()}

    def predict(x: np.ndarray) -> np.ndarray:
        """Images [M, C, H, W] (model-input units) → ``output_name`` [M, K]."""
        feeds = {input_name: np.ascontiguousarray(x, dtype=np.float32)}
        for k, v in extra.items():
            feeds[k] = np.repeat(v, len(x), axis=0)
        return session.run([output_name], feeds)[0]

    return predict


@dataclass(frozen=True)
class OnePixelResult:
    """What one call of :func:`one_pixel` found, one row per attacked image (N rows).

    success : [N] bool — the model's argmax on ``images`` differs from ``labels`` (untargeted) or
        equals ``targets`` (targeted); read from ``probs``, which the model gave for exactly
        these images.
    stopped : [N] bool — some candidate met the early-stop criterion (the "threshold" one when
        ``early_stop="off"``); implies ``success`` (for K ≤ 20 classes under "threshold").
    generations : [N] int — DE generations run for the image (0: the initial population sufficed).
    evaluations : [N] int — candidates scored for the image, population × (1 + generations):
        the model evaluations the attack cost.
    pixel : [N, 2] int — (row, col) of the changed pixel.
    values : [N, C] float32 — the values the pixel's bands were set to, input units, in ``bounds``.
    images : [N, C, H, W] float32 — the perturbed images (the input with that one pixel replaced).
    probs : [N, K] — the model's probabilities for ``images``.
    labels, targets : [N] int — true classes; wanted classes, or None for untargeted.
    index : [N] int — the row of the input each result row attacked (``arange(N)`` for
        :func:`one_pixel`; the image of each (image, wrong class) pair for
        :func:`one_pixel_each_wrong_class`).
    """

    success: np.ndarray
    stopped: np.ndarray
    generations: np.ndarray
    evaluations: np.ndarray
    pixel: np.ndarray
    values: np.ndarray
    images: np.ndarray
    probs: np.ndarray
    labels: np.ndarray
    targets: np.ndarray | None
    index: np.ndarray

    @property
    def success_rate(self) -> float:
        return float(self.success.mean())


def _check(x, labels, targets, bounds, population, generations, f, batch_size):
    if x.ndim != 4 or x.dtype != np.float32 or len(x) == 0:
        raise ValueError(f"x must be float32 [N, C, H, W] with N >= 1, got {x.dtype} {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains invalid values (NaNs or infs)")
    if labels.shape != (len(x),):
        raise ValueError(f"labels must be [N] = [{len(x)}], got shape {labels.shape}")
    if targets is not None:
        if targets.shape != (len(x),):
            raise ValueError(f"targets must be [N] = [{len(x)}], got shape {targets.shape}")
        if np.any(targets == labels):
            raise ValueError(
                f"targets equal the true label at rows {np.flatnonzero(targets == labels)}"
            )
    if labels.min() < 0 or (targets is not None and targets.min() < 0):
        raise ValueError("labels and targets must be class indices >= 0")
    lo, hi = bounds
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"bounds must be finite with lo < hi, got {bounds}")
    if population < 4 or generations < 0 or not 0 < f <= 2 or batch_size < 1:
        raise ValueError(
            "need population >= 4, generations >= 0, 0 < f <= 2, batch_size >= 1; got "
            f"{population}, {generations}, {f}, {batch_size}"
        )


def _mutation_indices(raw: np.ndarray) -> np.ndarray:
    """Map draws raw[..., j] ∈ [0, P−2−j] ([n, P, 3]) to r1, r2, r3 distinct and ≠ the member's
    own index: each draw skips, in ascending order, the indices already taken."""
    n, p, _ = raw.shape
    taken = np.broadcast_to(np.arange(p)[None, :, None], (n, p, 1))
    out = np.empty_like(raw)
    for j in range(3):
        r = raw[..., j].copy()
        for e in np.sort(taken, axis=-1).transpose(2, 0, 1):
            r += r >= e
        out[..., j] = r
        taken = np.concatenate([taken, r[..., None]], axis=-1)
    return out


class _Scorer:
    """Scores candidates [M, 2 + C] of images ``rows`` [M]: builds the perturbed images in a
    reused buffer and calls the model on ``batch_size`` rows at a time."""

    def __init__(self, predict: Predictor, x: np.ndarray, batch_size: int) -> None:
        self.predict, self.x, self.batch_size = predict, x, batch_size
        self.buf = np.empty((0, *x.shape[1:]), np.float32)

    def pixels(self, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates [M, 2 + C] → rows [M] and columns [M] (intp, floored, clipped to the
        image) and band values [M, C] float32 (model-input units)."""
        _, h, w = self.x.shape[1:]
        r = np.floor(cand[:, 0]).astype(np.intp).clip(0, h - 1)
        c = np.floor(cand[:, 1]).astype(np.intp).clip(0, w - 1)
        return r, c, cand[:, 2:].astype(np.float32)

    def __call__(self, rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
        r, c, v = self.pixels(cand)
        out = []
        for s in range(0, len(rows), self.batch_size):
            sl = slice(s, s + self.batch_size)
            m = len(rows[sl])
            if len(self.buf) < m:
                self.buf = np.empty((m, *self.x.shape[1:]), np.float32)
            b = self.buf[:m]
            np.take(self.x, rows[sl], axis=0, out=b)
            b[np.arange(m), :, r[sl], c[sl]] = v[sl]
            out.append(np.asarray(self.predict(b)))
        return np.concatenate(out)


def one_pixel(
    predict: Predictor,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    targets: np.ndarray | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    population: int = 400,
    generations: int = 80,
    f: float = 0.5,
    early_stop: StopRule = "threshold",
    batch_size: int = 256,
    seed: int | np.random.Generator | None = 0,
) -> OnePixelResult:
    """One-pixel attack on images x [N, C, H, W] (float32, model-input units, e.g. the stretched
    [0, 1] morphology input) with true classes ``labels`` [N].

    Untargeted (``targets=None``) each image's true-class probability is minimised; targeted, the
    probability of ``targets`` [N] (≠ labels) is maximised. ``population`` candidates per image
    evolve for at most ``generations`` generations with mutation factor ``f`` (defaults 400, 80,
    0.5: 002 §5.2 caps DE at 80 iterations; Su et al.'s population and F). Pixel values are
    searched in ``bounds`` = (lo, hi), the model's valid input range (for a model without one,
    pass the range the attack may use).

    ``early_stop`` ends an image's attack after the first generation (the initial population
    counts as generation 0) in which some candidate meets the criterion, and the image drops out
    of later generations:

    * ``"threshold"`` (issue 4, after Su et al.) — the target class above 0.5 (``TARGET_STOP``), or the
      true class below 0.05 (``TRUE_STOP``);
    * ``"flip"`` — the argmax leaves the true class (onto the target, targeted): the cheapest way
      to count flips, and the criterion torchattacks' and ART's one-pixel attacks stop at;
    * ``"off"`` — every image runs all generations.

    In every case the image returned is the best candidate ever scored, a successful one (argmax
    away from the label, or on the target) before any other, and ``success`` is decided by the
    argmax of the model's probabilities on that image: an attack can succeed without meeting
    the "threshold" criterion, which is stricter.

    ``batch_size`` bounds the rows (images × candidates) per model call (memory, and speed: on
    a CPU, per-image time grows beyond a few dozen rows as activations leave the cache; on a
    GPU larger is better); ``seed`` (an int, or a
    ``np.random.Generator`` to draw from) seeds one independent stream per image, so a result
    depends only on the seed, the image's row and the model — not on which other images share
    the batch. Returns an :class:`OnePixelResult`.
    """
    x = np.asarray(x)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    targets = None if targets is None else np.asarray(targets, dtype=np.int64).reshape(-1)
    _check(x, labels, targets, bounds, population, generations, f, batch_size)
    if early_stop not in ("threshold", "flip", "off"):
        raise ValueError(f"early_stop must be 'threshold', 'flip' or 'off', got {early_stop!r}")
    n, ch, h, w = x.shape
    p, d = population, 2 + ch
    lo, hi = float(bounds[0]), float(bounds[1])
    box_lo = np.array([0.0, 0.0] + [lo] * ch)
    box_hi = np.array([np.nextafter(h, 0), np.nextafter(w, 0)] + [hi] * ch)
    rngs = np.random.default_rng(seed).spawn(n)
    score = _Scorer(predict, x, batch_size)

    def assess(rows: np.ndarray, probs: np.ndarray):
        """[m, P, K] probabilities → fitness (lower is better), success, stop: each [m, P]."""
        if targets is None:
            p_true = np.take_along_axis(probs, labels[rows, None, None], axis=2)[..., 0]
            fit, ok, sure = p_true, probs.argmax(2) != labels[rows, None], p_true < TRUE_STOP
        else:
            p_t = np.take_along_axis(probs, targets[rows, None, None], axis=2)[..., 0]
            fit, ok, sure = -p_t, probs.argmax(2) == targets[rows, None], p_t > TARGET_STOP
        return fit, ok, ok if early_stop == "flip" else sure

    def evaluate(rows: np.ndarray, cand: np.ndarray):
        """Images ``rows`` [m] with candidates [m, P, 2 + C] → probabilities [m, P, K] and
        fitness, success, stop [m, P] (``assess``)."""
        probs = score(np.repeat(rows, p), cand.reshape(-1, d))
        if probs.ndim != 2 or len(probs) != len(rows) * p:
            raise ValueError(f"predictor must return [M, K] probabilities, got shape {probs.shape}")
        probs = probs.reshape(len(rows), p, -1)
        ref = labels if targets is None else np.concatenate([labels, targets])
        if ref.size and ref.max() >= probs.shape[2]:
            raise ValueError(f"class index {ref.max()} out of range for K = {probs.shape[2]}")
        return (probs, *assess(rows, probs))

    def keep_best(rows, cand, probs, fit, ok):
        key = fit + 2.0 * ~ok  # successes first, then by fitness
        j = key.argmin(1)
        k = key[np.arange(len(rows)), j]
        better = k < best_key[rows]
        sel = rows[better]
        best_key[sel] = k[better]
        best_cand[sel] = cand[better, j[better]]
        best_probs[sel] = probs[better, j[better]]

    pop = box_lo + np.stack([g.random((p, d)) for g in rngs]) * (box_hi - box_lo)
    rows = np.arange(n)
    probs, fit, ok, stop = evaluate(rows, pop)
    best_key = np.full(n, np.inf)
    best_cand = np.zeros((n, d))
    best_probs = np.zeros((n, probs.shape[2]), dtype=probs.dtype)
    keep_best(rows, pop, probs, fit, ok)
    stopped = stop.any(1)
    evaluations = np.full(n, p, dtype=np.int64)
    gens = np.zeros(n, dtype=np.int64)
    hi_draw = np.array([p - 1, p - 2, p - 3])
    for g in range(1, generations + 1):
        rows = np.arange(n) if early_stop == "off" else np.flatnonzero(~stopped)
        if not len(rows):
            break
        raw = np.stack([rngs[i].integers(0, hi_draw, size=(p, 3)) for i in rows])
        r = _mutation_indices(raw)
        parents = pop[rows]
        pick = np.arange(len(rows))[:, None]
        child = parents[pick, r[..., 0]] + f * (parents[pick, r[..., 1]] - parents[pick, r[..., 2]])
        child = np.clip(child, box_lo, box_hi)
        probs, fit_c, ok, stop = evaluate(rows, child)
        evaluations[rows] += p
        gens[rows] = g
        better = fit_c < fit[rows]
        pop[rows] = np.where(better[..., None], child, parents)
        fit[rows] = np.where(better, fit_c, fit[rows])
        keep_best(rows, child, probs, fit_c, ok)
        stopped[rows] |= stop.any(1)

    r_, c_, v_ = score.pixels(best_cand)
    images = x.copy()
    images[np.arange(n), :, r_, c_] = v_
    won = best_probs.argmax(1) != labels if targets is None else best_probs.argmax(1) == targets
    return OnePixelResult(
        success=won,
        stopped=stopped,
        generations=gens,
        evaluations=evaluations,
        pixel=np.stack([r_, c_], axis=1).astype(np.int64),
        values=v_,
        images=images,
        probs=best_probs,
        labels=labels,
        targets=targets,
        index=np.arange(n),
    )


def wrong_class_targets(labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (image, wrong class) pair of labels [N]: image rows [N·(K−1)] and targets
    [N·(K−1)], image-major, targets ascending."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size and not (0 <= labels.min() and labels.max() < num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got {labels.min()}…{labels.max()}"
        )
    classes = np.arange(num_classes)
    rows, tgt = np.nonzero(classes[None, :] != labels[:, None])
    return rows, classes[tgt]


def one_pixel_each_wrong_class(
    predict: Predictor, x: np.ndarray, labels: np.ndarray, num_classes: int, **kw
) -> OnePixelResult:
    """Targeted one-pixel attacks on each image at each of its K − 1 wrong classes (as 002 does),
    all in one :func:`one_pixel` call; ``kw`` are its keywords. Rows are image-major and
    ``index`` says which image of x [N, C, H, W] each of the N·(K−1) rows attacked."""
    if "targets" in kw:
        raise TypeError("one_pixel_each_wrong_class chooses the targets itself")
    rows, tgt = wrong_class_targets(labels, num_classes)
    res = one_pixel(predict, np.asarray(x)[rows], np.asarray(labels)[rows], targets=tgt, **kw)
    return replace(res, index=rows)
