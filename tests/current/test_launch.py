"""Launching current-API kernels: nki.jit / nki.simulate / TRNSIM_SIMULATOR, NumPy and torch in -> same type out,
`python -m trnsim run` with `import nki`, trnsim.simulate_kernel / estimate, targets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import trnsim
import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl
import trnsim.frontend.current.typing as nt


@nki.jit
def exp_kernel(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a)
    nisa.activation(dst=t, op=nl.exp, data=t)
    nisa.dma_copy(dst=out, src=t)
    return out


def test_numpy_in_numpy_out(rng):
    a = rng.standard_normal((128, 32)).astype(np.float32)
    for fn in (exp_kernel, nki.simulate(exp_kernel), nki.simulate(exp_kernel[2]),
               lambda x: trnsim.simulate_kernel(exp_kernel, x)):
        got = fn(a)
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        np.testing.assert_allclose(got, np.exp(a.astype(np.float64)), rtol=1e-6)


def test_torch_tensors_need_the_simulator_switch(rng, monkeypatch):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(rng.standard_normal((128, 32)).astype(np.float32)).to(torch.bfloat16)
    with pytest.raises(trnsim.NkiUnsupportedError) as e:
        exp_kernel(x)
    assert e.value.code == "err_no_neuron_device" and "TRNSIM_SIMULATOR=1" in e.value.hint
    got = nki.simulate(exp_kernel)(x)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16
    for var in ("TRNSIM_SIMULATOR", "NKI_SIMULATOR"):
        monkeypatch.setenv(var, "1")
        got = exp_kernel(x)
        monkeypatch.delenv(var)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16
        np.testing.assert_allclose(got.float().numpy(), np.exp(x.float().numpy().astype(np.float64)), rtol=2e-2)


def test_parameter_writes_are_copied_back(rng):
    @nki.jit
    def scale_in_place(a: nt.mutable_tensor):
        t = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=a)
        nisa.tensor_scalar(dst=t, data=t, op0=nl.multiply, operand0=2.0)
        nisa.dma_copy(dst=a, src=t)
        return a

    a = rng.standard_normal((64, 16)).astype(np.float32)
    orig = a.copy()
    got = scale_in_place(a)
    np.testing.assert_array_equal(got, 2 * orig)
    np.testing.assert_array_equal(a, 2 * orig)


def test_nested_jit_is_inlined_with_a_warning(rng):
    @nki.jit
    def helper(t):
        nisa.tensor_scalar(dst=t, data=t, op0=nl.add, operand0=1.0)

    @nki.jit
    def outer(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=a)
        helper(t)
        nisa.dma_copy(dst=out, src=t)
        return out

    a = rng.standard_normal((8, 8)).astype(np.float32)
    with pytest.warns(trnsim.NkiWarning, match="called from inside another kernel"):
        got = outer(a)
    np.testing.assert_allclose(got, a + 1, rtol=1e-6)


def test_estimate_timing_only_with_placeholders():
    from trnsim.kernels.current import matmul

    est = trnsim.estimate(matmul.matmul, nt.tensor[[256, 256], nl.bfloat16], nt.tensor[[256, 512], nl.bfloat16])
    assert est.total_ns > 0 and est.flops == 2 * 256 * 256 * 512
    est2 = trnsim.estimate(exp_kernel[2], np.zeros((128, 32), np.float32))
    assert est2.extra["cores"] == 2


@pytest.mark.parametrize("target", ["trn1", "trn2", "trn3"])
def test_targets_by_environment(monkeypatch, target):
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", target)
    _, rec = exp_kernel.launch(np.zeros((8, 8), np.float32))
    assert rec.arch.name == target


def test_python_m_trnsim_run_serves_import_nki(tmp_path):
    script = tmp_path / "uses_nki.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        import nki
        import nki.isa as nisa
        import nki.language as nl
        from nki.isa.constants import oob_mode
        import nki.collectives

        @nki.jit
        def k(a):
            out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
            t = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=a, oob_mode=oob_mode.error)
            nisa.dma_copy(dst=out, src=t)
            return out

        a = np.arange(16, dtype=np.float32).reshape(4, 4)
        assert (k[2](a) == a).all() if nisa.get_nc_version is not None else False
        print("OK", nki.collectives.ReplicaGroup([[0, 1]]))
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("TRNSIM_SIMULATOR", "NKI_SIMULATOR")}
    r = subprocess.run([sys.executable, "-m", "trnsim", "run", str(script)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "OK ReplicaGroup([[0, 1]])" in r.stdout


def test_timing_schedules_both_cores(rng):
    from trnsim.timing.model import estimate_launch

    _, rec = exp_kernel[2].launch(rng.standard_normal((128, 16)).astype(np.float32))
    est = estimate_launch(rec)
    ends = {c: max(t.end for t, i in zip(est.timings, rec.stream) if i.core == c) for c in (0, 1)}
    assert ends[0] > 0 and ends[1] > 0 and est.extra["cores"] == 2
