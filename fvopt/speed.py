"""Opt-in speed settings for the network pass, and the reproducibility switch.

Each is off by default: none has been measured on a GPU by this project yet (benchmarks/gpu.py
prints the ratios where a GPU is present), and bf16 changes the values a little, so a comparison
must say which settings it used (the trace does).

- `bf16`: autocast the network pass to bfloat16 (objective values are read back in float32).
- `channels_last`: NHWC memory format for the network and its input (faster convolutions on
  tensor cores; depthwise convolutions may be slower: measure).
- `cudnn_benchmark`: let cuDNN pick the fastest kernels for the fixed shapes of a run.
- `deterministic`: torch's deterministic algorithms (warn where an op has none, e.g. the
  backward of grid_sample on CUDA). Same seed, same device type: same result. CPU and CUDA
  random generators differ, so a run on one does not reproduce a run on the other.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Speed:
    bf16: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False
    deterministic: bool = False

    def apply_globally(self) -> None:
        """Process-wide switches: cuDNN autotuning and deterministic algorithms."""
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        if self.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)

    def prepare(self, net: torch.nn.Module) -> None:
        if self.channels_last:
            net.to(memory_format=torch.channels_last)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def autocast(self, device: torch.device):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def describe(self) -> dict:
        return asdict(self)


EAGER = Speed()
