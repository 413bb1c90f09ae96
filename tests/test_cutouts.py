"""FITS cutouts: round trips, quantisation bound, header keywords, checksums, argument checks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from core.datasets import DatasetWriter, make_splits, open_dataset
from training.cutouts import write_cutouts
from training.simulate.domains import Domain

N, SIZE = 10, 40
CLASSES = ("spiral", "elliptical", "merger")


def _make(root: Path, task: str, bands: tuple[str, ...]) -> Path:
    """A small dataset with the real attributes of an LSST domain and sky-noise + blob images."""
    dom = Domain("y1", "LSST", bands, tuple(300.0 for _ in bands), SIZE, SIZE)
    attrs = {**dom.attrs(), "task": task, "seed": 0, "n": N}
    kind = "regression" if task == "photoz" else "class"
    if kind == "class":
        attrs["classes"] = list(CLASSES)
    rng = np.random.default_rng(1)
    sigma = np.sqrt(dom.sky_level())  # [B] sky noise, electrons
    yy, xx = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    blob = np.exp(-np.hypot(xx, yy) / 3.0)
    w = DatasetWriter(root / task / "y1.h5", N, len(bands), SIZE, attrs, kind)
    truth = []
    for i in range(N):
        img = sigma[:, None, None] * rng.standard_normal((len(bands), SIZE, SIZE))
        img += rng.uniform(5, 50) * sigma[:, None, None] * blob
        w.write(i, img.astype(np.float32))
        truth.append(
            {"label": i % 3, "flux": 1.0} if kind == "class" else {"z": 0.1 * i, "ebv": 0.01 * i}
        )
    w.finish(truth, make_splits(N, 0))
    return root / task / "y1.h5"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {
        "morphology": _make(root, "morphology", ("g", "r", "i")),
        "photoz": _make(root, "photoz", ("u", "g", "r", "i", "z")),
    }


def _read(path: Path) -> tuple[np.ndarray, list[fits.Header]]:
    """[B, H, W] float32 and the image headers, with checksum verification as errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy reports a checksum mismatch as a warning
        with fits.open(path, checksum=True) as f:
            images = [h for h in f if h.data is not None]
            data = np.stack([h.data for h in images]) if len(images) > 1 else images[0].data
            return np.array(data), [h.header.copy() for h in images]


def _zscale(path: Path) -> np.ndarray:
    """[B, H] quantisation step of every tile (one image row), as the file states it."""
    with fits.open(path, disable_image_compression=True) as f:
        return np.stack([h.data["ZSCALE"] for h in f[1:]]).reshape(-1, SIZE)


# (layout, compression, quantize_level, lossless)
CASES = [
    ("cube", None, 16.0, True),
    ("bands", None, 16.0, True),
    ("cube", "GZIP_1", 0.0, True),
    ("bands", "GZIP_2", 0.0, True),
    ("cube", "RICE_1", 16.0, False),
    ("bands", "RICE_1", 4.0, False),
    ("cube", "GZIP_2", 16.0, False),
]


@pytest.mark.parametrize("task", ["morphology", "photoz"])
@pytest.mark.parametrize(("layout", "compression", "q", "lossless"), CASES)
def test_round_trip(files, tmp_path, task, layout, compression, q, lossless):
    paths = write_cutouts(
        files[task],
        tmp_path,
        indices=[0, 3, 7],
        layout=layout,
        compression=compression,
        quantize_level=q,
    )
    assert [p.name for p in paths] == [f"{task}_y1_{i:06d}.fits" for i in (0, 3, 7)]
    with open_dataset(files[task]) as ds:
        originals = ds.images[[0, 3, 7]]
    for path, orig in zip(paths, originals, strict=True):
        data, _ = _read(path)
        assert data.dtype.kind == "f" and data.dtype.itemsize == 4 and data.shape == orig.shape
        if lossless:
            assert data.astype(">f4").tobytes() == orig.astype(">f4").tobytes()
            continue
        # A tile is one image row; its values are stored as integers k with
        # x ≈ (k − d + 0.5)·ZSCALE + ZZERO (d the subtractive dither in [0, 1)), i.e. rounded to
        # the nearest level: the error is at most ZSCALE / 2, up to float32 rounding of the result.
        bound = 0.5 * _zscale(path)[:, :, None] + 2 * np.spacing(np.abs(orig))
        assert np.all(np.abs(data - orig) <= bound)
        assert not np.array_equal(data, orig)  # it is lossy: otherwise the bound tests nothing


def test_rice_step_is_noise_over_quantize_level(files, tmp_path):
    """ZSCALE ≈ σ_sky / quantize_level: astropy estimates σ from pixel differences, per tile."""
    q = 16.0
    (path,) = write_cutouts(
        files["morphology"], tmp_path, indices=[1], compression="RICE_1", quantize_level=q
    )
    with open_dataset(files["morphology"]) as ds:
        sigma = np.sqrt(ds.attrs["sky_e_per_native_pixel"])  # [B] electrons
    ratio = np.median(_zscale(path), axis=1) / (sigma / q)
    assert np.all((ratio > 0.8) & (ratio < 1.2)), ratio


def test_headers(files, tmp_path):
    with open_dataset(files["morphology"]) as ds:
        attrs, labels = ds.attrs, ds.file["labels"][()]
    for layout in ("cube", "bands"):
        paths = write_cutouts(files["morphology"], tmp_path / layout, layout=layout)
        objects = []
        for path in paths:
            index = int(path.stem.split("_")[-1])
            _, headers = _read(path)
            for k, h in enumerate(headers):
                assert h["BUNIT"] == "electron" and h["PIXSCALE"] == attrs["pixel_scale_arcsec"]
                assert (h["TASK"], h["DOMAIN"], h["SURVEY"]) == ("morphology", "y1", "LSST")
                assert h["BANDS"] == "g,r,i"
                assert h["OBJECT"] == f"morphology-y1-{index:06d}"
                assert h["TRUECLS"] == CLASSES[labels[index]]
                assert "TRUEZ" not in h and "EBV" not in h
                if layout == "bands":
                    assert h["FILTER"] == "gri"[k] and h["EXTNAME"] == "GRI"[k]
                    assert h["EXPTIME"] == attrs["exposure_s"][k]
                    assert h["MAGZP"] == attrs["magzp"][k]
                else:
                    assert h["EXPTIME"] == attrs["exposure_s"][0]
                    for b, t, m in zip("GRI", attrs["exposure_s"], attrs["magzp"], strict=True):
                        assert h[f"EXPT_{b}"] == t and h[f"MAGZP_{b}"] == m
            objects.append(headers[0]["OBJECT"])
        assert len(set(objects)) == len(objects) == 2  # the test split of 10 objects


def test_photoz_truth_keywords(files, tmp_path):
    paths = write_cutouts(
        files["photoz"], tmp_path, indices=[4], layout="bands", compression="RICE_1"
    )
    _, headers = _read(paths[0])
    assert len(headers) == 5 and [h["FILTER"] for h in headers] == list("ugriz")
    for h in headers:
        assert h["TRUEZ"] == pytest.approx(0.4) and h["EBV"] == pytest.approx(0.04)
        assert "TRUECLS" not in h
        assert any("RICE_1: lossy" in str(c) for c in h["COMMENT"])


def test_checksum_detects_corruption(files, tmp_path):
    (path,) = write_cutouts(files["morphology"], tmp_path, indices=[2])
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF  # a byte of the data unit
    path.write_bytes(bytes(raw))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fits.open(path, checksum=True) as f:
            _ = f[0].data
    messages = [str(w.message) for w in caught]
    assert any("Checksum verification failed" in m for m in messages), messages
    assert any("Datasum verification failed" in m for m in messages), messages


def test_selection(files, tmp_path):
    with open_dataset(files["morphology"]) as ds:
        train = ds.indices("train")
    paths = write_cutouts(files["morphology"], tmp_path, split="train", n=3)
    assert [int(p.stem[-6:]) for p in paths] == train[:3].tolist()
    assert write_cutouts(files["morphology"], tmp_path, n=0) == []


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"indices": [0], "n": 1}, "either indices or n"),
        ({"indices": [N]}, r"indices out of range \[0, 10\)"),
        (
            {"compression": "RICE_1", "quantize_level": 0.0},
            "RICE_1 cannot store float32 losslessly",
        ),
        ({"compression": "HCOMPRESS_1"}, "compression must be one of"),
        ({"layout": "mef"}, "layout must be 'cube' or 'bands'"),
        ({"split": "validation"}, "split must be one of"),
    ],
)
def test_errors(files, tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        write_cutouts(files["morphology"], tmp_path, **kw)
