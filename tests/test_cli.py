"""The ``skyguard`` command line end to end on tiny datasets."""

import h5py
import pytest
from astropy.io import fits

from cli.main import build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("simulate", "cutouts", "plot", "hardness", "demo", "train", "export", "models",
                    "baselines", "experiment", "score", "serve"):  # fmt: skip
        assert command in out


def test_serve_is_make_serve(monkeypatch, tmp_path):
    """``skyguard serve``: the first-start bootstrap with its folders, then ``bentoml serve`` of
    the service in this process's place, on the host and port asked for."""
    import os
    import sys

    import cli.bootstrap

    calls = {}
    monkeypatch.delenv("BENTOML_HOME", raising=False)
    monkeypatch.setattr(
        cli.bootstrap, "main", lambda argv: calls.setdefault("bootstrap", argv) and 0
    )
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.setdefault("exec", (path, argv)))
    main(["serve", "--port", "3917", "--data", str(tmp_path / "d"), "--examples", "ex"])
    assert calls["bootstrap"] == ["--data", str(tmp_path / "d"), "--runs", "out/runs",
                                  "--examples", "ex"]  # fmt: skip
    path, argv = calls["exec"]
    assert path == sys.executable
    assert argv[1:] == ["-m", "bentoml", "serve", "service.service:Skyguard", "--host",
                        "127.0.0.1", "--port", "3917"]  # fmt: skip
    assert os.environ["BENTOML_HOME"].endswith("models/bentoml")  # the Makefile's store


def test_simulate_cutouts_and_plots(tmp_path, capsys):
    assert (
        main(
            [
                "simulate",
                "photoz",
                "--n",
                "12",
                "--out",
                str(tmp_path),
                "--workers",
                "1",
                "--zmax",
                "0.3",
            ]
        )
        == 0
    )
    assert "12 objects × 2 domains" in capsys.readouterr().out
    with h5py.File(tmp_path / "photoz" / "deep.h5") as f:
        assert f["z"][()].max() <= 0.3 and f.attrs["task"] == "photoz"
    assert (
        main(
            [
                "cutouts",
                str(tmp_path / "photoz" / "deep.h5"),
                "--out",
                str(tmp_path / "fits"),
                "--n",
                "2",
                "--layout",
                "bands",
                "--compress",
                "rice",
            ]
        )
        == 0
    )
    files = sorted((tmp_path / "fits").glob("*.fits"))
    assert len(files) == 2
    with fits.open(files[0]) as hdul:
        assert [h.header.get("FILTER") for h in hdul[1:]] == ["u", "g", "r", "i", "z"]
    assert main(["plot", "examples", str(tmp_path), "--out", str(tmp_path / "png")]) == 0
    assert (tmp_path / "png" / "photoz_examples.png").stat().st_size > 10_000


def test_plot_without_data_says_what_it_expected(tmp_path, capsys):
    assert main(["plot", "examples", str(tmp_path)]) == 1
    assert "no datasets under" in capsys.readouterr().err


def test_bad_arguments_are_refused():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "galaxies", "--n", "3", "--out", "x"])


def test_train_export_and_finetune(tiny_data, tmp_path, capsys):
    """``train`` ends in a stored bundle; ``export`` remakes it from the checkpoint; ``finetune``
    starts from the stored model and serves the target domain."""
    import json

    common = ["--data", str(tiny_data), "--out", str(tmp_path), "--epochs", "1"]
    assert main(["train", "lsbg", "--recipe", "regular", "--quick", *common]) == 0
    out = capsys.readouterr().out
    assert "stored as skyguard-lsbg:" in out and "target (hsc) test: accuracy" in out
    run = tmp_path / "lsbg-deepshadows-regular-quick"
    assert (run / "training_curve.png").is_file() and (run / "bundle" / "model.onnx").is_file()
    assert main(["export", str(run), "--data", str(tiny_data)]) == 0
    assert "stored as skyguard-lsbg:" in capsys.readouterr().out
    assert main(["train", "lsbg", "--recipe", "finetune", "--quick", *common]) == 0
    assert "stored as skyguard-lsbg-finetune:" in capsys.readouterr().out
    info = json.loads(
        (tmp_path / "lsbg-deepshadows-finetune-quick" / "bundle" / "bundle.json").read_text()
    )
    assert info["recipe"] == "finetune" and info["served_domain"] == "hsc"
    assert info["reference_latents"]["domain"] == "hsc"


def test_baselines(tiny_data, tmp_path, capsys):
    import json

    assert main(["baselines", str(tiny_data), "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "des svm" in out and "hsc random_forest" in out
    result = json.loads((tmp_path / "b.json").read_text())
    s = result["des"]["svm"]
    assert (
        0 <= s["accuracy"] <= 1
        and s["ci95"]["accuracy"][0] <= s["accuracy"] <= s["ci95"]["accuracy"][1]
    )
