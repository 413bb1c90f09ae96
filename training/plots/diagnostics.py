"""Diagnostic figures of trained models: ROC curves with bootstrap bands (004 Fig. 4a, §6.1),
confusion matrices (004 Fig. 4b), z_phot against z_spec with the δz histogram (003 §3.1, Figs. 3–4)
and Grad-CAM maps over the cutouts (004 Fig. 6).

The numbers come from ``training.metrics`` (and ``roc_band`` here, the one curve-valued statistic);
each ``plot_*`` only draws them, on a bare ``Figure`` rendered with Agg, and returns the PNG path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from sklearn import metrics as skm

from core.preprocess import Preprocessing, rgb_composite

from ..metrics import binary_scores, bootstrap_intervals, photoz_scores
from .examples import DPI, PANEL_IN, save_figure

#: 004 Fig. 4a's line styles, in order: DeepShadows (orange, solid), SVM (blue, dashed), RF (red,
#: dash-dotted); further curves cycle through these.
ROC_STYLES = (("tab:orange", "-"), ("tab:blue", "--"), ("tab:red", "-."), ("tab:green", ":"))
#: Above this many objects ``plot_photoz`` draws a 2-D histogram instead of points.
SCATTER_MAX = 5000


def roc_band(
    y_true: np.ndarray,
    scores: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    n_grid: int = 101,
) -> dict:
    """The ROC curve on a common FPR grid with a percentile bootstrap band on the TPR (004 §6.1).

    y_true : labels [N], 1 = positive (LSBG). scores : [N], larger = more positive (P(LSBG), or
    any monotone score such as an SVM's decision value).
    Each of ``n_boot`` resamples of the N objects (``metrics.bootstrap_intervals``: with
    replacement, seeded) gives a ROC curve; its TPR is interpolated linearly on ``n_grid`` FPRs in
    [0, 1], taking the highest TPR where the curve is vertical; the band at each FPR is the
    central ``level`` percentile interval. Resamples with one class only are skipped.

    Returns {"fpr" [G], "tpr" [G] (the full sample's curve), "tpr_lo" [G], "tpr_hi" [G],
    "auc" (``metrics.binary_scores``), "auc_interval" (lo, hi), "n_boot", "level"}.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y_true.ndim != 1 or y_true.shape != scores.shape:
        raise ValueError(
            f"y_true and scores must be arrays [N] of one length, got shapes {y_true.shape} "
            f"and {scores.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain invalid values (NaNs or infs)")
    if set(np.unique(y_true).tolist()) != {0, 1}:
        raise ValueError(f"y_true must hold both labels 0 and 1, got {np.unique(y_true)}")
    grid = np.linspace(0.0, 1.0, n_grid)

    def curve(idx: np.ndarray) -> dict:
        """AUC and the TPR at ``grid`` [n_grid] for the objects ``idx`` [M]."""
        y, s = y_true[idx], scores[idx]
        if y.min() == y.max():
            return {"auc": np.nan, **{f"tpr{i}": np.nan for i in range(n_grid)}}
        fpr, tpr, _ = skm.roc_curve(y, s)
        on_grid = _interp_roc(grid, fpr, tpr)
        return {"auc": skm.auc(fpr, tpr), **{f"tpr{i}": v for i, v in enumerate(on_grid)}}

    full = curve(np.arange(len(y_true)))
    ci = bootstrap_intervals(curve, len(y_true), n_boot=n_boot, seed=seed, level=level)
    nan2 = (np.nan, np.nan)
    band = np.array([ci.get(f"tpr{i}", nan2) for i in range(n_grid)])
    return {
        "fpr": grid,
        "tpr": np.array([full[f"tpr{i}"] for i in range(n_grid)]),
        "tpr_lo": band[:, 0],
        "tpr_hi": band[:, 1],
        "auc": binary_scores(y_true, scores)["auc"],
        "auc_interval": ci.get("auc", nan2),
        "n_boot": n_boot,
        "level": level,
    }


def plot_roc(
    y_true: np.ndarray,
    scores: np.ndarray | Mapping[str, np.ndarray],
    path: Path,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    title: str | None = None,
) -> Path:
    """ROC curves with bootstrap TPR bands and AUC [bootstrap interval] in the legend (004 Fig. 4a).

    scores : one model's scores [N] or {model name: scores [N]} for several on the same objects.
    The diagonal is a random classifier. See ``roc_band`` for the band. 6 × 5.5 in at 100 dpi.
    """
    models = {"model": scores} if not isinstance(scores, Mapping) else dict(scores)
    if not models:
        raise ValueError("plot_roc needs at least one model's scores")
    fig = Figure(figsize=(6.0, 5.5), dpi=DPI)
    ax = fig.subplots()
    pct = f"{level:.0%}"
    for k, (name, s) in enumerate(models.items()):
        colour, style = ROC_STYLES[k % len(ROC_STYLES)]
        r = roc_band(y_true, s, n_boot=n_boot, seed=seed, level=level)
        lo, hi = r["auc_interval"]
        ax.fill_between(r["fpr"], r["tpr_lo"], r["tpr_hi"], color=colour, alpha=0.25, lw=0)
        ax.plot(
            r["fpr"],
            r["tpr"],
            color=colour,
            ls=style,
            lw=1.6,
            label=f"{name}: AUC = {r['auc']:.3f} [{lo:.3f}, {hi:.3f}]",
        )
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="random classifier")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    n_pos = int(np.sum(np.asarray(y_true) == 1))
    default = f"ROC, {len(y_true)} objects ({n_pos} positive); bands: {pct} bootstrap ({n_boot})"
    ax.set_title(title or default, fontsize=9)
    ax.legend(fontsize=8, loc="lower right", title=f"AUC [{pct} interval]", title_fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion(
    cm: np.ndarray, classes: Sequence[str], path: Path, normalise: bool = True
) -> Path:
    """A confusion matrix cm [K, K] of counts, rows = true class, columns = predicted
    (``metrics.classification_scores``), for K = len(classes).

    normalise : colour by the fraction of each true class and write "count (fraction)" in each
    cell, as 004 Fig. 4b does; otherwise colour and write counts. 1.6 in per class, at least 4.
    """
    cm = np.asarray(cm)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(f"cm must be [{k}, {k}] for {k} classes, got shape {cm.shape}")
    if np.any(cm < 0):
        raise ValueError("cm holds negative counts")
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    shown = frac if normalise else cm
    side = max(4.0, 1.6 * k)
    fig = Figure(figsize=(side + 1.0, side), dpi=DPI)
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    fig.colorbar(im, ax=ax, label="fraction of true class" if normalise else "objects")
    dark = 0.5 * (1 if normalise else max(cm.max(), 1))
    for t in range(k):
        for p in range(k):
            text = f"{cm[t, p]:g}" + (f"\n({frac[t, p]:.3f})" if normalise else "")
            colour = "white" if shown[t, p] > dark else "black"
            ax.text(p, t, text, ha="center", va="center", color=colour, fontsize=10)
    ax.set_xticks(range(k), classes)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{int(cm.sum())} objects", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_photoz(z_spec: np.ndarray, z_phot: np.ndarray, path: Path, outlier: float = 0.05) -> Path:
    """z_phot against z_spec (both [N], redshift) and the δz histogram with bias, σ_MAD and η
    (003 §3.1).

    z_phot : e.g. ``metrics.pdf_mean`` of the predicted p(z). Left: points (a log-scaled 2-D
    histogram above ``SCATTER_MAX`` objects), the 1:1 line and the outlier bounds |δz| = outlier,
    i.e. z_phot = z_spec ± outlier (1 + z_spec). Right: δz = (z_phot − z_spec) / (1 + z_spec)
    with the same bounds; the numbers are ``metrics.photoz_scores``. 11 × 5 in.
    """
    z_spec = np.asarray(z_spec, dtype=np.float64)
    z_phot = np.asarray(z_phot, dtype=np.float64)
    if z_spec.ndim != 1 or z_spec.shape != z_phot.shape or z_spec.size == 0:
        raise ValueError(
            f"z_spec and z_phot must be non-empty arrays [N] of one length, got shapes "
            f"{z_spec.shape} and {z_phot.shape}"
        )
    if not (np.all(np.isfinite(z_spec)) and np.all(np.isfinite(z_phot))):
        raise ValueError("redshifts contain invalid values (NaNs or infs)")
    s = photoz_scores(z_phot, z_spec, outlier=outlier)
    dz = (z_phot - z_spec) / (1 + z_spec)
    fig = Figure(figsize=(11.0, 5.0), dpi=DPI)
    ax, hx = fig.subplots(1, 2)
    lo = min(z_spec.min(), z_phot.min(), 0.0)
    hi = max(z_spec.max(), z_phot.max())
    hi += 0.05 * (hi - lo) or 0.1
    if len(z_spec) > SCATTER_MAX:
        _, _, _, im = ax.hist2d(
            z_spec, z_phot, bins=100, range=[[lo, hi], [lo, hi]], norm=LogNorm(), cmap="viridis"
        )
        fig.colorbar(im, ax=ax, label="objects per bin")
    else:
        ax.scatter(z_spec, z_phot, s=4, alpha=0.5, color="tab:blue", lw=0)
    line = np.linspace(lo, hi, 2)
    ax.plot(line, line, "k-", lw=1, label="1:1")
    ax.plot(line, line + outlier * (1 + line), "r--", lw=1, label=f"|δz| = {outlier:g}")
    ax.plot(line, line - outlier * (1 + line), "r--", lw=1)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_{spec}$")
    ax.set_ylabel("$z_{phot}$")
    ax.set_title(f"{s['n']} objects", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    span = max(3 * outlier, float(np.percentile(np.abs(dz), 99.5)))
    hx.hist(np.clip(dz, -span, span), bins=80, range=(-span, span), color="tab:blue")
    for sign in (-1, 1):
        hx.axvline(sign * outlier, color="r", ls="--", lw=1)
    hx.axvline(0, color="k", lw=0.8)
    hx.set_xlim(-span, span)
    hx.set_xlabel("δz = ($z_{phot}$ − $z_{spec}$) / (1 + $z_{spec}$)")
    hx.set_ylabel("objects")
    hx.text(
        0.03,
        0.97,
        f"bias = {s['bias']:.2e}\nσ$_{{MAD}}$ = {s['sigma_mad']:.2e}\n"
        f"η = {100 * s['eta']:.2f}% (|δz| > {outlier:g})",
        transform=hx.transAxes,
        va="top",
        fontsize=9,
        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
    )
    hx.set_title("δz (values beyond the axes are piled at its ends)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_gradcam(
    images: np.ndarray,
    cams: np.ndarray,
    titles: Sequence[str],
    path: Path,
    ncols: int | None = None,
    alpha: float = 0.5,
    prep: Preprocessing | None = None,
) -> Path:
    """Cutouts beside their Grad-CAM maps overlaid on them (004 Fig. 6).

    images : raw cutouts [N, 3, H, W], bands blue → red (g, r, z for LSBGs), shown with
        ``preprocess.rgb_composite`` (``prep``, default stretch). cams : maps [N, H, W] in [0, 1]
        (``gradcam.grad_cam``). titles : [N], e.g. "TP  P(LSBG) = 0.97".
    Each example takes two panels (composite | composite + jet heat map at ``alpha``); ``ncols``
    examples per row (default ⌈√N⌉, so the four confusion cells make a 2 × 2 grid: pass them in
    the order TN, FP, FN, TP for 004's rows = true, columns = predicted).
    """
    images, cams = np.asarray(images), np.asarray(cams)
    n = len(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, H, W], got shape {images.shape}")
    if cams.shape != (n, *images.shape[2:]):
        raise ValueError(f"cams must be [{n}, H, W] matching images, got shape {cams.shape}")
    if len(titles) != n or n == 0:
        raise ValueError(f"need one title per image and at least one image, got {len(titles)}/{n}")
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(2 * ncols * PANEL_IN, nrows * PANEL_IN + 0.4), dpi=DPI)
    axes = fig.subplots(nrows, 2 * ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    im = None
    for i in range(n):
        r, c = divmod(i, ncols)
        rgb = rgb_composite(images[i], prep)
        left, right = axes[r, 2 * c], axes[r, 2 * c + 1]
        left.imshow(rgb, origin="lower", interpolation="nearest")
        right.imshow(rgb, origin="lower", interpolation="nearest")
        im = right.imshow(
            cams[i], origin="lower", cmap="jet", alpha=alpha, vmin=0, vmax=1, interpolation="none"
        )
        left.set_title(titles[i], fontsize=8, loc="left")
        right.set_title("Grad-CAM", fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.92, bottom=0.01, top=1 - 0.4 / (nrows * PANEL_IN + 0.4))
    cax = fig.add_axes((0.935, 0.1, 0.015, 0.8))
    fig.colorbar(im, cax=cax, label="Grad-CAM (normalised)")
    return save_figure(fig, path)


def _interp_roc(grid: np.ndarray, fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """TPR at each FPR of ``grid``: linear between ROC points, the highest TPR where the curve is
    vertical (np.interp is undefined on the repeated FPRs of a vertical step)."""
    j = np.searchsorted(fpr, grid, side="right") - 1  # last point with fpr <= g; fpr[0] = 0
    j1 = np.minimum(j + 1, len(fpr) - 1)
    step = fpr[j1] - fpr[j]
    w = np.divide(grid - fpr[j], step, out=np.zeros_like(grid), where=step > 0)
    return tpr[j] + w * (tpr[j1] - tpr[j])
