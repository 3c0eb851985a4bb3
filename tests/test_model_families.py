"""The model families researchers visualize, with random weights: layouts read correctly, objective
values equal the activations read by hand from a forward hook, and a short optimization raises the unit.

Each row of README's "Models" table is one FAMILIES entry. The hand readings below do not use fvopt's
layout code: each family states where its units and positions are, and the test reads them itself.
"""

import pytest
import torch

from fvopt.models import load_model
from fvopt.models.info import layer_info
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.strategies import make_strategy
from fvopt.transforms import make_transforms

# (model, layer, expected layout kind, prefix tokens, unit, image size given to fvopt)
FAMILIES = [
    ("torchvision:resnet50", "layer3.0", "nchw", 0, 7, 64),
    ("torchvision:googlenet", "inception4a", "nchw", 0, 7, 64),
    ("torchvision:inception_v3", "Mixed_5b", "nchw", 0, 7, 96),
    ("torchvision:vgg16", "features.10", "nchw", 0, 7, 64),
    ("torchvision:mobilenet_v3_large", "features.6", "nchw", 0, 7, 64),
    ("torchvision:convnext_tiny", "features.3", "nchw", 0, 7, 64),
    ("torchvision:vit_b_16", "encoder.layers.encoder_layer_3.mlp.1", "tokens", 1, 7, 64),
    ("torchvision:swin_t", "features.3", "nhwc", 0, 7, 64),
    ("timm:vit_tiny_patch16_224", "blocks.6.mlp.act", "tokens", 1, 10, 64),
    ("timm:deit_tiny_distilled_patch16_224", "blocks.3.mlp.act", "tokens", 2, 10, 64),
    ("timm:convnext_tiny", "stages.1.blocks.0.mlp.fc1", "nhwc", 0, 7, 64),
    ("timm:convnext_tiny", "stages.1", "nchw", 0, 7, 64),
    ("timm:efficientnet_b0", "blocks.3", "nchw", 0, 7, 64),
    ("timm:swin_tiny_patch4_window7_224", "layers.1", "nhwc", 0, 7, 64),
    ("timm:vit_small_patch14_reg4_dinov2", "blocks.2.mlp.act", "tokens", 5, 10, 64),
    ("timm:levit_128s", "stages.1.blocks.0.mlp.act", "tokens", 0, 7, 64),  # fixed-size, found by the load probe
]
QUICK = {"torchvision:resnet50", "timm:vit_tiny_patch16_224"}
_MODELS: dict = {}


def model_of(name):
    if name not in _MODELS:
        torch.manual_seed(0)
        _MODELS[name] = load_model(name, weights="random")
    return _MODELS[name]


def hand_read(model, layer, images):
    """The layer's raw output for `images` as the network sees them (fvopt's resampling included)."""
    seen = {}
    handle = model.net.get_submodule(layer).register_forward_hook(
        lambda m, i, o: seen.__setitem__("out", o[0] if isinstance(o, (tuple, list)) else o)
    )
    with torch.no_grad():
        model(images)
    handle.remove()
    return seen["out"]


def by_hand(out, kind, prefix, unit):
    """(channel value, center neuron value) read with the layout the family is known to have."""
    if kind == "nchw":
        h, w = out.shape[2:]
        return out[:, unit].mean((1, 2)), out[:, unit, h // 2, w // 2]
    if kind == "nhwc":
        h, w = out.shape[1:3]
        return out[..., unit].mean((1, 2)), out[:, h // 2, w // 2, unit]
    patches = out[:, prefix:, unit]
    side = int(round(patches.shape[1] ** 0.5))
    return patches.mean(1), patches.reshape(-1, side, side)[:, side // 2, side // 2]


def family_params():
    return [pytest.param(*f, marks=() if f[0] in QUICK else pytest.mark.slow, id=f"{f[0]}-{f[1]}") for f in FAMILIES]


@pytest.mark.parametrize("name, layer, kind, prefix, unit, size", family_params())
def test_layout_and_objective_values_match_activations_read_by_hand(name, layer, kind, prefix, unit, size):
    model = model_of(name)
    info = layer_info(model, layer)
    assert (info.layout.kind, info.layout.prefix) == (kind, prefix)
    images = torch.rand((2, 3, size, size), generator=torch.Generator().manual_seed(1))
    channel_value, neuron_value = by_hand(hand_read(model, layer, images), kind, prefix, unit)
    for target, expected in [(f"channel:{layer}:{unit}", channel_value), (f"neuron:{layer}:{unit}", neuron_value)]:
        problem = Problem(model, parse_target(target), make_param("pixel", size), make_transforms("none"), batch=2)
        got = problem.evaluate(torch.logit(images.clamp(1e-4, 1 - 1e-4)).reshape(2, -1))
        assert torch.allclose(got, expected, rtol=1e-3, atol=1e-4), target
    if prefix:
        problem = Problem(
            model, parse_target(f"token:{layer}:{unit}:0"), make_param("pixel", size), make_transforms("none"), batch=2
        )
        got = problem.evaluate(torch.logit(images.clamp(1e-4, 1 - 1e-4)).reshape(2, -1))
        assert torch.allclose(got, hand_read(model, layer, images)[:, 0, unit], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name, layer, kind, prefix, unit, size", family_params())
def test_a_short_optimization_raises_the_unit(name, layer, kind, prefix, unit, size):
    model = model_of(name)
    # with random weights some units are dead (ReLU at 0 everywhere): take the liveliest one
    out = hand_read(model, layer, torch.rand((1, 3, size, size), generator=torch.Generator().manual_seed(2)))
    axes = {"nchw": (0, 2, 3), "nhwc": (0, 1, 2), "tokens": (0, 1)}[kind]
    unit = int(out.float().mean(axes).argmax())
    problem = Problem(model, parse_target(f"channel:{layer}:{unit}"), make_param("fft", size), make_transforms("none"))
    z0 = problem.init()
    start = float(problem.evaluate(z0))
    result = run(problem, make_strategy("adam", lr=0.1), Budget(steps=4), z0=z0)
    problem.reset()
    assert float(problem.evaluate(result.z)) > start


@pytest.mark.parametrize(
    "target, message",
    [
        (
            "channel:blocks.6.mlp.act:768",
            "unit 768 is out of range: layer blocks.6.mlp.act of timm:vit_tiny_patch16_224 has 768 features (0..767)",
        ),
        ("neuron:blocks.6.mlp.act:3:14:0", "neuron position (14, 0) is outside the 14x14 patch grid"),
        ("token:blocks.6.mlp.act:3:1", "token 1 is not a prefix token of layer blocks.6.mlp.act (1 prefix tokens)"),
        ("channel:blocks.0.attn.q_norm:0", "cannot tell"),
    ],
)
def test_transformer_targets_are_checked_before_any_pass(target, message):
    from fvopt.errors import FvoptError

    model = model_of("timm:vit_tiny_patch16_224")
    with pytest.raises(FvoptError) as err:
        Problem(model, parse_target(target), make_param("fft", 64))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_layer_returning_a_dict_is_refused_listing_what_it_returns():
    from fvopt.errors import FvoptError
    from fvopt.models import FeatureModel

    class Dicty(torch.nn.Module):
        def forward(self, x):
            return {"features": x, "extra": x.mean()}

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.split = Dicty()
            self.fc = torch.nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(self.split(self.conv(x))["features"].mean((2, 3)))

    model = FeatureModel(Net(), "dicty", input_size=32, min_size=8)
    with pytest.raises(FvoptError, match="layer split returns a dict with keys features, extra"):
        Problem(model, parse_target("channel:split:0"), make_param("fft", 32))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, target",
    [
        ("timm:swin_tiny_patch4_window7_224", "channel:layers.0.blocks.0.attn:0"),  # (windows, 49, C)
        ("timm:levit_128s", "channel:stages.0.blocks.0.mlp.ln1.bn:0"),  # BatchNorm1d on (N*L, C)
    ],
)
def test_a_layer_that_folds_windows_or_tokens_into_the_batch_is_refused(name, target):
    """Read per image, such a layer would mix the windows of one image with the images of a batch."""
    from fvopt.errors import FvoptError

    with pytest.raises(FvoptError, match="its first axis is not the batch of images") as err:
        Problem(model_of(name), parse_target(target), make_param("fft", 64))
    assert "\n" not in str(err.value)
