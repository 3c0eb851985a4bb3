"""The atlas at equal budgets (issue 26): `--passes/--forwards/--seconds` as in viz, what each cell spent stored and
shown, the parameterization each optimizer searched named; file names from layer names kept inside `--out` (atlas,
dataset examples, bench report); atlas inputs refused before work; one spelling of `--reference none`."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fvopt.atlases import atlas, table
from fvopt.atlases.plan import DATABASE, DEFAULT_PASSES, META, Settings
from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.io.filenames import inside, safe_name

# ---- file names -----------------------------------------------------------------------------------------------


def test_safe_names_are_one_plain_component_and_distinct():
    assert safe_name("blocks.3") == "blocks.3" and safe_name("adam") == "adam"  # plain names: pages keep their paths
    for name in ("..", ".", "/tmp/x/EVIL", "a/b", "a\\b", "../../etc", "blocks.1#2", "", "x" * 300):
        safe = safe_name(name)
        assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", safe) and len(safe) <= 120, (name, safe)
        assert safe not in (".", "..")
    assert safe_name("a/b") != safe_name("a_b") != safe_name("a\\b")


def test_inside_refuses_a_path_outside_its_folder(tmp_path):
    assert inside(tmp_path, "layers", "a.html") == tmp_path / "layers" / "a.html"
    for parts in (("..", "x.html"), ("/tmp/x/EVIL.html",), ("units", "..", "..", "x")):
        with pytest.raises(FvoptError, match="outside the output folder"):
            inside(tmp_path, *parts)


EVIL_NET = """
import torch

EVIL = {evil!r}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)
        self.add_module(EVIL, torch.nn.ReLU())
        self.add_module("a/b", torch.nn.ReLU())

    def forward(self, x):
        return self._modules["a/b"](self._modules[EVIL](self.conv(x)))


def make():
    torch.manual_seed(0)
    return Net()
"""


@pytest.fixture
def evil(tmp_path):
    """A factory file whose layers are named with an absolute path ('/tmp/fvoptevil.../outside/EVIL', a folder of
    its own: a '-' as in pytest's folders would read as a target's minus) and a separator ('a/b'), and four
    reference pictures."""
    import tempfile

    from PIL import Image
    import numpy as np

    elsewhere = Path(tempfile.mkdtemp(prefix="fvoptevil"))
    outside = elsewhere / "outside"
    net = tmp_path / "net.py"
    net.write_text(EVIL_NET.format(evil=str(outside / "EVIL")))
    ref = tmp_path / "ref"
    ref.mkdir()
    for i in range(4):
        Image.fromarray((np.random.RandomState(i).rand(40, 40, 3) * 255).astype("uint8")).save(ref / f"{i}.png")
    yield {"model": f"{net}:make", "layer": str(outside / "EVIL"), "outside": outside, "ref": ref, "root": tmp_path}
    assert not outside.exists()
    elsewhere.rmdir()  # empty: nothing was written there


def files_under(root: Path, but: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and but not in p.parents}


@pytest.mark.slow
def test_an_atlas_of_layers_named_as_paths_writes_nothing_outside_its_folder(evil):
    root, out = evil["root"], evil["root"] / "site"
    before = files_under(root, out)
    atlas(
        evil["model"], [evil["layer"], "a/b"], "adam", size=32, passes=6, units="0", reference=str(evil["ref"]), top=1,
        out=out, progress=False,
    )  # fmt: skip
    assert files_under(root, out) == before and not evil["outside"].exists()
    layer_page = out / "layers" / f"{safe_name(evil['layer'])}.html"
    assert layer_page.is_file() and (out / "layers" / f"{safe_name('a/b')}.html").is_file()
    assert (out / "units" / safe_name(evil["layer"]) / "0.html").is_file()
    assert (out / "examples" / safe_name(evil["layer"]) / "0-top.jpg").is_file()
    index = (out / "index.html").read_text()
    assert f'href="layers/{safe_name(evil["layer"])}.html"' in index and evil["layer"] in index  # shown as named
    for page in out.rglob("*.html"):  # every local link and image of every page lies inside the site
        for link in re.findall(r'(?:src|href)="([^"]+)"', page.read_text()):
            assert (page.parent / link).resolve().is_relative_to(out.resolve()), (page, link)
            assert (page.parent / link).exists(), (page, link)


@pytest.mark.slow
def test_dataset_examples_of_a_layer_named_as_a_path_stay_inside_the_output_folder(evil, capsys):
    root, out = evil["root"], evil["root"] / "examples"
    before = files_under(root, out)
    code = main(
        ["examples", evil["model"], "--target", f"channel:{evil['layer']}:0", "--reference", str(evil["ref"]),
         "--top", "1", "--side", "32", "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert files_under(root, out) == before and not evil["outside"].exists()
    assert (out / "unit-0.png").is_file() and json.loads((out / "index.json").read_text())["layer"] == evil["layer"]


@pytest.mark.slow
def test_a_bench_report_of_targets_named_as_paths_writes_nothing_outside_its_folder(evil, capsys):
    root = evil["root"]
    spec = root / "spec.toml"
    spec.write_text(
        f'[bench]\nname = "evil"\nsize = 32\nseeds = [0]\nmodels = ["{evil["model"]}"]\n'
        f'targets = ["channel:{evil["layer"]}:0", "channel:a/b:1"]\nbudget = {{ passes = 6 }}\n'
        '[[strategies]]\nname = "adam"\n'
    )
    db, out = root / "res.sqlite", root / "report"
    assert main(["bench", "run", str(spec), "--db", str(db), "--quiet"]) == 0, capsys.readouterr().err
    before = files_under(root, out)
    assert main(["bench", "report", str(db), "--out", str(out)]) == 0, capsys.readouterr().err
    assert files_under(root, out) == before and not evil["outside"].exists()
    assert any(p.name.startswith("images_") for p in out.iterdir())


# a 3->2 convolution (tests/fixtures): cheap; at 64 px CMA-ES searches fft:k=8 there, as on any network
FIXTURE = f"{Path(__file__).parent / 'fixtures' / 'atlas_nan_net.py'}:make"

# ---- budgets ----------------------------------------------------------------------------------------------------


def test_the_default_budget_is_the_passes_of_64_first_order_steps_and_old_keys_are_kept():
    from fvopt.atlases.api import _budget

    assert _budget(None, None, None, None) == {"passes": DEFAULT_PASSES} and DEFAULT_PASSES == 64 * (1 + 2)
    assert _budget(16, None, None, 2.5) == {"steps": 16, "seconds": 2.5}
    steps_only = Settings("lite0", size=64, steps=16)
    assert "passes" not in steps_only.as_dict() and steps_only.as_dict()["steps"] == 16  # keys made before budgets
    both = Settings("lite0", steps=None, passes=120)
    assert both.budget(3) == {"passes": 360}  # a run of 3 units: 3 cells' passes
    assert Settings("lite0", steps=8, passes=120, seconds=2.0).budget(4) == {"steps": 8, "passes": 480, "seconds": 8.0}


@pytest.mark.slow
def test_an_atlas_of_adam_and_cmaes_at_120_passes_stores_both_cells_within_the_budget(tmp_path):
    out = tmp_path / "site"
    frame = atlas(
        FIXTURE, "conv", "adam,cmaes", size=64, passes=120, max_batch=2, reference=None, out=out, progress=False,
    )  # fmt: skip
    assert {"forwards", "backwards", "passes", "seconds", "param_used"} <= set(frame.columns)
    assert len(frame) == 4 and set(frame.status) == {"done"}
    for row in frame.itertuples():
        assert row.passes == row.forwards + 2 * row.backwards and row.seconds > 0
        step = 3 if row.optimizer == "adam" else 24  # one step: a forward and a backward; one generation of 24
        assert 120 - step < row.passes <= 120, row  # within the budget, and it was spent (a run of 2 units: 240)
    adam, cmaes = frame[frame.optimizer == "adam"], frame[frame.optimizer == "cmaes"]
    assert set(adam.param_used) == {"fft"} and set(cmaes.param_used) == {"fft:k=8"}
    assert (cmaes.backwards == 0).all() and (adam.forwards == adam.backwards).all()
    meta = json.loads((out / META).read_text())
    assert meta["settings"]["passes"] == 120 and meta["settings"]["steps"] is None
    index = (out / "index.html").read_text()
    assert "budget 120 passes per cell" in index and "searched fft:k=8" in index
    assert re.search(r'data-optimizer="cmaes" data-passes="(\d+(\.\d+)?)"', index)
    layer = (out / "layers" / "conv.html").read_text()
    assert ">cmaes (fft:k=8)</button>" in layer and "searched fft:k=8" in layer
    unit = (out / "units" / "conv" / "0.html").read_text()
    for row in frame[frame.unit == 0].itertuples():
        for name in ("passes", "forwards", "backwards"):
            shown = re.search(
                rf'data-spent="{name}" data-optimizer="{row.optimizer}" data-seed="0" data-exact="(\d+)"', unit
            )
            assert shown and int(shown.group(1)) == getattr(row, name), (row.optimizer, name)
    assert table(out)[["optimizer", "passes"]].equals(frame[["optimizer", "passes"]])
    with sqlite3.connect(out / DATABASE) as con:  # each cell keeps its run's step times and warm-up, as bench cells do
        stored = con.execute("SELECT strategy, median_step_seconds, max_step_seconds, warmup_seconds FROM cells")
        timings = {strategy: rest for strategy, *rest in stored.fetchall()}
    assert set(timings) == {"adam", "cmaes"}
    for median_step, max_step, warmup in timings.values():
        assert 0 < median_step <= max_step and warmup >= 0


@pytest.mark.parametrize(
    "args, said",
    [
        (["--passes", "10"], "a budget of 10 passes is too small for one step of cmaes (per cell)"),
        pytest.param(["--forwards", "2", "--optimizers", "adam"], None, marks=pytest.mark.slow),  # the control: runs
        (["--measures", "bogus"], "unknown measure 'bogus'"),
        (["--measures", "mis", "--reference", "none"], "measure mis cannot be computed here: mis needs reference"),
        (["--measures", "diversity"], "diversity needs a batch of 2 or more images"),
        (["--passes", "0"], "--passes: '0' is not allowed"),
        (["--seconds", "nan"], "--seconds: 'nan' is not allowed"),
    ],
)
def test_bad_atlas_inputs_are_refused_in_one_line_before_work(tmp_path, capsys, args, said):
    out = tmp_path / "site"
    base = ["atlas", "lite0", "--layers", "blocks.1", "--units", "0", "--size", "32", "--reference", "none"]
    try:
        code = main([*base, *args, "--out", str(out), "--quiet"])
    except SystemExit as exit:  # argparse's refusals
        code = exit.code
    err = capsys.readouterr().err
    if said is None:
        assert code == 0 and (out / DATABASE).is_file(), err
        return
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    assert not (out / META).exists()  # nothing stored: the corrected command is not refused


def test_python_api_inputs_of_the_wrong_type_are_one_line_errors(tmp_path):
    with pytest.raises(FvoptError, match="layers must be comma-separated names or a list of names.*not int 5"):
        atlas("lite0", layers=5, out=tmp_path / "a", progress=False)
    with pytest.raises(FvoptError, match="budget passes"):
        atlas("lite0", "blocks.1", passes=-3, out=tmp_path / "a", progress=False)
    with pytest.raises(FvoptError, match="measures must be"):
        atlas("lite0", "blocks.1", measures=3, out=tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()


def test_a_site_made_with_steps_is_refused_another_budget_naming_how_to_grow_it(tmp_path):
    from fvopt.atlases.plan import check_site

    site = tmp_path / "site"
    site.mkdir()
    old = Settings("lite0", size=32, steps=16)
    (site / META).write_text(json.dumps({"kind": "fvopt atlas", "settings": old.as_dict(), "layers": []}))
    with pytest.raises(
        FvoptError, match=r"steps 16 vs None; passes None vs 192.*grow it with its budget \(--steps 16\)"
    ):
        check_site(site, Settings("lite0", size=32, steps=None, passes=192))
    assert check_site(site, Settings("lite0", size=32, steps=16))["settings"] == old.as_dict()


def test_fvopt_atlases_table_works_after_a_plain_import_fvopt(tmp_path):
    code = "import fvopt, sys; f = fvopt.atlases.table; assert callable(f); print(f.__module__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "fvopt.atlases.api", done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        import fvopt

        fvopt.nosuch  # noqa: B018


def test_help_shows_the_parameters_of_visualize_and_atlas_which_still_load_only_on_first_use():
    """`fvopt.visualize` and `fvopt.atlas` are the functions themselves (a *args/**kwargs wrapper hid their
    parameters from help() and notebooks), and `import fvopt` still loads neither them nor pandas."""
    code = (
        "import inspect, sys, fvopt\n"
        "print('fvopt.viz' in sys.modules, 'pandas' in sys.modules)\n"
        "for f in (fvopt.visualize, fvopt.atlas):\n"
        "    print(f.__module__, ' '.join(inspect.signature(f).parameters))\n"
        "from fvopt import visualize\n"
        "print(visualize is fvopt.viz.visualize, 'visualize' in dir(fvopt))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lazy, viz, atlas_line, same = done.stdout.strip().splitlines()
    assert lazy == "False False"
    assert viz.startswith("fvopt.viz model target param optimizer ") and " passes " in viz and "args" not in viz
    assert atlas_line.startswith("fvopt.atlases.api model layers optimizers ") and " passes " in atlas_line
    assert same == "True True"


# ---- one spelling of --reference none ----------------------------------------------------------------------------


def test_reference_none_means_no_reference_everywhere_and_a_folder_named_none_is_dot_slash_none(tmp_path, monkeypatch):
    from fvopt.atlases.api import _reference_name
    from fvopt.bench.judging import quality_settings
    from fvopt.quality.reference import reference_set
    from fvopt.quality.score import viz_settings

    assert viz_settings("none", None, None, "lite0") == (None, ["spectral_slope"])  # viz: no reference
    assert viz_settings(None, None, None, "lite0") == (None, ["spectral_slope"])
    assert quality_settings("none").reference is None  # a bench spec's reference = "none"
    assert _reference_name("none") == _reference_name(None) == "none"  # the atlas
    assert _reference_name(Path("none")) == "./none"  # a path object is a folder
    from fvopt.quality import judge

    judged = judge(torch.full((1, 3, 64, 64), 0.5), "channel:blocks.3:0", "lite0", reference="none")
    assert judged["measures"] == ["spectral_slope"]  # fvopt.quality.judge: no reference, not a folder named none
    with pytest.raises(FvoptError, match=r"reference 'none' means no reference images.*\./none"):
        reference_set("none")  # where images are needed (examples, rescore): said so, not 'folder none missing'
    (tmp_path / "none").mkdir()
    with pytest.raises(FvoptError, match="no .*image|holds no|without images|no JPEG"):
        reference_set(str(tmp_path / "none"))  # the folder is read as a folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FvoptError) as err:
        reference_set("./none")  # the empty folder named none, read as a folder
    assert "means no reference" not in str(err.value) and "none" in str(err.value)


# ---- the bench report names what ran ------------------------------------------------------------------------------


def test_report_labels_name_the_parameterization_each_strategy_searched():
    from fvopt.bench.rows import algorithm_labels

    rows = [
        {"strategy": "adam", "param": "fft", "param_used": "fft"},
        {"strategy": "cmaes", "param": "fft", "param_used": "fft:k=8"},
        {"strategy": "cmaes", "param": "fft:k=8", "param_used": "fft:k=8"},
    ]
    assert algorithm_labels(rows) == {0: "adam [fft]", 1: "cmaes [fft as fft:k=8]", 2: "cmaes [fft:k=8]"}
    assert len(set(algorithm_labels(rows).values())) == 3  # two params that searched the same space stay apart
