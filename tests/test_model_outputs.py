"""A model output that is not finite (NaN or ±inf: a probability, a p(z) bin, the OOD score) has
no defined answer: the gateway and batch scoring give that cutout its own ``bad_output`` error and
answer the others (issue 20 §1). The model is the session's quick bundle with its output spoiled
for chosen rows, in process."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from astropy.io import fits

from service.fits_input import Cutout, InputError, read_fits
from service.runtime import TaskModel, TaskSpec, checked_outputs

pytest.importorskip("bentoml")


def _cube(task: str, seed: int) -> bytes:
    bands = {"lsbg": "g,r,z", "photoz": "u,g,r,i,z"}[task]
    n = len(bands.split(","))
    img = np.random.default_rng(seed).normal(0, 50, (n, 64, 64)).astype(np.float32)
    hdu = fits.PrimaryHDU(img)
    hdu.header["BANDS"], hdu.header["OBJECT"], hdu.header["EBV"] = bands, f"{task}-{seed}", 0.02
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


class _Spoiled:
    """``TaskModel`` whose answer rows at ``rows`` (positions in each call) get ``value``: in the
    class scores (column 0) or the OOD score (the last column)."""

    def __init__(self, model: TaskModel, rows: set[int], value: float, column: int) -> None:
        self.model, self.spec, self.rows, self.value, self.column = (
            model, model.spec, rows, value, column)  # fmt: skip

    def infer(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, latent = self.model.infer(rows)
        for k in self.rows:
            if k < len(out):
                out[k, self.column] = self.value
        return out, latent


@pytest.fixture(scope="module")
def models(bundles):
    return {
        t: TaskModel(TaskSpec.from_ref(t, f"skyguard-{t}:latest"), "cpu")
        for t in ("lsbg", "photoz")
    }


def test_checked_outputs_refuses_only_the_rows_that_are_not_finite():
    items: list = [Cutout(f"c{k}", np.zeros((1, 2, 2), np.float32)) for k in range(4)]
    items[1] = InputError("non_finite", "refused before the model", "c1")
    out = np.array([[0.2, 0.8, 50.0], [0.5, 0.5, 1.0], [0.1, np.nan, np.inf]])
    rows, kept = checked_outputs(out, items, [0, 2, 3])
    assert kept == [0, 2] and rows.tolist() == [out[0].tolist(), out[1].tolist()]
    assert items[3].reason == "bad_output" and items[3].where == "c3"
    assert "2 of 3 values NaN or ±inf" in items[3].message
    assert items[1].reason == "non_finite" and isinstance(items[2], Cutout)
    with pytest.raises(ValueError, match="expected 3 answer rows"):
        checked_outputs(out[:2], items, [0, 2, 3])


def _gateway(model):
    """The service's gateway class in process, its predictor call made on ``model``."""
    from service.service import Skyguard

    gateway = Skyguard.inner.__new__(Skyguard.inner)
    gateway.specs, gateway._agreed_at = {model.spec.task: model.spec}, np.inf

    async def predict(task: str, rows: np.ndarray) -> np.ndarray:
        return model.infer(rows)[0]

    gateway._predict = predict
    return gateway


@pytest.mark.parametrize(
    ("task", "value", "column"),
    [("lsbg", np.nan, 0), ("lsbg", np.inf, -1), ("photoz", np.nan, 5), ("photoz", -np.inf, -1)],
)
def test_gateway_answers_a_non_finite_output_per_cutout(models, tmp_path, task, value, column):
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"c{k}.fits")
        paths[-1].write_bytes(_cube(task, k))
    gateway = _gateway(_Spoiled(models[task], {1}, value, column))
    body = asyncio.run(
        gateway._files(task, paths, "none", **({"with_pdf": True} if task == "photoz" else {}))
    )
    assert body["n_answered"] == 2 and body["n_refused"] == 1
    a = body["answers"]
    assert a[1] == {"id": f"{task}-1", "error": {"reason": "bad_output", "where": f"{task}-1",
                    "message": a[1]["error"]["message"]}}  # fmt: skip
    assert "not finite" in a[1]["error"]["message"]
    assert a[0]["id"] == f"{task}-0" and a[2]["id"] == f"{task}-2" and "ood_score" in a[2]
    json.dumps(body, allow_nan=False)  # the answer is strict JSON
    # every output spoiled: every cutout gets its error, still an answer (the inputs were good)
    body = asyncio.run(_gateway(_Spoiled(models[task], {0, 1, 2}, value, column))._files(
        task, paths, "none"))  # fmt: skip
    assert body["n_answered"] == 0 and body["n_refused"] == 3
    assert [x["error"]["reason"] for x in body["answers"]] == ["bad_output"] * 3


def test_batch_scoring_writes_an_error_row_and_goes_on(models):
    from scoring.scorer import PartitionConfig, PartitionScorer

    model = models["lsbg"]
    spec = model.spec
    items = [read_fits(_cube("lsbg", k), f"c{k}.fits", spec.bands, spec.shape) for k in range(4)]
    freq = np.random.default_rng(0).standard_normal((spec.info["latent_dim"], 3))
    cfg = PartitionConfig("lsbg", str(spec.bundle.path), freq, provider="cpu")
    df = PartitionScorer(cfg)._score(_Spoiled(model, {2}, np.nan, 0), items, ["s"] * 4, [None] * 4)
    assert df["error_reason"].tolist() == [None, None, "bad_output", None]
    assert df["id"].tolist() == [f"lsbg-{k}" for k in range(4)]
    assert df["label"].notna().tolist() == [True, True, False, True]
