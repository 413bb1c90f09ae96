"""Dataset figures: each writes a readable PNG of the documented size."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from core.datasets import DatasetWriter, make_splits, open_dataset
from training.plots import plot_examples, plot_gm20
from training.plots.examples import DPI, PANEL_IN
from training.simulate import simulator
from training.simulate.domains import Domain
from training.simulate.runner import generate


@pytest.fixture(scope="module")
def morphology(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("mocks")
    result = generate(simulator("morphology"), 12, root, seed=0, workers=1, progress=False)
    return list(result.paths.values())


@pytest.fixture(scope="module")
def photoz(tmp_path_factory) -> list[Path]:
    """Paired deep/shallow photo-z files (ugriz, z and ebv instead of labels), noise + blob."""
    root, n, size = tmp_path_factory.mktemp("photoz"), 16, 32
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] - size / 2
    blob = 1e4 * np.exp(-np.hypot(xx, yy) / 2.0)
    truth = [
        {"z": z, "ebv": e}
        for z, e in zip(rng.uniform(0, 0.6, n), rng.uniform(0, 0.1, n), strict=True)
    ]
    paths = []
    for name, t in (("deep", 1000.0), ("shallow", 100.0)):
        dom = Domain(name, "LSST", tuple("ugriz"), (t,) * 5, size, size)
        attrs = {**dom.attrs(), "task": "photoz", "paired_domains": ["deep", "shallow"]}
        w = DatasetWriter(root / "photoz" / f"{name}.h5", n, 5, size, attrs, "regression")
        for i in range(n):
            w.write(i, (blob * t / 1000 + 30 * rng.standard_normal((5, size, size))).astype("f4"))
        w.finish(truth, make_splits(n, 0))
        paths.append(w.path)
    return paths[::-1]  # rows must follow paired_domains, not the order given


def _check_png(path: Path, width: int, height: int) -> None:
    assert path.is_file() and path.stat().st_size > 0
    image = mpimg.imread(path)
    assert image.shape[:2] == (height, width)
    assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.parametrize("per_class", [1, 2])
def test_plot_examples_morphology(morphology, tmp_path, per_class):
    with open_dataset(morphology[0]) as ds:
        counts = np.bincount(ds.file["labels"][()], minlength=3)
    ncol = int(np.minimum(counts, per_class).sum())
    out = plot_examples(morphology, tmp_path / "examples.png", per_class=per_class)
    _check_png(out, round(ncol * PANEL_IN * DPI), round(2 * PANEL_IN * DPI))


def test_plot_examples_photoz(photoz, tmp_path):
    out = plot_examples(photoz, tmp_path / "sub" / "photoz.png")
    _check_png(out, round(4 * PANEL_IN * DPI), round(2 * PANEL_IN * DPI))


def test_plot_examples_errors(morphology, tmp_path):
    with pytest.raises(ValueError, match="at least one dataset file"):
        plot_examples([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="per_class must be at least 1"):
        plot_examples(morphology, tmp_path / "x.png", per_class=0)


def test_plot_gm20(morphology, tmp_path):
    out = plot_gm20(morphology[0], tmp_path / "gm20.png")
    _check_png(out, round(6.4 * DPI), round(5.2 * DPI))
