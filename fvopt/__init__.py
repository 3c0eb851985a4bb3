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


# Imported on first use, not with `import fvopt`: `visualize` loads the quality and image modules, `atlas` pandas
# and the bench store. Each name is the function itself once looked up, so `help(fvopt.visualize)`,
# `inspect.signature` and notebooks' tooltips show its parameters and docstring (a wrapper taking *args, **kwargs
# hid them).
_LAZY = {"visualize": (".viz", "visualize"), "atlas": (".atlases", "atlas"), "atlases": (".atlases", None)}


def __getattr__(name: str):
    """`fvopt.visualize`, `fvopt.atlas` and `fvopt.atlases` (its `table`, `merge`, ...), imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'fvopt' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
