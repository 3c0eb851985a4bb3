"""The strategy contract and the registry that names strategies for the command line and for specs.

A strategy owns only its search state. It starts from z0 (batch, dim), takes one iteration through
the problem, and reports its current best z. Everything it spends goes through the problem.

A new optimizer is one class with `check`, `start`, `step` and `best` (see `BaseStrategy`), and
one `register(name, summary, options)` call (or, from another package, a `fvopt.strategies` entry
point, see fvopt.registry): the CLI, specs, error messages and the shipped conformance checks
(`fvopt.testing.check_strategy`) pick it up from the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

import torch

from ..errors import FvoptError, suggest
from ..config.options import Option, coerce_options
from ..registry import Entry, Registry

if TYPE_CHECKING:
    from ..params.base import Parameterization
    from ..problem import Budget, Problem

# Zero-order search lives in about a thousand dimensions or fewer; above this, a strategy that
# prefers a low-dimensional space searches the parameterization's reduced form instead. Full
# CMA-ES refuses to go above it: a 4096^2 covariance is already 134 MB and slow to update.
LOW_DIM_LIMIT = 4096


@dataclass(frozen=True)
class StepCost:
    """Model passes one step spends for the whole batch: the least budget a run can be given."""

    forwards: int
    backwards: int = 0

    @property
    def passes(self) -> int:
        return self.forwards + 2 * self.backwards

    def times(self, views: int) -> "StepCost":
        """The cost when every image is shown as `views` crops (each crop is one pass)."""
        return self if views == 1 else StepCost(self.forwards * views, self.backwards * views)


@runtime_checkable
class Strategy(Protocol):
    name: str
    uses_gradients: bool
    prefers_low_dim: bool

    def check(self, param: "Parameterization", batch: int, budget: "Budget | None" = None) -> StepCost: ...

    def start(self, problem: "Problem", z0: torch.Tensor) -> None: ...

    def step(self, problem: "Problem") -> None: ...

    @property
    def best(self) -> torch.Tensor: ...

    def status(self) -> dict: ...


class BaseStrategy:
    """Defaults for the contract. Subclasses implement `check`, `start`, `step` and `best`.

    - `uses_gradients`: the strategy calls `problem.value_and_grad` (spends backward passes);
      a strategy with False must record zero backward passes (the conformance suite checks it).
    - `prefers_low_dim`: the strategy should search a low-dimensional form of a large
      parameterization (zero-order search); `search_space` applies that policy everywhere.
    """

    uses_gradients: bool = True
    prefers_low_dim: bool = False
    name: str = ""
    options: dict = {}

    def check(self, param: "Parameterization", batch: int, budget: "Budget | None" = None) -> StepCost:
        """Refuse (FvoptError) a space this strategy cannot search; return what one step costs.

        Called by the run loop before anything runs, so a wrong combination or a budget too
        small for one step is refused up front instead of failing or idling later.
        """
        raise NotImplementedError

    def start(self, problem: "Problem", z0: torch.Tensor) -> None:
        """Reset all search state for a new run from z0 (batch, dim); spends no budget."""
        raise NotImplementedError

    def step(self, problem: "Problem") -> None:
        """One iteration; every pass goes through `problem` (which may raise BudgetExhausted)."""
        raise NotImplementedError

    @property
    def best(self) -> torch.Tensor:
        """The point (batch, dim) this strategy would report now, on the problem's device."""
        raise NotImplementedError

    def status(self) -> dict:
        """What really ran (resolved defaults, inner optimizers, switch points), for the trace."""
        return {}

    def first_ask(self, problem: "Problem") -> None:
        """After `start`, pay what only a first ask costs (a library's first search), spending no
        budget: the run's untimed warm-up (fvopt/warmup.py) calls it on a throwaway copy."""


# Every optimizer by name; `fvopt.strategies` entry points of installed packages add to it.
REGISTRY: Registry[Callable[..., BaseStrategy]] = Registry(
    "optimizer", group="fvopt.strategies", home="fvopt.strategies"
)


@dataclass(frozen=True)
class Family:
    """Strategies named by a prefix (`ng:NGOpt`, `torch:NAdam`, `hybrid:A>B`), resolved by the family.

    Why a family: it holds more names than a table can list (nevergrad's hundreds, any torch.optim
    class, any pair), so it resolves a name itself. It is registered in `REGISTRY.families`; the
    CLI listing, error messages, spec checks, hybrids and the conformance checks read it there.

    - `options(name)`: the typed options a full name accepts (refuses an unknown name);
    - `build(name, values)`: the named strategy from checked option values;
    - `listing()`: (name, summary, options or None) rows for `fvopt optimizers`.
    """

    prefix: str
    pattern: str
    example: str
    options: Callable[[str], dict[str, Option]]
    build: Callable[[str, dict[str, Any]], BaseStrategy]
    listing: Callable[[], list[tuple[str, str, dict[str, Option] | None]]]


# prefix -> Family, filled by `register_family` beside the registry's own entry (which names the
# package that registered it and answers `family_of`): the listing, hybrids and error messages read it.
FAMILIES: dict[str, Family] = {}


def register(
    name: str, summary: str, options: dict[str, Option] | None = None, examples: tuple[str, ...] = ()
) -> Callable:
    """Class or function decorator: make a strategy available by `name` with typed `options`.

    Only the declared options are reachable from the CLI, the Python API and specs: internals of
    the factory cannot be set by a user (they would change what runs under the same name).
    `examples` are the names the conformance checks run (default: the name itself).
    """
    return REGISTRY.register(name, summary, options, examples)


def register_family(family: Family) -> Family:
    """Make every name `family.prefix + ...` resolve through `family`."""
    REGISTRY.add_family(family.prefix, family, f"{family.pattern} names", family.example, family.pattern)
    FAMILIES[family.prefix] = family
    return family


def family_of(spec: str) -> Family | None:
    """The family a name belongs to by its prefix, or None for a plain registered name."""
    entry = REGISTRY.family_of(spec)
    return None if entry is None else entry.obj


def is_known(spec: str) -> bool:
    """A registered name or a name of a family (the family checks the rest when it builds)."""
    return REGISTRY.knows(spec)


def known_strategies() -> list[str]:
    return sorted(REGISTRY) + [f.pattern for f in FAMILIES.values()]


def strategy_options(spec: str) -> dict[str, Option]:
    """The options a strategy name accepts (for help, specs and hybrids)."""
    family = family_of(spec)
    return family.options(spec) if family is not None else _entry(spec).options


def _entry(spec: str) -> Entry:
    if spec not in REGISTRY:
        members = [name for f in FAMILIES.values() for name, _, _ in f.listing() if "<" not in name]
        same = [m for m in members if m.split(":", 1)[1].lower() == spec.lower()]  # nadam -> torch:NAdam
        hint = f" Did you mean: {', '.join(same)}?" if same else suggest(spec, [*REGISTRY, *members])
        families = "; ".join(f"{f.pattern} (e.g. {f.example})" for f in FAMILIES.values())
        raise REGISTRY.unknown(spec, hint, known=f"{', '.join(sorted(REGISTRY))}; families: {families}")
    return REGISTRY[spec]


def make_strategy(spec: str, **options: Any) -> BaseStrategy:
    """A strategy by name: a registered one, or a name of a family (`ng:<Name>`, `torch:<Name>`, `hybrid:A>B`).

    Options may be text (from the command line) or values (Python, specs); each is checked
    against the strategy's declared options, type and range. None means "the default".
    """
    if not isinstance(spec, str):
        raise FvoptError(f"optimizer must be a name such as 'adam', not {type(spec).__name__} {spec!r}")
    family = family_of(spec)
    allowed = strategy_options(spec)
    _refuse_result_where_it_does_not_apply(spec, options, allowed)
    values = coerce_options(options, allowed, f"optimizer '{spec}'")
    if family is not None:
        return family.build(spec, values)
    return named(_entry(spec).obj(**values), spec, values)


def _refuse_result_where_it_does_not_apply(spec: str, options: dict[str, Any], allowed: dict[str, Option]) -> None:
    """`result` (last, best, recommend: fvopt/strategies/result.py) is the one option spread across strategies:
    a strategy that does not declare it (a user's own) is refused in one line saying where it applies."""
    if options.get("result") is None or "result" in allowed:
        return
    takers = sorted(name for name, entry in REGISTRY.items() if "result" in entry.options)
    raise FvoptError(
        f"optimizer '{spec}' does not take option 'result': it chooses its own reported point; result "
        f"applies to {', '.join(takers)}, ng:<Name>, torch:<Name> and hybrids whose second part takes it"
    )


def named(strategy: BaseStrategy, name: str, options: dict) -> BaseStrategy:
    """Record on the strategy the name and checked options it was built from (the trace reads them)."""
    strategy.name = name
    strategy.options = dict(options)
    return strategy


def search_space(strategy: BaseStrategy, param: "Parameterization") -> "Parameterization":
    """The one search-space policy: zero-order search of a large space uses its reduced form."""
    if strategy.prefers_low_dim and param.dim > LOW_DIM_LIMIT:
        return param.reduced()
    return param
