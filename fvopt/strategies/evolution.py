"""Zero-order strategies: CMA-ES and sep-CMA-ES (pycma), XDream's genetic algorithm, any nevergrad optimizer.

Each image slot of the batch gets its own search; every iteration asks all slots for their
candidates and scores the whole population in one batched `problem.evaluate`, under one transform
draw (common random numbers: otherwise augmentation luck would decide the ranking).
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch

from ..runtime.device import to_device
from ..errors import FvoptError, suggest
from ..config.options import Option
from ..params.base import calibrate_sigma
from ..problem import Problem
from .base import LOW_DIM_LIMIT, BaseStrategy, Family, StepCost, named, register, register_family
from .result import ReportsResult, result_option

# Default step size of the zero-order searches, in image units: samples change pixels by 0.05 RMS.
PIXEL_RMS = 0.05

MAX_FULL_CMA_DIM = LOW_DIM_LIMIT  # a 4096^2 covariance is already 134 MB and slow to update

POPSIZE = Option(int, low=2, high=100_000, help="candidates per generation")
SIGMA = Option(float, low=0, low_open=True, help="initial step size in z (default: samples change pixels by 0.05 RMS)")


@lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def quiet_numpy():
    """One BLAS thread, and the optimizers' own runtime notices quiet, for pycma and nevergrad.

    Why: on a few cores, BLAS threads left spinning after pycma's linear algebra compete with
    torch's threads for the next forward pass (measured: a CMA-ES iteration 2.26x -> 1.73x the
    bare forward on 2 cores). The optimizers' own arithmetic is small enough for one thread.
    Only UserWarning and RuntimeWarning (nevergrad's InefficientSettingsWarning and kin, numpy's
    overflow notices inside pycma) raised from the cma and nevergrad modules are ignored, and
    only here: any other warning, from anywhere else, still reaches the user.
    """
    with _blas_controller().limit(limits=1, user_api="blas"), warnings.catch_warnings():
        for module in QUIET_MODULES:
            for category in QUIET_CATEGORIES:
                warnings.filterwarnings("ignore", category=category, module=module)
        yield


QUIET_MODULES = (r"cma(\.|$)", r"nevergrad(\.|$)")  # warnings.filterwarnings matches the module name from its start
QUIET_CATEGORIES = (UserWarning, RuntimeWarning)


def default_popsize(dim: int) -> int:
    """pycma's default population: 4 + 3 ln(n)."""
    return 4 + int(3 * math.log(dim))


class AskTellStrategy(BaseStrategy):
    """The ask/tell loop shared by pycma and nevergrad: one search per image slot.

    Each step asks every slot's search for one generation, scores the whole population in one
    batched `problem.evaluate` (one transform draw: common random numbers), and tells each search
    the losses of exactly the candidates it gave, in the order it gave them. Subclasses say how to
    ask (`_ask`) and tell (`_tell`) one search.
    """

    uses_gradients = False
    prefers_low_dim = True
    searches: list

    def _ask(self, search) -> tuple[list, list[np.ndarray]]:
        """One generation of `search`: (handles to tell back, candidate vectors)."""
        raise NotImplementedError

    def _tell(self, search, handles: list, losses: list[float]) -> None:
        raise NotImplementedError

    def step(self, problem: Problem) -> None:
        asked, Z = self.ask_population(problem.device)
        self.tell_population(asked, problem.evaluate(Z))

    def first_ask(self, problem: Problem) -> None:
        self.ask_population(problem.device)  # on the warm-up's throwaway copy: never told

    def ask_population(self, device: torch.device) -> tuple[list, torch.Tensor]:
        """One generation of every slot's search as one (P, B, dim) tensor on `device`.

        pycma and nevergrad live in numpy: the whole population crosses to the device in one copy
        per generation (pinned and asynchronous on CUDA), never candidate by candidate.
        """
        with quiet_numpy():
            asked = [self._ask(search) for search in self.searches]
        sizes = {len(vectors) for _, vectors in asked}
        if len(sizes) != 1:
            raise FvoptError(
                f"{self.name}: the searches of the {len(asked)} images asked generations of different "
                f"sizes {sorted(sizes)}; run one image per batch (--batch 1)"
            )
        return asked, to_device(np.stack([np.stack(vectors) for _, vectors in asked], axis=1), device)

    def tell_population(self, asked: list, values: torch.Tensor) -> None:
        """Tell each search the values (P, B) of its candidates: the fitness comes back to the host in
        one copy per generation (the step's only host sync), then each search gets its column."""
        host = values.detach().to("cpu", torch.float64).numpy()
        with quiet_numpy():
            for b, (search, (handles, _)) in enumerate(zip(self.searches, asked)):
                self._tell(search, handles, [float(-v) for v in host[:, b]])


CMA_RESULTS = ("last", "best", "recommend")


class CMAES(ReportsResult, AskTellStrategy):
    """CMA-ES through pycma's ask/tell; `diagonal=True` is sep-CMA-ES (a diagonal covariance).

    `result`: "last" (the default, what fvopt always reported) is the distribution mean, which is
    less flattered by lucky transform draws than the best sample; "recommend" is pycma's
    `result.xfavorite`, the mean mapped to the search space (fvopt sets no bounds or scaling, so
    it is the same point); "best" is the best candidate evaluated, under its generation's draw.
    """

    results = CMA_RESULTS
    default_result = "last"

    def __init__(
        self, popsize: int | None = None, sigma: float | None = None, diagonal: bool = False, result: str | None = None
    ) -> None:
        self.popsize_option, self.sigma_option, self.diagonal = popsize, sigma, diagonal
        self.choose_result(result)

    def check(self, param, batch: int, budget=None) -> StepCost:
        if not self.diagonal and param.dim > MAX_FULL_CMA_DIM:
            raise FvoptError(
                f"full CMA-ES on {param.dim} dimensions ({param.name}) needs a {param.dim}x{param.dim} "
                f"covariance; the limit is {MAX_FULL_CMA_DIM}. Use sep-cmaes, or a low-dimensional parameterization "
                "such as fft:k=8 or pyramid:free=2"
            )
        return StepCost((self.popsize_option or default_popsize(param.dim)) * batch)

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        import cma

        self.check(problem.param, problem.batch)
        self.popsize = self.popsize_option or default_popsize(problem.dim)
        self.sigma = self.sigma_option or calibrate_sigma(problem.param, z0, PIXEL_RMS, problem.seed)
        self.device = problem.device
        self.problem = problem
        self.searches = []
        for b in range(problem.batch):
            opts = {
                "popsize": self.popsize,
                "seed": problem.seed * 1000 + b + 1,
                "verbose": -9,
                "verb_log": 0,
                "verb_disp": 0,
                "CMA_diagonal": self.diagonal,
                "tolfun": 0,
                "tolfunhist": 0,
                "tolx": 0,
                "tolstagnation": np.inf,
                "tolflatfitness": np.inf,
                "maxiter": np.inf,
                "maxfevals": np.inf,
            }
            with quiet_numpy():
                self.searches.append(cma.CMAEvolutionStrategy(z0[b].double().cpu().numpy(), self.sigma, opts))

    def _ask(self, es) -> tuple[list, list[np.ndarray]]:
        candidates = es.ask()
        return candidates, candidates

    def _tell(self, es, handles: list, losses: list[float]) -> None:
        es.tell(handles, losses)

    def last_point(self) -> torch.Tensor:
        return torch.from_numpy(np.stack([es.mean for es in self.searches])).float().to(self.device)

    def recommended_point(self) -> torch.Tensor:
        return torch.from_numpy(np.stack([es.result.xfavorite for es in self.searches])).float().to(self.device)

    def status(self) -> dict:
        return {"popsize": self.popsize, "sigma": self.sigma, **self.result_status()}


CMA_OPTIONS = {"popsize": POPSIZE, "sigma": SIGMA, "result": result_option(CMA_RESULTS, "last")}


@register("cmaes", "CMA-ES (pycma), full covariance; up to 4096 dimensions", CMA_OPTIONS)
def _cmaes(popsize: int | None = None, sigma: float | None = None, result: str | None = None) -> CMAES:
    return CMAES(popsize, sigma, diagonal=False, result=result)


@register("sep-cmaes", "sep-CMA-ES (pycma, CMA_diagonal=True): diagonal covariance, any dimension", CMA_OPTIONS)
def _sep_cmaes(popsize: int | None = None, sigma: float | None = None, result: str | None = None) -> CMAES:
    return CMAES(popsize, sigma, diagonal=True, result=result)


GA_OPTIONS = {
    "popsize": POPSIZE,
    "sigma": SIGMA,
    "mutation_rate": Option(float, low=0, high=1, help="probability that a gene mutates"),
    "selectivity": Option(float, low=0, help="selection pressure on z-scored fitness"),
    "heritability": Option(float, low=0, high=1, help="share of genes from the first parent"),
    "elite": Option(int, low=0, help="best candidates kept unchanged (< popsize)"),
    "result": result_option(("last", "best"), "last"),
}


@register("ga", "genetic algorithm after XDream (Xiao & Kreiman 2020): selection, crossover, mutation", GA_OPTIONS)
class GeneticAlgorithm(ReportsResult, BaseStrategy):
    """XDream's genetic algorithm, with its published defaults.

    Per generation: fitness-proportional selection with probability exp(selectivity * z-score),
    uniform crossover keeping each gene of the first parent with probability `heritability`,
    Gaussian mutation of each gene with probability `mutation_rate` and size `sigma` (default: the
    step that changes pixels by 0.05 RMS; XDream's 0.5 was in its generator's latent units), and the
    `elite` best kept unchanged. nevergrad has no population GA with crossover that fits
    (its RecombiningGA is a (1+1) variant), and this is the GA the neuron-control literature
    benchmarks (Wang & Ponce 2022 compare against it).

    `result`: "last" (the default, what fvopt always reported) is the fittest individual of the
    current generation under that generation's draw; "best" is the best individual of the whole
    run. There is no library recommendation.
    """

    results = ("last", "best")
    default_result = "last"

    uses_gradients = False
    prefers_low_dim = True

    def __init__(
        self,
        popsize: int = 20,
        sigma: float | None = None,
        mutation_rate: float = 0.5,
        selectivity: float = 2.0,
        heritability: float = 0.5,
        elite: int = 1,
        result: str | None = None,
    ) -> None:
        if not 0 <= elite < popsize:
            raise FvoptError(f"elite must be in 0..{popsize - 1} (below popsize {popsize}), not {elite}")
        self.popsize, self.sigma_option, self.mutation_rate = popsize, sigma, mutation_rate
        self.selectivity, self.heritability, self.elite = selectivity, heritability, elite
        self.choose_result(result)

    def check(self, param, batch: int, budget=None) -> StepCost:
        return StepCost(self.popsize * batch)

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        # The population lives on the model's device and is drawn by a generator there: no transfer
        # per generation. Draws differ between CPU and CUDA generators (see README, reproducibility).
        self.device = problem.device
        self.problem = problem
        self.rng = torch.Generator(device=self.device).manual_seed(problem.seed + 7919)
        self.sigma = self.sigma_option or calibrate_sigma(problem.param, z0, PIXEL_RMS, problem.seed)
        z0 = z0.detach().float().to(self.device)
        noise = torch.randn((self.popsize, *z0.shape), generator=self.rng, device=self.device) * self.sigma
        noise[0] = 0
        self.pop = z0[None] + noise  # (P, B, dim)
        self.scores: torch.Tensor | None = None

    def step(self, problem: Problem) -> None:
        if self.scores is not None:
            self.pop = self._next_generation()
        self.scores = problem.evaluate(self.pop).float()

    def _next_generation(self) -> torch.Tensor:
        P, B, d = self.pop.shape
        s, g, dev = self.scores, self.rng, self.device
        z = (s - s.mean(0)) / s.std(0).clamp_min(1e-12)
        prob = torch.softmax(self.selectivity * z, dim=0).T  # (B, P)
        n_new = P - self.elite
        pa = torch.multinomial(prob, n_new, replacement=True, generator=g).T  # (n_new, B)
        pb = torch.multinomial(prob, n_new, replacement=True, generator=g).T
        slots = torch.arange(B, device=dev)
        parent_a, parent_b = self.pop[pa, slots], self.pop[pb, slots]
        keep_a = torch.rand((n_new, B, d), generator=g, device=dev) < self.heritability
        child = torch.where(keep_a, parent_a, parent_b)
        mutate = torch.rand((n_new, B, d), generator=g, device=dev) < self.mutation_rate
        child = child + mutate * torch.randn((n_new, B, d), generator=g, device=dev) * self.sigma
        elite = self.pop[s.argsort(0, descending=True)[: self.elite], slots]
        return torch.cat([elite, child])

    def last_point(self) -> torch.Tensor:
        if self.scores is None:
            return self.pop[0]
        return self.pop[self.scores.argmax(0), torch.arange(self.pop.shape[1], device=self.device)]

    def status(self) -> dict:
        return {"popsize": self.popsize, "sigma": self.sigma, **self.result_status()}


NEVERGRAD_OPTIONS = {
    "popsize": Option(int, low=1, high=100_000, help="workers asked in parallel (nevergrad's num_workers)"),
    "sigma": SIGMA,
    "budget": Option(int, low=1, help="evaluations per image nevergrad plans for (default: from the run budget)"),
    "result": result_option(("recommend", "best"), "recommend"),
}


class NevergradStrategy(ReportsResult, AskTellStrategy):
    """Any optimizer of nevergrad's registry (`ng:<Name>`), asked one generation per iteration.

    nevergrad's meta-optimizers (NGOpt, and `CMA`, which is a selector) pick an inner optimizer
    from the dimension, budget and workers; `status()["selected"]` names what actually ran, and
    the trace records it, so results are never attributed to the wrong algorithm.

    nevergrad's contract: a CMA-family optimizer inside runs pycma with its own population, which
    may be larger than the workers asked for (NGOpt's choice for 918 dimensions asks 58 at a time
    for 24 workers), and pycma's step-size adaptation (TPA) fails if a new generation is asked
    before the last one was told. So each step asks exactly one generation of the innermost
    optimizer (`generation_size`), and tells all of it back.

    `result`: "recommend" (the default, what fvopt always reported) is nevergrad's
    `provide_recommendation()`; "best" is the best candidate evaluated, under its generation's
    draw. "last" is refused: nevergrad's optimizers share no current iterate or mean.
    """

    results = ("recommend", "best")
    default_result = "recommend"

    def __init__(
        self,
        name: str,
        popsize: int | None = None,
        sigma: float | None = None,
        budget: int | None = None,
        result: str | None = None,
    ) -> None:
        import nevergrad as ng

        if name not in ng.optimizers.registry:
            raise FvoptError(
                f"unknown nevergrad optimizer '{name}'.{suggest(name, ng.optimizers.registry)} "
                f"nevergrad has {len(ng.optimizers.registry)}, e.g. NGOpt, TwoPointsDE, PSO, DiagonalCMA, "
                "ParametrizedCMA"
            )
        self.ng_name, self.popsize_option, self.sigma_option, self.budget = name, popsize, sigma, budget
        self.name = f"ng:{name}"
        self.choose_result(result)

    def _build(self, z0: np.ndarray, sigma: float, budget: int, seed: int):
        import nevergrad as ng

        param = ng.p.Array(init=z0).set_mutation(sigma=sigma)
        param.random_state = np.random.RandomState(seed)
        try:
            with quiet_numpy():
                return ng.optimizers.registry[self.ng_name](
                    parametrization=param, budget=budget, num_workers=self.popsize
                )
        except (ValueError, TypeError, AssertionError) as err:
            hint = " (it asks one candidate at a time: give popsize=1)" if "parallel" in str(err) else ""
            raise FvoptError(
                f"nevergrad's {self.ng_name} refuses {param.dimension} dimensions with {self.popsize} "
                f"workers and a budget of {budget}: {str(err).splitlines()[0]}{hint}"
            ) from None

    def check(self, param, batch: int, budget=None) -> StepCost:
        self.popsize = self.popsize_option or default_popsize(param.dim)
        planned = self.budget or _evaluations_in(budget, batch, self.popsize)
        probe = self._build(np.zeros(param.dim), 1.0, planned, 0)
        return StepCost(generation_size(probe) * batch)

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        self.popsize = self.popsize_option or default_popsize(problem.dim)
        self.sigma = self.sigma_option or calibrate_sigma(problem.param, z0, PIXEL_RMS, problem.seed)
        self.planned = self.budget or _evaluations_in(problem.meter.budget, problem.batch, self.popsize)
        self.planned_from = "the budget option" if self.budget else _planned_from(problem.meter.budget)
        self.device = problem.device
        self.problem = problem
        self.z0 = z0
        self.searches = self._build_all(self.planned)
        budget = problem.meter.budget
        self.generations_done, self.seen_best = 0, None
        self.replan_seconds = (
            None
            if self.budget or budget is None or budget.steps or budget.forwards or budget.passes
            else budget.seconds
        )

    def _build_all(self, planned: int) -> list:
        problem = self.problem
        return [
            self._build(self.z0[b].double().cpu().numpy(), self.sigma, planned, problem.seed * 1000 + b + 1)
            for b in range(problem.batch)
        ]

    def step(self, problem: Problem) -> None:
        """One generation; under a budget in seconds only, the second generation's cost sets the budget
        nevergrad is told (its selectors choose by budget; the first generation pays the warm-up and
        made the plan half of what ran): the searches are rebuilt with the planned evaluations, and
        told the best point seen so far where the optimizer takes points it did not ask (else they
        start afresh; fvopt's own best-so-far keeps them either way). Only the best: a (1+1) strategy
        reads each told improvement as a success, and told a whole generation it doubled its step 28
        times and overflowed."""
        if not self.replan_seconds:
            return super().step(problem)
        start = time.perf_counter()
        asked, Z = self.ask_population(problem.device)
        values = problem.evaluate(Z)
        self.tell_population(asked, values)
        per_generation = max(time.perf_counter() - start, 1e-6)
        self._keep_best(Z, values)
        self.generations_done += 1
        if self.generations_done < 2:
            return
        left = max(0.0, self.replan_seconds - problem.meter.elapsed)
        generations = self.generations_done + max(1, int(left / per_generation))
        guess, self.replan_seconds = self.planned, None
        self.planned = generations * generation_size(self.searches[0])
        self.planned_from = (
            f"the second generation's cost ({per_generation:.3g} s for {len(Z)} candidates): "
            f"{generations} generations in {problem.meter.budget.seconds:g} s "
            f"(the optimizer was built first with a guess of {guess})"
        )
        from nevergrad import errors as ng_errors

        best_z, best_values = self.seen_best
        self.searches = self._build_all(self.planned)
        try:
            with quiet_numpy():
                for b, search in enumerate(self.searches):
                    search.tell(search.parametrization.spawn_child(new_value=best_z[b]), float(-best_values[b]))
        except (ng_errors.TellNotAskedNotSupportedError, ValueError, AssertionError, NotImplementedError) as err:
            # an optimizer that cannot take points it did not ask: only its memory of two generations is lost
            self.searches = self._build_all(self.planned)
            self.planned_from += (
                f"; the rebuilt optimizer refused the best point seen ({type(err).__name__}), so it started afresh"
            )

    def _keep_best(self, Z: torch.Tensor, values: torch.Tensor) -> None:
        """The best candidate per image over the generations before the plan (host arrays)."""
        host = values.detach().to("cpu", torch.float64).numpy()
        points = Z.detach().to("cpu", torch.float64).numpy()
        k = np.argmax(host, axis=0)
        z, v = points[k, np.arange(points.shape[1])], host[k, np.arange(host.shape[1])]
        if self.seen_best is not None:
            old_z, old_v = self.seen_best
            better = v > old_v
            z, v = np.where(better[:, None], z, old_z), np.where(better, v, old_v)
        self.seen_best = (z, v)

    def _ask(self, opt) -> tuple[list, list[np.ndarray]]:
        candidates = [opt.ask() for _ in range(generation_size(opt))]
        return candidates, [c.value for c in candidates]

    def _tell(self, opt, handles: list, losses: list[float]) -> None:
        for candidate, loss in zip(handles, losses):
            opt.tell(candidate, loss)

    def recommended_point(self) -> torch.Tensor:
        with quiet_numpy():
            rec = np.stack([opt.provide_recommendation().value for opt in self.searches])
        return torch.from_numpy(rec).float().to(self.device)

    def last_point(self) -> torch.Tensor:  # only the fallback of "best" for an image never evaluated
        return self.recommended_point()

    def status(self) -> dict:
        """The optimizer that really runs, through nevergrad's meta-selectors, and its generation."""
        if not getattr(self, "searches", None):
            return self.result_status()
        chain = [self.ng_name] + [getattr(o, "name", type(o).__name__) for o in inner_chain(self.searches[0])[1:]]
        return {
            "selected": " -> ".join(dict.fromkeys(chain)),
            "workers": self.popsize,
            "generation": generation_size(self.searches[0]),
            "sigma": self.sigma,
            "planned_evaluations": self.planned,
            "planned_from": self.planned_from,
            "selected_with": f"{self.searches[0].dimension} dimensions, budget={self.planned}, "
            f"num_workers={self.popsize}",
            **self.result_status(),
        }


def inner_chain(opt) -> list:
    """`opt` and the optimizers it delegates to, outermost first (nevergrad's meta-optimizers)."""
    chain = [opt]
    for _ in range(8):
        inner = getattr(chain[-1], "_optim", None) or getattr(chain[-1], "optim", None)
        if inner is None or any(inner is o for o in chain):
            break
        chain.append(inner)
    return chain


def generation_size(opt) -> int:
    """Candidates to ask before telling: the innermost pycma population still owed, or the workers."""
    innermost = inner_chain(opt)[-1]
    popsize = getattr(innermost, "_popsize", None)
    if popsize is not None and hasattr(innermost, "_to_be_told"):
        return max(1, int(popsize) - len(innermost._to_be_told))
    return max(1, int(opt.num_workers))


def _planned_from(budget) -> str:
    """What nevergrad's planned evaluations were derived from, in words for the trace."""
    if budget is not None and (budget.steps or budget.forwards or budget.passes):
        return "the run budget (" + ", ".join(k for k in ("steps", "forwards", "passes") if getattr(budget, k)) + ")"
    return (
        "a guess of 100 generations: a budget in seconds only is not converted into evaluations (give "
        "budget=N, or a steps/forwards/passes budget, for nevergrad's budget-aware choices)"
    )


def _evaluations_in(budget, batch: int, popsize: int) -> int:
    """Evaluations per slot the run budget allows, for nevergrad's budget-aware selectors."""
    candidates = []
    if budget is not None:
        if budget.steps:
            candidates.append(budget.steps * popsize)
        if budget.forwards:
            candidates.append(budget.forwards // batch)
        if budget.passes:
            candidates.append(budget.passes // batch)
    return max(1, min(candidates)) if candidates else 100 * popsize


register_family(
    Family(
        "ng:",
        "ng:<Name>",
        "ng:NGOpt",
        options=lambda spec: NEVERGRAD_OPTIONS,
        build=lambda spec, values: named(NevergradStrategy(spec[3:], **values), spec, values),
        listing=lambda: [
            (
                "ng:<Name>",
                "any nevergrad optimizer, e.g. ng:NGOpt, ng:TwoPointsDE, ng:PSO, ng:DiagonalCMA",
                NEVERGRAD_OPTIONS,
            )
        ],
    )
)
