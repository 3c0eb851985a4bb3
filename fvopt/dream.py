"""Multi-octave DeepDream on a photo of any size, through the same counted Problem as everything else.

The classic loop (Mordvintsev): shrink the photo through octaves; at each octave, from the
smallest up, add the detail dreamed so far, take normalized gradient-ascent steps on the layer
objective (mean of squared activations), and carry the new detail up to the next octave. Tiled
gradients under a random roll keep memory bounded by the tile and hide the tile seams.

Three published recipes are named schemes (`DreamScheme`, see SCHEMES): `2015` (the notebook,
the default), `tf2` (the TensorFlow 2 tutorial) and `matlab` (deepDreamImage). Each is one frozen
set of constants; any constant given explicitly overrides the scheme's, and the result records
the scheme and every constant that ran.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import FvoptError, suggest
from .gradients import gradient_std
from .runtime.memory import check_fits
from .config.options import IMAGE_SIDE, POSITIVE_FLOAT, POSITIVE_INT, SEED, Option, check
from .models import FeatureModel, load_model, resolve_device
from .models.layouts import positions
from .objectives import Check, Objective, parse_target
from .params import ImageParam
from .problem import Budget, Problem
from .run import BUDGET_STOPS, INTERRUPTED, STOPPED_BY_USER, TERMINATED, run
from .runtime.signals import Terminated
from .strategies.base import BaseStrategy, StepCost
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
    interrupted: bool = False  # Ctrl-C or SIGTERM/SIGHUP: `image` holds the dream so far, at full size
    stop_reason: str = "steps"  # the run loop's stop reason of the last octave that ran (fvopt.run)
    settings: dict = field(default_factory=dict)  # the scheme and every constant that ran (DreamScheme.record)


OCTAVE_SCALE = Option(float, low=1, low_open=True, high=100)
STEP_NORMS = ("mean_abs", "std")
LAYER_OBJECTIVES = ("l2", "mean")
CARRIES = ("detail", "image")


@dataclass(frozen=True)
class DreamScheme:
    """The constants of one published DeepDream recipe, in fvopt's units (images in [0, 1]).

    Octave k of `octaves` (k = 0 the smallest) has the input's size times
    octave_scale ** (k - octaves + 1 + octaves_above): with `octaves_above` > 0 the last octaves
    are larger than the input, and the result is resized back to the input's size.
    `step_norm`: each step is z += lr * g / mean|g| ("mean_abs") or lr * g / std(g) ("std").
    `objective`: the layer objective, mean of squared activations ("l2") or mean activation
    ("mean"); a `target` replaces it. `lapnorm_levels`: Laplacian normalization of the image
    gradient with that many levels (None: none). `tile`: tile side in px (None: the network's
    input size). `carry`: what goes up to the next octave, the dreamed detail over the photo
    resized afresh ("detail") or the dreamed image itself, resized ("image").
    """

    name: str
    octaves: int
    octave_scale: float
    steps: int
    lr: float
    octaves_above: int = 0
    step_norm: str = "mean_abs"
    objective: str = "l2"
    lapnorm_levels: int | None = None
    tile: int | None = 512
    carry: str = "detail"
    source: str = ""

    def __post_init__(self) -> None:
        """The same checks for a built-in scheme, a user's DreamScheme and every override."""
        checks = {
            "octaves": Option(int, low=1, high=64),
            "octave_scale": OCTAVE_SCALE,
            "steps": POSITIVE_INT,
            "lr": POSITIVE_FLOAT,
            "octaves_above": Option(int, low=0, high=64),
            "step_norm": Option(str, choices=STEP_NORMS),
            "objective": Option(str, choices=LAYER_OBJECTIVES),
            "lapnorm_levels": Option(int, low=1, high=16),
            "tile": IMAGE_SIDE,
            "carry": Option(str, choices=CARRIES),
        }
        for name, option in checks.items():
            object.__setattr__(self, name, check(name, getattr(self, name), option))

    def exponents(self) -> list[int]:
        """Powers of octave_scale from the smallest octave to the largest."""
        return list(range(self.octaves_above - self.octaves + 1, self.octaves_above + 1))

    def record(self) -> dict:
        """Every constant, for a trace; `source` stays in the docs."""
        out = asdict(self)
        out.pop("source")
        out["scheme"] = out.pop("name")
        return out

    def describe(self) -> str:
        above = f" ({self.octaves_above} above the input)" if self.octaves_above else ""
        norm = "mean|g|" if self.step_norm == "mean_abs" else "std(g)"
        lap = f", lapnorm {self.lapnorm_levels} levels" if self.lapnorm_levels else ""
        return (
            f"scheme {self.name}: {self.octaves} octaves{above} x {self.steps} steps, scale {self.octave_scale:g}, "
            f"step {self.lr:g} * g / {norm}{lap}, {self.objective} objective, tile {self.tile} px, "
            f"{self.carry} carried up"
        )


# One place for the published constants (../shared/REFERENCES.md, section DeepDream).
SCHEMES: dict[str, DreamScheme] = {
    s.name: s
    for s in (
        # Mordvintsev's 2015 notebook: 4 octaves at scale 1.4, 10 steps each, step / mean|g|, L2 objective,
        # detail carried up. The notebook's +-32 px jitter is covered by the tiles' random roll, which
        # wraps around the whole image. Its step is 1.5 on 0-255 pixels (0.0059 in [0, 1]); fvopt has
        # always used 0.01, and this scheme is fvopt's default, kept exactly.
        DreamScheme(
            "2015",
            octaves=4,
            octave_scale=1.4,
            steps=10,
            lr=0.01,
            tile=512,
            source="Mordvintsev et al. 2015, deepdream notebook",
        ),
        # The TensorFlow 2 tutorial: octaves at scale 1.3 over exponents -2..2 (two above the input), 100
        # steps each, gradient / std, mean activation, the image itself resized from octave to octave,
        # 512 px tiles under a random roll. Its step 0.01 is on [-1, 1] pixels: 0.005 on fvopt's [0, 1].
        DreamScheme(
            "tf2",
            octaves=5,
            octave_scale=1.3,
            steps=100,
            lr=0.005,
            octaves_above=2,
            step_norm="std",
            objective="mean",
            tile=512,
            carry="image",
            source="TensorFlow 2 DeepDream tutorial",
        ),
        # MATLAB deepDreamImage: PyramidLevels 3 at PyramidScale 1.4 growing from the initial image, as
        # Mordvintsev's render_lapnorm which it implements (mean activation, the image resized up),
        # NumIterations 10, Laplacian normalization with 4 levels, tiles of the network's input size.
        # Its step size is not an option; fvopt's normalized step 0.01 is used.
        DreamScheme(
            "matlab",
            octaves=3,
            octave_scale=1.4,
            steps=10,
            lr=0.01,
            octaves_above=2,
            objective="mean",
            lapnorm_levels=4,
            tile=None,
            carry="image",
            source="MATLAB deepDreamImage (R2017a+)",
        ),
    )
}
DEFAULT_SCHEME = "2015"


def get_scheme(scheme: str | DreamScheme) -> DreamScheme:
    """A scheme by name (or as given), or an FvoptError listing the known names."""
    if isinstance(scheme, DreamScheme):
        return scheme
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        text = scheme if isinstance(scheme, str) else repr(scheme)
        raise FvoptError(f"unknown DeepDream scheme '{text}'.{suggest(str(text), SCHEMES)} Known: {', '.join(SCHEMES)}")
    return SCHEMES[scheme]


def resolve_scheme(scheme: str | DreamScheme = DEFAULT_SCHEME, **overrides) -> DreamScheme:
    """The scheme with every given (not None) constant replaced, checked; no model needed.

    A constant the scheme does not have (None there, e.g. lapnorm_levels without Laplacian
    normalization) cannot be set: it would silently do nothing.
    """
    base = get_scheme(scheme)
    known = {f.name for f in fields(DreamScheme)} - {"name", "source"}
    given = {k: v for k, v in overrides.items() if v is not None}
    for key in given:
        if key not in known:
            raise FvoptError(f"a DeepDream scheme has no constant '{key}'.{suggest(key, known)}")
    if "lapnorm_levels" in given and base.lapnorm_levels is None:
        having = ", ".join(n for n, s in SCHEMES.items() if s.lapnorm_levels)
        raise FvoptError(
            f"lapnorm levels (--lapnorm-levels) do not apply to scheme {base.name}, which has no "
            f"Laplacian normalization (schemes with it: {having}); add one with --grad lapnorm:levels=N"
        )
    return replace(base, **given)


def sample_photo(name: str = DEFAULT_PHOTO) -> torch.Tensor:
    """A color sample photo shipped with scikit-image, as (1, 3, H, W) in [0,1]."""
    import skimage.data

    if not hasattr(skimage.data, name):
        raise FvoptError(f"scikit-image has no sample photo '{name}'; try chelsea, astronaut, coffee or rocket")
    arr = getattr(skimage.data, name)()
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise FvoptError(f"sample photo '{name}' is not an RGB photo")
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255.0


def sample_photo_for(channels: int, name: str = DEFAULT_PHOTO) -> torch.Tensor:
    """The default dream photo for a network of `channels` channels: RGB, or its luminance for
    grayscale networks; other channel counts have no sample photo (give one, a .npy array)."""
    photo = sample_photo(name)
    if channels == 3:
        return photo
    if channels == 1:
        return (torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1) * photo).sum(1, keepdim=True)
    raise FvoptError(
        f"there is no {channels}-channel sample photo: give an image to dream on (a .npy array of "
        f"shape ({channels}, H, W) with values in [0, 1])"
    )


def longer_side_size(height: int, width: int, side: int) -> tuple[int, int]:
    """(height, width) of a photo scaled so its longer side is `side` px, keeping its aspect ratio."""
    side = check("size", side, IMAGE_SIDE)
    scale = side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_photo(image: torch.Tensor, side: int | None) -> torch.Tensor:
    """The photo with its longer side at `side` px (antialiased, so shrinking does not alias); None: as it is."""
    if side is None:
        return image
    size = longer_side_size(*image.shape[-2:], side)
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image.float(), size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def octave_sizes(
    height: int, width: int, octaves: int, scale: float, min_size: int, above: int = 0
) -> list[tuple[int, int]]:
    """Sizes from the smallest octave to the largest (the input's size, or `above` octaves beyond it);
    an error if an octave falls below min_size or beyond the largest image side."""
    if octaves < 1:
        raise FvoptError(f"octaves must be at least 1, not {octaves}")
    if scale <= 1:
        raise FvoptError(f"octave scale must be above 1, not {scale}")
    for side in (height, width):
        IMAGE_SIDE.coerce("image side", side)
    sizes = [(round(height / scale**i), round(width / scale**i)) for i in range(-above, octaves - above)][::-1]
    if min(height, width) < min_size:
        raise FvoptError(
            f"the photo's {min(height, width)} px side is below the model's minimum of {min_size} px: "
            "give a larger photo (or a larger --size)"
        )
    if min(sizes[0]) < min_size:
        raise FvoptError(
            f"{octaves} octaves at scale {scale} shrink the {min(height, width)} px side to "
            f"{min(sizes[0])} px, below the model's minimum of {min_size} px: use fewer octaves"
        )
    if max(sizes[-1]) > IMAGE_SIDE.high:
        raise FvoptError(
            f"{above} octaves above the input at scale {scale} grow the {max(height, width)} px side "
            f"to {max(sizes[-1])} px, beyond {IMAGE_SIDE.high:g} px: use a smaller photo"
        )
    return sizes


def scheme_octave_sizes(height: int, width: int, scheme: DreamScheme, min_size: int) -> list[tuple[int, int]]:
    return octave_sizes(height, width, scheme.octaves, scheme.octave_scale, min_size, scheme.octaves_above)


def layer_mean(name: str) -> Objective:
    """The mean activation of a whole layer (TF2 tutorial and deepDreamImage), not of its squares."""
    return Objective(
        lambda a: positions(a.acts[name], a.layout(name)).flatten(1).mean(1),
        frozenset({name}),
        f"layer_mean:{name}",
        checks=(Check(name, (), "layer"),),
    )


def layers_objective(layers: str | Sequence[str], kind: str = "l2") -> Objective:
    """The sum over `layers` of the mean of squared activations ("l2") or of the mean activation ("mean")."""
    names = [s.strip() for s in layers.split(",")] if isinstance(layers, str) else list(layers)
    if not names or not all(names):
        raise FvoptError(f"no layers given in '{layers}'")
    if kind == "mean":
        objective = layer_mean(names[0])
        for name in names[1:]:
            objective = objective + layer_mean(name)
        return objective
    return parse_target("+".join(f"layer:{n}" for n in names))


def dream(
    image: torch.Tensor | None = None,
    model: str | FeatureModel = "lite0",
    layers: str | Sequence[str] = "blocks.3,blocks.4",
    target: str | Objective | None = None,
    octaves: int | None = None,
    octave_scale: float | None = None,
    steps: int | None = None,
    lr: float | None = None,
    tile: int | None = None,
    grad: str | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    on_octave: Callable[[int, torch.Tensor], None] | None = None,
    *,
    scheme: str | DreamScheme = DEFAULT_SCHEME,
    octaves_above: int | None = None,
    lapnorm_levels: int | None = None,
    size: int | None = None,
) -> DreamResult:
    """DeepDream `image` (1, 3, H, W) in [0,1] (default: scikit-image's chelsea) at its own size,
    or with its longer side at `size` px (the photo resized with antialiasing first).

    `scheme` names a published recipe (SCHEMES: 2015, tf2, matlab); octaves, octave_scale, steps,
    lr, tile, octaves_above and lapnorm_levels override its constants when given. Each step: tiled
    gradient under a random roll, the scheme's Laplacian normalization and `grad` (e.g. "lapnorm")
    on the image gradient, then the normalized step z += lr * g / mean|g| (or / std(g)), clipped
    to [0,1]. `target` (e.g. "channel:blocks.4:10") replaces the layer objective.
    `result.settings` records the scheme and every constant that ran.
    """
    s = resolve_scheme(
        scheme,
        octaves=octaves,
        octave_scale=octave_scale,
        steps=steps,
        lr=lr,
        tile=tile,
        octaves_above=octaves_above,
        lapnorm_levels=lapnorm_levels,
    )
    seed = check("seed", seed, SEED)
    size = check("size", size, IMAGE_SIDE)
    if image is not None and (not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[0] != 1):
        raise FvoptError(f"dream needs one image tensor (1, C, H, W), not {getattr(image, 'shape', image)!r}")
    objective = parse_target(target) if isinstance(target, str) else target or layers_objective(layers, s.objective)
    image_grad = None
    if grad or s.lapnorm_levels:
        from .gradients import chain, lap_normalize, make_image_grad

        parts = [lambda g, n=s.lapnorm_levels: lap_normalize(g, n)] if s.lapnorm_levels else []
        image_grad = chain(*parts, *([make_image_grad(grad)] if grad else []))
    dev = resolve_device(device)
    net = model if isinstance(model, FeatureModel) else load_model(model, device=dev)
    s = scheme_for_model(s, net)
    if image is None:
        image = sample_photo_for(net.channels)
    image = resize_photo(image, size)
    if image.shape[1] != net.channels:
        raise FvoptError(
            f"the image has {image.shape[1]} channels and {net.name} takes {net.channels}: give a "
            f"{net.channels}-channel image"
        )
    height, width = image.shape[-2:]
    sizes = scheme_octave_sizes(height, width, s, net.min_size)
    check_dream_fits(net, *sizes[-1], s.tile)  # the largest octave, above the input with octaves_above
    base = image.to(net.device, torch.float32)

    generator = torch.Generator().manual_seed(seed)
    result = DreamResult(
        base,
        settings={
            **s.record(),
            "objective_name": str(objective),
            "grad": grad,
            "seed": seed,
            "size": size,
            "octave_sizes": [list(size) for size in sizes],
        },
    )
    detail = torch.zeros(1, net.channels, *sizes[0], device=net.device)
    dreamed = base
    octave_base = base
    start = time.perf_counter()
    try:
        for index, size in enumerate(sizes):
            if s.carry == "detail":  # the photo resized afresh, plus the dream's detail so far
                octave_base = F.interpolate(base, size=size, mode="bilinear", antialias=True, align_corners=False)
                if detail.shape[-2:] != size:
                    detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
            else:  # the dreamed image itself, resized
                octave_base = F.interpolate(dreamed, size=size, mode="bilinear", antialias=True, align_corners=False)
                detail = torch.zeros_like(octave_base)
            problem = Problem(
                net,
                objective,
                ImageParam((octave_base + detail).clamp(0, 1)),
                make_transforms("none"),
                seed=seed,
                image_grad=image_grad,
                generator=generator,
                tile=s.tile,
                validated=index > 0,
            )
            ascent = DreamAscent(s.lr, s.step_norm)
            offset = time.perf_counter() - start
            # The one run loop (fvopt.run): its budget, stop reasons, trace rows and progress bar.
            # The shared generator is not reseeded by the loop, so the tiles' rolls continue across octaves.
            octave = run(
                problem,
                ascent,
                Budget(steps=s.steps),
                z0=problem.init(),
                progress=progress,
                desc=f"octave {index + 1}/{len(sizes)} {size[1]}x{size[0]}",
            )
            result.trace.extend(
                {
                    "octave": index,
                    **row,
                    "time_s": round(row["time_s"] + offset, 6),
                    "forwards": row["forwards"] + result.forwards,
                    "backwards": row["backwards"] + result.backwards,
                }
                for row in octave.trace
            )
            result.forwards += octave.forwards
            result.backwards += octave.backwards
            result.stop_reason = octave.stop_reason
            # The dream so far is the last completed step (also after Ctrl-C); after a NaN, the best point seen;
            # stopped before the first step (during the run's warm-up, which precedes the ascent's start): z0.
            z = ascent.z if octave.stop_reason in STOPPED_BY_USER and octave.steps else octave.z
            detail = problem.param(z).detach() - octave_base
            if octave.stop_reason not in BUDGET_STOPS:
                result.interrupted = octave.stop_reason in STOPPED_BY_USER
                raise _StopOctaves
            dreamed = (octave_base + detail).clamp(0, 1)
            result.octaves.append(dreamed.cpu())
            if on_octave:
                on_octave(index, dreamed)
    except (KeyboardInterrupt, _StopOctaves) as stop:
        # Keep the work: the dream so far, at the photo's full size.
        if isinstance(stop, KeyboardInterrupt):  # between two octaves' runs
            result.interrupted, result.stop_reason = True, TERMINATED if isinstance(stop, Terminated) else INTERRUPTED
        if s.carry == "detail":
            if detail.shape[-2:] != (height, width):
                detail = F.interpolate(detail, size=(height, width), mode="bilinear", align_corners=False)
            dreamed = (base + detail).clamp(0, 1)
        elif detail.shape == octave_base.shape:
            dreamed = (octave_base + detail).clamp(0, 1)
    if dreamed.shape[-2:] != (height, width):  # octaves above the input: back to the input's size
        dreamed = F.interpolate(dreamed, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    result.image = dreamed.cpu()
    result.seconds = time.perf_counter() - start
    return result


class _StopOctaves(Exception):
    """An octave's run ended early (Ctrl-C, a NaN): no further octave runs."""


class DreamAscent(BaseStrategy):
    """DeepDream's step as a strategy of the one run loop: z += lr * g / mean|g| (or / std(g)),
    clipped to [0, 1]. `best` is the last iterate: a dream reports where it is, not the best
    value seen under the tiles' random rolls."""

    name = "deepdream"

    def __init__(self, lr: float, step_norm: str = "mean_abs") -> None:
        self.lr, self.step_norm = lr, step_norm

    def check(self, param, batch: int, budget=None) -> StepCost:
        return StepCost(batch, batch)

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        self.z = z0.detach().to(problem.device)

    def step(self, problem: Problem) -> None:
        _, g = problem.value_and_grad(self.z)
        if self.step_norm == "mean_abs":
            self.z = (self.z + self.lr * g / g.abs().mean().clamp_min(1e-12)).clamp_(0, 1)
        else:  # the TF2 tutorial's g / (std(g) + 1e-8)
            self.z = (self.z + self.lr * g / gradient_std(g)).clamp_(0, 1)  # lr * g first: the tutorial's order

    @property
    def best(self) -> torch.Tensor:
        return self.z

    def status(self) -> dict:
        return {"lr": self.lr, "step_norm": self.step_norm}


def scheme_for_model(scheme: DreamScheme, model: FeatureModel) -> DreamScheme:
    """The scheme with its tile resolved (None: the network's input size) and checked against the network."""
    tile = model.input_size if scheme.tile is None else scheme.tile
    if tile < model.min_size:
        raise FvoptError(f"tile {tile} px is smaller than {model.name}'s minimum input of {model.min_size} px")
    return replace(scheme, tile=tile)


def check_dream_fits(model: FeatureModel, height: int, width: int, tile: int) -> None:
    """Refuse a photo too large for memory before decoding more of it: image copies plus one tile pass."""
    for side in (height, width):
        IMAGE_SIDE.coerce("image side", side)
    check_fits(
        model,
        min(tile, max(height, width)),
        images=1,
        backward=True,
        what=f"a {width}x{height} px dream with {tile} px tiles",
        extra_bytes=DREAM_IMAGE_COPIES * model.channels * 4 * height * width,
    )


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
        current = F.interpolate(
            current[..., top : top + ch, left : left + cw], size=(h, w), mode="bilinear", align_corners=False
        )
        if dream_frame is not None:
            current = dream_frame(current)
        out.append(current)
    return out


def save_animation(frames: list[torch.Tensor], path: str | Path, fps: int = 12) -> list[Path]:
    """A GIF (always) and, when an encoder is installed (imageio-ffmpeg), an MP4 beside it."""
    from PIL import Image

    from .io.atomic import atomic_path
    from .io.images import to_uint8

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [to_uint8(f)[0] for f in frames]
    gif = path.with_suffix(".gif")
    with atomic_path(gif) as tmp:  # whole or absent, even if a signal lands mid-write
        Image.fromarray(arrays[0]).save(
            tmp, save_all=True, append_images=[Image.fromarray(a) for a in arrays[1:]], duration=int(1000 / fps), loop=0
        )
    written = [gif]
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401

        mp4 = path.with_suffix(".mp4")
        with atomic_path(mp4) as tmp:
            imageio.mimwrite(tmp, arrays, fps=fps)
        written.append(mp4)
    except ImportError:
        pass
    return written
