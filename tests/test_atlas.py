"""fvopt atlas (issue 20): bad input refused before work, a site whose numbers are the database's, resume after
SIGKILL without redoing finished units, shards merged equal one unsharded run, pages that render offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from fvopt.atlases import atlas, merge, table
from fvopt.atlases.plan import DATABASE, Settings, Unit, cell_key, parse_shard, shard_slice
from fvopt.cli import main
from fvopt.errors import FvoptError

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
TINY = dict(size=64, steps=2, units="0-3", max_batch=2, progress=False)


def done_keys(site: Path) -> dict[str, float]:
    db = sqlite3.connect(site / DATABASE)
    try:
        return dict(db.execute("SELECT key, finished_at FROM cells WHERE status = 'done'").fetchall())
    finally:
        db.close()


# ---- refusals, before any work -----------------------------------------------------------------------------


def test_shards_split_units_exactly_and_bad_shards_are_refused():
    items = list(range(11))
    assert sorted(sum((shard_slice(items, k, 3) for k in (1, 2, 3)), [])) == items
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/2", "0/2", "1/0", "a/b", "1"):
        with pytest.raises(FvoptError, match="shard"):
            parse_shard(bad)


def test_cell_keys_depend_on_settings_unit_and_optimizer_only():
    s = Settings("lite0", size=64, steps=2)
    assert cell_key(s, Unit("blocks.0", 1), "adam") == cell_key(
        Settings("lite0", size=64, steps=2), Unit("blocks.0", 1), "adam"
    )
    assert cell_key(s, Unit("blocks.0", 1), "adam") != cell_key(s, Unit("blocks.0", 2), "adam")
    assert cell_key(s, Unit("blocks.0", 1), "adam") != cell_key(
        Settings("lite0", size=64, steps=3), Unit("blocks.0", 1), "adam"
    )


def test_cli_refuses_a_bad_shard_in_one_line_before_work(tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["atlas", "lite0", "--layers", "blocks.0", "--shard", "3/2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shard 3/2" in err and not out.exists()


@pytest.mark.parametrize(
    "device, said",
    [
        ("gpu", "'gpu' is not allowed: must be auto, cpu, cuda, cuda:N or mps"),
        pytest.param(
            "cuda",
            "device 'cuda' was asked for but no CUDA GPU is available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
    ],
)
def test_cli_refuses_a_bad_device_in_one_line_before_work(tmp_path, capsys, device, said):
    out = tmp_path / "site"
    try:  # a malformed device is a usage error of the flag (argparse), an absent GPU the library's refusal
        code = main(["atlas", "lite0", "--layers", "blocks.0", "--device", device, "--out", str(out)])
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err and not out.exists()


def test_a_folder_that_is_not_an_atlas_is_refused_and_left_unchanged(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    before = sorted(p.name for p in out.iterdir())
    assert main(["atlas", "lite0", "--layers", "blocks.0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not an fvopt atlas" in err and "left unchanged" in err
    assert sorted(p.name for p in out.iterdir()) == before and (out / "notes.txt").read_text() == "keep me"


def test_an_unknown_layer_is_refused_naming_it(tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["atlas", "lite0", "--layers", "blocks.0,blocks.99", "--out", str(out), "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert "unknown layer 'blocks.99'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


class _Total(torch.nn.Module):
    """One number per image: no channels, no positions."""

    def forward(self, x):
        return x.sum(dim=(1, 2, 3))


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.total = _Total()

    def forward(self, x):
        return torch.stack([self.total(self.conv(x))] * 10, 1)


def test_a_layer_without_channels_is_refused():
    from fvopt import wrap
    from fvopt.atlases.plan import resolve_layers

    net = wrap(_Net(), input_size=32)
    assert resolve_layers(net, ["conv"], 32) == {"conv": 4}
    with pytest.raises(FvoptError, match="layer 'total' of _Net has no channels to visualize: .*shape \\(\\)"):
        resolve_layers(net, ["total"], 32)


# ---- real runs (slow) --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("atlas") / "site"
    frame = atlas("lite0", "blocks.0", "adam,cmaes", out=out, **TINY)
    assert len(frame) == 8 and set(frame["status"]) == {"done"}
    return out


class Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.images = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "data-measure" in a:
            self.cells.append(a)
        if tag == "img":
            self.images.append(a["src"])


@pytest.mark.slow
def test_a_unit_page_shows_the_numbers_the_database_holds(site):
    db = sqlite3.connect(site / DATABASE)
    try:  # the device each batch really ran on ('auto' resolved where it ran)
        devices = {d.split(" ")[0] for (d,) in db.execute("SELECT device FROM cells")}
    finally:
        db.close()
    assert devices == {"cuda" if torch.cuda.is_available() else "cpu"}
    frame = table(site)
    row = frame[(frame.unit == 2) & (frame.optimizer == "cmaes")].iloc[0]
    page = Cells()
    page.feed((site / "units" / "blocks.0" / "2.html").read_text())
    shown = {(c["data-optimizer"], c["data-measure"]): json.loads(c["data-exact"]) for c in page.cells}
    measures = [m for m in ("value", "robust_value", "natural_ratio", "plausibility", "mis", "spectral_slope")]
    assert all(("cmaes", m) in shown for m in measures)
    for m in measures:
        assert shown[("cmaes", m)] == pytest.approx(float(row[m]), rel=0, abs=0), m
    # every image the page names is a file of the site (no external resource)
    for src in page.images:
        assert not re.match(r"^[a-z]+:", src) and (site / "units" / "blocks.0" / src).resolve().is_file()
    layer = (site / "layers" / "blocks.0.html").read_text()
    assert "http://" not in layer and "https://" not in layer
    assert len(re.findall(r'<img alt="\d+" src="../thumbs/', layer)) == 8


@pytest.mark.slow
def test_each_optimizer_has_the_layer_as_one_sprite_map_whose_tiles_are_the_units_thumbnails(site):
    import numpy as np
    from PIL import Image

    layer = (site / "layers" / "blocks.0.html").read_text()
    for opt in ("adam", "cmaes"):
        index = json.loads((site / "sprites" / "blocks.0" / f"{opt}.json").read_text())
        assert index["units"] == [0, 1, 2, 3] and index["columns"] == 2 and index["tile"] == 64
        sprite = np.asarray(Image.open(site / "sprites" / "blocks.0" / f"{opt}.png").convert("RGB"))
        assert sprite.shape == (128, 128, 3)
        for k, unit in enumerate(index["units"]):
            row, column = divmod(k, index["columns"])
            thumb = np.asarray(Image.open(site / "thumbs" / "blocks.0" / opt / f"{unit}.png").convert("RGB"))
            tile = sprite[row * 64 : row * 64 + thumb.shape[0], column * 64 : column * 64 + thumb.shape[1]]
            assert (tile == thumb).all(), (opt, unit)
        assert f'href="../sprites/blocks.0/{opt}.png"' in layer and f'href="../sprites/blocks.0/{opt}.json"' in layer


@pytest.mark.slow
def test_a_grown_request_runs_only_the_new_cells(site, tmp_path):
    grown = tmp_path / "grown"
    shutil.copytree(site, grown)
    before = done_keys(grown)
    frame = atlas("lite0", "blocks.0,blocks.1", "adam,cmaes", out=grown, **{**TINY, "units": "0-1"})
    after = done_keys(grown)
    assert {k: after[k] for k in before} == before  # nothing redone
    assert len(after) == len(before) + 4  # blocks.1 units 0-1 under two optimizers
    assert frame.attrs["summary"].skipped == 4 and frame.attrs["summary"].ran == 4
    with pytest.raises(FvoptError, match="other settings.*steps 2 vs 3"):
        atlas("lite0", "blocks.0", "adam", out=grown, **{**TINY, "steps": 3})


@pytest.mark.slow
def test_two_shards_merged_equal_one_unsharded_run(site, tmp_path, capsys):
    parts = []
    for k in (1, 2):
        parts.append(tmp_path / f"shard{k}")
        atlas("lite0", "blocks.0", "adam,cmaes", out=parts[-1], shard=f"{k}/2", **TINY)
    assert set(done_keys(parts[0])).isdisjoint(done_keys(parts[1]))
    merged = merge(parts, tmp_path / "merged", progress=False)
    assert set(done_keys(tmp_path / "merged")) == set(done_keys(site))
    assert len(merged) == 8 and (tmp_path / "merged" / "units" / "blocks.0" / "3.html").is_file()
    other = tmp_path / "other"
    atlas("lite0", "blocks.0", "adam", out=other, **{**TINY, "units": "0", "size": 72})
    assert main(["atlas", "merge", str(parts[0]), str(other), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "different requests" in err and "size 64 vs 72" in err and not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_two_local_workers_store_the_cells_and_numbers_of_one(site, tmp_path):
    """Workers are forked from the process that loaded the networks and the reference set (Linux) or spawned:
    either way each unit's image, value and measures are those of the in-process run (both on one thread)."""
    frame = atlas("lite0", "blocks.0", "adam", out=tmp_path / "two", workers=2, **TINY)  # two batches of two units
    _assert_same_adam_units(frame, site, rel=1e-4)


def _assert_same_adam_units(frame, site: Path, rel: float) -> None:
    assert frame.attrs["summary"].ran == 4 and set(frame["status"]) == {"done"}
    one = table(site)
    one = one[one.optimizer == "adam"].set_index("unit")
    for _, row in frame.set_index("unit").iterrows():
        for m in ("value", "robust_value", "natural_ratio", "plausibility", "mis", "spectral_slope"):
            # nan_ok: a unit whose 99th percentile over the reference is not positive has no natural_ratio
            assert row[m] == pytest.approx(one.loc[row.name, m], rel=rel, abs=1e-6, nan_ok=True), (row.name, m)


@pytest.mark.slow
def test_the_dask_executor_runs_the_atlas_with_the_numbers_of_one_process(site, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        address = cluster.scheduler_address.replace("tcp://", "dask://")
        frame = atlas("lite0", "blocks.0", "adam", out=tmp_path / "dask", executor=address, **TINY)
    _assert_same_adam_units(frame, site, rel=1e-3)  # the Dask worker may run more torch threads
    assert (tmp_path / "dask" / "units" / "blocks.0" / "3.html").is_file()


def _atlas_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fvopt.cli", "atlas", "lite0", "--layers", "blocks.0", "--optimizers", "adam"] + [
        "--size", "64", "--steps", "20", "--max-batch", "1", "--reference", "none", "--out", str(out), "--quiet",
        *extra,
    ]  # fmt: skip


def _wait_for_some_units(proc, out: Path, total: int) -> dict:
    """The done units once at least one and not all are stored; the atlas still running."""
    deadline = time.time() + 240
    first: dict = {}
    while time.time() < deadline and proc.poll() is None:
        if (out / DATABASE).exists():
            try:
                first = done_keys(out)
            except sqlite3.Error:
                first = {}
            if 1 <= len(first) < total:
                break
        time.sleep(0.2)
    # seconds of work remain after the first unit is stored, so the signal lands mid-atlas (a test that
    # could skip here would prove nothing on a fast machine)
    assert proc.poll() is None, "the atlas finished before it could be stopped: give it more work"
    return first


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find the workers")
def test_ctrl_c_with_two_workers_keeps_the_saved_units_ends_the_workers_and_a_rerun_completes(tmp_path):
    out = tmp_path / "stopped"
    cmd = _atlas_command(out, "--units", "0-9", "--workers", "2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for_some_units(proc, out, 10)
    workers = _children(proc.pid)
    assert workers, "the atlas runs its units in worker processes"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, workers included
    said, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: the finished units are kept, rerun to complete" in said.decode() and not err.strip()
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and "zombie" not in _state(w)]
    first = done_keys(out)
    assert 1 <= len(first) < 10
    assert (out / "index.html").is_file()  # the pages of the saved units were written
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(first)} already done" in rerun.stdout + rerun.stderr
    after = done_keys(out)
    assert len(after) == 10 and {k: after[k] for k in first} == first


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "zombie"


@pytest.mark.slow
def test_sigkill_then_rerun_completes_without_redoing_finished_units(tmp_path):
    out = tmp_path / "killed"
    cmd = _atlas_command(out, "--units", "0-7")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_some_units(proc, out, 8)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    first = done_keys(out)
    assert 1 <= len(first) < 8
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(first)} already done" in rerun.stdout + rerun.stderr
    after = done_keys(out)
    assert len(after) == 8 and {k: after[k] for k in first} == first


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="no Chromium here: .ci/run installs Debian's chromium so that CI runs this")
def test_pages_render_offline_in_chromium_with_every_image_decoded(site, tmp_path):
    base = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    for path, images in [
        (site / "index.html", 0),
        (site / "layers" / "blocks.0.html", 8),
        (site / "units" / "blocks.0" / "1.html", 5),
    ]:
        dom = subprocess.run(
            base + ["--virtual-time-budget=10000", "--dump-dom", path.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        body = re.search(r"<body[^>]*>", dom).group(0)
        assert f'data-images-total="{images}"' in body and f'data-images-loaded="{images}"' in body, (path, body)
        assert not re.search(r'(src|href)="(https?:)?//', dom)


@pytest.mark.slow
def test_a_unit_stopped_on_nan_is_shown_as_such_never_missing(tmp_path):
    """A real NaN: channel 1 of the fixture network is log(-|y| - 1), NaN for every image (its gradient is finite,
    so channel 0's runs are unaffected)."""
    net = Path(__file__).parent / "fixtures" / "atlas_nan_net.py"
    out = tmp_path / "site"
    frame = atlas(
        f"{net}:make", "bad", "adam,cmaes", size=32, steps=3, max_batch=1, reference=None, out=out, progress=False
    )
    summary = frame.attrs["summary"]
    assert sorted(summary.stopped) == ["bad:1 adam", "bad:1 cmaes"] and not summary.failed
    assert "2 stopped on NaN (bad:1 adam, bad:1 cmaes)" in summary.line()
    stopped = frame[frame.nan_stopped]
    assert sorted(zip(stopped.unit, stopped.optimizer)) == [(1, "adam"), (1, "cmaes")]
    page = (out / "units" / "bad" / "1.html").read_text()
    assert page.count('class="bad nan">stopped on NaN: stopped: the objective became NaN') == 2
    assert "bad nan" not in (out / "units" / "bad" / "0.html").read_text()
    assert (out / "layers" / "bad.html").read_text().count("NaN</span>") == 2
    assert (out / "img" / "bad" / "adam" / "1.png").is_file()  # the best image before the NaN is kept


# ---- seeds and diversity sets (on the tiny fixture network: a 3->2 convolution) -----------------------------

FIXTURE = f"{Path(__file__).parent / 'fixtures' / 'atlas_nan_net.py'}:make"
SMALL = dict(size=32, steps=3, max_batch=2, reference=None, progress=False)


class Figures(HTMLParser):
    """A unit page's images (figure data-optimizer/data-seed/data-value and the img in it) and its number cells."""

    def __init__(self):
        super().__init__()
        self.figures, self.cells, self.sets, self._fig = [], [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure" and "data-seed" in a:
            self._fig = {**a}
            self.figures.append(self._fig)
        if tag == "img" and self._fig is not None:
            self._fig["src"] = a["src"]
        if tag == "td" and "data-measure" in a:
            self.cells.append(a)
        if a.get("data-set") == "diversity":
            self.sets.append(a)

    def handle_endtag(self, tag):
        if tag == "figure":
            self._fig = None


def stored(site: Path) -> list[dict]:
    from fvopt.bench.store import Store

    store = Store(site / DATABASE, readonly=True)
    try:
        return store.rows(status=None)
    finally:
        store.close()


def test_one_seed_keeps_the_key_of_atlases_made_before_seed_lists():
    s = Settings("lite0", size=64, steps=2, seed=3)
    unit = Unit("blocks.0", 1)
    assert cell_key(s, unit, "adam", 3) == cell_key(s, unit, "adam")
    assert cell_key(s, unit, "adam", 4) != cell_key(s, unit, "adam")
    assert cell_key(s, unit, "adam", 3, diversity=3) != cell_key(s, unit, "adam", 3)


@pytest.mark.slow
def test_growing_seeds_runs_only_the_new_seeds_and_the_unit_page_shows_each(tmp_path):
    out = tmp_path / "site"
    first = atlas(FIXTURE, "conv", "adam,cmaes", seed=0, out=out, **SMALL)
    before = done_keys(out)
    assert len(before) == 4 and list(first.seed) == [0] * 4
    frame = atlas(FIXTURE, "conv", "adam,cmaes", seeds="0,1,2", out=out, **SMALL)
    after = done_keys(out)
    assert len(after) == 12 and {k: after[k] for k in before} == before  # 8 new cells, nothing redone
    assert frame.attrs["summary"].skipped == 4 and frame.attrs["summary"].ran == 8
    assert len(frame) == 12 and sorted(frame.groupby("seed").size().items()) == [(0, 4), (1, 4), (2, 4)]
    rows = {(r["strategy"], r["seed"], r["extra"]["unit"]): r for r in stored(out)}
    page = Figures()
    page.feed((out / "units" / "conv" / "1.html").read_text())
    shown = {(f["data-optimizer"], int(f["data-seed"])): f for f in page.figures}
    assert sorted(shown) == [
        (o, s) for o in ("adam", "cmaes") for s in (0, 1, 2)
    ]  # a row per optimizer, a column per seed
    images = set()
    for (opt, seed), fig in shown.items():
        assert json.loads(fig["data-value"]) == rows[(opt, seed, 1)]["final"]["value"]
        path = (out / "units" / "conv" / fig["src"]).resolve()
        assert path.read_bytes() == rows[(opt, seed, 1)]["image"]
        images.add(path)
    assert len(images) == 6
    cells = {
        (c["data-optimizer"], int(c["data-seed"]), c["data-measure"]): json.loads(c["data-exact"]) for c in page.cells
    }
    for (opt, seed, measure), v in cells.items():
        row = frame[(frame.unit == 1) & (frame.optimizer == opt) & (frame.seed == seed)].iloc[0]
        assert v == float(row[measure]), (opt, seed, measure)
    assert {(o, s) for o, s, _ in cells} == set(shown)
    assert "seed 0 (the first of seeds 0, 1, 2" in (out / "layers" / "conv.html").read_text()


@pytest.mark.slow
def test_sites_of_different_seeds_and_shards_merge_into_one(tmp_path):
    parts = [tmp_path / "a", tmp_path / "b"]
    atlas(FIXTURE, "conv", "adam", seeds="0", shard="1/2", out=parts[0], **SMALL)
    atlas(FIXTURE, "conv", "adam", seeds="0,1", shard="2/2", out=parts[1], **SMALL)
    merged = merge(parts, tmp_path / "merged", progress=False)
    assert sorted(zip(merged.unit, merged.seed)) == [(0, 0), (1, 0), (1, 1)]
    meta = json.loads((tmp_path / "merged" / "atlas.json").read_text())
    assert meta["seeds"] == [0, 1] and meta["settings"]["seed"] == 0
    assert "seed 1" in (tmp_path / "merged" / "units" / "conv" / "1.html").read_text()


@pytest.mark.parametrize(
    "bad, said", [("1", "diversity 1 is not allowed"), ("abc", "diversity 'abc' is not a whole number")]
)
def test_a_bad_diversity_is_refused_in_one_line_before_work(tmp_path, capsys, bad, said):
    out = tmp_path / "site"
    assert (
        main(
            [
                "atlas",
                FIXTURE,
                "--layers",
                "conv",
                "--diversity",
                bad,
                "--size",
                "32",
                "--reference",
                "none",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err and "2 or more" in err and not out.exists()
    with pytest.raises(FvoptError, match="seeds"):
        atlas(FIXTURE, "conv", seeds="0,x", out=out, **SMALL)
    assert not out.exists()


@pytest.mark.parametrize(
    "args, said",
    [
        (["--diversity", "2", "--diversity-weight", "abc"], "diversity weight 'abc' is not a number"),
        (
            ["--diversity", "2", "--diversity-weight", "-1"],
            "diversity_weight=-1.0 is not allowed: must be a number > 0",
        ),
        (["--diversity", "2", "--diversity-weight", "inf"], "diversity_weight=inf is not allowed"),
        (["--diversity-weight", "3"], "diversity weight 3 applies to diversity sets, and none was asked for"),
    ],
)
def test_a_bad_diversity_weight_is_refused_in_one_line_before_work(tmp_path, capsys, args, said):
    out = tmp_path / "site"
    cmd = ["atlas", FIXTURE, "--layers", "conv", *args, "--size", "32", "--reference", "none", "--out", str(out)]
    assert main(cmd) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err and not out.exists(), err


@pytest.mark.slow
def test_a_diversity_weight_is_the_sets_target_and_a_setting_of_the_site(tmp_path):
    out = tmp_path / "site"
    atlas(FIXTURE, "conv", "adam", diversity=2, diversity_weight=3, units="1", out=out, **SMALL)
    row = next(r for r in stored(out) if (r["extra"] or {}).get("diversity"))
    assert row["target"] == "channel:conv:1 - 3*diversity:conv" and row["extra"]["diversity_weight"] == 3
    assert "weight 3 on the diversity term" in (out / "units" / "conv" / "1.html").read_text()
    assert json.loads((out / "atlas.json").read_text())["settings"]["diversity_weight"] == 3
    with pytest.raises(FvoptError, match="other settings.*diversity_weight 3.0 vs 1.0"):
        atlas(FIXTURE, "conv", "adam", diversity=2, units="1", out=out, **SMALL)


@pytest.mark.slow
def test_a_diversity_set_of_three_stores_three_different_images(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    out = tmp_path / "site"
    frame = atlas(FIXTURE, "conv", "adam", diversity=3, units="1", out=out, **SMALL)
    sets = [r for r in stored(out) if (r["extra"] or {}).get("diversity")]
    assert len(sets) == 1 and len(done_keys(out)) == 2  # the unit's one image, and its set
    row = sets[0]
    assert row["status"] == "done" and row["extra"]["images"] == 3 and len(row["final"]["values"]) == 3
    strip = np.asarray(Image.open(io.BytesIO(row["image"])).convert("RGB")).astype(int)
    assert strip.shape == (32, 96, 3)
    tiles = [strip[:, 32 * k : 32 * (k + 1)] for k in range(3)]
    assert all(np.abs(tiles[i] - tiles[j]).max() > 0 for i in range(3) for j in range(i + 1, 3))
    assert row["target"] == "channel:conv:1 - 1*diversity:conv"
    div = frame[frame.set_size == 3].iloc[0]
    assert div["seed"] == 0 and div["diversity"] == row["quality"]["diversity"]
    page = Figures()
    text = (out / "units" / "conv" / "1.html").read_text()
    page.feed(text)
    exact = {a["data-measure"]: json.loads(a["data-exact"]) for a in page.sets}
    assert exact == {"values": row["final"]["values"], "diversity": row["quality"]["diversity"]}
    assert "diversity set" in text and "weight 1 on the diversity term" in text
    assert (out / "img" / "conv" / "diversity-3" / "1.png").read_bytes() == row["image"]
    again = atlas(FIXTURE, "conv", "adam", diversity=3, units="1", out=out, **SMALL)
    assert again.attrs["summary"].ran == 0 and again.attrs["summary"].skipped == 2


def test_a_diversity_set_that_cannot_fit_in_memory_is_refused_before_any_unit_runs(tmp_path, monkeypatch):
    import fvopt.runtime.memory

    monkeypatch.setattr(fvopt.runtime.memory, "available_bytes", lambda device: 2**24)  # 16 MiB free
    out = tmp_path / "site"
    with pytest.raises(
        FvoptError, match=r"^diversity 100000: 100000 image\(s\) of 32x32 px need about .* --diversity$"
    ):
        atlas(FIXTURE, "conv", diversity=100000, out=out, **SMALL)
    assert not (out / "atlas.sqlite").exists()  # no unit ran


def test_an_output_folder_that_cannot_be_made_is_refused_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    args = ["atlas", FIXTURE, "--layers", "conv", "--size", "32", "--reference", "none", "--out", str(blocker / "site")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{blocker}' is a file, not a directory" in err
