"""Every `fvopt` command printed in README.md and docs/recipes.md runs after the one install, with
small budgets, so the documentation cannot rot again (the bench example once needed an extra that
was not installed).

The commands are read from the documents themselves: a new command is tested without editing this
file. Each runs in the test's process through `fvopt.cli.main` (the function the `fvopt` script calls);
the installed script itself runs the first one in a fresh process. `python -c` lines of a document
(making an input file) run first, as printed.
Only budgets shrink (steps, octaves, frames, seeds, seconds); names, models, targets, options and
files stay as printed. `photo.jpg` is a real photo written where the command runs. A command that
reads a file an earlier command writes (`bench report`'s database, `--config`'s trace) makes it first
when run alone (`-k`, or another worker of `-n 2`).
"""

import contextlib
import io
import re
import shlex
import signal
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/recipes.md")
SHRINK = [
    (r"--steps \d+", "--steps 2"),
    (r"--octaves \d+", "--octaves 2"),
    (r"--zoom-frames \d+", "--zoom-frames 2"),
    (r"--tile 512", "--tile 256"),
    (r"--size 512", "--size 256"),
]


def fenced_lines(document: str, start: str) -> list[str]:
    """Lines of a document's fenced blocks that start with `start`, comments and [..] parts removed."""
    text = (ROOT / document).read_text()
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith(start):
                line = re.sub(r"\s+#.*$", "", line) if start == "fvopt " else line
                lines.append(re.sub(r"\s*\[[^\]]*\]", "", line).strip() if start == "fvopt " else line)
    return lines


def readme_commands() -> list[str]:
    """The `fvopt ...` lines of every document's fenced blocks."""
    return [c for document in DOCUMENTS for c in fenced_lines(document, "fvopt ")]


def small(command: str) -> list[str]:
    for pattern, replacement in SHRINK:
        command = re.sub(pattern, replacement, command)
    args = shlex.split(command)
    if args[1] == "dream" and "--steps" not in args:
        args += ["--steps", "2", "--octaves", "2"]
    return args


def test_the_readme_prints_the_commands_this_test_runs():
    commands = readme_commands()
    assert any(c.startswith("fvopt viz --model lite0 --target class:8") for c in commands)
    assert any(c.startswith("fvopt bench run benchmarks/example_bench.toml") for c in commands)
    assert any(c.startswith("fvopt bench report") for c in commands)
    assert sum(c.startswith("fvopt dream") for c in commands) >= 3


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder like a fresh clone's root: the example spec with one seed and a 2 s budget (the
    same models, targets, parameterizations, strategies and transfer network), and a photo."""
    from skimage import data
    from PIL import Image

    here = tmp_path_factory.mktemp("readme")
    (here / "benchmarks").mkdir()
    spec = tomllib.loads((ROOT / "benchmarks" / "example_bench.toml").read_text())
    assert spec["bench"]["transfer_model"] == "lite1"  # the network that once needed an extra install
    text = (ROOT / "benchmarks" / "example_bench.toml").read_text()
    text = re.sub(r"seeds = \[[^\]]*\]", "seeds = [0]", text)
    text = re.sub(r"budget = \{[^}]*\}", "budget = { seconds = 2 }", text)
    text = re.sub(r"targets = \[[^\]]*\]", 'targets = ["class:8"]', text)
    (here / "benchmarks" / "example_bench.toml").write_text(text)
    Image.fromarray(data.chelsea()).save(here / "photo.jpg")
    shutil.copytree(ROOT / "docs" / "examples", here / "docs" / "examples")  # the own-model example network
    for document in DOCUMENTS:
        for line in fenced_lines(document, "python -c "):
            subprocess.run(shlex.split(line), cwd=here, check=True, timeout=120)
    return here


def run_in_this_process(args: list[str]) -> tuple[int, str]:
    """`fvopt ARGS` through the function the installed script calls, in this process (a process per command
    paid about 6 s of imports each); the signal handlers the command line installs are put back after.
    Returns the exit code and what it printed."""
    from fvopt.cli import main

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args[1:])
    except SystemExit as exit:  # argparse's refusals
        code = exit.code
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    return code, out.getvalue()[-2000:] + "\n" + err.getvalue()[-2000:]


@pytest.mark.slow
def test_the_installed_fvopt_script_runs_the_first_readme_command(workdir):
    """The one install: the `fvopt` script on PATH runs a README command in a fresh process."""
    fvopt = shutil.which("fvopt") or pytest.fail('the `fvopt` command is not installed: pip install -e ".[dev]"')
    args = small(readme_commands()[0])
    done = subprocess.run([fvopt, *args[1:]], cwd=workdir, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (workdir / args[args.index("--out") + 1]).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands())
def test_each_readme_command_runs_after_the_one_install(command, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    args = small(command)
    if args[1:3] == ["bench", "report"] and not (workdir / args[3]).exists():  # run alone: make its database
        bench = next(c for c in readme_commands() if c.startswith("fvopt bench run "))
        assert run_in_this_process([*small(bench), "--quiet"])[0] == 0
    if "--config" in args and not (workdir / args[args.index("--config") + 1]).exists():  # run alone: make its trace
        trace = f"--trace {args[args.index('--config') + 1]}"
        first = next(c for c in readme_commands() if trace in c)
        assert run_in_this_process([*small(first), "--quiet"])[0] == 0
    code, said = run_in_this_process(args)
    assert code == 0, f"{' '.join(args)}\n{said}"
    if args[1] == "bench" and args[2] == "report":
        assert (workdir / args[args.index("--out") + 1] / "report.html").exists()
    if "--out" in args and args[1] in ("viz", "dream"):
        assert (workdir / args[args.index("--out") + 1]).stat().st_size > 0
