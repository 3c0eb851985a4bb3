"""A network plus the preprocessing it expects, so everything above it works in [0,1] RGB."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureModel(nn.Module):
    """An image classifier in eval mode that takes [0,1] RGB images.

    Why a wrapper: objectives, parameterizations and transforms all live in [0,1] RGB; only the
    model knows its normalization and its natural input size. Layer names are those of `net`.
    """

    def __init__(
        self,
        net: nn.Module,
        name: str,
        input_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        min_size: int = 32,
        weights: str = "pretrained",
        fixed_size: bool | None = False,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.input_size = input_size
        self.min_size = min_size
        self.weights = weights
        self.interpolation = interpolation if interpolation in ("bilinear", "bicubic") else "bilinear"
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        _disable_inplace(net)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        # probed here, before any hook of fvopt's exists: a probe inside a hooked pass would be recorded
        self.fixed_size = self._runs_only_at_input_size() if fixed_size is None else fixed_size

    def train(self, mode: bool = True) -> "FeatureModel":
        # BatchNorm in train mode couples the images of a batch: a feature model is always in eval.
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of [0,1] RGB images, at the images' own size; a fixed-size model (a
        vision transformer with position embeddings) sees them resampled to its input size with
        its own interpolation, as Lucent does for small images."""
        if self.fixed_size and tuple(images.shape[-2:]) != (self.input_size, self.input_size):
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode=self.interpolation,
                                   align_corners=False, antialias=images.shape[-1] > self.input_size)
        return self.net((images - self.mean) / self.std)

    def _runs_only_at_input_size(self) -> bool:
        """Whether the network runs only at its input size (position embeddings, fixed windows,
        token-mixing MLPs), for networks whose loader cannot tell: one forward pass at another size.
        A network that cannot run there is fed images resampled to its input size."""
        side = max(self.min_size, self.input_size - 32)
        try:
            with torch.no_grad():
                self.net((torch.full((1, 3, side, side), 0.5, device=self.device) - self.mean) / self.std)
        except Exception:
            return True
        return False

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def layer_names(self) -> list[str]:
        return [name for name, _ in self.net.named_modules() if name]


def _disable_inplace(net: nn.Module) -> None:
    """An in-place activation after a hooked layer would overwrite what the hook captured."""
    for module in net.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
