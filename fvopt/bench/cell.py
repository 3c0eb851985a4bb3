"""Running one cell: a pure function of the cell, so any executor (a process, a Dask worker) can run it."""
from __future__ import annotations

import io
import platform
import torch

from .. import __version__
from ..evaluate import quality_measures, score_images
from ..models import load_model
from ..objectives import parse_target
from ..params import make_param
from ..problem import Budget, Problem
from ..run import run
from ..strategies import make_strategy
from ..transforms import make_transforms
from .spec import Cell

_MODELS: dict[tuple[str, str], object] = {}


def cached_model(name: str, device: str):
    """Models are loaded once per worker process."""
    key = (name, device)
    if key not in _MODELS:
        _MODELS[key] = load_model(name, device=device)
    return _MODELS[key]


def run_cell(cell: Cell, threads: int | None = None) -> dict:
    """Optimize one cell under its budget and score it with the common evaluator; a row for the store."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cell.seed)
    model = cached_model(cell.model, cell.device)
    objective = parse_target(cell.target)
    param = make_param(cell.param_used, cell.size)
    problem = Problem(model, objective, param, make_transforms(cell.transforms), seed=cell.seed,
                      max_batch=cell.max_batch)
    strategy = make_strategy(cell.strategy_name, **cell.options)
    budget = Budget(**cell.budget)
    result = run(problem, strategy, budget)
    scores = score_images(model, objective, result.images)
    transfer = cached_model(cell.transfer_model, cell.device) if cell.transfer_model else None
    final = {"value": float(scores["value"].mean()), "robust_value": float(scores["robust_value"].mean()),
             "best_seen": result.trace[-1]["best"] if result.trace else None,
             **quality_measures(result.images, objective, transfer)}
    times = [row["time_s"] for row in result.trace]
    gaps = [b - a for a, b in zip([0.0] + times, times)]
    buffer = io.BytesIO()
    from ..images import grid
    grid(result.images).save(buffer, format="PNG")
    return {
        "key": cell.key, "model": cell.model, "target": cell.target, "strategy": cell.strategy,
        "strategy_name": cell.strategy_name, "options": cell.options, "param": cell.param,
        "param_used": cell.param_used, "param_dim": param.dim, "seed": cell.seed, "size": cell.size,
        "budget": cell.budget, "transforms": cell.transforms, "status": "done", "stop_reason": result.stop_reason,
        "forwards": result.forwards, "backwards": result.backwards, "seconds": result.seconds, "steps": result.steps,
        "max_step_seconds": max(gaps) if gaps else 0.0, "final": final, "trace": result.trace, "extra": result.extra,
        "image": buffer.getvalue(), "fvopt_version": __version__, "torch_version": torch.__version__,
        "device": f"{cell.device} ({platform.machine()}, {torch.get_num_threads()} threads)",
    }
