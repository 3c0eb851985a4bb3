"""Small tensors onto the model's device without a host sync, and constants cached per device.

Why: at batch 1 a GPU step takes a few milliseconds, and a blocking host-to-device copy (a
transform matrix, an index table, a kernel) or a read back to the host stalls the stream each
time. Copies from pinned memory with `non_blocking=True` do not; constants are made once per
device and dtype.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

_CONSTANTS: dict[tuple, torch.Tensor] = {}


def to_device(
    data: np.ndarray | torch.Tensor | list, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """`data` as a tensor on `device`; on CUDA through pinned memory, asynchronously."""
    t = torch.as_tensor(data, dtype=dtype)
    if device.type == "cpu":
        return t
    if device.type == "cuda":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def cached(key: tuple, device: torch.device, make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """A constant made once per (key, device) by `make()` on the CPU, then kept on `device`."""
    full = (*key, str(device))
    if full not in _CONSTANTS:
        _CONSTANTS[full] = make().to(device)
    return _CONSTANTS[full]
