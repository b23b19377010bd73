"""The coverage table (docs/coverage.md) is generated from the code, and the legacy `nl` matches its documented
G1 signatures."""

from __future__ import annotations

import pathlib

import pytest

from trnsim import coverage

DOC = pathlib.Path(__file__).parents[2] / "docs" / "coverage.md"


def test_committed_coverage_doc_is_up_to_date():
    assert DOC.exists(), "docs/coverage.md is missing: run `python -m trnsim coverage --write`"
    assert DOC.read_text(encoding="utf-8") == coverage.render(), (
        "docs/coverage.md is out of date: run `python -m trnsim coverage --write`"
    )


def test_legacy_language_is_complete_with_documented_signatures():
    rows = [r for r in coverage.collect(["legacy"]) if r.group == "language"]
    assert len(rows) == 125  # 100 functions (96 documented + 4 undocumented) + 25 objects (nki-api.md 4)
    bad = [(r.entry.name, r.status, r.notes) for r in rows if r.status != coverage.IMPLEMENTED]
    assert bad == []


def test_inventory_counts_match_the_reference():
    inv = coverage.INVENTORY
    functions = [e for e in inv["legacy"]["language"] if e.kind == "function"]
    assert len(functions) == 100 and sum(e.note == "undocumented" for e in functions) == 4
    assert len(inv["legacy"]["isa"]) - 12 == 34  # 32 instructions + get_nc_version + builtin_custom_op
    assert sum(1 for e in inv["current"]["language"] if e.kind == "function") == 103
    assert sum(1 for e in inv["current"]["isa"] if e.kind == "function") == 52
    assert len(inv["current"]["collectives"]) == 12


def test_signature_comparison_rules():
    doc = coverage.doc_params("(x, y, *, dtype=None, mask=None, **kwargs)")
    assert coverage.compare_signatures(doc, coverage.doc_params("(x, y, dtype=None, mask=None, **kwargs)")) == []
    assert coverage.compare_signatures(doc, coverage.doc_params("(x, y, *, dtype=None, **kwargs)")) == [
        "'mask' only reaches **kwargs (ignored)"
    ]
    assert coverage.compare_signatures(doc, coverage.doc_params("(y, x, *, dtype=None, mask=None, **kwargs)"))
    assert "no **kwargs" in coverage.compare_signatures(doc, coverage.doc_params("(x, y, *, dtype=None, mask=None)"))
    assert coverage.compare_signatures(doc, coverage.doc_params("(x, y, z, *, dtype=None, mask=None, **kwargs)")) == [
        "extra required parameter 'z'"
    ]
    assert coverage.compare_signatures(
        coverage.doc_params("(x, dtype=None)"), coverage.doc_params("(x, *, dtype=None)")
    ) == ["'dtype' is keyword-only in trnsim"]


def test_stubs_count_as_missing(monkeypatch):
    import trnsim.frontend.legacy.language as nl

    monkeypatch.setattr(nl, "rand", nl._not_implemented("rand"))
    rows = {r.entry.name: r for r in coverage.collect(["legacy"]) if r.group == "language"}
    assert rows["rand"].status == coverage.MISSING
    assert rows["add"].status == coverage.IMPLEMENTED


def test_cli_prints_totals_and_checks(capsys, tmp_path):
    path = tmp_path / "coverage.md"
    assert coverage.coverage_command(["--write", "--path", str(path)]) == 0
    assert path.read_text() == coverage.render()
    assert coverage.coverage_command(["--check", "--path", str(path)]) == 0
    path.write_text("stale\n")
    assert coverage.coverage_command(["--check", "--path", str(path)]) == 1
    out = capsys.readouterr().out
    assert "legacy" in out and "documented names implemented" in out


@pytest.mark.parametrize("generation", coverage.GENERATIONS)
def test_every_group_of_a_generation_has_a_module(generation):
    for group in coverage.INVENTORY[generation]:
        assert generation in coverage.GROUPS[group]["module"]
        assert generation in coverage.GROUPS[group]["public"]
