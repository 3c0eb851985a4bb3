import numpy as np
import pytest
import torch

from fvopt.errors import FvoptError
from fvopt.params import COLOR_CORRELATION, FFTParam, make_param, natural_magnitude


def test_low_dimensional_sizes_match_the_references():
    assert make_param("fft:k=6", 224).dim == 546  # (2*6+1) * (6+1) * 3 colors * 2 (re, im)
    assert make_param("fft:k=8", 224).dim == 918
    assert make_param("pyramid:free=2", 224).dim == 3 * (7 * 7 + 14 * 14)
    assert make_param("pixel:k=16", 224).dim == 768


def test_fft_follows_lucid_constants():
    p = FFTParam(16)
    fy = np.fft.fftfreq(16)[:, None]
    fx = np.fft.fftfreq(16)[: 16 // 2 + 1][None]
    expected = 1 / np.maximum(np.sqrt(fx**2 + fy**2), 1 / 16)
    assert np.allclose(p.scale.numpy(), expected)
    # decorrelation matrix: Lucid's square root of the color covariance, largest column norm 1
    assert np.isclose(float(COLOR_CORRELATION.norm(dim=0).max()), 1.0)
    assert np.isclose(0.26 / float(COLOR_CORRELATION[0, 0]), 0.4619524, atol=1e-6)
    # a zero spectrum is mid-gray, the init is close to it (noise sd 0.01)
    assert torch.allclose(p(torch.zeros(1, p.dim)), torch.full((1, 3, 16, 16), 0.5))
    assert make_param("fft:decay=0.75", 16).decay == 0.75


def test_maco_keeps_the_natural_magnitude_whatever_the_phase():
    make_param("maco", 32)  # builds
    mag = natural_magnitude(32)
    assert mag.shape == (3, 32, 17) and (mag[:, 0, 0] < 1e-4).all()  # mean removed
    low, high = mag[:, 1:3, 1:3].mean(), mag[:, 12:16, 12:16].mean()
    assert low > 5 * high  # natural images: energy falls with frequency


@pytest.mark.parametrize(
    "spec, message",
    [
        ("fftt", "unknown parameterization 'fftt'.*Did you mean: fft"),
        ("fft:k=99", "cut-off k must be"),
        ("fft:q=1", "does not take option 'q'"),
        ("fft:k=x", "k='x' is not allowed: must be an integer >= 0"),
        ("pyramid:free=40", "free levels must be"),
        ("fft:decay=nan", "decay='nan' is not allowed"),
        ("fft:sd=-1", "sd='-1' is not allowed"),
        ("pyramid:levels=0", "levels='0' is not allowed"),
        ("fft:k=2,k=3", "given twice"),
    ],
)
def test_bad_parameterization_specs(spec, message):
    with pytest.raises(FvoptError, match=message):
        make_param(spec, 64)


@pytest.mark.parametrize("size", [0, -3, 10**6, 2.5, None])
def test_bad_sizes_are_refused(size):
    with pytest.raises(FvoptError, match="image size"):
        make_param("fft", size)
