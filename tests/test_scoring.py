"""Batch scoring (``scoring/``): Spark in local mode and the local engine on a few hundred FITS
cutouts with broken files among them write the same rows, and every row is the service's answer
for its cutout; an HDF5 dataset gives the rows of the FITS cutouts made from it; the whole-batch
drift test holds its contracts.

The bundles are tiny (one quick epoch on the 40-object mocks of ``tiny_data``): these tests check
the plumbing and the equalities, not the science.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from scoring import ScoreJob, score
from scoring.catalogue import Tally
from scoring.drift import DriftSums, FourierDrift

TASKS = ("lsbg", "photoz")


@pytest.fixture(scope="module")
def stored_bundles(tiny_data, tmp_path_factory):
    """A quick bundle per task in the session's store (those of another test module if there)."""
    from core.store import list_models
    from training.runs import train

    out = tmp_path_factory.mktemp("scoring_runs")
    for task in TASKS:
        if not list_models(task):
            train(task, "regular", quick=True, data_root=tiny_data, out_root=out, progress=False,
                  epochs=1, n_canaries=6, n_parity=4, n_boot=20)  # fmt: skip
    return tiny_data


@pytest.fixture(scope="module")
def spark():
    """Spark in local mode on two cores, as small as it goes; the engine finds it active."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("skyguard-test-scoring")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _fits_bytes(*hdus) -> bytes:
    buf = io.BytesIO()
    fits.HDUList(list(hdus)).writeto(buf)
    return buf.getvalue()


def _broken(good: bytes) -> dict[str, tuple[bytes, str | None]]:
    """{relative path: (bytes, expected error reason)} derived from one good lsbg cutout; reason
    None: a file both engines must skip (hidden, or not named like FITS)."""
    cube = fits.getdata(io.BytesIO(good)).astype(np.float32)
    head = fits.getheader(io.BytesIO(good))
    nan = cube.copy()
    nan[1, 5, 5] = np.nan
    wrong = head.copy()
    wrong["BANDS"] = "g,r,i"
    huge = fits.Header({"SIMPLE": True, "BITPIX": -32, "NAXIS": 3, "NAXIS1": 50000,
                        "NAXIS2": 50000, "NAXIS3": 3})  # fmt: skip
    table = fits.BinTableHDU.from_columns([fits.Column(name="f", format="E", array=np.ones(3))])
    return {
        "broken/truncated.fits": (good[:5000], "bad_fits"),
        "broken/empty.fits": (b"", "empty"),
        "broken/text.fits": (b"this is not a FITS file\n" * 20, "bad_fits"),
        "broken/gzipped.fits.gz": (gzip.compress(good), "bad_fits"),
        "broken/table.fits": (_fits_bytes(fits.PrimaryHDU(), table), "not_image"),
        "broken/wrong_bands.fits": (_fits_bytes(fits.PrimaryHDU(cube, wrong)), "wrong_bands"),
        "broken/wrong_shape.fits": (
            _fits_bytes(fits.PrimaryHDU(cube[:, :32, :32], head)),
            "wrong_shape",
        ),  # fmt: skip
        "broken/nan.fits": (_fits_bytes(fits.PrimaryHDU(nan, head)), "non_finite"),
        "broken/deeper/huge_header.fits": (
            huge.tostring().encode().ljust(2880, b" "),
            "too_large",
        ),  # fmt: skip
        ".hidden.fits": (good, None),
        "_skipped.fits": (good, None),
        "notes.txt": (b"not a cutout", None),
    }


@pytest.fixture(scope="module")
def lsbg_cutouts(stored_bundles, tmp_path_factory):
    """~250 lsbg FITS files: every object of both domains in four layouts (cube, per-band,
    RICE- and GZIP-compressed), and broken files in subdirectories: (dir, {name: reason})."""
    from training.cutouts import write_cutouts

    root = tmp_path_factory.mktemp("lsbg_cutouts")
    layouts = {"cube": ("cube", None), "bands": ("bands", None), "rice": ("cube", "RICE_1"),
               "gzip": ("bands", "GZIP_2")}  # fmt: skip
    for name, (layout, compression) in layouts.items():
        for domain in ("des", "hsc"):
            write_cutouts(stored_bundles / "lsbg" / f"{domain}.h5", root / name, n=None,
                          indices=range(40), layout=layout, compression=compression)  # fmt: skip
    broken = _broken((root / "cube" / "lsbg_des_000000.fits").read_bytes())
    for rel, (data, _) in broken.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root, {rel: reason for rel, (_, reason) in broken.items()}


def _rows(path: str | Path) -> list[dict]:
    return sorted(
        pq.read_table(path).to_pylist(), key=lambda r: (r["source"], r["dataset_index"] or 0)
    )


def _gateway_answers(task: str, paths: list[Path], **kw) -> list[dict]:
    """The answers of the service's gateway, in process (``Skyguard._files``: decode, check,
    preprocess, answer), with the predictor's model call made directly; chunks of 50 files."""
    from service.runtime import TaskModel, TaskSpec
    from service.service import Skyguard

    spec = TaskSpec.from_ref(task, f"skyguard-{task}:latest")
    model = TaskModel(spec, "cpu")
    gateway = Skyguard.inner.__new__(Skyguard.inner)
    gateway.specs, gateway._agreed_at = {task: spec}, np.inf  # never re-checked: no predictor here

    async def predict(task: str, rows: np.ndarray) -> np.ndarray:
        return model.infer(rows)[0]

    gateway._predict = predict
    out = []
    for i in range(0, len(paths), 50):
        out += asyncio.run(gateway._files(task, paths[i : i + 50], "none", **kw))["answers"]
    return out


def _detail(message: str) -> str:
    """A refusal's message without its 'where: ' (the gateway names files cutout[k])."""
    return message.split(": ", 1)[1]


def _assert_row_is_answer(row: dict, answer: dict) -> None:
    if "error" in answer:
        assert row["error_reason"] == answer["error"]["reason"], row["source"]
        assert _detail(row["error_message"]) == _detail(answer["error"]["message"])
        return
    assert row["error_reason"] is None, row
    assert row["id"] == answer["id"] and row["ood_score"] == answer["ood_score"]
    assert {k: row[f"model_{k}"] for k in answer["model"]} == answer["model"]
    if "label" in answer:
        assert row["label"] == answer["label"]
        assert row["probabilities"] == list(answer["probabilities"].values())
    else:
        for k in ("z_mean", "z_median", "z_mode", "z_sigma", "odds"):
            assert row[k] == answer[k], k
        assert row.get("pdf") == answer.get("pdf")
    assert row["repaired_pixels"] == answer.get("repaired_pixels", 0)


def test_spark_and_local_write_the_services_answers(spark, lsbg_cutouts, tmp_path):
    """Both engines, partitioned and batched differently, write identical rows; each row is the
    gateway's answer for its file; broken files are rows with their reason; hidden and non-FITS
    files are skipped by both."""
    root, broken = lsbg_cutouts
    jobs = {
        "spark": ScoreJob("lsbg", str(root), str(tmp_path / "spark"), engine="spark"),
        "local": ScoreJob("lsbg", str(root), str(tmp_path / "local"), batch_size=16, part_size=50),
    }
    summaries = {name: score(job) for name, job in jobs.items()}
    spark_rows, local_rows = _rows(tmp_path / "spark"), _rows(tmp_path / "local")
    assert spark_rows == local_rows
    files = sorted((p for p in root.rglob("*") if p.is_file() and broken.get(
        str(p.relative_to(root)), "scored") is not None), key=str)  # fmt: skip
    assert summaries["spark"]["part_files"] > 1
    assert summaries["local"]["part_files"] == -(-len(files) // 50)
    assert [r["source"] for r in spark_rows] == [str(p) for p in files]
    expected = {str(root / rel): reason for rel, reason in broken.items() if reason}
    got = {r["source"]: r["error_reason"] for r in spark_rows if r["error_reason"]}
    assert got == expected

    for row, answer in zip(spark_rows, _gateway_answers("lsbg", files), strict=True):
        _assert_row_is_answer(row, answer)

    for name, s in summaries.items():
        c = s["counts"]
        assert c["rows"] == len(files) and c["scored"] == len(files) - len(expected), name
        assert sum(c["refused"].values()) == len(expected)
        assert sum(c["labels"].values()) == c["scored"]
        assert 0 <= s["drift"]["p_value"] <= 1 and s["drift"]["n"] == c["scored"]
        assert s["drift"]["is_drift"] == (s["drift"]["p_value"] < s["drift"]["alpha"])
        assert json.loads(Path(s["summary_file"]).read_text())["counts"] == c
    # the same sums, partitioned differently
    assert summaries["spark"]["drift"]["statistic"] == pytest.approx(
        summaries["local"]["drift"]["statistic"], rel=1e-6
    )


def test_spark_task_sessions_take_the_task_cpus_and_do_not_spin(stored_bundles, monkeypatch):
    """On an executor each concurrent task has its own session: capped at spark.task.cpus and
    not spinning; the local engine's one session keeps ONNX Runtime's defaults."""
    import pyspark

    from core.store import load
    from scoring import scorer

    path = str(load("skyguard-lsbg:latest").path)

    class Task:
        def cpus(self) -> int:
            return 1

    monkeypatch.setattr(pyspark.SparkFiles, "get", lambda name: path)
    monkeypatch.setattr(pyspark.TaskContext, "get", lambda: Task())
    monkeypatch.setattr(scorer, "_MODELS", {})
    freq = np.zeros((1, 1))
    on_executor = scorer.task_model(
        scorer.PartitionConfig("lsbg", path, freq, shipped=True, provider="cpu")
    )
    options = on_executor.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    local = scorer.task_model(scorer.PartitionConfig("lsbg", path, freq, provider="cpu"))
    assert local is not on_executor
    options = local.session.get_session_options()
    assert options.intra_op_num_threads == 0  # ONNX Runtime's default: every core
    with pytest.raises(RuntimeError, match="allow_spinning"):  # not set: ONNX Runtime spins
        options.get_session_config_entry("session.intra_op.allow_spinning")


def test_hdf5_on_spark_gives_the_rows_of_its_fits_cutouts(spark, stored_bundles, tmp_path):
    """Photo-z with p(z): a dataset scored on Spark and the FITS cutouts written from it scored
    locally give the same answers under the same ids (OBJECT); a cutout without E(B−V) is refused
    as the gateway refuses it."""
    from training.cutouts import write_cutouts

    data = stored_bundles / "photoz" / "shallow.h5"
    fits_dir = tmp_path / "fits"
    paths = write_cutouts(data, fits_dir, n=None, indices=range(40))
    with fits.open(paths[0]) as h:
        del h[0].header["EBV"]
        h.writeto(fits_dir / "no_ebv.fits")
    kw = {"with_pdf": True, "batch_size": 8, "part_size": 16}
    h5 = score(ScoreJob("photoz", str(data), str(tmp_path / "h5"), engine="spark", **kw))
    local = score(ScoreJob("photoz", str(fits_dir), str(tmp_path / "fits.parquet"), **kw))
    assert h5["part_files"] == 3 and h5["counts"]["rows"] == 40
    by_id = {r["id"]: r for r in _rows(tmp_path / "h5")}
    fits_rows = _rows(tmp_path / "fits.parquet")
    assert [r["dataset_index"] for r in by_id.values()] == list(range(40))
    refused = [r for r in fits_rows if r["error_reason"]]
    assert len(refused) == 1 and refused[0]["id"] == "photoz-shallow-000000"
    assert refused[0]["error_reason"] == "bad_value" and "E(B−V)" in refused[0]["error_message"]
    assert local["counts"]["refused"] == {"bad_value": 1}
    for row in fits_rows:
        if not row["error_reason"]:
            other = by_id[row["id"]]
            assert len(row["pdf"]) == 180
            skip = ("source", "dataset_index", "drift_features")
            assert {k: v for k, v in row.items() if k not in skip} == {
                k: v for k, v in other.items() if k not in skip
            }
            np.testing.assert_allclose(row["drift_features"], other["drift_features"], atol=1e-6)
    answers = _gateway_answers("photoz", [Path(r["source"]) for r in fits_rows], with_pdf=True)
    for row, answer in zip(fits_rows, answers, strict=True):
        _assert_row_is_answer(row, answer)


def test_cli(stored_bundles, lsbg_cutouts, tmp_path, capsys):
    """``skyguard score``: the local engine from the command line, its report and its refusals."""
    from cli.main import main

    root, _ = lsbg_cutouts
    out = tmp_path / "cat"
    args = ["score", "lsbg", str(root / "cube"), "--out", str(out), "--batch", "32"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "80 cutouts: 80 scored, refused: none" in text and "drift vs" in text
    assert json.loads((out / "_summary.json").read_text())["counts"]["rows"] == 80
    assert main(args) == 1  # the catalogue exists
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert main(["score", "lsbg", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 1
    assert "no FITS" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["score", "--help"])
    assert e.value.code == 0 and "usage: skyguard score" in capsys.readouterr().out


# -- the whole-batch drift test ----------------------------------------------------------------

RNG = np.random.default_rng(7)
MIX = RNG.standard_normal((32, 32)) / np.sqrt(32)


def _latents(n: int, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    """ReLU'd correlated Gaussians [n, 32], like a penultimate layer's activations."""
    z = np.random.default_rng(seed).standard_normal((n, 32)) @ MIX
    return np.maximum(z + shift, 0.0).astype(np.float32)


REF = _latents(300, seed=1)

# (name, batch latents, drift expected)
DRIFT_CASES = [
    ("copy of the reference", REF, False),
    ("same distribution", _latents(5000, seed=2), False),
    ("shifted", _latents(5000, shift=0.3, seed=3), True),
]


@pytest.mark.parametrize(("name", "batch", "drift"), DRIFT_CASES, ids=[c[0] for c in DRIFT_CASES])
def test_drift_cases(name, batch, drift):
    det = FourierDrift(REF, n_frequencies=5, seed=0)
    out = det.predict(DriftSums.of(det.features(batch)))
    assert out["is_drift"] == drift, out
    assert (out["p_value"] < det.alpha) == drift, out
    assert (out["statistic"] > out["threshold"]) == out["is_drift"]
    if name == "copy of the reference":
        assert out["statistic"] == pytest.approx(0, abs=1e-9) and out["p_value"] == 1


def test_drift_sums_merge_across_partitions():
    det = FourierDrift(REF, n_frequencies=4, seed=3)
    feats = det.features(_latents(1000, seed=4))
    parts = [DriftSums.of(feats[i : i + 137]) for i in range(0, 1000, 137)]
    whole, merged = DriftSums.of(feats), sum(parts[1:], parts[0])
    assert merged.n == whole.n
    np.testing.assert_allclose(merged.total, whole.total, rtol=1e-12)
    np.testing.assert_allclose(merged.outer, whole.outer, rtol=1e-12)
    assert det.score(merged).p_value == pytest.approx(det.score(whole).p_value, rel=1e-9)
    assert DriftSums.from_dict(json.loads(json.dumps(merged.to_dict()))).n == 1000
    tally = Tally(rows=3, drift=parts[0]) + Tally(rows=2) + Tally.from_json(Tally().to_json())
    assert tally.rows == 5 and tally.drift.n == parts[0].n


def test_drift_false_alarms_near_alpha():
    """Under no drift the test rejects at about its level (seeded: 200 reference draws)."""
    p = []
    for k in range(200):
        det = FourierDrift(_latents(300, seed=100 + k), n_frequencies=5, seed=k)
        p.append(det.score(DriftSums.of(det.features(_latents(3000, seed=1000 + k)))).p_value)
    assert np.mean(np.asarray(p) < 0.05) <= 0.1


def test_drift_checks_its_input():
    with pytest.raises(ValueError, match="too few to estimate the covariance of 10 features"):
        FourierDrift(REF[:10], n_frequencies=5)
    with pytest.raises(ValueError, match="NaNs or infs"):
        FourierDrift(np.full((20, 4), np.nan), n_frequencies=1)
    det = FourierDrift(REF, n_frequencies=2)
    with pytest.raises(ValueError, match="at least two latents"):
        det.score(DriftSums.of(det.features(REF[:1])))
