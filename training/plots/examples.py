"""Example cutouts of each class in each domain (002 Fig. 2) and the G–M20 diagram (002 Fig. 1)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from core.datasets import Dataset, open_dataset
from core.preprocess import rgb_composite

from ..gm20 import MORPHOLOGY_CLASSES

PANEL_IN = 2.4  # panel side [inch]
DPI = 100
#: Redshift columns of the photo-z figure: quartiles of the file's z (equal numbers of objects).
N_Z_RANGES = 4


def plot_examples(paths: list[Path], out_png: Path, per_class: int = 1, seed: int = 0) -> Path:
    """A grid of RGB cutouts: one row per domain, ``per_class`` columns per class.

    paths : the domain files of one task (paired: index i is the same object in every file).
    Classification tasks get one column group per class; photo-z gets four redshift ranges
    (quartiles), titled with z and E(B−V). The same objects, chosen with ``seed`` among each
    column's members, appear in every row. RGB = (i or z, r, g), each band stretched as the network
    sees it (``preprocess.morphology_stretch``). The PNG is (columns × 2.4 in) × (rows × 2.4 in)
    at 100 dpi.
    """
    if not paths:
        raise ValueError("plot_examples needs at least one dataset file")
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    with ExitStack() as stack:
        sets = _domain_order([stack.enter_context(open_dataset(p)) for p in paths])
        first = sets[0]
        attrs = first.attrs
        groups = _column_groups(first)
        rng = np.random.default_rng(seed)
        columns: list[tuple[str, int]] = []
        for name, members in groups:
            if members.size == 0:
                continue
            picked = np.sort(rng.choice(members, size=min(per_class, members.size), replace=False))
            columns += [(name, int(i)) for i in picked]
        if not columns:
            raise ValueError(f"{first.path} has no objects to show")
        rgb = _rgb_bands(list(attrs["bands"]))
        band_index = [list(attrs["bands"]).index(b) for b in rgb]
        nrow, ncol = len(sets), len(columns)
        fig = Figure(figsize=(ncol * PANEL_IN, nrow * PANEL_IN), dpi=DPI)
        axes = fig.subplots(nrow, ncol, squeeze=False)
        for r, ds in enumerate(sets):
            a = ds.attrs
            row = f"{a['survey']} {a['domain']}"
            expo = ", ".join(
                f"{b} {t:.0f} s"
                for b, t in zip(a["bands"], a["exposure_s"], strict=True)
                if b in rgb
            )
            for c, (name, i) in enumerate(columns):
                ax = axes[r, c]
                ax.imshow(
                    rgb_composite(ds.images[i][band_index]), origin="lower", interpolation="nearest"
                )
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{name} #{i}\n{_truth_text(ds, i)}{row}: {expo}", fontsize=7)
        fig.suptitle(
            f"{attrs['task']}: {'/'.join(rgb)} composites "
            f"(rows: {', '.join(str(ds.attrs['domain']) for ds in sets)})",
            fontsize=9,
        )
        # room for the titles (7-pt lines ≈ 0.13 in) above each row and the suptitle on top [in]
        title_in = 0.13 * (3 if "z" in first.file else 2) + 0.08
        fig.subplots_adjust(
            left=0.01,
            right=0.99,
            bottom=0.01,
            top=1 - (title_in + 0.25) / (nrow * PANEL_IN),
            wspace=0.04,
            hspace=title_in / (PANEL_IN - title_in - 0.25 / nrow),
        )
        return save_figure(fig, out_png)


def plot_gm20(path: Path, out_png: Path) -> Path:
    """The G–M20 diagram of a morphology file, coloured by the class each object was built as.

    Points are ``truth/gini`` against ``truth/m20`` (measured on the noiseless i-band image);
    colours follow ``truth/label_construction`` when the labels are G–M20 classes, else ``labels``.
    Lines: the merger line G = −0.14 M20 + 0.33 and, where it bounds a region (M20 < −1.679), the
    bulge line G = (0.693 M20 + 3.96) / 4.95 (002 §2.1). M20 runs from 0 to −3, as is usual.
    """
    with open_dataset(path) as ds:
        attrs = ds.attrs
        gini, m20 = ds.truth("gini"), ds.truth("m20")
        if "label_construction" in ds.file["truth"]:
            labels = ds.truth("label_construction").astype(int)
        else:
            labels = ds.file["labels"][()].astype(int)
    classes = list(attrs.get("classes", MORPHOLOGY_CLASSES))
    fig = Figure(figsize=(6.4, 5.2), dpi=DPI)
    ax = fig.subplots()
    ok = np.isfinite(gini) & np.isfinite(m20)
    for k, name in enumerate(classes):
        sel = ok & (labels == k)
        ax.scatter(m20[sel], gini[sel], s=10, alpha=0.7, label=f"{name} ({sel.sum()})")
    m = np.linspace(0.0, -3.0, 200)
    ax.plot(m, -0.14 * m + 0.33, "k-", lw=1.2, label="merger line")
    mb = m[m <= -1.679]
    ax.plot(mb, (0.693 * mb + 3.96) / 4.95, "k--", lw=1.2, label="bulge line")
    for text, xy in (
        ("merger", (-0.6, 0.72)),
        ("elliptical", (-2.55, 0.58)),
        ("spiral", (-2.55, 0.35)),
    ):
        ax.annotate(text, xy, fontsize=9, color="0.3", ha="center")
    # the usual window, widened if a measurement falls outside it
    g, m = gini[ok], m20[ok]
    ax.set_xlim(max(0.0, np.max(m, initial=-9.0) + 0.1), min(-3.0, np.min(m, initial=0.0) - 0.1))
    ax.set_ylim(min(0.3, np.min(g, initial=1.0) - 0.02), max(0.8, np.max(g, initial=0.0) + 0.02))
    ax.set_xlabel("M$_{20}$")
    ax.set_ylabel("Gini")
    agreement = attrs.get("gm20_agreement")
    agree = f"; agreement with G–M20 class {agreement:.0%}" if agreement is not None else ""
    missing = f"; {np.count_nonzero(~ok)} not measured" if np.any(~ok) else ""
    ax.set_title(f"{attrs['task']} ({len(labels)} objects){agree}{missing}", fontsize=9)
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    fig.tight_layout()
    return save_figure(fig, out_png)


def _domain_order(sets: list[Dataset]) -> list[Dataset]:
    """Files in the order of their ``paired_domains`` attribute (e.g. Y10 above Y1)."""
    order = list(sets[0].attrs.get("paired_domains", []))
    return sorted(
        sets,
        key=lambda d: order.index(d.attrs["domain"]) if d.attrs["domain"] in order else len(order),
    )


def _column_groups(ds: Dataset) -> list[tuple[str, np.ndarray]]:
    """(column name, member indices) per class, or per redshift quartile for photo-z."""
    attrs = ds.attrs
    if "classes" in attrs:
        labels = ds.file["labels"][()]
        return [(str(c), np.flatnonzero(labels == k)) for k, c in enumerate(attrs["classes"])]
    z = ds.file["z"][()]
    edges = np.quantile(z, np.linspace(0, 1, N_Z_RANGES + 1))
    bins = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, N_Z_RANGES - 1)
    return [
        (
            f"{edges[k]:.2f} ≤ z {'≤' if k == N_Z_RANGES - 1 else '<'} {edges[k + 1]:.2f}",
            np.flatnonzero(bins == k),
        )
        for k in range(N_Z_RANGES)
    ]


def _truth_text(ds: Dataset, i: int) -> str:
    if "z" not in ds.file:
        return ""
    return f"z = {ds.file['z'][i]:.3f}, E(B−V) = {ds.file['ebv'][i]:.3f}\n"


def _rgb_bands(bands: list[str]) -> tuple[str, str, str]:
    """The three bands shown blue, green, red: g, r, i (or g, r, z), else the first three."""
    for choice in (("g", "r", "i"), ("g", "r", "z")):
        if set(choice) <= set(bands):
            return choice
    if len(bands) < 3:
        raise ValueError(f"an RGB composite needs three bands, the file has {bands}")
    return tuple(bands[:3])


def save_figure(fig: Figure, out_png: Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=DPI)  # a bare Figure renders with Agg; pyplot's state is not touched
    return out_png
