"""MaCo as published: the magnitude is fixed, only the (standardized) phase matters, colors are
recorrelated; transparency maps accumulate |d objective / d image|."""

import pytest
import torch
from PIL import Image

import fvopt
from fvopt.params import make_param
from fvopt.params.base import COLOR_CORRELATION
from fvopt.params.fourier import natural_magnitude
from fvopt.gradients.transparency import TransparencyAccumulator


def decorrelated_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Undo the sigmoid and the color recorrelation, and take the amplitude spectrum."""
    x = torch.logit(images.double().clamp(1e-9, 1 - 1e-9))
    x = (torch.linalg.inv(COLOR_CORRELATION.double()) @ x.flatten(2)).reshape(x.shape)
    return torch.fft.rfft2(x).abs()


def test_every_maco_image_has_the_natural_magnitude_whatever_the_phase():
    p = make_param("maco", 32)
    z = p.init(3, torch.Generator().manual_seed(0)) * torch.tensor([[1.0], [5.0], [0.2]])
    amplitude = decorrelated_spectrum(p(z))
    inner = (slice(None), slice(None), slice(1, None), slice(1, -1))  # not the self-conjugate columns
    ratio = amplitude[inner] / natural_magnitude(32).double()[None][inner]
    # the same shape of spectrum, up to one scale per image (the spatial standardization)
    spread = ratio.flatten(1).std(1) / ratio.flatten(1).mean(1)
    assert (spread < 1e-3).all()


def test_phases_are_standardized_before_use_as_published():
    p = make_param("maco", 32)
    z = p.init(1, torch.Generator().manual_seed(1))
    assert torch.allclose(p(z), p(3.0 * z + 0.7), atol=1e-3)  # only the standardized phase matters (up to its eps)
    assert abs(float(z.std()) - 1.0) < 0.1  # phases start N(0, 1) (1632 draws), as Horama draws them


def test_the_transparency_accumulator_sums_absolute_gradients_and_passes_them_on():
    seen = []
    acc = TransparencyAccumulator(lambda g: seen.append(g) or 2 * g)
    g1, g2 = torch.tensor([[[[1.0, -2.0]]]]).expand(1, 3, 1, 2), torch.tensor([[[[-3.0, 0.5]]]]).expand(1, 3, 1, 2)
    assert torch.equal(acc(g1), 2 * g1) and torch.equal(acc(g2), 2 * g2) and len(seen) == 2
    assert torch.allclose(acc.total[0, 0, 0], torch.tensor([4.0, 2.5]))
    assert torch.allclose(acc.maps()[0, 0, 0], torch.tensor([1.0, 2.5 / 4.0]))


def test_maco_recipe_writes_its_transparency_map(lite0, tmp_path):
    vis = fvopt.visualize(
        lite0,
        "channel:blocks.4:10",
        param="maco",
        size=128,
        render="lucent",
        steps=3,
        transforms="crops:3@0.5-0.3,noise:0.05,unoise:0.05",
        transparency=True,
    )
    maps = vis.transparency
    assert maps.shape == (1, 1, 128, 128) and float(maps.max()) == pytest.approx(1.0) and float(maps.min()) >= 0
    assert float(maps.std()) > 0.01  # crops cover the center more than the corners: not flat
    written = vis.save_transparency(tmp_path / "t.png")
    assert Image.open(written[0]).mode == "RGBA" and Image.open(written[1]).size == (128, 128)
    assert vis.trace["transparency"] is True and vis.trace["render"] == 224
