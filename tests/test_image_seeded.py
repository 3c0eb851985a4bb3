"""Your images as start or target (issue 18 item 3): --init, invert, caricature, accentuate.

Real computations on the pretrained Lite0 and on scikit-image's photos (nothing can be
downloaded): the seeded start renders the photo back, inversion reconstructs a layer's
activations, caricature and accentuation objectives rise, bad input is one line before any pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.io.init_image import Photo, seed_error, seed_from_image
from fvopt.models.hooks import capture
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.strategies import make_strategy
from fvopt.transforms import make_transforms


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("photos") / "chelsea-the cat.png"  # a '-' and a space: paths stay paths
    Image.fromarray(skimage.data.chelsea()).save(path)
    return str(path)


@pytest.fixture(scope="module")
def gray_photo(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("photos") / "camera.png"
    Image.fromarray(skimage.data.camera()).save(path)
    return str(path)


# -- loading and seeding --------------------------------------------------------------------------


def test_a_photo_is_resized_to_cover_and_center_cropped(photo):
    p = Photo(photo)
    assert (p.channels, p.original) == (3, (300, 451))
    x = p.at(64)
    assert x.shape == (1, 3, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1
    wide = p.at((40, 120))  # wider than the photo's aspect: the width is covered, rows cropped
    assert wide.shape == (1, 3, 40, 120)
    assert "resized to cover, center-cropped" in p.describe(64)


@pytest.mark.parametrize(
    "spec", ["fft", "pixel", "pyramid", "raw:clip=true", "fft:decorrelate=false", "pixel:decorrelate=true"]
)
def test_the_seed_renders_the_photo_back_within_a_quarter_of_a_grey_level(spec, photo):
    image = Photo(photo).at(48)
    param, z = seed_from_image(make_param(spec, 48), image, batch=2)
    assert z.shape == (2, param.dim)
    assert seed_error(z, param, image) < 0.26 / 255  # the logit clamp (1e-3) is the only loss
    assert torch.allclose(param(z)[0], param(z)[1])


@pytest.mark.parametrize("spec", ["fft:k=4", "pyramid:free=2"])
def test_a_low_dimensional_form_is_rebased_on_the_photo_so_zero_order_search_starts_there(spec, photo):
    image = Photo(photo).at(48)
    low = make_param(spec, 48)
    param, z = seed_from_image(low, image, batch=1)
    assert param.dim == low.dim
    assert seed_error(z, param, image) < 0.26 / 255
    moved = param(z + 0.5 * torch.randn_like(z))  # the free values move the photo, the frozen ones keep it
    assert 0 < float((moved - image).abs().mean()) < 0.2


@pytest.mark.parametrize("spec", ["maco", "pixel:k=8", "raw:k=8", "cppn"])
def test_a_parameterization_without_an_exact_inverse_is_refused_naming_those_with_one(spec, photo):
    with pytest.raises(FvoptError, match=f"'{spec}' has none: use one of pixel, raw.*fft.*pyramid") as err:
        seed_from_image(make_param(spec, 48), Photo(photo).at(48), 1)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "param", ["fft", pytest.param("pixel", marks=pytest.mark.slow), pytest.param("pyramid", marks=pytest.mark.slow)]
)
def test_cli_init_renders_the_photo_back_within_one_grey_level(param, photo, tmp_path, capsys):
    """--init through the whole command: one step at a negligible rate, written as a PNG, read back."""
    out = tmp_path / "seeded.png"
    code = main(
        [
            "viz",
            "--init",
            photo,
            "--param",
            param,
            "--size",
            "64",
            "--steps",
            "1",
            "--lr",
            "1e-9",
            "--transforms",
            "none",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    assert "started from" in capsys.readouterr().out
    back = torch.from_numpy(np.asarray(Image.open(out), dtype=np.float32) / 255).permute(2, 0, 1)
    assert float((back - Photo(photo).at(64)[0]).abs().max()) <= 1 / 255 + 1e-6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--init", "{gray}"], "has 1 channel, and lite0's input takes 3"),
        (["--init", "{missing}"], "does not exist"),
        (["--init", "{photo}", "--param", "maco"], "'maco' has none: use one of"),
        (["--init", "{photo}", "--optimizer", "hybrid:cmaes>adam"], "first part would search a fresh low-dimensional"),
        (["--target", "invert:blocks.2@{missing}"], "does not exist"),
        (["--target", "invert:blocks.2@{gray}"], "has 1 channel, and lite0's input takes 3"),
        (["--target", "invert:blocks.2"], "needs an image after '@'"),
        (["--target", "invert:nolayer@{photo}"], "unknown layer 'nolayer'"),
        (["--target", "accentuate:blocks.4:9999@{photo}"], "unit 9999 is out of range"),
    ],
)
def test_bad_image_input_is_one_line_and_exit_code_2(args, message, photo, gray_photo, tmp_path, capsys, monkeypatch):
    import fvopt.problem

    monkeypatch.setattr(fvopt.problem.Problem, "evaluate", lambda *a, **k: pytest.fail("a model pass ran"))
    monkeypatch.setattr(fvopt.problem.Problem, "value_and_grad", lambda *a, **k: pytest.fail("a model pass ran"))
    paths = {"photo": photo, "gray": gray_photo, "missing": str(tmp_path / "nope.png")}
    args = [a.format(**paths) for a in args]
    code = main(["viz", *args, "--size", "64", "--steps", "2", "--out", str(tmp_path / "x.png"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


# -- targets ----------------------------------------------------------------------------------------


def test_image_targets_compose_with_the_target_algebra(photo):
    obj = parse_target(f"invert:blocks.2@{photo} - 0.5*caricature:blocks.3:2@{photo} + channel:blocks.4:3")
    assert obj.layers == {"blocks.2", "blocks.3", "blocks.4"}
    assert f"caricature:blocks.3:2@{photo}" in str(obj)


def _run(model, target: str, param, steps: int, optimizer: str = "adam", z0=None, **options):
    problem = Problem(model, parse_target(target), param, make_transforms("none"), seed=0)
    z0 = problem.init() if z0 is None else z0
    start = problem.evaluate(z0)
    result = run(problem, make_strategy(optimizer, **options), Budget(steps=steps), z0=z0)
    return problem, float(start.mean()), float(problem.evaluate(result.z).mean()), result


def test_caricature_objective_rises(lite0, photo):
    _, start, end, _ = _run(lite0, f"caricature:blocks.3:1@{photo}", make_param("fft", 64), 5, lr=0.05)
    assert end > start + 0.1 * abs(start)


def test_accentuation_raises_the_unit_from_the_photo_and_keeps_the_earlier_layer_near_it(lite0, photo):
    image = Photo(photo).at(64)
    param, z0 = seed_from_image(make_param("fft", 64), image, 1)
    target = f"accentuate:blocks.4:7:blocks.2:0.5@{photo}"
    problem, start, end, result = _run(lite0, target, param, 8, z0=z0, lr=0.05)
    assert end > start
    with torch.no_grad(), capture(lite0, {"blocks.4", "blocks.2"}) as cap:
        before, after = cap.run(image), cap.run(result.images)
    unit_before, unit_after = before["blocks.4"][:, 7].mean(), after["blocks.4"][:, 7].mean()
    assert unit_after > unit_before + 0.5
    drift = (after["blocks.2"] - before["blocks.2"]).norm() / before["blocks.2"].norm()
    assert drift < 0.5  # the regularized layer stays near the photo's


@pytest.mark.slow
def test_inversion_reconstructs_a_photos_layer_activations_to_cosine_095(lite0, photo):
    """Lite0 blocks.2 at 96 px, fft, Adam 0.1, 120 steps, no transforms (about 10 s on 2 cores)."""
    _, start, end, result = _run(lite0, f"invert:blocks.2@{photo}", make_param("fft", 96), 120, lr=0.1)
    with torch.no_grad(), capture(lite0, {"blocks.2"}) as cap:
        a = cap.run(result.images)["blocks.2"].flatten()
        r = cap.run(Photo(photo).at(96))["blocks.2"].flatten()
    cosine = float(torch.nn.functional.cosine_similarity(a, r, dim=0))
    assert cosine >= 0.95, cosine
    assert end > start
