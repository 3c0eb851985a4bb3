"""`visualize`: one call from names to a finished, scored visualization (what `fvopt viz` runs)."""

from __future__ import annotations

import inspect
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .version import __version__
from .io.trace import write_trace
from .errors import FvoptError
from .evaluate import score_images
from .io.images import save_images
from .runtime.memory import check_fits, largest_pass
from .io.canvas import describe as describe_size, hw
from .models import FeatureModel, load_model, resolve_device, wrap
from .models.user import describe_normalization
from .params.color import check_basis_applies, color_basis
from .objectives import Objective, parse_target, slot_labels
from .config.options import IMAGE_SIDE, check, merge_options
from .config.run import DEFAULT_PARAM, DEFAULT_STEPS, PREPROCESSING, RUN_SETTINGS, RunConfig
from .params import Parameterization, make_param
from .problem import Budget, Problem
from .run import INTERRUPTED, STOPPED_BY_USER, TERMINATED, RunResult, run
from .runtime.scoped import keeps_process_state, seed_all
from .runtime.speed import EAGER, Speed
from .strategies import make_strategy
from .strategies.base import search_space
from .transforms import describe_transforms, make_transforms, views_of


@dataclass
class Visualization:
    images: torch.Tensor  # (batch, 3, H, W) in [0,1]
    labels: list[str]
    trace: dict
    result: RunResult
    model: FeatureModel
    transparency: torch.Tensor | None = None  # (batch, 1, H, W) in [0,1]: MaCo's maps, when asked for
    scoring_stopped: str | None = None  # "interrupted"/"terminated": the run finished, its final scoring was cut

    @property
    def interrupted(self) -> bool:
        """Ctrl-C, SIGTERM or SIGHUP during the run or during its final scoring."""
        return self.result.stop_reason in STOPPED_BY_USER or self.scoring_stopped is not None

    def save(self, path: str | Path) -> Path:
        return save_images(self.images, path, self.labels if self.images.shape[0] > 1 else None)

    def save_transparency(self, path: str | Path) -> list[Path]:
        """The images with their transparency maps as alpha (and the maps alone, `NAME-map.png`)."""
        if self.transparency is None:
            raise FvoptError("this visualization has no transparency maps: run it with transparency=True")
        from .gradients.transparency import save_transparency

        return save_transparency(self.images, self.transparency, path)

    def save_trace(self, path: str | Path) -> Path:
        """The trace as strict JSON (fvopt.io.trace), written whole or not at all."""
        return write_trace(path, self.trace)


def _bare_unit_robust(objective: Objective, final: dict) -> list[float] | None:
    """The evaluator's robust values, when the target is exactly the unit judge scores (no regularizer
    terms, no weights): natural_ratio then reuses them instead of making the same 17 passes again."""
    from .quality.units import unit_of

    unit, _ = unit_of(objective)
    robust = final.get("per_image", {}).get("robust_value")
    if unit is None or robust is None or str(unit.objective(len(robust))) != str(objective):
        return None
    return robust


def render_size(render: int | str | None, size, model: FeatureModel) -> int | None:
    """The size the network is shown: None (the image's own), a side in px, or "lucent" (the
    model's input size when the image is smaller, as Lucent's render_vis upsamples to 224)."""
    if render is None:
        return None
    if render == "lucent":  # a square input only: Lucent's rule shows a square
        side = model.input_size
        return side if isinstance(side, int) and max(hw(size)) < side else None
    if isinstance(render, str) and render.strip().isdigit():
        render = int(render)
    if isinstance(render, bool) or not isinstance(render, int):
        raise FvoptError(f"render {render!r} is not a size: give a side in px (e.g. 224) or 'lucent'")
    return check("render", render, IMAGE_SIDE)


@keeps_process_state  # seeds, backend switches and threads are restored on return (fvopt.runtime.scoped)
def visualize(
    model: str | FeatureModel = "lite0",
    target: str | Objective = "class:8",
    param: str | Parameterization | None = None,
    optimizer: str = "adam",
    *,
    lr: float | None = None,
    steps: int | None = None,
    seconds: float | None = None,
    forwards: int | None = None,
    passes: int | None = None,
    size: int | tuple[int, int] | None = None,
    batch: int | None = None,
    seed: int = 0,
    device: str = "auto",
    transforms: str | None = "default",
    grad: str | None = None,
    options: dict | None = None,
    weights: str | None = None,
    progress: bool = False,
    snapshot_every: int = 25,
    snapshot_dir: str | Path | None = None,
    max_batch: int | str = 32,
    tile: int | None = None,
    speed: Speed | None = None,
    render: int | str | None = None,
    transparency: bool = False,
    init: str | Path | None = None,
    reference: str | Path | None = None,
    judge: str | None = None,
    measures: str | list[str] | None = None,
    mean=None,
    std=None,
    input_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    value_range: tuple[float, float] | str | None = None,
    decorrelate: str | None = None,
    config: RunConfig | str | Path | None = None,
) -> Visualization:
    """Optimize images until `target` fires, and score them with the common evaluator.

    Every parameter is a declared setting (`fvopt options` lists them with their types, defaults and checks);
    `config` (a fvopt.config.RunConfig, e.g. `RunConfig.from_flat(trace["config"])`) gives them all at once, and
    the arguments given with other than their default override it. Everything is checked once, before any
    model pass; the trace records the whole configuration in `trace["config"]`.

    `tile` (px) computes each gradient tile by tile under a random roll (as DeepDream does), so
    memory is bounded by the tile, not the image; each tile counts as one forward and one backward.
    Everything given is checked before any model pass (FvoptError names the bad value). Zero-order
    optimizers search the low-dimensional form of a large parameterization (`search_space`: fft ->
    fft:k=8); the trace's `param` says what was searched. The budget defaults to 256 steps; any of
    steps, seconds, forwards, passes may be combined. Ctrl-C stops the run and keeps the best image
    (`trace["stop_reason"] == "interrupted"`). `render` is the size the network is shown (the
    image is resized to it after the transforms); "lucent" is Lucent's rule: the model's input
    size when the image is smaller, else the image's own size. `transparency` accumulates
    |d objective / d image| over the run (MaCo's transparency maps; gradient methods only).
    `init` (a PNG/JPEG path, or a .npy array) starts every image of the batch from that photo,
    resized to cover the image size and center-cropped, through the parameterization's exact
    inverse (`init_image.seed_from_image`; parameterizations without one are refused).
    `reference` (a folder or 'builtin'), `judge` (a model name) and `measures` ('default', 'all', 'none'
    or names) put fvopt.quality's measures in `trace["quality"]` (see fvopt.quality.judge); without a
    reference only spectral_slope is computed by default. The final scores also hold `value_8bit` and
    `robust_8bit`: the image as saved, quantized to 8 bits.
    `model` may also be any torch.nn.Module (wrapped by `fvopt.wrap` with `mean`, `std`,
    `input_size`, `channels`, `value_range`, which also override a named model's preprocessing);
    `size` is a side or (height, width); `decorrelate` a file or folder of reference images whose
    channel covariance replaces the default decorrelation (Lucid's for RGB, else the identity).
    """
    arguments = {k: v for k, v in locals().items() if k in RUN_SETTINGS}
    cfg = RunConfig.of_call(_DEFAULTS, arguments, config)  # every value checked here, once
    return _visualize(cfg)


_DEFAULTS = {name: p.default for name, p in inspect.signature(visualize).parameters.items()}


def _visualize(cfg: RunConfig) -> Visualization:
    """The run of a checked configuration: resolve what needs the model, run, score, judge, trace."""
    c = cfg.flat()
    model, weights, decorrelate, target = c["model"], c["weights"], c["decorrelate"], c["target"]
    param, optimizer, lr, options, grad = c["param"], c["optimizer"], c["lr"], c["options"], c["grad"]
    seed, batch, init = c["seed"], c["batch"], c["init"]
    steps, seconds, forwards, passes = c["steps"], c["seconds"], c["forwards"], c["passes"]
    size, transforms, render, tile = c["size"], c["transforms"], c["render"], c["tile"]
    reference, judge, measures = c["reference"], c["judge"], c["measures"]
    device, max_batch, progress, transparency = c["device"], c["max_batch"], c["progress"], c["transparency"]
    speed = c["speed"] or EAGER
    snapshot_every, snapshot_dir = (c["snapshot_every"] if c["snapshot_dir"] else 0), c["snapshot_dir"]
    preprocessing = {k: c[k] for k in PREPROCESSING if c[k] is not None}
    if all(v is None for v in (steps, seconds, forwards, passes)):
        steps = DEFAULT_STEPS
    budget = Budget(steps, seconds, forwards, passes)
    strategy = make_strategy(optimizer, **merge_options({"lr": lr}, options or {}))
    objective = target if isinstance(target, Objective) else parse_target(target)
    chain = make_transforms(transforms)
    from .quality.score import plan as quality_plan, viz_settings

    quality_ref, quality_measures = viz_settings(reference, judge, measures, model)  # folders read before any pass
    if quality_ref is not None and quality_measures is not None:  # its cache folder, too ($FVOPT_CACHE)
        from .quality.cache import cache_dir

        cache_dir()
    photo = None
    if init is not None:  # the path is checked now, before the model loads
        from .io.init_image import Photo

        photo = Photo(init)
    image_grad, accumulator = _image_gradient_processing(strategy, grad, tile, transparency)
    dev = resolve_device(device)
    seed_all(seed, dev)  # torch.manual_seed for this call only
    if isinstance(model, str):
        net = load_model(model, weights=weights, device=dev, **preprocessing)
    else:
        net = wrap(model, **preprocessing).to(dev)
    size = size or net.input_size
    if tile is not None and not net.min_size <= tile <= min(hw(size)):
        raise FvoptError(
            f"tile {tile} px must be between {net.name}'s minimum input of {net.min_size} px and the "
            f"image size of {describe_size(size)} px"
        )
    render = render_size(render, size, net)
    basis = color_basis(decorrelate, net.channels)  # reference images read now, before any model pass
    requested = make_param(DEFAULT_PARAM if param is None else param, size, channels=net.channels, color=basis)
    check_basis_applies(requested, basis)  # pixel without decorrelate=true would ignore it
    parameterization = search_space(strategy, requested)
    slots = batch or objective.slots
    judge_net = None
    if quality_measures is not None:  # a measure asked for by name that cannot apply: refused before the run
        from .quality.features import resolve_judge
        from .quality.score import refuse_reference_for_channels

        refuse_reference_for_channels(reference, net.channels, net.name)
        named = hw(size) if measures is not None else None  # the default set names none: it says why after
        quality_plan(objective, slots, quality_ref is not None, quality_measures, channels=net.channels, size=named)
        judge_net = resolve_judge(judge, net, device=dev) if judge is not None else None  # loads now, not after
    z0 = seeded = None
    if photo is not None:
        parameterization, z0, seeded = _seed(photo, net, strategy, requested, parameterization, size, slots)
    cost = strategy.check(parameterization, slots, budget).times(views_of(chain))
    budget.refuse_if_below(cost, strategy.name)
    check_fits(
        net,
        tile or max(hw(size)),
        images=largest_pass(cost.forwards, max_batch, slots),
        backward=strategy.uses_gradients,
    )
    speed.apply_globally()
    problem = Problem(
        net,
        objective,
        parameterization,
        chain,
        batch,
        seed,
        max_batch,
        image_grad,
        speed=speed,
        render=render,
        tile=tile,
    )
    result = run(
        problem,
        strategy,
        budget,
        progress=progress,
        desc=f"{strategy.name} {objective}",
        snapshot_every=snapshot_every,
        snapshot_dir=snapshot_dir,
        z0=z0,
    )
    labels = slot_labels(objective, problem.batch)
    scoring_stopped = None
    try:
        final = _final_scores(net, objective, result, render, labels)
    except KeyboardInterrupt as stop:  # the run had finished: its images are kept, unscored
        from .runtime.signals import Terminated

        scoring_stopped = TERMINATED if isinstance(stop, Terminated) else INTERRUPTED
        final = {
            "value": None,
            "robust_value": None,
            "note": f"{scoring_stopped} while scoring the finished run: the images were not scored",
        }
    trace = {
        "config": cfg.record(),  # what was asked, whole: `fvopt viz --config TRACE` runs it again
        "model": net.name,
        "target": str(objective),
        "optimizer": strategy.name,
        "param": parameterization.name,
        "param_requested": requested.name,
        "param_dim": parameterization.dim,
        "seed": seed,
        "size": list(size) if isinstance(size, tuple) else size,
        "input": net.describe_input(),
        "normalization": describe_normalization(net),
        "normalization_note": _normalization_note(model, net, c["mean"], c["std"]),
        "decorrelation": parameterization.color_source,
        "transforms_fit": problem.transform_fit,
        "batch": problem.batch,
        "options": strategy.options,
        "grad": grad,
        "transforms": describe_transforms(chain),
        "render": render,
        "transparency": transparency,
        "device": str(dev),
        "speed": speed.describe(),
        "max_batch": problem.max_batch,
        "budget": asdict(budget),
        "stop_reason": result.stop_reason,
        "forwards": result.forwards,
        "backwards": result.backwards,
        "seconds": result.seconds,
        "warmup_seconds": result.warmup_seconds,  # untimed, not in seconds or passes (fvopt/warmup.py)
        **result.extra,
        "tile": tile,
        "init": seeded,
        "photos": problem.photos,
        "versions": {"fvopt": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "steps": result.trace,
        "final": final,
    }
    if scoring_stopped:
        trace["scoring_stopped"] = scoring_stopped
    if quality_measures is not None:
        stopped = result.stop_reason in STOPPED_BY_USER or scoring_stopped
        trace["quality"] = (
            {"note": "interrupted: the images were not judged"}
            if stopped
            else _judged(
                result, objective, net, judge_net, quality_ref, quality_measures, render, progress, seed, final
            )
        )
    maps = accumulator.maps() if accumulator is not None and accumulator.total is not None else None
    return Visualization(result.images, labels, trace, result, net, maps, scoring_stopped)


def _image_gradient_processing(strategy, grad: str | None, tile: int | None, transparency: bool):
    """What processes the image's gradient (--grad, a transparency accumulator), and the refusals of options that
    need a gradient when the strategy searches without one."""
    if not strategy.uses_gradients:
        for given, what, drop in [
            (grad, f"grad '{grad}' processes gradients", "drop --grad"),
            (tile, f"tile {tile} splits gradient passes", "drop --tile"),
            (transparency, "transparency maps accumulate the image's gradient", "drop --transparency"),
        ]:
            if given:
                raise FvoptError(
                    f"{what}, and {strategy.name} searches without them: {drop}, or use a gradient method "
                    "(adam, sgd, lbfgs, torch:NAdam, guided-es, hybrid:cmaes>adam)"
                )
    image_grad = None
    if grad:
        from .gradients import make_image_grad

        image_grad = make_image_grad(grad)
    if not transparency:
        return image_grad, None
    from .gradients.transparency import TransparencyAccumulator

    accumulator = TransparencyAccumulator(image_grad)
    return accumulator, accumulator


def _judged(result, objective, net, judge_net, reference, measures, render, progress, seed, final) -> dict:
    """fvopt.quality's judgment of the finished run's images; the images are kept whatever happens while judging."""
    from .quality import judge as judge_images

    try:
        return judge_images(
            result.images,
            objective,
            net,
            judge=judge_net,
            reference=reference,
            measures=measures,
            render=render,
            progress=progress,
            seed=seed,
            robust=_bare_unit_robust(objective, final),
        )
    except FvoptError as err:
        return {"error": str(err)}
    except KeyboardInterrupt as stop:  # the images are kept; the command line exits 128 + signal
        from .quality.activations import KEPT_WORK

        return {
            "note": "interrupted while judging: the images were not judged",
            "stopped_while_judging": True,
            "kept": getattr(stop, KEPT_WORK, None),  # what an unfinished reference pass kept, to resume from
        }


def _final_scores(net: FeatureModel, objective: Objective, result: RunResult, render, labels: list[str]) -> dict:
    """The common evaluator's scores of the run's images (16 held-out transforms and the 8-bit image);
    after a stopped run, the untransformed value only: the user wants out."""
    if result.stop_reason in STOPPED_BY_USER:
        return {
            "value": float(score_images(net, objective, result.images, draws=0, render=render)["value"].mean()),
            "robust_value": None,
            "note": f"{result.stop_reason}: scored untransformed only",
        }
    from .evaluate import score_as_saved
    from .quality.units import image_labels

    scores = score_images(net, objective, result.images, render=render)
    final = {
        "value": float(scores["value"].mean()),
        "robust_value": float(scores["robust_value"].mean()),
        "per_image": {
            "value": scores["value"].tolist(),
            "robust_value": scores["robust_value"].tolist(),
            "unit": image_labels(objective, len(labels)),  # the label quality's per_image uses too
        },
    }
    final.update(score_as_saved(net, objective, result.images, render=render))  # the picture as saved (8-bit PNG)
    return final


def _normalization_note(model, net: FeatureModel, mean, std) -> str | None:
    """A user's own network (a file or a plain module) fed without normalization because none was
    given: fvopt cannot know how it was trained, so the run says how to set it."""
    from .models.user import NORMALIZATION_HINT, is_user_model

    own = is_user_model(model) if isinstance(model, str) else not isinstance(model, FeatureModel)
    if own and mean is None and std is None and describe_normalization(net).startswith("none"):
        return NORMALIZATION_HINT
    return None


def _seed(
    photo, net: FeatureModel, strategy, requested: Parameterization, searched: Parameterization, size: int, batch: int
) -> tuple[Parameterization, torch.Tensor, dict]:
    """The searched parameterization rebased on the photo, its start, and what the trace says of it."""
    from .io.init_image import seed_error, seed_from_image
    from .strategies.hybrid import Hybrid

    photo.check_channels(getattr(net, "channels", 3), f"{net.name}'s input")
    if isinstance(strategy, Hybrid) and search_space(strategy.first, searched) is not searched:
        raise FvoptError(
            f"--init with {strategy.name}: its first part would search a fresh low-dimensional form of "
            f"{searched.name} that cannot hold the photo; give that form yourself (--param "
            f"{searched.reduced().name}), which the photo then seeds"
        )
    image = photo.at(size)
    param, z0 = seed_from_image(searched, image, batch)
    error = seed_error(z0, param, image)
    return (
        param,
        z0,
        {"image": photo.describe(size), "param": param.name, "of": requested.name, "max_pixel_error": error},
    )
