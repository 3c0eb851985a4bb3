"""Your generator as the search space: z is a generator's latent code, the image is its output.

    generator:gen.py:make                  factory `make` in gen.py returns an nn.Module z -> images
    generator:gen.py:make,dim=128,range=2  latent size 128, each value kept in [-2, 2]
    generator:gen.pt2,dim=128              a torch.export program (torch.export.save)
    generator:gen.py:make,output=pm1       the generator draws in [-1, 1] (tanh), mapped to [0, 1]

This is the neuroscience setting of XDream (Xiao & Kreiman 2020) and Wang & Ponce (GECCO 2022):
CMA-ES or a genetic algorithm searches the 4096-d code of a GAN (DeePSiM fc6) instead of pixels.
Its weights are on no registry, so the generator is the user's file. Zero-order strategies search
the code as it is (no reduced form: a latent code is already the low-dimensional space), gradient
methods backpropagate through the generator.

Checked once when built, before any model pass, each refusal in one line: the file exists, the
factory exists, runs and returns an nn.Module (a .pt2 loads with `torch.export.load`); the latent
size is known (`dim=`, or the module's `latent_dim` attribute); two latents give a float tensor
(2, C, H, W) of the run's channels and size, finite and inside the declared output range. A
factory that takes `size` and/or `channels` keywords is given the run's (height, width) and
channel count (and `dim` the latent size given), so one file serves every size.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import torch
from torch import nn

from ..errors import FvoptError, first_line
from ..config.options import Option
from .base import Parameterization
from .registry import register_param

OUTPUTS = ("01", "pm1")  # the generator's own range: [0, 1], or [-1, 1] (tanh GANs), mapped to [0, 1]
_RANGE_SLACK = 1e-4  # float rounding at the bounds of a sigmoid or tanh


def _hw(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def load_generator(source: str, size, channels: int, dim: int | None = None) -> tuple[nn.Module, str]:
    """The module a `file.py:factory` or `file.pt2` source names, and a short label for names."""
    if not isinstance(source, str) or not source.strip():
        raise FvoptError("generator needs a source: generator:FILE.py:FACTORY or generator:FILE.pt2")
    source = source.strip()
    if source.endswith(".pt2"):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FvoptError(
                f"generator file '{path}' does not exist: give a torch.export .pt2 file or FILE.py:FACTORY"
            )
        try:
            program = torch.export.load(str(path))
            return program.module(), source
        except Exception as err:  # noqa: BLE001 - any failure to load is the file's, said in one line
            raise FvoptError(
                f"cannot load exported generator '{path}': {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}"
            ) from err
    file, colon, factory = source.rpartition(":")
    if not colon or not file.endswith(".py") or not factory.isidentifier():
        raise FvoptError(
            f"parameterization generator option source={source!r} is not allowed: must be FILE.py:FACTORY "
            "(a function returning an nn.Module) or FILE.pt2 (torch.export)"
        )
    path = Path(file).expanduser()
    if not path.is_file():
        raise FvoptError(f"generator file '{path}' does not exist (from generator:{source})")
    name = f"fvopt_generator_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001
        sys.modules.pop(name, None)
        raise FvoptError(f"generator file '{path}' raised {type(err).__name__} on import: {first_line(err)}") from err
    make = getattr(module, factory, None)
    if not callable(make):
        found = [
            n
            for n, v in vars(module).items()
            if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == name
        ]
        raise FvoptError(
            f"generator file '{path}' has no function '{factory}'{': it defines ' + ', '.join(found) if found else ''}"
        )
    kwargs = {}
    params = inspect.signature(make).parameters
    if "size" in params:
        kwargs["size"] = _hw(size)
    if "channels" in params:
        kwargs["channels"] = channels
    if "dim" in params and dim is not None:
        kwargs["dim"] = dim
    try:
        net = make(**kwargs)
    except Exception as err:  # noqa: BLE001
        raise FvoptError(
            f"generator factory {path.name}:{factory} raised {type(err).__name__}: {first_line(err)}"
        ) from err
    if not isinstance(net, nn.Module):
        raise FvoptError(
            f"generator factory {path.name}:{factory} returned {type(net).__name__}, not a torch.nn.Module"
        )
    return net, source


class GeneratorParam(Parameterization):
    """z (n, dim) -> generator(z) -> images (n, C, H, W) in [0, 1].

    `bound` keeps each latent value in [-bound, bound]: rendering clamps (passing the gradient
    inside the box, as `raw:clip=true` does) and `project_` clips after first-order updates, so
    every strategy searches the same box. Latents start N(0, sd^2), clipped to the box.
    """

    def __init__(
        self,
        net: nn.Module,
        label: str,
        size,
        dim: int,
        channels: int = 3,
        bound: float | None = None,
        output: str = "01",
        sd: float = 1.0,
    ) -> None:
        super().__init__()
        try:
            net.eval()  # BatchNorm and dropout in inference mode
        except NotImplementedError:  # an exported program's module has no train/eval switch: it is traced as it was
            pass
        self.net = net
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.size = size
        self.channels = channels
        self.color_source = "generator"
        self.dim = int(dim)
        self.bound = bound
        self.output = output
        self.sd = sd
        self.register_buffer("anchor", torch.zeros(()))  # where the generator lives (`device`)
        options = (
            [f"dim={self.dim}"]
            + ([f"range={bound:g}"] if bound is not None else [])
            + ([f"output={output}"] if output != "01" else [])
        )
        self.name = f"generator:{label}," + ",".join(options)

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn((n, self.dim), generator=generator) * self.sd
        return (z if self.bound is None else z.clamp(-self.bound, self.bound)).to(self.device)

    def _latent(self, z: torch.Tensor) -> torch.Tensor:
        if self.bound is None:
            return z
        b = self.bound
        return torch.where((z >= -b) & (z <= b), z, z.detach().clamp(-b, b))

    def _raw(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(self._latent(z))
        if not isinstance(out, torch.Tensor):
            raise FvoptError(f"{self.name} returned {type(out).__name__}, not an image tensor (N, C, H, W)")
        return out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self._raw(z).float()
        if self.output == "pm1":
            x = (x + 1) / 2
        return x.clamp(0, 1) if not torch.is_grad_enabled() else torch.where((x >= 0) & (x <= 1), x, x.clamp(0, 1))

    def project_(self, z: torch.Tensor) -> None:
        if self.bound is not None:
            z.clamp_(-self.bound, self.bound)

    def check_output(self) -> None:
        """Run two latents once: an image batch of the right shape, finite, inside the output range."""
        h, w = _hw(self.size)
        z = self.init(2, torch.Generator().manual_seed(0))
        try:
            with torch.no_grad():
                out = self._raw(z)
        except FvoptError:
            raise
        except Exception as err:  # noqa: BLE001
            raise FvoptError(
                f"{self.name} failed on a latent batch of shape (2, {self.dim}): "
                f"{type(err).__name__}: {first_line(err)}"
            ) from err
        want = (2, self.channels, h, w)
        if out.dim() != 4 or tuple(out.shape) != want or not out.is_floating_point():
            raise FvoptError(
                f"{self.name} returned {out.dtype} {tuple(out.shape)} for 2 latents; an image batch "
                f"{want} (N, C, H, W) is needed: the run's {self.channels} channels at {h}x{w} px"
            )
        low, high = (0.0, 1.0) if self.output == "01" else (-1.0, 1.0)
        if not torch.isfinite(out).all():
            raise FvoptError(f"{self.name} returned values that are not finite")
        lo, hi = float(out.min()), float(out.max())
        if lo < low - _RANGE_SLACK or hi > high + _RANGE_SLACK:
            fits_pm1 = self.output == "01" and lo >= -1 - _RANGE_SLACK and hi <= 1 + _RANGE_SLACK
            hint = "; say output=pm1 if it draws in [-1, 1]" if fits_pm1 else ""
            raise FvoptError(
                f"{self.name} returned values in [{lo:.3g}, {hi:.3g}], outside its declared range "
                f"[{low:g}, {high:g}]: end it with a sigmoid (or a tanh with output=pm1){hint}"
            )


def make_generator(
    source: str,
    size,
    dim: int | None = None,
    range: float | None = None,
    output: str = "01",
    sd: float = 1.0,
    channels: int = 3,
) -> GeneratorParam:
    """A checked GeneratorParam from a source string (see the module docstring)."""
    net, label = load_generator(source, size, channels, dim)
    dim = dim if dim is not None else getattr(net, "latent_dim", None)
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise FvoptError(
            f"generator {label}: its latent size is unknown; give it as generator:{source},dim=N "
            "(or set a `latent_dim` attribute on the module)"
        )
    param = GeneratorParam(net, label, size, dim, channels, range, output, sd)
    param.check_output()
    return param


_EXAMPLE = Path(__file__).with_name("example_generator.py")


@register_param(
    "generator",
    "a generator's latent code: generator:FILE.py:FACTORY[,dim=N,range=R,output=01|pm1] "
    "or generator:FILE.pt2 (XDream / Wang & Ponce's search space)",
    {
        "source": Option(str, help="FILE.py:FACTORY or FILE.pt2 (also given first, without source=)"),
        "dim": Option(int, low=1, help="latent size (default: the module's latent_dim)"),
        "range": Option(float, low=0, low_open=True, help="keep each latent value in [-R, R]"),
        "output": Option(str, choices=OUTPUTS, help="the generator's range: 01 = [0,1], pm1 = [-1,1]"),
        "sd": Option(float, low=0, low_open=True, help="sd of the normal latent start"),
    },
    (
        f"generator:{_EXAMPLE}:make",
        f"generator:{_EXAMPLE}:make,dim=8,range=2",
        f"generator:{_EXAMPLE}:make_tanh,output=pm1",
    ),
)
def _build_generator(size, source: str | None = None, *, channels: int = 3, color=None, **options) -> GeneratorParam:
    if source is None:
        raise FvoptError("generator needs a source: generator:FILE.py:FACTORY or generator:FILE.pt2")
    if color is not None:
        raise FvoptError("a generator draws its own colors: a decorrelation basis does not apply to it")
    return make_generator(source, size, channels=channels, **options)
