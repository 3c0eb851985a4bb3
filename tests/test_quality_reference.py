"""Reference sets and their activation cache (fvopt.quality.reference, cache, activations)."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from fvopt.errors import FvoptError
from fvopt.quality import BuiltinReference, CacheError, reference_pass, reference_set, spectral_slopes
from fvopt.quality import cache as cache_mod
from fvopt.quality.activations import FEATURES, KEPT_WORK, _key

SIDE = 64


def _folder(root, n=6):
    """A small folder at two depths: RGB JPEG, gray PNG, RGBA PNG, 16-bit PNG, WebP, plus a text file."""
    rng = np.random.default_rng(0)
    (root / "a" / "b").mkdir(parents=True)
    for i in range(n):
        arr = (rng.uniform(0, 1, (80, 100, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"rgb{i}.jpg")
    Image.fromarray(np.full((70, 70), 128, np.uint8)).save(root / "a" / "gray.png")
    Image.fromarray(np.full((70, 70, 4), 200, np.uint8)).save(root / "a" / "rgba.png")
    Image.fromarray(np.full((70, 70), 32768, np.uint16)).save(root / "a" / "b" / "deep16.png")
    Image.fromarray(np.full((70, 70, 3), 10, np.uint8)).save(root / "a" / "b" / "w.webp")
    (root / "notes.txt").write_text("not an image")
    return root


def test_builtin_stand_in_is_several_hundred_crops_of_every_color_photo():
    ref = BuiltinReference()
    assert 300 <= len(ref) <= 1000
    assert set(ref.sources) == set(ref.photos) and len(ref.photos) == 9
    assert ref.describe() == f"built-in stand-in ({len(ref)} crops of 9 scikit-image photos)"
    flips = [c for c in ref.crops if c.flip]
    assert len(flips) == len(ref) // 2  # every crop and its mirror
    x = ref.load([0, 1], SIDE)
    assert x.shape == (2, 3, SIDE, SIDE) and torch.allclose(x[0].flip(-1), x[1], atol=1e-6)


def test_folder_reads_every_depth_and_mode_and_counts_a_broken_file(tmp_path):
    root = _folder(tmp_path / "imgs")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff this is not a jpeg")
    ref = reference_set(root)
    assert len(ref) == 11 and ref.others == 1  # the text file is not an image
    seen = torch.cat([b.images for b in ref.batches(SIDE, batch=4)])
    assert seen.shape == (11, 3, SIDE, SIDE)
    assert list(ref.skipped) == [ref.sources.index("a/broken.jpg")]
    assert "10 images, 1 skipped" in ref.describe() and str(root.resolve()) in ref.describe()
    i = ref.sources.index("a/b/deep16.png")  # 16-bit mid-gray is rescaled, not clipped to white
    assert abs(float(seen[i].mean()) - 0.5) < 0.01
    i = ref.sources.index("a/gray.png")
    assert torch.allclose(seen[i], torch.full_like(seen[i], 128 / 255), atol=1e-3)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "holds no JPEG/PNG/WebP images (nothing)"),
        (lambda p: (p / "x.txt").write_text("x") and p, "holds no JPEG/PNG/WebP images (only 1 other files)"),
        (lambda p: p / "missing", "does not exist"),
    ],
)
def test_bad_folders_are_refused_in_one_line(tmp_path, make, message):
    with pytest.raises(FvoptError) as err:
        reference_set(make(tmp_path))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_labelled_folders_by_class_index_or_wnid(tmp_path):
    for top in ("8", "n01440764"):
        (tmp_path / top).mkdir()
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / top / "x.png")
    ref = reference_set(tmp_path)
    assert sorted(ref.labels) == [0, 8] and "labelled" in ref.describe()


@pytest.mark.slow
def test_cached_pass_equals_a_fresh_one_and_a_changed_folder_invalidates_it(tmp_path, lite0):
    root = _folder(tmp_path / "imgs")
    cache = tmp_path / "cache"
    first = reference_pass(
        lite0, reference_set(root), ["blocks.3", "logits"], side=SIDE, progress=False, cache_folder=cache
    )
    again = reference_pass(
        lite0, reference_set(root), ["blocks.3", "logits"], side=SIDE, progress=False, cache_folder=cache
    )
    fresh = reference_pass(lite0, reference_set(root), ["blocks.3"], side=SIDE, progress=False, use_cache=False)
    assert first["blocks.3"].how == "computed" and again["blocks.3"].how == "cache"
    for field in ("mean", "max", "argmax"):
        assert torch.equal(getattr(again["blocks.3"], field), getattr(fresh["blocks.3"], field))
    assert again["blocks.3"].grid == fresh["blocks.3"].grid == (4, 4)
    # one changed file (same name, other size and time) gives another key: computed again, never reused
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(root / "rgb0.jpg")
    changed = reference_pass(lite0, reference_set(root), ["blocks.3"], side=SIDE, progress=False, cache_folder=cache)
    assert changed["blocks.3"].how == "computed"
    assert not torch.equal(changed["blocks.3"].mean, first["blocks.3"].mean)


@pytest.mark.slow
def test_a_cache_from_another_model_or_truncated_is_refused_and_rebuilt(tmp_path, lite0, capsys):
    from fvopt.models import load_model

    root = _folder(tmp_path / "imgs", n=2)
    cache = tmp_path / "cache"
    ref = reference_set(root)
    lite1 = load_model("lite1")
    reference_pass(lite1, ref, [FEATURES], side=SIDE, progress=False, cache_folder=cache)
    other = cache_mod.cache_path(_key(lite1, ref, FEATURES, SIDE), cache)
    mine = cache_mod.cache_path(_key(lite0, ref, FEATURES, SIDE), cache)
    shutil.copy(other, mine)  # lite1's file under lite0's name
    with pytest.raises(CacheError, match="was made for model 'lite1', not 'lite0'"):
        cache_mod.load(mine, _key(lite0, ref, FEATURES, SIDE))
    stats = reference_pass(lite0, ref, [FEATURES], side=SIDE, progress=False, cache_folder=cache)[FEATURES]
    assert stats.how == "computed" and "rebuilding it" in capsys.readouterr().err
    assert stats.mean.shape[1] == 1280
    data = mine.read_bytes()
    mine.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CacheError, match="truncated or not an fvopt cache"):
        cache_mod.load(mine, _key(lite0, ref, FEATURES, SIDE))
    again = reference_pass(lite0, ref, [FEATURES], side=SIDE, progress=False, cache_folder=cache)[FEATURES]
    err = capsys.readouterr().err
    assert again.how == "computed" and err.count("\n") == 1 and "truncated" in err
    assert torch.equal(again.mean, stats.mean)


def test_cache_folder_follows_fvopt_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("FVOPT_CACHE", str(tmp_path / "c"))
    assert cache_mod.cache_dir() == tmp_path / "c"


def test_spectral_slope_of_a_photo_is_near_minus_two_and_of_white_noise_near_zero():
    import skimage.data

    photo = torch.from_numpy(skimage.data.rocket()).permute(2, 0, 1)[None].float() / 255
    noise = torch.rand(4, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    assert abs(float(spectral_slopes(photo)[0]) + 2) < 0.4
    assert spectral_slopes(noise).abs().max() < 0.3
    assert torch.isnan(spectral_slopes(torch.full((1, 3, 32, 32), 0.5)))[0]


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), RuntimeError("out of memory")], ids=["ctrl-c", "failure"])
def test_an_unfinished_reference_pass_is_kept_and_the_next_one_resumes_to_the_same_summaries(tmp_path, lite0, stop):
    folder = _folder(tmp_path / "imgs", n=20)  # 24 images, some 1-channel, 16-bit or RGBA
    (folder / "broken.jpg").write_bytes(b"not a jpeg")  # skipped, and still named as such after the resume
    layers = ["blocks.2", FEATURES]
    first = reference_set(folder)
    whole = reference_pass(
        lite0, first, layers, side=SIDE, batch=4, progress=False, cache_folder=tmp_path / "one", workers=0
    )
    assert len(first.skipped) == 1 and next(iter(first.skipped)) < 12  # broken.jpg, among the images kept below

    calls = []

    def stopping(module, inputs):  # the fourth batch (images 12-15) never finishes
        calls.append(1)
        if len(calls) == 4:
            raise stop

    hook = lite0.net.register_forward_pre_hook(stopping)
    try:
        with pytest.raises(type(stop)) as stopped:
            reference_pass(
                lite0, reference_set(folder), layers, side=SIDE, batch=4, progress=False,
                cache_folder=tmp_path / "two", workers=0,
            )  # fmt: skip
    finally:
        hook.remove()
    kept = f"the reference pass (lite0 blocks.2, {FEATURES}) kept its first 12 of {len(reference_set(folder))} images"
    assert getattr(stopped.value, KEPT_WORK) == kept  # what the command line's one line says
    assert len(list((tmp_path / "two").glob("ref-*.pt"))) == 1  # the unfinished pass, no layer cache

    again = reference_set(folder)
    reads, read = [], again._read
    again._read = lambda i, side: reads.append(i) or read(i, side)
    resumed = reference_pass(
        lite0, again, layers, side=SIDE, batch=4, progress=False, cache_folder=tmp_path / "two", workers=0
    )
    assert reads == list(range(12, len(again)))  # batches 0-11 were kept; the batch holding 14 is read again
    for layer in layers:
        a, b = whole[layer], resumed[layer]
        assert torch.equal(a.valid, b.valid)
        for field in ("mean", "max", "argmax", "slopes"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None), (layer, field)
            if x is not None:
                torch.testing.assert_close(y, x, equal_nan=True, rtol=0, atol=0)
    assert again.skipped == first.skipped  # read back from the unfinished pass, not read again
    assert len(list((tmp_path / "two").glob("ref-*.pt"))) == 2  # the two layer caches; the unfinished pass is gone


def test_a_long_reference_pass_saves_its_progress_as_it_goes_and_removes_it_when_done(tmp_path, lite0, monkeypatch):
    """A pass killed outright (SIGKILL, a lost node) keeps what its last periodic save held."""
    from fvopt.quality import activations

    folder = _folder(tmp_path / "imgs", n=20)  # 24 images: 6 batches of 4
    saved, save = [], activations.Partial.save
    monkeypatch.setattr(activations, "PARTIAL_SECONDS", 0.0)
    monkeypatch.setattr(
        activations.Partial, "save", lambda self, state: saved.append(state["done"]) or save(self, state)
    )
    reference_pass(
        lite0, reference_set(folder), ["blocks.2"], side=SIDE, batch=4, progress=False, cache_folder=tmp_path, workers=0
    )
    # the first save after the first batch; later ones wait 10x a save's own time; none after the last batch
    # (the finished pass is the layer's cache itself)
    assert saved[0] == 4 and saved == sorted(set(saved)) and all(d % 4 == 0 and d < 24 for d in saved)
    assert len(list(tmp_path.glob("ref-*.pt"))) == 1  # the layer's cache; the unfinished pass was removed
