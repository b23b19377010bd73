"""The README's Python examples run as written (executed in order, in one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    ns: dict = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), ns)  # noqa: S102 - executing our own documentation
    out = capsys.readouterr().out
    assert out.strip()
