"""Running one cell: a pure function of the cell, so any executor (a process, a Dask worker) can run it."""

from __future__ import annotations

import io
import platform
import torch

from ..version import __version__
from ..evaluate import quality_measures
from ..io.images import grid
from ..models.cache import cached_model
from ..objectives import parse_target
from ..viz import visualize
from .judging import QualitySettings, encode_exact, judge_images
from .spec import Cell


def run_cell(cell: Cell, threads: int | None = None) -> dict:
    """Optimize one cell under its budget (the same path as `fvopt viz`) and score it; a row for the store.

    The row keeps the final images exactly (`image_exact`, float32) beside the 8-bit PNG, and their
    quality (`quality`: fvopt.quality.judge with the spec's reference, judge and measures, through
    judging.judge_images, the same call `fvopt bench rescore` makes)."""
    if threads:
        torch.set_num_threads(threads)
    model = cached_model(cell.model, cell.device, cell.preprocessing)
    vis = visualize(
        model,
        cell.target,
        cell.param_used,
        cell.strategy_name,
        options=cell.options,
        size=cell.size,
        seed=cell.seed,
        device=cell.device,
        transforms=cell.transforms,
        max_batch=cell.max_batch,
        render=cell.render,
        measures="none",
        **cell.budget,
    )  # judged below, as a rescore judges

    result = vis.result
    if vis.interrupted:  # Ctrl-C inside the cell: abandon it (never a half cell stored as done)
        raise KeyboardInterrupt
    transfer = cached_model(cell.transfer_model, cell.device) if cell.transfer_model else None
    final = {
        "value": vis.trace["final"]["value"],
        "robust_value": vis.trace["final"]["robust_value"],
        "best_seen": result.trace[-1]["best"] if result.trace else None,
        **quality_measures(result.images, parse_target(cell.target), transfer),
    }
    # the picture as saved (8-bit PNG), as `fvopt viz` scores it
    final.update({k: vis.trace["final"][k] for k in ("value_8bit", "robust_8bit") if k in vis.trace["final"]})
    settings = QualitySettings(cell.reference, cell.judge, cell.measures)
    quality = judge_images(result.images, cell.target, model, settings, seed=cell.seed, render=vis.trace["render"])
    median_step, max_step = result.step_seconds()
    buffer = io.BytesIO()
    grid(result.images).save(buffer, format="PNG")
    return {
        "key": cell.key,
        "model": cell.model,
        "target": cell.target,
        "strategy": cell.strategy,
        "strategy_name": cell.strategy_name,
        "options": cell.options,
        "param": cell.param,
        "param_used": cell.param_used,
        "param_dim": vis.trace["param_dim"],
        "seed": cell.seed,
        "size": cell.size,
        "budget": cell.budget,
        "transforms": cell.transforms,
        "status": "done",
        "stop_reason": result.stop_reason,
        "forwards": result.forwards,
        "backwards": result.backwards,
        "seconds": result.seconds,
        "steps": result.steps,
        "max_step_seconds": max_step,
        "median_step_seconds": median_step,
        "warmup_seconds": result.warmup_seconds,  # untimed, before the clock: not in seconds (fvopt/warmup.py)
        "final": final,
        "trace": result.trace,
        "extra": {**result.extra, **({"render": vis.trace["render"]} if cell.render is not None else {})},
        "image": buffer.getvalue(),
        "image_exact": encode_exact(result.images),
        "quality": quality,
        "fvopt_version": __version__,
        "torch_version": torch.__version__,
        "device": f"{cell.device} ({platform.machine()}, {torch.get_num_threads()} threads)",
    }
