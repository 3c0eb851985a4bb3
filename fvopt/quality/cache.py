"""On-disk cache of a reference set's activations, keyed by exactly what they were made from.

A cache file holds per-image summaries for one (model, weights, layer, side, reference content)
and records that key inside itself. Policy (decided here, documented in README):

- The file name is a hash of the key, so a different model, weights file, layer, image side or
  folder content (file names, sizes, modification times) never even looks at another's file.
- On load, the key stored *in* the file must equal the key asked for, field by field; otherwise
  (a file copied or renamed from another model, a hash collision) it is refused with one line
  naming the field that differs. A truncated or foreign file (not a torch archive of the fvopt
  cache format) is refused the same way. `cached()` turns a refusal into a one-line note on stderr
  and rebuilds the file: the cache is derived data, so rebuilding is always safe, and a cache is
  never silently reused for different images.
- Files are written to a temporary name and renamed, so an interrupted pass leaves no half file.

The cache folder is `$FVOPT_CACHE`, else `$XDG_CACHE_HOME/fvopt`, else `~/.cache/fvopt`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from ..errors import FvoptError

FORMAT = "fvopt-reference-cache"
VERSION = 1


class CacheError(FvoptError):
    """A cache file that cannot be used for the key asked for (truncated, foreign, or another key)."""


def cache_dir() -> Path:
    """Where reference caches live: $FVOPT_CACHE, else $XDG_CACHE_HOME/fvopt, else ~/.cache/fvopt."""
    if os.environ.get("FVOPT_CACHE"):
        folder = Path(os.environ["FVOPT_CACHE"]).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = Path(base) / "fvopt"
    blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # a file where the folder should be: one line, not NotADirectoryError mid-run
        source = "FVOPT_CACHE" if os.environ.get("FVOPT_CACHE") else "the cache folder"
        where = "is a file" if blocking == folder else f"lies inside '{blocking}', which is a file"
        raise FvoptError(f"{source} '{folder}' {where}, not a folder: point FVOPT_CACHE at a folder")
    return folder


def weights_fingerprint(model) -> str:
    """A hash of a model's parameters and buffers: the identity of its weights, whatever file they came from."""
    cached = model.__dict__.get("_fvopt_weights_hash")
    if cached:
        return cached
    h = hashlib.sha256()
    for name, tensor in sorted(model.net.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest = h.hexdigest()[:24]
    model.__dict__["_fvopt_weights_hash"] = digest
    return digest


def cache_path(key: dict, folder: Path | None = None) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return (folder or cache_dir()) / f"ref-{digest}.pt"


def load(path: Path, key: dict, check: "Callable[[dict, dict], str] | None" = None) -> dict:
    """The payload of a cache file made for exactly `key`; CacheError (one line) otherwise. `check(payload,
    key)` returns what is wrong with a payload ('' when nothing): a file with the right key whose payload
    is missing, cut or not finite is refused (and rebuilt by the caller) like a foreign one."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        text = str(err).strip().splitlines()
        raise CacheError(
            f"cache file '{path}' is truncated or not an fvopt cache ({text[0][:120] if text else type(err).__name__})"
        ) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("key"), dict):
        raise CacheError(f"cache file '{path}' is not an fvopt reference cache")
    if data.get("version") != VERSION:
        raise CacheError(f"cache file '{path}' has format version {data.get('version')}, this fvopt writes {VERSION}")
    stored = data["key"]
    for field in sorted(set(key) | set(stored)):
        if stored.get(field) != key.get(field):
            raise CacheError(f"cache file '{path}' was made for {field} {stored.get(field)!r}, not {key.get(field)!r}")
    if not isinstance(data.get("payload"), dict):
        raise CacheError(f"cache file '{path}' has no payload")
    wrong = check(data["payload"], key) if check is not None else ""
    if wrong:
        raise CacheError(f"cache file '{path}' is corrupt ({wrong})")
    return data["payload"]


def summary_problem(payload: dict, key: dict) -> str:
    """What is wrong with a layer summary (fvopt.quality.activations) made for `key`, or '' when nothing.

    Checked: every field a reader uses is there, of the right kind and size for the key's `items`, the
    side is the key's, at least one image was read, and every value of a read image is finite."""
    items = key.get("items")

    def tensor(name: str, dims: int, rows: bool = True) -> "torch.Tensor | None":
        t = payload.get(name)
        if not isinstance(t, torch.Tensor) or t.dim() != dims or (rows and t.shape[0] != items):
            raise _Wrong(f"{name} missing or of the wrong shape")
        return t

    try:
        mean, valid = tensor("mean", 2), tensor("valid", 1)
        if valid.dtype != torch.bool or not bool(valid.any()):
            raise _Wrong("no image marked as read")
        if payload.get("side") != key.get("side"):
            raise _Wrong(f"side {payload.get('side')!r}")
        if not bool(torch.isfinite(mean[valid].float()).all()):
            raise _Wrong("values that are not finite")
        for name in ("max", "argmax"):
            if payload.get(name) is not None and tensor(name, 2).shape != mean.shape:
                raise _Wrong(f"{name} of another shape than mean")
        if payload.get("max") is not None:
            grid = payload.get("grid")
            if not isinstance(grid, torch.Tensor) or grid.numel() != 2 or bool((grid < 1).any()):
                raise _Wrong("grid missing")
            if payload.get("argmax") is None or not bool(torch.isfinite(payload["max"][valid].float()).all()):
                raise _Wrong("max or argmax missing or not finite")
        if payload.get("slopes") is not None:
            tensor("slopes", 1)
        index, why = tensor("skipped_index", 1, rows=False), payload.get("skipped_why")
        if not isinstance(why, list) or len(why) != len(index):
            raise _Wrong("skipped_why missing")
    except _Wrong as err:
        return str(err)
    return ""


class _Wrong(Exception):
    pass


def save(path: Path, key: dict, payload: dict) -> Path:
    """Write atomically (temporary file, then rename): never a half-written cache under the real name."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"format": FORMAT, "version": VERSION, "key": key, "payload": payload}, tmp)
        os.replace(tmp, path)
    except OSError as err:
        print(
            f"fvopt: note: could not write the reference cache '{path}' ({err.strerror or err}); "
            "the activations were computed and used, not cached",
            file=sys.stderr,
        )
    return path


def cached(
    key: dict, build: Callable[[], dict], folder: Path | None = None, use_cache: bool = True
) -> tuple[dict, str]:
    """(payload, how): read the cache for `key`, or build and store it. `how` is 'cache' or 'computed'.

    A cache file that is refused (truncated, foreign, another key) is reported in one line and rebuilt.
    """
    path = cache_path(key, folder)
    if use_cache and path.exists():
        try:
            return load(path, key), "cache"
        except CacheError as err:
            print(f"fvopt: note: {err}; rebuilding it", file=sys.stderr)
    payload = build()
    if use_cache:
        save(path, key, payload)
    return payload, "computed"
