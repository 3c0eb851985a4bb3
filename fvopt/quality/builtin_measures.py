"""fvopt's six quality measures, registered (the definitions and sources are in measures.py).

Each is a `compute(context)` over what `judge` prepared (fvopt.quality.registry.Context): the
images, the unit, the networks, the reference passes and the controls. The controls are the same
for every image of a unit, so their scores are kept for the process (`context.memo`): a bench
judges many cells of one unit.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import FvoptError
from ..models import FeatureModel, load_model
from . import measures as M
from .cache import weights_fingerprint
from .reference import ReferenceSet
from .registry import Context, Needs, Output, register_measure
from .spectrum import spectral_slopes, too_small_for_a_slope
from .stats import bootstrap, spread_select
from .units import Unit

NATURAL_RATIO_OF = "99th percentile"  # the denominator of natural_ratio: robust to one outlier
DEFAULT_TRANSFER = ("lite0", "lite1")


@register_measure(
    "natural_ratio",
    "the unit's robust activation over its 99th percentile on the reference images (Ponce et al. 2019)",
    Needs(unit=True, reference=True),
    (Output("natural_ratio", means=("", "_beats_controls")),),
)
def natural_ratio(ctx: Context) -> list[M.Scored]:
    from ..evaluate import score_images

    net, unit, images, controls, stats = ctx.net, ctx.unit, ctx.images, ctx.controls, ctx.stats_model
    render, seed, robust = ctx.settings["render"], ctx.seed, ctx.settings["robust"]
    n = images.shape[0]
    units = tuple(unit.index_of(i) for i in range(n))
    obj = Unit(unit.kind, unit.layer, units).objective(n)
    if robust is not None:
        given = np.asarray(robust.tolist() if isinstance(robust, torch.Tensor) else robust, dtype=float)
        if given.shape != (n,):
            raise FvoptError(f"robust must hold one value per image ({n}), not {given.shape}")
        parts = [given]
    else:
        parts = [score_images(net, obj, images, render=render)["robust_value"].numpy()]
    for c in controls:  # the same for every image of the same unit: scored once per process (a bench has many cells)
        key = (
            "robust",
            net.name,
            weights_fingerprint(net),
            unit.kind,
            unit.layer,
            units,
            c,
            tuple(images.shape),
            render,
            seed,
            ctx.control_key,
        )
        if key not in ctx.memo:
            ctx.memo[key] = score_images(net, obj, controls[c], render=render)["robust_value"].numpy()
        parts.append(ctx.memo[key])
    robust = np.concatenate(parts)
    values, maxes, reps = [], [], []
    ctrl = {c: [] for c in controls}
    notes = []
    for i in range(n):
        acts = stats.unit(unit.index_of(i)).numpy()
        try:
            v, p, r = M.natural_ratio(float(robust[i]), acts, seed + i)
        except FvoptError as err:  # known only after the pass: no number that means nothing, a reason instead
            notes.append(f"{unit.label(i)}: {err}")
            values.append(float("nan")), maxes.append(float("nan")), reps.append(np.array([]))
            for c in ctrl:
                ctrl[c].append(float("nan"))
            continue
        values.append(v), maxes.append(p), reps.append(r)
        for k, c in enumerate(controls):
            ctrl[c].append(M.natural_ratio(float(robust[n * (k + 1) + i]), acts, seed, replicates=False)[0])
    extra = {
        "natural_ratio_of": NATURAL_RATIO_OF,
        "natural_ratio_max": float(np.nanmean(maxes)) if np.isfinite(maxes).any() else float("nan"),
        "robust_activation": float(robust[:n].mean()),
    }
    if notes:
        extra["natural_ratio_note"] = "; ".join(notes)
    per_image = {"natural_ratio_max": [float(v) for v in maxes], "robust_activation": robust[:n].tolist()}
    return [M.Scored("natural_ratio", values, reps, ctrl, extra=extra, per_image_extra=per_image)]


def _unit_lists(
    unit: Unit, i: int, stats, ref: ReferenceSet, k: int, per_source: int, split: bool = False
) -> tuple[list[int], list[int]]:
    """The unit's top-k and bottom-k reference images; the bottom list never repeats the top one, and
    with `split` (mis: pairs of a top and a bottom image) a small set gives each list half its images."""
    acts = stats.unit(unit.index_of(i)).numpy()
    if split:
        k = min(k, int(np.isfinite(acts).sum()) // 2)
        if k < 1:
            return [], []
    tops = spread_select(acts, ref.sources, k, per_source, largest=True, same=ref.near_copies)
    return tops, spread_select(acts, ref.sources, k, per_source, largest=False, same=ref.near_copies, exclude=tops)


@register_measure(
    "plausibility",
    "centered cosine of the judge's features with the unit's top reference images (MaCo, Fel et al. 2023)",
    Needs(unit=True, reference=True, judge_features=True),
    (Output("plausibility", means=("", "_beats_controls")),),
)
def plausibility(ctx: Context) -> list[M.Scored]:
    unit, feats, stats, stats_judge, ref = ctx.unit, ctx.feats, ctx.stats_model, ctx.stats_judge, ctx.ref
    top, per_source, seed = ctx.settings["top"], ctx.settings["per_source"], ctx.seed
    n = feats["vis"].shape[0]
    ref_feats = stats_judge.mean
    values, reps, ctrl = [], [], {c: [] for c in feats if c != "vis"}
    against = "top"
    for i in range(n):
        idx = None
        if unit.kind == "class" and ref.labels is not None:
            idx = [j for j, lab in enumerate(ref.labels) if lab == unit.index_of(i) and bool(stats_judge.valid[j])]
            against = "class folder" if idx else against
        if not idx:
            idx = _unit_lists(unit, i, stats, ref, top, per_source)[0]
        sims = {c: M.centered_cosine(f[i : i + 1], ref_feats[idx], ctx.center)[0].numpy() for c, f in feats.items()}
        v, r = M.similarity_to_set(sims["vis"], seed + i)
        values.append(v), reps.append(r)
        for c in ctrl:
            ctrl[c].append(float(sims[c].mean()))
    ctx.out["plausibility_against"] = (
        "the class's images in the labelled folder"
        if against == "class folder"
        else f"the unit's top-{top} reference images (at most {per_source} per source)"
    )
    return [M.Scored("plausibility", values, reps, ctrl)]


@register_measure(
    "mis",
    "a machine two-alternative choice between the unit's top and bottom reference images (after Zimmermann 2024)",
    Needs(unit=True, reference=True, judge_features=True),
    (Output("mis", means=("", "_beats_controls")),),
)
def mis(ctx: Context) -> list[M.Scored]:
    unit, feats, stats, stats_judge, ref = ctx.unit, ctx.feats, ctx.stats_model, ctx.stats_judge, ctx.ref
    pairs, per_source, seed = ctx.settings["pairs"], ctx.settings["per_source"], ctx.seed
    n = feats["vis"].shape[0]
    ref_feats = stats_judge.mean
    values, reps, ctrl = [], [], {c: [] for c in feats if c != "vis"}
    sizes = []
    for i in range(n):
        tops, bottoms = _unit_lists(unit, i, stats, ref, pairs, per_source, split=True)
        if not tops or not bottoms:
            raise FvoptError("mis needs top and bottom reference images for the unit; the reference set has too few")
        sizes.append(len(tops) * len(bottoms))
        for c, f in feats.items():
            st = M.centered_cosine(f[i : i + 1], ref_feats[tops], ctx.center)[0].numpy()
            sb = M.centered_cosine(f[i : i + 1], ref_feats[bottoms], ctx.center)[0].numpy()
            v, r = M.two_choice(st, sb, seed + i)
            if c == "vis":
                values.append(v), reps.append(r)
            else:
                ctrl[c].append(v)
    ctx.out["mis_pairs"] = int(min(sizes))
    return [M.Scored("mis", values, reps, ctrl)]


def transfer_nets(ctx: Context) -> list[FeatureModel]:
    """The networks transfer is measured on (judge's `transfer`; default lite0 and lite1 without the
    optimized one), refused before any pass when one is the optimized model or not a model name."""
    transfer, net = ctx.settings["transfer"], ctx.net
    names = list(DEFAULT_TRANSFER) if transfer is None else transfer
    if isinstance(names, str):
        names = [t.strip() for t in names.split(",") if t.strip()]
    if not isinstance(names, (list, tuple)) or not all(isinstance(t, (str, FeatureModel)) for t in names):
        raise FvoptError(f"transfer must be a list of model names, not {transfer!r}")
    if transfer is not None:
        same = [t for t in names if (t if isinstance(t, str) else t.name) == net.name]
        if same:
            raise FvoptError(
                f"transfer network {net.name} is the optimized model: transfer is measured on other networks"
            )
    names = [t for t in names if (t if isinstance(t, str) else t.name) != net.name]
    if not names:
        raise FvoptError("transfer needs at least one network other than the optimized one")
    return [t if isinstance(t, FeatureModel) else load_model(t, device=net.device) for t in names]


@register_measure(
    "transfer",
    "the target class's probability under other networks (MaCo's transferability; default lite0 and lite1)",
    Needs(unit=True, class_target=True),
    prepare=transfer_nets,
)
def transfer(ctx: Context) -> list[M.Scored]:
    from ..evaluate import target_class_probability

    unit, images, controls, seed = ctx.unit, ctx.images, ctx.controls, ctx.seed
    n = images.shape[0]
    classes = [unit.index_of(i) for i in range(n)]
    mean, ctrl = [], {c: [] for c in controls}
    for net in ctx.state["transfer"]:
        p, rank = target_class_probability(net, images, classes)
        mean.append(p)
        ctx.out[f"transfer_prob_{net.name}"] = float(p.mean())
        ctx.out[f"transfer_rank_{net.name}"] = float(rank.float().mean())
        for c in controls:  # the same for every image of a class: once per process
            key = ("transfer", net.name, weights_fingerprint(net), tuple(classes), c, tuple(images.shape), seed)
            key = (*key, ctx.control_key)
            if key not in ctx.memo:
                ctx.memo[key] = target_class_probability(net, controls[c], classes)[0]
            ctrl[c].append(ctx.memo[key])
    values = torch.stack(mean).mean(0)
    controls_mean = {c: torch.stack(v).mean(0).tolist() for c, v in ctrl.items()}
    ctx.out["transfer_networks"] = [net.name for net in ctx.state["transfer"]]
    return [M.Scored("transfer", values.tolist(), [None] * n if n > 1 else [], controls_mean)]


def _slope_applies(facts) -> str:
    return too_small_for_a_slope(*facts.size) if facts.size is not None else ""


@register_measure(
    "spectral_slope",
    "the exponent of the images' power spectrum (natural images near -2), and its distance from the reference's",
    Needs(rgb=False, judge_reference=True, applies=_slope_applies),
    (
        Output("spectral_slope", better=0, baselines=()),
        Output("spectral_distance", better=-1, baselines=("gray", "noise")),
    ),
)
def spectral_slope(ctx: Context) -> list[M.Scored]:
    images, controls, stats_judge, seed = ctx.images, ctx.controls, ctx.stats_judge, ctx.seed
    n = images.shape[0]
    slopes = spectral_slopes(torch.cat([images] + [controls[c] for c in controls])).numpy()
    ctrl = {c: slopes[n * (k + 1) : n * (k + 2)].tolist() for k, c in enumerate(controls)}
    result = [M.Scored("spectral_slope", slopes[:n].tolist(), [None] * n if n > 1 else [], ctrl, baselines=())]
    if stats_judge is not None and stats_judge.slopes is not None:
        ref = stats_judge.slopes.numpy()
        ref = ref[np.isfinite(ref)]
        median = float(np.median(ref))
        ctx.out["reference_slope"] = median
        dist = np.abs(slopes - median)
        medians = bootstrap(lambda idx: np.median(ref[idx], axis=1), [ref.size], seed=seed)
        reps = [np.abs(slopes[i] - medians) for i in range(n)]
        dctrl = {c: dist[n * (k + 1) : n * (k + 2)].tolist() for k, c in enumerate(controls)}
        result.append(
            M.Scored(
                "spectral_distance", dist[:n].tolist(), reps, dctrl, higher_is_better=False, baselines=("gray", "noise")
            )
        )
    return result


@register_measure(
    "diversity",
    "the mean pairwise dissimilarity (1 - cos) of the batch's judge features (2 or more images)",
    Needs(batch=2, judge_features=True),
    (Output("diversity", baselines=("gray", "noise"), means=()),),
)
def diversity(ctx: Context) -> list[M.Scored]:
    feats, seed = ctx.feats, ctx.seed
    center = ctx.center if ctx.stats_judge is not None else torch.zeros(1)
    v, reps = M.pairwise_dissimilarity(feats["vis"], center, seed)
    ctrl = {c: [M.pairwise_dissimilarity(f, center, seed)[0]] for c, f in feats.items() if c != "vis"}
    return [M.Scored("diversity", [v], [reps], ctrl, baselines=("gray", "noise"))]
