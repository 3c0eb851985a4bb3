"""The Problem: the only door to the model, and the meter of every pass through it.

value = objective(model(transform(param(z)))). Strategies call `evaluate` (a population, no
gradient) or `value_and_grad`; both count forward and backward passes per image and check the
budget before spending it, so no strategy can spend budget unseen and comparisons stay fair.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from .io.canvas import describe
from .transforms.fit import describe_fit, fit_transforms
from .errors import FvoptError, NonFiniteError
from .runtime.speed import EAGER, Speed, compiled_pass
from .config.options import IMAGE_SIDE, POSITIVE_FLOAT, POSITIVE_INT, SEED, check, check_type
from .models.hooks import capture
from .models.wrapper import FeatureModel
from .objectives import Activations, Objective, validate
from .params.base import Parameterization
from .transforms import Compose, describe_transforms, show_at, standard_transforms, views_of, with_output_size


class BudgetExhausted(Exception):
    """Raised by the problem when a call would spend more than the budget allows."""


BUDGET_OPTIONS = {"steps": POSITIVE_INT, "seconds": POSITIVE_FLOAT, "forwards": POSITIVE_INT, "passes": POSITIVE_INT}


@dataclass
class Budget:
    """Stop at whichever comes first. Model passes count a backward as two forward-equivalents."""

    steps: int | None = None
    seconds: float | None = None
    forwards: int | None = None
    passes: int | None = None

    def __post_init__(self) -> None:
        for name, option in BUDGET_OPTIONS.items():
            setattr(self, name, check(f"budget {name}", getattr(self, name), option))
        if all(getattr(self, n) is None for n in BUDGET_OPTIONS):
            raise FvoptError("a budget needs steps, seconds, forwards or passes")

    def __str__(self) -> str:
        return ", ".join(f"{getattr(self, n):g} {n}" for n in BUDGET_OPTIONS if getattr(self, n) is not None)

    def refuse_if_below(self, cost, what: str) -> None:
        """Refuse a budget that cannot pay for one step of `cost` (a StepCost): it would idle."""
        short = [
            (n, need)
            for n, need in (("forwards", cost.forwards), ("passes", cost.passes))
            if getattr(self, n) is not None and getattr(self, n) < need
        ]
        if short:
            name, need = short[0]
            raise FvoptError(
                f"a budget of {getattr(self, name)} {name} is too small for one step of {what}, which "
                f"spends {cost.forwards} forwards and {cost.backwards} backwards ({cost.passes} passes): "
                f"give at least {need} {name}"
            )


@dataclass
class Meter:
    """The one place of budget arithmetic: counts, spending, progress and exhaustion.

    Shared by a problem and its restricted views (the parts of a hybrid), and reset per run.
    """

    forwards: int = 0
    backwards: int = 0
    start: float = field(default_factory=time.perf_counter)
    budget: Budget | None = None
    steps: int = 0
    recent: torch.Tensor | None = None  # best value per slot since the run loop last looked
    best: torch.Tensor | None = None  # best value per slot over the whole run, in any view

    def reset(self, budget: Budget | None) -> None:
        """Start counting a new run under `budget`."""
        self.budget, self.steps, self.recent, self.best = budget, 0, None, None
        self.forwards = self.backwards = 0
        self.start = time.perf_counter()

    @property
    def passes(self) -> int:
        return self.forwards + 2 * self.backwards

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def progress(self) -> float:
        """The used share of the tightest budget, in [0, 1]."""
        b = self.budget
        if b is None:
            return 0.0
        shares = [0.0]
        if b.steps:
            shares.append(self.steps / b.steps)
        if b.seconds:
            shares.append(self.elapsed / b.seconds)
        if b.forwards:
            shares.append(self.forwards / b.forwards)
        if b.passes:
            shares.append(self.passes / b.passes)
        return min(1.0, max(shares))

    def exhausted(self, batch: int) -> str | None:
        """The name of the first budget that is used up (cannot pay for one more image pass), or None."""
        b = self.budget
        if b is None:
            return None
        if b.steps is not None and self.steps >= b.steps:
            return "steps"
        if b.seconds is not None and self.steps > 0 and self.elapsed >= b.seconds:
            return "seconds"
        if b.forwards is not None and self.forwards + batch > b.forwards:
            return "forwards"
        if b.passes is not None and self.passes + batch > b.passes:
            return "passes"
        return None

    def spend(self, forwards: int, backwards: int) -> None:
        """Count a call, or raise BudgetExhausted if it would overrun a pass or time budget."""
        b = self.budget
        if b is not None:
            if b.forwards is not None and self.forwards + forwards > b.forwards:
                raise BudgetExhausted("forwards")
            if b.passes is not None and self.passes + forwards + 2 * backwards > b.passes:
                raise BudgetExhausted("passes")
            if b.seconds is not None and self.steps > 0 and self.elapsed >= b.seconds:
                raise BudgetExhausted("seconds")  # the first step always runs: a run never ends empty
        self.forwards += forwards
        self.backwards += backwards


# On a GPU, finiteness is read back every SYNC_EVERY checks instead of every call (a host sync
# costs a measurable share of a millisecond step); on the CPU, every call (it costs nothing).
SYNC_EVERY = 16

ImageGradHook = Callable[[torch.Tensor], torch.Tensor]


def _check_chain_sizes(
    chain, param: Parameterization, model: FeatureModel, render: int | None, batch: int, max_batch, asked: str
) -> "object":
    """Refuse a chain that shrinks the image below the network's minimum (or to nothing), and one
    that grows it past memory: the network is shown the chain's largest output, not the image.
    `asked` is the chain as the user wrote it: the message names it, and what it became when its
    pixel amounts were scaled for a small image."""
    from .runtime.memory import check_fits
    from .transforms.sizes import check_transform_sizes

    fitted = describe_transforms(chain)
    described = f"'{asked}'" if fitted == asked else f"'{asked}' (scaled to '{fitted}' for this image size)"
    sizes = check_transform_sizes(chain, tuple(param.image_hw), model.min_size, model.name, described, render)
    shown = render or max(sizes.largest)
    if shown > max(param.image_hw):
        images = batch if not isinstance(max_batch, int) else min(batch, max_batch)
        check_fits(
            model,
            shown,
            images=images,
            backward=True,
            what=f"the transforms grow each image to {shown}x{shown} px, and {images} such image(s)",
        )
    return sizes


class Problem:
    """Owns model, objective, parameterization and transforms for a batch of `batch` images."""

    def __init__(
        self,
        model: FeatureModel,
        objective: Objective,
        param: Parameterization,
        transforms: Compose | None = None,
        batch: int | None = None,
        seed: int = 0,
        max_batch: int | str = 32,
        image_grad: ImageGradHook | None = None,
        meter: Meter | None = None,
        generator: torch.Generator | None = None,
        validated: bool = False,
        tile: int | None = None,
        speed: Speed = EAGER,
        render: int | None = None,
    ) -> None:
        check_type("model", model, FeatureModel, "a FeatureModel (fvopt.load_model)")
        check_type("objective", objective, Objective, "an Objective (fvopt.parse_target)")
        check_type("param", param, Parameterization, "a Parameterization (fvopt.make_param)")
        check_type("speed", speed, Speed, "a fvopt.runtime.speed.Speed")
        speed.check_compile(model.device)  # before any model pass: a compile that cannot work is refused now
        batch = check("batch", batch, POSITIVE_INT)
        self.model = model
        self.objective = objective
        self.param = param.to(model.device)
        self.render = check("render", render, IMAGE_SIDE)
        if self.render is not None and tile is not None:
            raise FvoptError(
                "render size and tile do not combine: a tiled image is shown to the network tile by "
                "tile at its own size; drop one of them"
            )
        if self.render is not None and self.render < model.min_size:
            raise FvoptError(
                f"render size {self.render} px is too small for {model.name}: at least {model.min_size} px"
            )
        chain = standard_transforms() if transforms is None else transforms
        fitted = fit_transforms(chain, param.image_hw, param.channels)  # pixel amounts scaled below 128 px
        self.transform_fit = describe_fit(chain, fitted, param.image_hw)  # what that changed, for the trace
        asked = describe_transforms(chain)
        chain = fitted
        self.transforms = chain if self.render is None else with_output_size(chain, self.render)
        self.views = views_of(self.transforms)
        if self.views > 1 and tile is not None:
            raise FvoptError("crops and tile do not combine: tiles already cut the image; drop one of them")
        self.batch = batch or objective.slots
        if self.batch < 1 or self.batch % objective.slots:
            raise FvoptError(f"batch {self.batch} must be a multiple of the {objective.slots} targets in '{objective}'")
        if self.batch < 2 and any(c.what == "diversity" for c in objective.checks):
            raise FvoptError(
                f"'{objective}' has a diversity term, which compares the images of a batch: with one "
                "image it is constant; use a batch of 2 or more (--batch 4)"
            )
        if param.channels != model.channels:
            raise FvoptError(
                f"param {param.name} draws {param.channels}-channel images and {model.name} takes "
                f"{model.channels} channels: make the parameterization with channels={model.channels}"
            )
        side = min(param.image_hw)  # the shorter side meets the network's minimum
        if side < model.min_size:
            raise FvoptError(
                f"image size {describe(param.size)} px is too small for {model.name}: at least "
                f"{model.min_size} px a side"
            )
        if tile is None:  # what the chain makes of the image, checked before any work (fvopt/transforms/sizes.py)
            self.transform_sizes = _check_chain_sizes(
                chain, param, model, self.render, batch or objective.slots, max_batch, asked
            )
        if not validated:  # a shape probe at the size the network sees; tiled images at the tile's size
            probe = self.render or param.size  # validate() itself uses the input size of a fixed-size network
            validate(objective, model, probe if tile is None else max(min(side, tile), model.min_size))
        self.seed = check("seed", seed, SEED)
        if max_batch == "auto":  # as many images per chunk as half the free memory holds
            from .runtime.memory import images_that_fit

            max_batch = images_that_fit(model, max(max(param.image_hw), model.min_size), backward=False)
        self.max_batch = check("max_batch", max_batch, POSITIVE_INT)
        self.image_grad = image_grad
        if tile is not None and tile < model.min_size:
            raise FvoptError(f"tile {tile} px is smaller than {model.name}'s minimum input of {model.min_size} px")
        self.tile = tile
        self.speed = speed
        speed.prepare(model.net)
        mode = speed.compile_mode(model.device)
        self._pass = (
            None
            if mode is None
            else compiled_pass(
                model,
                objective.layers,
                mode,
                (self.render or param.size) if tile is None else max(min(side, tile), model.min_size),
            )
        )
        from .objectives.image_targets import bind_photos  # the photo's activations, once per model and size

        self.photos = bind_photos(objective, model, getattr(param, "image_hw", param.size), self.render)
        self.meter = meter or Meter()
        self._own_generator = generator is None
        self._parent: Problem | None = None
        self.generator = generator or torch.Generator().manual_seed(seed)
        self._frozen: tuple | None = None
        self.slots = torch.arange(self.batch, device=model.device)
        self._forget_best()

    def reset(self, budget: Budget | None = None) -> None:
        """Forget everything of the previous run: counts, best point, transform draws.

        Per-run state belongs to the run: a reused problem starts every run afresh, so one
        strategy's result can never leak into the next one's (the run loop calls this).
        """
        if self._own_generator:
            self.generator.manual_seed(self.seed)
        self.meter.reset(budget)
        self._forget_best()

    def _forget_best(self) -> None:
        self.best_values = torch.full((self.batch,), -torch.inf, device=self.device)
        self.best_z = torch.zeros(self.batch, self.dim, device=self.device)
        self._finite = torch.ones((), dtype=torch.bool, device=self.device)
        self._checks = 0

    @property
    def dim(self) -> int:
        return self.param.dim

    @property
    def device(self) -> torch.device:
        return self.model.device

    def restricted(self, param: Parameterization) -> "Problem":
        """The same problem over another parameterization, sharing the meter and the draws."""
        view = Problem(
            self.model,
            self.objective,
            param,
            self.transforms,
            self.batch,
            self.seed,
            self.max_batch,
            self.image_grad,
            self.meter,
            self.generator,
            validated=True,
            tile=self.tile,
            speed=self.speed,
            render=self.render,
        )
        view.transforms, view.transform_fit = self.transforms, self.transform_fit  # fitted once, not twice
        view._parent = self
        return view

    def init(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A starting point (batch, dim) drawn by the parameterization."""
        return self.param.init(self.batch, generator or torch.Generator().manual_seed(self.seed))

    # -- transform draws ------------------------------------------------------------------------
    def draw(self) -> tuple:
        return self._frozen if self._frozen is not None else self.transforms.sample(self.generator)

    @contextmanager
    def fixed_draw(self) -> Iterator[tuple]:
        """Every call inside sees one transform draw: common random numbers for a step."""
        outer = self._frozen
        self._frozen = self.draw()
        try:
            yield self._frozen
        finally:
            self._frozen = outer

    # -- the two doors --------------------------------------------------------------------------
    def evaluate(self, Z: torch.Tensor) -> torch.Tensor:
        """Values (P, batch) of a population Z (P, batch, dim) or (batch, dim); no gradients."""
        squeeze = Z.dim() == 2
        Z = Z.reshape(-1, self.batch, self.dim).to(self.device, torch.float32)
        P = Z.shape[0]
        self.meter.spend(P * self.batch * self.views, 0)  # each crop is one image through the network
        draw = self.draw()
        per_chunk = max(1, self.max_batch // self.batch)
        out = []
        with torch.no_grad(), self._capture() as cap:
            for i in range(0, P, per_chunk):
                out.append(self._values(cap, Z[i : i + per_chunk].reshape(-1, self.dim), draw))
        values = torch.cat(out).view(P, self.batch)
        self._record(Z, values)
        return values[0] if squeeze else values

    def value_and_grad(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Values (batch,) and d values / d z (batch, dim) for one point per image.

        With `tile`, images are rolled by a random offset and processed tile by tile
        (`gradients.tiled_value_and_grad`); each tile counts as one forward and one backward.
        """
        if self.tile is not None:
            return self._tiled_value_and_grad(z)
        self.meter.spend(self.batch * self.views, self.batch * self.views)
        draw = self.draw()
        z = self._leaf(z)
        with torch.enable_grad(), self._capture() as cap:
            values = self._values(cap, z, draw)
            self._check_finite(values, "objective")
            (grad,) = torch.autograd.grad(values.sum(), z)
        return self._finish(z, values, grad)

    def _capture(self):
        """The network pass that reads the objective's layers: the compiled one with `Speed.compile`
        (hooks that are the same objects every call, see speed.CompiledPass), else fresh hooks for this call."""
        return capture(self.model, self.objective.layers) if self._pass is None else nullcontext(self._pass)

    def _leaf(self, z: torch.Tensor) -> torch.Tensor:
        """z as a fresh (batch, dim) leaf on the model's device that records its gradient."""
        return z.detach().to(self.device, torch.float32).reshape(self.batch, self.dim).requires_grad_(True)

    def _finish(self, z: torch.Tensor, values: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_finite(grad, "gradient")
        self._record(z.detach()[None], values.detach()[None])
        return values.detach(), grad

    def _tiled_value_and_grad(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from .gradients import tile_bounds, tiled_value_and_grad

        draw = self.draw()
        z = self._leaf(z)
        with torch.enable_grad():
            images = self.param(z)
            if self.image_grad is not None:
                images.register_hook(self.image_grad)
            seen = self.transforms.apply(images, draw)
        h, w = seen.shape[-2:]
        tiles = len(tile_bounds(h, self.tile)) * len(tile_bounds(w, self.tile))
        self.meter.spend(self.batch * tiles, self.batch * tiles)
        with self._capture() as cap:

            def tile_values(piece: torch.Tensor) -> torch.Tensor:
                return self.objective(Activations(cap.run(piece), piece, self.slots, self.batch, cap.layouts))

            values, seen_grad, _ = tiled_value_and_grad(tile_values, seen.detach(), self.tile, self.generator)
        self._check_finite(values, "objective")
        (grad,) = torch.autograd.grad(seen, z, grad_outputs=seen_grad)
        return self._finish(z, values, grad)

    def _values(self, cap, z: torch.Tensor, draw: tuple) -> torch.Tensor:
        images = self.param(z)
        if self.image_grad is not None and images.requires_grad:
            images.register_hook(self.image_grad)
        seen = self.speed.input(self.shown(self.transforms.apply(images, draw)))
        with self.speed.autocast(self.device):
            acts = cap.run(seen)
        slots = self.slots.repeat(z.shape[0] // self.batch)
        if self.views == 1:
            return self.objective(Activations(acts, images, slots, self.batch, cap.layouts)).float()
        # crops: the batch came back as `views` copies, view by view; the value is the mean over views
        values = self.objective(
            Activations(acts, images.repeat(self.views, 1, 1, 1), slots.repeat(self.views), self.batch, cap.layouts)
        ).float()
        return values.view(self.views, -1).mean(0)

    def shown(self, seen: torch.Tensor) -> torch.Tensor:
        """What the network is shown: the transformed images, resized to the render size when the
        problem has one (Lucent's convention: a 128 px image shown at 224)."""
        return show_at(seen, self.render)

    def images(self, z: torch.Tensor) -> torch.Tensor:
        """The untransformed images of z (batch, dim), detached; costs no budget."""
        with torch.no_grad():
            return self.param(z.to(self.device, torch.float32).reshape(-1, self.dim))

    # -- bookkeeping ----------------------------------------------------------------------------
    def _check_finite(self, t: torch.Tensor, what: str) -> None:
        """Stop on NaN or infinity. On a GPU, without a host round-trip per call: the check is
        accumulated on the device and read every `SYNC_EVERY` calls (and by `raise_if_nonfinite`).
        NaN values never become the best point meanwhile (NaN > best is false)."""
        self._finite = self._finite & torch.isfinite(t).all()
        self._checks += 1
        if self.device.type == "cpu" or self._checks % SYNC_EVERY == 0:
            self.raise_if_nonfinite(what)

    def raise_if_nonfinite(self, what: str = "objective") -> None:
        """Raise NonFiniteError if any checked value so far was NaN or infinite (one host sync)."""
        if not bool(self._finite):
            raise NonFiniteError(f"the {what} became NaN or infinite after {self.meter.forwards} forward passes")

    def _record(self, Z: torch.Tensor, values: torch.Tensor) -> None:
        """Track the best point per slot, and the best value per slot since the loop last looked.

        Everything stays on the model's device (no `nonzero`, no `.cpu()`): a step needs no host sync.
        """
        self._check_finite(values, "objective")
        v = values.detach().float()
        top, arg = v.max(0)
        rows = Z.detach()[arg.to(Z.device), torch.arange(Z.shape[1], device=Z.device)]
        self._keep(top, rows)
        m = self.meter
        m.recent = top if m.recent is None else torch.maximum(m.recent, top)
        m.best = top if m.best is None else torch.maximum(m.best, top)

    def _keep(self, values: torch.Tensor, rows: torch.Tensor) -> None:
        """Candidates (one per slot) replace the best points they beat. A restricted view also hands
        them, lifted, to its parent, so the run's best point is known in the run's own space."""
        better = values.to(self.device) > self.best_values
        self.best_values = torch.where(better, values.to(self.device), self.best_values)
        self.best_z = torch.where(better[:, None], rows.to(self.device, self.best_z.dtype), self.best_z)
        if self._parent is not None:
            self._parent._keep(values, self.param.lift(rows.to(self.device)))
