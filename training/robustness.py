"""Latent-space measures of robustness (002 §4): distances d_E, the JS distance between two d_E
distributions, church windows and isomaps. Numbers only; the pictures are in
``training.plots.robustness``.

Every function takes a skyguard classifier (a :class:`~training.models.SkyNet`: ``features(x)``
gives the latent [N, D], ``head(latent)`` the logits [N, K]) in eval mode, and images in the
model's input units (the stretched [0, 1] morphology input). Photo-z networks, whose ``features``
also take E(B−V), are not supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.spatial.distance import jensenshannon
from torch import nn

from .attacks.onepixel import OnePixelResult

#: Bins of the d_E histograms compared by :func:`js_distance`. 002 does not state its binning (and
#: its released code has no JS cell); 20 equal-width bins over the pooled range give ~7 objects a
#: bin at its 136-image sample size.
JS_BINS = 20

#: Latents per ``model.head`` call in :func:`church_window` (a 221² grid takes 6 calls).
HEAD_BATCH = 8192


def _check_eval(model: nn.Module) -> None:
    if model.training:
        raise ValueError(
            "model is in training mode; call model.eval() first (batch norm would mix the "
            "images' statistics and dropout would move the latents)"
        )


def _device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def latents(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Latent vectors [N, D] (float64) of images x [N, C, H, W], ``batch_size`` images a pass."""
    _check_eval(model)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W], got shape {x.shape}")
    dev = _device(model)
    out = []
    with torch.inference_mode():
        for s in range(0, len(x), batch_size):
            z = model.features(
                torch.from_numpy(np.ascontiguousarray(x[s : s + batch_size])).to(dev)
            )
            out.append(z.double().cpu().numpy())
    if not out:
        return np.zeros((0, 0))
    return np.concatenate(out)


def latent_distances(
    model: nn.Module, x: np.ndarray, x_adv: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Euclidean distances d_E [N] between the latents of base images x [N, C, H, W] and their
    perturbed counterparts x_adv [N, C, H, W] (one-pixel attacked, or the same objects in the
    noisier Y1 domain), in the model's latent units (002 §4.1, Tables 3 and 5)."""
    x, x_adv = np.asarray(x), np.asarray(x_adv)
    if x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {x.shape} and {x_adv.shape}")
    za, zb = latents(model, x, batch_size), latents(model, x_adv, batch_size)
    return np.linalg.norm(zb - za, axis=1) if len(x) else np.zeros(0)


def distance_summary(d: np.ndarray) -> dict[str, float]:
    """Median, mean, standard deviation and standard error of the mean of distances d [N]
    (002 Tables 3 and 5): ``{"n", "median", "mean", "std", "sem"}``.

    ``std`` is the sample standard deviation (ddof = 1) and ``sem = std / sqrt(n)``. (The authors'
    released ``dist_metric`` uses ddof = 0: smaller by sqrt((n − 1) / n), 0.4% at n = 136.)
    """
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise ValueError("distance_summary needs at least one distance")
    if not np.all(np.isfinite(d)):
        raise ValueError("distances contain invalid values (NaNs or infs)")
    n = d.size
    std = float(d.std(ddof=1)) if n > 1 else float("nan")
    return {
        "n": n,
        "median": float(np.median(d)),
        "mean": float(d.mean()),
        "std": std,
        "sem": std / np.sqrt(n),
    }


def js_bin_edges(d_a: np.ndarray, d_b: np.ndarray, bins: int | np.ndarray = JS_BINS) -> np.ndarray:
    """Bin edges [bins + 1] float64 shared by two samples d_a [N_a] and d_b [N_b] (flattened):
    ``bins`` equal-width bins over the pooled [min, max] (a zero-width range is widened to
    ±0.5), or the edges given."""
    if not np.isscalar(bins):
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bin edges must be a strictly increasing 1-D array of >= 2 values")
        return edges
    if int(bins) < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    pooled = np.concatenate([np.ravel(d_a), np.ravel(d_b)]).astype(np.float64)
    lo, hi = float(pooled.min()), float(pooled.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, int(bins) + 1)


def js_distance(d_a: np.ndarray, d_b: np.ndarray, bins: int | np.ndarray = JS_BINS) -> float:
    """Jensen–Shannon distance between two distributions of d_E (002 §4.1, eq. 4; Fig. 6).

    Both samples d_a [N_a] and d_b [N_b] are histogrammed on the same edges — ``bins``
    (default 20) equal-width bins over the pooled [min, max], or explicit edges — and each
    histogram is normalised to sum to 1 (002 §5.3). The JS divergence is taken with base-2
    logarithms, so the distance, its square root, lies in [0, 1]: 0 for identical histograms,
    1 for histograms with no bin in common. It is symmetric in (d_a, d_b).
    """
    d_a = np.asarray(d_a, dtype=np.float64).reshape(-1)
    d_b = np.asarray(d_b, dtype=np.float64).reshape(-1)
    if d_a.size == 0 or d_b.size == 0:
        raise ValueError("js_distance needs at least one distance in each sample")
    if not (np.all(np.isfinite(d_a)) and np.all(np.isfinite(d_b))):
        raise ValueError("distances contain invalid values (NaNs or infs)")
    edges = js_bin_edges(d_a, d_b, bins)
    p = np.histogram(d_a, edges)[0].astype(np.float64)
    q = np.histogram(d_b, edges)[0].astype(np.float64)
    if p.sum() == 0 or q.sum() == 0:
        raise ValueError("a sample has no distance inside the bin edges")
    # scipy normalises p and q to sum to 1; rounding can leave sqrt of a tiny negative → clip
    return float(np.clip(np.nan_to_num(jensenshannon(p, q, base=2.0)), 0.0, 1.0))


def flipped_under_both(res_a: OnePixelResult, res_b: OnePixelResult) -> np.ndarray:
    """Indices [M] int (sorted, into the attacked images) of the images successfully attacked under both
    models, e.g. regular and domain-adapted training (002 §4.1: 136 of 150 for ResNet18).

    Works for :func:`~training.attacks.one_pixel` results and for
    :func:`~training.attacks.one_pixel_each_wrong_class` ones alike (through ``index``: an image
    counts as flipped when any of its rows succeeded)."""
    return np.intersect1d(res_a.index[res_a.success], res_b.index[res_b.success])


def best_success_rows(res: OnePixelResult, images: np.ndarray) -> np.ndarray:
    """For each image index in ``images`` [M], the result row [M] of its most confident success:
    the successful row with the lowest true-class probability (one row per image for
    :func:`~training.attacks.one_pixel`; one of the K − 1 targets for
    :func:`~training.attacks.one_pixel_each_wrong_class`). Raises if an image has no success."""
    images = np.asarray(images, dtype=np.int64).reshape(-1)
    p_true = res.probs[np.arange(len(res.labels)), res.labels]
    key = np.where(res.success, p_true, np.inf)
    rows = np.empty(len(images), dtype=np.int64)
    for k, i in enumerate(images):
        cand = np.flatnonzero(res.index == i)
        if cand.size == 0 or not np.isfinite(key[cand]).any():
            raise ValueError(f"image {i} was not flipped by this attack")
        rows[k] = cand[np.argmin(key[cand])]
    return rows


def apply_pixel(x: np.ndarray, pixel: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The image x [C, H, W] with every band at ``pixel`` = (row, col) replaced by ``values``
    [C] (the one-pixel attack's perturbation, 002 §2.3); a new float32 array."""
    x = np.array(x, dtype=np.float32)
    r, c = (int(v) for v in np.asarray(pixel).reshape(2))
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if x.ndim != 3 or values.shape != (x.shape[0],):
        raise ValueError(f"need x [C, H, W] and values [C], got {x.shape} and {values.shape}")
    if not (0 <= r < x.shape[1] and 0 <= c < x.shape[2]):
        raise ValueError(f"pixel ({r}, {c}) lies outside the {x.shape[1]}×{x.shape[2]} image")
    x[:, r, c] = values
    return x


NoiseKind = Literal["image", "direction", "random"]


@dataclass(frozen=True)
class ChurchWindow:
    """A church-window slice of a model's latent space around one image (002 §4.2).

    The point (a, b) of the plane is the latent ``origin + a·u + b·v``, classified by the
    model's head; a is the horizontal (one-pixel) axis, b the vertical (noise) axis.

    axis : [G] coordinates of the grid along both axes (units of |u| and |v|), ascending.
    classes : [G, G] int — the head's argmax at (a = axis[j], b = axis[i]) in ``classes[i, j]``
        (rows are b, so ``imshow(classes, origin="lower")`` draws it the right way up).
    origin : [D] latent of the base image, at (0, 0).
    u : [D] one-pixel direction: latent of the attacked image − ``origin``; (1, 0) is the attacked
        image's latent.
    v : [D] noise direction: latent of the noisy (Y1) image − ``origin`` (then (0, 1) is that
        image's latent), a given latent direction, or a random one (see ``noise``).
    noise : where v came from: ``"image"``, ``"direction"`` or ``"random"``.
    base_class, adv_class : the model's argmax on the base and the attacked image.
    noisy_class : the model's argmax on the noisy image (None unless ``noise == "image"``).
    """

    axis: np.ndarray
    classes: np.ndarray
    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    noise: NoiseKind
    base_class: int
    adv_class: int
    noisy_class: int | None

    @property
    def markers(self) -> dict[str, tuple[float, float]]:
        """Plane coordinates of the images shown: base (0, 0), one-pixel (1, 0), and the noisy
        image (0, 1) when v is one's direction."""
        pts = {"base": (0.0, 0.0), "one_pixel": (1.0, 0.0)}
        if self.noise == "image":
            pts["noisy"] = (0.0, 1.0)
        return pts

    def latent(self, a: float, b: float) -> np.ndarray:
        """The latent [D] at plane coordinates (a, b)."""
        return self.origin + a * self.u + b * self.v


def church_window(
    model: nn.Module,
    x: np.ndarray,
    pixel: np.ndarray,
    values: np.ndarray,
    x_noisy: np.ndarray | None = None,
    *,
    noise_direction: np.ndarray | None = None,
    grid: int = 221,
    span: float = 1.1,
    seed: int | np.random.Generator | None = 0,
    batch_size: int = HEAD_BATCH,
) -> ChurchWindow:
    """Church window of image x [C, H, W] (002 §4.2, Figs. 3 and 5).

    The plane lies in the model's latent space, through the base image's latent z₀: its
    horizontal axis is the one-pixel direction u = z(x_1P) − z₀, with x_1P the base image with
    ``pixel`` = (row, col) set to ``values`` [C] (an :class:`OnePixelResult` row), and its vertical
    axis the noise direction v, taken in this order from

    * ``x_noisy`` [C, H, W] — the same object in the noisier domain (Y1): v = z(x_noisy) − z₀, as
      002 does. u and v are *not* orthogonalised (002 deviates from the orthonormal axes of
      Warde-Farley & Goodfellow 2017 and keeps two perturbation directions);
    * ``noise_direction`` [D] — a latent direction, used as given;
    * neither — a seeded Gaussian latent direction, made orthogonal to u (Gram–Schmidt) and
      scaled to |u|, the traditional church-window second axis.

    Each axis is normalised by its vector, so (1, 0) is the attacked image and (0, 1) the noisy
    one. The ``grid`` × ``grid`` points (a, b) ∈ [−span, span]² (defaults 221 and 1.1: steps of
    0.01, the authors' ``cw_plotter``; an odd ``grid`` puts 0 on the grid, and span = 1 puts ±1
    on it) are the latents z₀ + a u + b v, classified by ``model.head`` — the network's dense
    layers only (002: "a truncated network") — ``batch_size`` latents a call.
    """
    _check_eval(model)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"x must be one image [C, H, W], got shape {x.shape}")
    if grid < 2 or not span > 0 or batch_size < 1:
        raise ValueError(
            f"need grid >= 2, span > 0, batch_size >= 1; got {grid}, {span}, {batch_size}"
        )
    if x_noisy is not None and noise_direction is not None:
        raise ValueError("give x_noisy or noise_direction, not both")
    stack = [x, apply_pixel(x, pixel, values)]
    if x_noisy is not None:
        x_noisy = np.asarray(x_noisy, dtype=np.float32)
        if x_noisy.shape != x.shape:
            raise ValueError(f"x_noisy must have x's shape {x.shape}, got {x_noisy.shape}")
        stack.append(x_noisy)
    z = latents(model, np.stack(stack))
    dev = _device(model)
    with torch.inference_mode():
        own = model.head(torch.from_numpy(z).to(dev, torch.float32)).argmax(1).cpu().numpy()
    origin, u = z[0], z[1] - z[0]
    if x_noisy is not None:
        v, kind = z[2] - z[0], "image"
    elif noise_direction is not None:
        v = np.asarray(noise_direction, dtype=np.float64).reshape(-1)
        if v.shape != origin.shape:
            raise ValueError(f"noise_direction must be [D] = [{origin.size}], got {v.shape}")
        kind = "direction"
    else:
        v = np.random.default_rng(seed).standard_normal(origin.size)
        nu = np.linalg.norm(u)
        if nu > 0:
            v -= (v @ u) / nu**2 * u
            v *= nu / np.linalg.norm(v)
        kind = "random"

    axis = np.linspace(-span, span, grid)
    if grid % 2:
        axis[grid // 2] = 0.0  # exactly: the origin is the base image
    bb, aa = np.meshgrid(axis, axis, indexing="ij")  # rows b (noise), columns a (one-pixel)
    classes = np.empty(grid * grid, dtype=np.int64)
    coef = np.stack([aa.ravel(), bb.ravel()], 1)
    basis = torch.from_numpy(np.stack([u, v])).to(dev, torch.float64)
    z0 = torch.from_numpy(origin).to(dev, torch.float64)
    with torch.inference_mode():
        for s in range(0, len(coef), batch_size):
            c = torch.from_numpy(coef[s : s + batch_size]).to(dev, torch.float64)
            pts = (z0 + c @ basis).float()
            classes[s : s + len(c)] = model.head(pts).argmax(1).cpu().numpy()
    return ChurchWindow(
        axis=axis,
        classes=classes.reshape(grid, grid),
        origin=origin,
        u=u,
        v=v,
        noise=kind,
        base_class=int(own[0]),
        adv_class=int(own[1]),
        noisy_class=int(own[2]) if x_noisy is not None else None,
    )


@dataclass(frozen=True)
class IsomapEmbedding:
    """Isomap coordinates of two latent samples (and optional extra points) fitted together.

    a : [N_a, k] — e.g. Y10 test images; b : [N_b, k] — e.g. the same objects in Y1;
    extra : [M, k] — points fitted with them (a triplet's base, noisy, one-pixel latents).
    """

    a: np.ndarray
    b: np.ndarray
    extra: np.ndarray


def isomap_embedding(
    latents_a: np.ndarray,
    latents_b: np.ndarray,
    n_components: Literal[2, 3] = 2,
    n_neighbors: int = 5,
    extra: np.ndarray | None = None,
) -> IsomapEmbedding:
    """Isomap (Tenenbaum et al. 2000; scikit-learn, 002 §4.3) of latents [N_a, D] and [N_b, D]
    (and ``extra`` [M, D]), fitted on all of them pooled so the samples share one embedding.

    ``n_neighbors`` = 5 and ``path_method="auto"`` are scikit-learn's defaults, which 002 and its
    released ``isomap_plot`` use; 002 shows 250 (2-D, Fig. 3) and 200 (3-D, Fig. 4) random test
    objects in each domain. Needs more than ``n_neighbors`` points in all.
    """
    from sklearn.manifold import Isomap

    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3, got {n_components}")
    parts = [np.asarray(latents_a, np.float64), np.asarray(latents_b, np.float64)]
    if extra is not None:
        parts.append(np.asarray(extra, np.float64))
    dims = {p.shape[1] for p in parts if p.ndim == 2}
    if any(p.ndim != 2 for p in parts) or len(dims) != 1:
        raise ValueError(f"latents must be [N, D] with one D, got {[p.shape for p in parts]}")
    pooled = np.concatenate(parts)
    if len(pooled) <= n_neighbors:
        raise ValueError(
            f"isomap needs more than n_neighbors = {n_neighbors} points, got {len(pooled)}"
        )
    emb = Isomap(n_components=n_components, n_neighbors=n_neighbors).fit_transform(pooled)
    na, nb = len(parts[0]), len(parts[1])
    return IsomapEmbedding(a=emb[:na], b=emb[na : na + nb], extra=emb[na + nb :])
