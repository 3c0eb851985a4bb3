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

from typing import Any, Callable, Sequence

import torch
from torch import nn

from .errors import FvoptError
from .models.wrapper import FeatureModel
from .objectives import Objective, parse_target
from .params import Subspace, make_param
from .params.registry import PARAMS
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
    param: str = "fft",
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
        result = run(problem, strategy, Budget(**{kind: amount}))
        spent = {"steps": result.steps, "forwards": result.forwards, "passes": result.passes}
        where = f"{name} with a budget of {amount} {kind}"
        if kind != "seconds":
            _require(spent[kind] <= amount, f"{where} spent {spent[kind]}")
        else:  # no step starts after the budget ran out, and the run ends soon after its last step
            ends = [0.0] + [r["time_s"] for r in result.trace]
            # "soon" in this run's own step times, not in fixed seconds: on a busy machine the wrap-up (the
            # strategy's best point, e.g. nevergrad's recommendation) slows down as much as a step does
            slowest = max(b - a for a, b in zip(ends, ends[1:])) if len(ends) > 1 else 0.0
            _require(
                ends[-2] < amount and result.seconds < ends[-1] + max(0.5, 4 * slowest),
                f"{where} started a step at {ends[-2]:.2f} s and ended at {result.seconds:.2f} s "
                f"(its slowest step took {slowest:.2f} s)",
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
