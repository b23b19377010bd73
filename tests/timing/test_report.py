"""`Estimate.report()` and `python -m trnsim estimate SCRIPT`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import ml_dtypes

import trnsim
from trnsim.frontend.legacy.typing import tensor
from trnsim.kernels import matmul
from trnsim.timing.report import describe_idle, format_estimate, lost_time

BF16 = ml_dtypes.bfloat16


def test_report_names_the_wait_and_its_source_line():
    est = trnsim.estimate(matmul.matmul_tiled, tensor[[1024, 256], BF16], tensor[[1024, 1024], BF16], target="trn1")
    eng, key, frac = next(x for x in lost_time(est) if x[0] == "Tensor")
    line = describe_idle(eng, key, frac)
    assert line.startswith("Tensor engine idle") and "waiting on DMA" in line and "load of" in line
    assert "matmul.py:" in line
    text = format_estimate(est)
    assert "matmul_tiled on trn1" in text and "critical path" in text and "MFU" in text and "HFU" in text


def test_estimate_command_runs_a_script(tmp_path):
    script = tmp_path / "run_kernels.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        import ml_dtypes
        import neuronxcc.nki as nki
        from trnsim.kernels.matmul import matmul_tiled, matmul_blocked
        a = np.ones((512, 256), ml_dtypes.bfloat16)
        b = np.ones((512, 1024), ml_dtypes.bfloat16)
        matmul_tiled(a, b)
        bench = nki.benchmark(warmup=1, iters=2)(matmul_blocked)
        bench(a, b)
        print("latency us", bench.benchmark_result.nc_latency.get_latency_percentile(50))
    """))
    r = subprocess.run([sys.executable, "-m", "trnsim", "estimate", "--target", "trn1", str(script)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "latency us" in out
    assert "launch 1: matmul_tiled on trn1" in out and "launch 2: matmul_blocked on trn1" in out
    assert "where time is lost" in out and "run_kernels" not in out.split("where time is lost")[0][-10:]
    assert "engine idle" in out
