"""Opt-in speed settings for the network pass, and the reproducibility switch.

Each is off by default: none has been measured on a GPU by this project yet (benchmarks/gpu.py
prints the ratios where a GPU is present), and bf16 changes the values a little, so a comparison
must say which settings it used (the trace does).

- `bf16`: autocast the network pass to bfloat16 (objective values are read back in float32).
- `channels_last`: NHWC memory format for the network and its input (faster convolutions on
  tensor cores; depthwise convolutions may be slower: measure).
- `cudnn_benchmark`: let cuDNN pick the fastest kernels for the fixed shapes of a run.
- `deterministic`: torch's deterministic algorithms (warn where an op has none, e.g. the
  backward of grid_sample on CUDA). Same seed, same device type: same result. CPU and CUDA
  random generators differ, so a run on one does not reproduce a run on the other.
- `compile`: `torch.compile` of the network's forward (see `CompiledPass`): `default`,
  `reduce-overhead` (CUDA graphs on CUDA; the default mode elsewhere, where there are none) or
  `max-autotune`. The first steps pay the compilation (seconds on a GPU, tens of seconds on a CPU).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import types
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ..errors import FvoptError, first_line

COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def check_compile_mode(value: object) -> str:
    """`value` if it is one of COMPILE_MODES, else a one-line FvoptError naming it and the allowed ones."""
    if not isinstance(value, str) or value not in COMPILE_MODES:
        raise FvoptError(f"compile {value!r} is not allowed: must be one of {', '.join(COMPILE_MODES)}")
    return value


@dataclass(frozen=True)
class Speed:
    bf16: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False
    deterministic: bool = False
    compile: str = "off"

    def __post_init__(self) -> None:
        check_compile_mode(self.compile)

    def apply_globally(self) -> None:
        """Process-wide switches: cuDNN autotuning and deterministic algorithms.

        They outlive the call: only the command line, or code inside `applied()` /
        `fvopt.runtime.scoped.process_state_kept()` (as `visualize`), may call this.
        """
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        if self.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)

    @contextlib.contextmanager
    def applied(self):
        """The switches for the body only: cuDNN autotuning, deterministic mode and cuBLAS's workspace
        variable are restored afterwards (a library call leaves the process as it found it)."""
        from .scoped import process_state_kept

        with process_state_kept():
            self.apply_globally()
            yield self

    def prepare(self, net: torch.nn.Module) -> None:
        if self.channels_last:
            net.to(memory_format=torch.channels_last)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def autocast(self, device: torch.device):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def describe(self) -> dict:
        """The settings as the trace records them: a comparison must say what it ran with."""
        return asdict(self)

    def compile_mode(self, device: torch.device) -> str | None:
        """The torch.compile mode on `device`, or None when off. CUDA graphs exist only on CUDA, so
        `reduce-overhead` elsewhere is the default mode (said here rather than left to torch)."""
        if self.compile == "off":
            return None
        return "default" if self.compile == "reduce-overhead" and device.type != "cuda" else self.compile

    def check_compile(self, device: torch.device) -> None:
        """Refuse, in one line and before any model pass, a compile that cannot work here: without
        this, a missing C++ compiler (CPU) or Triton (CUDA) surfaces as a long error at the first step."""
        if self.compile == "off":
            return
        import torch._dynamo

        what = f"compile {self.compile!r}"
        if not torch._dynamo.is_dynamo_supported():
            raise FvoptError(f"{what}: torch.compile is not supported by this Python/torch; run without --compile")
        if device.type == "cpu":
            if _cpp_compiler() is None:
                raise FvoptError(
                    f"{what}: torch.compile on the CPU needs a C++ compiler (g++ or clang++; set CXX) "
                    "and none was found; run without --compile"
                )
        elif device.type == "cuda":
            from torch.utils._triton import has_triton

            if not has_triton():
                raise FvoptError(
                    f"{what}: torch.compile on CUDA needs Triton (pip install triton), which is "
                    "missing; run without --compile"
                )
        else:
            raise FvoptError(f"{what}: supported on cpu and cuda devices, not {device.type}; run without --compile")


EAGER = Speed()


def _cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU, or None when there is none."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        return get_cpp_compiler()
    except ImportError:  # torch moved its private helper: look for the usual names ourselves
        return next((c for c in (os.environ.get("CXX"), "g++", "clang++") if c and shutil.which(c)), None)
    except Exception:  # noqa: BLE001  (InvalidCxxCompiler: none found or none runs)
        return None


def _own_code(fn: Callable) -> Callable:
    """A copy of `fn` with its own code object. Why: dynamo keeps compiled entries per code object,
    and a shared one (every CompiledPass._forward) would hit the recompile limit after 8 problems
    and then run eagerly, silently."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


class CompiledPass:
    """The network's forward pass compiled once per (model, layers, mode), reading the layers
    through forward hooks that are the same Python objects on every call.

    Why not compile under fvopt's usual capture (`models.hooks.capture`): its hooks are new
    closures each call, and the last one raises to stop the pass early, which dynamo cannot trace.
    Measured with torch 2.14 on a small CNN, depending on the layer: a graph break at the raise, a
    recompile every call, or no graph at all; each time silently, with eager answers. Here the hooks
    only store their output and the compiled function returns them; the layers after the last one
    read are dead code that inductor drops, so the early stop comes for free. The whole pass must
    compile as one graph (`fullgraph`): a
    graph break would split a CUDA graph and lose the speed the setting promises, so a network
    that breaks is refused up front by `probe`, in one line.
    """

    def __init__(self, model, layers: frozenset[str], mode: str) -> None:
        from ..models.hooks import LOGITS, layer_layout, resolve_layer
        from ..models.info import call_index, split_call

        self.model, self.mode = model, mode
        self.logits = LOGITS in layers
        self.names = sorted(set(layers) - {LOGITS})
        self.layouts = {name: layer_layout(model, name) for name in self.names}
        # one hook per module, storing every call's output; `LAYER#K` reads the K-th (a plain name the first)
        self.reads = {name: (split_call(name)[0], (call_index(name) or 1) - 1) for name in self.names}
        hooked = sorted({module for module, _ in self.reads.values()})
        self.modules = [resolve_layer(model, module) for module in hooked]
        self.hooks = [self._hook(module) for module in hooked]
        self.store: dict[str, list[torch.Tensor]] = {}
        # CUDA graphs replay into static memory: each call starts a new step and outputs are copied out
        self.cudagraphs = model.device.type == "cuda" and mode in ("reduce-overhead", "max-autotune")
        self.compiled = torch.compile(
            types.MethodType(_own_code(CompiledPass._forward), self), mode=mode, fullgraph=True
        )

    def _hook(self, name: str):
        from ..models.layouts import output_tensor

        def hook(module, inputs, output) -> None:
            self.store.setdefault(name, []).append(output_tensor(output, name))

        return hook

    def _forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.store = {}
        logits = self.model(images)
        acts = {name: self.store[module][call] for name, (module, call) in self.reads.items()}
        if self.logits:
            acts["logits"] = logits
        self.store = {}
        return acts

    @contextlib.contextmanager
    def _hooked(self):
        handles = [m.register_forward_hook(h) for m, h in zip(self.modules, self.hooks)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def probe(self, size: int) -> None:
        """Trace the pass once (dynamo only, no code generation: about a second) and refuse a network
        that does not compile as one graph, before the run starts."""
        import torch._dynamo

        trace = torch.compile(types.MethodType(_own_code(CompiledPass._forward), self), backend="eager", fullgraph=True)
        x = self.model.blank(size)
        try:
            with self._hooked(), torch.no_grad():
                trace(x)
        except torch._dynamo.exc.TorchDynamoException as err:
            raise FvoptError(
                f"compile {self.mode!r}: {self.model.name} does not compile as one graph "
                f"({first_line(err)}); run without --compile"
            ) from None

    def run(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Activations of the layers (and 'logits' when asked for), as `Capture.run` returns them."""
        import torch._dynamo

        with self._hooked():
            if self.cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            try:
                acts = self.compiled(images)
            except torch._dynamo.exc.TorchDynamoException as err:
                raise FvoptError(
                    f"compile {self.mode!r} failed for {self.model.name}: {first_line(err)}; run without --compile"
                ) from None
        return {k: v.clone() for k, v in acts.items()} if self.cudagraphs else acts


def compiled_pass(model, layers: frozenset[str], mode: str, size: int) -> CompiledPass:
    """The model's compiled pass for `layers` in `mode`, made (and probed at `size`) once per model:
    problems on the same model and target, and a hybrid's restricted views, share its graphs."""
    passes = model.__dict__.setdefault("_compiled_passes", {})
    key = (frozenset(layers), mode, str(model.device))
    if key not in passes:
        made = CompiledPass(model, frozenset(layers), mode)
        made.probe(size)
        passes[key] = made
    return passes[key]
