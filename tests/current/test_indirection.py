"""NkiTensor.indirect (tensor indirection, NeuronCore-v4): snake-ordered offsets per 16 / 32-partition group,
gathers, scatters, the Tensor engine's group size, offsets read at issue, and precise errors for the rest."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim
import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl
from trnsim.kernels.current import library_patterns as lp


def test_gather_scatter_and_matmul_groups(rng):
    d = rng.standard_normal((64, 100)).astype(np.float32)
    i16 = np.stack([rng.permutation(100)[:32] for _ in range(64)]).astype(np.uint16)  # unique per group: scatter
    i32 = rng.integers(0, 100, (64, 3)).astype(np.uint16)
    w = rng.standard_normal((64, 16)).astype(np.float32)
    g, s, mm = lp.ti_column_gather.with_target("trn3")(d, i16, i32, w)
    rg, rs, rmm = lp.ti_column_gather_reference(d, i16, i32, w)
    np.testing.assert_array_equal(g, rg)
    np.testing.assert_array_equal(s, rs)
    np.testing.assert_allclose(mm, rmm, rtol=1e-4, atol=1e-4)
    # the snake order: offset i of the group at partition 16 is idx[16 + i % 16, i // 16]
    assert g[20, 17] == d[20, i16[16 + 1, 1]]


def test_tutorial_layout_broadcast_index(rng):
    """The nki-samples tutorial layout: one (16, K) index block replicated over every 16-partition group."""
    P, F, n = 128, 256, 64
    data = rng.standard_normal((P, F)).astype(np.float32)
    cols = rng.integers(0, F, n).astype(np.uint16)

    @nki.jit
    def k(d_in, c_in):
        out = nl.ndarray((P, n), dtype=d_in.dtype, buffer=nl.shared_hbm)
        d = nl.ndarray((P, F), dtype=d_in.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=d, src=d_in)
        idx = nl.ndarray((P, n // 16), dtype=nl.uint16, buffer=nl.sbuf)
        for g in range(P // 16):  # idx[16 g + r, c] = cols[16 c + r]
            nisa.dma_copy(dst=idx[16 * g : 16 * (g + 1), :], src=c_in.ap(pattern=[[1, 16], [16, n // 16]]))
        r = nl.ndarray((P, n), dtype=d_in.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=r, src=d.indirect(idx, num_elem=n), engine=nisa.engine.vector)
        nisa.dma_copy(dst=out, src=r)
        return out

    got = k.with_target("trn3")(data, cols.reshape(1, n))
    np.testing.assert_array_equal(got, data[:, cols.astype(np.int64)])


def test_offsets_are_read_when_the_instruction_issues(rng):
    data = rng.standard_normal((16, 8)).astype(np.float32)

    @nki.jit
    def k(d_in):
        out = nl.ndarray((2, 16, 16), dtype=d_in.dtype, buffer=nl.shared_hbm)
        d = nl.ndarray((16, 8), dtype=d_in.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=d, src=d_in)
        idx = nl.ndarray((16, 1), dtype=nl.uint32, buffer=nl.sbuf)
        nisa.memset(dst=idx, value=1)
        view = d.indirect(idx)  # num_elem defaults to index.size = 16
        for rep in range(2):
            r = nl.ndarray((16, 16), dtype=d_in.dtype, buffer=nl.sbuf)
            nisa.tensor_copy(dst=r, src=view)
            nisa.dma_copy(dst=out[rep], src=r)
            nisa.memset(dst=idx, value=5)  # the same view now gathers column 5
        return out

    got = k.with_target("trn3")(data)
    np.testing.assert_array_equal(got[0], np.repeat(data[:, 1:2], 16, axis=1))
    np.testing.assert_array_equal(got[1], np.repeat(data[:, 5:6], 16, axis=1))


def _ti_kernel(make):
    @nki.jit
    def k(d_in):
        d = nl.ndarray((64, 32), dtype=d_in.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=d, src=d_in)
        idx = nl.ndarray((64, 2), dtype=nl.uint16, buffer=nl.sbuf)
        nisa.memset(dst=idx, value=3)
        make(d, idx)
        return d_in

    return k.with_target("trn3")


@pytest.mark.parametrize(
    "make, exc, code, text",
    [
        (lambda d, i: d.indirect(i), trnsim.NkiValidationError, "err_shape_mismatch", "pass num_elem"),
        (lambda d, i: d.indirect(i[0:32, :], num_elem=8), trnsim.NkiValidationError, "err_shape_mismatch", "P == 64"),
        (lambda d, i: d.indirect(i, num_elem=65), trnsim.NkiValidationError, "err_shape_mismatch", "index columns"),
        (lambda d, i: d.reshape((64, 4, 8)).indirect(i, num_elem=8), trnsim.NkiUnsupportedError,
         "err_unsupported_api", "not specified"),
        (lambda d, i: d.indirect(i, num_elem=8).indirect(i, num_elem=8), trnsim.NkiValidationError,
         "err_indirect_view", "re-indirected"),
        (lambda d, i: nisa.tensor_copy(dst=d[:, 0:40 // 8], src=d.indirect(i, num_elem=5)), None, None, None),
        (lambda d, i: nisa.dma_copy(dst=d[:, 0:8], src=d.indirect(i, num_elem=8)), trnsim.NkiUnsupportedError,
         "err_unsupported_api", "compute-engine instructions only"),
        (lambda d, i: (nisa.memset(dst=i, value=40), d.indirect(i, num_elem=8)), trnsim.NkiIndexError,
         "err_tensor_access_out_of_bound", "outside the 32 columns"),
        (lambda d, i: d[0:40, :].indirect(i[0:40, :], num_elem=8), trnsim.NkiUnsupportedError,
         "err_unsupported_api", "a partial group is not specified"),
    ],
)
def test_checks(rng, make, exc, code, text):
    k = _ti_kernel(make)
    d = rng.standard_normal((64, 32)).astype(np.float32)
    if exc is None:
        k(d)
        return
    with pytest.raises(exc) as e:
        k(d)
    assert e.value.code == code and text in str(e.value), str(e.value)


def test_matmul_uses_32_partition_groups_and_checks_them(rng):
    def mm(d, i):
        w = nl.ndarray((48, 8), dtype=nl.float32, buffer=nl.sbuf)
        nisa.memset(dst=w, value=1.0)
        ps = nl.ndarray((8, 8), dtype=nl.float32, buffer=nl.psum)
        nisa.nc_matmul(dst=ps, stationary=w, moving=d[0:48, :].indirect(i[0:48, :], num_elem=8))

    with pytest.raises(trnsim.NkiUnsupportedError) as e:
        _ti_kernel(mm)(rng.standard_normal((64, 32)).astype(np.float32))
    assert "per group of 32 partitions on Tensor-engine instructions" in str(e.value)


def test_needs_neuroncore_v4(rng):
    with pytest.raises(trnsim.NkiUnsupportedError) as e:
        nki.simulate(_ti_kernel(lambda d, i: d.indirect(i, num_elem=8)).with_target("trn2"))(
            rng.standard_normal((64, 32)).astype(np.float32))
    assert e.value.code == "err_unsupported_on_target"
