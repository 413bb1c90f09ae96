import numpy as np
import pytest


def fwhm_upsampled(image: np.ndarray, scale: float, up: int = 8) -> float:
    """FWHM [arcsec] of a centred, pixelised point source: the image is Fourier-interpolated ×up
    (it is band-limited by the PSF) and FWHM = 2 sqrt(A/π) with A the area above half maximum, the
    SourceExtractor-style definition."""
    n = image.shape[0]
    f = np.fft.fftshift(np.fft.fft2(image))
    big = np.zeros((n * up, n * up), dtype=complex)
    o = (n * up - n) // 2
    big[o : o + n, o : o + n] = f
    fine = np.fft.ifft2(np.fft.ifftshift(big)).real
    area = (fine >= fine.max() / 2).sum() * (scale / up) ** 2
    return float(2 * np.sqrt(area / np.pi))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session", autouse=True)
def _bentoml_home(tmp_path_factory):
    """Every test session gets its own, empty BentoML model store, and no usage tracking."""
    import os

    os.environ["BENTOML_HOME"] = str(tmp_path_factory.mktemp("bentoml"))
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Paired datasets of all three tasks, 40 objects each (seeded): data root path."""
    from training.simulate import TASKS, simulator
    from training.simulate.runner import generate

    root = tmp_path_factory.mktemp("tiny_data")
    for task in TASKS:
        generate(simulator(task), 40, root, seed=3, workers=2, progress=False)
    return root


@pytest.fixture(scope="session")
def bundles(tiny_data, tmp_path_factory):
    """One quick bundle per task in the session's BentoML store (one epoch on ``tiny_data``):
    the data root."""
    from training.runs import train
    from training.simulate import TASKS

    out = tmp_path_factory.mktemp("service_runs")
    for task in TASKS:
        train(task, "regular", quick=True, data_root=tiny_data, out_root=out, progress=False,
              epochs=1, n_canaries=6, n_parity=4, n_boot=20)  # fmt: skip
    return tiny_data
