"""Hardware as data: trn1 / trn2 descriptions, user variants as JSON files (TRNSIM_ARCH_PATH, load_arch)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trnsim
from trnsim.frontend.legacy.typing import tensor
from trnsim.kernels.calibration import microbench
from trnsim.timing.arch import available_archs, get_arch, load_arch

CALIBRATED = ("dma_bytes_per_ns_per_engine", "dma_descriptor_ns", "dma_fixed_ns", "pipeline_latency_cycles",
              "buffer_rotation", "reorder_window")


@pytest.mark.parametrize("name", ["trn1", "trn2"])
def test_complete_descriptions(name):
    a = get_arch(name)
    for engine in ("Tensor", "Vector", "Scalar", "GpSimd", "Sync"):
        assert a.clock_ghz[engine] > 0
        assert engine in a.pipeline_latency_cycles
    assert a.dma_engines == 16 and a.psum_banks == 8 and a.psum_bank_bytes == 2048
    assert a.sbuf_usable_bytes_per_partition < a.sbuf_bytes_per_partition
    assert a.hbm_bytes_per_ns > 0 and a.dma_fixed_ns > 0 and a.min_ii_cycles == 64
    for p in CALIBRATED:
        assert a.comments.get(p), f"{name}: parameter {p} has no comment saying where its value comes from"


def test_peak_flops_match_the_documented_tflops():
    assert get_arch("trn1").peak_bf16_flops_per_ns == pytest.approx(91.75e3, rel=1e-3)  # 92 TFLOPS
    assert get_arch("trn2").peak_bf16_flops_per_ns == pytest.approx(78.6e3, rel=1e-3)  # 79 TFLOPS


def test_aliases():
    assert get_arch("gen3") is get_arch("trn2")
    assert get_arch("inf2") is get_arch("trn1")
    with pytest.raises(ValueError, match="unknown target"):
        get_arch("trn9")


def _dma_bound_time(target) -> float:
    # two cores each streaming 8 MiB: bounded by HBM when HBM is slow enough
    return trnsim.estimate(microbench.single_dma, tensor[[128, 32768], np.float32], target=target).total_ns


def test_variant_from_json_file_on_the_search_path(tmp_path, monkeypatch):
    (tmp_path / "slowhbm.json").write_text(json.dumps({
        "name": "trn2-slowhbm", "base": "trn2", "hbm_bytes_per_ns": 20.0,
        "comments": {"hbm_bytes_per_ns": "what-if: very slow HBM"},
    }))
    (tmp_path / "fasthbm.json").write_text(json.dumps({"name": "trn2-2xhbm", "base": "trn2", "hbm_bytes_per_ns": 724.0}))
    monkeypatch.setenv("TRNSIM_ARCH_PATH", str(tmp_path))
    assert {"trn2-slowhbm", "trn2-2xhbm"} <= set(available_archs())
    slow = get_arch("trn2-slowhbm")
    assert slow.hbm_bytes_per_ns == 20.0
    assert slow.dma_bytes_per_ns_per_engine == get_arch("trn2").dma_bytes_per_ns_per_engine  # inherited
    assert slow.comments["hbm_bytes_per_ns"] == "what-if: very slow HBM"
    assert slow.comments["dma_descriptor_ns"]  # inherited comments stay
    base = _dma_bound_time("trn2")
    assert _dma_bound_time("trn2-slowhbm") > 3 * base  # the model reads the variant's HBM bandwidth
    assert _dma_bound_time("trn2-2xhbm") == pytest.approx(base, rel=0.05)  # one core is DMA-bound, not HBM


def test_load_arch_from_a_path_and_programmatic_variant(tmp_path):
    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"name": "mine", "base": "trn1", "dma_bytes_per_ns_per_engine": 17.0}))
    a = load_arch(p)
    assert a.name == "mine" and a.nc_version == 2 and a.dma_bytes_per_ns_per_engine == 17.0
    assert get_arch(str(p)).name == "mine"
    t_fast = _dma_bound_time(a)
    t_base = _dma_bound_time("trn1")
    assert t_fast < 0.6 * t_base
    v = get_arch("trn2").variant("fewer-buffers", buffer_rotation=1)
    assert v.buffer_rotation == 1 and v.name == "fewer-buffers"
