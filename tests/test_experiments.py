"""The 002 morphology experiment (``skyguard experiment morphology``) at tiny scale.

One run on two tiny ConvNet bundles (regular from the ``bundles`` fixture, mmd trained here the
same way), each given a one-pixel weakness (``_hot_pixel``) so that a tiny attack does flip them;
its report is then checked against numbers recomputed independently: the bundles' ONNX models on
the test split read by ``training.data.load_task``.
"""

import json

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from cli.main import main
from core.bundle import onnx_session, run_onnx

POPULATION, GENERATIONS = 40, 10
#: latent gain of each model's one-pixel weakness: different, so the two d_E samples differ
HOT_GAIN = {"regular": 1.0, "mmd": 3.0}


def _hot_pixel(net, gain: float):
    """Give a barely trained ConvNet a one-pixel weakness (a one-epoch tiny model calls every
    image the same class with margins no single pixel can cross): conv1 channel c (c = 0, 1, 2)
    fires only at a pixel whose band c exceeds the other two bands by more than 0.5, which smooth,
    band-correlated galaxies do not hold, and identity taps carry it through conv2, conv3 and
    latent unit c (times ``gain``) to the logit of class c + 1 (mod 3). All other weights stay
    as trained, less what read from or wrote to those channels and units."""
    k = net.conv1.kernel_size[0] // 2
    cells = net.bottleneck.in_features // net.conv3.out_channels  # 12 × 12 after the last pool
    with torch.no_grad():
        for conv, bn in ((net.conv1, net.bn1), (net.conv2, net.bn2), (net.conv3, net.bn3)):
            conv.weight[:3] = 0
            conv.bias[:3] = 0
            if conv is not net.conv1:
                conv.weight[:, :3] = 0
            bn.running_mean[:3], bn.running_var[:3], bn.weight[:3], bn.bias[:3] = 0, 1, 1, 0
        net.bottleneck.weight[:3] = 0
        net.bottleneck.weight[:, : 3 * cells] = 0
        net.bottleneck.bias[:3] = 0
        net.fc.weight[:, :3] = 0
        for c in range(3):
            net.conv1.weight[c, :, k, k] = -1.0
            net.conv1.weight[c, c, k, k] = 1.0
            net.conv1.bias[c] = -0.5
            net.conv2.weight[c, c, 1, 1] = net.conv3.weight[c, c, 1, 1] = 1.0
            net.bottleneck.weight[c, c * cells : (c + 1) * cells] = gain
            net.fc.weight[(c + 1) % 3, c] = 50.0
    return net


@pytest.fixture(scope="module")
def morph(bundles, tmp_path_factory):
    """The tiny data root and two hot-pixel bundle directories {recipe: dir}; a one-epoch convnet
    mmd bundle is stored beside the ``bundles`` fixture's regular one for this module, and
    removed from the session's store afterwards (other modules expect the regular one newest)."""
    from experiments.morphology_inputs import choose_models, read_test_splits
    from training.data import load_task
    from training.export import write_bundle
    from training.recipes import Recipe
    from training.runs import train
    from training.verify import torch_model

    out = tmp_path_factory.mktemp("experiment_runs")
    run = train("morphology", "mmd", quick=True, data_root=bundles, out_root=out, progress=False,
                epochs=1, n_canaries=6, n_parity=4, n_boot=20)  # fmt: skip
    attrs = read_test_splits(bundles).attrs
    stored = choose_models(None, ("convnet",), bundles, attrs, train_missing=False)
    data = load_task(bundles, "morphology")
    hot = {}
    for name, choice in stored.items():
        info = choice.bundle.info
        net = _hot_pixel(torch_model(choice.bundle), HOT_GAIN[choice.recipe])
        hot[choice.recipe] = write_bundle(net, Recipe.from_dict(info["hyperparameters"]), data,
                                          out / f"hot-{name}", info["training"])  # fmt: skip
    yield bundles, hot, stored
    import bentoml

    bentoml.models.delete(run.tag)


@pytest.fixture(scope="module")
def report(morph, tmp_path_factory):
    from experiments import run_morphology

    root, hot, _ = morph
    out = tmp_path_factory.mktemp("report")
    numbers = run_morphology(
        {f"convnet-{r}": d for r, d in hot.items()}, root, out, n_attack=150,
        population=POPULATION, generations=GENERATIONS, n_windows=2, train_missing=False,
        progress=False, command="pytest",
    )  # fmt: skip
    return numbers, out


@pytest.fixture(scope="module")
def onnx_models(morph):
    """Each hot bundle as an independent predictor: its ONNX session → (probs, latents)."""
    _, hot, _ = morph
    sessions = {f"convnet-{r}": onnx_session(d / "model.onnx") for r, d in hot.items()}

    def predictor(session):
        def predict(x):
            out = run_onnx(session, x)
            return out["probs"], out["latent"]

        return predict

    return {n: predictor(s) for n, s in sessions.items()}


@pytest.fixture(scope="module")
def test_split(morph):
    from training.data import load_task

    data = load_task(morph[0], "morphology")
    return data.source.splits["test"], data.target.splits["test"]


def test_report_files(report):
    numbers, out = report
    assert (out / "report.md").is_file()
    assert json.loads((out / "report.json").read_text())["attack"] == json.loads(
        json.dumps(numbers["attack"])
    )
    for png in numbers["figures"].values():
        assert (out / png).is_file() and (out / png).stat().st_size > 0
    md = (out / "report.md").read_text()
    for name in numbers["figures"].values():
        assert f"]({name})" in md
    assert "Table 5" in md and "resnet18: not asked" in md
    assert numbers["settings"]["population"] == POPULATION


def test_accuracies_match_independent_predictions(report, onnx_models, test_split):
    numbers, _ = report
    for name, predict in onnx_models.items():
        for role, split in zip(("source", "target"), test_split, strict=True):
            probs, _ = predict(split.x)
            pred = probs.argmax(1)
            got = numbers["classification"][name][role]
            assert got["n"] == len(split.y)
            assert got["accuracy"] == skm.accuracy_score(split.y, pred)
            p, r, f1, _ = skm.precision_recall_fscore_support(
                split.y, pred, labels=[0, 1, 2], average="weighted", zero_division=0
            )
            assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f1))


def _attacked(numbers, split):
    """The attacked images [M, C, H, W] and labels [M], in the report's order."""
    rows = np.searchsorted(split.index, numbers["settings"]["attacked_objects"])
    return split.x[rows], split.y[rows]


def test_every_flip_is_confirmed(report, onnx_models, test_split):
    from training.robustness import apply_pixel

    numbers, _ = report
    x, y = _attacked(numbers, test_split[0])
    correct = [onnx_models[n](x)[0].argmax(1) == y for n in onnx_models]
    assert np.all(correct), "attacked images must be correctly classified by every model"
    for name, predict in onnx_models.items():
        a = numbers["attack"][name]
        per = a["per_image"]
        ok = np.array(per["success"])
        assert ok.sum() == a["flipped"] == a["confirmed"] >= 1
        for i in np.flatnonzero(ok):
            x_adv = apply_pixel(x[i], per["pixel"][i], per["values"][i])
            assert np.count_nonzero(np.any(x_adv != x[i], axis=0)) == 1  # one pixel
            assert predict(x_adv[None])[0].argmax() != y[i]


def test_distances_over_images_flipped_under_both(report, onnx_models, test_split):
    numbers, _ = report
    from training.robustness import apply_pixel

    x, _ = _attacked(numbers, test_split[0])
    x_y1, _ = _attacked(numbers, test_split[1])
    att = numbers["attack"]
    both = np.flatnonzero(
        np.array(att["convnet-regular"]["per_image"]["success"])
        & np.array(att["convnet-mmd"]["per_image"]["success"])
    )
    d = numbers["distances"]["convnet"]
    assert d["n_both"] == len(both) >= 1
    assert d["objects"] == [numbers["settings"]["attacked_objects"][i] for i in both]
    for recipe in ("regular", "mmd"):
        name = f"convnet-{recipe}"
        per = att[name]["per_image"]
        x_adv = np.stack([apply_pixel(x[i], per["pixel"][i], per["values"][i]) for i in both])
        z0, z1, zy = (onnx_models[name](v)[1] for v in (x[both], x_adv, x_y1[both]))
        for kind, dist in (("one_pixel", np.linalg.norm(z1 - z0, axis=1)),
                           ("target", np.linalg.norm(zy - z0, axis=1))):  # fmt: skip
            np.testing.assert_allclose(d["d_e"][recipe][kind], dist, rtol=1e-4, atol=1e-4)
            s = d[recipe][kind]
            assert s["n"] == len(both)
            assert s["mean"] == pytest.approx(dist.mean(), rel=1e-4, abs=1e-4)
            assert s["median"] == pytest.approx(np.median(dist), rel=1e-4, abs=1e-4)
    assert 0.0 <= d["js"]["one_pixel"] <= 1.0


def test_models_found_in_store(morph):
    """Without --bundle, the newest stored bundle of each architecture and recipe trained on the
    same data is used; a bundle under the wrong name, or a missing one, is refused."""
    from experiments.morphology_inputs import choose_models, read_test_splits

    root, hot, stored = morph
    assert {n: (c.architecture, c.recipe, c.origin) for n, c in stored.items()} == {
        "convnet-regular": ("convnet", "regular", "store"),
        "convnet-mmd": ("convnet", "mmd", "store"),
    }
    attrs = read_test_splits(root).attrs
    with pytest.raises(ValueError, match="not morphology/convnet/mmd"):
        choose_models({"convnet-mmd": hot["regular"]}, ("convnet",), root, attrs)
    with pytest.raises(FileNotFoundError, match="no stored morphology resnet18/regular"):
        choose_models(None, ("resnet18",), root, attrs, train_missing=False)
    with pytest.raises(ValueError, match="must be ARCH-RECIPE"):
        choose_models({"convnet-adversarial": hot["regular"]}, ("convnet",), root, attrs)


def test_cli_help_and_bad_bundle(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["experiment", "morphology", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("morphology", "--bundle", "--arch", "--n-attack", "--population"):
        assert option in out
    assert main(["experiment", "morphology", "--bundle", "convnet-mmd"]) == 2
    assert "NAME=TAG_OR_DIR" in capsys.readouterr().err
