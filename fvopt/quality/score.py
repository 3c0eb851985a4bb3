"""`judge()`: every quality measure of a batch of final images, with intervals and controls, as one flat dict.

This is the one entry point the viz command, the bench harness and Python users call. It reads
the images, the target (for the unit), the optimized network, a judge network and a reference set;
it never needs the strategy that made the images, so a stored image can be re-judged any time.
The measures themselves are entries of fvopt.quality.registry: judge prepares what they need
(reference passes, judge features, controls) once, and runs each that applies.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import FvoptError
from ..models import FeatureModel, load_model
from ..objectives import Objective
from . import measures as M
from .activations import FEATURES, reference_pass
from .builtin_measures import NATURAL_RATIO_OF
from .builtin_measures import _unit_lists  # noqa: F401  (tests read it here)
from .cache import weights_fingerprint
from .features import penultimate, resolve_judge
from .reference import ReferenceSet, check_side, no_reference, reference_set
from .registry import MEASURES, Context, Facts, measure_names, needs_of, outputs_of, reason_absent, summary_order
from .registry import unknown_measure
from .units import Unit, as_objective, image_labels, unit_of

CONTROL_SEED = 7_700_211
_CONTROL_MEMO: dict = {}  # control scores by (network, unit, control, image shape, seed, reference): same every cell


def parse_measures(measures: "str | list[str] | tuple[str, ...] | None") -> tuple[list[str], bool]:
    """(names, explicit): 'default'/None -> every measure that applies (explicit False); 'all' -> every
    measure, each refused if it cannot apply; 'none' -> []; a list or 'a,b' -> those, each refused if
    it cannot apply. An unknown name is refused naming the known ones."""
    if measures is None or measures == "default":
        return measure_names(), False
    if isinstance(measures, str):
        if measures.strip() == "none":
            return [], True
        if measures.strip() == "all":
            return measure_names(), True
        names = [m.strip() for m in measures.split(",") if m.strip()]
    elif isinstance(measures, (list, tuple)) and all(isinstance(m, str) for m in measures):
        names = list(measures)
    else:
        raise FvoptError(f"measures must be 'default', 'all', 'none' or a list of names, not {measures!r}")
    for m in names:
        if m not in MEASURES:
            raise unknown_measure(m)
    if not names:
        raise FvoptError("measures is empty: name some (e.g. natural_ratio,mis), or 'all', 'none', 'default'")
    return list(dict.fromkeys(names)), True


def plan(
    target: "str | Objective",
    n_images: int,
    has_reference: bool,
    measures: "str | list[str] | None" = "default",
    channels: int = 3,
    size: "tuple[int, int] | None" = None,
) -> tuple[list[str], dict[str, str], Unit | None]:
    """(measures to compute, {measure: why absent}, unit): checked before any model pass.

    A measure asked for by name (or by 'all') that cannot be computed is refused in one line; in the
    default set it is simply absent, with the reason recorded. Each measure's needs
    (fvopt.quality.registry.Needs) say when it cannot apply: images of other than 3 channels (a
    grayscale or multispectral network) get only the measures that do not compare with RGB
    reference photos or ImageNet judges (the spectral slope); images below 10 px a side (`size`,
    (height, width)) have no spectral slope.
    """
    names, explicit = parse_measures(measures)
    unit, why_not = unit_of(target)
    facts = Facts(n_images, channels, tuple(size) if size is not None else None, unit, has_reference)
    wanted, absent = [], {}
    for m in names:
        reason = reason_absent(m, facts, why_not)
        if reason:
            if explicit:
                raise FvoptError(f"measure {m} cannot be computed here: {reason}")
            absent[m] = reason
        else:
            wanted.append(m)
    return wanted, absent, unit


def judge(
    images: torch.Tensor,
    target: "str | Objective",
    model: "str | FeatureModel",
    *,
    judge: "str | FeatureModel | None" = None,
    reference: "str | os.PathLike | ReferenceSet | None" = None,
    measures: "str | list[str] | None" = "default",
    transfer: "list[str] | None" = None,
    side: int | None = None,
    render: int | None = None,
    top: int = 9,
    pairs: int = 16,
    per_source: int = 2,
    seed: int = 0,
    batch: int = 32,
    progress: bool = False,
    use_cache: bool = True,
    cache_folder: "str | Path | None" = None,
    device: str = "cpu",
    robust: "list[float] | torch.Tensor | None" = None,
) -> dict:
    """Judge final images: every quality measure that applies, as one flat JSON-serialisable dict.

    Arguments: `images` (n, 3, H, W) in [0,1], image i driving slot i of `target` (a target string
    or Objective; regularizer terms are ignored); `model` the optimized network (name or
    FeatureModel); `judge` another network for features (default lite1 for lite0, else lite0;
    refused if it is `model`); `reference` a folder, 'builtin' (the scikit-image stand-in), a
    ReferenceSet, or None (no reference: the measures that need one are absent, or refused when
    named); `measures` 'default' (all that apply), 'all' or a list (refused where they cannot
    apply), 'none'; `transfer` the networks for `transfer` (default lite0 and lite1 without
    `model`); `side` the side reference images are shown at (default each network's input size);
    `render` the size the network saw the images at during the run (as in score_images); `top`
    reference images per unit for plausibility; `pairs` top and bottom images per unit for mis
    (pairs = all top x bottom combinations); `per_source` the most examples from one source photo;
    `robust` the bare unit's robust activation per image when the caller has it (the common
    evaluator's robust_value of a target without regularizer terms), which saves natural_ratio
    the evaluator's 17 passes. Pass loaded FeatureModels for `model`, `judge` and `transfer`, and
    a ReferenceSet, when judging many cells: caches are read once per process, and the controls
    (the same for every image of a unit) are scored once.

    Returns keys (values are floats, bools, strings, None or lists):
      reference (the set's name, e.g. "built-in stand-in (688 crops of 9 scikit-image photos)" or
      "none"), judge, model, target, images, measures (names computed), reference_cache
      ('cache'/'computed'/None); for each computed measure M: M, M_lo, M_hi (95% bootstrap
      interval), M_gray, M_noise, M_refimage (the controls, None when not computed), M_informative
      (bool, or None when nothing to compare; spectral_slope has none: it is not better or worse);
      extras natural_ratio_of (its denominator: "99th percentile"), natural_ratio_max (the ratio to the
      maximum, no interval: see measures.py), robust_activation (the bare unit's robust activation, the
      numerator), natural_ratio_note (why it is NaN for a unit whose 99th percentile is not positive),
      spectral_distance (+ _lo, _hi, controls, informative; lower is better), reference_slope,
      transfer_prob_NET, transfer_rank_NET, transfer_networks, mis_pairs (pairs per unit),
      plausibility_against; for each absent measure M: M_absent (the reason); and
      per_image: {unit: [label per image, as the trace's final.per_image.unit], M, M_lo, M_hi,
      M_informative, M_gray, M_noise, M_refimage, natural_ratio_max, robust_activation: [one per
      image]} (diversity, a batch measure, has one entry). Top-level M values are batch means of
      per_image's, their interval resamples the images. A measure registered by a plugin
      (fvopt.quality.registry) adds its own keys the same way.
    Every input is checked before any network pass (FvoptError, one line).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise FvoptError(
            f"images must be a (n, C, H, W) tensor in [0,1], not "
            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}"
        )
    for name, value in (("top", top), ("pairs", pairs), ("per_source", per_source), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FvoptError(f"{name} must be a positive integer, not {value!r}")
    objective = as_objective(target)
    n, channels = images.shape[0], images.shape[1]
    refuse_reference_for_channels(reference, channels, model if isinstance(model, str) else model.name)
    ref = None if no_reference(reference) else reference_set(reference)  # 'none': no reference, as everywhere
    wanted, absent, unit = plan(objective, n, ref is not None, measures, channels=channels, size=images.shape[-2:])
    net = model if isinstance(model, FeatureModel) else load_model(model, device=device)
    check_side(side, net)
    needs = [needs_of(m) for m in wanted]
    wants_features = any(x.judge_features for x in needs)
    needs_judge = wants_features or (ref is not None and any(x.judge_reference for x in needs))
    judge_net = resolve_judge(judge, net, device=net.device) if needs_judge or judge is not None else None
    settings = dict(
        seed=seed, render=render, top=top, pairs=pairs, per_source=per_source, robust=robust, transfer=transfer
    )
    ctx = Context(
        images=images.detach().float().cpu().clamp(0, 1),
        objective=objective,
        unit=unit,
        net=net,
        judge_net=judge_net,
        ref=ref,
        stats_model=None,
        stats_judge=None,
        controls={},
        control_key=ref.fingerprint() if ref is not None else None,
        feats=None,
        center=torch.zeros(1),
        settings=settings,
        out={
            "reference": "none",
            "judge": judge_net.name if judge_net is not None else None,
            "model": net.name,
            "target": str(objective),
            "images": n,
            "measures": wanted,
            "reference_cache": None,
        },
        memo=_CONTROL_MEMO,
    )
    for m in wanted:  # what a measure loads or checks before any pass (transfer's networks)
        prepare = MEASURES[m].obj.prepare
        if prepare is not None:
            ctx.state[m] = prepare(ctx)
    _reference_passes(ctx, any(x.reference for x in needs), needs_judge, side, batch, progress, use_cache, cache_folder)
    ctx.controls = _controls(ctx.images, ref, ctx.stats_model, unit, seed)
    if len(_CONTROL_MEMO) > 4096:
        _CONTROL_MEMO.clear()
    if judge_net is not None and wants_features:
        ctx.feats = _judge_features(ctx, side)
    if ctx.stats_judge is not None:
        ctx.center = torch.nanmean(ctx.stats_judge.mean.float(), 0)
    scored: list[M.Scored] = []
    for m in wanted:
        scored.extend(_declared(m, MEASURES[m].obj.compute(ctx)))
    out = ctx.out
    per_image: dict = {"unit": image_labels(objective, n)}
    for s in scored:
        out.update(s.flat(seed))
        per_image[s.name] = [float(v) for v in s.per_image]
        per_image[f"{s.name}_lo"], per_image[f"{s.name}_hi"] = s.per_image_intervals()
        per_image[f"{s.name}_informative"] = s.per_image_informative()
        for c in M.CONTROLS:
            if c in s.controls and len(s.controls[c]) == len(s.per_image):
                per_image[f"{s.name}_{c}"] = [float(v) for v in s.controls[c]]
        per_image.update(s.per_image_extra)
    for m, reason in absent.items():
        out[f"{m}_absent"] = reason
    out["per_image"] = per_image
    return out


def _declared(name: str, scored: list[M.Scored]) -> list[M.Scored]:
    """A measure's results as its registration declares them: only its outputs, each with its declared
    better side and baselines (the registry, not each compute, says what counts as informative)."""
    declared = {o.name: o for o in outputs_of(name)}
    for s in scored:
        if not isinstance(s, M.Scored) or s.name not in declared:
            raise FvoptError(
                f"measure {name} returned {getattr(s, 'name', type(s).__name__)!r}; it declares {', '.join(declared)}"
            )
        s.higher_is_better = declared[s.name].better >= 0
        s.baselines = declared[s.name].baselines
    return scored


def _reference_passes(ctx: Context, for_model: bool, for_judge: bool, side, batch, progress, use_cache, folder) -> None:
    """The reference set's activations of the unit's layer (measures that need a reference) and of the
    judge's features (measures that need the judge), each from its cache when it has one."""
    ref, hows = ctx.ref, []
    if ref is None:
        return
    kwargs = dict(side=side, batch=batch, progress=progress, use_cache=use_cache, cache_folder=folder)
    if for_model:
        ctx.stats_model = reference_pass(ctx.net, ref, [ctx.unit.layer], **kwargs)[ctx.unit.layer]
        hows.append(ctx.stats_model.how)
    if ctx.judge_net is not None and for_judge:
        ctx.stats_judge = reference_pass(ctx.judge_net, ref, [FEATURES], **kwargs)[FEATURES]
        hows.append(ctx.stats_judge.how)
    ctx.out["reference"] = ref.describe()
    ctx.out["reference_cache"] = "computed" if "computed" in hows else ("cache" if hows else None)


def _judge_features(ctx: Context, side: int | None) -> dict[str, torch.Tensor]:
    """The judge's penultimate features of the images and of each control (a control's once per process)."""
    images, unit, n = ctx.images, ctx.unit, ctx.n
    jside = ctx.stats_judge.side if ctx.stats_judge is not None else side
    feats = {"vis": penultimate(ctx.judge_net, images, side=jside)}
    for c in ctx.controls:
        key = (
            "features",
            ctx.judge_net.name,
            weights_fingerprint(ctx.judge_net),
            c,
            tuple(images.shape),
            jside,
            ctx.seed,
            ctx.control_key,
            tuple(unit.index_of(i) for i in range(n)) if unit is not None and c == "refimage" else None,
        )
        if key not in _CONTROL_MEMO:
            _CONTROL_MEMO[key] = penultimate(ctx.judge_net, ctx.controls[c], side=jside)
        feats[c] = _CONTROL_MEMO[key]
    return feats


def refuse_reference_for_channels(reference, channels: int, model_name: str) -> None:
    """Refuse a reference set for images of other than 3 channels, before any pass: the reference photos
    are RGB and the judges ImageNet networks, so no reference measure can be computed for such images,
    and dropping the reference the user gave without a word would be a silent wrong answer. `none`
    asks for no reference, so it passes."""
    if not no_reference(reference) and channels != 3:
        raise FvoptError(
            f"reference {reference}: the reference photos are RGB and {model_name} takes {channels} "
            f"channel{'s' if channels != 1 else ''}, so no reference measure applies; drop the reference "
            "(the spectral slope, which needs none, is still computed)"
        )


def upgrade_quality(quality: "dict | None") -> "dict | None":
    """A stored quality record (a trace's `quality`, a database's `quality` column) in today's names.

    Older records have `natural_ratio_robust` (the robust activation: now
    `robust_activation`) and a `natural_ratio` that divided by the maximum, with an interval that
    started at the estimate (see measures.py): their `natural_ratio` becomes `natural_ratio_max` (a
    point value, its interval, controls and flag dropped), and their `natural_ratio_p99` becomes
    `natural_ratio` (a point value: no interval or controls were stored for it). Today's records pass
    unchanged."""
    if not isinstance(quality, dict):
        return quality
    q = dict(quality)
    if "natural_ratio_robust" in q:
        q["robust_activation"] = q.pop("natural_ratio_robust")
    if "natural_ratio" not in q or "natural_ratio_of" in q:
        return q
    old = [k for k in q if k == "natural_ratio" or (k.startswith("natural_ratio_") and k != "natural_ratio_note")]
    values = {k: q.pop(k) for k in old}
    q["natural_ratio_max"] = values.get("natural_ratio")
    q["natural_ratio"] = values.get("natural_ratio_p99")
    q["natural_ratio_of"] = f"{NATURAL_RATIO_OF} (a record from before issue 26: no interval or controls)"
    if isinstance(q.get("per_image"), dict):
        per = dict(q["per_image"])
        gone = {k: per.pop(k) for k in list(per) if k == "natural_ratio" or k.startswith("natural_ratio_")}
        if "natural_ratio" in gone:
            per["natural_ratio_max"] = gone["natural_ratio"]
        q["per_image"] = per
    return q


def _controls(
    images: torch.Tensor, ref: ReferenceSet | None, stats: "M.LayerStats | None", unit: Unit | None, seed: int
) -> dict[str, torch.Tensor]:
    """Per image of the batch: a uniform gray image, a uniform-noise image and (with a reference) a
    random reference image that is not among the unit's top or bottom examples, all at the images' size.

    The images share pictures where they can, so that the evaluator scores each picture once
    (fvopt.evaluate reads a repeated picture for every unit): one noise image for the batch, and each
    image's reference picture is the first, in one random order of the reference set, that lies in its
    unit's pool, which is a uniform draw from that pool, as a draw per image would be."""
    n, _, h, w = images.shape
    gen = torch.Generator().manual_seed(CONTROL_SEED + seed)
    noise = torch.rand((1, *images.shape[1:]), generator=gen).repeat(n, 1, 1, 1)
    out = {"gray": torch.full_like(images, 0.5), "noise": noise}
    if ref is not None:
        rng = np.random.default_rng(CONTROL_SEED + seed)
        valid = np.flatnonzero(stats.valid.numpy()) if stats is not None else np.arange(len(ref))
        order = rng.permutation(valid)
        picks = []
        for i in range(n):
            pool = valid
            if stats is not None and unit is not None:
                acts = stats.unit(unit.index_of(i)).numpy()
                ranked = np.argsort(acts[valid])
                k = max(1, len(valid) // 10)  # away from the unit's top and bottom tenths
                pool = valid[ranked[k:-k]] if len(valid) > 2 * k + 1 else valid
            picks.append(int(order[np.isin(order, pool)][0]))
        ref_images = ref.load(picks, max(h, w))
        out["refimage"] = ref_images[..., :h, :w]
    return out


def viz_settings(reference, judge, measures, model) -> tuple["ReferenceSet | None", "str | list[str] | None"]:
    """What `visualize(reference=, judge=, measures=)` will judge, checked before the model loads:
    (the reference set or None, the measures or None for none). Without a reference, the default is
    `spectral_slope` alone (no network pass, no reference images); with one, every measure that applies."""
    ref = None if no_reference(reference) else reference_set(reference)  # 'none': no reference, as everywhere
    if measures is not None:
        names, _ = parse_measures(measures)
        if not names:
            return ref, None
    if judge is not None:
        from .features import check_judge_name

        model_name = model if isinstance(model, str) else getattr(model, "name", None)
        judge_name = judge if isinstance(judge, str) else getattr(judge, "name", judge)
        if not isinstance(judge_name, str) or not judge_name.strip():
            raise FvoptError(f"judge must be a model name such as 'lite1', not {type(judge).__name__} {judge!r}")
        if isinstance(judge, str):  # an unknown name or a missing file: refused now, not after the run
            check_judge_name(judge, model_name)
        elif judge_name == model_name:
            check_judge_name(judge_name, model_name)
    if measures is None:
        measures = "default" if ref is not None else ["spectral_slope"]
    return ref, measures


def summary_line(row: dict) -> str:
    """One compact line: each measure with its interval, marked '(uninformative)' where a control matched it."""
    parts = []
    for m in summary_order():
        if m not in row or row[m] is None:
            continue
        lo, hi = row.get(f"{m}_lo"), row.get(f"{m}_hi")
        ci = (
            f" [{lo:.2f}, {hi:.2f}]"
            if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi)
            else ""
        )
        flag = " (uninformative)" if row.get(f"{m}_informative") is False else ""
        parts.append(f"{m} {row[m]:.3g}{ci}{flag}")
    judge_name = f"; judge {row['judge']}" if row.get("judge") else ""
    notes = [f"spectral_slope absent: {row['spectral_slope_absent']}"] if row.get("spectral_slope_absent") else []
    notes += [f"natural_ratio NaN: {row['natural_ratio_note']}"] if row.get("natural_ratio_note") else []
    return (
        f"quality (reference: {row.get('reference', 'none')}{judge_name}): "
        + (", ".join(parts) or "no measure")
        + "".join(f"; {note}" for note in notes)
    )
