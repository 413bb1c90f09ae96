"""The 004 LSBG experiment (``skyguard experiment lsbg``) at tiny scale.

One run on the ``bundles`` fixture's one-epoch DeepShadows bundle (found in the session's store),
with one-epoch fine-tuning and label-noise retrainings; the trainer's inputs are recorded by spies,
and the report is checked against numbers recomputed independently: the bundle's ONNX model on the
test split read by ``training.data.load_task``.
"""

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from cli.main import main
from core.bundle import onnx_session, run_onnx

NOISE = (0.0, 0.1, 0.33)
FINETUNE_N = 10


@pytest.fixture(scope="module")
def run(bundles, tmp_path_factory):
    """The report's numbers, its directory, and what ``trainer.fit`` was given: a list of
    (recipe name, the source training split it trained on)."""
    from experiments import run_lsbg
    from training import trainer

    out = tmp_path_factory.mktemp("lsbg_report")
    fits: list = []
    fit, tensors = trainer.fit, trainer._tensors

    def spy_fit(recipe, data, *a, **kw):
        fits.append([recipe.recipe, None])
        return fit(recipe, data, *a, **kw)

    def spy_tensors(split):
        if fits and fits[-1][1] is None:  # fit's first call: its (replaced) training split
            fits[-1][1] = split
        return tensors(split)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "fit", spy_fit)
        mp.setattr(trainer, "_tensors", spy_tensors)
        numbers = run_lsbg(
            bundles, out, noise_levels=NOISE, finetune_n=FINETUNE_N, n_boot=30, n_gradcam=2,
            train_overrides={"epochs": 1}, progress=False, command="pytest",
        )  # fmt: skip
    return numbers, out, fits


@pytest.fixture(scope="module")
def data(bundles):
    from training.data import load_task

    return load_task(bundles, "lsbg")


@pytest.fixture(scope="module")
def onnx_p_lsbg(run, data):
    """P(LSBG) [N] of the report's CNN bundle on the DES-like test split, from its ONNX model."""
    numbers, _, _ = run
    session = onnx_session(f"{numbers['cnn']['path']}/model.onnx")
    return run_onnx(session, data.source.splits["test"].x)["probs"][:, 1]


def test_report_files(run):
    numbers, out, _ = run
    assert json.loads((out / "report.json").read_text())["noise"] == json.loads(
        json.dumps(numbers["noise"])
    )
    md = (out / "report.md").read_text()
    for name in numbers["figures"].values():
        assert (out / name).stat().st_size > 0 and f"]({name})" in md
    assert {"roc_models", "roc_transfer", "noise", "gradcam_cells"} <= set(numbers["figures"])
    for table in ("Tables 2, 3", "Table 4", "Table 6", "Grad-CAM"):
        assert table in md
    assert set(numbers["comparison"]) == {"CNN", "SVM", "RF"}
    assert numbers["cnn"]["origin"] == "store" and numbers["cnn"]["trained_on_this_dataset"]


def test_cnn_scores_match_independent_predictions(run, data, onnx_p_lsbg):
    numbers, _, _ = run
    y = data.source.splits["test"].y
    pred = (onnx_p_lsbg >= 0.5).astype(int)
    got = numbers["comparison"]["CNN"]
    assert got["n"] == len(y)
    assert got["accuracy"] == skm.accuracy_score(y, pred)
    assert got["completeness"] == skm.recall_score(y, pred, zero_division=0)
    assert got["confusion"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    for s in (got, numbers["transfer"]["after"], *numbers["noise"].values()):
        for k, (lo, hi) in s["ci95"].items():
            assert lo <= hi, k


@pytest.mark.parametrize("p", [0.0, 0.01, 0.1, 0.33, 0.5, 1.0])
def test_flip_labels_flips_exactly_round_pn(data, p):
    from experiments.lsbg import flip_labels

    train = data.source.splits["train"]
    y0 = train.y.copy()
    noisy, rows = flip_labels(data, p, seed=1)
    y = noisy.source.splits["train"].y
    assert np.count_nonzero(y != y0) == len(rows) == round(p * len(y0))
    # 004 §6.3: equal numbers of LSBGs and artifacts flipped, while both classes have enough
    per_class = [np.count_nonzero(y0[rows] == c) for c in (1, 0)]
    if len(rows) <= 2 * min(np.count_nonzero(y0 == 1), np.count_nonzero(y0 == 0)):
        assert per_class[0] - per_class[1] in (0, 1), per_class
    assert np.array_equal(y[rows], 1 - y0[rows]) and np.array_equal(train.y, y0)
    assert np.array_equal(noisy.source.splits["train"].x, train.x)
    for split in ("val", "test"):
        assert noisy.source.splits[split] is data.source.splits[split]
    assert noisy.target is data.target
    with pytest.raises(ValueError, match="must lie in"):
        flip_labels(data, 1.5)


def test_noise_runs_trained_on_flipped_labels(run, data):
    numbers, _, fits = run
    train = data.source.splits["train"]
    noisy_fits = [split for recipe, split in fits if recipe == "regular"]
    # the fixture's CNN was trained under the noise recipe (quick, 1 epoch, seed 0) on these
    # data: the 0 % control is that CNN, not a retraining
    control = numbers["noise"]["0"]
    assert control["reused"] == numbers["cnn"]["tag"] and control["n_flipped"] == 0
    assert control["confusion"] == numbers["comparison"]["CNN"]["confusion"]
    assert control["auc"] == numbers["comparison"]["CNN"]["auc"]
    retrained = [v for v in numbers["noise"].values() if v["p"] > 0]
    assert all(v["reused"] is None for v in retrained)
    assert len(noisy_fits) == len(NOISE) - 1 == len(retrained)
    for split, v in zip(noisy_fits, retrained, strict=True):
        assert np.array_equal(split.index, train.index)
        flipped = train.index[split.y != train.y]
        assert v["n_flipped"] == len(flipped) == round(v["p"] * len(train))
        assert v["flipped_objects"] == flipped.tolist()


def test_finetune_uses_finetune_n_target_objects(run, data):
    numbers, _, fits = run
    (split,) = [split for recipe, split in fits if recipe == "finetune"]
    target = data.target.splits["train"]
    assert len(split) == FINETUNE_N == numbers["transfer"]["finetune_n"]
    assert np.array_equal(split.index, target.index[:FINETUNE_N])
    assert np.array_equal(split.y, target.y[:FINETUNE_N])
    assert np.array_equal(split.x, target.x[:FINETUNE_N])  # HSC-like pixels, not DES-like
    assert numbers["transfer"]["finetune_objects"] == target.index[:FINETUNE_N].tolist()


def test_gradcam_cells_hold_their_cell(run, data, onnx_p_lsbg):
    numbers, _, _ = run
    test = data.source.splits["test"]
    pred = (onnx_p_lsbg >= 0.5).astype(int)
    cells = numbers["gradcam"]
    assert list(cells) == ["TN", "FP", "FN", "TP"]
    shown = 0
    for c in cells.values():
        rows = np.searchsorted(test.index, c["objects"])
        assert np.array_equal(test.index[rows], c["objects"])
        assert np.all(test.y[rows] == c["true"]) and np.all(pred[rows] == c["predicted"])
        assert len(rows) == min(2, c["n_in_cell"])
        np.testing.assert_allclose(c["p_lsbg"], onnx_p_lsbg[rows], atol=1e-4)
        shown += len(rows)
    assert shown >= 1


def test_cli_help_and_refused_cnn(bundles, tmp_path, capsys):
    from core.store import list_models
    from experiments.lsbg import choose_cnn

    with pytest.raises(SystemExit) as exc:
        main(["experiment", "lsbg", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--data", "--cnn", "--noise", "--finetune-n", "--seed"):
        assert option in out
    with pytest.raises(SystemExit) as exc:
        main(["experiment"])
    assert exc.value.code == 2
    wrong = list_models("morphology")[0]["path"]
    with pytest.raises(ValueError, match="not lsbg/deepshadows"):
        choose_cnn(wrong, bundles, {}, runs_root=tmp_path)


def test_trained_by_compares_the_fields_that_change_the_weights(run):
    from core.bundle import read_bundle
    from experiments.lsbg import trained_by
    from training.recipes import load_recipe

    numbers, _, _ = run
    info = read_bundle(numbers["cnn"]["path"], check_files=False).info
    same = load_recipe("lsbg", "regular", quick=True, epochs=1)
    assert trained_by(info, same)
    # what a bundle carries or how it is evaluated does not make another model ...
    assert trained_by(info, load_recipe("lsbg", "regular", quick=True, epochs=1, n_canaries=99))
    # ... what the optimiser sees does
    for change in ({"epochs": 2}, {"seed": 1}, {"lr": 0.5}, {"n_max": 17}, {"augment": True}):
        recipe = load_recipe("lsbg", "regular", quick=True, **{"epochs": 1, **change})
        assert not trained_by(info, recipe), change
