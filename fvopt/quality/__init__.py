"""Quality of a visualization as measured quantities: reference images, dataset examples, measures.

Layers (each module one job, pointing down): reference (images from a folder or the built-in
stand-in) -> cache (on-disk activations keyed by what made them) -> activations (one streamed pass,
per-image summaries) -> features (the judge network), spectrum, stats, units -> measures
(definitions) -> registry (the measures by name: needs, outputs, controls) -> builtin_measures (fvopt's
six) -> score (`judge`, the one entry point, a loop over the registry) and examples (dataset examples).

    from fvopt.quality import judge
    row = judge(images, "channel:blocks.4:10", "lite0", reference="builtin")
    row["reference"], row["mis"], row["mis_lo"], row["mis_hi"], row["mis_informative"]
"""

from .activations import FEATURES, LayerStats, reference_pass
from .cache import CacheError, cache_dir
from .features import default_judge, penultimate, resolve_judge
from .measures import CONTROLS
from .reference import BUILTIN, BuiltinReference, FolderReference, ReferenceSet, reference_set
from .registry import MEASURES, Needs, Output, register_measure
from .score import judge, parse_measures, plan, upgrade_quality
from .spectrum import spectral_slopes

__all__ = [
    "BUILTIN",
    "BuiltinReference",
    "CONTROLS",
    "CacheError",
    "FEATURES",
    "FolderReference",
    "LayerStats",
    "MEASURES",
    "Needs",
    "Output",
    "ReferenceSet",
    "cache_dir",
    "default_judge",
    "judge",
    "parse_measures",
    "penultimate",
    "plan",
    "reference_pass",
    "reference_set",
    "register_measure",
    "resolve_judge",
    "spectral_slopes",
    "upgrade_quality",
]
