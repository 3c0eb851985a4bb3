"""The one run loop: drives any strategy until the budget ends, and writes one trace format."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .errors import FvoptError, NonFiniteError
from .problem import SYNC_EVERY, Budget, BudgetExhausted, Problem
from .runtime.signals import Terminated
from .stops import BUDGET_STOPS, StopReason  # noqa: F401  (BUDGET_STOPS: also read from here)
from .strategies.base import Strategy
from .warmup import warm_up


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
    warmup_seconds: float = 0.0  # the untimed warm-up before the clock started; 0.0 when already warm

    @property
    def passes(self) -> int:
        return self.forwards + 2 * self.backwards

    def step_seconds(self) -> tuple[float, float]:
        """(median, max) seconds of one step (0.0, 0.0 for a run without steps); see `step_seconds`."""
        return step_seconds([row["time_s"] for row in self.trace]) or (0.0, 0.0)


def step_seconds(times: list[float]) -> tuple[float, float] | None:
    """(median, max) seconds of one step, from the clock times at which the steps ended (a trace's
    `time_s`); None without steps. A slowest step far above the median is a one-time cost inside the
    budget, which the bench's report flags."""
    gaps = [b - a for a, b in zip([0.0] + times, times)]
    return (float(statistics.median(gaps)), max(gaps)) if gaps else None


INTERRUPTED = StopReason.INTERRUPTED  # a member is its string: traces and databases read the same
TERMINATED = StopReason.TERMINATED  # SIGTERM or SIGHUP, once the command line handles them (runtime/signals.py)
STOPPED_BY_USER = (INTERRUPTED, TERMINATED)  # the run was cut short on purpose: be quick, keep the work


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

    Before anything runs, the strategy checks that it can search the problem's space and what one
    step costs; a budget that cannot pay for one step is refused (FvoptError). The problem is reset,
    so a reused problem carries nothing over from an earlier run.

    Before the clock starts, the first run of a process at a shape warms it up once, untimed and
    uncounted (fvopt/warmup.py; `warmup_seconds`): a budget in seconds buys the same search in the
    first run of a process as in the later ones.

    A NaN or infinite objective stops the run; so does Ctrl-C (`stop_reason` "interrupted"), and
    SIGTERM or SIGHUP where the command line installed its handler ("terminated"). Either
    way the result holds the best point seen, and `stop_reason` says why. Snapshots (PNG) of the
    current best are written every `snapshot_every` steps to `snapshot_dir`.
    """
    if not isinstance(problem, Problem):
        raise FvoptError(f"problem must be a fvopt.Problem, not {type(problem).__name__}")
    if not all(callable(getattr(type(strategy), m, None)) for m in ("check", "start", "step", "status")):
        raise FvoptError(
            f"strategy must be a strategy from fvopt.make_strategy, not {type(strategy).__name__} {strategy!r}"
        )
    if not isinstance(budget, Budget):
        raise FvoptError(f"budget must be a fvopt.Budget, not {type(budget).__name__}")
    cost = strategy.check(problem.param, problem.batch, budget).times(problem.views)
    budget.refuse_if_below(cost, strategy.name or type(strategy).__name__)
    z0 = problem.init() if z0 is None else z0.to(problem.device)
    try:
        warmup_seconds = warm_up(problem, strategy, z0, cost, budget)  # untimed, uncounted (fvopt/warmup.py)
    except KeyboardInterrupt as err:  # stopped before the first step: the start point, as a stop in a first step
        problem.reset(budget)
        stop = TERMINATED if isinstance(err, Terminated) else INTERRUPTED
        return RunResult(z0.detach(), problem.images(z0).cpu(), [], stop, 0, 0, 0.0, 0)
    problem.reset(budget)  # the clock starts here
    m = problem.meter
    trace: list[dict] = []
    stop = None
    z = z0
    bar = tqdm(
        total=100,
        desc=desc,
        disable=not progress,
        leave=False,
        bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
    )
    rows = TraceRows(trace, bar, on_step, every=1 if problem.device.type == "cpu" else SYNC_EVERY)
    try:
        strategy.start(problem, z0)
        while stop is None:
            stop = StopReason.of(m.exhausted(problem.batch))
            if stop:
                break
            try:
                strategy.step(problem)
            except BudgetExhausted as err:
                stop = StopReason.of(str(err)) or str(err)
            if m.recent is None:  # the budget ran out before this step evaluated anything
                if stop is None:
                    m.steps += 1
                continue
            m.steps += 1
            rows.add(
                {"step": m.steps, "time_s": round(m.elapsed, 6), "forwards": m.forwards, "backwards": m.backwards},
                m.recent.mean(),
                m.best.mean(),
                m.progress(),
            )
            m.recent = None
            if snapshot_every and snapshot_dir and m.steps % snapshot_every == 0:
                from .io.images import save_images

                save_images(problem.images(strategy.best).cpu(), Path(snapshot_dir) / f"step_{m.steps:05d}.png")
        problem.raise_if_nonfinite()
        z = strategy.best
        if not torch.isfinite(z).all():
            raise NonFiniteError("the strategy's best point is not finite")
    except NonFiniteError as err:
        stop = StopReason.NONFINITE.with_detail(f"{err}; kept the best image seen before it")
        z = _best_seen(problem, z0)
    except KeyboardInterrupt as err:
        # The step in progress may have left the strategy half-updated: keep the best point the
        # problem itself recorded, which every evaluation went through.
        stop = TERMINATED if isinstance(err, Terminated) else INTERRUPTED
        z = _best_seen(problem, z0)
    finally:
        rows.flush()
        bar.close()
    return RunResult(
        z.detach(),
        problem.images(z).cpu(),
        trace,
        stop or StopReason.BUDGET,
        m.forwards,
        m.backwards,
        m.elapsed,
        m.steps,
        strategy.status(),
        warmup_seconds,
    )


class TraceRows:
    """Trace rows whose values stay on the device until `every` rows are pending, then are read in
    one host sync (every row on the CPU, where reading costs nothing)."""

    def __init__(self, trace: list[dict], bar, on_step: Callable[[dict], None] | None, every: int) -> None:
        self.trace, self.bar, self.on_step, self.every = trace, bar, on_step, every
        self.pending: list[tuple[dict, torch.Tensor, torch.Tensor]] = []
        self.progress = 0.0

    def add(self, row: dict, value: torch.Tensor, best: torch.Tensor, progress: float) -> None:
        self.pending.append((row, value, best))
        self.progress = progress
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        numbers = torch.stack([torch.stack([v, b]) for _, v, b in self.pending]).tolist()
        for (row, _, _), (value, best) in zip(self.pending, numbers):
            row.update(value=value, best=best)
            self.trace.append(row)
            if self.on_step:
                self.on_step(row)
        self.pending = []
        last = self.trace[-1]
        self.bar.n = round(100 * self.progress)
        self.bar.set_postfix(value=f"{last['value']:.3g}", best=f"{last['best']:.3g}", refresh=False)
        self.bar.refresh()


def _best_seen(problem: Problem, z0: torch.Tensor) -> torch.Tensor:
    """The best point any evaluation of this run saw, per slot; z0 for slots never evaluated."""
    seen = torch.isfinite(problem.best_values).to(problem.device)
    return torch.where(seen[:, None], problem.best_z, z0.to(problem.device).reshape(problem.best_z.shape))
