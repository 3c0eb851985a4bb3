"""Refuse image sizes that cannot fit in memory, with the estimate, before allocating anything.

A `--size 100000` or a photo that declares 10000x10000 pixels would otherwise allocate tens of
gigabytes in the first forward pass and die with a MemoryError traceback after minutes. The
estimate scales the activation memory of one small probe pass (every module's output, measured
once per model) by the number of pixels; it is a lower bound, and refuses only what cannot fit.
"""

from __future__ import annotations

import os

import torch

from ..errors import FvoptError

PROBE_SIDE = 64
FLOAT_BYTES = 4


def available_bytes(device: torch.device) -> int | None:
    """Free memory on `device` now: the GPU's free memory, or the machine's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def activation_values_per_pixel(model) -> float:
    """Values all layers of `model` output per input pixel (probed once at 64 px, then cached)."""
    cache = model.__dict__.setdefault("_memory_cache", {})
    if "per_pixel" not in cache:
        side = max(PROBE_SIDE, model.min_size)
        total = 0
        handles = []

        def hook(module, inputs, output):
            nonlocal total
            if isinstance(output, torch.Tensor):
                total += output.numel()

        try:
            for module in model.net.modules():
                if isinstance(module, torch.jit.ScriptModule):  # TorchScript takes no hooks: not counted
                    continue
                if not list(module.children()):  # leaves: containers would count their children twice
                    handles.append(module.register_forward_hook(hook))
            with torch.no_grad():
                model(model.blank(side))
        finally:
            for h in handles:
                h.remove()
        cache["per_pixel"] = total / (side * side)
    return cache["per_pixel"]


def estimate_bytes(model, side: int, images: int, backward: bool) -> int:
    """Bytes one pass over `images` images of side x side needs, at least (activations kept for backward)."""
    pixels = side * side * images
    values = pixels * (
        activation_values_per_pixel(model) * (2 if backward else 1) + getattr(model, "channels", 3) * 8
    )  # + image copies
    return int(values * FLOAT_BYTES)


def check_fits(model, side: int, images: int = 1, backward: bool = True, what: str = "", extra_bytes: int = 0) -> None:
    """FvoptError naming the estimate and the free memory when `images` of `side` px cannot fit."""
    free = available_bytes(model.device)
    if free is None:
        return
    need = estimate_bytes(model, side, images, backward) + extra_bytes
    if need > free:
        advice = (
            (
                f"use at most about {int(side * (free / need) ** 0.5)} px"
                f"{' or a smaller batch/population' if images > 1 else ''}"
            )
            if not extra_bytes
            else "use a smaller photo (or a smaller tile)"
        )
        raise FvoptError(
            f"{what or f'{images} image(s) of {side}x{side} px'} need about {_gb(need)} for one "
            f"{'forward and backward' if backward else 'forward'} pass through {model.name} (estimated from its "
            f"activations), and {model.device.type} has {_gb(free)} free: {advice}"
        )


def largest_pass(forwards: int, max_batch: "int | str | None", slots: int) -> int:
    """The images of a step's largest forward pass, which is what must fit: a step's `forwards` go through
    in chunks of `max_batch` ('auto' or None: the smallest, 1, since auto picks what fits), and one
    candidate's `slots` images are never split."""
    chunk = max_batch if isinstance(max_batch, int) else 1
    return min(forwards, max(chunk, slots))


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def images_that_fit(model, side: int, backward: bool = False, share: float = 0.5, most: int = 4096) -> int:
    """How many images of `side` px one pass can take using `share` of the free memory: the
    population chunk size for `max_batch="auto"` (a fixed 32 wastes a large GPU and overflows a small one)."""
    free = available_bytes(model.device)
    if free is None:
        return 32
    return int(max(1, min(most, share * free // max(1, estimate_bytes(model, side, 1, backward)))))
