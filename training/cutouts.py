"""FITS cutouts of dataset objects, as a survey pipeline would send them (../shared/DESIGN.md).

One file per object, ``<task>_<domain>_<index:06d>.fits``, in one of two layouts:

* ``"cube"`` — one image HDU holding the float32 ``[B, H, W]`` cube (the primary HDU when
  uncompressed; a compressed image cannot be a primary HDU, so then an empty primary HDU and one
  ``CompImageHDU``);
* ``"bands"`` — an empty primary HDU and one image HDU per band: ``FILTER`` = band, ``EXTNAME``
  = band in upper case (astropy upper-cases extension names).

Every image HDU carries the object's keywords (the primary too, in the ``bands`` layout): BUNIT,
PIXSCALE [arcsec], OBJECT (``<task>-<domain>-<index:06d>``), SURVEY, BANDS (comma list), TASK,
DOMAIN, and the truth — TRUECLS (class name) for classification, TRUEZ and EBV (E(B−V), mag)
for photo-z. Per band: a band HDU has EXPTIME [s] and MAGZP (AB mag of 1 electron in the
exposure); a cube has ``EXPT_<B>`` and ``MAGZP_<B>`` for every band, and EXPTIME and MAGZP of its
*first* band, so that tools reading only the standard keyword get a true (if partial) value.

Compression (``CompImageHDU``, tiles of one image row): floats are quantised before compression
unless ``quantize_level == 0``, which only GZIP can store (losslessly). Quantisation uses
SUBTRACTIVE_DITHER_1 (the fpack default; it removes the bias of rounding) with a seed taken from
the data, so the same cutout gives the same pixels; astropy writes ZQUANTIZ, ZDITHER0 and the
per-tile step ZSCALE (≈ tile noise / ``quantize_level``) itself, and every decoded pixel is within
ZSCALE / 2 of the original. Files are written with CHECKSUM/DATASUM.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from astropy.io import fits

from core.datasets import Dataset, open_dataset

Layout = Literal["cube", "bands"]
Compression = Literal[None, "RICE_1", "GZIP_1", "GZIP_2"]
_COMPRESSIONS = (None, "RICE_1", "GZIP_1", "GZIP_2")
HDU = fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU


def write_cutouts(
    dataset: str | Path,
    out_dir: str | Path,
    indices: Sequence[int] | None = None,
    n: int | None = None,
    split: str = "test",
    layout: Layout = "cube",
    compression: Compression = None,
    quantize_level: float = 16.0,
) -> list[Path]:
    """Write FITS cutouts of objects of one dataset file; return their paths in object order.

    dataset : one domain file (``<root>/<task>/<domain>.h5``).
    indices : object indices to write; when None, the first ``n`` objects (all if ``n`` is None)
        of ``split`` ('train', 'val' or 'test'), in index order.
    layout : ``"cube"`` or ``"bands"`` (module docstring).
    compression : None, "RICE_1", "GZIP_1" or "GZIP_2" tile compression.
    quantize_level : quantisation step as a fraction of each tile's noise (astropy's meaning:
        step ≈ σ / quantize_level; negative = absolute step in BUNIT); 0 = lossless (GZIP only).
        Ignored without compression.
    """
    if layout not in ("cube", "bands"):
        raise ValueError(f"layout must be 'cube' or 'bands', got {layout!r}")
    if compression not in _COMPRESSIONS:
        raise ValueError(f"compression must be one of {_COMPRESSIONS}, got {compression!r}")
    if compression == "RICE_1" and quantize_level == 0:
        # astropy would cast the floats to integers (errors up to 1 electron) without a word.
        raise ValueError(
            "RICE_1 cannot store float32 losslessly; use quantize_level != 0, "
            "or GZIP_1/GZIP_2 with quantize_level=0"
        )
    if indices is not None and n is not None:
        raise ValueError("give either indices or n, not both")
    if n is not None and n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open_dataset(dataset) as ds:
        total = ds.images.shape[0]
        if indices is None:
            chosen = ds.indices(split)[:n]
        else:
            chosen = np.asarray(indices, dtype=np.int64).reshape(-1)
            bad = chosen[(chosen < 0) | (chosen >= total)]
            if bad.size:
                raise ValueError(f"indices out of range [0, {total}) for {ds.path}: {bad.tolist()}")
        attrs = ds.attrs
        paths = []
        for i in chosen.tolist():
            path = out_dir / f"{attrs['task']}_{attrs['domain']}_{i:06d}.fits"
            hdus = _hdus(
                ds.images[i],
                _object_cards(ds, attrs, i),
                attrs,
                layout,
                compression,
                quantize_level,
            )
            fits.HDUList(hdus).writeto(path, overwrite=True, checksum=True)
            paths.append(path)
    return paths


def _object_cards(ds: Dataset, attrs: dict, i: int) -> list[tuple]:
    """Keywords shared by every HDU of object ``i``: identity, units, geometry and truth."""
    bands = list(attrs["bands"])
    cards = [
        ("OBJECT", f"{attrs['task']}-{attrs['domain']}-{i:06d}", "task-domain-index"),
        ("TASK", str(attrs["task"]), "skyguard task"),
        ("DOMAIN", str(attrs["domain"]), "observing domain of the dataset"),
        ("SURVEY", str(attrs["survey"]), "survey of telescope, filters and sky"),
        ("BANDS", ",".join(bands), "bands of the cube, in order"),
        ("BUNIT", str(attrs["bunit"]), "sky-subtracted flux unit"),
        ("PIXSCALE", float(attrs["pixel_scale_arcsec"]), "[arcsec/pixel]"),
    ]
    if "classes" in attrs:
        label = int(ds.file["labels"][i])
        cards.append(("TRUECLS", str(attrs["classes"][label]), "true class (simulation)"))
    if "z" in ds.file:
        cards.append(("TRUEZ", float(ds.file["z"][i]), "true redshift (simulation)"))
    if "ebv" in ds.file:
        cards.append(("EBV", float(ds.file["ebv"][i]), "[mag] Galactic E(B-V)"))
    return cards


def _hdus(
    cube: np.ndarray,
    cards: list[tuple],
    attrs: dict,
    layout: Layout,
    compression: Compression,
    quantize_level: float,
) -> list[HDU]:
    """The HDUs of one cutout ``cube`` [B, H, W] float32."""
    bands = list(attrs["bands"])
    expt = np.asarray(attrs["exposure_s"], dtype=float)
    magzp = np.asarray(attrs["magzp"], dtype=float)
    unit = attrs["bunit"]
    if layout == "cube":
        header = fits.Header(cards)
        header["EXPTIME"] = (expt[0], f"[s] exposure of band {bands[0]} (first); see EXPT_*")
        header["MAGZP"] = (magzp[0], f"[mag] zeropoint of band {bands[0]} (first); see MAGZP_*")
        for b, t, m in zip(bands, expt, magzp, strict=True):
            header[f"EXPT_{b.upper()}"] = (t, f"[s] exposure, band {b}")
            header[f"MAGZP_{b.upper()}"] = (m, f"[mag] AB mag of 1 {unit}, band {b}")
        data = np.ascontiguousarray(cube, dtype=np.float32)
        if compression is None:
            return [fits.PrimaryHDU(data, header)]
        return [fits.PrimaryHDU(), _image(data, header, "CUTOUT", compression, quantize_level)]
    hdus: list[HDU] = [fits.PrimaryHDU(header=fits.Header(cards))]
    for k, b in enumerate(bands):
        header = fits.Header(cards)
        header["FILTER"] = (b, "band")
        header["EXPTIME"] = (expt[k], "[s] exposure")
        header["MAGZP"] = (magzp[k], f"[mag] AB mag of 1 {unit} in the exposure")
        data = np.ascontiguousarray(cube[k], dtype=np.float32)
        hdus.append(_image(data, header, b, compression, quantize_level))
    return hdus


def _image(
    data: np.ndarray,
    header: fits.Header,
    name: str,
    compression: Compression,
    quantize_level: float,
) -> fits.ImageHDU | fits.CompImageHDU:
    """An image extension, tile-compressed when ``compression`` is given (with a note on how)."""
    if compression is None:
        return fits.ImageHDU(data, header, name=name)
    if quantize_level == 0:
        header.add_comment(f"{compression}: lossless float32 compression (no quantisation).")
    else:
        step = (
            f"{-quantize_level:g} (fixed)"
            if quantize_level < 0
            else f"tile noise / {quantize_level:g}"
        )
        header.add_comment(
            f"{compression}: lossy; floats quantised (SUBTRACTIVE_DITHER_1) in "
            f"steps ZSCALE = {step} per image row; |error| <= ZSCALE / 2."
        )
    # quantize_method 1 = SUBTRACTIVE_DITHER_1; dither_seed -1 = DITHER_SEED_CHECKSUM (from data)
    return fits.CompImageHDU(
        data,
        header,
        name=name,
        compression_type=compression,
        quantize_level=quantize_level,
        quantize_method=1,
        dither_seed=-1,
    )
