"""One streamed pass of a reference set through a network, summarized per image and unit, cached.

Full activation maps of 50,000 images do not fit anywhere; what the measures and the dataset
examples need does: for every image and every unit of a layer, the unit's mean over positions
(what a `channel:` target maximizes), its maximum over positions and where that maximum is (to cut
the crop a unit responds to). For the logits, the logits. For a judge, its penultimate feature
vector (float16) and the image's spectral slope. All layers a run needs come from one pass over
the images; each (model, weights, layer, side, reference content) is cached in its own file
(see `cache.py` for the refusal and rebuild policy).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..errors import FvoptError
from ..models import LOGITS, FeatureModel, capture
from ..models.layouts import grid_of, positions, unit_mean
from . import cache as cache_mod
from .features import last_linear
from .reference import ReferenceSet
from .spectrum import spectral_slopes

_LOADED: dict = {}  # the last 8 cache files read in this process: (path, mtime, size) -> payload
FEATURES = "penultimate"  # pseudo-layer: the input of the last linear layer, plus the spectral slope
KEPT_WORK = "fvopt_kept"  # the attribute an interrupt or failure carries out of a pass: what the pass kept
PARTIAL_SECONDS = 60.0  # seconds of work between two saves of an unfinished pass (at least 10x a save's own time)


@dataclass
class LayerStats:
    """Per-image summaries of one layer over a reference set (rows of skipped images are NaN)."""

    layer: str
    mean: torch.Tensor  # (N, units): mean over positions; for logits/vectors, the value; for FEATURES, features
    max: torch.Tensor | None = None  # (N, units) spatial max
    argmax: torch.Tensor | None = None  # (N, units) flat position index of the max
    grid: tuple[int, int] | None = None  # (rows, cols) of positions
    slopes: torch.Tensor | None = None  # (N,) spectral slope (FEATURES only)
    valid: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))  # (N,)
    side: int = 0
    how: str = "computed"  # or "cache"

    def unit(self, index: int) -> torch.Tensor:
        """(N,) the unit's activation per image (NaN where skipped)."""
        return self.mean[:, index].float()


def _auto_workers(n: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if n < 256 or cores < 3 else min(4, cores - 1)


def reference_pass(
    model: FeatureModel,
    reference: ReferenceSet,
    layers: list[str] | set[str],
    *,
    side: int | None = None,
    batch: int = 32,
    progress: bool = True,
    use_cache: bool = True,
    cache_folder: str | Path | None = None,
    workers: int | str = "auto",
) -> dict[str, LayerStats]:
    """Summaries of `layers` of `model` (names, LOGITS, or FEATURES) over `reference`, from the cache
    where it holds them and otherwise from one streamed pass that computes every missing layer.

    `side` is the side the images are shown at (default: the model's input size).
    """
    side = int(side or model.input_size)
    folder = Path(cache_folder) if cache_folder is not None else None
    layers = sorted(set(layers))
    keys = {layer: _key(model, reference, layer, side) for layer in layers}
    out: dict[str, LayerStats] = {}
    missing = []
    for layer in layers:
        path = cache_mod.cache_path(keys[layer], folder)
        if use_cache and path.exists():
            try:
                st = path.stat()
                memo = (str(path), st.st_mtime_ns, st.st_size)
                if memo not in _LOADED:  # a bench judges many cells against one reference: read each file once
                    if len(_LOADED) >= 8:
                        _LOADED.pop(next(iter(_LOADED)))
                    _LOADED[memo] = cache_mod.load(path, keys[layer], check=cache_mod.summary_problem)
                out[layer] = _from_payload(layer, _LOADED[memo], reference, "cache")
                continue
            except cache_mod.CacheError as err:
                import sys

                print(f"fvopt: note: {err}; rebuilding it", file=sys.stderr)
        missing.append(layer)
    if missing:
        partial = Partial.of([keys[layer] for layer in missing], folder) if use_cache else None
        payloads = _stream(
            model,
            reference,
            missing,
            side,
            batch,
            progress,
            _auto_workers(len(reference)) if workers == "auto" else int(workers),
            partial,
        )
        for layer in missing:
            if use_cache:
                cache_mod.save(cache_mod.cache_path(keys[layer], folder), keys[layer], payloads[layer])
            out[layer] = _from_payload(layer, payloads[layer], reference, "computed")
        if partial is not None:
            partial.remove()
    return out


@dataclass
class Partial:
    """An unfinished pass, saved every PARTIAL_SECONDS and when it is interrupted or fails: the next pass
    over the same images for the same layers resumes from it, since a first pass over an ImageNet validation
    folder (50,000 images) takes the better part of an hour on a CPU."""

    path: Path
    key: dict

    @classmethod
    def of(cls, layer_keys: list[dict], folder: Path | None) -> "Partial":
        key = {"unfinished pass of": layer_keys}
        return cls(cache_mod.cache_path(key, folder), key)

    def load(self) -> dict | None:
        """The saved state, or None (none saved, or one that cannot be used: the pass starts over)."""
        if not self.path.exists():
            return None
        try:
            return cache_mod.load(self.path, self.key)
        except cache_mod.CacheError:
            return None

    def save(self, state: dict) -> None:
        cache_mod.save(self.path, self.key, state)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _key(model: FeatureModel, reference: ReferenceSet, layer: str, side: int) -> dict:
    return {
        "model": model.name,
        "weights": cache_mod.weights_fingerprint(model),
        "layer": layer,
        "side": side,
        "reference": reference.fingerprint(),
        "reference_kind": reference.kind,
        "items": len(reference),
    }


def _from_payload(layer: str, p: dict, reference: ReferenceSet, how: str) -> LayerStats:
    for i, why in zip(p["skipped_index"].tolist(), p["skipped_why"]):
        reference.skipped[int(i)] = why
    grid = tuple(p["grid"].tolist()) if p.get("grid") is not None else None
    return LayerStats(
        layer, p["mean"], p.get("max"), p.get("argmax"), grid, p.get("slopes"), p["valid"], int(p["side"]), how
    )


def _stream(
    model: FeatureModel,
    reference: ReferenceSet,
    layers: list[str],
    side: int,
    batch: int,
    progress: bool,
    workers: int,
    partial: Partial | None = None,
) -> dict[str, dict]:
    n = len(reference)
    hooked = {layer for layer in layers if layer != FEATURES}
    acc: dict[str, dict[str, list]] = {layer: {"mean": [], "max": [], "argmax": [], "slopes": []} for layer in layers}
    grids: dict[str, tuple[int, int] | None] = {}
    valid = torch.zeros(n, dtype=torch.bool)
    state = partial.load() if partial is not None else None
    done = saved = int(state["done"]) if state else 0
    if state:  # resume: the images before `done` were summarized by an earlier, unfinished pass
        for layer, parts in state["acc"].items():
            acc[layer].update({k: [t] for k, t in parts.items()})
        grids.update({layer: tuple(g) if g is not None else None for layer, g in state["grids"].items()})
        valid[:done] = state["valid"]
        reference.skipped.update({int(i): why for i, why in state["skipped"].items()})
    feats: list[torch.Tensor] = []
    handle = None
    if FEATURES in layers:
        handle = last_linear(model).register_forward_pre_hook(
            lambda mod, inputs: feats.append(inputs[0].detach().flatten(1))
        )
    last, wait = time.perf_counter(), PARTIAL_SECONDS
    bar = tqdm(
        total=n,
        initial=done,
        desc=f"reference pass {model.name} ({', '.join(layers)})" + (f", resumed at image {done}" if done else ""),
        unit="img",
        disable=not progress,
        leave=False,
    )
    try:
        with (
            torch.no_grad(),
            capture(
                model, hooked | ({LOGITS} if FEATURES in layers else set()), stop_early=FEATURES not in layers
            ) as cap,
        ):
            for b in reference.batches(side, batch, workers, start=done):
                valid[b.indices] = b.ok
                x = b.images.to(model.device, torch.float32)
                feats.clear()
                acts = cap.run(x)
                for layer in hooked:
                    _summarize(acc[layer], acts[layer], cap.layouts.get(layer), layer, grids)
                if FEATURES in layers:
                    acc[FEATURES]["mean"].append(feats[-1].float().cpu().half())
                    acc[FEATURES]["slopes"].append(spectral_slopes(b.images))
                done = int(b.indices[-1]) + 1
                bar.update(len(b.indices))
                if partial is not None and done < n and time.perf_counter() - last >= wait:
                    began = time.perf_counter()
                    partial.save(_state(acc, grids, valid, done, reference))
                    saved, last = done, time.perf_counter()
                    wait = max(PARTIAL_SECONDS, 10 * (last - began))  # saving stays a tenth of the work at most
    except BaseException as stop:  # Ctrl-C, SIGTERM, a failure: the images summarized so far are kept for the next pass
        if partial is not None and done > saved:
            partial.save(_state(acc, grids, valid, done, reference))
        if partial is not None and done:  # read by the command line's one line (KEPT_WORK)
            setattr(
                stop,
                KEPT_WORK,
                f"the reference pass ({model.name} {', '.join(layers)}) kept its first {done} of {n} images",
            )
        raise
    finally:
        bar.close()
        if handle is not None:
            handle.remove()
    if not valid.any():
        raise FvoptError(
            f"no image of reference {reference.describe()} could be read "
            f"({len(reference.skipped)} skipped; first: {next(iter(reference.skipped.values()), '?')})"
        )
    skipped = sorted(reference.skipped)
    out = {}
    for layer in layers:
        a = acc[layer]
        p = {
            "mean": _masked(torch.cat(a["mean"]), valid),
            "valid": valid,
            "side": side,
            "skipped_index": torch.tensor(skipped, dtype=torch.long),
            "skipped_why": [reference.skipped[i] for i in skipped],
            "grid": None,
        }
        if a["max"]:
            p["max"] = _masked(torch.cat(a["max"]), valid)
            p["argmax"] = torch.cat(a["argmax"])
            p["grid"] = torch.tensor(grids[layer])
        if a["slopes"]:
            p["slopes"] = _masked(torch.cat(a["slopes"]), valid)
        out[layer] = p
    return out


def _state(acc: dict, grids: dict, valid: torch.Tensor, done: int, reference: ReferenceSet) -> dict:
    """What the first `done` images gave, cut to exactly them (a pass stopped between two layers of one
    batch has summarized that batch for some layers only)."""
    return {
        "done": done,
        "acc": {layer: {k: torch.cat(v)[:done] for k, v in parts.items() if v} for layer, parts in acc.items()},
        "grids": {layer: list(g) if g is not None else None for layer, g in grids.items()},
        "valid": valid[:done].clone(),
        "skipped": {int(i): why for i, why in reference.skipped.items() if i < done},
    }


def _masked(t: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t[~valid] = float("nan")
    return t


def _summarize(acc: dict, act: torch.Tensor, layout, layer: str, grids: dict) -> None:
    act = act.detach().float()
    if layer == LOGITS or layout is None or layout.kind == "vector":
        acc["mean"].append(act.flatten(1).cpu())
        grids[layer] = None
        return
    flat = positions(act, layout)  # (n, units, positions)
    acc["mean"].append(unit_mean(act, layout).cpu())
    mx, arg = flat.max(-1)
    acc["max"].append(mx.cpu())
    acc["argmax"].append(arg.to(torch.int32).cpu())
    grids[layer] = tuple(grid_of(act, layout))
