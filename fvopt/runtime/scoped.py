"""Library calls leave the process as they found it: random generators and backend switches scoped to a call.

Why: a researcher calls `fvopt.visualize` in the middle of their own experiment. If the call
seeded torch's global generator, numpy's or Python's, or left cuDNN autotuning or deterministic
mode switched, the experiment around it would silently change (its next random draw, its speed,
its reproducibility). So a public entry point runs inside `process_state_kept()`: what it seeds
or switches is restored when it returns or raises. Only the command line (`fvopt ...`) may change
process-wide settings, because there the process is fvopt's.

Seeding inside the scope goes through `seed_all(seed, device)`, which seeds the CPU generator and,
for a CUDA (or MPS) run, that device's generators after saving their states in the enclosing scope (so a call
on the CPU does not initialize CUDA just to save a state it never touches).
"""

from __future__ import annotations

import functools
import os
import random
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch

# Environment variables fvopt may set for a call (cuBLAS needs this one for deterministic algorithms).
SCOPED_ENV = ("CUBLAS_WORKSPACE_CONFIG",)

F = TypeVar("F", bound=Callable)


class _Saved:
    """What a scope restores: generator states, backend switches, thread count, environment."""

    def __init__(self) -> None:
        self.cpu = torch.random.get_rng_state()
        self.cuda: dict[int, torch.Tensor] = {}
        self.mps: torch.Tensor | None = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            self.save_cuda()
        self.numpy = np.random.get_state()
        self.python = random.getstate()
        self.cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
        self.algorithms = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        self.threads = torch.get_num_threads()
        self.env = {name: os.environ.get(name) for name in SCOPED_ENV}

    def save_cuda(self) -> None:
        """Save every CUDA generator not saved yet (initializes CUDA: call it only for a CUDA run)."""
        for index in range(torch.cuda.device_count()):
            if index not in self.cuda:
                self.cuda[index] = torch.cuda.get_rng_state(index)

    def restore(self) -> None:
        torch.random.set_rng_state(self.cpu)
        for index, state in self.cuda.items():
            torch.cuda.set_rng_state(state, index)
        if self.mps is not None:
            torch.mps.set_rng_state(self.mps)
        np.random.set_state(self.numpy)
        random.setstate(self.python)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = self.cudnn
        enabled, warn_only = self.algorithms
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        for name, value in self.env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_SCOPE: ContextVar[_Saved | None] = ContextVar("fvopt_process_state", default=None)


@contextmanager
def process_state_kept() -> Iterator[None]:
    """Run the body, then restore the global random generators (torch CPU and CUDA, numpy, Python's
    `random`), cuDNN and deterministic-algorithm switches, torch's thread count and the environment
    variables fvopt sets. Nested scopes restore only at the outermost."""
    if _SCOPE.get() is not None:
        yield
        return
    saved = _Saved()
    token = _SCOPE.set(saved)
    try:
        yield
    finally:
        _SCOPE.reset(token)
        saved.restore()


def keeps_process_state(fn: F) -> F:
    """Decorator: `fn` runs inside `process_state_kept()`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with process_state_kept():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def seed_all(seed: int, device: torch.device | str = "cpu") -> None:
    """torch.manual_seed for one call: the CPU generator, and on a CUDA device every CUDA generator,
    each saved first by the enclosing scope (`process_state_kept`) when there is one."""
    torch.random.default_generator.manual_seed(seed)
    kind = torch.device(device).type
    scope = _SCOPE.get()
    if kind == "cuda":
        if scope is not None:
            scope.save_cuda()
        torch.cuda.manual_seed_all(seed)
    elif kind == "mps":
        if scope is not None and scope.mps is None:
            scope.mps = torch.mps.get_rng_state()
        torch.mps.manual_seed(seed)
