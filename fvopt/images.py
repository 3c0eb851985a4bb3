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


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) a photo declares in its header, read without decoding its pixels."""
    path = Path(path)
    if not path.is_file():
        raise FvoptError(f"input image '{path}' does not exist")
    try:
        with Image.open(path) as img:
            return img.size
    except Exception as err:  # Pillow raises many kinds for broken files
        raise FvoptError(f"cannot read image '{path}': {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def load_image(path: str | Path) -> torch.Tensor:
    """A photo as (1, 3, H, W) in [0,1]; a missing or unreadable file is a clear error.

    Check `image_size(path)` against memory first: decoding allocates the full image.
    """
    path = Path(path)
    image_size(path)
    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except Exception as err:
        raise FvoptError(f"cannot read image '{path}': {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def _short(path) -> str:
    """A path for a one-line message: very long ones are cut in the middle."""
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]} ({len(text)} characters)"


def check_writable(path: str | Path | None, what: str = "output path") -> None:
    """Fail before a long run, not after it: create the folder and a probe file next to `path`."""
    if path is None:
        return
    import tempfile

    path = Path(path)
    try:
        if path.is_dir():
            raise FvoptError(f"{what} '{path}' is a folder, not a file")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".fvopt-probe-"):
            pass
    except OSError as err:
        raise FvoptError(f"{what} '{_short(path)}' is not writable: {err.strerror or err}") from None


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm")


def image_formats() -> dict[str, str]:
    """Common RGB image extensions this Pillow can write, mapped to their format ('.png' -> 'PNG')."""
    Image.init()
    known = Image.registered_extensions()
    return {ext: known[ext] for ext in IMAGE_EXTENSIONS if ext in known and known[ext] in Image.SAVE}


def check_image_path(path: str | Path, what: str = "image output") -> None:
    """An image path whose extension Pillow can write, in a writable folder: checked before any work."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in image_formats():
        common = ", ".join(image_formats())
        raise FvoptError(f"{what} '{path}' has {'no extension' if not ext else f'extension {ext!r}'}, which cannot "
                         f"be written as an image: use one of {common}")
    check_writable(path, what)


def check_folder_writable(folder: str | Path | None, what: str) -> None:
    """A folder that will receive files during a run: created and probed now, not at the first write."""
    if folder is None:
        return
    import tempfile

    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise FvoptError(f"{what} '{folder}' is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fvopt-probe-"):
            pass
    except OSError as err:
        raise FvoptError(f"{what} '{_short(folder)}' is not writable: {err.strerror or err}") from None


def check_distinct(**paths: str | Path | None) -> None:
    """Two outputs at one path would silently overwrite each other (an image replaced by JSON)."""
    seen: dict[Path, str] = {}
    for name, path in paths.items():
        if path is None:
            continue
        resolved = Path(path).expanduser().resolve()
        if resolved in seen:
            raise FvoptError(f"--{seen[resolved]} and --{name} are the same file '{path}': give them different paths")
        seen[resolved] = name
