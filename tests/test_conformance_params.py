"""fvopt.testing.check_param over every registered parameterization, one test per (spec, check).

A parameterization added with `register_param` (or a `fvopt.params` entry point) is checked here
through the examples it registers (its low-dimensional forms included), without editing this file.
"""

from pathlib import Path

import pytest
import torch

from fvopt.params import COLOR_CORRELATION, PARAMS, make_param
from fvopt.params.fourier import low_frequency_mask
from fvopt.testing import PARAM_CHECKS

SIZE = 32
# A random small generator defined in a test file (tests/tiny_generator.py) joins the registry's examples.
TINY_GENERATOR = Path(__file__).with_name("tiny_generator.py")
EXAMPLES = [spec for name in PARAMS for spec in PARAMS[name].examples] + [
    f"generator:{TINY_GENERATOR}:make",
    f"generator:{TINY_GENERATOR}:make,dim=6,range=1.5",
]


def random_point(p, seed=0):
    g = torch.Generator().manual_seed(seed)
    return p.init(2, g) + 0.3 * torch.randn((2, p.dim), generator=g)


@pytest.mark.parametrize("check", PARAM_CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("spec", EXAMPLES)
def test_shipped_param_check(spec, check):
    check(spec)


@pytest.mark.parametrize("k", [0, 2, 5])
def test_fft_k_images_have_no_energy_above_k(k):
    p = make_param(f"fft:k={k}", SIZE)
    x = p(random_point(p))
    logits = torch.logit(x.double())
    color = COLOR_CORRELATION.double()
    pre = torch.linalg.solve(color, logits.flatten(2)).reshape(logits.shape)  # undo the decorrelation
    energy = torch.fft.rfft2(pre).abs().sum(dim=(0, 1))
    mask = low_frequency_mask(SIZE, SIZE, k)
    assert float(energy[~mask].max()) < 1e-6 * float(energy[mask].max())
