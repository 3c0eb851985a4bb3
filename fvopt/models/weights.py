"""A user's weight file, read as a state dict with `weights_only=True` and fitted to a network.

Shared by the named models (`models.loading`) and the user's own networks (`models.user`).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..errors import FvoptError, first_line


def load_weights(net: torch.nn.Module, weights, name: str) -> None:
    """Load a state dict file into `net`; a misfit names how many keys are missing, unexpected or of
    another shape (and the first of each), not torch's whole list."""
    if str(weights) == "random":
        return
    state = read_state_dict(weights, name)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        mine = net.state_dict()
        missing = [k for k in mine if k not in state]
        unexpected = [k for k in state if k not in mine]
        wrong = [k for k in mine if k in state and state[k].shape != mine[k].shape]
        detail = "; ".join(
            part
            for part in (
                f"{len(missing)} missing (first: {missing[0]})" if missing else "",
                f"{len(unexpected)} unexpected (first: {unexpected[0]})" if unexpected else "",
                f"{len(wrong)} of another shape (first: {wrong[0]} {tuple(state[wrong[0]].shape)} vs "
                f"{tuple(mine[wrong[0]].shape)})"
                if wrong
                else "",
            )
            if part
        ) or first_line(err)
        raise FvoptError(f"weight file '{weights}' does not fit {name}: {detail}") from err


def read_state_dict(weights, name: str) -> dict[str, torch.Tensor]:
    """A state dict from a user's file, loaded with weights_only=True, or one line saying why not."""
    path = Path(weights)
    if path.is_dir():
        raise FvoptError(
            f"weights '{path}' for {name} is a directory, not a weight file: give the file itself "
            "(saved with torch.save(model.state_dict(), path)), or 'random' for random weights"
        )
    if not path.is_file():
        raise FvoptError(f"weight file '{path}' for {name} does not exist (or pass weights='random')")
    if path.stat().st_size == 0:
        raise FvoptError(f"weight file '{path}' is empty")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head != b"PK" and not head.startswith(b"\x80"):  # torch.save writes a zip archive (or, long ago, a pickle)
        raise FvoptError(
            f"weight file '{path}' is not a torch checkpoint (it is neither a zip archive nor a "
            "pickle): save one with torch.save(model.state_dict(), path)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise FvoptError(
                f"weight file '{path}' holds Python objects, not only tensors, and fvopt loads weights "
                "with weights_only=True, which refuses them (unpickling them could run code). "
                "Save a plain state dict: torch.save(model.state_dict(), path)"
            ) from err
        raise FvoptError(
            f"weight file '{path}' is not a torch checkpoint (unpickling failed: {first_line(err)})"
        ) from err
    except Exception as err:  # zip, EOF and text files surface as many exception types
        raise FvoptError(f"weight file '{path}' is not a readable torch checkpoint: {first_line(err)}") from err
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise FvoptError(f"weight file '{path}' holds a {type(state).__name__}, not a state dict (names -> tensors)")
    odd = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        k = odd[0]
        raise FvoptError(
            f"weight file '{path}' is not a state dict of named tensors: entry {str(k)[:60]!r} holds a "
            f"{type(state[k]).__name__} ({len(odd)} such entries)"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}
