"""Multi-octave DeepDream on a photo of any size, through the same counted Problem as everything else.

The classic loop (Mordvintsev): shrink the photo through octaves; at each octave, from the
smallest up, add the detail dreamed so far, take normalized gradient-ascent steps on the layer
objective (mean of squared activations), and carry the new detail up to the next octave. Tiled
gradients under a random roll keep memory bounded by the tile and hide the tile seams.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import FvoptError
from .memory import check_fits
from .options import IMAGE_SIDE, POSITIVE_FLOAT, POSITIVE_INT, SEED, Option, check
from .models import FeatureModel, load_model, resolve_device
from .objectives import Objective, parse_target
from .params import ImageParam
from .problem import Meter, Problem
from .transforms import make_transforms

DEFAULT_PHOTO = "chelsea"
DREAM_IMAGE_COPIES = 12  # photo, octave base, detail, z, gradient, rolled copies: full-size float images alive at once


@dataclass
class DreamResult:
    image: torch.Tensor  # (1, 3, H, W) in [0,1], the input's size
    octaves: list[torch.Tensor] = field(default_factory=list)  # the image after each octave, smallest first
    trace: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    forwards: int = 0
    backwards: int = 0
    interrupted: bool = False  # Ctrl-C: `image` holds the dream so far, at full size


def sample_photo(name: str = DEFAULT_PHOTO) -> torch.Tensor:
    """A color sample photo shipped with scikit-image, as (1, 3, H, W) in [0,1]."""
    import skimage.data

    if not hasattr(skimage.data, name):
        raise FvoptError(f"scikit-image has no sample photo '{name}'; try chelsea, astronaut, coffee or rocket")
    arr = getattr(skimage.data, name)()
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise FvoptError(f"sample photo '{name}' is not an RGB photo")
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255.0


def octave_sizes(height: int, width: int, octaves: int, scale: float, min_size: int) -> list[tuple[int, int]]:
    """Sizes from the smallest octave to the original; an error if an octave falls below min_size."""
    if octaves < 1:
        raise FvoptError(f"octaves must be at least 1, not {octaves}")
    if scale <= 1:
        raise FvoptError(f"octave scale must be above 1, not {scale}")
    sizes = [(round(height / scale ** i), round(width / scale ** i)) for i in range(octaves)][::-1]
    if min(sizes[0]) < min_size:
        raise FvoptError(f"{octaves} octaves at scale {scale} shrink the {min(height, width)} px side to "
                         f"{min(sizes[0])} px, below the model's minimum of {min_size} px: use fewer octaves")
    return sizes


def layers_objective(layers: str | Sequence[str]) -> Objective:
    names = [s.strip() for s in layers.split(",")] if isinstance(layers, str) else list(layers)
    if not names or not all(names):
        raise FvoptError(f"no layers given in '{layers}'")
    return parse_target("+".join(f"layer:{n}" for n in names))


def dream(
    image: torch.Tensor | None = None,
    model: str | FeatureModel = "lite0",
    layers: str | Sequence[str] = "blocks.3,blocks.4",
    target: str | Objective | None = None,
    octaves: int = 4,
    octave_scale: float = 1.4,
    steps: int = 10,
    lr: float = 0.01,
    tile: int = 512,
    grad: str | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    on_octave: Callable[[int, torch.Tensor], None] | None = None,
) -> DreamResult:
    """DeepDream `image` (1, 3, H, W) in [0,1] (default: scikit-image's chelsea) at its own size.

    Each step: tiled gradient under a random roll, optional image-gradient transform (`grad`,
    e.g. "lapnorm"), then z += lr * g / mean|g| (the normalized DeepDream step), clipped to [0,1].
    `target` (e.g. "channel:blocks.4:10") replaces the layer objective.
    """
    octaves = check("octaves", octaves, Option(int, low=1, high=64))
    octave_scale = check("octave_scale", octave_scale, Option(float, low=1, low_open=True, high=100))
    steps = check("steps", steps, POSITIVE_INT)
    lr = check("lr", lr, POSITIVE_FLOAT)
    tile = check("tile", tile, IMAGE_SIDE)
    seed = check("seed", seed, SEED)
    if image is not None and (not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3)):
        raise FvoptError(f"dream needs one RGB image tensor (1, 3, H, W), not {getattr(image, 'shape', image)!r}")
    objective = parse_target(target) if isinstance(target, str) else target or layers_objective(layers)
    dev = resolve_device(device)
    net = model if isinstance(model, FeatureModel) else load_model(model, device=dev)
    height, width = (sample_photo() if image is None else image).shape[-2:]
    check_dream_fits(net, height, width, tile)
    base = (sample_photo() if image is None else image).to(net.device, torch.float32)
    sizes = octave_sizes(height, width, octaves, octave_scale, net.min_size)
    image_grad = None
    if grad:
        from .gradients import make_image_grad
        image_grad = make_image_grad(grad)

    meter = Meter()
    generator = torch.Generator().manual_seed(seed)
    result = DreamResult(base)
    detail = torch.zeros(1, 3, *sizes[0], device=net.device)
    dreamed = base
    start = time.perf_counter()
    try:
        for index, size in enumerate(sizes):
            octave_base = F.interpolate(base, size=size, mode="bilinear", antialias=True, align_corners=False)
            if detail.shape[-2:] != size:
                detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
            problem = Problem(net, objective, ImageParam((octave_base + detail).clamp(0, 1)), make_transforms("none"),
                              seed=seed, image_grad=image_grad, meter=meter, generator=generator, tile=tile,
                              validated=index > 0)
            z = problem.init()
            bar = tqdm(range(steps), desc=f"octave {index + 1}/{len(sizes)} {size[1]}x{size[0]}",
                       disable=not progress, leave=False)
            for step in bar:
                values, g = problem.value_and_grad(z)
                z = (z + lr * g / g.abs().mean().clamp_min(1e-12)).clamp_(0, 1)
                detail = problem.param(z).detach() - octave_base  # the dream so far, kept at every step
                result.trace.append({"octave": index, "step": step + 1,
                                     "time_s": round(time.perf_counter() - start, 6), "forwards": meter.forwards,
                                     "backwards": meter.backwards, "value": float(values.mean())})
                bar.set_postfix(value=f"{float(values.mean()):.3g}", refresh=False)
            dreamed = (octave_base + detail).clamp(0, 1)
            result.octaves.append(dreamed.cpu())
            if on_octave:
                on_octave(index, dreamed)
    except KeyboardInterrupt:
        # Keep the work: the detail dreamed so far, carried up to the photo's full size.
        result.interrupted = True
        if detail.shape[-2:] != (height, width):
            detail = F.interpolate(detail, size=(height, width), mode="bilinear", align_corners=False)
        dreamed = (base + detail).clamp(0, 1)
    result.image = dreamed.cpu()
    result.seconds = time.perf_counter() - start
    result.forwards, result.backwards = meter.forwards, meter.backwards
    return result


def check_dream_fits(model: FeatureModel, height: int, width: int, tile: int) -> None:
    """Refuse a photo too large for memory before decoding more of it: image copies plus one tile pass."""
    for side in (height, width):
        IMAGE_SIDE.coerce("image side", side)
    check_fits(model, min(tile, max(height, width)), images=1, backward=True,
               what=f"a {width}x{height} px dream with {tile} px tiles", extra_bytes=DREAM_IMAGE_COPIES * 3 * 4 * height * width)


def zoom_frames(
    first: torch.Tensor,
    frames: int,
    zoom: float = 1.05,
    dream_frame: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    into: list[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """The endless zoom: dream, zoom into the center by `zoom`, dream again, `frames` times."""
    frames = check("zoom frames", frames, Option(int, low=1, high=100_000))
    zoom = check("zoom", zoom, Option(float, low=1, low_open=True, high=100))
    out = into if into is not None else [first]  # frames land in `into` as they finish: an interrupt keeps them
    current = first
    h, w = first.shape[-2:]
    for _ in tqdm(range(frames - 1), desc="zoom", disable=not progress):
        ch, cw = max(1, round(h / zoom)), max(1, round(w / zoom))
        top, left = (h - ch) // 2, (w - cw) // 2
        current = F.interpolate(current[..., top:top + ch, left:left + cw], size=(h, w), mode="bilinear",
                                align_corners=False)
        if dream_frame is not None:
            current = dream_frame(current)
        out.append(current)
    return out


def save_animation(frames: list[torch.Tensor], path: str | Path, fps: int = 12) -> list[Path]:
    """A GIF (always) and, when an encoder is installed (imageio-ffmpeg), an MP4 beside it."""
    from PIL import Image

    from .images import to_uint8

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [to_uint8(f)[0] for f in frames]
    gif = path.with_suffix(".gif")
    Image.fromarray(arrays[0]).save(gif, save_all=True, append_images=[Image.fromarray(a) for a in arrays[1:]],
                                    duration=int(1000 / fps), loop=0)
    written = [gif]
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401
        mp4 = path.with_suffix(".mp4")
        imageio.mimwrite(mp4, arrays, fps=fps)
        written.append(mp4)
    except ImportError:
        pass
    return written
