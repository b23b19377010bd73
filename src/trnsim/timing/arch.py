"""Hardware descriptions as data.

Each target is a JSON file in `archs/`; a user can add a variant (say, trn2 with twice the HBM bandwidth)
by writing another JSON file and loading it with `load_arch(path)` or by pointing the environment variable
`TRNSIM_ARCH_PATH` at a folder of such files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

_ARCH_DIR = Path(__file__).with_name("archs")


@dataclass(frozen=True)
class Arch:
    """One NeuronCore generation's numbers (per physical core)."""

    name: str
    nc_version: int
    clock_ghz: dict[str, float]
    sbuf_bytes_per_partition: int
    sbuf_usable_bytes_per_partition: int
    psum_bytes_per_partition: int
    psum_banks: int
    dma_engines: int
    dma_bytes_per_ns_per_engine: float
    dma_fixed_ns: float
    hbm_bytes_per_ns: float
    description: str = ""
    aliases: tuple[str, ...] = ()
    pe_rows: int = 128
    pe_cols: int = 128
    cores_per_chip: int = 1
    fp8_double_rate: bool = False
    vector_perf_modes: bool = False
    min_ii_cycles: int = 64
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def psum_bank_bytes(self) -> int:
        return self.psum_bytes_per_partition // self.psum_banks

    def cycles_to_ns(self, engine: str, cycles: float) -> float:
        return cycles / self.clock_ghz[engine]

    @property
    def peak_bf16_flops_per_ns(self) -> float:
        return 2.0 * self.pe_rows * self.pe_cols * self.clock_ghz["Tensor"]


_KNOWN = {f.name for f in __import__("dataclasses").fields(Arch)}


def arch_from_dict(d: dict[str, Any]) -> Arch:
    known = {k: v for k, v in d.items() if k in _KNOWN and k != "extra"}
    extra = {k: v for k, v in d.items() if k not in _KNOWN}
    extra.update(d.get("extra", {}))
    if "aliases" in known:
        known["aliases"] = tuple(known["aliases"])
    return Arch(**known, extra=extra)


def load_arch(path: str | os.PathLike[str]) -> Arch:
    """Load an architecture description from a JSON file."""
    with open(path, encoding="utf-8") as f:
        return arch_from_dict(json.load(f))


def _search_dirs() -> list[Path]:
    dirs = [_ARCH_DIR]
    extra = os.environ.get("TRNSIM_ARCH_PATH")
    if extra:
        dirs = [Path(p) for p in extra.split(os.pathsep) if p] + dirs
    return dirs


@cache
def _all_archs(key: str) -> dict[str, Arch]:
    found: dict[str, Arch] = {}
    for d in reversed(_search_dirs()):
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.json")):
            a = load_arch(p)
            found[a.name] = a
            for alias in a.aliases:
                found[alias] = a
    return found


def available_archs() -> list[str]:
    return sorted({a.name for a in _all_archs(os.environ.get("TRNSIM_ARCH_PATH", "")).values()})


def get_arch(target: str | Arch | None) -> Arch:
    """Resolve a target name ('trn1', 'trn2', 'gen3', a variant file's name) or an Arch object."""
    if isinstance(target, Arch):
        return target
    name = (target or "trn2").lower()
    archs = _all_archs(os.environ.get("TRNSIM_ARCH_PATH", ""))
    if name in archs:
        return archs[name]
    if os.path.isfile(name):
        return load_arch(name)
    raise ValueError(f"unknown target {target!r}; known targets: {', '.join(available_archs())}")
