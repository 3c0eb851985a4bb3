import pytest
import torch

from fvopt import objectives as obj
from fvopt.errors import FvoptError
from fvopt.models.layouts import Layout
from fvopt.objectives import Activations, parse_target, validate


def acts_for(layer_act, logits=None, images=None, group=None, layout=None):
    """Activations of an NCHW layer 'L' (or of the given layout), as models.capture records them."""
    n = layer_act.shape[0]
    acts = {"L": layer_act}
    if logits is not None:
        acts["logits"] = logits
    images = images if images is not None else torch.full((n, 3, 8, 8), 0.5)
    layout = layout or (
        Layout("nchw", layer_act.shape[1], tuple(layer_act.shape[2:]))
        if layer_act.dim() == 4
        else Layout("vector", layer_act.shape[1])
    )
    return Activations(acts, images, torch.arange(n) % (group or n), group or n, {"L": layout})


def test_channel_is_spatial_mean_and_per_image():
    a = torch.randn(3, 5, 4, 4)
    v = obj.channel("L", 2)(acts_for(a))
    assert v.shape == (3,)
    assert torch.allclose(v, a[:, 2].mean((1, 2)))


def test_index_list_gives_one_target_per_slot():
    a = torch.randn(4, 5, 4, 4)
    o = obj.channel("L", [0, 1, 2, 3])
    assert o.slots == 4
    assert torch.allclose(o(acts_for(a)), torch.stack([a[i, i].mean() for i in range(4)]))


def test_neuron_defaults_to_center_and_layer_is_mean_square():
    a = torch.randn(2, 3, 5, 5)
    assert torch.allclose(obj.neuron("L", 1)(acts_for(a)), a[:, 1, 2, 2])
    assert torch.allclose(obj.neuron("L", 1, 0, 4)(acts_for(a)), a[:, 1, 0, 4])
    assert torch.allclose(obj.layer("L")(acts_for(a)), a.pow(2).mean((1, 2, 3)))


def test_algebra_combines_values_and_layers():
    a = torch.randn(2, 3, 4, 4)
    logits = torch.randn(2, 10)
    o = obj.channel("L", 0) + 0.5 * obj.class_logit(7) - obj.l2()
    assert o.layers == {"L", "logits"}
    expected = a[:, 0].mean((1, 2)) + 0.5 * logits[:, 7] - 0.0
    assert torch.allclose(o(acts_for(a, logits)), expected, atol=1e-5)


def test_direction_projects_on_unit_vector():
    a = torch.randn(2, 3, 4, 4)
    v = obj.direction("L", [3.0, 0.0, 4.0])(acts_for(a))
    assert torch.allclose(v, (0.6 * a[:, 0] + 0.8 * a[:, 2]).mean((1, 2)), atol=1e-6)


def test_regularizers_are_zero_at_gray_and_positive_elsewhere():
    a = torch.randn(2, 3, 4, 4)
    gray = acts_for(a)
    noisy = acts_for(a, images=torch.rand(2, 3, 8, 8))
    for reg in (obj.l1(), obj.l2(), obj.total_variation()):
        assert torch.allclose(reg(gray), torch.zeros(2), atol=1e-5)
        assert (reg(noisy) > 0.01).all()


def test_diversity_is_high_for_identical_images_and_stays_in_group():
    same = torch.ones(4, 3, 4, 4)
    assert torch.allclose(obj.diversity("L")(acts_for(same, group=2)), torch.ones(4), atol=1e-5)
    different = torch.zeros(2, 3, 4, 4)
    different[0, 0] = 1
    different[1, 1] = 1
    assert torch.allclose(obj.diversity("L")(acts_for(different)), torch.zeros(2), atol=1e-5)


@pytest.mark.parametrize(
    "text, name, slots, layers",
    [
        ("class:8", "class:8", 1, {"logits"}),
        ("channel:blocks.4:10", "channel:blocks.4:10", 1, {"blocks.4"}),
        ("neuron:blocks.4:10", "neuron:blocks.4:10", 1, {"blocks.4"}),
        ("neuron:blocks.4:10:3:3", "neuron:blocks.4:10:3:3", 1, {"blocks.4"}),
        ("layer:blocks.4", "layer:blocks.4", 1, {"blocks.4"}),
        ("channel:blocks.4:0-63", "channel:blocks.4:0-63", 64, {"blocks.4"}),
        (
            "channel:blocks.4:10+0.5*channel:blocks.5:3",
            "channel:blocks.4:10 + 0.5*channel:blocks.5:3",
            1,
            {"blocks.4", "blocks.5"},
        ),
        ("class:8-0.05*tv", "class:8 + -0.05*tv", 1, {"logits"}),
        ("class:1,5,9", "class:1,5,9", 3, {"logits"}),
    ],
)
def test_target_strings(text, name, slots, layers):
    o = parse_target(text)
    assert (o.name, o.slots, set(o.layers)) == (name, slots, layers)


def test_parsed_sum_has_the_right_value():
    a = torch.randn(2, 4, 3, 3)
    o = parse_target("channel:L:1-2*channel:L:3")
    assert torch.allclose(o(acts_for(a)), a[:, 1].mean((1, 2)) - 2 * a[:, 3].mean((1, 2)), atol=1e-6)


@pytest.mark.parametrize(
    "text, message",
    [
        ("chanel:blocks.4:1", "Did you mean: channel"),
        ("channel:blocks.4", "use channel:LAYER:INDEX"),
        ("channel:blocks.4:x", "bad channel 'x'"),
        ("channel:blocks.4:9-3", "empty channel range"),
        ("", "empty target"),
    ],
)
def test_malformed_target_strings(text, message):
    with pytest.raises(FvoptError, match=message):
        parse_target(text)


def test_validation_against_the_model(lite0):
    validate(parse_target("channel:blocks.4:111"), lite0, 64)
    with pytest.raises(FvoptError, match="layer blocks.4 of lite0 has 112 channels"):
        validate(parse_target("channel:blocks.4:112"), lite0, 64)
    with pytest.raises(FvoptError, match="1000 classes"):
        validate(parse_target("class:1000"), lite0, 64)
    with pytest.raises(FvoptError, match="Did you mean"):
        validate(parse_target("layer:blocks.44"), lite0, 64)
