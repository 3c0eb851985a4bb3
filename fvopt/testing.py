"""Conformance checks shipped with fvopt, for its own registries and for a plugin author's entries.

As scikit-learn's `check_estimator` does for estimators, each check takes a registered name and
raises `ConformanceError` (an AssertionError) saying what broke; `check_strategy`,
`check_param`, `check_transform` and `check_model_source` run all checks of one kind. fvopt's
own test suite runs them over every registered entry (tests/test_conformance_*.py), and a plugin
package calls them from its tests:

    from fvopt.testing import check_param, check_strategy
    check_strategy("one-plus-lambda")    # raises, improves, spends the budget honestly, is seeded, ...
    check_param("gray:k=8")              # images in [0,1], gradients flow, reduced forms lift exactly

Each `*_CHECKS` tuple lists the single checks (plain functions), so a test can parametrize over
them and see each by name. Everything runs on a tiny random CNN (`tiny_model`) in seconds, and
no check changes the process's global random state.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .errors import FvoptError
from .models.wrapper import FeatureModel
from .objectives import Objective, parse_target
from .params import Subspace, make_param
from .params.registry import DEFAULT_PARAM, PARAMS
from .problem import Budget, Problem
from .run import INTERRUPTED, run
from .strategies import make_strategy
from .strategies.base import search_space, strategy_options
from .transforms import describe_transforms, make_transforms, views_of

TARGET = "channel:conv2:3"
SIZE = 32


class ConformanceError(AssertionError):
    """An entry broke the contract of its kind: the message names the entry, the check and what was seen."""


def _require(ok: Any, message: str) -> None:
    if not ok:
        raise ConformanceError(message)


# ---------------------------------------------------------------------------------------------
# The tiny network every strategy and parameterization check runs on


class TinyNet(nn.Module):
    """Two strided convolutions and a linear head, with named layers like a real network."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flat(self.pool(self.act2(self.conv2(self.act1(self.conv1(x)))))))


def tiny_model() -> FeatureModel:
    """The tiny random CNN (seed 0, always the same weights), built without touching the global seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = TinyNet()
    return FeatureModel(net, "tiny", input_size=32, min_size=8, weights="random")


_TINY: list[FeatureModel] = []


def _tiny(model: FeatureModel | None) -> FeatureModel:
    if model is not None:
        return model
    if not _TINY:
        _TINY.append(tiny_model())
    return _TINY[0]


# ---------------------------------------------------------------------------------------------
# Strategies


def problem_for(
    model: FeatureModel,
    strategy,
    target: str = TARGET,
    param: str = DEFAULT_PARAM,
    transforms: str = "none",
    seed: int = 0,
    objective: Objective | None = None,
) -> Problem:
    """The problem a check runs: `param` at 32 px (its reduced form for zero-order strategies)."""
    space = search_space(strategy, make_param(param, SIZE))
    return Problem(model, objective or parse_target(target), space, make_transforms(transforms), seed=seed)


def _value_of(problem: Problem, z: torch.Tensor) -> float:
    with torch.no_grad():
        return problem.evaluate(z.to(problem.device)).mean().item()


def objective_changed_after(calls: int, change: Callable[[torch.Tensor], torch.Tensor]) -> Objective:
    """The target's objective for `calls` calls, then `change(values)` (a NaN, or a raised Ctrl-C)."""
    base = parse_target(TARGET)
    seen = {"n": 0}

    def fn(a):
        seen["n"] += 1
        values = base(a)
        return change(values) if seen["n"] > calls else values

    return Objective(fn, base.layers, f"changed after {calls}", checks=base.checks)


def _ctrl_c(values: torch.Tensor) -> torch.Tensor:
    raise KeyboardInterrupt


def check_raises_the_activation(name: str, model: FeatureModel | None = None) -> None:
    """600 passes from the start point raise the target's value (judged without transforms)."""
    model = _tiny(model)
    strategy = make_strategy(name)
    problem = problem_for(model, strategy)
    z0 = problem.init()
    result = run(problem, strategy, Budget(passes=600), z0=z0)
    problem.reset()
    before, after = _value_of(problem, z0), _value_of(problem, result.z)
    _require(after > before + 0.02, f"{name}: the value went from {before:.4f} to {after:.4f} in 600 passes")


BUDGETS = (("steps", 4), ("forwards", 97), ("passes", 131), ("seconds", 0.3))


def _queued_seconds() -> float | None:
    """Seconds this process's threads have sat ready to run while other jobs held the CPUs (Linux's
    schedstat, summed over the threads: torch's workers wait too; None where the system does not say)."""
    counts = []
    for task in Path("/proc/self/task").glob("*/schedstat"):
        try:
            counts.append(int(task.read_text().split()[1]))
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return sum(counts) / 1e9 if counts else None


class Stopwatch:
    """How long a timed block waited for a CPU while other jobs held them: from the block's start, or from
    the end of a run's first step when `on_step` is passed to `run` (the untimed warm-up before it is no
    part of the budget), to the block's end."""

    def __init__(self) -> None:
        self.wall, self.cpu = 0.0, 0.0
        self.queued_at_start: float | None = _queued_seconds()
        self.queued: float | None = None

    def on_step(self, row: dict) -> None:
        """`run`'s on_step callback: counts from the end of the first step."""
        if row["step"] == 1:
            self.queued_at_start = _queued_seconds()

    @property
    def waited(self) -> float:
        """Seconds the block was ready to go on but another job held the CPU: Linux counts them; elsewhere the
        whole block's wall time less this thread's CPU time stands in (an upper bound: it counts sleeping)."""
        return self.queued if self.queued is not None else max(0.0, self.wall - self.cpu)


@contextmanager
def timed_on_a_busy_machine() -> Iterator[Stopwatch]:
    """Time a block so that a rule about its wall time holds while other jobs share the machine.

    A busy machine stretches the wall clock, not the work: `waited` says by how much, so a rule can
    allow that much more (pass `watch.on_step` to `run` to count from its first step). Python's garbage
    collector is held off meanwhile: a full collection of the calling process's objects (a test suite's:
    0.2-1 s) is not the work being timed.
    """
    collecting = gc.isenabled()
    gc.disable()
    watch = Stopwatch()
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield watch
    finally:
        watch.wall, watch.cpu = time.perf_counter() - wall, time.thread_time() - cpu
        now, then = _queued_seconds(), watch.queued_at_start
        watch.queued = None if now is None or then is None else now - then
        if collecting:
            gc.enable()


def check_budgets_are_never_exceeded(
    name: str, model: FeatureModel | None = None, budgets: Sequence[tuple[str, float]] = BUDGETS
) -> None:
    """Budgets of each kind are never exceeded and the trace's last row equals the problem's meter."""
    model = _tiny(model)
    for kind, amount in budgets:
        strategy = make_strategy(name)
        problem = problem_for(model, strategy)
        cost = strategy.check(problem.param, problem.batch, Budget(**{kind: amount}))
        if kind in ("forwards", "passes") and getattr(cost, kind) > amount:
            continue  # one step costs more than this budget: refused up front (another check)
        with timed_on_a_busy_machine() as watch:
            result = run(problem, strategy, Budget(**{kind: amount}), on_step=watch.on_step)
        spent = {"steps": result.steps, "forwards": result.forwards, "passes": result.passes}
        where = f"{name} with a budget of {amount} {kind}"
        if kind != "seconds":
            _require(spent[kind] <= amount, f"{where} spent {spent[kind]}")
        else:  # no step starts after the budget ran out, and the run ends soon after its last step
            ends = [0.0] + [r["time_s"] for r in result.trace]
            # "soon" in this run's own step times, not in fixed seconds, plus the time the run waited while
            # other jobs held the CPU: on a busy machine the wrap-up (the strategy's best point, e.g.
            # nevergrad's recommendation) may wait for a CPU longer than any step did
            slowest = max(b - a for a, b in zip(ends, ends[1:])) if len(ends) > 1 else 0.0
            allowed = max(0.5, 4 * slowest) + watch.waited
            _require(
                ends[-2] < amount and result.seconds < ends[-1] + allowed,
                f"{where} started a step at {ends[-2]:.2f} s and ended at {result.seconds:.2f} s "
                f"(its slowest step took {slowest:.2f} s; it waited {watch.waited:.2f} s for a CPU)",
            )
        _require(result.trace, f"{where}: no step was recorded")
        last = result.trace[-1]
        _require(
            (last["forwards"], last["backwards"]) == (result.forwards, result.backwards),
            f"{where}: the trace says {last['forwards']}/{last['backwards']} passes, the meter "
            f"{result.forwards}/{result.backwards}",
        )
        _require(last["step"] == len(result.trace), f"{where}: trace steps are not numbered 1..N")
        if not strategy.uses_gradients:
            _require(
                result.backwards == 0 and all(r["backwards"] == 0 for r in result.trace),
                f"{where}: declares uses_gradients = False and spent {result.backwards} backward passes",
            )
        elif kind != "seconds":  # a 0.3 s budget may end inside a hybrid's first, gradient-free part
            _require(result.backwards > 0, f"{where}: declares uses_gradients and spent no backward pass")


def check_best_has_the_right_shape(name: str, model: FeatureModel | None = None) -> None:
    """The best point of a batch of 3 has shape (3, dim), is finite and lives on the problem's device."""
    model = _tiny(model)
    strategy = make_strategy(name)
    problem = problem_for(model, strategy, target="channel:conv2:0-2")
    result = run(problem, strategy, Budget(steps=3))
    _require(
        result.z.shape == (3, problem.dim),
        f"{name}: best z has shape {tuple(result.z.shape)}, expected (3, {problem.dim})",
    )
    _require(
        torch.isfinite(result.z).all() and result.z.device == problem.device,
        f"{name}: best z is not finite or not on {problem.device}",
    )
    _require(result.images.shape == (3, 3, SIZE, SIZE), f"{name}: images of shape {tuple(result.images.shape)}")
    _require(
        strategy.best.shape == (3, problem.dim) and strategy.best.device == problem.device,
        f"{name}: strategy.best has shape {tuple(strategy.best.shape)} on {strategy.best.device}",
    )


def check_same_seed_same_result(name: str, model: FeatureModel | None = None) -> None:
    """Two runs with the same seed (random transforms included) give the same point and trace."""
    model = _tiny(model)
    runs = []
    for _ in range(2):
        strategy = make_strategy(name)
        problem = problem_for(model, strategy, transforms="default", seed=5)
        runs.append(run(problem, strategy, Budget(steps=4)))
    _require(torch.equal(runs[0].z, runs[1].z), f"{name}: two runs with seed 5 ended at different points")
    _require(
        [r["value"] for r in runs[0].trace] == [r["value"] for r in runs[1].trace],
        f"{name}: two runs with seed 5 have different traces",
    )


def check_reused_problem_leaks_nothing(name: str, model: FeatureModel | None = None) -> None:
    """A problem that already ran (a strong earlier run) gives the same run as a fresh one."""
    model = _tiny(model)
    fresh_strategy = make_strategy(name)
    fresh = run(problem_for(model, fresh_strategy, transforms="default"), fresh_strategy, Budget(steps=3))
    strategy = make_strategy(name)
    problem = problem_for(model, strategy, transforms="default")
    earlier = make_strategy("adam", lr=0.5) if problem.dim > 4096 or name.startswith("hybrid") else make_strategy(name)
    run(problem, earlier, Budget(steps=6))
    reused = run(problem, strategy, Budget(steps=3))
    _require(torch.equal(reused.z, fresh.z), f"{name}: a reused problem gave another point than a fresh one")
    _require(
        [r["value"] for r in reused.trace] == [r["value"] for r in fresh.trace],
        f"{name}: a reused problem gave another trace than a fresh one",
    )


def check_nan_stops_and_keeps_the_best(name: str, model: FeatureModel | None = None) -> None:
    """An objective that turns NaN stops the run, says so, and keeps a finite best image."""
    model = _tiny(model)
    strategy = make_strategy(name)
    problem = problem_for(model, strategy, objective=objective_changed_after(3, lambda v: v * float("nan")))
    result = run(problem, strategy, Budget(steps=50))
    _require(
        "NaN" in result.stop_reason and "kept the best" in result.stop_reason,
        f"{name}: a NaN objective stopped with {result.stop_reason!r}",
    )
    _require(
        torch.isfinite(result.z).all() and torch.isfinite(result.images).all(),
        f"{name}: the kept point or image is not finite after a NaN",
    )
    _require(result.steps < 50, f"{name}: ran all 50 steps on a NaN objective")


def check_ctrl_c_keeps_the_best(name: str, model: FeatureModel | None = None) -> None:
    """Ctrl-C inside a step ends the run with the best point every evaluation went through."""
    model = _tiny(model)
    strategy = make_strategy(name)
    problem = problem_for(model, strategy, objective=objective_changed_after(4, _ctrl_c))
    result = run(problem, strategy, Budget(steps=50))
    _require(result.stop_reason == INTERRUPTED, f"{name}: Ctrl-C stopped with {result.stop_reason!r}")
    _require(torch.isfinite(result.z).all(), f"{name}: the point kept after Ctrl-C is not finite")
    _require(
        torch.isfinite(problem.best_values).all() and torch.equal(result.z, problem.best_z),
        f"{name}: the point kept after Ctrl-C is not the problem's best",
    )


def check_bad_options_are_refused(name: str, model: FeatureModel | None = None) -> None:
    """Each declared option refuses a wrongly typed value in one line; an undeclared one is refused."""
    bad_values = {int: "abc", float: "nan", bool: "maybe", str: 3, tuple: "0.9"}
    for option, spec in strategy_options(name).items():
        try:
            make_strategy(name, **{option: bad_values.get(spec.kind, object())})
        except FvoptError as err:
            _require(option in str(err) and "\n" not in str(err), f"{name}: option {option} refused as {err}")
        else:
            raise ConformanceError(f"{name}: option {option}={bad_values.get(spec.kind)!r} was accepted")
    try:
        make_strategy(name, _kind="sgd")
    except FvoptError as err:
        _require("does not take option '_kind'" in str(err), f"{name}: an unknown option refused as {err}")
    else:
        raise ConformanceError(f"{name}: an undeclared option _kind was accepted")


def check_too_small_budget_refused_up_front(name: str, model: FeatureModel | None = None) -> None:
    """A budget below one step's declared cost is refused before any model pass."""
    model = _tiny(model)
    strategy = make_strategy(name)
    problem = problem_for(model, strategy)
    cost = strategy.check(problem.param, problem.batch, Budget(steps=1))
    if cost.passes < 2:
        return  # one pass is a whole step
    problem = problem_for(model, strategy, objective=objective_changed_after(0, _ctrl_c))  # any pass would raise
    try:
        run(problem, strategy, Budget(passes=cost.passes - 1))
    except FvoptError as err:
        _require(
            "too small for one step" in str(err) and f"at least {cost.passes} passes" in str(err),
            f"{name}: a too small budget refused as {err}",
        )
    else:
        raise ConformanceError(f"{name}: a budget of {cost.passes - 1} passes (one step costs {cost}) was accepted")
    _require(problem.meter.forwards == 0, f"{name}: a refused budget still spent {problem.meter.forwards} passes")


STRATEGY_CHECKS: tuple[Callable[..., None], ...] = (
    check_raises_the_activation,
    check_budgets_are_never_exceeded,
    check_best_has_the_right_shape,
    check_same_seed_same_result,
    check_reused_problem_leaks_nothing,
    check_nan_stops_and_keeps_the_best,
    check_ctrl_c_keeps_the_best,
    check_bad_options_are_refused,
    check_too_small_budget_refused_up_front,
)


def check_strategy(name: str, model: FeatureModel | None = None) -> list[str]:
    """Run every strategy check on the optimizer `name`; returns the names of the checks passed."""
    make_strategy(name)  # an unknown name is one FvoptError, not nine failures
    for check in STRATEGY_CHECKS:
        check(name, model)
    return [check.__name__ for check in STRATEGY_CHECKS]


# ---------------------------------------------------------------------------------------------
# Parameterizations


def _random_point(p, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return p.init(2, g) + 0.3 * torch.randn((2, p.dim), generator=g)


def check_images_in_range_and_gradients_flow(spec: str) -> None:
    """Images of shape (N, 3, S, S) in [0,1] from (N, dim) vectors, with finite, non-zero gradients."""
    p = make_param(spec, SIZE)
    z = _random_point(p).requires_grad_(True)
    _require(z.shape == (2, p.dim), f"{spec}: init gives shape {tuple(z.shape)}, expected (2, {p.dim})")
    x = p(z)
    _require(x.shape == (2, 3, SIZE, SIZE), f"{spec}: images of shape {tuple(x.shape)}")
    low, high = float(x.detach().min()), float(x.detach().max())
    _require(low >= 0 and high <= 1, f"{spec}: image values in [{low:.3g}, {high:.3g}], outside [0,1]")
    x[:, 0].mean().backward()
    _require(torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0, f"{spec}: no finite gradient reaches z")
    _require(p.init(3, torch.Generator().manual_seed(1)).shape == (3, p.dim), f"{spec}: init(3) has the wrong shape")


def check_init_is_reproducible(spec: str) -> None:
    """The same generator seed gives the same start point."""
    p = make_param(spec, SIZE)
    a, b = (p.init(2, torch.Generator().manual_seed(7)) for _ in range(2))
    _require(torch.equal(a, b), f"{spec}: init differs for the same generator seed")


def check_reduced_form_lifts_exactly(spec: str) -> None:
    """`reduced()` (what zero-order search uses) lifts into the full form with the same image."""
    low = make_param(spec, SIZE).reduced()
    full = low.full
    _require(full.dim >= low.dim and full.size == low.size, f"{spec}: the reduced form is larger than the full one")
    z = _random_point(low, 2)
    lifted = low.lift(z)
    _require(lifted.shape == (2, full.dim), f"{spec}: lift gives shape {tuple(lifted.shape)}")
    _require(torch.allclose(full(lifted), low(z), atol=1e-6), f"{spec}: the lifted vector draws another image")
    if isinstance(low, Subspace):  # free values land at their index, the frozen ones stay at the base
        _require(torch.equal(lifted[:, low.index], z), f"{spec}: free values are not at their index")
        frozen = torch.ones(full.dim, dtype=torch.bool)
        frozen[low.index] = False
        _require(torch.equal(lifted[:, frozen], low.base[frozen].expand(2, -1)), f"{spec}: frozen values moved")


def check_param_options_refuse_bad_values(spec: str) -> None:
    """Every declared option refuses a wrongly typed value in one line; an unknown option is refused."""
    name = spec.split(":", 1)[0]
    bad = {int: "x", float: "nan", bool: "maybe", str: "zzz"}
    for option, declared in PARAMS[name].options.items():
        try:
            make_param(f"{name}:{option}={bad.get(declared.kind, 'x')}", SIZE)
        except FvoptError as err:
            _require(
                f"{option}=" in str(err) and "is not allowed: must be" in str(err) and "\n" not in str(err),
                f"{name}: option {option} refused as {err}",
            )
        else:
            raise ConformanceError(f"{name}: option {option}={bad.get(declared.kind, 'x')} was accepted")
    try:
        make_param(f"{name}:nope=1", SIZE)
    except FvoptError as err:
        _require("nope" in str(err), f"{name}: an unknown option refused as {err}")
    else:
        raise ConformanceError(f"{name}: an unknown option nope=1 was accepted")


PARAM_CHECKS: tuple[Callable[[str], None], ...] = (
    check_images_in_range_and_gradients_flow,
    check_init_is_reproducible,
    check_reduced_form_lifts_exactly,
    check_param_options_refuse_bad_values,
)


def check_param(spec: str) -> list[str]:
    """Run every parameterization check on `spec` (a name with options, e.g. "gray:k=8")."""
    make_param(spec, SIZE)
    for check in PARAM_CHECKS:
        check(spec)
    return [check.__name__ for check in PARAM_CHECKS]


# ---------------------------------------------------------------------------------------------
# Transforms


def check_transform_replays_its_draw_and_is_differentiable(spec: str) -> None:
    """One draw applied twice gives one result (common random numbers); gradients reach the image."""
    chain = make_transforms(spec)
    x = torch.rand(2, 3, 48, 48, requires_grad=True)
    draw = chain.sample(torch.Generator().manual_seed(1))
    out = chain.apply(x, draw)
    _require(
        out.shape[0] == 2 * views_of(chain) and out.shape[1] == 3,
        f"{spec}: 2 images gave shape {tuple(out.shape)} ({views_of(chain)} views each)",
    )
    _require(torch.isfinite(out).all(), f"{spec}: the output is not finite")
    _require(torch.equal(out, chain.apply(x, draw)), f"{spec}: the same draw gave two results")
    again = chain.apply(x, chain.sample(torch.Generator().manual_seed(1)))
    _require(torch.equal(out, again), f"{spec}: the same generator seed gave another draw")
    out.sum().backward()
    _require(x.grad is not None and x.grad.abs().sum() > 0, f"{spec}: no gradient reaches the image")


def check_transform_round_trips(spec: str) -> None:
    """The chain's description is grammar text that builds the same chain (traces name what ran)."""
    chain = make_transforms(spec)
    text = describe_transforms(chain)
    _require(isinstance(text, str) and text, f"{spec}: no description")
    _require(make_transforms(text) == chain, f"{spec}: described as {text!r}, which builds another chain")


TRANSFORM_CHECKS: tuple[Callable[[str], None], ...] = (
    check_transform_replays_its_draw_and_is_differentiable,
    check_transform_round_trips,
)


def check_transform(spec: str) -> list[str]:
    """Run every transform check on a chain in the grammar (e.g. "pad:12,jitter:8")."""
    make_transforms(spec)
    for check in TRANSFORM_CHECKS:
        check(spec)
    return [check.__name__ for check in TRANSFORM_CHECKS]


# ---------------------------------------------------------------------------------------------
# Model sources


def _load(name: "str | FeatureModel", weights: str | None) -> FeatureModel:
    """The model of a source by name (loaded on the CPU), or a model a caller loaded once for all checks."""
    if isinstance(name, FeatureModel):
        return name
    from .models import load_model

    return load_model(name, weights=weights, device="cpu")


def _input_hw(model: FeatureModel) -> tuple[int, int]:
    size = model.input_size
    return (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size), int(size))


def check_model_is_a_feature_model_in_eval_mode(name: "str | FeatureModel", weights: str | None = "random") -> None:
    """The source gives a FeatureModel in eval mode, named, with an input size."""
    model = _load(name, weights)
    name = model.name if isinstance(name, FeatureModel) else name
    _require(isinstance(model, FeatureModel), f"{name}: loaded a {type(model).__name__}, not a FeatureModel")
    _require(not any(m.training for m in model.modules()), f"{name}: a module is in training mode")
    _require(isinstance(model.name, str) and model.name, f"{name}: the model has no name")
    _require(model.input_size, f"{name}: the model has no input size")


def check_model_scores_images_with_gradients(name: "str | FeatureModel", weights: str | None = "random") -> None:
    """[0,1] images at the input size give one finite score row per image, differentiable in the images."""
    model = _load(name, weights)
    name = model.name if isinstance(name, FeatureModel) else name
    h, w = _input_hw(model)
    x = torch.rand(2, getattr(model, "channels", 3), h, w, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    out = model(x)
    _require(
        out.shape[0] == 2 and torch.isfinite(out).all(),
        f"{name}: 2 images gave {tuple(out.shape)} or non-finite scores",
    )
    out[:, 0].sum().backward()
    _require(
        x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0,
        f"{name}: no finite gradient reaches the images",
    )


def check_model_layers_are_readable_and_hooks_removed(
    name: "str | FeatureModel", weights: str | None = "random"
) -> None:
    """Its layers list with layouts, a channel of one can be raised, and no hook is left behind."""
    from .models import list_layers
    from .viz import visualize

    model = _load(name, weights)
    name = model.name if isinstance(name, FeatureModel) else name
    if getattr(model, "hookable", None):
        return  # a source without hooks (TorchScript): class targets only, said by the source itself
    # a fixed-size network sees its own input size; any other is checked small (its layers are the same)
    size = min(_input_hw(model)) if model.fixed_size else max(getattr(model, "min_size", 32), 64)
    readable = [info for info in list_layers(model, size) if info.layout is not None]
    _require(readable, f"{name}: no layer can be read as a feature map")
    layer = readable[len(readable) // 2].name
    vis = visualize(
        model,
        f"channel:{layer}:0",
        "pixel",
        "adam",
        steps=1,
        size=size,
        transforms="none",
        device="cpu",
        progress=False,
    )
    _require(torch.isfinite(vis.images).all(), f"{name}: one step of visualize on {layer} gave no finite image")
    left = [n for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]
    _require(not left, f"{name}: hooks left on {left[:3]} after a run")


MODEL_SOURCE_CHECKS: tuple[Callable[..., None], ...] = (
    check_model_is_a_feature_model_in_eval_mode,
    check_model_scores_images_with_gradients,
    check_model_layers_are_readable_and_hooks_removed,
)


def check_model_source(name: str, weights: str | None = "random") -> list[str]:
    """Run every model-source check on the model `name` (random weights unless told otherwise).

    The first check loads the model by name; the others reuse it (each model check also takes a
    loaded FeatureModel in place of the name)."""
    check_model_is_a_feature_model_in_eval_mode(name, weights)
    model = _load(name, weights)
    for check in MODEL_SOURCE_CHECKS[1:]:
        check(model, weights)
    return [check.__name__ for check in MODEL_SOURCE_CHECKS]


# ---------------------------------------------------------------------------------------------
# Quality measures (fvopt.quality.registry)


def tiny_judge() -> FeatureModel:
    """A second tiny network (seed 1): the judge, and the other network of `transfer`, in the checks."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        net = TinyNet()
    return FeatureModel(net, "tiny-judge", input_size=32, min_size=8, weights="random")


def reference_folder(root: "str | Path") -> "Path":
    """A small reference set of varied synthetic photos (fvopt.quality.synthetic), written once under `root`."""
    from .quality.synthetic import make_folder

    root = Path(root)
    if not (root / "done").is_file():
        make_folder(root, n=40, side=48, seed=0)
        (root / "done").write_text("")
    return root


def _measure_target(name: str) -> str:
    from .quality.registry import needs_of

    return "class:1,3,5" if needs_of(name).class_target else "channel:act2:3,4,5"


def _images_for(model: FeatureModel, target: str) -> torch.Tensor:
    """Real images: a few Adam steps on the tiny network, one image per unit of `target`."""
    strategy = make_strategy("adam")
    problem = problem_for(model, strategy, target=target)
    with torch.random.fork_rng(devices=[]):
        result = run(problem, strategy, Budget(steps=3))
    return result.images.detach()


def _judged(name: str, model: FeatureModel, folder: "str | Path", **kwargs: Any) -> tuple[dict, torch.Tensor]:
    from .quality import judge

    target = kwargs.pop("target", _measure_target(name))
    images = kwargs.pop("images", None)
    images = _images_for(model, target) if images is None else images
    other = tiny_judge()
    settings = dict(judge=other, transfer=[other], measures=[name], top=4, pairs=4, **kwargs)
    if "reference" not in kwargs:
        settings.update(
            reference=str(reference_folder(Path(folder) / "reference")), cache_folder=Path(folder) / "cache"
        )
    return judge(images, target, model, **settings), images


def _finite(value: Any) -> bool:
    return isinstance(value, float) and value == value and abs(value) != float("inf")


def check_measure_gives_finite_values_of_its_declared_shape(
    name: str, model: FeatureModel | None = None, folder: "str | Path | None" = None
) -> None:
    """On real images, every declared output is a finite number with its interval; per image one value
    (one for the batch when the measure compares a batch); nothing undeclared is written."""
    from .quality.registry import needs_of, outputs_of, shown

    with _folder(folder) as where:
        row, images = _judged(name, _tiny(model), where)
    n = images.shape[0]
    expected = 1 if needs_of(name).batch > 1 else n
    _require(row["measures"] == [name], f"{name}: judge computed {row['measures']}, not [{name}]")
    for out in outputs_of(name):
        _require(_finite(row.get(out.name)), f"{name}: output {out.name} is {row.get(out.name)!r}, not a finite float")
        for key in (f"{out.name}_lo", f"{out.name}_hi"):
            _require(isinstance(row.get(key), float), f"{name}: {key} is {row.get(key)!r}, not a float")
        per = row["per_image"].get(out.name)
        _require(
            isinstance(per, list) and len(per) == expected and all(_finite(v) for v in per),
            f"{name}: per_image[{out.name}] is {per!r}, expected {expected} finite values",
        )
    others = [m for m in shown() if m in row and m not in {o.name for o in outputs_of(name)}]
    _require(not others, f"{name}: wrote the outputs of other measures: {others}")


def check_measure_needs_are_honoured(
    name: str, model: FeatureModel | None = None, folder: "str | Path | None" = None
) -> None:
    """Each declared need, unmet, makes the measure absent by default (with the reason) and refused in one
    line when named, before any pass: no reference, a channel target for a class measure, too few images,
    images of one channel; and a measure that declares no reference need is computed without one."""
    from .quality.registry import needs_of
    from .quality.score import plan

    needs = needs_of(name)
    target = _measure_target(name)
    n = max(3, needs.batch)
    unmet = []
    if needs.reference:
        unmet.append(("no reference", dict(target=target, n_images=n, has_reference=False)))
    if needs.class_target:
        unmet.append(("a channel target", dict(target="channel:act2:3", n_images=n, has_reference=True)))
    if needs.batch > 1:
        unmet.append(("one image", dict(target=target, n_images=needs.batch - 1, has_reference=True)))
    if needs.rgb:
        unmet.append(("one channel", dict(target=target, n_images=n, has_reference=False, channels=1)))
    for what, facts in unmet:
        wanted, absent, _ = plan(measures="default", **facts)
        _require(name not in wanted and absent.get(name), f"{name}: with {what} it is not absent by default")
        try:
            plan(measures=[name], **facts)
        except FvoptError as err:
            _require(name in str(err) and "\n" not in str(err), f"{name}: with {what} refused as {err!r}")
        else:
            raise ConformanceError(f"{name}: with {what}, asking for it by name was accepted")
    if needs.reference:  # judge itself refuses it, before loading anything
        try:
            _judged(name, _tiny(model), None, reference=None, images=torch.rand(n, 3, 32, 32))
        except FvoptError as err:
            _require("reference" in str(err), f"{name}: judge without a reference refused it as {err!r}")
        else:
            raise ConformanceError(f"{name}: judge computed it without the reference it needs")
    wanted, _, _ = plan(target, n, True, "default")
    _require(name in wanted, f"{name}: with everything it needs, the default plan leaves it out")
    if not needs.reference:  # what it does not declare it must not read: it runs without a reference
        try:
            row, _ = _judged(name, _tiny(model), None, reference=None)
        except Exception as err:  # noqa: BLE001 - whatever broke, the declaration is wrong
            raise ConformanceError(f"{name}: declares no reference need, yet fails without one: {err!r}") from None
        _require(_finite(row.get(name)), f"{name}: declares no reference need, yet gives {row.get(name)!r} without one")


def check_measure_controls_run(
    name: str, model: FeatureModel | None = None, folder: "str | Path | None" = None
) -> None:
    """The controls each output must beat (gray, noise, a reference image) are scored, as numbers (None
    where a control has no value: a uniform gray image has no spectral slope), and `informative` says
    whether the value beat them (None for an output without a better side)."""
    from .quality.registry import outputs_of

    with _folder(folder) as where:
        row, _ = _judged(name, _tiny(model), where)
    for out in outputs_of(name):
        values = {c: row.get(f"{out.name}_{c}", "missing") for c in out.baselines}
        _require(
            all(v is None or _finite(v) for v in values.values()),
            f"{name}: the controls of {out.name} are {values}, not finite floats (or None where undefined)",
        )
        _require(
            not values or any(_finite(v) for v in values.values()),
            f"{name}: no control of {out.name} was scored ({values})",
        )
        flag = row.get(f"{out.name}_informative")
        if out.better and out.baselines:
            _require(isinstance(flag, bool), f"{name}: {out.name}_informative is {flag!r}, not a bool")
        else:
            _require(flag is None, f"{name}: {out.name} has no better side or no baseline, yet informative is {flag!r}")


def check_measure_is_reproducible(
    name: str, model: FeatureModel | None = None, folder: "str | Path | None" = None
) -> None:
    """The same images, settings and seed give the same values (intervals included)."""
    from .quality.registry import outputs_of

    model = _tiny(model)
    with _folder(folder) as where:
        first, images = _judged(name, model, where, seed=3)
        second, _ = _judged(name, model, where, seed=3, images=images)
    for out in outputs_of(name):
        for key in (out.name, f"{out.name}_lo", f"{out.name}_hi"):
            _require(first.get(key) == second.get(key), f"{name}: {key} was {first.get(key)} then {second.get(key)}")


@contextmanager
def _folder(folder: "str | Path | None") -> Iterator["str | Path"]:
    """`folder`, or a temporary one removed after (the reference set is written there)."""
    if folder is not None:
        yield folder
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fvopt-check-") as where:
        yield where


MEASURE_CHECKS: tuple[Callable[..., None], ...] = (
    check_measure_gives_finite_values_of_its_declared_shape,
    check_measure_needs_are_honoured,
    check_measure_controls_run,
    check_measure_is_reproducible,
)


def check_measure(name: str, model: FeatureModel | None = None, folder: "str | Path | None" = None) -> list[str]:
    """Run every quality-measure check on the registered measure `name` (on the tiny networks, with a
    small synthetic reference set written under `folder`, or a temporary folder)."""
    from .quality.registry import MEASURES

    MEASURES.get_entry(name)  # an unknown name is one FvoptError, not four failures
    with _folder(folder) as where:
        for check in MEASURE_CHECKS:
            check(name, model, where)
    return [check.__name__ for check in MEASURE_CHECKS]


# ---------------------------------------------------------------------------------------------
# Report sections (fvopt.bench.sections)


def small_report_store(path: "str | Path", folder: "str | Path | None" = None) -> Path:
    """A small real results database at `path`: two optimizers and two seeds on a class target of the
    tiny network, each cell a real run (120 passes) judged by every registered measure that applies
    (with a synthetic reference set written under `folder`, default beside `path`, its activations
    cached beside `path`), and one failed cell."""
    import io

    from .bench.store import Store
    from .io.images import grid
    from .quality import judge

    path = Path(path)
    model, other = _tiny(None), tiny_judge()
    ref = str(reference_folder(Path(folder) if folder is not None else path.parent / "reference"))
    store = Store(path)
    try:
        for target in ("class:1,3",):
            for name in ("adam", "cmaes"):
                for seed in (0, 1):
                    strategy = make_strategy(name)
                    problem = problem_for(model, strategy, target=target, seed=seed)
                    result = run(problem, strategy, Budget(passes=120))
                    quality = judge(
                        result.images, target, model, judge=other, transfer=[other], reference=ref, seed=seed,
                        cache_folder=path.parent / "cache", top=4, pairs=4,
                    )  # fmt: skip
                    buffer = io.BytesIO()
                    grid(result.images).save(buffer, format="PNG")
                    store.save(_report_row(target, name, seed, result, problem, quality, buffer.getvalue()))
        store.save(
            {
                **_report_row("class:1,3", "adam", 9, None, None, None, None),
                "status": "failed",
                "error": "RuntimeError: a failure for the report to list",
                "traceback": "Traceback (most recent call last):\n  RuntimeError: a failure",
            }
        )
    finally:
        store.close()
    return path


def _report_row(target: str, name: str, seed: int, result, problem, quality, image) -> dict:
    """A stored cell as the bench writes it (fvopt.bench.cell.run_cell), for a run of the checks' problem."""
    row = {
        "key": f"{target}-{name}-{seed}",
        "spec_name": "small",
        "spec_hash": "check",
        "model": "tiny",
        "target": target,
        "strategy": name,
        "strategy_name": name,
        "options": {},
        "param": DEFAULT_PARAM,
        "param_used": DEFAULT_PARAM,
        "seed": seed,
        "size": SIZE,
        "budget": {"passes": 120},
        "transforms": "none",
        "status": "done",
        "final": {},
        "trace": [],
        "extra": {},
        "fvopt_version": "check",
        "torch_version": torch.__version__,
        "device": "cpu",
    }
    if result is None:
        return row
    from .evaluate import score_images

    scores = score_images(problem.model, parse_target(target), result.images)  # the common evaluator, as viz
    median, most = result.step_seconds()
    row.update(
        param_dim=int(result.z.shape[-1]),
        stop_reason=result.stop_reason,
        forwards=result.forwards,
        backwards=result.backwards,
        seconds=result.seconds,
        steps=result.steps,
        max_step_seconds=most,
        median_step_seconds=median,
        final={"value": float(scores["value"].mean()), "robust_value": float(scores["robust_value"].mean())},
        trace=result.trace,
        extra=dict(result.extra),
        image=image,
        quality=quality,
        finished_at=time.time(),
    )
    row["final"]["best_seen"] = result.trace[-1]["best"] if result.trace else None
    return row


_MARKDOWN_HEADING = __import__("re").compile(r"^#{1,6}( |$)")


def markdown_problems(text: str) -> list[str]:
    """What is wrong with a Markdown text ([] when nothing): not a non-empty string ending in a newline,
    a heading without a space after its #s, a table row whose cells differ from its header's, a table
    without its separator row, an unclosed code fence."""
    if not isinstance(text, str) or not text.strip():
        return ["empty or not a string"]
    problems = [] if text.endswith("\n") else ["does not end with a newline"]
    lines = text.split("\n")
    fenced = False
    table: list[str] = []
    for number, line in enumerate(lines + [""], 1):
        if line.strip().startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        if line.startswith("#") and not _MARKDOWN_HEADING.match(line):
            problems.append(f"line {number}: heading without a space: {line[:40]!r}")
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            width = table[0].count("|")
            if len(table) < 2 or not set(table[1].replace("|", "")) <= set("-: "):
                problems.append(f"line {number - len(table)}: a table without its separator row")
            problems += [
                f"line {number - len(table) + i}: {row.count('|') - 1} cells, the header has {width - 1}"
                for i, row in enumerate(table)
                if row.count("|") != width
            ]
            table = []
    if fenced:
        problems.append("a code fence is not closed")
    return problems


def html_problems(text: str) -> list[str]:
    """What is wrong with an HTML fragment ([] when nothing): a tag closed that is not open, or left
    open, a script (a section is data, never code)."""
    from html.parser import HTMLParser

    void = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
    problems: list[str] = []
    stack: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "script":
                problems.append("a <script> in a section")
            if tag not in void:
                stack.append(tag)

        def handle_endtag(self, tag):
            if tag in void:
                return
            if not stack or stack[-1] != tag:
                problems.append(f"</{tag}> closes {'<' + stack[-1] + '>' if stack else 'nothing'}")
                if tag in stack:
                    del stack[len(stack) - 1 - stack[::-1].index(tag) :]
            else:
                stack.pop()

    if not isinstance(text, str):
        return ["not a string"]
    parser = Parser(convert_charrefs=True)
    parser.feed(text)
    parser.close()
    return problems + [f"<{tag}> is never closed" for tag in stack]


def _section_data(db: "str | Path", out: Path):
    from .bench.sections import ReportData
    from .bench.store import Store

    store = Store(db, readonly=True)
    try:
        rows, failed = store.rows("done"), store.rows("failed")
    finally:
        store.close()
    out.mkdir(parents=True, exist_ok=True)
    return ReportData(rows, failed, out, examples=False)


def check_report_section_renders_markdown_and_html(name: str, db: "str | Path", work: "str | Path") -> None:
    """From a small real store, the section collects something, its Markdown files are valid Markdown
    with plain .md names, its HTML body is balanced HTML under a non-empty heading, and every file it
    wrote lies inside the report folder."""
    from .bench.sections import SECTIONS, render_markdown

    out = Path(work) / f"section-{name}"
    data = _section_data(db, out)
    section = SECTIONS[name].obj
    collected = data.collected(name)
    _require(collected is not None, f"{name}: collected nothing from a store with finished, failed and judged cells")
    for file, text in render_markdown(name, collected, data).items():
        bad = markdown_problems(text)
        _require(not bad, f"{name}: {file} is not valid Markdown: {'; '.join(bad[:3])}")
    if section.html is not None:
        heading = section.heading(collected, data)
        _require(isinstance(heading, str) and heading.strip(), f"{name}: its heading is {heading!r}")
        bad = html_problems(section.html(collected, data))
        _require(not bad, f"{name}: its HTML is not balanced: {'; '.join(bad[:3])}")
    root = out.resolve()
    outside = [p for p in data.written if root not in Path(p).resolve().parents]
    _require(not outside, f"{name}: wrote outside the report folder: {outside[:3]}")


def check_report_section_is_in_the_report(name: str, db: "str | Path", work: "str | Path") -> None:
    """`write_report` writes the section: its Markdown files, and in report.html its part under its
    anchor, linked from the navigation bar (the report is written once per folder `work`)."""
    from .bench.report import write_report
    from .bench.sections import SECTIONS, render_markdown

    out = Path(work) / "report"
    if not (out / "report.html").is_file():
        write_report(db, out, exports=False, examples=False)
    page = (out / "report.html").read_text(encoding="utf-8")
    section = SECTIONS[name].obj
    if section.html is not None:
        _require(f'<section id="{name}">' in page, f"{name}: report.html has no <section id={name!r}>")
        _require(f'<a href="#{name}">' in page, f"{name}: report.html's navigation bar has no link to it")
    data = _section_data(db, Path(work) / f"files-{name}")
    for file in render_markdown(name, data.collected(name), data):
        _require((out / file).is_file(), f"{name}: the report has no {file}")


REPORT_SECTION_CHECKS: tuple[Callable[..., None], ...] = (
    check_report_section_renders_markdown_and_html,
    check_report_section_is_in_the_report,
)


def check_report_section(name: str, db: "str | Path | None" = None, work: "str | Path | None" = None) -> list[str]:
    """Run every report-section check on the registered section `name`, from the results database `db`
    (default: `small_report_store`, made in a temporary folder), writing into `work`."""
    from .bench.sections import SECTIONS

    SECTIONS.get_entry(name)  # an unknown name is one FvoptError, not two failures
    with _folder(work) as where:
        db = db if db is not None else small_report_store(Path(where) / "small.sqlite")
        for check in REPORT_SECTION_CHECKS:
            check(name, db, where)
    return [check.__name__ for check in REPORT_SECTION_CHECKS]
