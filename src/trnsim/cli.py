"""Command line: python -m trnsim run | pytest | estimate | profile | diff | coverage | demo."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback
from collections.abc import Sequence

from .core.errors import NkiError, trim_traceback

USAGE = """usage: python -m trnsim COMMAND [ARGS...]

commands:
  run SCRIPT [ARGS...]       run a script exactly like `python SCRIPT ARGS`, with NKI imports served by trnsim
  pytest [PYTEST ARGS...]    run a pytest suite with NKI imports served by trnsim
  estimate SCRIPT [ARGS...]  run a script and print, per kernel launch, modeled latency and where time goes
  profile SCRIPT [ARGS...] --out DIR
                             run a script and write a Perfetto trace, summary JSON and HTML report per launch
  diff A B                   compare two profile summaries (per engine, per source line)
  coverage                   print the implemented-vs-missing NKI API table
  demo                       simulate a tutorial kernel and compare it with NumPy

environment: NEURON_PLATFORM_TARGET_OVERRIDE=trn1|trn2|trn3 selects the target (default trn2);
TRNSIM_SIMULATOR=1 routes current-API @nki.jit calls to the simulator.
"""


def _install_aliases() -> None:
    from .frontend import shims

    shims.install()


def run_script(script: str, args: Sequence[str]) -> int:
    """Run SCRIPT as __main__ with sys.argv = [SCRIPT, *args] and the script's folder on sys.path."""
    _install_aliases()
    path = os.path.abspath(script)
    if not os.path.exists(path):
        print(f"trnsim run: no such file: {script}", file=sys.stderr)
        return 2
    old_argv, old_path0 = sys.argv[:], sys.path[0] if sys.path else None
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(path))
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except NkiError as e:
        trim_traceback(e)
        traceback.print_exception(type(e), e, e.__traceback__)
        return 1
    finally:
        sys.argv = old_argv
        if sys.path and sys.path[0] == os.path.dirname(path):
            sys.path.pop(0)
        del old_path0
    return 0


def run_pytest(args: Sequence[str]) -> int:
    _install_aliases()
    import pytest

    return int(pytest.main(list(args)))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        if not rest:
            print("usage: python -m trnsim run SCRIPT [ARGS...]", file=sys.stderr)
            return 2
        return run_script(rest[0], rest[1:])
    if cmd == "pytest":
        return run_pytest(rest)
    if cmd == "estimate":
        from .timing.report import estimate_command

        return estimate_command(rest)
    if cmd == "profile":
        from .profile.cli import profile_command

        return profile_command(rest)
    if cmd == "diff":
        from .profile.diff import diff_command

        return diff_command(rest)
    if cmd == "coverage":
        from .coverage import coverage_command

        return coverage_command(rest)
    if cmd == "demo":
        from .demo import main as demo_main

        return demo_main(rest)
    parser = argparse.ArgumentParser(prog="python -m trnsim")
    parser.error(f"unknown command {cmd!r}\n\n{USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
