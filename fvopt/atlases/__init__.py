"""`fvopt atlas`: every channel of some layers, visualized by several optimizers, with dataset examples and
quality measures, stored resumably in the bench store and shown as a static, offline site.

Layers, importing only downwards: `plan` (settings, units, batches, shards, cell keys, the site's record)
-> `run` (batches on the bench executors, one store cell per unit) and `site` (static pages)
-> `api` (`atlas`, `merge`, `table`). Above fvopt.bench and fvopt.quality; nothing below imports it.
"""

from .api import atlas, build_site, merge, table

__all__ = ["atlas", "build_site", "merge", "table"]
