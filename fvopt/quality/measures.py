"""The quality measures: definitions, sources, and how each is computed for one batch of images.

Each measure returns, per image, its value and bootstrap replicates (for the interval); the same
function scores the three controls (uniform gray, uniform noise, a random reference image) for the
same unit, so a measure that a trivial image matches is seen to mean nothing for that unit.

- natural_ratio (after Ponce et al., Cell 2019; XDream, Xiao & Kreiman 2020): the image's robust
  activation of the unit (mean over the common evaluator's fixed transform draws; `robust_activation`)
  divided by the unit's 99th percentile over the reference images. 1 means "as strong as the top 1%
  of natural images seen". Interval: bootstrap over reference images. `natural_ratio_max` divides
  by the maximum instead (Ponce's normalization), a point value without interval: the bootstrap
  cannot bound a maximum (a resample's maximum is never above the sample's, so every replicate's
  ratio is at or above the estimate, and its percentile interval starts at the estimate and leans
  the wrong way: a larger set could only raise the maximum and lower the ratio). A percentile is a
  smooth statistic of the set, which the bootstrap does bound, with the estimate inside. Records
  written before this change (their `natural_ratio` was the ratio to the maximum, without a
  `natural_ratio_of` key) are read by `upgrade_quality` (score.py).
- plausibility (MaCo, Fel et al., NeurIPS 2023): cosine similarity, in the judge network's
  penultimate features, between the image and the unit's top-k reference images (for a class
  target with a labelled folder, that class's images), averaged. Differs from MaCo: features are
  centered on the reference set's mean feature (post-activation features share a large positive
  offset that makes every cosine high), and the judge is another network. Interval: bootstrap
  over those reference images.
- mis: a machine two-alternative forced choice after the Machine Interpretability Score
  (Zimmermann, Klindt & Brendel, NeurIPS 2024): for every pair (one of the unit's top reference
  images, one of its bottom ones, each list spread over sources), the judge picks the member whose
  features are closer (cosine) to the visualization's; the score is the fraction picked right
  (0.5 is chance). Differs from MIS: the judge's penultimate features replace DreamSim, one
  visualization replaces MIS's sets of positive and negative explanations, the decision is hard
  (no calibrated sigmoid), and the queries are the user's reference images. Interval: bootstrap
  over the top and the bottom images (pairs share images, so pairs are not resampled).
- transfer (MaCo's transferability): for class targets, the class's probability and rank (1 =
  top) under other networks (lite0 and lite1 by default, without the optimized one); the value is
  the mean probability over those networks. Interval: bootstrap over the batch's images.
- spectral_slope: the exponent of the radially averaged power spectrum (see spectrum.py; natural
  images near -2, white noise near 0), and `spectral_distance`, its distance from the median slope
  of the reference images (lower is better). Interval: bootstrap over reference images.
- diversity: for a batch of 2 or more images, the mean pairwise cosine dissimilarity (1 - cos) of
  their centered judge features. Interval: bootstrap over the batch's images.

Informative: for the unit measures (natural_ratio, plausibility, mis, transfer), a measure is
informative for a unit only when the lower end of its interval is above every control. For
spectral_distance and diversity, which do not depend on the unit and which a natural image is
*meant* to reach, only gray and noise count as baselines to beat (the random reference image is
reported beside them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import FvoptError
from .stats import bootstrap, percentile_ci

CONTROLS = ("gray", "noise", "refimage")  # the measures themselves are registered: fvopt.quality.registry


@dataclass
class Scored:
    """One measure for a batch: per-image values, the batch value with its interval, and the controls."""

    name: str
    per_image: list[float]
    replicates: list[np.ndarray]  # per image
    controls: dict[str, list[float]] = field(default_factory=dict)  # control -> per image
    higher_is_better: bool = True
    baselines: tuple[str, ...] = CONTROLS  # the controls a value must beat to be informative
    extra: dict = field(default_factory=dict)  # other flat fields (e.g. natural_ratio_max)
    per_image_extra: dict = field(default_factory=dict)  # other per-image lists (e.g. natural_ratio_max)

    def flat(self, seed: int = 0) -> dict:
        v = np.asarray(self.per_image, dtype=float)
        value = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        lo, hi = self._interval(seed)
        out = {self.name: value, f"{self.name}_lo": lo, f"{self.name}_hi": hi}
        for c in CONTROLS:
            cv = np.asarray(self.controls.get(c, []), dtype=float)
            out[f"{self.name}_{c}"] = float(np.nanmean(cv)) if cv.size and np.isfinite(cv).any() else None
        out[f"{self.name}_informative"] = self._informative(value, lo, hi, out)
        out.update(self.extra)
        return out

    def _interval(self, seed: int) -> tuple[float, float]:
        reps = [np.asarray(r, dtype=float) for r in self.replicates if r is not None and np.size(r)]
        n = len(self.per_image)
        if n == 1:
            return percentile_ci(reps[0]) if reps else (float("nan"), float("nan"))
        # several images (units or seeds): resample the images, and each image's own replicates
        rng = np.random.default_rng(seed)
        table = self._replicate_table(n)
        if not np.isfinite(table).any():  # no image has this measure (e.g. a unit that never fired)
            return float("nan"), float("nan")
        cols = table.shape[1]
        with warnings.catch_warnings():  # a resample of only NaN entries is NaN, and percentile_ci drops it
            warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
            draws = [np.nanmean(table[rng.integers(0, n, n), rng.integers(0, cols)]) for _ in range(1000)]
        return percentile_ci(np.asarray(draws))

    def _replicate_table(self, n: int) -> np.ndarray:
        """(n, replicates): each image's replicates, a row of NaN for an image without any (a unit whose
        measure is NaN), so that the batch interval still resamples the reference images of the others;
        (n, 1) of the values when no image has replicates (the images are the only thing resampled)."""
        rows = [np.asarray(r, dtype=float) if r is not None and np.size(r) else None for r in self.replicates]
        sizes = {r.size for r in rows if r is not None}
        if len(rows) != n or len(sizes) != 1:
            return np.asarray(self.per_image, dtype=float)[:, None]
        table = np.full((n, sizes.pop()), np.nan)
        for i, r in enumerate(rows):
            if r is not None:
                table[i] = r
        return table

    def _informative(self, value: float, lo: float, hi: float, out: dict) -> bool | None:
        base = [out[f"{self.name}_{c}"] for c in self.baselines if out.get(f"{self.name}_{c}") is not None]
        if not np.isfinite(value) or not base:
            return None
        if self.higher_is_better:
            edge = lo if np.isfinite(lo) else value
            return bool(edge > max(base))
        edge = hi if np.isfinite(hi) else value
        return bool(edge < min(base))

    def per_image_intervals(self) -> tuple[list[float], list[float]]:
        """(lo, hi) per image from its own replicates (NaN where it has none)."""
        ci = [
            percentile_ci(r) if r is not None and np.size(r) else (float("nan"), float("nan"))
            for r in (self.replicates if len(self.replicates) == len(self.per_image) else [None] * len(self.per_image))
        ]
        return [c[0] for c in ci], [c[1] for c in ci]

    def per_image_informative(self) -> list[bool | None]:
        out = []
        for i, v in enumerate(self.per_image):
            base = [
                self.controls[c][i] for c in self.baselines if c in self.controls and np.isfinite(self.controls[c][i])
            ]
            r = self.replicates[i] if i < len(self.replicates) else None
            lo, hi = percentile_ci(r) if r is not None and np.size(r) else (v, v)
            if not np.isfinite(v) or not base:
                out.append(None)
            elif self.higher_is_better:
                out.append(bool((lo if np.isfinite(lo) else v) > max(base)))
            else:
                out.append(bool((hi if np.isfinite(hi) else v) < min(base)))
        return out


def centered_cosine(a: torch.Tensor, b: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) cosine similarities of features after subtracting `center`."""
    a = torch.nn.functional.normalize(a.float() - center, dim=-1)
    b = torch.nn.functional.normalize(b.float() - center, dim=-1)
    return a @ b.T


PERCENTILE = 0.99  # natural_ratio's denominator: the unit's 99th percentile over the reference images


def natural_ratio(
    robust: float, ref_acts: np.ndarray, seed: int, replicates: bool = True
) -> tuple[float, float, np.ndarray]:
    """(ratio to the 99th percentile, ratio to the max, bootstrap replicates of the first; none without
    `replicates`, for a control's point value) for one image, in float64 (a float32 replicate of the
    estimate itself could land on either side of it)."""
    acts = np.asarray(ref_acts, dtype=np.float64)
    acts = acts[np.isfinite(acts)]
    robust = float(robust)
    top, high = float(acts.max()), float(np.quantile(acts, PERCENTILE))
    if high <= 0:
        raise FvoptError(
            "natural_ratio needs a unit whose 99th percentile of activation over the reference images is "
            f"positive (it is {high:.4g}; the largest is {top:.4g})"
        )

    def ratio(idx: np.ndarray) -> np.ndarray:
        denominator = np.quantile(acts[idx], PERCENTILE, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample whose percentile is not positive: NaN
            return np.where(denominator > 0, robust / denominator, np.nan)

    return robust / high, robust / top, bootstrap(ratio, [acts.size], seed=seed) if replicates else np.array([])


def similarity_to_set(sims: np.ndarray, seed: int) -> tuple[float, np.ndarray]:
    """Mean of similarities to a set of reference images, with replicates over that set."""
    return float(sims.mean()), bootstrap(lambda idx: sims[idx].mean(1), [sims.size], seed=seed)


def two_choice(sim_top: np.ndarray, sim_bottom: np.ndarray, seed: int) -> tuple[float, np.ndarray]:
    """Fraction of (top, bottom) pairs where the top image is the more similar; replicates resample both lists."""
    right = (sim_top[:, None] > sim_bottom[None, :]).astype(float) + 0.5 * (sim_top[:, None] == sim_bottom[None, :])
    reps = bootstrap(
        lambda t, b: right[t[:, :, None], b[:, None, :]].mean((1, 2)), [len(sim_top), len(sim_bottom)], seed=seed
    )
    return float(right.mean()), reps


def pairwise_dissimilarity(features: torch.Tensor, center: torch.Tensor, seed: int) -> tuple[float, np.ndarray]:
    """Mean 1 - cos over distinct pairs of a batch, with replicates resampling the images."""
    sims = centered_cosine(features, features, center).numpy()
    n = sims.shape[0]

    def stat(idx):  # idx: (reps, n)
        s = sims[idx[:, :, None], idx[:, None, :]]
        off = idx[:, :, None] != idx[:, None, :]
        count = off.sum((1, 2))
        return np.where(count > 0, ((1 - s) * off).sum((1, 2)) / np.maximum(count, 1), np.nan)

    return float(stat(np.arange(n)[None])[0]), bootstrap(stat, [n], seed=seed)
