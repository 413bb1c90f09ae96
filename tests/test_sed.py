"""Colours, extinction and cosmology used by the photo-z and morphology mocks."""

import numpy as np
import pytest

from training.simulate import sed


def test_elliptical_g_minus_r_rises_with_redshift():
    z = np.linspace(0.0, 0.4, 41)
    g_r = sed.colour_term("E", "g", z) - sed.colour_term("E", "r", z)
    assert np.all(np.diff(g_r) > 0)
    assert 0.6 < g_r[0] < 0.9 and g_r[-1] > 1.5  # CWW E: g−r ≈ 0.75 at rest, ≈ 1.7 at z = 0.4


def test_late_types_are_bluer_than_ellipticals():
    for z in (0.05, 0.2, 0.4):
        colours = [
            sed.apparent_mag(t, "g", z, -21) - sed.apparent_mag(t, "r", z, -21)
            for t in sed.TEMPLATES
        ]
        assert colours == sorted(colours, reverse=True)  # E > Sbc > Scd > Im


def test_extinction_is_larger_in_bluer_bands_and_linear_in_ebv():
    a_u, a_g, a_z = (sed.extinction_mag(0.1, w) for w in (368.0, 486.0, 870.0))
    assert a_u > a_g > a_z > 0
    assert sed.extinction_mag(0.2, 486.0) == pytest.approx(2 * a_g)
    assert sed.extinction_mag(1.0, 551.0) == pytest.approx(3.1, rel=0.05)  # A_V = R_V E(B−V)


def test_fainter_with_distance():
    assert sed.apparent_mag("Sbc", "r", 0.2, -21) > sed.apparent_mag("Sbc", "r", 0.1, -21) + 1.4


def test_out_of_range_redshift_is_refused():
    with pytest.raises(ValueError, match="redshift outside"):
        sed.colour_term("E", "g", 1.5)


def test_template_mix_lies_between_its_templates():
    z = 0.2
    pure = [sed.colour_term(t, "g", z) - sed.colour_term(t, "r", z) for t in ("Sbc", "Scd")]
    mixed = sed.mixed_colour_term(("Sbc", "Scd"), (0.5, 0.5), "g", z) - sed.mixed_colour_term(
        ("Sbc", "Scd"), (0.5, 0.5), "r", z
    )
    assert min(pure) < mixed < max(pure)
    assert sed.mixed_colour_term(("Sbc", "Scd"), (1.0, 0.0), "i", z) == pytest.approx(
        float(sed.colour_term("Sbc", "i", z))
    )


def test_internal_dust_reddens_and_moves_with_redshift():
    # Calzetti: A_V = 4.05 E(B−V) at 551 nm rest; a band sees bluer rest light at higher z
    assert sed.internal_dust_mag(0.1, 551.0, 0.0) == pytest.approx(0.405, rel=0.03)
    assert sed.internal_dust_mag(0.1, 486.0, 0.0) > sed.internal_dust_mag(0.1, 625.0, 0.0)
    assert sed.internal_dust_mag(0.1, 625.0, 0.3) > sed.internal_dust_mag(0.1, 625.0, 0.0)
