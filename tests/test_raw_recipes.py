"""The classic raw-pixel class-visualization recipe, by configuration: raw pixels (clipped or not),
exact L1/L2 sums, and a Gaussian blur of chosen size every N steps on any parameterization where
it is exact."""

import json

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.objectives import Activations, parse_target
from fvopt.params import COLOR_CORRELATION, make_param
from fvopt.problem import Problem
from fvopt.strategies import make_strategy
from fvopt.strategies.first_order import exact_blur, gaussian_kernel2d
from fvopt.transforms import make_transforms

SIZE = 16


def point(p, seed=0, spread=0.5):
    g = torch.Generator().manual_seed(seed)
    return p.init(2, g) + spread * torch.randn((2, p.dim), generator=g)


# -- raw pixels ------------------------------------------------------------------------------------


def test_raw_renders_z_exactly_and_the_network_sees_values_outside_0_1_unclipped():
    p = make_param("raw", SIZE)
    z = point(p, spread=2.0)
    assert torch.equal(p(z), z.view(2, 3, SIZE, SIZE))
    assert float(p(z).min()) < 0 and float(p(z).max()) > 1  # unclipped, as the classic recipe
    clipped = make_param("raw:clip=true", SIZE)
    assert torch.equal(clipped(z), z.view(2, 3, SIZE, SIZE).clamp(0, 1))


def test_raw_init_is_uniform_noise_by_default_and_gray_on_request():
    g = torch.Generator().manual_seed(0)
    uniform = make_param("raw", 64).init(1, g)
    assert 0 <= float(uniform.min()) and float(uniform.max()) <= 1
    assert abs(float(uniform.mean()) - 0.5) < 0.01 and abs(float(uniform.var()) - 1 / 12) < 0.005
    gray = make_param("raw:init=gray,sd=0.01", 64).init(1, torch.Generator().manual_seed(0))
    assert abs(float(gray.mean()) - 0.5) < 1e-3 and abs(float(gray.std()) - 0.01) < 1e-3


def test_raw_reduced_form_is_a_16_grid_lifted_to_the_same_image():
    p = make_param("raw", 32)
    low = p.reduced()
    assert low.dim == 3 * 16 * 16 and low.full.dim == p.dim
    z = point(low)
    assert torch.equal(p(low.lift(z)), low(z))


@pytest.fixture()
def raw_problem(lite0):
    def build(spec: str) -> Problem:
        return Problem(lite0, parse_target("class:8"), make_param(spec, 64), make_transforms("none"))

    return build


def test_clipping_keeps_the_image_in_0_1_after_a_step_with_a_huge_lr(raw_problem):
    for spec, clipped in (("raw:clip=true", True), ("raw", False)):
        problem = raw_problem(spec)
        strategy = make_strategy("sgd", lr=1e6)
        strategy.check(problem.param, problem.batch)
        strategy.start(problem, problem.init())
        strategy.step(problem)
        z = strategy.best
        inside = 0 <= float(z.min()) and float(z.max()) <= 1
        assert inside == clipped, spec
        if clipped:  # the step really pushed values to both bounds, and the image is z itself
            assert float((z == 0).float().mean()) > 0.1 and float((z == 1).float().mean()) > 0.1
            assert torch.equal(problem.images(z), z.view(1, 3, 64, 64))


def test_clipped_raw_keeps_its_gradient_at_the_bounds(raw_problem):
    """The projection, not a clamp alone, keeps values in range: at 0 and 1 the gradient still flows."""
    problem = raw_problem("raw:clip=true")
    z = torch.cat([torch.zeros(1, 6144), torch.ones(1, 6144)], 1)[:, torch.randperm(12288)]
    _, grad = problem.value_and_grad(z)
    assert float((grad != 0).float().mean()) > 0.9


# -- exact L1/L2 sums ------------------------------------------------------------------------------


def _values(target: str, images: torch.Tensor) -> torch.Tensor:
    a = Activations({}, images, torch.zeros(images.shape[0], dtype=torch.long), 1)
    return parse_target(target)(a)


def test_l2sum_and_l1sum_equal_the_hand_computation():
    # each channel is [[0, 0.25], [0.5, 1]]: distances from gray 0.5, 0.25, 0, 0.5
    img = torch.tensor([[0.0, 0.25], [0.5, 1.0]]).expand(1, 3, 2, 2)
    assert _values("l2sum", img).tolist() == [3 * (0.25 + 0.0625 + 0 + 0.25)]  # 1.6875
    assert _values("l1sum", img).tolist() == [3 * (0.5 + 0.25 + 0 + 0.5)]  # 3.75
    assert _values("l2sum:0", img).tolist() == [3 * (0 + 0.0625 + 0.25 + 1)]  # sum of squares of the values
    assert _values("l1sum:0", img).tolist() == [3 * (0 + 0.25 + 0.5 + 1)]
    assert torch.allclose(_values("l2", img), torch.tensor([(1.6875 / 12) ** 0.5]))  # the RMS, for contrast
    assert torch.allclose(_values("l1", img), torch.tensor([3.75 / 12]))
    assert torch.allclose(_values("-0.0001*l2sum", img), torch.tensor([-0.0001 * 1.6875]))


def test_sum_regularizers_are_per_image_and_written_as_the_recipe_writes_them():
    imgs = torch.stack([torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), 1.0)])
    assert _values("l2sum", imgs).tolist() == [0.0, 48 * 0.25]
    assert str(parse_target("class:8-1e-4*l2sum")) == "class:8 + -0.0001*l2sum"
    with pytest.raises(FvoptError, match="center of 'l2sum:x' must be a finite number"):
        parse_target("l2sum:x")


# -- blur ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel, sigma", [(5, 1.0), (3, 0.5), (7, 2.0)])
def test_blur_on_raw_equals_torchvision_gaussian_blur_with_reflect_borders(kernel, sigma):
    p = make_param("raw", SIZE)
    z = point(p, spread=1.0)
    blurred = p(exact_blur(p, kernel, sigma)(z))
    expected = gaussian_blur(p(z), [kernel, kernel], [sigma, sigma])  # torchvision pads with 'reflect'
    assert torch.allclose(blurred, expected, atol=1e-6)
    assert not torch.allclose(blurred, p(z), atol=1e-2)


def _circular(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    k = kernel.shape[-1]
    return F.conv2d(F.pad(x, [k // 2] * 4, mode="circular"), kernel.expand(3, 1, k, k).to(x.dtype), groups=3)


def _fft_pre_sigmoid(p, z: torch.Tensor) -> torch.Tensor:
    """The fft image before the color matrix and the sigmoid, recomputed from the spectrum."""
    full = p.full
    spectrum = torch.view_as_complex(p.lift(z).reshape(-1, *full.spectrum_shape).contiguous())
    return torch.fft.irfft2(spectrum * full.scale, s=(full.size, full.size), norm="ortho") / 4.0


@pytest.mark.parametrize("spec", ["fft", "fft:k=3", "fft:decorrelate=false"])
def test_fft_blur_is_a_circular_convolution_of_the_image_before_color_and_sigmoid(spec):
    p = make_param(spec, SIZE)
    z = point(p, spread=0.3)
    kernel = gaussian_kernel2d(5, 1.0)
    blurred = exact_blur(p, 5, 1.0)(z)
    assert torch.allclose(_fft_pre_sigmoid(p, blurred), _circular(_fft_pre_sigmoid(p, z), kernel), atol=1e-6)
    # and so the rendered image is the sigmoid of the (color-mixed) circular convolution
    pre = _circular(_fft_pre_sigmoid(p, z), kernel)
    if p.full.decorrelate:
        pre = (COLOR_CORRELATION @ pre.flatten(2)).reshape(pre.shape)
    assert torch.allclose(p(blurred), torch.sigmoid(pre), atol=1e-6)


@pytest.mark.parametrize("spec", ["pixel", "pixel:decorrelate=true"])
def test_pixel_blur_convolves_the_logit_image_with_replicated_borders(spec):
    p = make_param(spec, SIZE)
    z = point(p)
    blurred = exact_blur(p, 5, 1.0)(z)
    pre = F.conv2d(
        F.pad(z.view(2, 3, SIZE, SIZE), [2] * 4, mode="replicate"),
        gaussian_kernel2d(5, 1.0).expand(3, 1, 5, 5),
        groups=3,
    )
    if p.decorrelate:
        pre = (COLOR_CORRELATION @ pre.flatten(2)).reshape(pre.shape)
    assert torch.allclose(p(blurred), torch.sigmoid(pre), atol=1e-6)


def test_pyramid_blur_convolves_the_summed_image_and_leaves_the_coarse_levels():
    p = make_param("pyramid", SIZE)
    z = point(p, spread=0.3)
    blurred = exact_blur(p, 3, 0.8)(z)
    color = COLOR_CORRELATION.double()

    def pre(v: torch.Tensor) -> torch.Tensor:  # undo sigmoid and color matrix
        logits = torch.logit(p(v).double())
        return torch.linalg.solve(color, logits.flatten(2)).reshape(logits.shape)

    expected = gaussian_blur(pre(z).float(), [3, 3], [0.8, 0.8])
    assert torch.allclose(pre(blurred).float(), expected, atol=1e-4)
    finest = 3 * SIZE * SIZE
    assert torch.equal(blurred[:, finest:], z[:, finest:])


@pytest.mark.parametrize("spec", ["maco", "pixel:k=8", "raw:k=8", "pyramid:free=2"])
def test_blur_is_refused_in_one_line_where_it_would_be_an_approximation(spec):
    with pytest.raises(FvoptError, match="blur_every cannot blur .* exactly") as err:
        make_strategy("adam", blur_every=5).check(make_param(spec, SIZE), 1)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"blur_every": 5, "blur_kernel": 4}, "blur_kernel=4 is not allowed: must be an odd integer >= 3"),
        ({"blur_every": 5, "blur_kernel": 1}, "blur_kernel=1 is not allowed"),
        ({"blur_every": 5, "blur_sigma": "nan"}, "blur_sigma='nan' is not allowed"),
        ({"blur_every": 5, "blur_sigma": 0}, "blur_sigma=0 is not allowed"),
        ({"blur_kernel": 5}, "take effect only with blur_every"),
    ],
)
def test_blur_options_are_checked_where_they_enter(options, message):
    with pytest.raises(FvoptError, match=message):
        make_strategy("sgd", **options)


def test_blur_kernel_larger_than_the_image_is_refused():
    with pytest.raises(FvoptError, match="blur_kernel=9 is too large for 4 px images"):
        make_strategy("sgd", blur_every=1, blur_kernel=9).check(make_param("raw", 4), 1)


class _FlatProblem:
    """A problem whose gradient is zero: every change of z is the strategy's own blur."""

    def __init__(self, param) -> None:
        self.param, self.device, self.batch = param, torch.device("cpu"), 1

    def value_and_grad(self, z: torch.Tensor):
        return torch.zeros(1), torch.zeros_like(z)


def test_blur_runs_at_steps_0_n_2n_before_each_evaluation():
    param = make_param("raw", SIZE)
    blur = exact_blur(param, 5, 1.0)
    strategy = make_strategy("sgd", blur_every=3, blur_kernel=5, blur_sigma=1.0)
    z0 = param.init(1, torch.Generator().manual_seed(0))
    problem = _FlatProblem(param)
    strategy.start(problem, z0)
    expected, seen = z0, []
    for step in range(7):
        strategy.step(problem)
        if step % 3 == 0:
            expected = blur(expected)
        seen.append(torch.allclose(strategy.best, expected, atol=1e-6))
    assert all(seen)
    assert not torch.allclose(blur(blur(blur(z0))), blur(blur(z0)), atol=1e-3)  # three blurs differ from two


def test_default_first_order_step_is_unchanged_without_blur(raw_problem):
    """No blur option, no clip: one SGD step is z + lr * grad, exactly."""
    problem = raw_problem("raw")
    z0 = problem.init()
    _, grad = problem.value_and_grad(z0)
    strategy = make_strategy("sgd", lr=0.5)
    strategy.start(problem, z0)
    strategy.step(problem)
    assert torch.allclose(strategy.best, z0 + 0.5 * grad)


# -- the whole recipe, one command ------------------------------------------------------------------


def test_the_classic_raw_pixel_recipe_runs_as_one_command_and_raises_the_class_logit(tmp_path, lite0):
    out, trace = tmp_path / "hen.png", tmp_path / "hen.json"
    argv = [
        "viz",
        "--model",
        "lite0",
        "--param",
        "raw",
        "--optimizer",
        "sgd",
        "--option",
        "lr=0.5",
        "--option",
        "blur_every=10",
        "--option",
        "blur_kernel=5",
        "--option",
        "blur_sigma=1",
        "--transforms",
        "none",
        "--target",
        "class:8 - 0.0001*l2sum",
        "--steps",
        "20",
        "--size",
        "64",
        "--out",
        str(out),
        "--trace",
        str(trace),
        "--quiet",
    ]
    assert main(argv) == 0
    t = json.loads(trace.read_text())
    assert (t["param"], t["optimizer"], t["blur"]) == ("raw", "sgd", {"every": 10, "kernel": 5, "sigma": 1.0})
    first, last = t["steps"][0]["value"], t["final"]["value"]
    assert last > first + 5, (first, last)
