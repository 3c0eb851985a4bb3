"""Saving images: one PNG, or a labelled grid for a batch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .atomic import atomic_path
from ..errors import FvoptError


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(n, 3, H, W) in [0,1] -> (n, H, W, 3) uint8; one channel -> (n, H, W) (grayscale)."""
    x = images.detach().float().clamp(0, 1).mul(255).round().byte().cpu()
    if x.shape[1] == 1:
        return x[:, 0].numpy()
    return x.permute(0, 2, 3, 1).numpy()


def channel_grid(images: torch.Tensor) -> torch.Tensor:
    """Images of other than 1 or 3 channels as grayscale pictures, one row per image and one
    column per channel (separated by a 2 px white line): (n, C, H, W) -> (1, 1, H', W')."""
    n, c, h, w = images.shape
    pad = 2
    canvas = torch.ones(1, 1, n * (h + pad) - pad, c * (w + pad) - pad)
    x = images.detach().float().cpu()
    for i in range(n):
        for j in range(c):
            canvas[0, 0, i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = x[i, j]
    return canvas


def grid(
    images: torch.Tensor, labels: Sequence[str] | None = None, columns: int | None = None, pad: int = 2
) -> Image.Image:
    """A grid of the batch, with a caption under each image when labels are given."""
    arr = to_uint8(images)
    n, h, w = arr.shape[:3]
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
    """One image as a PNG of its own size; several as a labelled grid. Creates parent folders.

    One channel is saved as grayscale, three as RGB; any other count as a grayscale grid of its
    channels (a row per image, a column per channel) plus `NAME.npy`, the raw values (n, C, H, W)
    as float32, since no picture format holds them."""
    path = Path(path)
    if images.shape[1] not in (1, 3):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path.with_suffix(".npy")) as tmp:
                np.save(tmp, images.detach().float().cpu().numpy())
            with atomic_path(path) as tmp:
                Image.fromarray(to_uint8(channel_grid(images))[0]).save(tmp)
        except (OSError, ValueError) as err:
            raise FvoptError(f"cannot write image '{path}': {err}") from err
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if images.shape[0] == 1 and not labels:
            with atomic_path(path) as tmp:  # whole or absent, even if a signal lands mid-write
                Image.fromarray(to_uint8(images)[0]).save(tmp)
        else:
            with atomic_path(path) as tmp:
                grid(images, labels).save(tmp)
    except (OSError, ValueError) as err:
        raise FvoptError(f"cannot write image '{path}': {err}") from err
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
        raise FvoptError(
            f"cannot read image '{path}': {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from err


def load_image(path: str | Path, channels: int = 3) -> torch.Tensor:
    """A photo as (1, channels, H, W) in [0,1]; a missing or unreadable file is a clear error.

    Pictures are read as RGB (3 channels) or grayscale (1); other channel counts come from a
    `.npy` array (see `load_array`). Check `image_size(path)` against memory first: decoding
    allocates the full image.
    """
    return torch.from_numpy(load_array(path, channels))[None].contiguous()


def load_array(path: str | Path, channels: int = 3) -> np.ndarray:
    """An image file as a float32 array (channels, H, W) in [0,1]: a picture read as RGB or
    grayscale, or a `.npy` array (C, H, W), (H, W, C) or (H, W) holding values in [0, 1]."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise FvoptError(f"input array '{path}' does not exist")
        try:
            arr = np.load(path, allow_pickle=False).astype(np.float32)
        except Exception as err:
            raise FvoptError(
                f"cannot read array '{path}': {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from err
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise FvoptError(f"array '{path}' has shape {arr.shape}: give (C, H, W) or (H, W, C)")
        if arr.shape[0] != channels and arr.shape[-1] == channels:
            arr = np.moveaxis(arr, -1, 0)
        if arr.shape[0] != channels:
            raise FvoptError(f"array '{path}' of shape {arr.shape} has no axis of {channels} channels, the network's")
        if not np.isfinite(arr).all():
            raise FvoptError(f"array '{path}' holds NaN or infinite values")
        return np.ascontiguousarray(arr)
    if channels not in (1, 3):
        raise FvoptError(
            f"'{path}' is a picture (grayscale or RGB), and the network takes {channels} channels: give "
            f"a .npy array of shape ({channels}, H, W) with values in [0, 1]"
        )
    image_size(path)
    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img.convert("RGB" if channels == 3 else "L"), dtype=np.float32) / 255.0
    except Exception as err:
        raise FvoptError(
            f"cannot read image '{path}': {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from err
    return arr.transpose(2, 0, 1).copy() if channels == 3 else arr[None].copy()


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
        blocking = next((p for p in path.parents if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise FvoptError(f"{what} '{_short(path)}' cannot be written: '{blocking}' is a file, not a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".fvopt-probe-"):
            pass
    except OSError as err:
        raise FvoptError(f"{what} '{_short(path)}' is not writable: {err.strerror or err}") from err


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm")


def image_formats() -> dict[str, str]:
    """Common RGB image extensions this Pillow can write, mapped to their format ('.png' -> 'PNG')."""
    Image.init()
    known = Image.registered_extensions()
    return {ext: known[ext] for ext in IMAGE_EXTENSIONS if ext in known and known[ext] in Image.SAVE}


ALPHA_EXTENSIONS = (".png", ".webp", ".tif", ".tiff")  # formats that keep an alpha channel (RGBA)


def check_image_path(path: str | Path, what: str = "image output", alpha: bool = False) -> None:
    """An image path whose extension Pillow can write (with an alpha channel, when `alpha`), in a
    writable folder: checked before any work, so a run is never lost to a name it cannot be saved under."""
    path = Path(path)
    ext = path.suffix.lower()
    allowed = [e for e in image_formats() if e in ALPHA_EXTENSIONS] if alpha else list(image_formats())
    if ext not in allowed:
        hint = f" (e.g. '{path}.png')" if not ext else ""
        kind = "an image with transparency (RGBA)" if alpha else "an image"
        raise FvoptError(
            f"{what} '{path}' has {'no extension' if not ext else f'extension {ext!r}'}, which cannot "
            f"be written as {kind}: use .png{hint}, or one of {', '.join(e for e in allowed if e != '.png')}"
        )
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
        raise FvoptError(f"{what} '{_short(folder)}' is not writable: {err.strerror or err}") from err


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
