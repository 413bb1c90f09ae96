"""The answer-side helpers of service.runtime that need no bundle."""

import numpy as np
import pytest

from service.runtime import photoz_summary, redshift_label


@pytest.mark.parametrize(
    "z, label",
    [
        (0.0, "z0.00"),
        (0.049999, "z0.00"),
        (0.05, "z0.05"),
        (0.15, "z0.15"),  # 0.15 / 0.05 = 2.9999999999999996 in binary
        (0.35, "z0.35"),
        (0.7, "z0.70"),
        (2.95, "z2.95"),
        (0.1499, "z0.10"),
    ],
)
def test_redshift_label_files_edges_under_their_own_bin(z, label):
    assert redshift_label(z) == label


def test_redshift_label_of_every_bin_centre_lies_in_that_bin():
    edges = np.linspace(0, 3, 181)  # a 180-bin p(z) grid like the photo-z bundles'
    for c in 0.5 * (edges[1:] + edges[:-1]):
        lo = float(redshift_label(float(c))[1:])
        assert lo <= c < lo + 0.05 + 1e-12


def test_photoz_summary_of_a_single_bin_pdf():
    edges = np.linspace(0, 3, 181)
    pdf = np.zeros(180)
    pdf[9] = 1.0  # the bin [0.15, 0.1667)
    s = photoz_summary(pdf, edges)
    assert s["z_mode"] == pytest.approx(0.5 * (edges[9] + edges[10]), abs=1e-5)
    assert s["odds"] == 1.0 and s["z_sigma"] == 0.0
    assert redshift_label(s["z_mode"]) == "z0.15"
