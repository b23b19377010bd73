"""`nki.isa.constants`: the ISA enums (kernels write `nisa.constants.oob_mode.skip` or import from here)."""

from __future__ import annotations

from .isa import dge_mode, dma_engine, engine, matmul_perf_mode, nc_version, oob_mode, reduce_cmd

__all__ = ["dge_mode", "dma_engine", "engine", "matmul_perf_mode", "nc_version", "oob_mode", "reduce_cmd"]
