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
    photo = torch.rand((1, 3, 1, 1), generator=g).expand(1, 3, 90, 130).clone() * 0.5 + 0.25 * torch.rand(
        (1, 3, 90, 130), generator=g
    )
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


# -- DeepDream schemes by name (2015, tf2, matlab) ---------------------------------------------

from dataclasses import replace  # noqa: E402

from fvopt.dream import SCHEMES, resolve_scheme, scheme_for_model, scheme_octave_sizes  # noqa: E402
from fvopt.gradients import tile_bounds  # noqa: E402
from fvopt.io.images import to_uint8  # noqa: E402


def _flat_photo(height: int = 90, width: int = 130) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand((1, 3, 1, 1), generator=g).expand(1, 3, height, width).clone() * 0.5 + 0.25 * torch.rand(
        (1, 3, height, width), generator=g
    )


def _sha(image: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(to_uint8(image).tobytes()).hexdigest()


def test_the_2015_scheme_is_the_default_and_reproduces_the_images_from_before_schemes(lite0):
    """The default dream, `scheme="2015"` and the 2015 constants spelled out by hand give the same
    8-bit image, value for value. (Hashes of the images were pinned here once; they differ between CPU
    builds of torch, so the test compares the three spellings within one machine instead.)"""
    photo = _flat_photo()
    spelled = {"octaves": 4, "octave_scale": 1.4, "lr": 0.01, "tile": 512}
    runs = {}
    for name, scheme in (("default", {}), ("2015", {"scheme": "2015"}), ("by hand", spelled)):
        plain = dream(photo, lite0, steps=3, progress=False, **scheme)
        assert plain.forwards == 12
        lap = dream(photo, lite0, steps=2, grad="lapnorm", seed=5, progress=False, **scheme)
        runs[name] = (_sha(plain.image), _sha(lap.image))
        if name == "2015":
            kept = plain
    assert runs["default"] == runs["2015"] == runs["by hand"]
    assert runs["default"][0] != runs["default"][1]
    plain = kept
    assert plain.settings["scheme"] == "2015" and plain.settings["steps"] == 3
    assert {k: plain.settings[k] for k in ("octaves", "octave_scale", "lr", "tile", "step_norm", "objective")} == {
        "octaves": 4,
        "octave_scale": 1.4,
        "lr": 0.01,
        "tile": 512,
        "step_norm": "mean_abs",
        "objective": "l2",
    }


@pytest.mark.parametrize("name", ["2015", "tf2", "matlab"])
def test_each_scheme_runs_and_records_every_constant_it_ran_with(lite0, name):
    photo = _flat_photo(90, 120)
    result = dream(photo, lite0, layers="blocks.3", steps=2, progress=False, scheme=name)
    ran = scheme_for_model(replace(SCHEMES[name], steps=2), lite0)
    assert result.settings == {
        **ran.record(),
        "objective_name": result.settings["objective_name"],
        "grad": None,
        "seed": 0,
        "size": None,  # the photo's own size (no --size)
        "octave_sizes": [list(s) for s in scheme_octave_sizes(90, 120, ran, 32)],
    }
    assert result.image.shape == photo.shape and (result.image - photo).abs().mean() > 0.005
    sizes = [tuple(o.shape[-2:]) for o in result.octaves]
    assert sizes == [tuple(s) for s in result.settings["octave_sizes"]] and len(sizes) == ran.octaves
    tiles = sum(len(tile_bounds(h, ran.tile)) * len(tile_bounds(w, ran.tile)) for h, w in sizes)
    assert result.forwards == result.backwards == 2 * tiles  # every tile is one pass
    expected_objective = {"l2": "layer:blocks.3", "mean": "layer_mean:blocks.3"}[ran.objective]
    assert result.settings["objective_name"] == expected_objective


def test_tf2_dreams_octaves_above_the_input_size_and_matlab_tiles_at_the_network_input(lite0):
    assert scheme_octave_sizes(100, 100, SCHEMES["tf2"], 32) == [
        (59, 59),
        (77, 77),
        (100, 100),
        (130, 130),
        (169, 169),
    ]  # 1.3 ** -2 .. 1.3 ** 2
    tf2 = SCHEMES["tf2"]
    assert (tf2.octave_scale, tf2.steps, tf2.step_norm, tf2.objective, tf2.exponents()) == (
        1.3,
        100,
        "std",
        "mean",
        [-2, -1, 0, 1, 2],
    )
    matlab = scheme_for_model(SCHEMES["matlab"], lite0)
    assert SCHEMES["matlab"].tile is None and matlab.tile == lite0.input_size == 224
    assert (matlab.octaves, matlab.octave_scale, matlab.steps, matlab.lapnorm_levels) == (3, 1.4, 10, 4)
    # the matlab scheme at 90x120 grows to 176x235: two 224 px tiles side by side at the last octave
    assert scheme_octave_sizes(90, 120, matlab, 32)[-1] == (176, 235)


def test_explicit_constants_override_a_scheme_and_what_does_not_apply_is_refused():
    tf2 = resolve_scheme("tf2", steps=7, lr=0.1, tile=256)
    assert (tf2.steps, tf2.lr, tf2.tile, tf2.octave_scale, tf2.octaves_above) == (7, 0.1, 256, 1.3, 2)
    assert resolve_scheme("matlab", lapnorm_levels=2).lapnorm_levels == 2
    with pytest.raises(FvoptError, match="do not apply to scheme 2015"):
        resolve_scheme("2015", lapnorm_levels=3)
    with pytest.raises(FvoptError, match="unknown DeepDream scheme 'tf3'. Did you mean: tf2"):
        resolve_scheme("tf3")
    with pytest.raises(FvoptError, match=r"octave_scale=1.0 is not allowed"):
        resolve_scheme("2015", octave_scale=1.0)
    with pytest.raises(FvoptError, match="do not apply"):  # refused before any model is loaded
        dream(torch.rand(1, 3, 64, 64), "no-such-model", scheme="tf2", lapnorm_levels=2)


def test_a_tiled_viz_raises_the_activation_and_counts_every_tile(lite0):
    from fvopt.viz import visualize

    vis = visualize(
        lite0, "channel:blocks.4:10", "pixel", "adam", lr=0.05, steps=4, size=96, tile=64, transforms="none"
    )
    steps = vis.trace["steps"]
    assert vis.trace["tile"] == 64 and vis.images.shape[-1] == 96
    assert steps[-1]["value"] > steps[0]["value"] + 0.1
    assert vis.trace["forwards"] == vis.trace["backwards"] == 4 * 4  # 2x2 tiles of at most 64 px, 4 steps
    with pytest.raises(FvoptError, match="between lite0's minimum input of 32 px and the image size of 96 px"):
        visualize(lite0, "class:8", steps=1, size=96, tile=128)
    with pytest.raises(FvoptError, match="splits gradient passes"):
        visualize(lite0, "class:8", optimizer="cmaes", steps=1, size=96, tile=64)


# Issue 26: `--size`, and a zoom that keeps its frames and its trace whatever stops it.


def _skimage_photo(tmp_path, name: str = "chelsea"):
    import skimage.data

    path = tmp_path / f"{name}.png"
    Image.fromarray(getattr(skimage.data, name)()).save(path)  # chelsea: 451x300
    return path


def test_dream_size_256_writes_a_longer_side_of_256_resized_with_antialiasing(tmp_path, capsys):
    src, out, trace = _skimage_photo(tmp_path), tmp_path / "d.png", tmp_path / "d.json"
    args = ["dream", str(src), "--size", "256", "--octaves", "1", "--steps", "1", "--out", str(out), "--quiet"]
    assert main(args + ["--trace", str(trace)]) == 0
    assert Image.open(out).size == (256, 170)  # 451x300 -> longer side 256, aspect kept
    assert "256x170 px" in capsys.readouterr().out
    import json

    t = json.loads(trace.read_text())
    assert t["settings"]["size"] == 256 and t["settings"]["octave_sizes"] == [[170, 256]]


def test_dream_size_resizes_the_photo_before_dreaming_with_antialiasing(lite0):
    from fvopt.dream import resize_photo

    stripes = torch.zeros(1, 3, 64, 128)
    stripes[..., ::2] = 1.0  # one-pixel stripes: a plain subsample would keep only one of the two values
    small = resize_photo(stripes, 40)  # x3.2: bilinear point samples would land between 0.1 and 0.9
    assert small.shape[-2:] == (20, 40) and (small[..., 1:-1] - 0.5).abs().max() < 0.05
    result = dream(torch.rand(1, 3, 40, 60), lite0, octaves=1, steps=1, size=96, progress=False)
    assert result.image.shape[-2:] == (64, 96) and result.settings["octave_sizes"] == [[64, 96]]


@pytest.mark.parametrize("size, message", [("0", "must be an integer in [1, 16384]"), ("x", "is not allowed")])
def test_a_bad_dream_size_is_refused_in_one_line(tmp_path, capsys, size, message):
    with pytest.raises(SystemExit) as stop:
        main(["dream", "--size", size, "--out", str(tmp_path / "d.png"), "--quiet"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d.png").exists()


def test_a_dream_size_below_the_network_minimum_names_the_size(tmp_path, capsys):
    src = _skimage_photo(tmp_path)
    assert main(["dream", str(src), "--size", "40", "--octaves", "1", "--out", str(tmp_path / "d.png")]) == 2
    assert "below the model's minimum of 32 px" in capsys.readouterr().err


def test_a_zoom_writes_its_trace(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(src)
    out, trace = tmp_path / "z.gif", tmp_path / "z.json"
    args = ["dream", str(src), "--octaves", "1", "--steps", "1", "--zoom-frames", "3", "--out", str(out)]
    assert main(args + ["--trace", str(trace), "--quiet"]) == 0
    import json

    t = json.loads(trace.read_text())
    assert t["image"] == str(out) and t["settings"]["zoom"]["frames_written"] == 3 == Image.open(out).n_frames
    assert t["settings"]["zoom"]["frame_forwards"] == 2 and t["settings"]["zoom"]["stopped"] is None


# A real SIGTERM, sent from inside Pillow's GIF writer (the moment the issue names), through fvopt's handler.
_SIGTERM_WHILE_WRITING_THE_GIF = """
import os, signal, sys
from PIL import Image
original = Image.Image.save
def save(self, fp, *args, **kwargs):
    if kwargs.get("save_all") and not getattr(save, "sent", False):
        save.sent = True
        os.kill(os.getpid(), signal.SIGTERM)
    return original(self, fp, *args, **kwargs)
Image.Image.save = save
from fvopt.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigterm_while_the_gif_is_written_keeps_every_finished_frame_and_the_trace(tmp_path):
    import json
    import os
    import subprocess
    import sys

    script, src = tmp_path / "run.py", tmp_path / "in.png"
    script.write_text(_SIGTERM_WHILE_WRITING_THE_GIF)
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(src)
    out, trace = tmp_path / "z.gif", tmp_path / "z.json"
    args = [str(src), "--octaves", "1", "--steps", "1", "--zoom-frames", "5", "--out", str(out), "--trace", str(trace)]
    done = subprocess.run(
        [sys.executable, str(script), "dream", *args, "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 143, done.stderr
    assert "kept the 5 finished frames of 5" in done.stderr and f"the trace in {trace}" in done.stderr
    assert Image.open(out).n_frames == 5
    assert json.loads(trace.read_text())["settings"]["zoom"]["stopped"] == "terminated (SIGTERM)"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name], "no temporary file is left behind"
