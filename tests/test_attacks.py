"""FGSM and PGD (003 eqs. 5–9): one table of attack settings, one set of properties for each."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from training.attacks import fgsm, pgd
from training.losses import per_sample_cross_entropy


class _Tiny(nn.Module):
    """A small conv classifier [N, 3, 16, 16] → 3 logits; ``ebv`` optional second input."""

    def __init__(self, takes_ebv: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 16 * 16 + int(takes_ebv), 3)

    def forward(self, x, *ebv):
        h = torch.relu(self.conv(x)).flatten(1)
        return self.fc(torch.cat([h, *ebv], 1))


class _Blind(nn.Module):
    """Ignores its input: no attack can change its answer."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.3, 1.0, -0.5]))

    def forward(self, x, *ebv):
        return self.bias.expand(len(x), 3) + 0.0 * x.flatten(1).sum(1, keepdim=True)


# name → (attack(model, x, target, eps, **kw), norm of the ε-ball)
ATTACKS = {
    "fgsm": (fgsm, "linf"),
    "pgd_linf": (functools.partial(pgd, alpha=0.01, n_iter=10, norm="linf"), "linf"),
    "pgd_linf_random_start": (
        functools.partial(
            pgd,
            alpha=0.01,
            n_iter=10,
            norm="linf",
            random_start=True,
            generator=torch.Generator().manual_seed(1),
        ),  # fmt: skip
        "linf",
    ),
    "pgd_l2": (functools.partial(pgd, alpha=0.2, n_iter=10, norm="l2"), "l2"),
}
EPS = {"linf": 0.05, "l2": 1.0}


def _data(n: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, 16, 16), generator=g), torch.randint(3, (n,), generator=g)


def _norm(d: torch.Tensor, norm: str) -> torch.Tensor:
    return d.flatten(1).abs().amax(1) if norm == "linf" else d.flatten(1).norm(dim=1)


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("bounds", [None, (0.0, 1.0)])
def test_inside_ball_and_range(name, bounds):
    attack, norm = ATTACKS[name]
    x, y = _data()
    adv = attack(_Tiny(), x, y, EPS[norm], loss_fn=per_sample_cross_entropy, bounds=bounds)
    assert adv.shape == x.shape and not adv.requires_grad
    assert bool((_norm(adv - x, norm) <= EPS[norm] * (1 + 1e-5)).all())
    if bounds is not None:
        assert adv.min() >= 0.0 and adv.max() <= 1.0


@pytest.mark.parametrize("name", ATTACKS)
def test_untargeted_raises_loss_targeted_lowers_it(name):
    attack, norm = ATTACKS[name]
    model = _Tiny()
    x, y = _data()
    base = per_sample_cross_entropy(model(x), y).mean()
    adv = attack(model, x, y, EPS[norm], loss_fn=per_sample_cross_entropy)
    assert per_sample_cross_entropy(model(adv), y).mean() > base
    wanted = (y + 1) % 3
    before = per_sample_cross_entropy(model(x), wanted).mean()
    adv_t = attack(model, x, wanted, EPS[norm], loss_fn=per_sample_cross_entropy, targeted=True)
    assert per_sample_cross_entropy(model(adv_t), wanted).mean() < before


@pytest.mark.parametrize("name", ATTACKS)
def test_second_input_is_passed_and_left_alone(name):
    attack, norm = ATTACKS[name]
    model = _Tiny(takes_ebv=True)
    x, y = _data()
    ebv = torch.full((len(x), 1), 0.05)
    adv = attack(model, x, y, EPS[norm], loss_fn=per_sample_cross_entropy, extra=(ebv,))
    assert (
        per_sample_cross_entropy(model(adv, ebv), y).mean()
        > per_sample_cross_entropy(model(x, ebv), y).mean()
    )
    assert bool((ebv == 0.05).all())


@pytest.mark.parametrize("name", ATTACKS)
def test_blind_model_never_flips(name):
    attack, norm = ATTACKS[name]
    model = _Blind()
    x, y = _data()
    adv = attack(model, x, y, 10 * EPS[norm], loss_fn=per_sample_cross_entropy)
    assert torch.equal(model(adv).argmax(1), model(x).argmax(1))


def test_strong_pgd_flips_and_the_model_confirms():
    """With a large budget PGD flips most answers; each claimed flip is re-checked on the model."""
    model = _Tiny()
    x, _ = _data(64)
    y = model(x).argmax(1)
    adv = pgd(model, x, y, 0.5, 0.05, 40, per_sample_cross_entropy, bounds=(0.0, 1.0))
    flipped = model(adv).argmax(1) != y
    assert flipped.float().mean() > 0.8


def test_bad_arguments():
    x, y = _data(4)
    with pytest.raises(ValueError, match="norm must be 'linf' or 'l2'"):
        pgd(_Tiny(), x, y, 0.1, 0.01, 5, per_sample_cross_entropy, norm="l1")
    with pytest.raises(ValueError, match="need eps >= 0, alpha > 0, n_iter >= 1"):
        pgd(_Tiny(), x, y, 0.1, 0.01, 0, per_sample_cross_entropy)
    with pytest.raises(ValueError, match="eps must be non-negative"):
        fgsm(_Tiny(), x, y, -0.1, per_sample_cross_entropy)
