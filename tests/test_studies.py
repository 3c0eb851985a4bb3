"""Smoke tests: every study's script runs end to end in its --quick mode (temporary output)."""

import subprocess
import sys
from pathlib import Path

import pytest

STUDIES = Path(__file__).parent.parent / "studies"


@pytest.mark.parametrize("study", ["recipe_ladder", "deepdream", "optimizer_choice", "zero_order_protocol"])
def test_study_quick_mode_runs(study):
    proc = subprocess.run(
        [sys.executable, str(STUDIES / study / "run.py"), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote" in proc.stdout or "analysis in" in proc.stdout
