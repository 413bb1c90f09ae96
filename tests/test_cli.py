"""The ``skyguard`` command line end to end on tiny datasets."""

import h5py
import pytest
from astropy.io import fits

from training.cli import build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("simulate", "cutouts", "plot", "hardness", "demo"):
        assert command in out


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
