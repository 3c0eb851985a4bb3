"""Raw pixels: z is the RGB image itself, the parameterization of the classic class-visualization recipe.

The classic raw-pixel recipe (Simonyan et al. 2014 and the PyTorch class-visualization scripts
that follow it) optimizes the image tensor directly with SGD, penalizes a sum of squares, blurs
every few steps and, in its clipped variant, clips the tensor to the valid range after each step.
`pixel` cannot express that: it optimizes sigmoid logits. `raw` can:

- z is the image in [0, 1] RGB, what the network sees before its own mean/std normalization;
- `raw` (default, unclipped, as the classic recipe): the network sees z exactly as it is, values
  below 0 or above 1 included (its preprocessing then normalizes them like any other value);
  only a saved PNG is clamped to [0, 1]. This form is outside the [0, 1] contract of
  `Parameterization` on purpose, so the conformance suite runs over the clipped forms only;
- `raw:clip=true`: z is clipped to [0, 1] after every first-order update (`project_`, which
  GradientAscent calls after each step: the recipe's mechanism), and rendering clamps too, so any
  other strategy (zero-order, L-BFGS) still shows the network a valid image. Because the
  projection keeps z inside the range, the clamp in `forward` is the identity on the first-order
  path and passes the gradient there, at the bounds included (a clamp alone would zero the
  gradient of every pixel that left the range, and it could never come back).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..io.canvas import hw
from ..config.options import Option
from .base import Parameterization
from .registry import register_param

RAW_INITS = ("uniform", "gray")


class RawParam(Parameterization):
    """One value per pixel and color on a `grid` x `grid` lattice (bilinearly upsampled to `size`).

    `init="uniform"` (default) starts from uniform noise in [0, 1], as the classic recipe's
    `np.random.uniform(0, 255)` image; `init="gray"` starts at 0.5 plus N(0, sd) noise (Simonyan's
    zero image once the dataset mean is added back). Both draw only from the given generator.
    """

    name = "raw"

    def __init__(
        self,
        size: int | tuple[int, int],
        grid: int | None = None,
        clip: bool = False,
        init: str = "uniform",
        sd: float = 0.01,
        channels: int = 3,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.color_source = "none"  # raw values: no decorrelation
        if init not in RAW_INITS:
            raise ValueError(f"raw init must be one of {', '.join(RAW_INITS)}, not '{init}'")
        self.size = size
        self.grid = grid or size
        self.clip = clip
        self.init_mode = init
        self.sd = sd
        self.grid_hw = hw(self.grid)
        self.dim = channels * self.grid_hw[0] * self.grid_hw[1]
        options = [f"k={self.grid}"] if self.grid != size else []
        options += ["clip=true"] if clip else []
        self.name = "raw" + (":" + ",".join(options) if options else "")

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.init_mode == "uniform":
            z = torch.rand((n, self.dim), generator=generator)
        else:
            z = 0.5 + torch.randn((n, self.dim), generator=generator) * self.sd
        return (z.clamp(0, 1) if self.clip else z).to(self.device)

    def _image(self, z: torch.Tensor) -> torch.Tensor:
        x = z.view(-1, self.channels, *self.grid_hw)
        if self.grid != self.size:
            x = F.interpolate(x, size=self.image_hw, mode="bilinear", align_corners=False)
        return x

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self._image(z)
        if not self.clip:
            return x
        # torch.clamp passes no gradient at the bounds themselves, where `project_` puts every clipped
        # value: such a pixel could never move back inside. Pass it at 0 and 1, not beyond.
        return torch.where((x >= 0) & (x <= 1), x, x.detach().clamp(0, 1))

    def from_image(self, images: torch.Tensor) -> torch.Tensor | None:
        """The photo itself is z (full grid only)."""
        return None if self.grid != self.size else images.float().reshape(images.shape[0], -1).clone()

    def project_(self, z: torch.Tensor) -> None:
        """Clip z to [0, 1] in place after an update (clip=true); bilinear upsampling is a convex
        combination, so a clipped grid also renders a clipped image."""
        if self.clip:
            z.clamp_(0, 1)

    @property
    def full(self) -> Parameterization:
        if self.grid == self.size:
            return self
        return RawParam(self.size, None, self.clip, self.init_mode, self.sd, self.channels).to(self.device)

    def lift(self, z: torch.Tensor) -> torch.Tensor:
        """The upsampled image is the full form's z: the same picture, clipped or not."""
        return self._image(z).reshape(z.shape[0], -1)

    def reduced(self) -> Parameterization:
        """A 16 x 16 grid (768 values) upsampled bilinearly, as `pixel:k=16`."""
        if self.grid != self.size:
            return self
        return RawParam(self.size, min(16, *self.image_hw), self.clip, self.init_mode, self.sd, self.channels).to(
            self.device
        )


@register_param(
    "raw",
    "the image itself in [0,1] RGB, unbounded unless raw:clip=true (the classic recipe); "
    "raw:k=G is a GxG grid, upsampled",
    {
        "k": Option(int, low=1),
        "clip": Option(bool),
        "init": Option(str, choices=RAW_INITS),
        "sd": Option(float, low=0, help="noise sd of init=gray"),
    },
    # unclipped `raw` leaves [0, 1] by design, so the [0, 1] contract is checked on the clipped forms
    ("raw:clip=true", "raw:k=8,clip=true", "raw:init=gray,clip=true"),
)
def _build_raw(
    size: int | tuple[int, int], k: int | None = None, *, channels: int = 3, color=None, **options
) -> RawParam:
    if k is not None and not 1 <= k <= min(hw(size)):
        raise ValueError(f"raw grid k must be 1..{min(hw(size))}, not {k}")
    return RawParam(size, grid=k, channels=channels, **options)
