"""Regenerate every picture of docs/recipes.md: run each command of its fenced blocks as printed,
from the repository root, and keep what each printed in docs/recipes/printed.txt.

    python docs/recipes/make.py        # about 15 minutes on 2 CPU cores
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def commands() -> list[str]:
    text = (ROOT / "docs" / "recipes.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith(("fvopt ", "python -c "))]


def main() -> None:
    log = []
    for line in commands():
        start = time.perf_counter()
        done = subprocess.run(shlex.split(line), cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"failed ({done.returncode}): {line}\n{done.stderr[-2000:]}")
        printed = (done.stdout.strip().splitlines() or [""])[-1]
        log.append(f"$ {line}\n{printed}\n({time.perf_counter() - start:.0f} s)\n")
        print(log[-1], flush=True)
    (ROOT / "docs" / "recipes" / "printed.txt").write_text("\n".join(log))
    (ROOT / "noise.png").unlink(missing_ok=True)  # the multi-scale recipe's input, made by its first line


if __name__ == "__main__":
    main()
