"""`judge()`: every quality measure of a batch of final images, with intervals and controls, as one flat dict.

This is the one entry point the viz command, the bench harness and Python users call. It reads
the images, the target (for the unit), the optimized network, a judge network and a reference set;
it never needs the strategy that made the images, so a stored image can be re-judged any time.
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
from .cache import weights_fingerprint
from .features import penultimate, resolve_judge
from .reference import ReferenceSet, check_side, no_reference, reference_set
from .spectrum import spectral_slopes, too_small_for_a_slope
from .stats import bootstrap, spread_select
from .units import Unit, as_objective, image_labels, unit_of

CONTROL_SEED = 7_700_211
NATURAL_RATIO_OF = "99th percentile"  # natural_ratio's denominator (before issue 26: the maximum; see upgrade_quality)
DEFAULT_TRANSFER = ("lite0", "lite1")
_CONTROL_MEMO: dict = {}  # control scores by (network, unit, control, image shape, seed, reference): same every cell


def parse_measures(measures: "str | list[str] | tuple[str, ...] | None") -> tuple[list[str], bool]:
    """(names, explicit): 'default'/None -> every measure that applies (explicit False); 'all' -> every
    measure, each refused if it cannot apply; 'none' -> []; a list or 'a,b' -> those, each refused if
    it cannot apply. An unknown name is refused naming the known ones."""
    if measures is None or measures == "default":
        return list(M.MEASURES), False
    if isinstance(measures, str):
        if measures.strip() == "none":
            return [], True
        if measures.strip() == "all":
            return list(M.MEASURES), True
        names = [m.strip() for m in measures.split(",") if m.strip()]
    elif isinstance(measures, (list, tuple)) and all(isinstance(m, str) for m in measures):
        names = list(measures)
    else:
        raise FvoptError(f"measures must be 'default', 'all', 'none' or a list of names, not {measures!r}")
    from ..errors import suggest

    for m in names:
        if m not in M.MEASURES:
            raise FvoptError(
                f"unknown measure '{m}'.{suggest(m, M.MEASURES)} Known: {', '.join(M.MEASURES)} (or all, none, default)"
            )
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
    default set it is simply absent, with the reason recorded. Images of other than 3 channels (a
    grayscale or multispectral network) get the spectral slope only: every other measure compares
    with RGB reference photos or ImageNet judges, which such images cannot be shown to. Images below
    10 px a side (`size`, (height, width)) have no spectral slope.
    """
    names, explicit = parse_measures(measures)
    unit, why_not = unit_of(target)
    wanted, absent = [], {}
    for m in names:
        reason = ""
        if channels != 3 and m != "spectral_slope":
            reason = (
                f"{m} compares with RGB reference photos and ImageNet judges, and these images have "
                f"{channels} channel{'s' if channels != 1 else ''}"
            )
        elif m in M.UNIT_MEASURES and unit is None:
            reason = why_not
        elif m == "transfer" and unit is not None and unit.kind != "class":
            reason = f"transfer is a class measure and {unit.label(0).rsplit(':', 1)[0]} is a channel target"
        elif m in M.NEEDS_REFERENCE and not has_reference:
            reason = f"{m} needs reference images: give reference=DIR (--reference DIR) or 'builtin'"
        elif m == "diversity" and n_images < 2:
            reason = "diversity needs a batch of 2 or more images"
        elif m == "spectral_slope" and size is not None:
            reason = too_small_for_a_slope(*size)
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
      per_image's, their interval resamples the images.
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
    n = images.shape[0]
    channels = images.shape[1]
    refuse_reference_for_channels(reference, channels, model if isinstance(model, str) else model.name)
    ref = None if no_reference(reference) else reference_set(reference)  # 'none': no reference, as everywhere
    wanted, absent, unit = plan(objective, n, ref is not None, measures, channels=channels, size=images.shape[-2:])
    net = model if isinstance(model, FeatureModel) else load_model(model, device=device)
    check_side(side, net)
    needs_judge = any(m in wanted for m in ("plausibility", "mis", "diversity")) or (
        "spectral_slope" in wanted and ref is not None
    )
    judge_net = resolve_judge(judge, net, device=net.device) if needs_judge or judge is not None else None
    transfer_nets = _transfer_nets(transfer, net) if "transfer" in wanted else []

    images = images.detach().float().cpu().clamp(0, 1)
    out: dict = {
        "reference": "none",
        "judge": judge_net.name if judge_net is not None else None,
        "model": net.name,
        "target": str(objective),
        "images": n,
        "measures": wanted,
        "reference_cache": None,
    }
    stats_model = stats_judge = None
    hows = []
    if ref is not None and any(m in wanted for m in M.NEEDS_REFERENCE):
        stats_model = reference_pass(
            net,
            ref,
            [unit.layer],
            side=side,
            batch=batch,
            progress=progress,
            use_cache=use_cache,
            cache_folder=cache_folder,
        )[unit.layer]
        hows.append(stats_model.how)
    if ref is not None and judge_net is not None and needs_judge:
        stats_judge = reference_pass(
            judge_net,
            ref,
            [FEATURES],
            side=side,
            batch=batch,
            progress=progress,
            use_cache=use_cache,
            cache_folder=cache_folder,
        )[FEATURES]
        hows.append(stats_judge.how)
    if ref is not None:
        out["reference"] = ref.describe()
        out["reference_cache"] = "computed" if "computed" in hows else ("cache" if hows else None)

    controls = _controls(images, ref, stats_model, unit, seed)
    control_key = ref.fingerprint() if ref is not None else None
    if len(_CONTROL_MEMO) > 4096:
        _CONTROL_MEMO.clear()
    scored: list[M.Scored] = []
    labels = image_labels(objective, n)
    if "natural_ratio" in wanted:
        scored.append(_natural_ratio(net, unit, images, controls, stats_model, render, seed, control_key, robust))
    feats = None
    if judge_net is not None and any(m in wanted for m in ("plausibility", "mis", "diversity")):
        jside = stats_judge.side if stats_judge is not None else side
        feats = {"vis": penultimate(judge_net, images, side=jside)}
        for c in controls:
            key = (
                "features",
                judge_net.name,
                weights_fingerprint(judge_net),
                c,
                tuple(images.shape),
                jside,
                seed,
                control_key,
                tuple(unit.index_of(i) for i in range(n)) if unit is not None and c == "refimage" else None,
            )
            if key not in _CONTROL_MEMO:
                _CONTROL_MEMO[key] = penultimate(judge_net, controls[c], side=jside)
            feats[c] = _CONTROL_MEMO[key]
    center = torch.nanmean(stats_judge.mean.float(), 0) if stats_judge is not None else torch.zeros(1)
    if "plausibility" in wanted:
        scored.append(_plausibility(unit, feats, stats_model, stats_judge, ref, center, top, per_source, seed, out))
    if "mis" in wanted:
        scored.append(_mis(unit, feats, stats_model, stats_judge, ref, center, pairs, per_source, seed, out))
    if "transfer" in wanted:
        scored.append(_transfer(unit, images, controls, transfer_nets, out, seed, control_key))
    if "spectral_slope" in wanted:
        scored.extend(_spectral(images, controls, stats_judge, seed, out))
    if "diversity" in wanted:
        scored.append(_diversity(feats, center if stats_judge is not None else torch.zeros(1), seed, out))

    per_image: dict = {"unit": labels}
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

    Records made before issue 26 have `natural_ratio_robust` (the robust activation: now
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


def _transfer_nets(transfer, net: FeatureModel) -> list[FeatureModel]:
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


def _natural_ratio(net, unit: Unit, images, controls, stats, render, seed, control_key, robust=None) -> M.Scored:
    from ..evaluate import score_images

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
            control_key,
        )
        if key not in _CONTROL_MEMO:
            _CONTROL_MEMO[key] = score_images(net, obj, controls[c], render=render)["robust_value"].numpy()
        parts.append(_CONTROL_MEMO[key])
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
    return M.Scored("natural_ratio", values, reps, ctrl, extra=extra, per_image_extra=per_image)


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


def _plausibility(unit, feats, stats, stats_judge, ref, center, top, per_source, seed, out) -> M.Scored:
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
        sims = {c: M.centered_cosine(f[i : i + 1], ref_feats[idx], center)[0].numpy() for c, f in feats.items()}
        v, r = M.similarity_to_set(sims["vis"], seed + i)
        values.append(v), reps.append(r)
        for c in ctrl:
            ctrl[c].append(float(sims[c].mean()))
    out["plausibility_against"] = (
        "the class's images in the labelled folder"
        if against == "class folder"
        else f"the unit's top-{top} reference images (at most {per_source} per source)"
    )
    return M.Scored("plausibility", values, reps, ctrl)


def _mis(unit, feats, stats, stats_judge, ref, center, pairs, per_source, seed, out) -> M.Scored:
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
            st = M.centered_cosine(f[i : i + 1], ref_feats[tops], center)[0].numpy()
            sb = M.centered_cosine(f[i : i + 1], ref_feats[bottoms], center)[0].numpy()
            v, r = M.two_choice(st, sb, seed + i)
            if c == "vis":
                values.append(v), reps.append(r)
            else:
                ctrl[c].append(v)
    out["mis_pairs"] = int(min(sizes))
    return M.Scored("mis", values, reps, ctrl)


def _transfer(unit, images, controls, nets, out, seed, control_key) -> M.Scored:
    from ..evaluate import class_probabilities

    n = images.shape[0]
    cls = torch.tensor([unit.index_of(i) for i in range(n)])

    def probs_of(net, x):
        probs, _ = class_probabilities(net, x)
        return probs[torch.arange(n), cls], probs

    mean, ctrl = [], {c: [] for c in controls}
    for net in nets:
        p, probs = probs_of(net, images)
        rank = (probs > p[:, None]).sum(1) + 1
        mean.append(p)
        out[f"transfer_prob_{net.name}"] = float(p.mean())
        out[f"transfer_rank_{net.name}"] = float(rank.float().mean())
        for c in controls:  # the same for every image of a class: once per process
            key = (
                "transfer",
                net.name,
                weights_fingerprint(net),
                tuple(cls.tolist()),
                c,
                tuple(images.shape),
                seed,
                control_key,
            )
            if key not in _CONTROL_MEMO:
                _CONTROL_MEMO[key] = probs_of(net, controls[c])[0]
            ctrl[c].append(_CONTROL_MEMO[key])
    values = torch.stack(mean).mean(0)
    controls_mean = {c: torch.stack(v).mean(0).tolist() for c, v in ctrl.items()}
    out["transfer_networks"] = [net.name for net in nets]
    return M.Scored("transfer", values.tolist(), [None] * n if n > 1 else [], controls_mean)


def _spectral(images, controls, stats_judge, seed, out) -> list[M.Scored]:
    n = images.shape[0]
    slopes = spectral_slopes(torch.cat([images] + [controls[c] for c in controls])).numpy()
    ctrl = {c: slopes[n * (k + 1) : n * (k + 2)].tolist() for k, c in enumerate(controls)}
    result = [M.Scored("spectral_slope", slopes[:n].tolist(), [None] * n if n > 1 else [], ctrl, baselines=())]
    if stats_judge is not None and stats_judge.slopes is not None:
        ref = stats_judge.slopes.numpy()
        ref = ref[np.isfinite(ref)]
        median = float(np.median(ref))
        out["reference_slope"] = median
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


def _diversity(feats, center, seed, out) -> M.Scored:
    v, reps = M.pairwise_dissimilarity(feats["vis"], center, seed)
    ctrl = {c: [M.pairwise_dissimilarity(f, center, seed)[0]] for c, f in feats.items() if c != "vis"}
    s = M.Scored("diversity", [v], [reps], ctrl, baselines=("gray", "noise"))
    return s


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
    for m in list(M.MEASURES) + ["spectral_distance"]:
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
