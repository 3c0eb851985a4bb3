"""A plugin package really installed (pip, into a temporary folder) adds an optimizer, a
parameterization, a target kind, a quality measure and a report section that then work like
fvopt's own: in `fvopt optimizers`, `fvopt plugins`, `fvopt viz`, a bench spec and report, and
Python, and they pass fvopt.testing. A second,
broken plugin is reported in one line naming its package and breaks nothing else.

The package is tests/plugin_pkg, and README's "Adding an optimizer" section prints its files: a
test below checks that they are the same text, so the documentation cannot rot.
"""

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fvopt import registry, visualize
from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.bench.sections import SECTIONS
from fvopt.objectives import TARGETS
from fvopt.quality import MEASURES
from fvopt.params import PARAMS, make_param
from fvopt.strategies import REGISTRY, make_strategy
from fvopt.bench.report import write_report
from fvopt.quality import judge
from fvopt.testing import (
    MEASURE_CHECKS,
    REPORT_SECTION_CHECKS,
    check_measure,
    check_param,
    check_report_section,
    check_strategy,
    small_report_store,
    tiny_model,
)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PLUGIN = ROOT / "tests" / "plugin_pkg"
BROKEN = ROOT / "tests" / "plugin_broken"
PACKAGE, BROKEN_PACKAGE = "fvopt-example-plugin", "fvopt-broken-example"


def readme_section() -> str:
    text = README.read_text()
    section = text[text.index("## Adding an optimizer") :]
    return section[: section.index("\n## ", 5)]


def test_the_readme_prints_the_plugin_package_files_as_they_are():
    blocks = re.findall(r"```(?:python|toml)\n(.*?)```", readme_section(), flags=re.S)
    files = [PLUGIN / "pyproject.toml", *sorted((PLUGIN / "fvopt_example").glob("[!_]*.py"))]
    for path in files:
        assert path.read_text() in blocks, f"README does not print {path.relative_to(ROOT)} as it is"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Both plugin packages installed with pip into a folder of their own (copies: the build
    writes into the source folder)."""
    work = tmp_path_factory.mktemp("plugins")
    sources = [shutil.copytree(p, work / p.name) for p in (PLUGIN, BROKEN)]
    target = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--no-index",
            "--target",
            str(target),
            *map(str, sources),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (target / "fvopt_example_plugin-0.1.0.dist-info" / "entry_points.txt").is_file()
    return target


@pytest.fixture(scope="module")
def installed(site):
    """The folder on sys.path, the registries told to read entry points again; all undone after."""
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    registry.forget_plugins()
    yield site
    sys.path.remove(str(site))
    for table in (REGISTRY, PARAMS, TARGETS, MEASURES, SECTIONS):
        for name in [n for n in table.names(plugins=False) if table[n].source in (PACKAGE, BROKEN_PACKAGE)]:
            del table[name]
    for module in [m for m in sys.modules if m.startswith(("fvopt_example", "fvopt_broken_example"))]:
        del sys.modules[module]
    registry.forget_plugins()
    importlib.invalidate_caches()


def fvopt(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "fvopt.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.slow
def test_the_plugin_names_resolve_lazily_and_are_credited_to_their_package(installed, capsys):
    strategy = make_strategy("one-plus-lambda", popsize=4)  # not known before: the miss loads the plugins
    assert strategy.name == "one-plus-lambda" and REGISTRY["one-plus-lambda"].source == PACKAGE
    assert make_param("gray:k=8", 32).dim == 64 and PARAMS["gray"].source == PACKAGE
    assert TARGETS["saturation"].source == PACKAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"plugin package '{BROKEN_PACKAGE}'" in err[0] and "No module named" in err[0]
    assert make_strategy("adam").name == "adam"  # the broken plugin breaks nothing else
    with pytest.raises(FvoptError, match=f"unknown optimizer 'brokn'.*plugin package '{BROKEN_PACKAGE}' failed"):
        make_strategy("brokn")
    assert capsys.readouterr().err == ""  # reported once per process


@pytest.mark.slow
def test_a_plugin_cannot_take_a_name_fvopt_already_has(installed):
    token = registry._SOURCE.set(PACKAGE)
    try:
        with pytest.raises(FvoptError, match="optimizer 'adam' is already registered by fvopt"):
            REGISTRY.add("adam", object, "a different adam")
    finally:
        registry._SOURCE.reset(token)
    assert REGISTRY["adam"].source == "fvopt"


@pytest.mark.slow
def test_the_plugin_optimizer_passes_fvopt_testing(installed):
    assert len(check_strategy("one-plus-lambda", tiny_model())) == 9


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["gray", "gray:k=8"])
def test_the_plugin_parameterization_passes_fvopt_testing(installed, spec):
    assert len(check_param(spec)) == 4


@pytest.mark.slow
def test_the_three_work_together_in_visualize(installed):
    vis = visualize(
        tiny_model(),
        "channel:conv2:3+0.2*saturation",
        "gray",
        "one-plus-lambda",
        steps=3,
        size=96,
        options={"popsize": 4},
        progress=False,
    )
    assert vis.trace["param"] == "gray:k=16" and vis.trace["backwards"] == 0 and vis.trace["forwards"] == 12
    assert torch.allclose(vis.images[:, 0], vis.images[:, 2])  # gray
    with pytest.raises(FvoptError, match="popsize='abc' is not allowed"):
        make_strategy("one-plus-lambda", popsize="abc")


@pytest.mark.slow
def test_fvopt_viz_and_a_bench_spec_run_the_plugin(installed, tmp_path, capsys):
    out = tmp_path / "gray.png"
    assert (
        main(
            [
                "viz",
                "--model",
                "lite0",
                "--target",
                "channel:blocks.2:3+0.2*saturation",
                "--param",
                "gray",
                "--optimizer",
                "one-plus-lambda",
                "--option",
                "popsize=2",
                "--steps",
                "2",
                "--size",
                "32",
                "--transforms",
                "none",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file() and "one-plus-lambda on gray" in capsys.readouterr().out
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[bench]\nname = "plugin"\nsize = 32\nseeds = [0]\ntargets = ["channel:blocks.2:3"]\n'
        'params = ["gray"]\nbudget = { passes = 4 }\n\n[[strategies]]\nname = "one-plus-lambda"\n'
        "popsize = 2\n"
    )
    assert main(["bench", "run", str(spec), "--db", str(tmp_path / "r.sqlite"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "one-plus-lambda" in printed and "1 ran, 0 failed" in printed


@pytest.mark.slow
def test_a_fresh_process_lists_the_plugin_and_reports_the_broken_one_in_one_line(site):
    listing = fvopt(site, "optimizers")
    assert listing.returncode == 0
    line = next(line for line in listing.stdout.splitlines() if line.startswith("one-plus-lambda"))
    assert line.endswith(f"(plugin: {PACKAGE})") and "popsize (an integer >= 1)" in line
    assert listing.stderr.count("\n") == 1 and f"plugin package '{BROKEN_PACKAGE}'" in listing.stderr
    plugins = fvopt(site, "plugins")
    assert plugins.returncode == 0
    assert (
        f"{PACKAGE} 0.1.0: optimizer one-plus-lambda; parameterization gray; target kind saturation; "
        "measure colorfulness; report section budget-spent" in plugins.stdout.splitlines()
    )
    assert f"{BROKEN_PACKAGE} 0.0.1: adds nothing" in plugins.stdout
    models = fvopt(site, "models")  # an unrelated command: no plugin of its group is broken, nothing said
    assert models.returncode == 0 and models.stderr == "" and "lite0" in models.stdout


@pytest.mark.slow
def test_the_plugin_measure_and_section_pass_fvopt_testing(installed, tmp_path):
    assert MEASURES["colorfulness"].source == PACKAGE and SECTIONS["budget-spent"].source == PACKAGE
    assert check_measure("colorfulness", tiny_model(), tmp_path) == [c.__name__ for c in MEASURE_CHECKS]
    assert check_report_section("budget-spent", work=tmp_path / "report") == [c.__name__ for c in REPORT_SECTION_CHECKS]


@pytest.mark.slow
def test_judge_computes_the_plugin_measure_by_default_and_by_name(installed):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    row = judge(images, "channel:act2:1,2", tiny_model())  # default: every measure that applies
    assert "colorfulness" in row["measures"] and row["colorfulness"] > row["colorfulness_gray"] == 0
    assert row["colorfulness_informative"] is True and len(row["per_image"]["colorfulness"]) == 2
    gray = judge(torch.full((1, 3, 32, 32), 0.5), "channel:act2:1", tiny_model(), measures=["colorfulness"])
    assert gray["colorfulness"] == 0 and gray["colorfulness_informative"] is False
    with pytest.raises(FvoptError, match="measure colorfulness cannot be computed here: colorfulness compares"):
        judge(images[:, :1], "channel:act2:1,2", tiny_model(), measures=["colorfulness"])


@pytest.mark.slow
def test_fvopt_viz_measures_names_the_plugin_measure(installed, tmp_path, capsys):
    out, trace = tmp_path / "v.png", tmp_path / "v.json"
    args = ["viz", "--model", "lite0", "--target", "channel:blocks.2:3", "--steps", "2", "--size", "32"]
    flags = ["--transforms", "none", "--quiet", "--measures", "colorfulness", "--out", str(out), "--trace", str(trace)]
    assert main([*args, *flags]) == 0
    assert "quality (reference: none): colorfulness " in capsys.readouterr().out
    quality = json.loads(trace.read_text())["quality"]
    assert quality["measures"] == ["colorfulness"] and quality["colorfulness"] > 0
    with pytest.raises(SystemExit):
        main([*args, "--measures", "colorfulnes", "--out", str(out)])
    assert "Did you mean: colorfulness?" in capsys.readouterr().err


@pytest.mark.slow
def test_the_bench_report_shows_the_plugin_measure_and_section(installed, tmp_path):
    db = small_report_store(tmp_path / "small.sqlite")
    write_report(db, tmp_path / "report", exports=False, examples=False)
    page = (tmp_path / "report" / "report.html").read_text()
    assert '<section id="budget-spent"><h2>Budget spent</h2>' in page and '<a href="#budget-spent">' in page
    assert "| adam | 2 |" in (tmp_path / "report" / "budget_spent.md").read_text()
    assert "\n## colorfulness\n" in (tmp_path / "report" / "quality.md").read_text()  # ranked as the built-ins are
    assert "colorfulness_informative" in (tmp_path / "report" / "quality_cells.csv").read_text().splitlines()[0]
