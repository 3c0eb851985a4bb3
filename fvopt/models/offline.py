"""Hugging Face Hub offline mode for the length of one model load, not for the rest of the process.

fvopt never downloads weights (they come from the local caches or the user's file), so a timm
load runs with the hub offline: no request can leave the machine, even from a code path of timm
fvopt did not foresee. Why scoped: the user's own code in the same process may use the hub.

huggingface_hub reads `HF_HUB_OFFLINE` from the environment once, when `huggingface_hub.constants`
is first imported, and from then on asks `constants.HF_HUB_OFFLINE` (through
`constants.is_offline_mode()`, on every request). So setting the variable alone does nothing once
the hub is imported, and setting it before the first import would leave the hub offline for
good. `hub_offline()` therefore imports the constants first (they read the user's environment),
sets the module value and the variable (for any other reader), and restores both afterwards.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def hub_offline() -> Iterator[None]:
    """The Hugging Face Hub offline inside the body; the process's own setting restored afterwards."""
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:  # no hub installed: nothing can reach it
        hf_constants = None
    before_env = os.environ.get("HF_HUB_OFFLINE")
    before_flag = getattr(hf_constants, "HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    if hf_constants is not None:
        hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if before_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before_env
        if hf_constants is not None:
            hf_constants.HF_HUB_OFFLINE = before_flag
