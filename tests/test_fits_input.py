"""FITS and array input: every accepted layout decodes exactly, every hostile input is refused
with its reason, before any model would run. Inputs are built in memory (seeded)."""

from __future__ import annotations

import gzip
import io
import pickle
import time

import numpy as np
import pytest
from astropy.io import fits

from service.fits_input import (
    REASONS,
    Cutout,
    InputError,
    Limits,
    from_array,
    read_fits,
    read_many,
)

BANDS = ("g", "r", "i")
SHAPE = (20, 24)  # (H, W)
MAGZP = {"u": 27.0, "g": 28.0, "r": 28.5, "i": 29.0, "z": 29.5}
EBV = 0.05
OBJECT = "photoz-y1-000042"

RNG = np.random.default_rng(2024)
# [5, H, W] electrons: sky noise on a sky of 100 e-, bands u,g,r,i,z; the task uses g,r,i.
ALL = ("u", "g", "r", "i", "z")
SKY = RNG.normal(100.0, 10.0, size=(5, *SHAPE)).astype(np.float32)
CUBE = SKY[1:4]  # [3, H, W] in the task's order g,r,i


def _cards(bands=BANDS, **extra) -> fits.Header:
    """The object keywords training/cutouts.py writes, for a cube of ``bands``."""
    h = fits.Header()
    h["OBJECT"] = OBJECT
    h["BUNIT"] = "electron"
    h["EBV"] = EBV
    if bands is not None:
        h["BANDS"] = ",".join(bands)
        for b in bands:
            h[f"MAGZP_{b.upper()}"] = MAGZP[b]
    for k, v in extra.items():
        h[k] = v
    return h


def _bytes(*hdus) -> bytes:
    buf = io.BytesIO()
    fits.HDUList(list(hdus)).writeto(buf)
    return buf.getvalue()


def _planes(bands) -> np.ndarray:
    return SKY[[ALL.index(b) for b in bands]]


def _cube(bands=BANDS, compression=None, q=16.0, dtype=np.float32, header=None) -> bytes:
    data = _planes(bands).astype(dtype)
    header = _cards(bands) if header is None else header
    if compression is None:
        return _bytes(fits.PrimaryHDU(data, header))
    comp = fits.CompImageHDU(
        data, header, compression_type=compression, quantize_level=q, quantize_method=1
    )
    return _bytes(fits.PrimaryHDU(), comp)


def _per_band(bands=BANDS, compression=None, q=16.0, dtype=np.float32, shape=SHAPE) -> bytes:
    """Empty primary with the object keywords, then one image HDU per band (FILTER, MAGZP)."""
    hdus = [fits.PrimaryHDU(header=_cards(None))]
    for b in bands:
        h = _cards(None, FILTER=b, MAGZP=MAGZP[b])
        data = SKY[ALL.index(b), : shape[0], : shape[1]].astype(dtype)
        if compression is None:
            hdus.append(fits.ImageHDU(data, h, name=b))
        else:
            hdus.append(
                fits.CompImageHDU(data, h, name=b, compression_type=compression, quantize_level=q)
            )
    return _bytes(*hdus)


def _scaled_int16() -> tuple[bytes, np.ndarray]:
    """An int16 cube with BSCALE/BZERO, and the float values it stands for."""
    hdu = fits.PrimaryHDU(CUBE.copy(), _cards())
    hdu.scale("int16", bscale=0.01, bzero=100.0)
    expected = hdu.data.astype(np.float64) * 0.01 + 100.0  # hdu.data now holds the raw integers
    return _bytes(hdu), expected


def _quantisation_bound(data: bytes) -> float:
    """Half the largest quantisation step (ZSCALE) of any tile, as the file states it."""
    with fits.open(io.BytesIO(data), disable_image_compression=True) as f:
        steps = [h.data["ZSCALE"].max() for h in f if isinstance(h, fits.BinTableHDU)]
    return 0.5 * float(max(steps))


# name -> bytes and the tolerance of the decoded pixels (None: the quantisation bound)
GOOD = {
    "cube": (lambda: _cube(), 0.0),
    "cube BANDS in another order": (lambda: _cube(("i", "g", "r")), 0.0),
    "cube with extra bands": (lambda: _cube(("z", "r", "u", "i", "g")), 0.0),
    "bands shuffled + extra band": (lambda: _per_band(("r", "z", "i", "g")), 0.0),
    "cube RICE_1": (lambda: _cube(compression="RICE_1"), None),
    "cube GZIP_2 lossless": (lambda: _cube(compression="GZIP_2", q=0.0), 0.0),
    "cube GZIP_1 lossless": (lambda: _cube(compression="GZIP_1", q=0.0), 0.0),
    "bands RICE_1": (lambda: _per_band(("i", "r", "g"), compression="RICE_1", q=4.0), None),
    "bands GZIP_2 lossless": (lambda: _per_band(compression="GZIP_2", q=0.0), 0.0),
    "cube big-endian >f4": (lambda: _cube(dtype=">f4"), 0.0),
    "bands little-endian <f4": (lambda: _per_band(dtype="<f4"), 0.0),
    "cube float64": (lambda: _cube(dtype=">f8"), 0.0),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_good_inputs(case):
    build, tol = GOOD[case]
    data = build()
    expected = CUBE.astype(np.float64)
    if tol is None:
        tol = _quantisation_bound(data) + 1e-4  # + float32 rounding of values ~100
    out = read_fits(data, "cutout.fits", BANDS, SHAPE)
    assert isinstance(out, Cutout)
    assert out.image.dtype == np.float32 and out.image.dtype.isnative
    assert out.image.shape == (3, *SHAPE)
    np.testing.assert_allclose(out.image, expected, rtol=0, atol=tol)
    if tol:
        assert not np.array_equal(out.image, CUBE)  # really lossy: the bound tests something
    assert out.id == OBJECT
    np.testing.assert_array_equal(out.magzp, [MAGZP[b] for b in BANDS])
    assert out.ebv == EBV and out.bunit == "electron" and out.repaired == 0


def test_scaled_integers():
    data, expected = _scaled_int16()
    out = read_fits(data, "cutout.fits", BANDS, SHAPE)
    assert out.image.dtype == np.float32
    np.testing.assert_allclose(out.image, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(out.image, CUBE, rtol=0, atol=0.005 + 1e-4)  # half of BSCALE


def test_defaults_without_keywords():
    """No OBJECT, BANDS, MAGZP_*, EBV, BUNIT: id from the file name, cube in the task order."""
    out = read_fits(_cube(header=fits.Header()), "dir/obj7.fits.fz", BANDS, SHAPE)
    assert out.id == "obj7" and out.magzp is None and out.ebv is None and out.bunit is None
    np.testing.assert_array_equal(out.image, CUBE)


def test_single_band_image_without_filter():
    out = read_fits(_bytes(fits.PrimaryHDU(CUBE[1])), "r.fits", ("r",), SHAPE)
    np.testing.assert_array_equal(out.image, CUBE[1:2])


def test_writer_contract(tmp_path):
    """What training/cutouts.py writes, in every layout and compression, reads back."""
    from core.datasets import DatasetWriter, make_splits
    from training.cutouts import write_cutouts
    from training.simulate.domains import Domain

    bands, size, n = ("u", "g", "r"), 16, 2
    dom = Domain("y1", "LSST", bands, (300.0,) * 3, size, size)
    attrs = {**dom.attrs(), "task": "photoz", "seed": 0, "n": n}
    w = DatasetWriter(tmp_path / "photoz" / "y1.h5", n, 3, size, attrs, "regression")
    images = RNG.normal(50.0, 5.0, size=(n, 3, size, size)).astype(np.float32)
    for i in range(n):
        w.write(i, images[i])
    w.finish([{"z": 0.3, "ebv": 0.02 * (i + 1)} for i in range(n)], make_splits(n, 0))
    for layout in ("cube", "bands"):
        for compression, q in ((None, 16.0), ("GZIP_2", 0.0), ("RICE_1", 16.0)):
            out_dir = tmp_path / f"{layout}-{compression}"
            paths = write_cutouts(
                tmp_path / "photoz" / "y1.h5",
                out_dir,
                indices=[0, 1],
                layout=layout,
                compression=compression,
                quantize_level=q,
            )
            files = [(p.name, p.read_bytes()) for p in paths]
            results = read_many(files, ("r", "u", "g"), (size, size))
            for i, (out, (_, data)) in enumerate(zip(results, files, strict=True)):
                assert isinstance(out, Cutout), out
                tol = _quantisation_bound(data) + 1e-4 if compression == "RICE_1" else 0.0
                np.testing.assert_allclose(out.image, images[i][[2, 0, 1]], rtol=0, atol=tol)
                assert out.id == f"photoz-y1-{i:06d}"
                np.testing.assert_allclose(out.magzp, np.asarray(attrs["magzp"])[[2, 0, 1]])
                assert out.ebv == pytest.approx(0.02 * (i + 1)) and out.bunit == attrs["bunit"]


# --- hostile inputs ------------------------------------------------------------------------


def _huge_header() -> bytes:
    """A primary header declaring a 100000×100000 float image, and no data at all."""
    h = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2)])
    h["NAXIS1"] = 100_000
    h["NAXIS2"] = 100_000
    text = h.tostring().encode("ascii")
    return text + b" " * (-len(text) % 2880)


def _compressed_bomb() -> bytes:
    """A tile-compressed HDU whose ZNAXISn claim 100000×100000 pixels (the tiles are tiny)."""
    raw = bytearray(
        _bytes(fits.PrimaryHDU(), fits.CompImageHDU(CUBE[0], compression_type="GZIP_2"))
    )
    for key in (b"ZNAXIS1 ", b"ZNAXIS2 "):
        at = raw.find(key)
        raw[at : at + 80] = fits.Card(key.decode().strip(), 100_000).image.encode()
    return bytes(raw)


def _corrupt_tiles(header=None) -> bytes:
    """RICE_1 cube whose first tiles are scrambled (the headers stay valid)."""
    raw = bytearray(_cube(compression="RICE_1", header=header))
    start = 2 * 2880 + 2880 * ((raw.find(b"END     ", 2880) - 2880) // 2880)
    for k in range(start + 100, start + 1000):
        raw[k] = (raw[k] * 7 + 3) % 256
    return bytes(raw)


def _table_only() -> bytes:
    table = fits.BinTableHDU.from_columns([fits.Column("flux", "E", array=np.ones(5))])
    return _bytes(fits.PrimaryHDU(), table)


def _with_pixels(value, where=((0, 3, 4), (0, 7, 8))) -> bytes:
    data = CUBE.copy()
    for index in where:
        data[index] = value
    return _bytes(fits.PrimaryHDU(data, _cards()))


def _complex() -> bytes:
    try:
        return _bytes(fits.PrimaryHDU(CUBE.astype(np.complex64), _cards()))
    except (KeyError, ValueError, TypeError) as e:
        pytest.skip(f"astropy cannot write a complex image: {e!r}")


def _duplicate_filter() -> bytes:
    hdus = [fits.PrimaryHDU()]
    for b in ("g", "r", "i", "r"):
        hdus.append(fits.ImageHDU(SKY[ALL.index(b)], _cards(None, FILTER=b)))
    return _bytes(*hdus)


GOOD_FILE = _cube()

# name -> (bytes, limits, reason, message pattern)
HOSTILE = {
    "empty bytes": (lambda: b"", None, "empty", r"cutout\.fits: the file is empty"),
    "random bytes": (
        lambda: np.random.default_rng(7).bytes(5000),
        None,
        "bad_fits",
        r"cannot be read as FITS \(OSError: .*SIMPLE",
    ),
    "gzip archive": (lambda: gzip.compress(GOOD_FILE), None, "bad_fits", r"gzip archive"),
    "truncated": (
        lambda: GOOD_FILE[: len(GOOD_FILE) // 2],
        None,
        "bad_fits",
        r"truncated: its header declares data up to byte 8,640, but the file has 4,320 bytes",
    ),
    "huge header, no data": (
        _huge_header,
        None,
        "too_large",
        r"declares a 100000×100000 image = 10,000,000,000 pixels, more than the limit",
    ),
    "compressed, huge ZNAXISn": (
        _compressed_bomb,
        None,
        "too_large",
        r"HDU 1 \(COMPRESSED_IMAGE\): the header declares a 100000×100000 image",
    ),
    "over max_pixels": (lambda: GOOD_FILE, Limits(max_pixels=1000), "too_large", r"1,440 pixels"),
    "oversize bytes": (
        lambda: GOOD_FILE,
        Limits(max_bytes=5000),
        "too_large",
        r"the file is 0\.0 MiB \(8,640 bytes\), more than the limit of 0\.0 MiB \(5,000 bytes\)",
    ),
    "table only": (_table_only, None, "not_image", r"no HDU holds image data .*BinTableHDU"),
    "corrupt tiles": (
        _corrupt_tiles,
        None,
        "bad_fits",
        r"HDU 1 .*pixel data cannot be decoded \(\w+: ",
    ),
    "cube missing a band": (
        lambda: _cube(("g", "r")),
        None,
        "wrong_bands",
        r"expected bands g,r,i, found g,r \(missing i; from BANDS\)",
    ),
    "cube without BANDS, too few planes": (
        lambda: _bytes(fits.PrimaryHDU(CUBE[:2])),
        None,
        "wrong_bands",
        r"the cube has 2 planes and no BANDS keyword; expected 3 planes in the order g,r,i",
    ),
    "BANDS does not match the cube": (
        lambda: _bytes(fits.PrimaryHDU(CUBE, fits.Header([("BANDS", "g,r")]))),
        None,
        "wrong_bands",
        r"BANDS = 'g,r' names 2 bands but the cube has 3 planes",
    ),
    "bands missing one": (
        lambda: _per_band(("u", "i", "g")),
        None,
        "wrong_bands",
        r"expected bands g,r,i, found u,i,g \(missing r; from FILTER\)",
    ),
    "band given twice": (_duplicate_filter, None, "wrong_bands", r"band r is given more than once"),
    "no FILTER": (
        lambda: _bytes(fits.PrimaryHDU(), fits.ImageHDU(CUBE[0]), fits.ImageHDU(CUBE[1])),
        None,
        "wrong_bands",
        r"found 2 image HDU\(s\) but none has a FILTER keyword",
    ),
    "cube wrong shape": (
        lambda: _bytes(fits.PrimaryHDU(CUBE[:, :16, :16], _cards())),
        None,
        "wrong_shape",
        r"expected shape 3×20×24 \[B, H, W\], got 3×16×16",
    ),
    "band wrong shape": (
        lambda: _per_band(shape=(20, 16)),
        None,
        "wrong_shape",
        r"HDU 1 \(G\): band g: expected a 2-D 20×24 image \[H, W\], got 20×16",
    ),
    "1-D image": (
        lambda: _bytes(fits.PrimaryHDU(CUBE.ravel())),
        None,
        "wrong_shape",
        r"the first image is 1-D \(1440\)",
    ),
    "NaN pixels": (
        lambda: _with_pixels(np.nan),
        None,
        "non_finite",
        r"2 non-finite pixels \(2 NaN, 0 ±inf; per band: g 2\)",
    ),
    "inf pixels": (
        lambda: _with_pixels(np.inf, ((2, 0, 0),)),
        None,
        "non_finite",
        r"1 non-finite pixel \(0 NaN, 1 ±inf; per band: i 1\)",
    ),
    "complex dtype": (_complex, None, "bad_dtype", r"expected integer or float pixels"),
    "negative EBV": (
        lambda: _cube(header=_cards(EBV=-0.1)),
        None,
        "bad_value",
        r"EBV = -0\.1 must be a Galactic E\(B-V\) >= 0 mag",
    ),
    "negative EBV, corrupt tiles (headers first)": (
        lambda: _corrupt_tiles(_cards(EBV=-0.1)),
        None,
        "bad_value",
        r"EBV = -0\.1",
    ),
    "EBV not a number": (
        lambda: _cube(header=_cards(EBV="high")),
        None,
        "bad_value",
        r"EBV = 'high' is not a number",
    ),
}


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_inputs(case):
    build, limits, reason, pattern = HOSTILE[case]
    data = build()
    with pytest.raises(InputError, match=pattern) as info:
        read_fits(data, "cutout.fits", BANDS, SHAPE, limits=limits or Limits())
    err = info.value
    assert err.reason == reason
    assert err.where.startswith("cutout.fits")
    assert err.to_dict() == {"reason": reason, "where": err.where, "message": str(err)}


# --- repair ---------------------------------------------------------------------------------


@pytest.mark.parametrize("repair", ["zero", "median"])
def test_repair(repair):
    bad = {(0, 3, 4): np.nan, (0, 7, 8): np.nan, (2, 1, 1): -np.inf}
    data = CUBE.copy()
    for index, value in bad.items():
        data[index] = value
    out = read_fits(_bytes(fits.PrimaryHDU(data, _cards())), "x.fits", BANDS, SHAPE, repair=repair)
    assert out.repaired == 3 and np.all(np.isfinite(out.image))
    for index in bad:
        band = index[0]
        finite = np.isfinite(data[band])
        fill = 0.0 if repair == "zero" else np.median(data[band][finite])
        assert out.image[index] == np.float32(fill)
    untouched = np.isfinite(data)
    np.testing.assert_array_equal(out.image[untouched], CUBE[untouched])


def test_repair_refuses_a_band_without_finite_pixels():
    data = CUBE.copy()
    data[1] = np.nan
    with pytest.raises(InputError, match=r"band r has no finite pixel") as info:
        read_fits(_bytes(fits.PrimaryHDU(data)), "x.fits", BANDS, SHAPE, repair="median")
    assert info.value.reason == "non_finite"


# --- many files -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_read_many_keeps_good_files():
    files = [
        ("a.fits", GOOD_FILE),
        ("b.fits", b""),
        ("c.fits", _per_band(("i", "g", "r"))),
        ("d.fits", GOOD_FILE[:3000]),
        ("e.fits", _with_pixels(np.nan)),
    ]
    out = read_many(files, BANDS, SHAPE)
    assert [type(r).__name__ for r in out] == [
        "Cutout",
        "InputError",
        "Cutout",
        "InputError",
        "InputError",
    ]
    assert [r.reason for r in out if isinstance(r, InputError)] == [
        "empty",
        "bad_fits",
        "non_finite",
    ]
    assert [r.where for r in out if isinstance(r, InputError)] == [
        "b.fits",
        "d.fits HDU 0 (PRIMARY)",
        "e.fits",
    ]
    for r in (out[0], out[2]):
        np.testing.assert_array_equal(r.image, CUBE)


def test_read_many_too_many():
    with pytest.raises(InputError, match=r"3 files in one request, more than the limit of 2") as e:
        read_many([("a.fits", GOOD_FILE)] * 3, BANDS, SHAPE, limits=Limits(max_cutouts=2))
    assert e.value.reason == "too_many" and (e.value.expected, e.value.received) == (2, 3)


# --- arrays ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "n"),
    [
        pytest.param(np.stack([CUBE, CUBE]), 2, id="NBHW float32"),
        pytest.param(CUBE, 1, id="BHW"),
        pytest.param(np.stack([CUBE]).astype(">f4"), 1, id="big-endian"),
        pytest.param(np.stack([CUBE]).astype("<f8"), 1, id="float64"),
        pytest.param(np.round(CUBE).astype(np.int16), 1, id="int16"),
        pytest.param(np.round(CUBE).astype(">u2").tolist(), 1, id="nested lists"),
    ],
)
def test_from_array_good(array, n):
    out = from_array(array, BANDS, SHAPE, ids=[f"obj{k}" for k in range(n)])
    assert [c.id for c in out] == [f"obj{k}" for k in range(n)]
    expected = np.asarray(array, dtype=np.float64).reshape(n, 3, *SHAPE)
    for k, cut in enumerate(out):
        assert cut.image.dtype == np.float32 and cut.image.dtype.isnative
        np.testing.assert_array_equal(cut.image, expected[k].astype(np.float32))
        assert cut.magzp is None and cut.repaired == 0


@pytest.mark.parametrize(
    ("array", "kw", "reason", "pattern"),
    [
        pytest.param(CUBE[0], {}, "wrong_shape", r"got 20×24", id="2-D"),
        pytest.param(
            np.stack([SKY]), {}, "wrong_shape", r"expected shape N×3×20×24 .*got 1×5×20×24", id="B"
        ),
        pytest.param(CUBE.astype(np.complex64), {}, "bad_dtype", r"got dtype complex64", id="cx"),
        pytest.param(np.full((3, 20, 24), "a"), {}, "bad_dtype", r"got dtype <U1", id="strings"),
        pytest.param(CUBE > 0, {}, "bad_dtype", r"got dtype bool", id="bool"),
        pytest.param(np.zeros((0, 3, *SHAPE)), {}, "empty", r"no cutouts", id="N=0"),
        pytest.param(
            np.stack([CUBE] * 3),
            {"limits": Limits(max_cutouts=2)},
            "too_many",
            r"3 cutouts in one request",
            id="too many",
        ),
        pytest.param(
            np.stack([CUBE] * 2), {"ids": ["a"]}, "bad_value", r"1 ids for 2 cutouts", id="ids"
        ),
    ],
)
def test_from_array_bad_request(array, kw, reason, pattern):
    with pytest.raises(InputError, match=pattern) as info:
        from_array(array, BANDS, SHAPE, **kw)
    assert info.value.reason == reason


def test_from_array_non_finite_slot():
    batch = np.stack([CUBE, CUBE, CUBE]).astype(np.float64)
    batch[1, 2, 5, 5] = np.nan
    batch[2, 0, 0, 0] = 1e300  # overflows float32: refused as inf, not passed on
    out = from_array(batch, BANDS, SHAPE)
    assert isinstance(out[0], Cutout) and out[0].id == "0"
    assert [(e.reason, e.where) for e in out[1:]] == [
        ("non_finite", "array[1]"),
        ("non_finite", "array[2]"),
    ]
    fixed = from_array(batch, BANDS, SHAPE, repair="zero")
    assert [c.repaired for c in fixed] == [0, 1, 1] and fixed[1].image[2, 5, 5] == 0.0


# --- the error and the settings -------------------------------------------------------------


def test_input_error():
    err = InputError("wrong_shape", "expected 3×4, got 3×5", "a.fits", (3, 4), (3, 5))
    assert isinstance(err, ValueError) and str(err) == "a.fits: expected 3×4, got 3×5"
    copy = pickle.loads(pickle.dumps(err))
    assert copy.to_dict() == err.to_dict() and copy.received == (3, 5)
    assert set(REASONS) >= {"empty", "too_large", "bad_fits", "bad_value"}
    with pytest.raises(ValueError, match="reason must be one of"):
        InputError("nope", "x")


def test_request_arguments_are_checked():
    with pytest.raises(ValueError, match="Limits.max_bytes must be a positive integer"):
        Limits(max_bytes=0)
    with pytest.raises(TypeError, match="not 'gri'"):
        read_fits(GOOD_FILE, "a.fits", "gri", SHAPE)
    with pytest.raises(ValueError, match="distinct"):
        read_fits(GOOD_FILE, "a.fits", ("g", "G"), SHAPE)
    with pytest.raises(ValueError, match=r"shape must be \(H, W\)"):
        read_fits(GOOD_FILE, "a.fits", BANDS, (20,))
    with pytest.raises(ValueError, match="repair must be one of"):
        from_array(CUBE, BANDS, SHAPE, repair="nan")


def test_negative_gcount_is_refused_before_astropy():
    """A one-byte edit (GCOUNT = -1) of a tile-compressed file made astropy loop for minutes."""
    from astropy.io import fits as _fits

    buf = io.BytesIO()
    _fits.HDUList(
        [_fits.PrimaryHDU(), _fits.CompImageHDU(np.zeros((3, 8, 8), np.float32))]
    ).writeto(buf)
    data = buf.getvalue()
    i = data.index(b"GCOUNT  =")
    card = b"GCOUNT  =                   -1".ljust(80)
    bad = data[:i] + card + data[i + 80 :]
    with pytest.raises(InputError, match="GCOUNT = -1: must be a non-negative integer") as e:
        read_fits(bad, "x.fits", ("g", "r", "i"), (8, 8))
    assert e.value.reason == "bad_fits"


def _set_card(data: bytes, key: str, text: str, nth: int = 0) -> bytes:
    """``data`` with the ``nth`` card ``key`` replaced by ``KEY     = <text>`` as raw bytes (a value
    astropy cannot parse can only be written this way)."""
    at = -1
    for _ in range(nth + 1):
        at = data.find(key.ljust(8).encode() + b"=", at + 1)
        while at % 80:
            at = data.find(key.ljust(8).encode() + b"=", at + 1)
        assert at >= 0, key
    card = (key.ljust(8) + "= " + text).ljust(80).encode()
    return data[:at] + card + data[at + 80 :]


# (layout, card, raw value, where the message must point): cards astropy parses only when read
BAD_CARDS = [
    ("cube", "OBJECT", "'unclosed", "f.fits"),
    ("cube", "BANDS", "'g,r,i", "f.fits HDU 0 (PRIMARY)"),
    ("cube", "BANDS", "1.2.3", "f.fits HDU 0 (PRIMARY)"),
    ("cube", "EBV", "0.0.5", "f.fits"),
    ("cube", "BUNIT", "'electron", "f.fits"),
    ("cube", "MAGZP_G", "2e8e", "f.fits"),
    ("bands", "FILTER", "'g", "f.fits HDU 1 (G)"),
    ("bands", "MAGZP", "'28", "f.fits"),
    ("bands", "OBJECT", "1.2.3", "f.fits", 1),  # the band HDUs' OBJECT is read first
]


@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
@pytest.mark.parametrize(
    ("layout", "key", "text", "where", "nth"), [(*c, 0)[:5] for c in BAD_CARDS]
)
def test_unparsable_header_card_is_an_input_error(layout, key, text, where, nth):
    """A card whose value astropy cannot parse is InputError("bad_fits") naming the card and
    showing it as the file has it, whichever header value it is and wherever it is read."""
    good = _cube() if layout == "cube" else _per_band()
    read_fits(good, "f.fits", BANDS, SHAPE)  # the file before the edit is served
    with pytest.raises(InputError) as e:
        read_fits(_set_card(good, key, text, nth), "f.fits", BANDS, SHAPE)
    assert e.value.reason == "bad_fits"
    assert e.value.where == where
    assert f"header card {key} cannot be parsed" in e.value.message
    assert f"{key.ljust(8)}= {text}" in e.value.message
    # read_many: the broken file gets its error, the good one beside it its cutout
    bad = _set_card(good, key, text, nth)
    out = read_many([("a.fits", good), ("f.fits", bad)], BANDS, SHAPE)
    assert isinstance(out[0], Cutout) and isinstance(out[1], InputError)


@pytest.mark.parametrize(("key", "nth"), [("NAXIS1", 1), ("NAXIS2", 2), ("NAXIS", 1)])
def test_negative_naxis_is_refused_before_astropy(key, nth):
    """NAXIS1 = -32 in the first band HDU of a per-band file (a fuzzer's mutant) made astropy look
    for the next HDU before this one without end; refused on the scan of the cards."""
    bad = _set_card(_per_band(), key, "-32", nth)
    t0 = time.monotonic()
    with pytest.raises(InputError, match=f"{key} = -32: must be (a non-negative|an) integer") as e:
        read_fits(bad, "x.fits", BANDS, SHAPE)
    assert e.value.reason == "bad_fits" and time.monotonic() - t0 < 1


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("ZVAL2", "-1", "ZVAL2 (BYTEPIX) = -1: expected one of (1, 2, 4, 8)"),
        ("ZVAL1", "7", "ZVAL1 (BLOCKSIZE) = 7: expected one of (16, 32)"),
        ("ZBITPIX", "7", "ZBITPIX = 7"),
        ("ZTILE1", "0", "ZTILE1 = 0: expected an integer 1-24"),
        ("ZCMPTYPE", "'RICE_9'", "ZCMPTYPE = 'RICE_9'"),
        ("ZVAL3", "'x'", "ZVAL3 (NOISEBIT) = 'x': expected a finite number"),
    ],
)
@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
def test_compression_cards_are_checked_before_decompressing(key, text, message):
    """astropy's tile decoders trust the compression cards: RICE_1 with BYTEPIX = -1 (a fuzzer's
    mutant) crashed the process. Cards outside the convention are refused first."""
    good = _cube(compression="RICE_1")
    read_fits(good, "x.fits", BANDS, SHAPE)
    with pytest.raises(InputError) as e:
        read_fits(_set_card(good, key, text), "x.fits", BANDS, SHAPE)
    assert e.value.reason == "bad_fits" and f"compression card {message}" in e.value.message
    assert e.value.where == "x.fits HDU 1 (COMPRESSED_IMAGE)"


@pytest.mark.parametrize(
    ("layout", "key", "text"),
    [("bands", "NAXIS", "9" * 30), ("rice", "ZNAXIS", "1000000"), ("rice", "TFIELDS", "10000000")],
)
def test_huge_axis_counts_are_refused_before_astropy(layout, key, text):
    """NAXIS = 10^30 (a fuzzer's mutant) made astropy read NAXIS1, NAXIS2, ... without end."""
    good = _per_band() if layout == "bands" else _cube(compression="RICE_1")
    t0 = time.monotonic()
    with pytest.raises(InputError, match=f"{key} = {text}: must be an integer 0-999") as e:
        read_fits(_set_card(good, key, text), "x.fits", BANDS, SHAPE)
    assert e.value.reason == "bad_fits" and time.monotonic() - t0 < 1
