"""Reference sets: the natural images a visualization is judged against.

A reference set is a list of items that are decoded one batch at a time (never all in memory),
each shown to a network at a chosen side with torchvision's eval transform (shorter side resized
to side * 256 / 224, then a center crop), so a user's ImageNet validation folder is seen the way
the network was evaluated. Every item has a *source* (the photo it came from) so that examples
can be drawn from many photos, and optionally a class label (folders `DIR/<class index or wnid>/`).

Two kinds:
- `FolderReference(DIR)`: JPEG/PNG/WebP files at any depth; grayscale, RGBA and 16-bit images are
  converted to 8-bit RGB; a file that cannot be decoded is skipped and counted (never fatal).
- `BuiltinReference()`: the stand-in used when no folder is given: crops cut from every color
  photo that ships with scikit-image at several scales, with their mirror images. It is small and
  narrow (a few photos), which every output says: "reference: built-in stand-in (...)".
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import FvoptError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
BUILTIN = "builtin"
# the word for "no reference images", one spelling everywhere (viz, bench specs, the atlas); a folder named none
# is given as ./none
NONE = "none"


def no_reference(reference) -> bool:
    """Whether `reference` asks for no reference images: None or the word 'none' (not a path object)."""
    return reference is None or (isinstance(reference, str) and reference.strip() == NONE)


# Every color photograph among scikit-image's bundled files (synthetic charts and gray images left out).
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "motorcycle_left",
    "motorcycle_right",
    "retina",
    "rocket",
)


def eval_transform(side: int):
    """torchvision's eval preprocessing for `side`: resize the shorter side to side/0.875, center crop."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.Resize(int(round(side * 256 / 224)), antialias=True),
            v2.CenterCrop(side),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def to_rgb8(img) -> "Image.Image":  # noqa: F821
    """Any PIL image as 8-bit RGB: 16-bit and float gray are rescaled (not clipped), alpha dropped."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I") and arr.max() > 255 else max(float(arr.max()), 1.0)
        img = Image.fromarray((arr / top * 255).clip(0, 255).astype(np.uint8))
    if img.mode == "RGBA" or img.mode == "LA" or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        back = Image.new("RGBA", img.size, (255, 255, 255, 255))  # composite on white, as browsers show it
        img = Image.alpha_composite(back, img)
    return img.convert("RGB")


@dataclass
class Batch:
    images: torch.Tensor  # (n, 3, side, side) in [0,1]; rows of unreadable items are zeros
    indices: torch.Tensor  # (n,) item indices
    ok: torch.Tensor  # (n,) bool: False where the item could not be decoded


class ReferenceSet:
    """Base: `len`, `sources`, `labels`, `fingerprint()`, `describe()`, `load(indices, side)`,
    `batches(side, batch)`. Subclasses implement `_read(i, side)` (a (3, side, side) tensor)."""

    kind = "reference"
    sources: list[str]
    labels: list[int] | None = None  # class index per item, for labelled folders

    def __init__(self) -> None:
        self.skipped: dict[int, str] = {}  # item index -> why it could not be read (filled by a pass)

    def __len__(self) -> int:
        return len(self.sources)

    def fingerprint(self) -> str:
        """A hash of the set's content (what a cache of its activations is keyed by)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.describe()

    def item_name(self, i: int) -> str:
        return self.sources[i]

    @property
    def near_copies(self) -> list | None:
        """A key per item shared by near-copies (None: every item is distinct)."""
        return None

    def list_capacity(self, per_source: int) -> tuple[int, int]:
        """(the most items one unit's top or bottom list can hold with at most `per_source` per source and
        one of each near-copy group, how many distinct items there are): known before any pass."""
        keys = self.near_copies or list(range(len(self)))
        groups: dict[str, set] = {}
        for source, key in zip(self.sources, keys):
            groups.setdefault(source, set()).add(key)
        return sum(min(per_source, len(g)) for g in groups.values()), sum(len(g) for g in groups.values())

    def _read(self, i: int, side: int) -> torch.Tensor:
        raise NotImplementedError

    def read(self, i: int, side: int) -> torch.Tensor | None:
        """Item i as (3, side, side) in [0,1], or None (recorded in `skipped`) when it cannot be decoded."""
        try:
            return self._read(i, side)
        except Exception as err:  # Pillow raises many kinds for broken files
            text = str(err).strip().splitlines()
            self.skipped[i] = text[0][:200] if text else type(err).__name__
            return None

    def load(self, indices: Sequence[int], side: int) -> torch.Tensor:
        """Items as one (n, 3, side, side) tensor; an unreadable item is mid-gray (and counted skipped)."""
        out = [self.read(int(i), side) for i in indices]
        return (
            torch.stack([x if x is not None else torch.full((3, side, side), 0.5) for x in out])
            if out
            else torch.zeros(0, 3, side, side)
        )

    def batches(self, side: int, batch: int = 32, workers: int = 0, start: int = 0) -> Iterator[Batch]:
        """The set in order from item `start`, `batch` items at a time, decoded by `workers` processes (0: here)."""
        loader = torch.utils.data.DataLoader(
            _Items(self, side, start), batch_size=batch, num_workers=workers, collate_fn=_collate
        )
        for images, indices, ok, errors in loader:
            for i, why in errors.items():
                self.skipped[i] = why
            yield Batch(images, indices, ok)


class _Items(torch.utils.data.Dataset):
    def __init__(self, ref: ReferenceSet, side: int, start: int = 0) -> None:
        self.ref, self.side, self.start = ref, side, start

    def __len__(self) -> int:
        return len(self.ref) - self.start

    def __getitem__(self, k: int):
        i = self.start + k
        x = self.ref.read(i, self.side)  # in a worker process `skipped` is the worker's: pass the reason back
        return (x, i, self.ref.skipped.get(i))


def _collate(items):
    side = next((x.shape[-1] for x, _, _ in items if x is not None), 1)
    images = torch.stack([x if x is not None else torch.zeros(3, side, side) for x, _, _ in items]) if items else None
    idx = torch.tensor([i for _, i, _ in items], dtype=torch.long)
    ok = torch.tensor([x is not None for x, _, _ in items])
    return images, idx, ok, {i: why for x, i, why in items if x is None}


class FolderReference(ReferenceSet):
    """Every JPEG/PNG/WebP under `root` (any depth, sorted), read lazily; unreadable files skipped."""

    kind = "folder"

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__()
        root = Path(root).expanduser()
        if not root.exists():
            raise FvoptError(
                f"reference folder '{root}' does not exist: give a folder of JPEG/PNG/WebP images, or "
                f"'{BUILTIN}' for the built-in stand-in"
            )
        if not root.is_dir():
            raise FvoptError(f"reference '{root}' is a file, not a folder of images (or '{BUILTIN}')")
        self.root = root.resolve()
        files, others, stats = [], 0, []
        for path, st in _image_files(self.root):
            if st is None:
                others += 1
                continue
            files.append(path)
            stats.append((str(path.relative_to(self.root)), st.st_size, st.st_mtime_ns))
        if not files:
            what = f"only {others} other files" if others else "nothing"
            raise FvoptError(
                f"reference folder '{root}' holds no JPEG/PNG/WebP images ({what}): give a folder of "
                f"photos (any depth), or '{BUILTIN}'"
            )
        self.files = files
        self.others = others
        self.sources = [s[0] for s in stats]
        self._fingerprint = hashlib.sha256(repr(stats).encode()).hexdigest()[:24]
        self.labels = _folder_labels(self.root, self.sources)
        _refuse_if_none_opens(root, files)

    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> str:
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        labelled = ", labelled by class folder" if self.labels is not None else ""
        return f"{self.root} ({len(self.files) - len(self.skipped)} images{skipped}{labelled})"

    def _read(self, i: int, side: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.files[i]) as img:
            img.load()
            rgb = to_rgb8(img)
        return eval_transform(side)(rgb)


def _image_files(root: Path) -> Iterator[tuple[Path, "os.stat_result | None"]]:
    """(path, stat) of every image file under `root` in sorted order, each real file and folder once;
    (path, None) for a name that is not one (other suffixes, hidden, unreadable, not a regular file).

    Why: a symlinked folder is followed (a collection often links its class folders in), but a link
    back up the tree would walk forever (os.walk stops only at the recursion limit), and two links to
    one file would count it twice in every statistic; a FIFO, socket or device named `x.png` would
    block the first read forever.
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = os.stat(dirpath)
        if (here.st_dev, here.st_ino) in seen_dirs:  # reached again through a link: its files are counted
            dirnames[:] = []
            continue
        seen_dirs.add((here.st_dev, here.st_ino))
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() not in EXTENSIONS:
                yield path, None
                continue
            try:
                st = path.stat()
            except OSError:
                yield path, None
                continue
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen_files:
                yield path, None
                continue
            seen_files.add((st.st_dev, st.st_ino))
            yield path, st


def _refuse_if_none_opens(root: Path, files: list[Path]) -> None:
    """Refuse, before any pass, a folder none of whose images can be opened (header only, in order, up to
    the first that opens: one file for a good folder). Why: a pass over such a folder reads every file and
    the run ends without any measure; PIL refuses an image above its pixel limit (Image.MAX_IMAGE_PIXELS,
    a guard against decompression bombs), which a folder of huge scans can consist of."""
    from PIL import Image

    first = ""
    for path in files:
        try:
            with Image.open(path):
                return
        except Exception as err:  # Pillow raises many kinds: DecompressionBombError, UnidentifiedImageError, ...
            if not first:
                text = str(err).strip().splitlines()
                first = f"{path.name}: {text[0][:160] if text else type(err).__name__}"
    raise FvoptError(
        f"reference folder '{root}': none of its {len(files)} image file{'s' if len(files) != 1 else ''} can be "
        f"opened (first: {first}); give a folder of readable photos (PIL refuses images above "
        f"{Image.MAX_IMAGE_PIXELS * 2:,} pixels), or '{BUILTIN}'"
    )


def _folder_labels(root: Path, relative: list[str]) -> list[int] | None:
    """Class per file when every file sits under a top folder named by a class index (0-999) or an
    ImageNet wnid (n01440764); None otherwise (an unlabelled folder)."""
    tops = {Path(r).parts[0] if len(Path(r).parts) > 1 else None for r in relative}
    if None in tops:
        return None
    wnids = None
    if any(not t.isdigit() for t in tops):
        try:
            from timm.data import ImageNetInfo

            wnids = {w: i for i, w in enumerate(ImageNetInfo().label_names())}
        except Exception:  # no label table: the folder is read as unlabelled
            return None
    out = []
    for r in relative:
        top = Path(r).parts[0]
        if top.isdigit() and int(top) < 1000:
            out.append(int(top))
        elif wnids is not None and top in wnids:
            out.append(wnids[top])
        else:
            return None
    return out


@dataclass(frozen=True)
class Crop:
    photo: str
    scale: float  # crop side as a fraction of the photo's shorter side
    y: int
    x: int
    side: int  # in photo pixels
    flip: bool


class BuiltinReference(ReferenceSet):
    """Square crops of every color photo bundled with scikit-image, at several scales, and mirrored.

    Scale s cuts crops of side s * (shorter side) on a regular grid (more positions at smaller
    scales); `flips` adds each crop's mirror image. With the defaults: 9 photos, 4 scales, about 500
    crops. Small and narrow next to a real photo collection: every output says it came from here.
    """

    kind = "builtin"

    def __init__(
        self,
        scales: Sequence[float] = (1.0, 0.7, 0.5, 0.35),
        flips: bool = True,
        photos: Sequence[str] = SKIMAGE_PHOTOS,
    ) -> None:
        super().__init__()
        import skimage

        self.photos = tuple(photos)
        self.scales = tuple(scales)
        self.flips = flips
        self._cache: dict[str, np.ndarray] = {}
        crops = []
        for photo in self.photos:
            h, w = self._photo(photo).shape[:2]
            for s in self.scales:
                side = int(min(h, w) * s)
                per_axis = max(1, round(1 / s) + (0 if s >= 1 else 1))
                ys = np.linspace(0, h - side, max(1, round(per_axis * h / min(h, w)))).astype(int)
                xs = np.linspace(0, w - side, max(1, round(per_axis * w / min(h, w)))).astype(int)
                for y in sorted(set(ys.tolist())):
                    for x in sorted(set(xs.tolist())):
                        for flip in (False, True) if flips else (False,):
                            crops.append(Crop(photo, s, y, x, side, flip))
        self.crops = crops
        self.sources = [c.photo for c in crops]
        self.labels = None
        spec = (skimage.__version__, self.photos, self.scales, flips, len(crops))
        self._fingerprint = hashlib.sha256(repr(spec).encode()).hexdigest()[:24]

    def _photo(self, name: str) -> np.ndarray:
        if name not in self._cache:
            import skimage.data

            if name.startswith("motorcycle_"):  # the stereo pair ships as one loader
                arr = skimage.data.stereo_motorcycle()[0 if name.endswith("left") else 1]
            else:
                arr = getattr(skimage.data, name)()
            if arr.ndim == 2:
                arr = np.stack([arr] * 3, -1)
            self._cache[name] = np.ascontiguousarray(arr[..., :3])
        return self._cache[name]

    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> str:
        return f"built-in stand-in ({len(self.crops)} crops of {len(self.photos)} scikit-image photos)"

    @property
    def near_copies(self) -> list:
        return [(c.photo, c.scale, c.y, c.x) for c in self.crops]

    def item_name(self, i: int) -> str:
        c = self.crops[i]
        return f"skimage:{c.photo}@{c.scale:g}:{c.y},{c.x}{':flip' if c.flip else ''}"

    def _read(self, i: int, side: int) -> torch.Tensor:
        import torch.nn.functional as F

        c = self.crops[i]
        arr = self._photo(c.photo)[c.y : c.y + c.side, c.x : c.x + c.side]
        x = torch.from_numpy(arr).permute(2, 0, 1).float()[None] / 255.0
        if c.flip:
            x = x.flip(-1)
        x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        return x[0].clamp(0, 1)


def check_side(side, net) -> None:
    """Refuse a side to show reference images at below what the network accepts (its minimum input)."""
    if side is None:
        return
    if isinstance(side, bool) or not isinstance(side, int) or side < net.min_size:
        raise FvoptError(
            f"side {side!r} is below {net.name}'s minimum input of {net.min_size} px: give a side of "
            f"{net.min_size} px or more (default: its input size, {net.input_size})"
        )


def reference_set(reference: "str | os.PathLike | ReferenceSet | None" = None) -> ReferenceSet:
    """A ReferenceSet from what a user gave: None or 'builtin' -> the stand-in; a path -> its folder.

    Checked here, before any work: a missing folder, a file, a folder without images are one line.
    """
    if isinstance(reference, ReferenceSet):
        return reference
    if reference is None or (isinstance(reference, str) and reference == BUILTIN):
        return BuiltinReference()
    if not isinstance(reference, (str, os.PathLike)):
        raise FvoptError(
            f"reference must be a folder of images or '{BUILTIN}', not {type(reference).__name__} {reference!r}"
        )
    if isinstance(reference, str) and not reference.strip():
        raise FvoptError(f"reference is empty: give a folder of images or '{BUILTIN}'")
    if no_reference(reference):
        raise FvoptError(
            f"reference '{NONE}' means no reference images, and this needs some: give a folder of images "
            f"(a folder named {NONE}: ./{NONE}) or '{BUILTIN}'"
        )
    return FolderReference(reference)


_READ: dict[str, ReferenceSet] = {}


def cached_reference_set(reference: str | None) -> ReferenceSet | None:
    """`reference_set(reference)`, read once per process (a bench or an atlas judges every cell against
    the same set, and the stand-in cuts its crops from nine photos); None stays None."""
    if reference is None:
        return None
    if reference not in _READ:
        _READ[reference] = reference_set(reference)
    return _READ[reference]
