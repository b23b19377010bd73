"""Fixtures of the current-API tests: source-line markers for file:line assertions, a clean environment."""

from __future__ import annotations

import pytest


@pytest.fixture
def lineof(request):
    """lineof("tag") -> the line number of the line in the calling test file that ends with `# L:tag`."""
    path = str(request.node.fspath)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()

    def find(tag: str) -> int:
        hits = [i + 1 for i, s in enumerate(lines) if s.rstrip().endswith(f"# L:{tag}")]
        assert len(hits) == 1, f"marker L:{tag} found {len(hits)} times in {path}"
        return hits[0]

    return find


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("TRNSIM_SIMULATOR", "NKI_SIMULATOR", "NEURON_PLATFORM_TARGET_OVERRIDE", "TRNSIM_TARGET"):
        monkeypatch.delenv(var, raising=False)
