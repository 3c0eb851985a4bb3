import numpy as np
import pytest
import torch
from PIL import Image

from fvopt.cli import main
from fvopt.dream import dream, octave_sizes, zoom_frames
from fvopt.errors import FvoptError
from fvopt.evaluate import score_images
from fvopt.objectives import parse_target


def test_dream_keeps_the_size_changes_the_image_and_raises_the_layer(lite0):
    g = torch.Generator().manual_seed(0)  # a fixed photo: the test must not depend on the draw
    photo = torch.rand((1, 3, 1, 1), generator=g).expand(1, 3, 90, 130).clone() * 0.5 \
        + 0.25 * torch.rand((1, 3, 90, 130), generator=g)
    result = dream(photo, lite0, layers="blocks.3", octaves=2, steps=4, tile=64, progress=False)
    assert result.image.shape == photo.shape
    assert (result.image - photo).abs().mean() > 0.02
    assert 0 <= float(result.image.min()) and float(result.image.max()) <= 1
    objective = parse_target("layer:blocks.3")
    before, after = (float(score_images(lite0, objective, x)["value"]) for x in (photo, result.image))
    assert after > 1.25 * before
    assert len(result.octaves) == 2 and result.octaves[0].shape[-2:] == (64, 93)
    assert result.forwards == result.backwards > 8  # tiles counted per pass


def test_dream_with_lapnorm_and_a_channel_target(lite0):
    photo = torch.rand((1, 3, 80, 80), generator=torch.Generator().manual_seed(1))
    result = dream(photo, lite0, target="channel:blocks.4:10", octaves=1, steps=3, grad="lapnorm", progress=False)
    assert result.trace[-1]["value"] > result.trace[0]["value"]


def test_octaves_that_shrink_below_the_model_minimum_are_refused():
    assert octave_sizes(300, 451, 4, 1.4, 32)[0] == (109, 164)
    with pytest.raises(FvoptError, match="use fewer octaves"):
        octave_sizes(100, 100, 6, 1.4, 32)


def test_zoom_frames_have_the_size_of_the_first():
    frames = zoom_frames(torch.rand(1, 3, 40, 60), 3, 1.1, progress=False)
    assert len(frames) == 3 and all(f.shape == (1, 3, 40, 60) for f in frames)


def test_dream_command_writes_the_input_size(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((70, 100, 3)) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out.png"
    assert main(["dream", str(src), "--octaves", "2", "--steps", "2", "--out", str(out), "--quiet"]) == 0
    assert Image.open(out).size == (100, 70)


@pytest.mark.parametrize("name, content", [("missing.png", None), ("broken.png", b"not an image")])
def test_missing_or_unreadable_input_is_exit_code_2(tmp_path, capsys, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main(["dream", str(path), "--out", str(tmp_path / "o.png"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "fvopt: error:" in err and name in err
