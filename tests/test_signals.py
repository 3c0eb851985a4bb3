"""A scheduler's stop (SIGTERM, SIGHUP) keeps the work as Ctrl-C does; files are whole or absent.

SLURM, `timeout`, `docker stop` and systemd send SIGTERM, then SIGKILL after a grace period. The
command line (only it) turns SIGTERM into the same path as Ctrl-C (fvopt/runtime/signals.py) and exits
128 + 15 = 143; every file fvopt writes goes through a temporary name and a rename (fvopt/io/atomic.py).
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from fvopt.io import atomic
from fvopt.runtime import signals

from test_bench import ONE_THREAD, bench_command, finished, read_only, write_spec


def _terminate_when(cmd: list[str], ready, times: int | str = 1, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run `cmd`, send it SIGTERM (`times` times, 20 ms apart) as soon as `ready()` is true;
    `times="until exit"` keeps sending one every millisecond until the process has ended."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD)
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the command ended before the work started: " + proc.stderr.read()
    for _ in range(times if isinstance(times, int) else 0):
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.02)
    while times == "until exit" and proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGTERM)  # Popen sends nothing once it has seen the process end
        time.sleep(0.001)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def terminate_when_stderr_shows(cmd: list[str], env: dict, pattern: str, timeout: float = 180) -> tuple[int, str]:
    """Run `cmd`, send one SIGTERM once its stderr (progress bars included) matches `pattern`; return its
    exit code and the last line it printed."""
    import re
    import threading

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.time() + timeout
    while time.time() < deadline and not re.search(pattern, "".join(err)):
        assert proc.poll() is None, "".join(err)
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    reader.join(10)
    return proc.returncode, "".join(err).replace("\r", "\n").strip().splitlines()[-1]


@pytest.fixture
def handlers():
    """The command line's handlers in this process for one test, then the previous ones back."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    signals.received = None
    signals.install()
    yield
    for s, handler in previous.items():
        signal.signal(s, handler)
    signals.received = None


def test_an_interrupted_atomic_write_leaves_the_old_file_or_none(tmp_path):
    old = tmp_path / "a.json"
    old.write_text('{"old": true}')
    for path in (old, tmp_path / "new.json"):
        with pytest.raises(KeyboardInterrupt):
            with atomic.atomic_path(path) as tmp:
                tmp.write_text('{"half')
                raise KeyboardInterrupt  # a signal in the middle of the write
    assert json.loads(old.read_text()) == {"old": True} and not (tmp_path / "new.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"], "no temporary file is left behind"
    atomic.write_text(old, '{"new": 1}')
    assert json.loads(old.read_text()) == {"new": 1} and not atomic.writing()


def test_the_images_format_follows_the_real_name_not_the_temporary_one(tmp_path):
    import torch

    from fvopt.io.images import save_images

    save_images(torch.rand(1, 3, 8, 8), tmp_path / "x.jpg")
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jpg"]


def test_a_first_sigterm_raises_a_keyboard_interrupt_and_a_second_one_lets_the_write_finish(tmp_path, handlers):
    """The first stop signal starts keeping the work; later ones do not cut the scoring or writing short."""
    with pytest.raises(signals.Terminated) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert isinstance(stop.value, KeyboardInterrupt) and signals.exit_code() == 143
    path = tmp_path / "trace.json"
    with atomic.atomic_path(path) as tmp:
        tmp.write_text('{"whole": ')
        os.kill(os.getpid(), signal.SIGTERM)  # a second one, while writing: ignored, the write finishes
        time.sleep(0.1)
        with open(tmp, "a") as fh:
            fh.write("true}")
    assert json.loads(path.read_text()) == {"whole": True} and signals.received == signal.SIGTERM


def test_the_python_api_installs_no_handler():
    code = (
        "import signal, fvopt, fvopt.viz, fvopt.run, fvopt.dream; "
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


@pytest.mark.slow
@pytest.mark.parametrize("times", [1, 2, "until exit"])
def test_sigterm_during_viz_writes_the_best_image_and_its_trace_and_exits_143(tmp_path, times):
    out, trace, snaps = tmp_path / "i.png", tmp_path / "i.json", tmp_path / "snaps"
    done = _terminate_when(
        [
            sys.executable,
            "-m",
            "fvopt.cli",
            "viz",
            "--steps",
            "100000",
            "--size",
            "64",
            "--out",
            str(out),
            "--trace",
            str(trace),
            "--snapshots",
            str(snaps),
            "--snapshot-every",
            "2",
            "--quiet",
        ],
        lambda: len(list(snaps.glob("step_*.png"))) >= 2,
        times=times,
    )
    assert done.returncode == 143, done.stderr
    assert "terminated (SIGTERM) after" in done.stderr and f"kept the best image so far in {out}" in done.stderr
    assert "Traceback" not in done.stderr
    t = json.loads(trace.read_text())  # strict JSON, whole
    assert t["stop_reason"] == "terminated" and len(t["steps"]) >= 4 and t["result"] == "last"
    assert Image.open(out).size == (64, 64)
    assert not [p for p in tmp_path.rglob(".*tmp*")], "no temporary file is left behind"


@pytest.mark.slow
def test_sigterm_during_dream_keeps_the_dream_so_far_and_its_trace(tmp_path):
    out, trace, octaves = tmp_path / "d.png", tmp_path / "d.json", tmp_path / "oct"
    done = _terminate_when(
        [
            sys.executable,
            "-m",
            "fvopt.cli",
            "dream",
            "--steps",
            "400",
            "--out",
            str(out),
            "--trace",
            str(trace),
            "--octave-images",
            str(octaves),
            "--quiet",
        ],
        lambda: (octaves / "octave_1.png").exists(),
    )
    assert done.returncode == 143 and "kept the dream so far" in done.stderr, done.stderr
    assert f"and its trace in {trace}" in done.stderr
    assert Image.open(out).size == (451, 300)
    t = json.loads(trace.read_text())
    assert t["stop_reason"] == "terminated" and t["steps"] and t["settings"]["seed"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_during_bench_keeps_finished_cells_and_resumes(tmp_path, workers):
    spec, db = write_spec(tmp_path, passes=150), tmp_path / "r.sqlite"
    cmd = bench_command(spec, db, "--workers", workers)
    done = _terminate_when(cmd, lambda: bool(finished(db)), timeout=300)  # to the main process only, as SLURM does
    before = finished(db)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip() == (
        f"fvopt: terminated (SIGTERM): {len(before)} of 8 cells done in {db}, the running "
        "ones abandoned; run the same command again to resume"
    )
    assert set(tmp_path.iterdir()) == {spec, db}, "the store was closed (no -wal/-shm left)"
    con = read_only(db)
    rows = con.execute("SELECT status, final, image FROM cells").fetchall()  # no half row
    con.close()
    assert 1 <= len(rows) == len(before) < 8 and all(s == "done" and f and i for s, f, i in rows)
    again = subprocess.run(cmd, capture_output=True, text=True, env=ONE_THREAD)
    assert again.returncode == 0 and f"8 cells, {len(before)} already done" in again.stdout, again.stderr


@pytest.mark.slow
def test_sigterm_during_a_reference_pass_keeps_its_images_says_so_and_the_same_command_resumes(tmp_path):
    import re

    env = {**os.environ, "OMP_NUM_THREADS": "1", "FVOPT_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "fvopt.cli", "examples", "lite0", "--target", "channel:blocks.6:0"]
    cmd += ["--side", "160", "--out", str(tmp_path / "examples")]  # 688 images at 160 px: about 20 s
    returncode, last = terminate_when_stderr_shows(cmd, env, r"\| (6[4-9]|[7-9]\d|\d{3})/688", timeout=120)
    assert returncode == 143, last
    kept = re.fullmatch(
        r"fvopt: terminated \(SIGTERM\): the reference pass \(lite0 blocks\.6\) kept its first (\d+) of 688 images; "
        r"the same command resumes from there",
        last,
    )
    assert kept and int(kept.group(1)) >= 64, last
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resumed at image {kept.group(1)}" in again.stderr
