"""A folder of varied images made on the spot, for demos, tests and benchmarks when no photo
collection is at hand: crops of every scikit-image photo (color and gray) and synthetic families
(oriented gratings, checkerboards, colored disks, smooth color ramps, 1/f noise textures), written
as JPEG, PNG and WebP, some gray, some RGBA, some 16-bit, at several depths of folders.

It is *not* a natural-image set; it stands in for the breadth of a real folder: many independent
sources, so a unit's top and bottom examples do not all come from one or two photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

FAMILIES = ("grating", "checker", "disks", "ramp", "pinknoise", "photo")


def _grating(rng, side):
    theta, freq = rng.uniform(0, np.pi), rng.uniform(3, 20)
    y, x = np.mgrid[0:side, 0:side] / side
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)))
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    return wave[..., None] * a + (1 - wave[..., None]) * b


def _checker(rng, side):
    cells = int(rng.integers(3, 14))
    y, x = np.mgrid[0:side, 0:side] * cells // side
    mask = ((y + x) % 2)[..., None]
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    return mask * a + (1 - mask) * b


def _disks(rng, side):
    img = np.ones((side, side, 3)) * rng.uniform(0, 1, 3)
    y, x = np.mgrid[0:side, 0:side]
    for _ in range(int(rng.integers(3, 12))):
        cy, cx, r = rng.uniform(0, side, 2).tolist() + [rng.uniform(side / 20, side / 4)]
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    return img


def _ramp(rng, side):
    y, x = np.mgrid[0:side, 0:side] / side
    t = x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1)
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
    return t[..., None] * rng.uniform(0, 1, 3) + (1 - t[..., None]) * rng.uniform(0, 1, 3)


def _pinknoise(rng, side):
    fy, fx = np.fft.fftfreq(side)[:, None], np.fft.fftfreq(side)[None, :]
    amp = 1 / np.maximum(np.sqrt(fy**2 + fx**2), 1 / side)
    out = []
    for _ in range(3):
        spec = amp * np.exp(2j * np.pi * rng.uniform(size=(side, side)))
        ch = np.fft.ifft2(spec).real
        out.append((ch - ch.min()) / max(np.ptp(ch), 1e-9))
    return np.stack(out, -1)


def _photo(rng, side, photos):
    name = photos[int(rng.integers(len(photos)))]
    arr = photos_cache(name)
    h, w = arr.shape[:2]
    c = int(min(h, w) * rng.uniform(0.3, 1.0))
    y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
    crop = Image.fromarray(arr[y0 : y0 + c, x0 : x0 + c]).resize((side, side), Image.BILINEAR)
    return np.asarray(crop, dtype=np.float64) / 255.0


_PHOTOS: dict[str, np.ndarray] = {}
PHOTO_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "coins",
    "moon",
    "grass",
    "gravel",
    "brick",
)


def photos_cache(name: str) -> np.ndarray:
    if name not in _PHOTOS:
        import skimage.data

        arr = getattr(skimage.data, name)()
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, -1)
        _PHOTOS[name] = np.ascontiguousarray(arr[..., :3])
    return _PHOTOS[name]


def make_folder(root: str | Path, n: int = 200, side: int = 160, seed: int = 0) -> Path:
    """Write `n` images under `root` (in family folders, some one level deeper), in mixed formats and modes."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    makers = {"grating": _grating, "checker": _checker, "disks": _disks, "ramp": _ramp, "pinknoise": _pinknoise}
    for i in range(n):
        family = FAMILIES[i % len(FAMILIES)]
        img = _photo(rng, side, PHOTO_NAMES) if family == "photo" else makers[family](rng, side)
        arr8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
        folder = root / family / (f"part{i % 3}" if i % 4 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        kind = i % 7
        if kind == 0:
            Image.fromarray(arr8).convert("L").save(folder / f"{i:04d}.png")  # gray
        elif kind == 1:
            rgba = Image.fromarray(arr8).convert("RGBA")
            rgba.putalpha(255)
            rgba.save(folder / f"{i:04d}.png")
        elif kind == 2:
            gray16 = (np.clip(img.mean(-1), 0, 1) * 65535).astype(np.uint16)
            Image.fromarray(gray16).save(folder / f"{i:04d}.png")  # 16-bit gray
        elif kind == 3:
            Image.fromarray(arr8).save(folder / f"{i:04d}.webp", quality=90)
        else:
            Image.fromarray(arr8).save(folder / f"{i:04d}.jpg", quality=90)
    return root
