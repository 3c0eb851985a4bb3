"""Judging stored cells: the quality settings of a spec, the exact images a cell keeps, and one call
that judges a cell's images the same way whether the cell just ran or was read back from a database.

Why a module of its own: a bench cell (cell.py) and `fvopt bench rescore` (rescore.py) must give the
same numbers for the same image, so both go through `judge_images` here; and the store keeps each
final image twice, exactly (float32, lossless: what the run produced and what the measures read) and
as the 8-bit PNG people look at, so `images_of` says which one a number came from.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import FvoptError

EXACT = "exact float32 image"
PNG = "8-bit PNG (no exact image stored)"


@dataclass(frozen=True)
class QualitySettings:
    """What to judge a cell's images with: a reference folder or 'builtin', a judge network's name,
    and the measures ('default', 'all', 'none' or names); all None: no quality measures beyond the
    default of `fvopt viz` (spectral_slope alone)."""

    reference: str | None = None
    judge: str | None = None
    measures: str | tuple[str, ...] | None = None

    def asdict(self) -> dict:
        return {
            "reference": self.reference,
            "judge": self.judge,
            "measures": list(self.measures) if isinstance(self.measures, tuple) else self.measures,
        }


def quality_settings(reference=None, judge=None, measures=None, where: str = "") -> QualitySettings:
    """Checked settings, before any model pass: the reference folder is read (file names only) and
    refused in one line when it holds no image, the judge must be a model name, the measures known
    names. `where` prefixes each error (a spec's key path, e.g. 'spec bench.')."""
    from ..quality import parse_measures, reference_set

    def fail(key: str, err: str) -> FvoptError:
        return FvoptError(f"{where}{key}: {err}" if where else err)

    from ..quality.reference import no_reference

    if no_reference(reference):
        reference = None  # 'none': no reference images, as everywhere in fvopt (a folder named none: ./none)
    if reference is not None:
        if not isinstance(reference, str):
            raise fail("reference", f"must be a folder of images or 'builtin', not {reference!r}")
        try:
            reference_set(reference)
        except FvoptError as err:
            raise fail("reference", str(err)) from None
    if judge is not None and (not isinstance(judge, str) or not judge.strip()):
        raise fail("judge", f"must be a model name such as 'lite1', not {judge!r}")
    if measures is not None:
        if isinstance(measures, list):
            measures = tuple(measures)
        try:
            parse_measures(list(measures) if isinstance(measures, tuple) else measures)
        except FvoptError as err:
            raise fail("measures", str(err)) from None
    return QualitySettings(reference, judge, measures)


def check_against(
    settings: QualitySettings, models: list[str], targets: list[str], slots: dict[str, int], where: str = ""
) -> None:
    """Refuse, before work, a judge that is one of the optimized models and a measure named that cannot
    apply to one of the targets (`slots`: images per cell of each target)."""
    from ..quality.score import plan, viz_settings

    for model in models:
        try:
            viz_settings(None, settings.judge, None, model)
        except FvoptError as err:  # "judge: unknown model ..." is said once, after the spec's key
            raise FvoptError(f"{where}judge: {str(err).removeprefix('judge: ')}" if where else str(err)) from None
    ref_given = settings.reference is not None
    measures = _measures_for(settings)
    if measures is None:
        return
    for target in targets:
        try:
            plan(target, slots.get(target, 1), ref_given, measures)
        except FvoptError as err:
            raise FvoptError(
                f"{where}measures: on target {target}: {err}" if where else f"on target {target}: {err}"
            ) from None


def _measures_for(settings: QualitySettings):
    """The measures `judge` is asked for, as `fvopt viz` asks: without a reference and without a list,
    spectral_slope alone; 'none' -> None (nothing judged)."""
    from ..quality import parse_measures

    m = list(settings.measures) if isinstance(settings.measures, tuple) else settings.measures
    if m is not None:
        names, _ = parse_measures(m)
        return m if names else None
    return "default" if settings.reference is not None else ["spectral_slope"]


def encode_exact(images: torch.Tensor) -> bytes:
    """The images as float32 in a compressed .npz (lossless: decode_exact gives them back bit for bit)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images.detach().float().cpu().numpy())
    return buffer.getvalue()


def decode_exact(blob: bytes) -> torch.Tensor:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return torch.from_numpy(np.array(data["images"]))


def images_of(row: dict) -> tuple[torch.Tensor, str]:
    """A stored cell's final images (n, 3, H, W) in [0,1] and where they came from: the exact float32
    images when the cell kept them, else cut out of the 8-bit PNG grid (fvopt.io.images.grid: 2 px
    padding, ceil(sqrt(n)) columns, n = the target's images per cell). A grid whose shape does not fit
    is refused in one line rather than judged as something else."""
    if row.get("image_exact"):
        return decode_exact(row["image_exact"]), EXACT
    from PIL import Image

    from ..objectives import parse_target

    if not row.get("image"):
        raise FvoptError(f"cell {row.get('key')} has no stored image")
    picture = np.asarray(Image.open(io.BytesIO(row["image"])).convert("RGB"))
    n, side, pad = parse_target(row["target"]).slots, int(row["size"]), 2
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    expected = (rows * (side + pad) + pad, cols * (side + pad) + pad)
    if picture.shape[:2] != expected:
        raise FvoptError(
            f"cell {row.get('key')}: its PNG is {picture.shape[1]}x{picture.shape[0]} px, not the "
            f"{expected[1]}x{expected[0]} grid of {n} image(s) of {side} px; it cannot be cut back"
        )
    tiles = []
    for i in range(n):
        r, c = divmod(i, cols)
        y0, x0 = pad + r * (side + pad), pad + c * (side + pad)
        tiles.append(picture[y0 : y0 + side, x0 : x0 + side])
    return torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).float().div(255), PNG


def judge_images(
    images: torch.Tensor,
    target: str,
    model,
    settings: QualitySettings,
    seed: int,
    render: int | None = None,
    source: str = EXACT,
    as_saved: bool = False,
) -> dict:
    """fvopt.quality.judge on a cell's images with the cell's settings (seed = the cell's seed, as
    `fvopt viz` judges), plus `settings` (what was asked, so a rescore can tell what is already done)
    and `image_source` (the exact images or the 8-bit PNG). With `as_saved`, also `value_8bit` and
    `robust_8bit` (the common evaluator on the picture as saved), for cells that ran before the
    evaluator scored it. A measure that fails after the pass is an `error`, never a number."""
    from ..models.cache import cached_model
    from ..quality import default_judge, judge
    from ..quality.reference import cached_reference_set
    from ..quality.builtin_measures import DEFAULT_TRANSFER
    from ..quality.score import viz_settings

    out: dict = {"settings": settings.asdict(), "image_source": source}
    if as_saved:
        from ..evaluate import score_as_saved
        from ..objectives import parse_target

        saved = score_as_saved(model, parse_target(target), images, render=render)
        out.update(value_8bit=saved["value_8bit"], robust_8bit=saved["robust_8bit"])
    ref, measures = viz_settings(
        cached_reference_set(settings.reference),
        settings.judge,
        list(settings.measures) if isinstance(settings.measures, tuple) else settings.measures,
        model,
    )
    if measures is None:
        return out
    # the judge and transfer networks by the names judge() would load, loaded once per process
    judge_net = cached_model(settings.judge or default_judge(model.name), model.device)
    transfer = [cached_model(t, model.device) for t in DEFAULT_TRANSFER if t != model.name]
    try:
        out.update(
            judge(
                images,
                target,
                model,
                judge=judge_net,
                reference=ref,
                measures=measures,
                render=render,
                seed=seed,
                transfer=transfer,
            )
        )
    except FvoptError as err:
        out["error"] = str(err)
    return out
