"""One vocabulary for the point a strategy returns: `result=last|best|recommend`.

Why one vocabulary: under random transforms, "the point an optimizer returns" is an estimator,
and each family has its own habit (CMA-ES its mean, the GA its fittest individual, nevergrad its
recommendation, Adam its last iterate). Left implicit, a comparison mixes the optimizer with the
estimator. So every fvopt strategy says which it returns, takes the choice as an option, and
records it in the trace (`status()["result"]`):

- `last`: the current iterate (first-order methods, guided ES, L-BFGS's last accepted point), the
  distribution mean (CMA-ES), or the fittest individual of the current generation (GA);
- `best`: the best point evaluated during the run, under the transform draws it was evaluated on
  (the problem's record; biased upward under random transforms);
- `recommend`: the library's own recommendation, where there is a library: pycma's
  `result.xfavorite` (fvopt gives pycma no bounds or scaling, so it is the mean: the same point
  as `last`), nevergrad's `provide_recommendation()`.

A choice a strategy does not have is refused in one line when the strategy is built.
A strategy that does not declare the `result` option (a user's own) keeps its own reported point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import FvoptError
from ..config.options import Option

if TYPE_CHECKING:
    from ..problem import Problem

RESULT_KINDS = {
    "last": "the current iterate or distribution mean",
    "best": "the best point evaluated during the run, under its draws",
    "recommend": "the library's own recommendation (pycma xfavorite, nevergrad provide_recommendation)",
}


def result_option(supported: tuple[str, ...], default: str) -> Option:
    """The `result` option of a strategy that can return the points in `supported`."""
    return Option(
        str,
        choices=supported,
        help=f"the point returned (default {default}): " + "; ".join(f"{k}: {RESULT_KINDS[k]}" for k in supported),
    )


def best_seen(problem: "Problem", fallback: torch.Tensor) -> torch.Tensor:
    """The problem's best evaluated point per image; `fallback` for images never evaluated."""
    seen = torch.isfinite(problem.best_values).to(problem.device)
    return torch.where(seen[:, None], problem.best_z, fallback.to(problem.device).reshape(problem.best_z.shape))


class ReportsResult:
    """Mixin for a strategy with a `result` choice: subclasses give `last_point` (and
    `recommended_point` where they have a library recommendation); `best` dispatches.

    `results` lists the choices the strategy has, `default_result` the one it returns unless told
    (each family keeps what it always returned, so committed studies keep their meaning).
    """

    results: tuple[str, ...] = ("last", "best")
    default_result: str = "last"
    result: str = "last"
    problem: "Problem"

    def choose_result(self, result: str | None) -> None:
        result = self.default_result if result is None else result
        if result not in self.results:
            raise FvoptError(
                f"result={result!r} is not available for {getattr(self, 'name', '') or type(self).__name__}: "
                f"it has {', '.join(self.results)} (default {self.default_result})"
            )
        self.result = result

    def last_point(self) -> torch.Tensor:
        raise NotImplementedError

    def recommended_point(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def best(self) -> torch.Tensor:
        """The point this strategy reports now, as its `result` says."""
        if self.result == "best":
            return best_seen(self.problem, self.last_point())
        if self.result == "recommend":
            return self.recommended_point()
        return self.last_point()

    def result_status(self) -> dict:
        return {"result": self.result}
