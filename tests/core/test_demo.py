"""The README's first command ends with `python -m trnsim demo`: it must run and pass its own checks."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_and_all_kernels_match_numpy():
    r = subprocess.run([sys.executable, "-m", "trnsim", "demo"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BAD" not in r.stdout
    assert r.stdout.count(" OK ") >= 10
    assert "err_unexpected_output_dependencies" in r.stdout and "mistakes.py:13" in r.stdout
