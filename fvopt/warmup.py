"""One untimed warm-up before a run's clock starts: first calls pay their one-time costs outside the budget.

Why: the first pass of a network at a new shape (kernel selection, allocator growth, autograd's
threads, a compile), the first `import cma` or `import nevergrad` and a library's first search
cost seconds once per process. Inside a wall-time budget they were charged to whichever run came
first: in a fresh process the first CMA-ES generation took 2.07 s and later ones 0.15 s, and the
first cell of each bench worker made 24 forwards where later cells made 432.

So `run()` warms up before it starts the clock, once per process, network, device and run shape
(image size, batch, crops, render and tile size, chunking, speed, parameterization, the strategy
and what one of its steps spends): a forward at the population's shape, a forward and backward
when the strategy uses gradients, and the strategy's own first start and ask on a throwaway copy.
None of it is counted in forwards, backwards, passes or seconds; its time is the trace's
`warmup_seconds` (0.0 when the shape was warm already). It leaves the run exactly as it would have
been: every random generator (torch, numpy, Python, the problem's), the best point and the counts
are restored, and image-gradient hooks (transparency maps) see none of its passes.
"""

from __future__ import annotations

import copy
import os
import time

import torch

from .errors import NonFiniteError
from .problem import Budget, Problem
from .runtime.scoped import _Saved
from .strategies.base import BaseStrategy, StepCost, Strategy

_WARM: set[tuple] = set()  # the (network, run shape) pairs warmed in this process
_PID = os.getpid()  # a forked worker inherits the parent's memory, not its warm caches: start afresh there


def shape_of(problem: Problem, strategy: Strategy, cost: StepCost) -> tuple:
    """What makes a run's first step cost more than its later ones: the same tuple, the same warm-up.

    The network is named by its class and name, not by the object: the costs of a first pass (kernel
    choices, allocator, autograd's threads) belong to the process and the shapes, so a network loaded
    again is warm already. A compiled pass (`Speed.compile`) is the exception: its graphs belong to
    the model object, so the key names that pass."""
    net = problem.model.net
    return (
        type(net).__module__,
        type(net).__qualname__,
        problem.model.name,
        None if problem._pass is None else id(problem._pass),
        str(problem.device),
        problem.batch,
        tuple(problem.param.image_hw),
        problem.param.name,
        problem.render,
        problem.tile,
        problem.views,
        problem.max_batch,
        repr(problem.speed.describe()),
        strategy.name or type(strategy).__name__,
        cost.forwards,
        cost.backwards,
    )


def is_warm(problem: Problem, strategy: Strategy, cost: StepCost) -> bool:
    """Whether this process already warmed this network at this run shape."""
    _forget_if_forked()
    return shape_of(problem, strategy, cost) in _WARM


def warm_up(problem: Problem, strategy: Strategy, z0: torch.Tensor, cost: StepCost, budget: Budget) -> float:
    """Warm the run's shapes once (see the module's docstring); returns the seconds it took, 0.0 when warm.

    The problem is left reset with no budget: the run loop resets it under its budget right after.
    """
    if is_warm(problem, strategy, cost):
        return 0.0
    start = time.perf_counter()
    saved = _Saved()  # the global generators, restored below: the warm-up draws nothing the run would draw
    if problem.device.type == "cuda":
        saved.save_cuda()
    generator = problem.generator.get_state()
    image_grad, problem.image_grad = problem.image_grad, None
    try:
        problem.reset(budget)  # the strategy's start reads it (nevergrad's selectors choose by budget)
        try:
            _passes(problem, strategy, z0, cost)
        except NonFiniteError:  # the run meets it again, and stops keeping its best point
            pass
    finally:
        problem.image_grad = image_grad
        problem.generator.set_state(generator)
        saved.restore()
        problem.reset(None)
    if problem.device.type == "cuda":
        torch.cuda.synchronize(problem.device)
    _WARM.add(shape_of(problem, strategy, cost))
    return time.perf_counter() - start


def _passes(problem: Problem, strategy: Strategy, z0: torch.Tensor, cost: StepCost) -> None:
    """The strategy's start and first ask on a throwaway copy (imports, library set-up), a forward at
    the population's shape when a step evaluates without gradients, and a forward and backward
    (tile by tile for a tiled problem) when the strategy uses gradients."""
    if isinstance(strategy, BaseStrategy):
        spare = copy.copy(strategy)  # start() gives the copy its own search state; the run starts the original
        spare.start(problem, z0)
        spare.first_ask(problem)
    problem.meter.budget = None  # the passes below are the warm-up's own, never refused by the run's budget
    if cost.backwards == 0:  # a step of forwards only (zero-order, or a hybrid's zero-order first part)
        population = max(1, cost.forwards // (problem.batch * problem.views))
        problem.evaluate(z0.to(problem.device).reshape(1, problem.batch, problem.dim).expand(population, -1, -1))
    if strategy.uses_gradients:  # tiled where the problem tiles: never a whole huge image at once
        problem.value_and_grad(z0)


def _forget_if_forked() -> None:
    global _PID
    if os.getpid() != _PID:
        _PID = os.getpid()
        _WARM.clear()
