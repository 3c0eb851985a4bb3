"""Dataset examples: for each unit, the reference images that drive it most and least.

This is what Microscope and Distill show beside every visualization. All units of a layer come from
one pass over the reference set (the same cached summaries the measures read). For units with
positions (channels of a feature map), the crop around each top image's most active position is cut
too: a square centered on that position, of side max(side/4, 2 * side / grid rows), which is an
approximation of the region the unit sees, not its exact receptive field. Top and bottom lists
take at most `per_source` images from any one source photo (and one of a crop and its mirror), so
that a narrow reference set does not fill a unit's list with near-copies of one photo.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import FvoptError
from ..io.images import grid
from ..models import FeatureModel, load_model
from ..objectives import Objective, validate
from .activations import LayerStats, reference_pass
from .reference import ReferenceSet, check_side, reference_set
from .stats import spread_select
from .units import Unit, as_objective, unit_of


@dataclass
class UnitExamples:
    unit: int
    top: list[int]  # reference item indices, most active first
    top_activations: list[float]
    bottom: list[int]  # least active first
    bottom_activations: list[float]
    boxes: list[tuple[int, int, int, int]] | None = None  # per top item: (y0, x0, y1, x1) at the shown side


def examples_unit(target: "str | Objective") -> Unit:
    """The unit(s) of an `examples` target: channel:LAYER:INDICES or class:INDICES, else one line why not."""
    unit, why = unit_of(target)
    if unit is None:
        raise FvoptError(f"dataset examples need a channel:LAYER:INDICES or class:INDICES target: {why}")
    return unit


def dataset_examples(
    model: "str | FeatureModel",
    target: "str | Objective",
    reference=None,
    *,
    top: int = 9,
    per_source: int = 2,
    side: int | None = None,
    batch: int = 32,
    progress: bool = True,
    use_cache: bool = True,
    cache_folder=None,
    device: str = "cpu",
    weights: str | None = None,
) -> tuple[list[UnitExamples], LayerStats, ReferenceSet]:
    """Top-`top` and bottom-`top` reference images of every unit of `target`, from one pass (or the cache)."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise FvoptError(f"top must be a positive number of examples per unit, not {top!r}")
    if isinstance(per_source, bool) or not isinstance(per_source, int) or per_source < 1:
        raise FvoptError(f"per_source must be a positive integer, not {per_source!r}")
    objective = as_objective(target)
    unit = examples_unit(objective)
    ref = reference_set(reference)
    check_list_sizes(ref, top, per_source)
    net = model if isinstance(model, FeatureModel) else load_model(model, weights=weights, device=device)
    check_side(side, net)
    validate(objective, net, side or net.input_size)
    stats = reference_pass(
        net,
        ref,
        [unit.layer],
        side=side,
        batch=batch,
        progress=progress,
        use_cache=use_cache,
        cache_folder=cache_folder,
    )[unit.layer]
    out = []
    for index in dict.fromkeys(unit.indices):
        acts = stats.unit(index).numpy()
        tops = spread_select(acts, ref.sources, top, per_source, largest=True, same=ref.near_copies)
        bottoms = spread_select(acts, ref.sources, top, per_source, largest=False, same=ref.near_copies, exclude=tops)
        boxes = None
        if stats.argmax is not None:
            boxes = [_box(int(stats.argmax[i, index]), stats.grid, stats.side) for i in tops]
        out.append(
            UnitExamples(index, tops, [float(acts[i]) for i in tops], bottoms, [float(acts[i]) for i in bottoms], boxes)
        )
    return out, stats, ref


def check_list_sizes(ref: ReferenceSet, top: int, per_source: int) -> None:
    """Refuse, before the pass, a `top` that the reference cannot fill: more than one list can hold (at
    most `per_source` per source photo, one of a crop and its mirror), or more than half its distinct
    images (a unit's top and bottom lists never share an image)."""
    capacity, distinct = ref.list_capacity(per_source)
    if distinct < 2:
        raise FvoptError(
            f"reference {ref.describe()} has {distinct} distinct image: a unit's top and bottom lists need 2 or more"
        )
    limit = min(capacity, distinct // 2)
    if top > limit:
        why = []
        if top > capacity:
            why.append(
                f"a list holds at most {capacity} ({per_source} per source photo, {len(set(ref.sources))} sources)"
            )
        if 2 * top > distinct:
            why.append(f"a top and a bottom list of {top} need {2 * top} distinct images and it has {distinct}")
        more = ", or a larger --per-source" if capacity < distinct // 2 else ""
        raise FvoptError(
            f"top {top} cannot be filled from reference {ref.describe()}: {'; '.join(why)}; give --top {limit} "
            f"or less{more}"
        )


def _box(flat: int, grid_hw: tuple[int, int], side: int) -> tuple[int, int, int, int]:
    gh, gw = grid_hw
    gy, gx = divmod(flat, gw)
    cy, cx = (gy + 0.5) * side / gh, (gx + 0.5) * side / gw
    half = max(side / 4, 2 * side / gh) / 2
    y0 = int(round(min(max(cy - half, 0), side - 2 * half)))
    x0 = int(round(min(max(cx - half, 0), side - 2 * half)))
    s = int(round(2 * half))
    return (y0, x0, y0 + s, x0 + s)


def write_examples(
    examples: list[UnitExamples],
    stats: LayerStats,
    reference: ReferenceSet,
    model_name: str,
    target: str,
    out: str | Path,
) -> list[Path]:
    """Per unit a labelled grid PNG (rows: top images, their crops, bottom images), an overview PNG (one
    row of top images per unit) and index.json (activations, source files, crop boxes, the reference's name)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FvoptError(f"cannot create output folder '{out}': {err.strerror or err}") from None
    side = stats.side
    layer = stats.layer
    written = []
    overview, overview_labels = [], []
    for ex in examples:
        tops = reference.load(ex.top, side)
        bottoms = reference.load(ex.bottom, side)
        rows, labels = [tops], [f"top {a:.3g}" for a in ex.top_activations]
        if ex.boxes:
            crops = torch.stack(
                [
                    F.interpolate(
                        img[None, :, y0:y1, x0:x1],
                        size=(side, side),
                        mode="bilinear",
                        align_corners=False,
                        antialias=True,
                    )[0]
                    for img, (y0, x0, y1, x1) in zip(tops, ex.boxes)
                ]
            )
            rows.append(crops)
            labels += [f"crop {a:.3g}" for a in ex.top_activations]
        rows.append(bottoms)
        labels += [f"bottom {a:.3g}" for a in ex.bottom_activations]
        path = out / f"unit-{ex.unit}.png"
        grid(torch.cat(rows), labels, columns=max(len(ex.top), len(ex.bottom), 1)).save(path)
        written.append(path)
        overview.append(tops)
        overview_labels += [f"{ex.unit}: {a:.3g}" for a in ex.top_activations]
    columns = max(len(ex.top) for ex in examples)
    grid(torch.cat(overview), overview_labels, columns=columns).save(out / "overview.png")
    written.append(out / "overview.png")
    index = {
        "model": model_name,
        "target": target,
        "layer": layer,
        "reference": reference.describe(),
        "side": side,
        "reference_cache": stats.how,
        "skipped": {reference.item_name(i): why for i, why in sorted(reference.skipped.items())},
        "units": [
            {
                **asdict(ex),
                "top_sources": [reference.item_name(i) for i in ex.top],
                "bottom_sources": [reference.item_name(i) for i in ex.bottom],
                "grid": f"unit-{ex.unit}.png",
            }
            for ex in examples
        ],
    }
    (out / "index.json").write_text(json.dumps(index, indent=1))
    written.append(out / "index.json")
    return written
