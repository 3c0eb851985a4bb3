"""Interleaved timing: alternate two calls so that both see the same machine load."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    a: Callable[[], None], b: Callable[[], None], rounds: int, device: torch.device, warmup: int = 3
) -> tuple[float, float]:
    """Median seconds of `a` and of `b`, timed alternately a, b, a, b, ... after a warm-up."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for _ in range(rounds):
        for f, out in ((a, ta), (b, tb)):
            sync(device)
            start = time.perf_counter()
            f()
            sync(device)
            out.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)
