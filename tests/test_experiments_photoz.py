"""The 003 photo-z experiment at tiny scale: one run on the 40-object ``tiny_data`` mocks, one
epoch per model, its report checked against numbers recomputed independently from the bundles'
weights and the adversarial images it kept (``keep_images``)."""

import argparse
import json

import numpy as np
import pytest

FRACTIONS = (0.0, 0.1)


@pytest.fixture(scope="module")
def report(tiny_data, tmp_path_factory):
    from experiments.photoz import run_photoz

    out = tmp_path_factory.mktemp("photoz_report")
    numbers = run_photoz(
        tiny_data, out, n_max=None, epochs=1, n_test=None, fractions=FRACTIONS,
        pgd_fraction=0.5, keep_images=True, progress=False, command="pytest",
    )  # fmt: skip
    images = dict(np.load(out / "adversarial.npz"))
    return numbers, out, images


@pytest.fixture(scope="module")
def setup(report, tiny_data):
    """The deep test split as the experiment reads it, the bin edges, and a predictor
    model name → (x [N, C, H, W] → z_phot [N]) from each bundle's own weights."""
    import torch

    from core.bundle import read_bundle
    from training.data import load_task
    from training.metrics import pdf_mean
    from training.verify import torch_model

    numbers, _, _ = report
    test = load_task(tiny_data, "photoz").source.splits["test"]
    edges = np.asarray(read_bundle(numbers["models"]["regular"]["bundle"]).info["z_bin_edges"])

    def predictor(bundle):
        net = torch_model(read_bundle(bundle))

        def z_phot(x):
            with torch.no_grad():
                logits = net(torch.from_numpy(x), torch.from_numpy(test.ebv))
            return pdf_mean(torch.softmax(logits, 1).numpy(), edges)

        return z_phot

    return test, {n: predictor(m["bundle"]) for n, m in numbers["models"].items()}


def _scores(z_phot, z_spec):
    dz = (z_phot - z_spec) / (1 + z_spec)
    return {
        "bias": dz.mean(),
        "sigma_mad": 1.4826 * np.median(np.abs(dz - np.median(dz))),
        "eta": np.mean(np.abs(dz) > 0.05),
    }


def _assert_scores(got: dict, want: dict):
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k


def test_report_files(report):
    numbers, out, _ = report
    md = (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["table2"] == json.loads(
        json.dumps(numbers["table2"])
    )
    for png in numbers["figures"].values():
        assert (out / png).stat().st_size > 0 and f"]({png})" in md
    for heading in ("## Scale", "Table 1", "Transfer", "Table 2", "Table 3", "wall time"):
        assert heading in md
    assert set(numbers["figures"]) >= {"zphot_regular_clean", "zphot_regular_fgsm", "eta_vs_fa"}
    # the bold "not learned" warning follows the measured clean η, whichever side it falls
    from experiments.photoz_report import UNTRAINED_ETA

    untrained = numbers["table1"]["clean"]["eta"] > UNTRAINED_ETA
    assert ("has not learned photo-z" in md) == untrained


def test_untrained_warning_only_above_the_threshold():
    from experiments.photoz_report import UNTRAINED_ETA, _untrained_warning

    def numbers(eta):
        return {"table1": {"clean": {"bias": 0.0, "sigma_mad": 0.047, "eta": eta}}}

    assert _untrained_warning(numbers(0.01)) == []
    assert _untrained_warning(numbers(UNTRAINED_ETA)) == []
    warning = _untrained_warning(numbers(0.35))[0]
    assert "has not learned photo-z: clean η = 35 %" in warning and "σ_MAD = 47" in warning


def test_table1_clean_matches_independent_recomputation(report, setup):
    numbers, _, images = report
    test, predict = setup
    assert numbers["data"]["test_objects"] == test.index.tolist()
    np.testing.assert_array_equal(images["clean"], test.x)
    _assert_scores(numbers["table1"]["clean"], _scores(predict["regular"](test.x), test.y))
    for attack in ("fgsm", "pgd_linf", "pgd_l2"):
        z = predict["regular"](images[f"regular__{attack}"])
        _assert_scores(numbers["table1"][attack], _scores(z, test.y))


def test_attacked_inputs_stay_in_their_eps_ball(report):
    numbers, _, images = report
    settings = numbers["settings"]["attacks"]
    sets = [k for k in images if "__" in k]
    assert len(sets) == 3 + 2 * 2  # regular: 3 attacks; fgsm-0.1 and pgd-0.5: FGSM, PGD-L∞
    for key in sets:
        attack = key.split("__")[1]
        d = (images[key].astype(np.float64) - images["clean"]).reshape(len(images["clean"]), -1)
        eps = settings[attack]["eps"]
        if settings[attack]["norm"] == "linf":
            assert np.abs(d).max() <= eps * (1 + 1e-5), key
        else:
            assert np.linalg.norm(d, axis=1).max() <= eps * (1 + 1e-4), key
        assert np.abs(d).max() > 0, f"{key}: the attack changed nothing"
    assert settings["fgsm"]["eps"] == 1.0  # 003's 0.01 nmgy in units of 0.01 nmgy
    assert settings["pgd_l2"]["n_iter"] == 40 and settings["pgd_linf"]["n_iter"] == 10


def test_transfer_uses_the_regular_models_images(report, setup):
    numbers, _, images = report
    test, predict = setup
    for model in ("regular-seed2", "inception"):
        rows = numbers["transfer"][model]
        _assert_scores(rows["clean"], _scores(predict[model](test.x), test.y))
        for attack in ("fgsm", "pgd_linf", "pgd_l2"):
            z = predict[model](images[f"regular__{attack}"])
            _assert_scores(rows[attack], _scores(z, test.y))
    # no adversarial set was made against the transfer models
    assert not any(k.startswith(("regular-seed2__", "inception__")) for k in images)


def test_adversarial_models_trained_as_asked(report):
    from pathlib import Path

    numbers, _, images = report
    asked = {"fgsm-0.1": (0.1, "fgsm"), "pgd-0.5": (0.5, "pgd")}
    for name, (fa, attack) in asked.items():
        history = json.loads(
            (Path(numbers["models"][name]["run_dir"]) / "history.json").read_text()
        )
        r = history["recipe"]
        assert (r["recipe"], r["adv_fraction"], r["adv_attack"], r["adv_eps"]) == (
            "adversarial", fa, attack, 1.0,
        )  # fmt: skip
        assert r["architecture"] == "simple_cnn" and len(history["epochs"]) == 1
    assert numbers["models"]["inception"]["architecture"] == "inception"
    assert numbers["models"]["regular-seed2"]["seed"] == numbers["models"]["regular"]["seed"] + 1
    assert list(numbers["table2"]) == ["0", "0.1"]
    assert numbers["table2"]["0"] == numbers["table3"]["regular"]
    # Tables 2 and 3 score each model under attacks made against that model
    for name in asked:
        assert f"{name}__fgsm" in images and f"{name}__pgd_linf" in images


def test_cli_options_and_bad_input(capsys, tmp_path):
    from experiments.photoz import add_arguments, main

    p = argparse.ArgumentParser()
    add_arguments(p)
    # bad options are refused before anything is simulated or trained
    args = p.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "r"), "--epochs", "0"])
    assert main(args) == 2
    assert "epochs >= 1" in capsys.readouterr().err
    assert not (tmp_path / "photoz").exists()
    args = p.parse_args(["--data", str(tmp_path), "--fractions", "1.5"])
    assert main(args) == 2
    assert "fractions must lie in [0, 1)" in capsys.readouterr().err
