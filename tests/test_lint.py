"""ruff, as ``pyproject.toml`` configures it (pyflakes, pycodestyle, bugbear, blind excepts,
import order, complexity, imports at the top), over the package, the tests and the benchmarks:
the suite fails on a finding."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "grok_mlflow", "tests", "benchmarks"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_mypy_finds_nothing():
    """mypy over the whole package as ``pyproject.toml`` configures it (no module exempted):
    no finding."""
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
    assert "no issues found" in done.stdout
    assert "ignore_errors" not in (REPO / "pyproject.toml").read_text()
