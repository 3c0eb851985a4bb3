"""check_param: the contract of every registered parameterization, run over the whole registry.

A parameterization added with `register_param` is checked here through the examples it
registers (its low-dimensional forms included), without editing this file.
"""
from pathlib import Path

import pytest
import torch

from fvopt.errors import FvoptError
from fvopt.params import COLOR_CORRELATION, PARAMS, Subspace, make_param
from fvopt.params.fourier import low_frequency_mask

SIZE = 32
# A random small generator defined in a test file (tests/tiny_generator.py) joins the registry's examples.
TINY_GENERATOR = Path(__file__).with_name("tiny_generator.py")
EXAMPLES = [spec for entry in PARAMS.values() for spec in entry.examples] + [
    f"generator:{TINY_GENERATOR}:make", f"generator:{TINY_GENERATOR}:make,dim=6,range=1.5"]


def random_point(p, seed=0):
    g = torch.Generator().manual_seed(seed)
    return p.init(2, g) + 0.3 * torch.randn((2, p.dim), generator=g)


@pytest.mark.parametrize("spec", EXAMPLES)
def test_images_are_in_0_1_with_the_right_shape_and_gradients_flow(spec):
    p = make_param(spec, SIZE)
    z = random_point(p).requires_grad_(True)
    assert z.shape == (2, p.dim)
    x = p(z)
    assert x.shape == (2, 3, SIZE, SIZE)
    assert float(x.detach().min()) >= 0 and float(x.detach().max()) <= 1
    x[:, 0].mean().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert p.init(3, torch.Generator().manual_seed(1)).shape == (3, p.dim)


@pytest.mark.parametrize("spec", EXAMPLES)
def test_init_is_reproducible_from_the_generator(spec):
    p = make_param(spec, SIZE)
    a, b = (p.init(2, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a, b)


@pytest.mark.parametrize("spec", EXAMPLES)
def test_the_reduced_form_lifts_exactly_into_the_full_one(spec):
    """`reduced()` is what zero-order search uses; its vectors lift into the full form, same image."""
    low = make_param(spec, SIZE).reduced()
    full = low.full
    assert full.dim >= low.dim and full.size == low.size
    z = random_point(low, 2)
    lifted = low.lift(z)
    assert lifted.shape == (2, full.dim)
    assert torch.allclose(full(lifted), low(z), atol=1e-6)
    if isinstance(low, Subspace):  # free values land at their index, the frozen ones stay at the base
        assert torch.equal(lifted[:, low.index], z)
        frozen = torch.ones(full.dim, dtype=torch.bool)
        frozen[low.index] = False
        assert torch.equal(lifted[:, frozen], low.base[frozen].expand(2, -1))


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


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_every_option_refuses_a_bad_value_in_one_line(name):
    bad = {int: "x", float: "nan", bool: "maybe", str: "zzz"}
    for option, spec in PARAMS[name].options.items():
        with pytest.raises(FvoptError, match=f"{option}=.* is not allowed: must be") as err:
            make_param(f"{name}:{option}={bad[spec.kind]}", SIZE)
        assert "\n" not in str(err.value)
    with pytest.raises(FvoptError, match="unknown option 'nope'|does not take option 'nope'"):
        make_param(f"{name}:nope=1", SIZE)
