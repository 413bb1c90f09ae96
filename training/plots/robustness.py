"""Robustness figures of 002 §5: church windows (Figs. 3, 5), isomaps in 2-D and 3-D (Figs. 3,
4) and d_E histograms with their JS distance (Fig. 6). The numbers come from
``training.robustness``; each function draws a bare Agg ``Figure``, writes a PNG and returns its
path.

Colours and markers are 002's (its Fig. 3 caption and the authors' released plotting code):
spiral orange ``#ffa600``, elliptical violet ``#bc5090``, merger navy ``#003f5c``; base Y10
image "×", noisy Y1 image star, one-pixel-attacked image triangle; Y10 points filled, Y1 empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from ..gm20 import MORPHOLOGY_CLASSES
from ..robustness import ChurchWindow, IsomapEmbedding
from .examples import DPI, save_figure

#: 002's class colours, in class-index order (spiral, elliptical, merger).
CLASS_COLOURS = ("#ffa600", "#bc5090", "#003f5c")
#: Colours for further classes (a model with more than three outputs).
EXTRA_COLOURS = ("#58508d", "#ff6361", "#2f4b7c", "#a05195", "#d45087", "#665191")
#: Markers of a triplet (002 Figs. 3, 5): base Y10 image, one-pixel attacked image, noisy Y1.
TRIPLET_MARKERS = {"base": "X", "one_pixel": "^", "noisy": "*"}
TRIPLET_NAMES = {"base": "Y10 (base)", "one_pixel": "one-pixel (1P)", "noisy": "Y1 (noisy)"}
#: Fig. 6: first model (regular) navy, second (domain adaptation) orange; means violet, medians
#: blue; dashed lines for the first model, solid for the second.
HIST_COLOURS = ("#003f5c", "#ffa600")
MEAN_COLOUR, MEDIAN_COLOUR = "#bc5090", "#1f77b4"


def class_colours(n: int) -> list[str]:
    """Colours of classes 0 … n − 1: 002's three, then further distinct ones."""
    palette = CLASS_COLOURS + EXTRA_COLOURS
    if n > len(palette):
        raise ValueError(f"at most {len(palette)} classes have colours, got {n}")
    return list(palette[:n])


def _draw_church_window(ax, cw: ChurchWindow, classes: Sequence[str], title: str | None) -> None:
    k = max(len(classes), int(cw.classes.max()) + 1)
    lo, hi = float(cw.axis[0]), float(cw.axis[-1])
    step = (hi - lo) / (len(cw.axis) - 1)
    ax.imshow(
        cw.classes,
        origin="lower",
        extent=(lo - step / 2, hi + step / 2, lo - step / 2, hi + step / 2),
        cmap=ListedColormap(class_colours(k)),
        vmin=-0.5,
        vmax=k - 0.5,
        interpolation="nearest",
    )
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(0, color="k", lw=0.8)
    for name, (a, b) in cw.markers.items():
        ax.scatter(
            [a],
            [b],
            marker=TRIPLET_MARKERS[name],
            s=140,
            c="k",
            edgecolors="w",
            linewidths=0.8,
            zorder=3,
            label=TRIPLET_NAMES[name],
        )
    ax.set_xlabel("one-pixel direction")
    ax.set_ylabel("noise direction" if cw.noise != "random" else "random direction")
    ax.set_xlim(lo - step / 2, hi + step / 2)
    ax.set_ylim(lo - step / 2, hi + step / 2)
    if title is None:
        title = f"{_name(classes, cw.base_class)} → {_name(classes, cw.adv_class)}"
    ax.set_title(title, fontsize=10)


def _class_legend(fig, classes: Sequence[str], present: np.ndarray, **kw) -> None:
    from matplotlib.patches import Patch

    colours = class_colours(max(len(classes), int(present.max(initial=0)) + 1))
    handles = [
        Patch(color=colours[k], label=_name(classes, k)) for k in np.unique(present.astype(int))
    ]
    fig.legend(handles=handles, fontsize=8, **kw)


def plot_church_window(
    cw: ChurchWindow,
    classes: Sequence[str] = MORPHOLOGY_CLASSES,
    path: Path | str = "church_window.png",
    title: str | None = None,
) -> Path:
    """One church window (002 Fig. 3, left): the grid coloured by the head's class, the base image
    "×" at (0, 0), the one-pixel image triangle at (1, 0) and the noisy image star at (0, 1).

    ``title`` defaults to "base class → one-pixel class" (the model's classes of the two images;
    002 writes "true class → targeted class", which they are for a correctly classified image and
    a successful targeted attack). 5.2 × 5.2 in at 100 dpi.
    """
    fig = Figure(figsize=(5.2, 5.2), dpi=DPI)
    ax = fig.subplots()
    _draw_church_window(ax, cw, classes, title)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.8)
    _class_legend(fig, classes, cw.classes, loc="lower center", ncol=len(classes))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save_figure(fig, Path(path))


def plot_church_windows(
    windows: Sequence[ChurchWindow],
    classes: Sequence[str] = MORPHOLOGY_CLASSES,
    path: Path | str = "church_windows.png",
    row_names: Sequence[str] | None = None,
    titles: Sequence[str | None] | None = None,
    ncol: int | None = None,
) -> Path:
    """A grid of church windows (002 Fig. 5): ``windows`` fill ``ncol`` columns (default: all in
    one row) row by row; for regular vs domain adaptation give the same triplets' windows of
    each model in turn with ``ncol`` = the number of triplets and ``row_names`` per row.
    3.4 in a panel at 100 dpi."""
    if not windows:
        raise ValueError("plot_church_windows needs at least one window")
    ncol = ncol or len(windows)
    nrow = -(-len(windows) // ncol)
    fig = Figure(figsize=(3.4 * ncol, 3.4 * nrow + 0.4), dpi=DPI)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(windows):
            ax.set_axis_off()
            continue
        _draw_church_window(ax, windows[i], classes, titles[i] if titles else None)
        if row_names and i % ncol == 0:
            ax.set_ylabel(f"{row_names[i // ncol]}\nnoise direction")
    axes.flat[0].legend(fontsize=6, loc="upper left", framealpha=0.8)
    present = np.concatenate([w.classes.ravel() for w in windows])
    _class_legend(fig, classes, present, loc="lower center", ncol=len(classes))
    fig.tight_layout(rect=(0, 0.4 / (3.4 * nrow + 0.4), 1, 1))
    return save_figure(fig, Path(path))


def plot_isomap(
    emb_a: np.ndarray | IsomapEmbedding,
    emb_b: np.ndarray | None,
    labels: np.ndarray | tuple[np.ndarray, np.ndarray],
    path: Path | str = "isomap.png",
    dims: int | None = None,
    classes: Sequence[str] = MORPHOLOGY_CLASSES,
    names: tuple[str, str] = ("Y10", "Y1"),
    triplet: dict[str, np.ndarray] | None = None,
    triplet_labels: dict[str, int] | None = None,
    title: str | None = None,
) -> Path:
    """Isomap of two samples (002 Figs. 3 right, 4): the first (Y10) as filled circles, the
    second (Y1) as empty ones, coloured by ``labels`` — the model's predicted classes, as 002
    colours them — given as one array [N_a + N_b] or a pair ([N_a], [N_b]).

    emb_a [N_a, k], emb_b [N_b, k] with k = 2 or 3 (``dims``, default k), or an
    :class:`IsomapEmbedding` as ``emb_a`` with ``emb_b=None``. ``triplet`` maps "base",
    "one_pixel", "noisy" to a point [k] drawn with 002's markers (outlined black, filled with
    ``triplet_labels``' class colour). In 3-D each sample is also joined by a translucent
    triangulated surface (orange Y10, blue Y1), as in Fig. 4. 6.4 × 5.6 in at 100 dpi.
    """
    if isinstance(emb_a, IsomapEmbedding):
        emb_a, emb_b = emb_a.a, emb_a.b
    a, b = np.asarray(emb_a, np.float64), np.asarray(emb_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"embeddings must be [N, k] with one k, got {a.shape} and {b.shape}")
    dims = dims or a.shape[1]
    if dims not in (2, 3) or a.shape[1] < dims:
        raise ValueError(f"dims must be 2 or 3 and at most k = {a.shape[1]}, got {dims}")
    if isinstance(labels, tuple):
        la, lb = (np.asarray(x, dtype=int).reshape(-1) for x in labels)
    else:
        lab = np.asarray(labels, dtype=int).reshape(-1)
        la, lb = lab[: len(a)], lab[len(a) :]
    if la.shape != (len(a),) or lb.shape != (len(b),):
        raise ValueError(f"labels must give {len(a)} + {len(b)} classes, got {len(la)} + {len(lb)}")
    present = np.concatenate([la, lb])
    colours = np.array(class_colours(max(len(classes), int(present.max(initial=0)) + 1)))

    fig = Figure(figsize=(6.4, 5.6), dpi=DPI)
    ax = fig.add_subplot(projection="3d" if dims == 3 else None)
    pa, pb = [a[:, i] for i in range(dims)], [b[:, i] for i in range(dims)]
    if dims == 3:
        for pts, cmap in ((pa, "Oranges"), (pb, "Blues")):
            if len(pts[0]) >= 3:
                try:
                    ax.plot_trisurf(*pts, cmap=cmap, alpha=0.3, linewidth=0)
                except (RuntimeError, ValueError):  # collinear points: no triangulation
                    pass
    ax.scatter(*pa, s=30, c=colours[la], edgecolors=colours[la], label=f"{names[0]} (filled)")
    ax.scatter(
        *pb,
        s=30,
        facecolors="none",
        edgecolors=colours[lb],
        linewidths=1.0,
        label=f"{names[1]} (empty)",
    )
    for name, point in (triplet or {}).items():
        k = (triplet_labels or {}).get(name)
        face = colours[k] if k is not None else "w"
        p = np.asarray(point, np.float64).reshape(-1)[:dims]
        ax.scatter(
            *[[v] for v in p],
            marker=TRIPLET_MARKERS[name],
            s=220,
            c=[face],
            edgecolors="k",
            linewidths=1.2,
            zorder=4,
            label=TRIPLET_NAMES[name],
        )
    for axis in (ax.xaxis, ax.yaxis) + ((ax.zaxis,) if dims == 3 else ()):
        axis.set_ticklabels([])
    ax.set_title(
        title or f"Isomap {dims}-D: {names[0]} ({len(a)}) and {names[1]} ({len(b)})", fontsize=10
    )
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
    _class_legend(fig, classes, present, loc="lower center", ncol=len(classes))
    fig.subplots_adjust(left=0.04, right=0.96, top=0.92, bottom=0.1)
    return save_figure(fig, Path(path))


def plot_distance_histograms(
    d_a: np.ndarray,
    d_b: np.ndarray,
    names: tuple[str, str] = ("regular", "domain adaptation"),
    js: float | None = None,
    path: Path | str = "distances.png",
    bins: int | np.ndarray = 20,
    title: str | None = None,
    xlabel: str = "latent distance $d_E$",
) -> Path:
    """Histograms of two d_E samples d_a [N_a] and d_b [N_b] (latent units, flattened; 002
    Fig. 6): the first model's in navy, the second's in orange, each normalised to sum to 1, on shared bins (``bins`` equal-width over the pooled
    range, as :func:`training.robustness.js_distance` uses, or explicit edges); means (violet)
    and medians (blue) as dashed lines for the first, solid for the second, and "JS = …" written
    on the panel when ``js`` is given. 6.4 × 4.4 in at 100 dpi."""
    from ..robustness import js_bin_edges

    d_a = np.asarray(d_a, np.float64).reshape(-1)
    d_b = np.asarray(d_b, np.float64).reshape(-1)
    if d_a.size == 0 or d_b.size == 0:
        raise ValueError("plot_distance_histograms needs at least one distance in each sample")
    edges = js_bin_edges(d_a, d_b, bins)
    fig = Figure(figsize=(6.4, 4.4), dpi=DPI)
    ax = fig.subplots()
    for d, name, colour, style in zip((d_a, d_b), names, HIST_COLOURS, ("--", "-"), strict=True):
        ax.hist(
            d,
            edges,
            weights=np.full(d.size, 1.0 / d.size),
            color=colour,
            alpha=0.55,
            label=f"{name} (N = {d.size})",
        )
        ax.axvline(
            d.mean(), color=MEAN_COLOUR, ls=style, lw=1.5, label=f"{name} mean {d.mean():.3g}"
        )
        ax.axvline(
            np.median(d),
            color=MEDIAN_COLOUR,
            ls=style,
            lw=1.5,
            label=f"{name} median {np.median(d):.3g}",
        )
    if js is not None:
        ax.text(
            0.97,
            0.95,
            f"JS = {js:.2f}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=12,
            bbox={"facecolor": "w", "edgecolor": "0.7"},
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of images")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="center right", framealpha=0.9)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def _name(classes: Sequence[str], k: int) -> str:
    return str(classes[k]) if 0 <= k < len(classes) else f"class {k}"
