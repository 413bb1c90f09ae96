"""Dataset files: deterministic bytes, complete attributes, paired domains, stored splits."""

import hashlib

import numpy as np
import pytest

from core.datasets import SPLITS, dataset_paths, make_splits, open_dataset
from training.gm20 import gm20_class
from training.simulate import TASKS, simulator
from training.simulate.runner import generate

REQUIRED_ATTRS = {
    "task",
    "domain",
    "survey",
    "bands",
    "exposure_s",
    "pixel_scale_arcsec",
    "native_pixel_scale_arcsec",
    "sky_e_per_native_pixel",
    "magzp",
    "psf_fwhm_arcsec",
    "psf_model",
    "bunit",
    "seed",
    "n",
    "code_version",
    "label_kind",
    "split_fractions",
    "paired_domains",
}


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module", params=TASKS)
def made(request, tmp_path_factory):
    task = request.param
    root1, root2 = tmp_path_factory.mktemp(f"{task}-w1"), tmp_path_factory.mktemp(f"{task}-w2")
    r1 = generate(simulator(task), 10, root1, seed=11, workers=1, progress=False)
    r2 = generate(simulator(task), 10, root2, seed=11, workers=2, progress=False)
    return task, r1, r2


def test_same_seed_same_bytes_whatever_the_worker_count(made):
    _, r1, r2 = made
    for name in r1.paths:
        assert _sha(r1.paths[name]) == _sha(r2.paths[name])


def test_attributes_are_complete_and_domains_paired(made):
    task, r1, _ = made
    sim = simulator(task)
    files = [open_dataset(p) for p in r1.paths.values()]
    try:
        for ds, d in zip(files, sim.domains, strict=True):
            attrs = ds.attrs
            assert REQUIRED_ATTRS <= set(attrs), REQUIRED_ATTRS - set(attrs)
            assert (
                attrs["task"] == task
                and attrs["domain"] == d.name
                and attrs["bands"] == list(d.bands)
            )
            assert ds.images.shape == (10, len(d.bands), d.out_size, d.out_size)
            assert ds.images.chunks == (1, len(d.bands), d.out_size, d.out_size)
            assert ds.images.dtype == np.float32
            if sim.classes is None:
                assert {"z", "ebv"} <= set(ds.file)
            else:
                assert attrs["classes"] == list(sim.classes)
                assert set(ds.file["labels"][()]) <= set(range(len(sim.classes)))
        a, b = files
        np.testing.assert_array_equal(a.file["split"][()], b.file["split"][()])
        for key in a.file["truth"]:
            np.testing.assert_array_equal(a.truth(key), b.truth(key))
        assert not np.array_equal(a.images[0], b.images[0])  # different noise / survey
    finally:
        for ds in files:
            ds.close()


def test_splits_are_70_10_20_and_seeded():
    s = make_splits(1000, seed=4)
    assert [int((s == i).sum()) for i in range(3)] == [700, 100, 200]
    np.testing.assert_array_equal(s, make_splits(1000, seed=4))
    assert not np.array_equal(s, make_splits(1000, seed=5))


def test_dataset_reader_gives_split_indices(made):
    _, r1, _ = made
    with open_dataset(next(iter(r1.paths.values()))) as ds:
        idx = np.concatenate([ds.indices(s) for s in SPLITS])
        assert sorted(idx.tolist()) == list(range(10))
        with pytest.raises(ValueError, match="split must be one of"):
            ds.indices("holdout")


def test_open_dataset_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset at"):
        open_dataset(tmp_path / "nope.h5")
    assert list(dataset_paths(tmp_path, "morphology")) == []


def test_gm20_boundaries_of_002():
    # the three lines meet at (M20, G) = (−1.679, 0.565)
    m0, g0 = -1.679, 0.565
    assert gm20_class(g0 + 0.05, m0 + 0.3) == 2  # above the merger line
    assert gm20_class(0.60, -2.3) == 1  # early type: high G, low M20
    assert gm20_class(0.45, -1.9) == 0  # late type
    np.testing.assert_allclose(-0.14 * m0 + 0.33, (0.693 * m0 + 3.96) / 4.95, atol=1e-3)


def test_labels_gm20_switches_the_stored_labels(tmp_path):
    r = generate(
        simulator("morphology"),
        12,
        tmp_path,
        seed=2,
        workers=1,
        progress=False,
        label_source="gm20",
    )
    with open_dataset(r.paths["y10"]) as ds:
        np.testing.assert_array_equal(ds.file["labels"][()], ds.truth("label_gm20").astype(int))
        construction = ds.truth("label_construction").astype(int)
        assert ds.attrs["label_source"] == "gm20"
        assert ds.attrs["gm20_agreement"] == pytest.approx(
            np.mean(construction == ds.file["labels"][()])
        )
    gini = None
    with open_dataset(r.paths["y1"]) as ds:
        gini = ds.truth("gini")
    assert np.all((gini > 0.2) & (gini < 0.9))
