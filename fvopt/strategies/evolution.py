"""Zero-order strategies: CMA-ES and sep-CMA-ES (pycma), XDream's genetic algorithm, any nevergrad optimizer.

Each image slot of the batch gets its own search; every iteration asks all slots for their
candidates and scores the whole population in one batched `problem.evaluate`, under one transform
draw (common random numbers: otherwise augmentation luck would decide the ranking).
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch

from ..errors import FvoptError
from ..params.base import calibrate_sigma
from ..problem import Problem
from .base import check_positive, register

# Default step size of the zero-order searches, in image units: samples change pixels by 0.05 RMS.
PIXEL_RMS = 0.05

MAX_FULL_CMA_DIM = 4096  # a 4096^2 covariance is already 134 MB and slow to update


@lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


@contextmanager
def quiet_numpy():
    """One BLAS thread and no warnings for numpy-based optimizers (pycma, nevergrad).

    Why: on a few cores, BLAS threads left spinning after pycma's linear algebra compete with
    torch's threads for the next forward pass (measured: a CMA-ES iteration 2.26x -> 1.73x the
    bare forward on 2 cores). The optimizers' own arithmetic is small enough for one thread.
    """
    with _blas_controller().limit(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def default_popsize(dim: int) -> int:
    """pycma's default population: 4 + 3 ln(n)."""
    return 4 + int(3 * math.log(dim))


def _check_popsize(popsize: int | None) -> None:
    if popsize is not None and popsize < 2:
        raise FvoptError(f"population size must be at least 2, not {popsize}")


class CMAES:
    """CMA-ES through pycma's ask/tell; `diagonal=True` is sep-CMA-ES (a diagonal covariance).

    The reported best is the distribution mean, which is less flattered by lucky transform draws
    than the best sample.
    """

    zero_order = True

    def __init__(self, popsize: int | None = None, sigma: float | None = None, diagonal: bool = False) -> None:
        _check_popsize(popsize)
        check_positive("sigma", sigma)
        self.popsize, self.sigma, self.diagonal = popsize, sigma, diagonal

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        import cma

        if not self.diagonal and problem.dim > MAX_FULL_CMA_DIM:
            raise FvoptError(
                f"full CMA-ES on {problem.dim} dimensions ({problem.param.name}) needs a {problem.dim}x{problem.dim} "
                f"covariance; the limit is {MAX_FULL_CMA_DIM}. Use sep-cmaes, or a low-dimensional parameterization "
                "such as fft:k=8 or pyramid:free=2")
        self.popsize = self.popsize or default_popsize(problem.dim)
        self.sigma = self.sigma or calibrate_sigma(problem.param, z0, PIXEL_RMS, problem.seed)
        self.device = problem.device
        self.es = []
        for b in range(problem.batch):
            opts = {"popsize": self.popsize, "seed": problem.seed * 1000 + b + 1, "verbose": -9, "verb_log": 0,
                    "verb_disp": 0, "CMA_diagonal": self.diagonal, "tolfun": 0, "tolfunhist": 0, "tolx": 0,
                    "tolstagnation": np.inf, "tolflatfitness": np.inf, "maxiter": np.inf, "maxfevals": np.inf}
            with quiet_numpy():
                self.es.append(cma.CMAEvolutionStrategy(z0[b].double().cpu().numpy(), self.sigma, opts))

    def step(self, problem: Problem) -> None:
        with quiet_numpy():
            asks = [es.ask() for es in self.es]
        Z = torch.from_numpy(np.stack([np.stack(x) for x in asks], axis=1)).float()  # (P, B, dim)
        values = problem.evaluate(Z).cpu().double().numpy()
        with quiet_numpy():
            for b, es in enumerate(self.es):
                es.tell(asks[b], list(-values[:, b]))

    @property
    def best(self) -> torch.Tensor:
        return torch.from_numpy(np.stack([es.mean for es in self.es])).float().to(self.device)


@register("cmaes", "CMA-ES (pycma), full covariance; up to 4096 dimensions")
def _cmaes(popsize: int | None = None, sigma: float | None = None) -> CMAES:
    return CMAES(popsize, sigma, diagonal=False)


@register("sep-cmaes", "sep-CMA-ES (pycma, CMA_diagonal=True): diagonal covariance, any dimension")
def _sep_cmaes(popsize: int | None = None, sigma: float | None = None) -> CMAES:
    return CMAES(popsize, sigma, diagonal=True)


@register("ga", "genetic algorithm after XDream (Xiao & Kreiman 2020): selection, crossover, mutation")
class GeneticAlgorithm:
    """XDream's genetic algorithm, with its published defaults.

    Per generation: fitness-proportional selection with probability exp(selectivity * z-score),
    uniform crossover keeping each gene of the first parent with probability `heritability`,
    Gaussian mutation of each gene with probability `mutation_rate` and size `sigma` (default: the
    step that changes pixels by 0.05 RMS; XDream's 0.5 was in its generator's latent units), and the
    `elite` best kept unchanged. nevergrad has no population GA with crossover that fits
    (its RecombiningGA is a (1+1) variant), and this is the GA the neuron-control literature
    benchmarks (Wang & Ponce 2022 compare against it).
    """

    zero_order = True

    def __init__(self, popsize: int = 20, sigma: float | None = None, mutation_rate: float = 0.5, selectivity: float = 2.0,
                 heritability: float = 0.5, elite: int = 1) -> None:
        _check_popsize(popsize)
        check_positive("sigma", sigma)
        if not 0 <= mutation_rate <= 1 or not 0 <= heritability <= 1:
            raise FvoptError("mutation_rate and heritability must be in [0, 1]")
        if not 0 <= elite < popsize:
            raise FvoptError(f"elite must be in 0..{popsize - 1}, not {elite}")
        self.popsize, self.sigma, self.mutation_rate = popsize, sigma, mutation_rate
        self.selectivity, self.heritability, self.elite = selectivity, heritability, elite

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        self.rng = torch.Generator().manual_seed(problem.seed + 7919)
        self.sigma = self.sigma or calibrate_sigma(problem.param, z0, PIXEL_RMS, problem.seed)
        z0 = z0.detach().float().cpu()
        noise = torch.randn((self.popsize, *z0.shape), generator=self.rng) * self.sigma
        noise[0] = 0
        self.pop = z0[None] + noise  # (P, B, dim)
        self.scores: torch.Tensor | None = None
        self.device = problem.device

    def step(self, problem: Problem) -> None:
        if self.scores is not None:
            self.pop = self._next_generation()
        self.scores = problem.evaluate(self.pop).float().cpu()

    def _next_generation(self) -> torch.Tensor:
        P, B, d = self.pop.shape
        s = self.scores
        z = (s - s.mean(0)) / s.std(0).clamp_min(1e-12)
        prob = torch.softmax(self.selectivity * z, dim=0).T  # (B, P)
        n_new = P - self.elite
        pa = torch.multinomial(prob, n_new, replacement=True, generator=self.rng).T  # (n_new, B)
        pb = torch.multinomial(prob, n_new, replacement=True, generator=self.rng).T
        slots = torch.arange(B)
        parent_a, parent_b = self.pop[pa, slots], self.pop[pb, slots]
        keep_a = torch.rand((n_new, B, d), generator=self.rng) < self.heritability
        child = torch.where(keep_a, parent_a, parent_b)
        mutate = torch.rand((n_new, B, d), generator=self.rng) < self.mutation_rate
        child = child + mutate * torch.randn((n_new, B, d), generator=self.rng) * self.sigma
        elite = self.pop[s.argsort(0, descending=True)[: self.elite], slots]
        return torch.cat([elite, child])

    @property
    def best(self) -> torch.Tensor:
        if self.scores is None:
            return self.pop[0].to(self.device)
        return self.pop[self.scores.argmax(0), torch.arange(self.pop.shape[1])].to(self.device)


class NevergradStrategy:
    """Any optimizer of nevergrad's registry (`ng:<Name>`), asked for a batch per iteration.

    nevergrad's meta-optimizers (NGOpt, and `CMA`, which is a selector) pick an inner optimizer
    from the dimension, budget and workers; `selected` names what actually ran, and the trace
    records it, so results are never attributed to the wrong algorithm.
    """

    zero_order = True

    def __init__(self, name: str, popsize: int | None = None, sigma: float | None = None, budget: int | None = None) -> None:
        import nevergrad as ng

        _check_popsize(popsize)
        check_positive("sigma", sigma)
        if name not in ng.optimizers.registry:
            from ..errors import suggest
            raise FvoptError(f"unknown nevergrad optimizer '{name}'.{suggest(name, ng.optimizers.registry)} "
                             f"nevergrad has {len(ng.optimizers.registry)}, e.g. NGOpt, TwoPointsDE, PSO, DiagonalCMA, "
                             "ParametrizedCMA")
        self.name, self.popsize, self.sigma, self.budget = name, popsize, sigma, budget

    def start(self, problem: Problem, z0: torch.Tensor) -> None:
        import nevergrad as ng

        self.popsize = self.popsize or default_popsize(problem.dim)
        self.sigma = self.sigma or calibrate_sigma(problem.param, z0, PIXEL_RMS, problem.seed)
        budget = self.budget or _evaluations_in(problem, self.popsize)
        self.device = problem.device
        self.opts = []
        for b in range(problem.batch):
            param = ng.p.Array(init=z0[b].double().cpu().numpy()).set_mutation(sigma=self.sigma)
            param.random_state = np.random.RandomState(problem.seed * 1000 + b + 1)
            self.opts.append(ng.optimizers.registry[self.name](parametrization=param, budget=budget,
                                                               num_workers=self.popsize))

    def step(self, problem: Problem) -> None:
        with quiet_numpy():
            asks = [[opt.ask() for _ in range(self.popsize)] for opt in self.opts]
        Z = torch.tensor(np.array([[c.value for c in cands] for cands in asks]), dtype=torch.float32).transpose(0, 1)
        values = problem.evaluate(Z).cpu().double().numpy()
        with quiet_numpy():
            for b, opt in enumerate(self.opts):
                for p, cand in enumerate(asks[b]):
                    opt.tell(cand, float(-values[p, b]))

    @property
    def selected(self) -> str:
        """The optimizer that really runs, through nevergrad's meta-selectors."""
        opt, chain = self.opts[0], [self.name]
        for _ in range(5):
            inner = getattr(opt, "_optim", None) or getattr(opt, "optim", None)
            if inner is None or inner is opt:
                break
            chain.append(getattr(inner, "name", type(inner).__name__))
            opt = inner
        return " -> ".join(dict.fromkeys(chain))

    @property
    def best(self) -> torch.Tensor:
        rec = np.stack([opt.provide_recommendation().value for opt in self.opts])
        return torch.from_numpy(rec).float().to(self.device)


def _evaluations_in(problem: Problem, popsize: int) -> int:
    """Evaluations per slot the run budget allows, for nevergrad's budget-aware selectors."""
    b = problem.meter.budget
    candidates = []
    if b is not None:
        if b.steps:
            candidates.append(b.steps * popsize)
        if b.forwards:
            candidates.append(b.forwards // problem.batch)
        if b.passes:
            candidates.append(b.passes // problem.batch)
    return min(candidates) if candidates else 100 * popsize
