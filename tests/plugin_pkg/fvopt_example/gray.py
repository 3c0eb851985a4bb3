import torch
import torch.nn.functional as F

from fvopt.config.options import Option
from fvopt.params.base import Parameterization
from fvopt.params.registry import register_param


class GrayParam(Parameterization):
    """One sigmoid logit per pixel, the same in the three colors; `grid` < size is a coarse form."""

    def __init__(self, size: int, grid: int | None = None) -> None:
        super().__init__()
        self.size, self.grid = size, grid or size
        self.dim = self.grid * self.grid
        self.name = "gray" if self.grid == size else f"gray:k={self.grid}"

    def init(self, n, generator):
        return torch.randn((n, self.dim), generator=generator) * 0.01

    def _logits(self, z):
        x = z.reshape(-1, 1, self.grid, self.grid)
        return x if self.grid == self.size else F.interpolate(x, size=(self.size, self.size), mode="bilinear")

    def forward(self, z):
        return torch.sigmoid(self._logits(z)).expand(-1, 3, -1, -1)

    @property
    def full(self):
        return self if self.grid == self.size else GrayParam(self.size)

    def lift(self, z):  # the full form's vector with the same image
        return self._logits(z).reshape(z.shape[0], -1)

    def reduced(self):
        return self if self.grid != self.size else GrayParam(self.size, min(16, self.size))


@register_param("gray", "grayscale pixels; gray:k=G is a GxG grid", {"k": Option(int, low=1)}, ("gray", "gray:k=8"))
def _build_gray(size: int, k: int | None = None) -> GrayParam:
    return GrayParam(size, k)
