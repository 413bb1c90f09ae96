"""The architectures against their seed papers' tables, and the interface the rest relies on.

One generic test class runs over ``CASES``, one row per architecture: adding a model means adding
a row. A row holds the per-layer parameter counts printed in the seed's table (keyed by our module
path), the printed total, and — where we cannot match the printed total — the difference we
expect and why. Counts are trainable parameters, plus the batch-norm running mean and variance
where the seed's table was made by Keras, which counts those as (non-trainable) parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from training.models import ARCHITECTURES, SkyNet, build


@dataclass(frozen=True)
class Case:
    """One architecture and what its seed paper says about it."""

    name: str  # registry name
    seed: str  # where the expected numbers come from
    input_shape: tuple[int, int, int]
    latent_dim: int
    num_outputs: int
    layers: dict[str, int]  # module path → parameter count in the seed's table
    printed_total: int  # the total the seed prints
    trainable: int  # our exact trainable count
    expected_difference: int = 0  # ours − printed_total, in the seed's way of counting
    reason: str = ""  # why expected_difference is not zero, or how a row was obtained
    keras_bn: bool = False  # the seed counts BN running mean and variance as parameters
    takes_ebv: bool = False
    # module path ("" = the whole model) → constant every conv/dense bias under it starts at
    bias_init: dict[str, float] = field(default_factory=dict)
    has_l2_penalty: bool = False
    notes: str = field(default="", compare=False)


def _inception_cell(prefix: str, s1: int, s2_0: int, s2_1: int | None, s2_2: int, total: int):
    rows = {f"{prefix}.s1_0": s1, f"{prefix}.s2_0": s2_0, f"{prefix}.s1_2": s1}
    if s2_1 is not None:
        rows |= {f"{prefix}.s1_1": s1, f"{prefix}.s2_1": s2_1}
    return rows | {f"{prefix}.s2_2": s2_2, prefix: total}


CASES = [
    Case(
        name="convnet",
        seed="002 Table 1",
        input_shape=(3, 100, 100),
        latent_dim=256,
        num_outputs=3,
        layers={
            "conv1": 608,
            "bn1": 16,
            "conv2": 1168,
            "bn2": 32,
            "conv3": 4640,
            "bn3": 64,
            "bottleneck": 1_179_904,
            "fc": 771,
        },
        printed_total=1_186_432,
        trainable=1_187_203,
        expected_difference=771,
        reason="the printed total leaves out the output layer (256·3 + 3 = 771); "
        "the table's rows sum to 1,187,203",
        bias_init={"bottleneck": 0.0, "fc": 0.0},
    ),
    Case(
        name="resnet18",
        seed="002 §3.1 (≈11.2M); layers of He et al. 2016 Table 1, counted as "
        "torchvision's resnet18 (11,689,512 with its 1000-class fc of 513,000)",
        input_shape=(3, 100, 100),
        latent_dim=256,
        num_outputs=3,
        layers={
            "conv1": 9408,
            "bn1": 128,
            "layer1": 147_968,
            "layer2": 525_568,
            "layer3": 2_099_712,
            "layer4": 8_393_728,
            "bottleneck": 131_328,
            "fc": 771,
        },
        printed_total=11_200_000,
        trainable=11_308_611,
        expected_difference=108_611,
        reason="002 prints only '≈11.2M', the backbone alone (11,176,512); its two dense "
        "layers (512→256, 256→3) add 132,099",
        bias_init={"bottleneck": 0.0, "fc": 0.0},
    ),
    Case(
        name="deepshadows",
        seed="004 Table 1 (Keras)",
        input_shape=(3, 64, 64),
        latent_dim=1024,
        num_outputs=2,
        layers={
            "conv1": 448,
            "bn1": 64,
            "conv2": 4640,
            "bn2": 128,
            "conv3": 18_496,
            "bn3": 256,
            "fc1": 4_195_328,
            "out": 1025,
        },
        printed_total=4_220_385,
        trainable=4_220_161,
        keras_bn=True,
        bias_init={"": 0.0},
        has_l2_penalty=True,
        notes="Keras' 4 per BN channel = our 2 trainable + 2 running statistics; the 224 "
        "running statistics are why trainable is 4,220,161",
    ),
    Case(
        name="inception",
        seed="003 Table A1",
        input_shape=(5, 64, 64),
        latent_dim=1096,
        num_outputs=180,
        layers={
            "conv0": 8128,
            **_inception_cell("i0", 3168, 27_776, 76_928, 4224, 118_432),
            **_inception_cell("i1", 15_488, 53_176, 147_384, 22_264, 269_288),
            **_inception_cell("i2", 31_464, 106_240, 294_656, 43_776, 539_064),
            **_inception_cell("i3", 43_976, 106_240, 294_656, 61_184, 594_008),
            **_inception_cell("i4", 43_976, 106_240, None, 61_184, 255_376),
            "fc0": 24_412_304,
            "fc1": 1_202_312,
            "fc2": 197_460,
        },
        printed_total=27_596_372,
        trainable=27_596_372,
        takes_ebv=True,
        bias_init={"": 0.1},
    ),
    Case(
        name="simple_cnn",
        seed="003 Table A2",
        input_shape=(5, 64, 64),
        latent_dim=1024,
        num_outputs=180,
        layers={
            "conv0": 8064,
            "conv1": 53_084,
            "conv2": 106_112,
            "fc0": 13_109_248,
            # Not printed: the table stops at fc0. 1024·180 + 180, which is exactly what the
            # printed rows leave of the printed total.
            "fc1": 184_500,
        },
        printed_total=13_461_008,
        trainable=13_461_008,
        takes_ebv=True,
        bias_init={"": 0.1},
    ),
]

BN_STATISTICS = ("running_mean", "running_var")


def count(module: nn.Module, keras_bn: bool = False) -> int:
    """Trainable parameters of ``module``, plus BN running mean/var if ``keras_bn``."""
    n = sum(p.numel() for p in module.parameters() if p.requires_grad)
    if keras_bn:
        n += sum(b.numel() for k, b in module.named_buffers() if k.endswith(BN_STATISTICS))
    return n


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a small, shared CI machine, OpenMP threads competing with other
    jobs made these tests several times slower, not faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def case(request) -> Case:
    return request.param


@pytest.fixture(scope="module")
def model(case: Case) -> SkyNet:
    """Each architecture built once per module, seeded, in eval mode."""
    torch.manual_seed(0)
    return build(case.name).eval()


@pytest.fixture(scope="module")
def inputs(model: SkyNet) -> tuple[torch.Tensor, ...]:
    return model.example_inputs(n=2, seed=1)


@pytest.fixture(scope="module")
def outputs(model: SkyNet, inputs) -> dict[str, torch.Tensor]:
    """Computed once per architecture, since the big ones are slow on CPU: latent [2, D] and
    logits [2, K] of ``inputs``, and logits [1, K] of its first sample alone."""
    with torch.no_grad():
        return {
            "latent": model.features(*inputs),
            "logits": model(*inputs),
            "first": model(*(t[:1] for t in inputs)),
        }


def test_every_architecture_has_a_row():
    assert sorted(ARCHITECTURES) == sorted(c.name for c in CASES)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="Unknown architecture 'vgg16'; known: convnet"):
        build("vgg16")


class TestArchitecture:
    def test_layer_counts_match_the_seed_table(self, case: Case, model: SkyNet):
        ours = {path: count(model.get_submodule(path), case.keras_bn) for path in case.layers}
        assert ours == case.layers

    def test_rows_sum_to_our_total(self, case: Case, model: SkyNet):
        # Rows nested in another row (Inception's branches inside a cell row) are not added again.
        top = [p for p in case.layers if not any(p.startswith(q + ".") for q in case.layers)]
        assert sum(case.layers[p] for p in top) == count(model, case.keras_bn)

    def test_total_against_the_printed_one(self, case: Case, model: SkyNet):
        assert count(model, case.keras_bn) - case.printed_total == case.expected_difference
        assert bool(case.reason) == (case.expected_difference != 0), "a difference needs a reason"

    def test_trainable_count(self, case: Case, model: SkyNet):
        assert count(model) == case.trainable

    def test_interface_attributes(self, case: Case, model: SkyNet):
        assert isinstance(model, SkyNet)
        assert model.input_shape == case.input_shape
        assert model.latent_dim == case.latent_dim
        assert model.num_outputs == case.num_outputs
        assert model.takes_ebv == case.takes_ebv
        assert len(inputs := model.example_inputs()) == (2 if case.takes_ebv else 1)
        assert inputs[0].shape == (2, *case.input_shape)

    def test_shapes_and_forward_is_head_of_features(self, case: Case, model: SkyNet, outputs):
        latent, logits = outputs["latent"], outputs["logits"]
        assert latent.shape == (2, case.latent_dim)
        assert logits.shape == (2, case.num_outputs)
        assert torch.isfinite(logits).all()
        with torch.no_grad():
            torch.testing.assert_close(logits, model.head(latent), rtol=0, atol=0)

    def test_samples_are_independent_in_eval_mode(self, outputs):
        # The batch axis is dynamic in the bundle; one cutout must not change another's answer.
        torch.testing.assert_close(outputs["first"], outputs["logits"][:1], rtol=1e-4, atol=1e-5)

    @torch.no_grad()
    def test_probabilities_are_softmax_of_logits(self, model: SkyNet, inputs, outputs):
        probs = model.probabilities(*(t[:1] for t in inputs))
        torch.testing.assert_close(probs, torch.softmax(outputs["first"], dim=1))
        torch.testing.assert_close(probs.sum(dim=1), torch.ones(1))

    def test_ebv_is_an_input_of_photoz_networks_only(self, case: Case, model: SkyNet, inputs):
        image = torch.zeros(2, *case.input_shape)
        # Both fail on the call signature, before any computation.
        with pytest.raises(TypeError):
            if case.takes_ebv:
                model.features(image)
            else:
                model.features(image, torch.zeros(2, 1))

    def test_gradients_reach_every_parameter_and_input(self, model: SkyNet, inputs):
        # Training needs every parameter in the graph; the PGD/FGSM canaries need the gradient
        # with respect to the image; and for photo-z, a non-zero gradient with respect to E(B−V)
        # shows that the latent (all the head sees) depends on it. One sample in eval mode and
        # autograd.grad, so that the shared model's .grad and batch-norm statistics stay untouched.
        leaves = [t[:1].clone().requires_grad_() for t in inputs]
        names, params = zip(*model.named_parameters(), strict=True)
        grads = torch.autograd.grad(
            model(*leaves).square().sum(), [*params, *leaves], allow_unused=True
        )
        assert [n for n, g in zip(names, grads, strict=False) if g is None] == []
        assert all(g.abs().sum() > 0 for g in grads[len(params) :])

    def test_initial_biases(self, case: Case, model: SkyNet):
        assert case.bias_init, "say how the biases start"
        for path, value in case.bias_init.items():
            layers = [
                m
                for m in model.get_submodule(path).modules()
                if isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None
            ]
            assert layers and all(torch.all(m.bias == value) for m in layers), path

    def test_l2_penalty(self, case: Case, model: SkyNet):
        penalty = model.l2_penalty()
        assert penalty.shape == ()
        assert (penalty > 0).item() == case.has_l2_penalty


@torch.no_grad()
def test_deepshadows_head_is_the_papers_sigmoid_unit():
    """Logits (0, z): softmax gives (1 − σ(z), σ(z)), the paper's single sigmoid output."""
    torch.manual_seed(0)
    net = build("deepshadows").eval()
    latent = net.features(*net.example_inputs())
    logits = net.head(latent)
    z = net.out(latent)[:, 0]
    assert torch.all(logits[:, 0] == 0)
    torch.testing.assert_close(net.probabilities(*net.example_inputs())[:, 1], torch.sigmoid(z))
