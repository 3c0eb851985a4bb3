"""`fvopt examples`: dataset examples per unit, on the stand-in and on a folder of 200 images."""

import json

import numpy as np
import pytest
from PIL import Image

from fvopt.cli import main
from fvopt.quality.synthetic import make_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "quality-folder-200"  # shared with test_quality_measures
    if not root.exists():
        make_folder(root, n=200)
    return root


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.getbasetemp() / "quality-cache"
    path.mkdir(exist_ok=True)
    monkeypatch.setenv("FVOPT_CACHE", str(path))
    return path


@pytest.mark.slow
def test_examples_on_a_folder_of_200_images(folder, cache, tmp_path, capsys):
    out = tmp_path / "ex"
    assert (
        main(
            [
                "examples",
                "lite0",
                "--target",
                "channel:blocks.5:0-3",
                "--reference",
                str(folder),
                "--side",
                "96",
                "--top",
                "5",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    line = capsys.readouterr().out
    assert f"reference: {folder.resolve()} (200 images)" in line
    index = json.loads((out / "index.json").read_text())
    assert [u["unit"] for u in index["units"]] == [0, 1, 2, 3]
    assert index["reference"] == f"{folder.resolve()} (200 images)" and index["side"] == 96
    for unit in index["units"]:
        top, bottom = unit["top_activations"], unit["bottom_activations"]
        assert len(top) == len(bottom) == 5
        assert top == sorted(top, reverse=True) and bottom == sorted(bottom) and top[-1] >= bottom[-1]
        assert all((folder / s).is_file() for s in unit["top_sources"] + unit["bottom_sources"])
        assert all(0 <= y0 < y1 <= 96 and 0 <= x0 < x1 <= 96 for y0, x0, y1, x1 in unit["boxes"])
        with Image.open(out / unit["grid"]) as grid:  # rows: top, crops, bottom; 5 columns
            assert grid.size[0] > 5 * 96 and grid.size[1] > 3 * 96
    assert (out / "overview.png").is_file()


@pytest.mark.slow
def test_examples_on_the_stand_in_spread_over_photos(cache, tmp_path, capsys):
    out = tmp_path / "ex"
    assert (
        main(
            [
                "examples",
                "lite0",
                "--target",
                "channel:blocks.3:7",
                "--side",
                "64",
                "--top",
                "6",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert "reference: built-in stand-in (688 crops of 9 scikit-image photos)" in capsys.readouterr().out
    unit = json.loads((out / "index.json").read_text())["units"][0]
    photos = [s.split(":")[1].split("@")[0] for s in unit["top_sources"]]
    assert max(photos.count(p) for p in photos) <= 2  # at most 2 crops per source photo
    # class targets read the logits: no crops
    assert (
        main(
            [
                "examples",
                "lite0",
                "--target",
                "class:8",
                "--side",
                "64",
                "--top",
                "3",
                "--out",
                str(tmp_path / "cls"),
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "cls" / "index.json").read_text())["units"][0]["boxes"] is None


def test_an_unreadable_file_among_good_ones_is_counted_as_skipped(tmp_path, cache, capsys):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(4):
        Image.fromarray(np.full((48, 48, 3), 60 * i, np.uint8)).save(root / f"{i}.png")
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert (
        main(
            [
                "examples",
                "lite0",
                "--target",
                "channel:blocks.2:0",
                "--reference",
                str(root),
                "--side",
                "64",
                "--top",
                "2",
                "--out",
                str(tmp_path / "ex"),
                "--quiet",
            ]
        )
        == 0
    )
    assert "(4 images, 1 skipped)" in capsys.readouterr().out
    index = json.loads((tmp_path / "ex" / "index.json").read_text())
    assert list(index["skipped"]) == ["bad.png"]
    assert "bad.png" not in index["units"][0]["top_sources"] + index["units"][0]["bottom_sources"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--top", "0"], "argument --top: '0' is not allowed"),
        (["--reference", "EMPTY"], "holds no JPEG/PNG/WebP images (nothing)"),
        (["--reference", "TEXT"], "holds no JPEG/PNG/WebP images (only 2 other files)"),
        (["--reference", "MISSING"], "does not exist"),
        (["--target", "neuron:blocks.3:1"], "dataset examples need a channel:LAYER:INDICES or class:INDICES target"),
        (["--target", "channel:blocks.99:1"], "unknown layer 'blocks.99'"),
        (["--target", "channel:blocks.3:999"], "unit 999 is out of range"),
    ],
)
def test_bad_examples_input_is_one_line_before_work(args, message, tmp_path, cache, capsys):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "TEXT").mkdir()
    (tmp_path / "TEXT" / "a.txt").write_text("x")
    (tmp_path / "TEXT" / "b.csv").write_text("x")
    args = [str(tmp_path / a) if a in ("EMPTY", "TEXT", "MISSING") else a for a in args]
    base = ["examples", "lite0", "--target", "channel:blocks.3:1", "--out", str(tmp_path / "o"), "--quiet"]
    argv = base[:2] + base[2:4] + base[4:] if "--target" not in args else base[:2] + base[4:]
    try:
        code = main(argv + args)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
    assert not list(cache.glob("*.tmp"))
