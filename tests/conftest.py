import os

import pytest
import torch

# Under pytest-xdist (README's `-n 2`) each worker is one process on one core: one torch thread each,
# and the fvopt subprocesses the tests start inherit the same limit (two OpenMP pools spin-waiting on
# two cores made runs up to 10x slower). Alone, the suite uses both cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def lite0():
    """The real pretrained EfficientNet-Lite0, loaded once for the whole suite."""
    from fvopt.models import load_model

    return load_model("lite0", device="cpu")


@pytest.fixture(scope="session")
def resnet18_random():
    from fvopt.models import load_model

    return load_model("torchvision:resnet18", weights="random")


def pytest_terminal_summary(terminalreporter):
    """Name the shipped conformance checks (fvopt.testing) that passed, with how many entries each
    covered, so that even `pytest -q` shows which contract every registered entry was held to."""
    import re

    ran: dict[str, dict[str, set[str]]] = {}
    for report in terminalreporter.stats.get("passed", []):
        match = re.search(r"test_shipped_(\w+?)_check\[(.+)-(\w+)\]$", report.nodeid)
        if match:
            kind, entry, check = match.groups()
            ran.setdefault(kind, {}).setdefault(check, set()).add(entry)
    for kind, checks in sorted(ran.items()):
        entries = len(set().union(*checks.values()))
        terminalreporter.write_line(
            f"fvopt.testing.check_{kind} on {entries} registered entries: "
            + ", ".join(f"{check} ({len(names)})" for check, names in checks.items())
        )
