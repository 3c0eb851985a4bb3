"""Quality numbers and reference sets at their edges (issue 26): an interval that holds its estimate,
one name per quantity, folders walked safely, and every bad input refused before the work."""

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import fvopt
from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.quality import cache as cache_mod
from fvopt.quality import measures as M
from fvopt.quality import reference_pass, reference_set
from fvopt.quality.activations import _key
from fvopt.quality.features import same_network
from fvopt.quality.score import judge, plan, summary_line, upgrade_quality
from fvopt.quality.stats import percentile_ci, spread_select
from test_signals import terminate_when_stderr_shows

HERE = Path(__file__).parent


def _photos(root: Path, n: int = 6, side: int = 48) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = (np.random.default_rng(i).uniform(0, 1, (side, side + 8, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"i{i}.png")
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FVOPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# natural_ratio: an interval that contains its estimate


@pytest.mark.parametrize("size", [2, 7, 60, 688, 5000])
@pytest.mark.parametrize("seed", range(4))
def test_natural_ratio_interval_contains_its_estimate_for_every_set_and_seed(size, seed):
    rng = np.random.default_rng(1000 * size + seed)
    draws = {"gamma": rng.gamma(2.0, 1.0, size), "lognormal": rng.lognormal(0, 1, size), "relu": rng.normal(1, 1, size)}
    for name, acts in draws.items():
        acts = acts.astype(np.float32)  # reference summaries are float32: the ratio is taken in float64
        if np.quantile(acts.astype(np.float64), 0.99) <= 0:
            continue
        for robust in (np.float32(0.3), np.float32(acts.max()), np.float32(acts.max() * 4.7)):
            value, to_max, reps = M.natural_ratio(robust, acts, seed)
            lo, hi = percentile_ci(reps)
            assert lo <= value <= hi, (name, size, seed, float(robust), lo, value, hi)
            assert to_max <= value + 1e-12  # the 99th percentile is at most the maximum
            assert value == pytest.approx(float(robust) / np.quantile(acts.astype(np.float64), 0.99), rel=1e-12)


def test_the_batch_interval_of_natural_ratio_contains_the_batch_estimate():
    rng = np.random.default_rng(3)
    for seed in range(5):
        parts = [M.natural_ratio(float(rng.uniform(1, 9)), rng.gamma(2.0, 1.0, 300), seed + i) for i in range(3)]
        row = M.Scored("natural_ratio", [p[0] for p in parts], [p[2] for p in parts]).flat(seed)
        assert row["natural_ratio_lo"] <= row["natural_ratio"] <= row["natural_ratio_hi"]


def test_a_batch_with_a_unit_without_a_ratio_still_resamples_the_reference_images_of_the_others():
    value, _, reps = M.natural_ratio(3.0, np.random.default_rng(0).gamma(2.0, 1.0, 6), 0)
    row = M.Scored("natural_ratio", [value, float("nan")], [reps, np.array([])]).flat(0)
    assert row["natural_ratio_lo"] < row["natural_ratio"] == value < row["natural_ratio_hi"]  # not [v, v]


def test_mis_lists_of_a_small_set_take_half_each_and_never_share_an_image(tmp_path):
    from fvopt.quality.activations import LayerStats
    from fvopt.quality.score import _unit_lists
    from fvopt.quality.units import Unit

    ref = reference_set(_photos(tmp_path / "ref"))
    stats = LayerStats("l", torch.tensor([[5.0], [4.0], [3.0], [2.0], [1.0], [0.0]]), valid=torch.ones(6, dtype=bool))
    tops, bottoms = _unit_lists(Unit("channel", "l", (0,)), 0, stats, ref, 16, 2, split=True)
    assert tops == [0, 1, 2] and bottoms == [5, 4, 3]


def test_an_old_record_is_read_in_todays_names_and_a_new_one_passes_unchanged():
    old = {
        "natural_ratio": 24.71,
        "natural_ratio_lo": 24.71,
        "natural_ratio_hi": 33.55,
        "natural_ratio_gray": 0.1,
        "natural_ratio_informative": True,
        "natural_ratio_p99": 26.0,
        "natural_ratio_robust": 8.2,
        "per_image": {"unit": ["channel:blocks.3:0"], "natural_ratio": [24.71], "natural_ratio_lo": [24.71]},
    }
    q = upgrade_quality(old)
    assert q["natural_ratio"] == 26.0 and q["natural_ratio_max"] == 24.71 and q["robust_activation"] == 8.2
    assert "natural_ratio_lo" not in q and "natural_ratio_robust" not in q and "natural_ratio_p99" not in q
    assert q["natural_ratio_of"].startswith("99th percentile (a record from before")
    assert q["per_image"] == {"unit": ["channel:blocks.3:0"], "natural_ratio_max": [24.71]}
    assert old["natural_ratio"] == 24.71  # the stored record itself is left as it was
    new = {"natural_ratio": 2.0, "natural_ratio_of": "99th percentile", "natural_ratio_max": 1.5}
    assert upgrade_quality(new) == new


@pytest.mark.slow
def test_a_viz_trace_names_each_unit_once_and_the_robust_activation_honestly(tmp_path, cache):
    trace = tmp_path / "t.json"
    args = ["viz", "--model", "lite0", "--target", "channel:blocks.3:0", "--batch", "2", "--steps", "2", "--size", "64"]
    args += ["--reference", str(_photos(tmp_path / "ref", 12)), "--measures", "natural_ratio"]
    assert main([*args, "--out", str(tmp_path / "v.png"), "--trace", str(trace), "--quiet"]) == 0
    t = json.loads(trace.read_text())
    q = t["quality"]
    assert t["final"]["per_image"]["unit"] == q["per_image"]["unit"] == ["channel:blocks.3:0"] * 2
    assert "natural_ratio_robust" not in q and q["natural_ratio_of"] == "99th percentile"
    assert q["robust_activation"] == pytest.approx(t["final"]["robust_value"], rel=1e-6)  # the same number
    assert q["natural_ratio_lo"] <= q["natural_ratio"] <= q["natural_ratio_hi"]
    assert q["natural_ratio"] == pytest.approx(np.mean(q["per_image"]["natural_ratio"]))  # top level: batch mean


# reference folders: only regular files, each once


def test_a_symlink_loop_and_two_links_to_one_file_count_each_file_once(tmp_path):
    root = _photos(tmp_path / "ref")
    (root / "sub").mkdir()
    os.symlink(root, root / "sub" / "loop")  # a link back up the tree
    os.symlink(root / "i0.png", root / "sub" / "same.png")  # a second name for one file
    ref = reference_set(root)
    assert sorted(ref.sources) == [f"i{i}.png" for i in range(6)] and len(ref) == 6


def test_a_fifo_named_like_an_image_is_left_alone(tmp_path):
    root = _photos(tmp_path / "ref")
    os.mkfifo(root / "zz.png")  # reading it would block forever
    ref = reference_set(root)
    assert "zz.png" not in ref.sources and len(ref) == 6 and ref.others == 1
    assert sum(len(b.indices) for b in ref.batches(32, batch=4)) == 6  # the whole walk, no read of the FIFO


def test_a_folder_whose_only_image_is_above_pils_pixel_limit_is_refused_before_work(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL refuses above twice this: 2000 pixels
    root = tmp_path / "huge"
    root.mkdir()
    Image.new("RGB", (60, 60)).save(root / "huge.png")
    with pytest.raises(FvoptError, match=r"none of its 1 image file can be opened \(first: huge\.png: Image size"):
        reference_set(root)
    Image.new("RGB", (20, 20)).save(root / "small.png")  # one readable image is enough to start
    assert len(reference_set(root)) == 2


# refused before work: 1-channel networks with a reference, judges, examples


class Gray(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


def test_a_one_channel_network_with_a_reference_is_refused_before_the_run():
    model = fvopt.wrap(Gray(), input_size=28)
    with pytest.raises(FvoptError, match=r"reference builtin: the reference photos are RGB and .* takes 1 channel"):
        fvopt.visualize(model, "channel:conv:1", steps=2, device="cpu", reference="builtin", progress=False)
    with pytest.raises(FvoptError, match="the reference photos are RGB"):
        judge(torch.rand(1, 1, 28, 28), "channel:conv:1", model, reference="builtin")
    vis = fvopt.visualize(model, "channel:conv:1", steps=2, device="cpu", progress=False)  # no reference: runs
    assert vis.trace["quality"]["measures"] == ["spectral_slope"]
    vis = fvopt.visualize(model, "channel:conv:1", steps=2, device="cpu", reference="none", progress=False)
    assert vis.trace["quality"]["measures"] == ["spectral_slope"]  # 'none' is no reference, not one refused


def test_a_bench_of_a_one_channel_network_with_a_reference_is_refused_before_any_cell(tmp_path, capsys):
    net = HERE.parent / "docs" / "examples" / "my_net.py"
    spec = tmp_path / "gray.toml"
    spec.write_text(
        f"""[bench]
models = ["{net}:stripes_net"]
targets = ["class:1"]
params = ["pixel"]
size = 28
seeds = [0]
budget = {{ steps = 2 }}
reference = "builtin"
input = {{ channels = 1, mean = [0.5], std = [0.25], input_size = 28 }}

[[strategies]]
name = "adam"
"""
    )
    db = tmp_path / "gray.sqlite"
    assert main(["bench", "run", str(spec), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "spec bench.reference: reference builtin: the reference photos are RGB" in err
    assert not db.exists()  # refused before the results database was made, so before any cell


def test_an_unknown_judge_is_refused_before_the_model_loads(tmp_path, capsys):
    with pytest.raises(FvoptError, match=r"judge: unknown model 'nosuchnet'"):
        fvopt.visualize("lite0", "channel:blocks.3:0", steps=1, judge="nosuchnet", progress=False)
    out = tmp_path / "v.png"
    assert main(["viz", "--target", "channel:blocks.3:0", "--judge", "nosuchnet", "--out", str(out), "--quiet"]) == 2
    assert "judge: unknown model 'nosuchnet'" in capsys.readouterr().err and not out.exists()
    with pytest.raises(FvoptError, match="there is no file"):
        fvopt.visualize("lite0", "channel:blocks.3:0", steps=1, judge=str(tmp_path / "none.py:make"), progress=False)


def test_a_bench_spec_with_an_unknown_judge_is_refused_before_any_cell():
    from fvopt.bench.judging import check_against, quality_settings

    with pytest.raises(FvoptError, match=r"^spec bench\.judge: unknown model 'nosuchnet'"):
        check_against(quality_settings(judge="nosuchnet"), ["lite0"], ["channel:blocks.3:0"], {}, where="spec bench.")


def test_a_judge_naming_the_optimized_file_by_another_path_is_refused(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "net.py").write_text((HERE / "test_own_models.py").read_text())
    os.symlink(tmp_path / "net.py", tmp_path / "link.py")
    model = f"{tmp_path}/net.py:small_cnn"
    for other in (f"{tmp_path}/sub/../net.py:small_cnn", f"{tmp_path}/link.py:small_cnn", "net.py:small_cnn"):
        monkeypatch.chdir(tmp_path)
        assert same_network(other, model)
        with pytest.raises(FvoptError, match=r"judge .* is the optimized model \("):
            fvopt.visualize(model, "class:1", steps=1, input_size=28, judge=other, progress=False)
    assert not same_network(f"{tmp_path}/net.py:raises", model)  # another factory of the same file
    assert not same_network("lite1", "lite0")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--top", "100000"],
            r"top 100000 cannot be filled .*: a list holds at most 18 \(2 per source photo, 9 sources\).*"
            r"; give --top 18 or less, or a larger --per-source",
        ),
        (["--side", "16"], r"side 16 is below lite0's minimum input of 32 px"),
        (["--side", "1"], r"side 1 is below lite0's minimum input of 32 px"),
    ],
)
def test_examples_that_cannot_be_made_are_refused_before_the_pass(args, message, tmp_path, cache, capsys):
    out = tmp_path / "ex"
    assert main(["examples", "lite0", "--target", "channel:blocks.3:0", *args, "--out", str(out), "--quiet"]) == 2
    assert re.search(message, capsys.readouterr().err) and not out.exists() and not cache.exists()


def test_examples_from_two_images_are_refused_beyond_one_each_and_never_repeat_top_in_bottom(tmp_path, cache, capsys):
    ref = str(_photos(tmp_path / "two", 2))
    base = ["examples", "lite0", "--target", "channel:blocks.3:0", "--reference", ref, "--side", "64", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    assert (
        "a top and a bottom list of 9 need 18 distinct images and it has 2; give --top 1 or less"
        in capsys.readouterr().err
    )
    assert main([*base, "--top", "1", "--out", str(tmp_path / "b")]) == 0
    unit = json.loads((tmp_path / "b" / "index.json").read_text())["units"][0]
    assert len(unit["top"]) == len(unit["bottom"]) == 1 and unit["top"] != unit["bottom"]


def test_examples_say_when_unreadable_images_leave_a_list_short(tmp_path, cache, capsys):
    ref = _photos(tmp_path / "ref", 4)
    for name in ("x.jpg", "y.jpg"):  # counted before the pass, found unreadable during it
        (ref / name).write_bytes(b"\xff\xd8\xff not a jpeg")
    args = ["examples", "lite0", "--target", "channel:blocks.3:0", "--reference", str(ref), "--top", "3"]
    assert main([*args, "--side", "64", "--out", str(tmp_path / "ex"), "--quiet"]) == 0
    assert "top/bottom 3, fewer for 1 unit (unit 0: 3 top, 1 bottom: every readable image" in capsys.readouterr().out


def test_a_bottom_list_excludes_the_top_list_and_its_near_copies():
    values = np.array([5.0, 4.0, 3.0, 2.0])
    tops = spread_select(values, ["a", "a", "b", "b"], 2, 2)
    assert tops == [0, 1]
    assert spread_select(values, ["a", "a", "b", "b"], 4, 2, largest=False, exclude=tops) == [3, 2]
    assert spread_select(values, list("abcd"), 4, 1, largest=False, same=[0, 1, 0, 1], exclude=[0]) == [3]


# a cache file with the right key and a payload that cannot be used: corrupt, rebuilt


@pytest.mark.parametrize(
    "spoil, why",
    [
        (lambda p: p.pop("mean"), "mean missing"),
        (lambda p: p["mean"].fill_(float("nan")), "values that are not finite"),
        (lambda p: p.update(side=float("nan")), "side nan"),
        (lambda p: p.update(grid=torch.tensor([0, 0])), "grid missing"),
        (lambda p: p["valid"].fill_(False), "no image marked as read"),
    ],
)
def test_a_cache_with_the_right_key_and_a_spoiled_payload_is_corrupt_and_rebuilt(tmp_path, lite0, capsys, spoil, why):
    ref = reference_set(_photos(tmp_path / "ref"))
    fresh = reference_pass(lite0, ref, ["blocks.3"], side=64, cache_folder=tmp_path / "c", progress=False)["blocks.3"]
    path = cache_mod.cache_path(_key(lite0, ref, "blocks.3", 64), tmp_path / "c")
    data = torch.load(path, weights_only=True)
    spoil(data["payload"])
    torch.save(data, path)
    again = reference_pass(lite0, ref, ["blocks.3"], side=64, cache_folder=tmp_path / "c", progress=False)["blocks.3"]
    err = capsys.readouterr().err
    assert f"is corrupt ({why}" in err and "rebuilding it" in err
    assert again.how == "computed" and torch.allclose(again.mean, fresh.mean, equal_nan=True)
    assert reference_pass(lite0, ref, ["blocks.3"], side=64, cache_folder=tmp_path / "c")["blocks.3"].how == "cache"


# spectral slope of images too small for one


def test_images_too_small_for_a_spectral_slope_say_so_or_are_refused_when_it_is_named():
    _, absent, _ = plan("class:1", 1, False, "default", size=(3, 3))
    assert absent["spectral_slope"].startswith("images of 3x3 px are too small for a spectral slope")
    with pytest.raises(FvoptError, match="measure spectral_slope cannot be computed here: images of 3x3 px"):
        plan("class:1", 1, False, ["spectral_slope"], size=(3, 3))
    assert "spectral_slope" not in plan("class:1", 1, False, "default", size=(10, 10))[1]
    row = {"reference": "none", "spectral_slope_absent": absent["spectral_slope"]}
    assert "spectral_slope absent: images of 3x3 px are too small" in summary_line(row)


# SIGTERM while a viz run's images are judged


@pytest.mark.slow
def test_sigterm_during_the_reference_pass_of_viz_keeps_the_image_exits_143_and_says_a_rerun_resumes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FVOPT_CACHE": str(tmp_path / "cache")}
    out, trace = tmp_path / "v.png", tmp_path / "t.json"
    cmd = [sys.executable, "-m", "fvopt.cli", "viz", "--target", "channel:blocks.3:0", "--steps", "1", "--size", "64"]
    cmd += ["--reference", "builtin", "--measures", "natural_ratio", "--out", str(out), "--trace", str(trace)]
    returncode, last = terminate_when_stderr_shows(cmd, env, r"reference pass.*\| (6[4-9]|[7-9]\d|\d{3})/688")
    assert returncode == 143, last
    kept = re.fullmatch(
        rf"fvopt: terminated \(SIGTERM\) while judging for quality: kept the image in {re.escape(str(out))} and its "
        rf"trace in {re.escape(str(trace))} \(not judged\); the reference pass \(lite0 blocks\.3\) kept its first "
        r"(\d+) of 688 images, and the same command resumes the reference pass from there",
        last,
    )
    assert kept and int(kept.group(1)) >= 64, last
    assert out.exists() and json.loads(trace.read_text())["quality"]["stopped_while_judging"] is True
