"""The rough edges a new user met (issue 22), each refused before any work in one line."""

import pytest
import torch

from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.io.images import check_image_path, check_writable
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.problem import Problem
from fvopt.strategies import make_strategy
from fvopt.transforms.sizes import output_range
from fvopt.transforms import make_transforms

from tiny import tiny_model


def test_the_sizes_a_chain_can_output_over_all_draws():
    r = output_range(make_transforms("pad:4,jitter:6,scale:0.5-2"), (32, 32))  # scale keeps the size
    assert r.smallest == r.largest == (34, 34) and r.peak == 40
    r = output_range(make_transforms("lucent"), (32, 32))  # Lucent's exact sizes: 32+24-8, x0.9..1.1, -4
    assert r.smallest == (39, 39) and r.largest == (49, 49) and r.peak == 56
    assert output_range(make_transforms("default"), (64, 64)).largest == (64, 64)  # keeps the size
    assert min(output_range(make_transforms("jitter:40"), (32, 32)).smallest) < 1


@pytest.mark.parametrize(
    "chain, message",
    [
        ("jitter:120", "can shrink a 128 px image to 8 px, below tiny's minimum input of 16 px"),
        ("jitter:140", "shrink a 128 px image to nothing"),
    ],
)
def test_a_chain_the_network_cannot_take_is_refused_before_any_pass(chain, message):
    net = tiny_model()
    net.min_size = 16
    calls = []
    net.net.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(FvoptError, match=message) as err:
        Problem(net, parse_target("channel:conv2:0"), make_param("fft", 128), make_transforms(chain))
    assert "\n" not in str(err.value) and not calls


def test_a_refused_chain_scaled_for_a_small_image_is_named_as_written_and_as_scaled():
    net = tiny_model()
    net.min_size = 16
    with pytest.raises(
        FvoptError,
        match=r"transforms 'jitter:100' \(scaled to 'jitter:25' for this image size\) "
        r"can shrink a 32 px image to 7 px",
    ):
        Problem(net, parse_target("channel:conv2:0"), make_param("fft", 32), make_transforms("jitter:100"))


def test_a_chain_that_grows_past_memory_is_refused_by_the_estimate(monkeypatch):
    import fvopt.runtime.memory

    monkeypatch.setattr(fvopt.runtime.memory, "available_bytes", lambda device: 2**28)
    with pytest.raises(FvoptError, match="the transforms grow each image to 8320x8320 px"):
        Problem(tiny_model(), parse_target("channel:conv2:0"), make_param("fft", 128), make_transforms("pad:4096"))
    Problem(tiny_model(), parse_target("channel:conv2:0"), make_param("fft", 128), make_transforms("pad:16"))


def test_transparency_needs_a_format_with_alpha_and_a_missing_extension_suggests_png(tmp_path):
    with pytest.raises(
        FvoptError, match=r"'\.jpg', which cannot be written as an image with transparency \(RGBA\): use \.png"
    ):
        check_image_path(tmp_path / "a.jpg", "--transparency", alpha=True)
    with pytest.raises(FvoptError, match=r"no extension.*use \.png \(e\.g\. '.*noext\.png'\)"):
        check_image_path(tmp_path / "noext", "--out")
    check_image_path(tmp_path / "a.png", "--transparency", alpha=True)


def test_a_parent_that_is_a_file_says_not_a_directory(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FvoptError, match="'.*f' is a file, not a directory"):
        check_writable(tmp_path / "f" / "sub" / "x.png", "--out")


def test_transforms_that_are_not_transforms_are_refused_up_front():
    with pytest.raises(FvoptError, match="transforms must be a name .* not int '123'"):
        make_transforms(123)


@pytest.mark.parametrize(
    "args, message",
    [
        (["viz", "--render-size", "abc"], "or 'lucent'"),
        (["viz", "--max-batch", "abc"], "or 'auto'"),
    ],
)
def test_flag_messages_name_their_word_values(args, message, capsys):
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err


def test_torch_optimizers_record_and_say_where_their_learning_rate_comes_from():
    default, given = make_strategy("torch:NAdam"), make_strategy("torch:NAdam", lr=0.05)
    assert default.status()["lr_source"] == "torch's default" and given.status()["lr_source"] == "given"
    assert "torch's default lr 0.002" in default.lr_note() and given.lr_note() is None


def test_a_class_target_on_a_network_without_class_scores_is_refused_in_one_line():
    import fvopt

    conv_only = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))  # output (N, 4, H, W): no class axis
    with pytest.raises(FvoptError, match=r"output has shape \(1, 4, 222, 222\): use channel:LAYER:INDEX") as err:
        fvopt.visualize(conv_only, "class:2", steps=2, size=64, progress=False)
    assert "\n" not in str(err.value)
