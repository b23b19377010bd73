"""Hardware descriptions as data.

Each target is a JSON file in `archs/`; a user can add a variant (say, trn2 with twice the HBM bandwidth)
by writing another JSON file and loading it with `load_arch(path)` or by pointing the environment variable
`TRNSIM_ARCH_PATH` at a folder of such files. A variant may name a `"base"` target and list only the numbers
it changes:

    {"name": "trn2-2xhbm", "base": "trn2", "hbm_bytes_per_ns": 724.0,
     "comments": {"hbm_bytes_per_ns": "what-if: twice the HBM bandwidth"}}

Every number is per physical NeuronCore. `comments` maps a parameter name to where its value comes from
(a documented figure, or the calibration row of docs/calibration.md that fixed it).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

_ARCH_DIR = Path(__file__).with_name("archs")

_DEFAULT_LATENCY = {"Tensor": 350.0, "Vector": 200.0, "Scalar": 200.0, "GpSimd": 200.0, "Sync": 64.0}


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
    # ---- DMA
    #: minimum time one DMA engine spends on one descriptor (one contiguous chunk, usually one partition row)
    dma_descriptor_ns: float = 107.0
    #: sharpness of the max(descriptor time, bytes / bandwidth) knee (a soft maximum, p-norm exponent)
    dma_knee: float = 5.0
    #: partitions served by one DMA engine (128 partitions / 16 engines)
    dma_partitions_per_engine: int = 8
    #: time the issuing sequencer / descriptor generator spends per DMA instruction (serialised per issuer)
    dma_issue_ns: float = 60.0
    #: descriptor generators / trigger sequencers that DMA queues are spread over (round-robin)
    dma_issuers: int = 1
    #: DMA queues per issuing engine that the compiler spreads DMA statements over (FIFO within a queue)
    dma_queues: int = 4
    #: throughput of a DMA transpose relative to a plain transfer
    dma_transpose_efficiency: float = 0.9
    #: cores sharing one HBM domain (their per-core HBM bandwidths are pooled)
    hbm_cores_per_domain: int = 1
    # ---- engines
    #: cycles from an instruction's last issue slot until its result is visible to dependents (per engine)
    pipeline_latency_cycles: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_LATENCY))
    #: extra latency of a cross-engine semaphore hand-off (ns)
    semaphore_ns: float = 0.0
    matmul_min_cycles: int = 64
    loadstationary_speedup: float = 4.0
    fp32_matmul_factor: float = 4.0
    min_ii_dynamic_cycles: int = 600
    # ---- compiler model
    #: physical buffers per tile allocation site and live instance (tiles of one source line rotate through them)
    buffer_rotation: int = 2
    #: how far (instructions of the same engine) the compiler's list scheduler may move an instruction ahead
    reorder_window: int = 8
    #: SBUF overflow (timing-only runs): the compiler spills whole tiles (True) or only the overflowing bytes
    spill_whole_tiles: bool = True
    #: SBUF overflow: a tile evicted again without having been written since its save keeps its HBM copy (only
    #: the reload moves data); False: every eviction saves again
    spill_reuse_saved_copies: bool = False
    #: SBUF overflow: a reload waits for the end of the last instruction that had no room for it (True) or for the
    #: saves planned at its own position (False)
    spill_reload_waits_for_room: bool = False
    #: SBUF overflow: a tile that only holds data loaded from a read-only HBM tensor (a kernel input never written)
    #: is dropped, not saved, and reloaded from that tensor; tiles with a valid HBM copy are evicted first
    spill_drop_clean_tiles: bool = False
    #: SBUF overflow: a reload is issued on demand, when the engine that reads the tile has finished its previous
    #: instruction (the reload trigger sits in that engine's stream just before the use); False: as early as its
    #: other dependencies allow
    spill_reload_on_demand: bool = False
    #: fixed kernel start-up + tear-down time added to every launch (ns)
    launch_overhead_ns: float = 0.0
    comments: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def psum_bank_bytes(self) -> int:
        return self.psum_bytes_per_partition // self.psum_banks

    def cycles_to_ns(self, engine: str, cycles: float) -> float:
        return cycles / self.clock_ghz[engine]

    def latency_ns(self, engine: str) -> float:
        """Pipeline latency of `engine` in ns (0 for engines without a clock, e.g. DMA)."""
        clk = self.clock_ghz.get(engine)
        if not clk:
            return 0.0
        return self.pipeline_latency_cycles.get(engine, 0.0) / clk

    @property
    def peak_bf16_flops_per_ns(self) -> float:
        return 2.0 * self.pe_rows * self.pe_cols * self.clock_ghz["Tensor"]

    @property
    def dma_peak_bytes_per_ns(self) -> float:
        return self.dma_bytes_per_ns_per_engine * self.dma_engines

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["aliases"] = list(self.aliases)
        extra = d.pop("extra")
        d.update(extra)
        return d

    def variant(self, name: str | None = None, **changes: Any) -> Arch:
        """A copy with some numbers changed (programmatic what-if; JSON variants use "base")."""
        d = self.to_dict()
        d.update(changes)
        d["name"] = name or f"{self.name}-variant"
        d["aliases"] = []
        return arch_from_dict(d)


_KNOWN = {f.name for f in dataclasses.fields(Arch)}


def arch_from_dict(d: dict[str, Any]) -> Arch:
    """Build an Arch from a JSON-style dict (unknown keys go to `extra`; "base" inherits another target)."""
    d = dict(d)
    base = d.pop("base", None)
    if base:
        parent = get_arch(base).to_dict()
        comments = {**parent.get("comments", {}), **d.get("comments", {})}
        latency = {**parent.get("pipeline_latency_cycles", {}), **d.get("pipeline_latency_cycles", {})}
        parent.update(d)
        parent["comments"] = comments
        parent["pipeline_latency_cycles"] = latency
        parent.setdefault("aliases", [])
        if "aliases" not in d:
            parent["aliases"] = []
        d = parent
    known = {k: v for k, v in d.items() if k in _KNOWN and k != "extra"}
    extra = {k: v for k, v in d.items() if k not in _KNOWN}
    extra.update(d.get("extra", {}))
    if "aliases" in known:
        known["aliases"] = tuple(known["aliases"])
    if "pipeline_latency_cycles" in known:
        known["pipeline_latency_cycles"] = {**_DEFAULT_LATENCY, **known["pipeline_latency_cycles"]}
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
    raw: list[tuple[Path, dict]] = []
    for d in reversed(_search_dirs()):
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.json")):
            with open(p, encoding="utf-8") as f:
                raw.append((p, json.load(f)))
    # Plain targets first, then variants (which may name any of them as "base"), in file order.
    pending = [r for r in raw if "base" not in r[1]] + [r for r in raw if "base" in r[1]]
    for _ in range(len(pending) + 1):
        later = []
        for p, dct in pending:
            base = dct.get("base")
            if base and base.lower() not in found:
                later.append((p, dct))
                continue
            a = _from_known(dct, found)
            found[a.name] = a
            for alias in a.aliases:
                found[alias] = a
        if not later or len(later) == len(pending):
            for p, dct in later:
                raise ValueError(f"arch file {p}: unknown base target {dct.get('base')!r}")
            break
        pending = later
    return found


def _from_known(d: dict[str, Any], found: dict[str, Arch]) -> Arch:
    base = d.get("base")
    if not base:
        return arch_from_dict(d)
    parent = found[base.lower()]
    dd = dict(d)
    dd.pop("base")
    merged = parent.to_dict()
    merged["comments"] = {**merged.get("comments", {}), **dd.pop("comments", {})}
    merged["pipeline_latency_cycles"] = {
        **merged.get("pipeline_latency_cycles", {}),
        **dd.pop("pipeline_latency_cycles", {}),
    }
    merged["aliases"] = []
    merged.update(dd)
    return arch_from_dict(merged)


def available_archs() -> list[str]:
    return sorted({a.name for a in _all_archs(os.environ.get("TRNSIM_ARCH_PATH", "")).values()})


def get_arch(target: str | Arch | None) -> Arch:
    """Resolve a target name ('trn1', 'trn2', 'gen3', a variant file's name or path) or an Arch object."""
    if isinstance(target, Arch):
        return target
    name = (target or "trn2").lower()
    archs = _all_archs(os.environ.get("TRNSIM_ARCH_PATH", ""))
    if name in archs:
        return archs[name]
    if os.path.isfile(str(target)):
        return load_arch(str(target))
    raise ValueError(f"unknown target {target!r}; known targets: {', '.join(available_archs())}")
