import pytest
import torch
from torch import nn

from fvopt.errors import FvoptError
from fvopt.gradients import (
    STD_EPS,
    lap_merge,
    lap_normalize,
    lap_pyramid,
    make_image_grad,
    normalize_std,
    tile_bounds,
    tiled_value_and_grad,
)
from fvopt.models import FeatureModel, capture
from fvopt.objectives import Activations, parse_target


def top_band_share(g: torch.Tensor) -> float:
    """Share of spectral energy in the highest frequency band (above half the Nyquist frequency)."""
    spec = torch.fft.rfft2(g).abs().pow(2)
    fy = torch.fft.fftfreq(g.shape[-2]).abs()[:, None]
    fx = torch.fft.rfftfreq(g.shape[-1])[None, :]
    high = torch.maximum(fy, fx) > 0.25
    return float(spec[..., high].sum() / spec.sum())


def test_pyramid_merges_back_exactly_and_lapnorm_keeps_the_shape():
    g = torch.randn(2, 3, 100, 75)
    assert torch.allclose(lap_merge(lap_pyramid(g, 4)), g, atol=1e-5)
    assert lap_normalize(g).shape == g.shape


def test_lapnorm_is_scale_invariant():
    g = torch.randn(1, 3, 64, 64)
    assert torch.allclose(lap_normalize(7.5 * g), lap_normalize(g), atol=1e-5)
    assert torch.allclose(lap_normalize(1e-3 * g), lap_normalize(g), atol=1e-4)


def test_lapnorm_moves_energy_out_of_the_highest_band():
    noise = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    assert top_band_share(lap_normalize(noise)) < 0.5 * top_band_share(noise)


def test_gradient_transform_names():
    g = torch.randn(1, 3, 32, 32)
    assert torch.allclose(make_image_grad("lapnorm:levels=3")(g), lap_normalize(g, 3))
    assert torch.allclose(make_image_grad("normalize")(g).std(unbiased=False), torch.tensor(1.0), atol=1e-4)
    with pytest.raises(FvoptError, match="Did you mean: lapnorm"):
        make_image_grad("lapnrm")


def test_normalized_optimizer_grad_normalize_and_deepdream_divide_by_the_same_std():
    """One rule, the TF2 tutorial's: g / (population std + STD_EPS), per image, whatever the gradient's scale."""
    from fvopt.gradients import gradient_std

    from fvopt.dream import DreamAscent
    from fvopt.strategies.first_order import GradientAscent

    g = torch.randn(2, 3, 16, 16) * torch.tensor([1e-3, 5.0]).view(2, 1, 1, 1)
    tf2 = torch.stack([gi / (gi.std(unbiased=False) + STD_EPS) for gi in g])
    assert torch.allclose(normalize_std(g), tf2, rtol=1e-6, atol=0)
    assert torch.equal(make_image_grad("normalize")(g), normalize_std(g))
    assert torch.equal(GradientAscent("normalized").process(g), normalize_std(g))
    assert torch.equal(GradientAscent("adam").process(g), g)  # only the normalized kind rescales

    class OneGradient:  # a problem whose gradient is the fixed g of one image
        def value_and_grad(self, z):
            return torch.zeros(1), g[:1]

    ascent = DreamAscent(lr=0.01, step_norm="std")
    ascent.z = torch.full((1, 3, 16, 16), 0.5)
    ascent.step(OneGradient())
    assert torch.equal(ascent.z, (0.5 + 0.01 * g[:1] / gradient_std(g[:1])).clamp(0, 1))  # the tutorial's order
    assert torch.allclose(ascent.z, (0.5 + 0.01 * tf2[:1]).clamp(0, 1), rtol=0, atol=1e-6)


def test_tiles_are_even_and_cover_everything():
    assert tile_bounds(512, 256) == [(0, 256), (256, 512)]
    assert tile_bounds(260, 256) == [(0, 130), (130, 260)]
    assert tile_bounds(100, 256) == [(0, 100)]


def small_conv_model() -> FeatureModel:
    """Three 3x3 convolutions: a receptive field of 7 px, far inside a 32 px tile."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
    return FeatureModel(net, "tiny", input_size=32, min_size=8)


def layer_value(cap, objective):
    """Per-image objective values of a batch through an open capture."""

    def fn(x):
        return objective(Activations(cap.run(x), x, torch.zeros(x.shape[0], dtype=torch.long), 1, cap.layouts))

    return fn


def test_tiled_gradient_agrees_with_the_full_gradient_in_tile_interiors():
    model = small_conv_model()
    objective = parse_target("layer:4")
    image = torch.rand(1, 3, 96, 96)
    with capture(model, objective.layers) as cap:
        fn = layer_value(cap, objective)
        full = image.clone().requires_grad_(True)
        (g_full,) = torch.autograd.grad(fn(full).sum(), full)
        value, g_tiled, tiles = tiled_value_and_grad(fn, image, tile=32)
        whole = fn(image).detach()
    assert tiles == 9
    # d value / d pixel reads activations within the receptive-field radius (3 px), and those read
    # pixels 3 px further: the gradient is exact 6 px or more away from a seam.
    interior = torch.zeros(96, 96, dtype=torch.bool)
    for start in (0, 32, 64):
        for other in (0, 32, 64):
            interior[start + 6 : start + 26, other + 6 : other + 26] = True
    diff = (g_tiled - g_full)[..., interior].abs().max() / g_full.abs().max()
    assert diff < 1e-4
    assert torch.allclose(value, whole, rtol=0.05)


def test_tiled_gradient_rolls_back_its_random_shift():
    model = small_conv_model()
    objective = parse_target("layer:4")
    image = torch.rand(1, 3, 64, 64)
    with capture(model, objective.layers) as cap:
        fn = layer_value(cap, objective)
        _, g_rolled, _ = tiled_value_and_grad(fn, image, tile=64, generator=torch.Generator().manual_seed(1))
        full = image.clone().requires_grad_(True)
        (g_full,) = torch.autograd.grad(fn(full).sum(), full)
    # one tile, rolled: the gradient matches except within the receptive field of the wrap seam
    assert torch.nn.functional.cosine_similarity(g_rolled.flatten(), g_full.flatten(), dim=0) > 0.9


@pytest.mark.parametrize("param", ["pixel", "fft", "pyramid", "maco"])
def test_lapnorm_drives_every_parameterization_upward(lite0, param):
    from fvopt.viz import visualize

    vis = visualize(lite0, "channel:blocks.3:5", param, "adam", steps=12, size=64, grad="lapnorm", transforms="none")
    steps = vis.trace["steps"]
    assert steps[-1]["best"] > steps[0]["value"] + 1.0


def test_tiled_problem_counts_every_tile(lite0):
    from fvopt.params import make_param
    from fvopt.problem import Problem
    from fvopt.transforms import make_transforms

    problem = Problem(
        lite0, parse_target("channel:blocks.3:5"), make_param("fft", 96), make_transforms("none"), tile=48
    )
    values, grad = problem.value_and_grad(problem.init())
    assert (problem.meter.forwards, problem.meter.backwards) == (4, 4)
    assert grad.shape == (1, problem.dim) and torch.isfinite(grad).all()
    with pytest.raises(FvoptError, match="smaller than lite0's minimum"):
        Problem(lite0, parse_target("channel:blocks.3:5"), make_param("fft", 96), tile=16)
