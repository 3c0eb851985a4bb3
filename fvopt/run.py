"""The one run loop: drives any strategy until the budget ends, and writes one trace format."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .errors import NonFiniteError
from .problem import Budget, BudgetExhausted, Problem
from .strategies.base import Strategy


@dataclass
class RunResult:
    z: torch.Tensor  # (batch, dim) in the problem's parameterization
    images: torch.Tensor  # (batch, 3, H, W), untransformed, on the CPU
    trace: list[dict]
    stop_reason: str
    forwards: int
    backwards: int
    seconds: float
    steps: int
    extra: dict = field(default_factory=dict)

    @property
    def passes(self) -> int:
        return self.forwards + 2 * self.backwards


def exhausted(budget: Budget, problem: Problem) -> str | None:
    """The name of the first budget that is used up, or None."""
    m = problem.meter
    if budget.steps is not None and m.steps >= budget.steps:
        return "steps"
    if budget.seconds is not None and m.elapsed >= budget.seconds:
        return "seconds"
    if budget.forwards is not None and m.forwards + problem.batch > budget.forwards:
        return "forwards"
    if budget.passes is not None and m.passes + problem.batch > budget.passes:
        return "passes"
    return None


def run(
    problem: Problem,
    strategy: Strategy,
    budget: Budget,
    z0: torch.Tensor | None = None,
    progress: bool = False,
    desc: str = "fvopt",
    snapshot_every: int = 0,
    snapshot_dir: str | Path | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> RunResult:
    """Start `strategy` at z0 (the parameterization's init by default) and step it until `budget` ends.

    A NaN or infinite objective stops the run; the result then holds the best point seen before
    it, and `stop_reason` says why. Snapshots (PNG) of the current best are written every
    `snapshot_every` steps to `snapshot_dir`.
    """
    m = problem.meter
    m.budget, m.steps, m.recent, m.best = budget, 0, None, None
    m.forwards = m.backwards = 0
    m.start = time.perf_counter()
    z0 = problem.init() if z0 is None else z0.to(problem.device)
    trace: list[dict] = []
    stop = None
    bar = tqdm(total=100, desc=desc, disable=not progress, leave=False, bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")
    try:
        strategy.start(problem, z0)
        while stop is None:
            stop = exhausted(budget, problem)
            if stop:
                break
            try:
                strategy.step(problem)
            except BudgetExhausted as err:
                stop = str(err)
            if m.recent is None:  # the budget ran out before this step evaluated anything
                if stop is None:
                    m.steps += 1
                continue
            m.steps += 1
            row = {"step": m.steps, "time_s": round(m.elapsed, 6), "forwards": m.forwards, "backwards": m.backwards,
                   "value": float(m.recent.mean()), "best": float(m.best.mean())}
            m.recent = None
            trace.append(row)
            bar.n = round(100 * m.progress())
            bar.set_postfix(value=f"{row['value']:.3g}", best=f"{row['best']:.3g}", refresh=False)
            bar.refresh()
            if on_step:
                on_step(row)
            if snapshot_every and snapshot_dir and m.steps % snapshot_every == 0:
                from .images import save_images
                save_images(problem.images(strategy.best).cpu(), Path(snapshot_dir) / f"step_{m.steps:05d}.png")
        z = strategy.best
        if not torch.isfinite(z).all():
            raise NonFiniteError("the strategy's best point is not finite")
    except NonFiniteError as err:
        stop = f"stopped: {err}; kept the best image seen before it"
        z = problem.best_z if torch.isfinite(problem.best_values).any() else z0
    finally:
        bar.close()
    extra = {}
    if hasattr(strategy, "selected"):
        extra["selected"] = strategy.selected
    if getattr(strategy, "switched_at", None) is not None:
        extra["switched_at_step"] = strategy.switched_at
    return RunResult(z.detach(), problem.images(z).cpu(), trace, stop or "budget", m.forwards, m.backwards,
                     m.elapsed, m.steps, extra)
