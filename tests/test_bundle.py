"""Model bundles: export, ONNX parity, checks on load, the BentoML store and the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cli.main import main
from core.bundle import FILES, BundleError, check_parity, onnx_session, read_bundle, run_onnx
from training.data import load_task
from training.export import write_bundle
from training.recipes import load_recipe
from training.trainer import fit

TINY = {"batch_size": 8, "eval_batch_size": 16, "n_canaries": 6, "n_parity": 4, "n_boot": 50,
        "epochs": 1}  # fmt: skip


@pytest.fixture(scope="module", params=["morphology", "photoz", "lsbg"])
def bundle_dir(request, tiny_data, tmp_path_factory):
    task = request.param
    data = load_task(tiny_data, task)
    r = load_recipe(task, "regular", quick=True, **TINY)
    out = tmp_path_factory.mktemp(f"bundle-{task}")
    res = fit(r, data, out / "run", progress=False)
    return write_bundle(res.model, r, data, out / "bundle", {"epochs_run": 1}), data


def test_bundle_contents(bundle_dir):
    path, data = bundle_dir
    b = read_bundle(path)
    info = b.info
    assert sorted(info["files"]) == sorted(FILES)
    assert info["task"] == data.task and info["recipe"] == "regular"
    assert set(info["metrics"]) == {"source", "target"}
    assert info["metrics"]["target"]["domain"] == data.target.name
    lat = b.reference_latents()
    assert lat.dtype == np.float32 and lat.shape[1] == info["latent_dim"]
    can = b.canaries()
    assert can["images"].ndim == 4 and list(can["images"].shape[1:]) == info["input_shape"]
    assert ("z" in can) == (data.task == "photoz") and ("labels" in can) != ("z" in can)
    if data.task == "photoz":
        assert len(info["z_bin_edges"]) == 181 and info["inputs"] == ["image", "ebv"]
    else:
        assert info["classes"] == data.classes and info["outputs"] == ["probs", "latent"]
    if data.task == "lsbg":
        lo, hi = info["metrics"]["source"]["ci95"]["accuracy"]
        assert lo <= info["metrics"]["source"]["accuracy"] <= hi


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_dynamic_batch_matches_parity_data(bundle_dir, batch):
    path, _ = bundle_dir
    b = read_bundle(path)
    p = b.parity_data()
    sess = onnx_session(b.onnx_path)
    x = np.repeat(p["image"][:1], batch, axis=0)
    ebv = None if "ebv" not in p else np.repeat(p["ebv"][:1], batch, axis=0)
    out = run_onnx(sess, x, ebv)
    name = b.info["outputs"][0]
    assert out[name].shape == (batch, b.info["num_outputs"])
    np.testing.assert_allclose(out[name].sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out[name], np.repeat(p[f"torch_{name}"][:1], batch, 0), atol=1e-4)


@pytest.mark.parametrize("spin", [True, False])
def test_onnx_session_spinning_is_what_was_asked(bundle_dir, spin):
    """spin=False (the service's predictor) turns ONNX Runtime's busy-waiting pools off; the
    default leaves ONNX Runtime's own behaviour (no entry); answers are the same either way."""
    path, _ = bundle_dir
    b = read_bundle(path)
    sess = onnx_session(b.onnx_path, ["CPUExecutionProvider"], spin=spin)
    options = sess.get_session_options()
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        if spin:  # ONNX Runtime's default: the entry is absent
            with pytest.raises(RuntimeError, match="does not have configuration"):
                options.get_session_config_entry(key)
        else:
            assert options.get_session_config_entry(key) == "0"
    p = b.parity_data()
    name = b.info["outputs"][0]
    out = run_onnx(sess, p["image"][:2], p["ebv"][:2] if "ebv" in p else None)
    np.testing.assert_allclose(out[name], p[f"torch_{name}"][:2], atol=1e-4)


def test_tampering_is_named(bundle_dir, tmp_path):
    path, _ = bundle_dir
    bad = tmp_path / "b"
    shutil.copytree(path, bad)
    (bad / "reference_latents.npy").write_bytes(b"\x00" * 64)
    with pytest.raises(BundleError, match="reference_latents.npy: sha256 differs"):
        read_bundle(bad)
    shutil.copy2(path / "reference_latents.npy", bad / "reference_latents.npy")
    read_bundle(bad)
    (bad / "canaries.npz").unlink()
    with pytest.raises(BundleError, match="canaries.npz: file missing"):
        read_bundle(bad, check_files=True)


def test_schema_errors_are_named(bundle_dir, tmp_path):
    path, _ = bundle_dir
    bad = tmp_path / "b"
    shutil.copytree(path, bad)
    info = json.loads((bad / "bundle.json").read_text())
    for edit, message in [
        (lambda d: d.pop("latent_dim"), "missing field 'latent_dim'"),
        (lambda d: d.update(schema_version=99), "schema_version 99"),
        (lambda d: d.update(latent_dim="256"), "'latent_dim' should be int"),
        (lambda d: d.update(preprocessing={"name": "magic"}), "unknown preprocessing 'magic'"),
    ]:
        d = json.loads(json.dumps(info))
        edit(d)
        (bad / "bundle.json").write_text(json.dumps(d))
        with pytest.raises(BundleError, match=message):
            read_bundle(bad)
    (bad / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle(bad)


def test_parity_failure_is_refused(bundle_dir, tmp_path):
    """A model.onnx that does not compute what weights.pt computes is refused on load."""
    from core.bundle import sha256

    path, _ = bundle_dir
    bad = tmp_path / "b"
    shutil.copytree(path, bad)
    p = dict(np.load(bad / "parity.npz"))
    p["image"] = p["image"] + 0.5  # stored outputs no longer belong to these inputs
    np.savez(bad / "parity.npz", **p)
    info = json.loads((bad / "bundle.json").read_text())
    info["files"]["parity.npz"] = sha256(bad / "parity.npz")
    (bad / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(BundleError, match="ONNX output differs from torch"):
        check_parity(read_bundle(bad))
    # served: the predictor's own session is the one checked, and it refuses to serve; a process
    # that only reads the bundle (the gateway) builds no session and does not check
    from service.runtime import TaskModel, TaskSpec

    spec = TaskSpec.from_ref(read_bundle(bad).task, str(bad))
    with pytest.raises(BundleError, match="on CPUExecutionProvider: .*differs from torch"):
        TaskModel(spec, "cpu")
    assert TaskModel(TaskSpec.from_ref(spec.task, str(path)), "cpu").parity


def test_store_and_cli(bundle_dir, capsys):
    from core.store import list_models, load, save_bundle

    path, data = bundle_dir
    tag = save_bundle(path)
    assert tag.startswith(f"skyguard-{data.task}:")
    assert load(data.task).info == read_bundle(path).info  # bare task name → newest
    assert any(r["tag"] == tag for r in list_models(data.task))
    assert main(["models", "verify", tag, "--torch"]) == 0
    assert "ONNX parity OK" in capsys.readouterr().out
    assert main(["models", "list", data.task]) == 0
    assert tag in capsys.readouterr().out
    assert main(["models", "show", tag]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == data.task
    assert main(["models", "verify", "skyguard-nothing:latest"]) == 1
    assert "no model 'skyguard-nothing:latest'" in capsys.readouterr().err


def test_non_finite_outputs_never_pass(bundle_dir, tmp_path):
    """NaN outputs (a diverged model) fail the parity check whatever the other outputs do."""
    from core.bundle import max_parity_error

    path, _ = bundle_dir
    p = read_bundle(path).parity_data()
    name = read_bundle(path).info["outputs"][0]
    ref = {name: p[f"torch_{name}"], "latent": p["torch_latent"]}
    nan = {name: np.full_like(ref[name], np.nan), "latent": ref["latent"]}
    assert max_parity_error(ref, nan)[name] == float("inf")
    with pytest.raises(BundleError, match="outputs"):
        max_parity_error(ref, {name: ref[name]})  # the latent output missing
