"""First-order strategies: SGD, momentum, Adam, and normalized gradient ascent (the DeepDream rule)."""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import FvoptError
from ..gradients import normalize_std
from ..config.options import Option
from ..params.base import Parameterization, Subspace
from ..problem import Problem
from .base import BaseStrategy, StepCost, register
from .result import ReportsResult, result_option

DEFAULT_LR = {"sgd": 1.0, "momentum": 0.5, "adam": 0.05, "normalized": 0.05}


RESULTS = ("last", "best")
RESULT = result_option(RESULTS, "last")


class FirstOrder(ReportsResult, BaseStrategy):
    """One `value_and_grad` per step, then one torch.optim update that maximizes the objective.

    Subclasses say which optimizer (`make_optimizer`), and may process the gradient before it
    (`process`) or the point after it (`after_step`); the step and its budget are shared.

    `result` chooses the point the run returns. "last" (the default, what fvopt always returned)
    is the final iterate. "best" is the problem's best point per image: the best iterate that was
    evaluated, in a hybrid the best of the whole run. A first-order method has no library
    recommendation (`recommend` is refused). The best value was measured under that step's random
    transform draw, so it is biased upward; "last" is not (fvopt/strategies/result.py).
    """

    results = RESULTS
    default_result = "last"

    def __init__(self, result: str | None = None) -> None:
        self.choose_result(result)
        self.steps = 0

    def make_optimizer(self, z: torch.Tensor) -> torch.optim.Optimizer:
        """A torch optimizer over the single leaf z (batch, dim), set up to maximize."""
        raise NotImplementedError

    def process(self, grad: torch.Tensor) -> torch.Tensor:
        """The gradient the optimizer sees (d value / d z by default)."""
        return grad

    def before_step(self, problem: Problem) -> None:
        """Anything done to z before the step's evaluation (a blur)."""

    def after_step(self, problem: Problem) -> None:
        """Anything done to z after the update and the projection."""

    def check(self, param, batch: int, budget=None) -> StepCost:
        return StepCost(batch, batch)

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        self.steps = 0
        self.problem = problem
        self.z = z0.detach().clone().to(problem.device).requires_grad_(True)
        self.opt = self.make_optimizer(self.z)

    def step(self, problem: Problem) -> None:
        self.before_step(problem)
        _, grad = problem.value_and_grad(self.z)
        self.z.grad = self.process(grad)
        self.opt.step()
        with torch.no_grad():
            problem.param.project_(self.z)
        self.steps += 1
        self.after_step(problem)

    def last_point(self) -> torch.Tensor:
        return self.z.detach()

    def status(self) -> dict:
        return self.result_status()


class GradientAscent(FirstOrder):
    """fvopt's own first-order kinds: SGD, momentum, Adam, and normalized gradient ascent.

    `normalized` steps along g / std(g) per image (DeepDream's rule), which makes the step size
    independent of the gradient's scale. After each update the parameterization projects z back
    into its feasible set (`project_`: `raw:clip=true` clips to [0, 1], as the classic recipe does).

    `blur_every=N` blurs the image with a `blur_kernel` x `blur_kernel` Gaussian of `blur_sigma`
    (3 and 0.5 unless given) at the start of steps 0, N, 2N, ..., before that step's evaluation, as
    the classic recipe's loop does (`if i % N == 0: blur`, from i = 0): so the first image
    evaluated is already blurred, and every image the problem scores is one the strategy holds.
    The blur is exact or refused (`exact_blur`), never an approximation.
    """

    def __init__(
        self,
        kind: str = "adam",
        lr: float | None = None,
        momentum: float = 0.9,
        nesterov: bool = False,
        blur_every: int = 0,
        blur_sigma: float | None = None,
        blur_kernel: int | None = None,
        result: str | None = None,
    ) -> None:
        super().__init__(result)
        if kind not in DEFAULT_LR:
            raise FvoptError(f"unknown first-order kind '{kind}'")
        if isinstance(blur_every, bool) or not isinstance(blur_every, int) or blur_every < 0:
            raise FvoptError(f"blur_every={blur_every!r} is not allowed: must be an integer >= 0 (0: never)")
        if blur_kernel is not None and (
            isinstance(blur_kernel, bool) or not isinstance(blur_kernel, int) or blur_kernel < 3 or blur_kernel % 2 == 0
        ):
            raise FvoptError(f"blur_kernel={blur_kernel!r} is not allowed: must be an odd integer >= 3")
        if blur_sigma is not None and (
            isinstance(blur_sigma, bool)
            or not isinstance(blur_sigma, (int, float))
            or not math.isfinite(blur_sigma)
            or blur_sigma <= 0
        ):
            raise FvoptError(f"blur_sigma={blur_sigma!r} is not allowed: must be a finite number > 0")
        if not blur_every and (blur_kernel is not None or blur_sigma is not None):
            raise FvoptError(
                "blur_kernel and blur_sigma take effect only with blur_every=N (N > 0): give blur_every too"
            )
        self.kind = kind
        self.lr = DEFAULT_LR[kind] if lr is None else lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.blur_every = blur_every
        self.blur_kernel = DEFAULT_BLUR_KERNEL if blur_kernel is None else blur_kernel
        self.blur_sigma = DEFAULT_BLUR_SIGMA if blur_sigma is None else float(blur_sigma)

    def check(self, param, batch: int, budget=None) -> StepCost:
        if self.blur_every:
            exact_blur(param, self.blur_kernel, self.blur_sigma)
        if self.nesterov and self.kind != "momentum":
            raise FvoptError(f"nesterov applies to the momentum optimizer, not {self.kind}")
        return StepCost(batch, batch)

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        self.blur = exact_blur(problem.param, self.blur_kernel, self.blur_sigma) if self.blur_every else None
        super().start(problem, z0)

    def make_optimizer(self, z: torch.Tensor) -> torch.optim.Optimizer:
        if self.kind == "adam":
            return torch.optim.Adam([z], lr=self.lr, maximize=True)
        mom = self.momentum if self.kind == "momentum" else 0.0
        return torch.optim.SGD([z], lr=self.lr, momentum=mom, nesterov=self.nesterov and mom > 0, maximize=True)

    def before_step(self, problem: Problem) -> None:
        if self.blur is not None and self.steps % self.blur_every == 0:
            with torch.no_grad():
                self.z.copy_(self.blur(self.z))

    def process(self, grad: torch.Tensor) -> torch.Tensor:
        return normalize_std(grad) if self.kind == "normalized" else grad

    def status(self) -> dict:
        out: dict = {"lr": self.lr, **super().status()}
        if self.blur_every:
            out["blur"] = {"every": self.blur_every, "kernel": self.blur_kernel, "sigma": self.blur_sigma}
        return out


DEFAULT_BLUR_KERNEL = 3  # the classic recipe's 3x3 kernel and sigma: `blur_every=N` alone blurs as it does
DEFAULT_BLUR_SIGMA = 0.5


def gaussian_kernel2d(
    size: int, sigma: float, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The normalized (size, size) Gaussian of torchvision's `gaussian_blur`: the outer product of
    exp(-x^2 / 2 sigma^2) sampled at the integers -size//2..size//2, normalized in 1-D."""
    x = torch.linspace(-(size // 2), size // 2, size, dtype=torch.float64)
    k1 = torch.exp(-0.5 * (x / sigma) ** 2)
    k1 = k1 / k1.sum()
    return (k1[:, None] * k1[None, :]).to(dtype=dtype, device=device)


def blur_images(x: torch.Tensor, kernel: torch.Tensor, padding: str) -> torch.Tensor:
    """Each channel of x (n, c, h, w) convolved with `kernel` (k, k), borders padded by `padding`
    ('reflect' as torchvision's gaussian_blur, or 'replicate')."""
    k = kernel.shape[-1]
    weight = kernel.to(x.dtype).expand(x.shape[1], 1, k, k)
    return F.conv2d(F.pad(x, [k // 2] * 4, mode=padding), weight, groups=x.shape[1])


def circular_response(size: int | tuple[int, int], kernel: torch.Tensor) -> torch.Tensor:
    """The frequency response (H, W//2+1) of `kernel` as a circular convolution on an H x W image
    (`size` a side or (H, W)): real, because the kernel is symmetric about its center, which sits
    at pixel (0, 0)."""
    from ..io.canvas import hw as _hw

    height, width = _hw(size)
    k = kernel.shape[-1]
    h = torch.zeros(height, width, dtype=torch.float64)
    rows = (torch.arange(k) - k // 2) % height
    cols = (torch.arange(k) - k // 2) % width
    h.index_put_((rows[:, None].expand(k, k), cols[None, :].expand(k, k)), kernel.double(), accumulate=True)
    return torch.fft.rfft2(h).real.float()


def exact_blur(param: Parameterization, kernel_size: int, sigma: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """z -> the z whose rendered image is the blurred one, for parameterizations where that is exact.

    What is blurred, exactly:
    - `raw`: the image itself, reflect-padded borders: equal to torchvision's `gaussian_blur`;
    - `pixel`: the logit image before the sigmoid, replicate-padded (today's pixel blur, now with
      any kernel); with `decorrelate` too, since the per-pixel color matrix commutes with a blur
      applied alike to every channel;
    - `fft` and `fft:k=K`: the image before the color matrix and the sigmoid, as a circular
      convolution, by multiplying every spectral coefficient by the kernel's frequency response
      (a frequency cut-off stays a cut-off, so the low-dimensional form is exact too);
    - `pyramid`: the summed image before the color matrix and the sigmoid, reflect-padded; the
      difference goes into the finest level, the coarse levels stay as they are.
    Grids upsampled to the image (`pixel:k`, `raw:k`), `pyramid:free`, `maco` (its magnitude is
    fixed) and any other parameterization are refused: blurring them would be an approximation.
    """
    from ..params.fourier import FFTParam
    from ..params.pixel import PixelParam
    from ..params.pyramid import PyramidParam
    from ..params.raw import RawParam

    size = min(param.image_hw)  # the shorter side bounds the kernel
    shape = (param.channels, *param.image_hw)
    kernel = gaussian_kernel2d(kernel_size, sigma, device=param.device)

    def refuse(why: str) -> FvoptError:
        return FvoptError(
            f"blur_every cannot blur {param.name} exactly ({why}): use raw, pixel, fft, fft:k=K or "
            "pyramid, or leave blur_every out"
        )

    if isinstance(param, (RawParam, PixelParam, PyramidParam)) and kernel_size // 2 >= size:
        raise FvoptError(f"blur_kernel={kernel_size} is too large for {size} px images: at most {2 * size - 1}")
    if isinstance(param, (RawParam, PixelParam)):
        if param.grid != param.size:
            raise refuse(f"its {param.grid}x{param.grid} grid is upsampled to {param.size} px")
        padding = "reflect" if isinstance(param, RawParam) else "replicate"
        return lambda z: blur_images(z.view(-1, *shape), kernel, padding).reshape(z.shape)
    if isinstance(param, PyramidParam):

        def blur_pyramid(z: torch.Tensor) -> torch.Tensor:
            total, offset, n = 0, 0, z.shape[0]
            for side in param.sides:
                count = shape[0] * side[0] * side[1]
                level = z[:, offset : offset + count].reshape(n, shape[0], *side)
                offset += count
                total = total + (
                    level
                    if side == shape[1:]
                    else F.interpolate(level, size=shape[1:], mode="bilinear", align_corners=False)
                )
            finest = shape[0] * shape[1] * shape[2]
            out = z.clone()
            out[:, :finest] += (blur_images(total, kernel, "reflect") - total).reshape(n, finest)
            return out

        return blur_pyramid
    full = param.full
    if isinstance(full, FFTParam):
        response = circular_response(param.image_hw, kernel)[None, :, :, None].expand(full.spectrum_shape).reshape(-1)
        response = response.to(param.device)
        if full is param:
            return lambda z: z * response
        if isinstance(param, Subspace):
            frozen = torch.ones(full.dim, dtype=torch.bool, device=param.base.device)
            frozen[param.index] = False
            if bool((param.base[frozen] != 0).any()):
                raise refuse("its frozen coefficients are not zero")
            free = response[param.index]
            return lambda z: z * free
    raise refuse("it has no exact image blur")


FIRST_ORDER_OPTIONS = {
    "lr": Option(float, low=0, low_open=True, help="learning rate"),
    "blur_every": Option(int, low=0, help="blur the image at steps 0, N, 2N, ... (0: never); raw, pixel, fft, pyramid"),
    "blur_kernel": Option(int, low=3, help="odd Gaussian kernel side in px (default 3)"),
    "blur_sigma": Option(float, low=0, low_open=True, help="Gaussian sigma in px (default 0.5)"),
    "result": RESULT,
}
MOMENTUM_OPTIONS = {
    **FIRST_ORDER_OPTIONS,
    "momentum": Option(float, low=0, high=1, high_open=True),
    "nesterov": Option(bool),
}


def _factory(kind: str) -> Callable[..., GradientAscent]:
    """A factory for one first-order kind: the kind is fixed here, never an option a user can set."""
    return functools.partial(GradientAscent, kind)


register("sgd", "plain gradient ascent (torch.optim.SGD)", FIRST_ORDER_OPTIONS)(_factory("sgd"))
register("momentum", "SGD with momentum 0.9 (nesterov=true for Nesterov)", MOMENTUM_OPTIONS)(_factory("momentum"))
register("adam", "Adam, lr 0.05 (Lucent's default)", FIRST_ORDER_OPTIONS)(_factory("adam"))
register("normalized", "steps along g / std(g): DeepDream's normalized gradient ascent", FIRST_ORDER_OPTIONS)(
    _factory("normalized")
)
