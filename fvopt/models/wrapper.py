"""A network plus the preprocessing it expects, so everything above it works in [0,1] images.

`FeatureModel` is what every part of fvopt drives; `wrap` makes one from any `torch.nn.Module`
with its own preprocessing (channels, mean/std, value range, input size), checked before any work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..io.canvas import Size, hw
from ..errors import FvoptError

if TYPE_CHECKING:
    from .info import LayerInfo

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureModel(nn.Module):
    """A network in eval mode that takes images with values in [0,1], `channels` channels.

    Why a wrapper: objectives, parameterizations and transforms all live in [0,1]; only the model
    knows its input: how many channels, the range its training data had (`value_range`: [0,1] is
    mapped linearly onto it, e.g. (0, 255)), its per-channel normalization, and its natural input
    size (a side or (height, width)). The network sees ((lo + (hi - lo) * x) - mean) / std.
    Layer names are those of `net`.
    """

    def __init__(
        self,
        net: nn.Module,
        name: str,
        input_size: Size = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        min_size: int = 32,
        weights: str = "pretrained",
        fixed_size: bool | None = False,
        interpolation: str = "bilinear",
        channels: int = 3,
        value_range: tuple[float, float] = (0.0, 1.0),
        hookable: str | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.input_size = input_size
        self.min_size = min_size
        self.weights = weights
        self.channels = channels
        self.value_range = (float(value_range[0]), float(value_range[1]))
        # None: forward hooks work on the layers; else why they do not (TorchScript: class targets only)
        self.hookable = hookable
        self.interpolation = interpolation if interpolation in ("bilinear", "bicubic") else "bilinear"
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1), persistent=False)
        _disable_inplace(net)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        # probed here, before any hook of fvopt's exists: a probe inside a hooked pass would be recorded
        self.fixed_size = self._runs_only_at_input_size() if fixed_size is None else fixed_size

    def train(self, mode: bool = True) -> "FeatureModel":
        # BatchNorm in train mode couples the images of a batch: a feature model is always in eval.
        return super().train(False)

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) of the network's natural input."""
        return hw(self.input_size)

    def blank(self, size: Size | None = None, n: int = 1) -> torch.Tensor:
        """n mid-gray images of `size` (default: the input size) with the network's channels: the
        probe every shape check feeds."""
        h, w = hw(self.input_size if size is None else size)
        return torch.full((n, self.channels, h, w), 0.5, device=self.device)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[0,1] images as the network was trained to see them: value range, then mean and std."""
        lo, hi = self.value_range
        if (lo, hi) != (0.0, 1.0):
            images = lo + (hi - lo) * images
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of [0,1] images, at the images' own size; a fixed-size model (a
        vision transformer with position embeddings, an exported program with a static shape)
        sees them resampled to its input size with its own interpolation, as Lucent does for
        small images."""
        if images.shape[1] != self.channels:
            raise FvoptError(
                f"{self.name} takes {self.channels}-channel images, not {images.shape[1]} channels "
                f"(shape {tuple(images.shape)})"
            )
        size = self.input_hw
        if self.fixed_size and tuple(images.shape[-2:]) != size:
            images = F.interpolate(
                images, size=size, mode=self.interpolation, align_corners=False, antialias=images.shape[-1] > size[1]
            )
        return self.net(self.preprocess(images))

    def _runs_only_at_input_size(self) -> bool:
        """Whether the network runs only at its input size (position embeddings, fixed windows,
        token-mixing MLPs, a flatten before a linear layer), for networks whose loader cannot tell:
        one forward pass at another size. A network that cannot run there is fed images resampled
        to its input size."""
        h, w = self.input_hw
        other = (h - 32, w - 32) if min(h, w) - 32 >= self.min_size else (h + 16, w + 16)
        try:
            with torch.no_grad():
                self.net(self.preprocess(self.blank(other)))
        except OUT_OF_MEMORY:  # memory, not size: never read as "fixed size"
            raise
        except SIZE_ERRORS:
            # A shape mismatch reads as "fixed size" only if the network runs at its own input size;
            # if it fails there too, the error is not about size: one line naming it, the cause kept.
            # Any other exception (a TypeError, an AttributeError: a bug) goes up as it is.
            try:
                with torch.no_grad():
                    self.net(self.preprocess(self.blank((h, w))))
            except OUT_OF_MEMORY:
                raise
            except SIZE_ERRORS as at_input:
                text = (str(at_input).strip().splitlines() or [""])[0][:160]
                raise FvoptError(
                    f"{self.name} fails on a blank image of its own input size {h}x{w} px "
                    f"({type(at_input).__name__}: {text}): check its input size and channels"
                ) from at_input
            return True
        return False

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def layer_names(self) -> list[str]:
        """Every named module of the network (hookable or not, used or not)."""
        return [name for name, _ in self.net.named_modules() if name]

    def layers(self, size: Size | None = None) -> list["LayerInfo"]:
        """Every layer that produced an output, in forward order, as `models.LayerInfo`: `name` (what
        a target names), `kind` (module type), `shape` (output for one image at `size` px, default the
        input size; a fixed-size network is always probed at its input size), `layout`, and `describe()`.
        A module that runs more than once per forward is listed with its call count (`calls`,
        `spellings`) and then once per call as `NAME#K`, each with its own shape; only those `#K` names
        can be targeted. Probed once per size, then cached."""
        from ..io.canvas import describe, parse_size
        from .info import cached_layers

        size = parse_size(size)
        if size is not None and min(hw(size)) < self.min_size:
            raise FvoptError(
                f"size {describe(size)} px is too small for {self.name}: at least {self.min_size} px a side"
            )
        return list(cached_layers(self, self.input_size if self.fixed_size or size is None else size).values())

    def describe_input(self) -> dict:
        """What the network is fed, for traces: channels, size, value range, normalization."""
        return {
            "channels": self.channels,
            "input_size": list(self.input_hw),
            "value_range": list(self.value_range),
            "mean": [round(v, 6) for v in self.mean.flatten().tolist()],
            "std": [round(v, 6) for v in self.std.flatten().tolist()],
            "fixed_size": bool(self.fixed_size),
        }


# What a network raises for an input of a size it cannot take: torch's shape checks (RuntimeError),
# timm's patch embedding (AssertionError), size checks of user code (ValueError), index arithmetic.
SIZE_ERRORS = (RuntimeError, AssertionError, ValueError, IndexError)
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # a RuntimeError: checked first


def _disable_inplace(net: nn.Module) -> None:
    """An in-place activation after a hooked layer would overwrite what the hook captured."""
    for module in net.modules():
        if isinstance(module, torch.jit.ScriptModule):  # no hooks on it, and its constants are frozen
            continue
        if getattr(module, "inplace", False) is True:
            module.inplace = False
