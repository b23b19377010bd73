"""Summary metrics of a scheduled launch (names follow Neuron Explorer's summary where they exist)."""

from __future__ import annotations

from typing import Any


def summarize(launch: Any, est: Any) -> dict:
    util = est.engine_utilisation()
    return {
        "kernel": launch.kernel_name,
        "target": launch.arch.name,
        "total_time": est.total_ns / 1e9,
        "total_time_ns": est.total_ns,
        "mfu_estimated_percent": 100.0 * est.mfu,
        "mbu_estimated_percent": 100.0 * est.mbu,
        "instruction_count": len(launch.stream),
        "dma_bytes": est.dma_bytes,
        "hbm_bytes": est.hbm_bytes,
        **{f"{k.lower()}_active_time_percent": 100.0 * v for k, v in util.items()},
    }
