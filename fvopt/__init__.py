"""fvopt: feature visualization as an optimization problem.

value = objective(model(transform(param(z)))); a Strategy improves z through a Problem that
counts every model pass, so optimizers and parameterizations compare fairly.
"""

from .version import __version__  # noqa: E402,F401

from .errors import FvoptError  # noqa: E402
from .models import load_model, wrap  # noqa: E402
from .objectives import parse_target  # noqa: E402
from .params import make_param  # noqa: E402
from .problem import Budget, Problem  # noqa: E402
from .run import run  # noqa: E402
from .strategies import make_strategy  # noqa: E402


def visualize(*args, **kwargs):
    """See fvopt.viz.visualize."""
    from .viz import visualize as _visualize

    return _visualize(*args, **kwargs)


def atlas(*args, **kwargs):
    """See fvopt.atlases.atlas: every channel of some layers under several optimizers, as a site and a DataFrame."""
    from .atlases import atlas as _atlas

    return _atlas(*args, **kwargs)


def __getattr__(name: str):
    """`fvopt.atlases` (its `table`, `merge`, ...) after a plain `import fvopt`, imported on first use (pandas and
    the bench store load only then)."""
    if name == "atlases":
        import importlib

        return importlib.import_module(".atlases", __name__)
    raise AttributeError(f"module 'fvopt' has no attribute {name!r}")


__all__ = [
    "Budget",
    "FvoptError",
    "Problem",
    "load_model",
    "make_param",
    "make_strategy",
    "parse_target",
    "run",
    "visualize",
    "wrap",
    "atlas",
]
