"""Saving images: one PNG, or a labelled grid for a batch."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .errors import FvoptError


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(n, 3, H, W) in [0,1] -> (n, H, W, 3) uint8."""
    x = images.detach().float().clamp(0, 1).mul(255).round().byte().cpu()
    return x.permute(0, 2, 3, 1).numpy()


def grid(images: torch.Tensor, labels: Sequence[str] | None = None, columns: int | None = None, pad: int = 2) -> Image.Image:
    """A grid of the batch, with a caption under each image when labels are given."""
    arr = to_uint8(images)
    n, h, w, _ = arr.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    caption = 12 if labels else 0
    canvas = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + caption + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        r, c = divmod(i, cols)
        x0, y0 = pad + c * (w + pad), pad + r * (h + caption + pad)
        canvas.paste(Image.fromarray(arr[i]), (x0, y0))
        if labels:
            draw.text((x0 + 1, y0 + h), str(labels[i])[: max(4, w // 6)], fill="black")
    return canvas


def save_images(images: torch.Tensor, path: str | Path, labels: Sequence[str] | None = None) -> Path:
    """One image as a PNG of its own size; several as a labelled grid. Creates parent folders."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if images.shape[0] == 1 and not labels:
            Image.fromarray(to_uint8(images)[0]).save(path)
        else:
            grid(images, labels).save(path)
    except (OSError, ValueError) as err:
        raise FvoptError(f"cannot write image '{path}': {err}") from None
    return path


def load_image(path: str | Path) -> torch.Tensor:
    """A photo as (1, 3, H, W) in [0,1]; a missing or unreadable file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FvoptError(f"input image '{path}' does not exist")
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except Exception as err:
        raise FvoptError(f"cannot read image '{path}': {err}") from None
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def check_writable(path: str | Path | None) -> None:
    """Fail before a long run, not after it: create the folder and a probe file next to `path`."""
    if path is None:
        return
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise FvoptError(f"output path '{path}' is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".fvopt-probe-"):
            pass
    except OSError as err:
        raise FvoptError(f"output path '{path}' is not writable: {err.strerror or err}") from None
