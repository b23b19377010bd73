"""Legacy nisa.dma_copy with indirect (tile-valued) indices: oob_mode=error raises at the kernel line,
oob_mode=skip drops the out-of-range rows of a gather or scatter. Copies are bit exact (fp32 and bf16)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError
from trnsim.testing import expect_kernel_error

BF16 = ml_dtypes.bfloat16


def _expect_error(fn, args, code: str, needle: str = "# BAD") -> NkiError:
    return expect_kernel_error(fn, *args, code=code, at=needle, runner=nki.simulate_kernel)


@pytest.mark.parametrize("dt", [np.float32, BF16], ids=["fp32", "bf16"])
def test_dma_copy_gather_and_scatter_skip_out_of_range_rows(rng, dt):
    @nki.jit
    def k(table, idx, fill):
        gathered = nl.ndarray((64, 32), dtype=table.dtype, buffer=nl.shared_hbm)
        scattered = nl.ndarray(table.shape, dtype=table.dtype, buffer=nl.shared_hbm)
        i_p = nl.arange(64)[:, None]
        i_f = nl.arange(32)[None, :]
        ids = nl.load(idx)
        g = nl.load(fill)
        nisa.dma_copy(dst=g, src=table[ids[i_p, 0], i_f], oob_mode=nisa.oob_mode.skip)
        nl.store(gathered, g)
        nisa.dma_copy(dst=scattered, src=table)
        nisa.dma_copy(dst=scattered[ids[i_p, 0], i_f], src=g, oob_mode=nisa.oob_mode.skip)
        return gathered, scattered

    table = rng.standard_normal((100, 32)).astype(dt)
    idx = rng.permutation(160)[:64].astype(np.int32)[:, None]  # about 40% of the rows are out of range
    fill = rng.standard_normal((64, 32)).astype(dt)
    gathered, scattered = nki.simulate_kernel(k, table, idx, fill)
    ok = idx[:, 0] < 100
    ref_g = fill.copy()
    ref_g[ok] = table[idx[ok, 0]]
    np.testing.assert_array_equal(gathered, ref_g)
    ref_s = table.copy()
    ref_s[idx[ok, 0]] = ref_g[ok]
    np.testing.assert_array_equal(scattered, ref_s)


def test_dma_copy_out_of_range_error_and_rmw_rule(rng):
    table = rng.standard_normal((10, 8)).astype(np.float32)
    idx = np.array([[3], [12]], dtype=np.int32)

    def oob_error(t, ix):
        i_p = nl.arange(2)[:, None]
        i_f = nl.arange(8)[None, :]
        ids = nl.load(ix)
        g = nl.ndarray((2, 8), dtype=t.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=g, src=t[ids[i_p, 0], i_f])  # BAD

    def rmw_skip(t, ix):
        g = nl.load(t)
        out = nl.ndarray(t.shape, dtype=t.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=g, dst_rmw_op=np.add, oob_mode=nisa.oob_mode.skip)  # BAD

    _expect_error(oob_error, (table, idx), "err_tensor_access_out_of_bound")
    _expect_error(rmw_skip, (table, idx), "err_invalid_operand")
