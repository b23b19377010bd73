"""Strict checks: every error names the rule (code), the values and the kernel's own file:line."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import trnsim
import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError, NkiMemoryError, NkiRaceError


def _line_of(fn, needle: str) -> int:
    src, start = inspect.getsourcelines(fn)
    for i, line in enumerate(src):
        if needle in line:
            return start + i
    raise AssertionError(needle)


def _expect(err: NkiError, code: str, fn, needle: str) -> None:
    assert err.code == code, err
    assert err.loc.file == __file__, err.loc
    assert err.loc.line == _line_of(fn, needle), (str(err), _line_of(fn, needle))


def test_partition_dim_over_128(rng):
    def k(a):
        t = nl.ndarray((256, 64), dtype=nl.float32, buffer=nl.sbuf)  # BAD
        return t

    with pytest.raises(NkiError) as ei:
        trnsim.simulate_kernel(k, rng.standard_normal((4, 4)).astype(np.float32))
    _expect(ei.value, "err_num_partition_exceed_arch_limit", k, "# BAD")
    assert "256" in str(ei.value)


def test_out_of_bounds_static_index(rng):
    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        i_p = nl.arange(128)[:, None]
        i_f = nl.arange(64)[None, :]
        t = nl.load(a[i_p + 8, i_f])  # BAD
        nl.store(out, t)
        return out

    with pytest.raises(NkiError) as ei:
        trnsim.simulate_kernel(k, rng.standard_normal((128, 64)).astype(np.float32))
    _expect(ei.value, "err_tensor_access_out_of_bound", k, "# BAD")


def test_mask_makes_ragged_tile_legal(rng):
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        n = a.shape[0]
        for i in nl.affine_range((n + 127) // 128):
            i_p = i * 128 + nl.arange(128)[:, None]
            i_f = nl.arange(64)[None, :]
            t = nl.load(a[i_p, i_f], mask=(i_p < n))
            nl.store(out[i_p, i_f], value=nl.exp(t, mask=(i_p < n)), mask=(i_p < n))
        return out

    a = rng.standard_normal((300, 64)).astype(np.float32)
    got = trnsim.simulate_kernel(k, a)
    np.testing.assert_allclose(got, np.exp(a.astype(np.float64)), rtol=1e-6, atol=1e-6)


def test_wrong_buffer_for_compute(rng):
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        y = nl.exp(a)  # BAD
        nl.store(out, y)
        return out

    with pytest.raises(NkiError) as ei:
        trnsim.simulate_kernel(k, rng.standard_normal((128, 64)).astype(np.float32))
    _expect(ei.value, "err_unsupported_memory", k, "# BAD")


def test_matmul_moving_free_size_limit(rng):
    def k(a, b):
        out = nl.ndarray((128, 1024), dtype=nl.float32, buffer=nl.shared_hbm)
        ta = nl.load(a)
        tb = nl.load(b)
        p = nisa.nc_matmul(ta, tb)  # BAD
        nl.store(out, nl.copy(p))
        return out

    with pytest.raises(NkiError) as ei:
        trnsim.simulate_kernel(k, rng.standard_normal((128, 128)).astype(np.float32),
                               rng.standard_normal((128, 1024)).astype(np.float32))
    _expect(ei.value, "err_size_of_dimension_exceed_arch_limit", k, "# BAD")
    assert "1024" in str(ei.value)


def test_matmul_mixed_fp32_bf16_rejected(rng):
    import ml_dtypes

    def k(a, b):
        out = nl.ndarray((128, 128), dtype=nl.float32, buffer=nl.shared_hbm)
        p = nisa.nc_matmul(nl.load(a), nl.load(b))  # BAD
        nl.store(out, nl.copy(p))
        return out

    with pytest.raises(NkiError) as ei:
        trnsim.simulate_kernel(k, rng.standard_normal((128, 128)).astype(np.float32),
                               rng.standard_normal((128, 128)).astype(ml_dtypes.bfloat16))
    _expect(ei.value, "err_unsupported_dtype", k, "# BAD")


def test_affine_range_loop_carried_dependency_is_an_error(rng):
    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        acc = nl.zeros((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        for i in nl.affine_range(4):
            t = nl.load(a[i * 128:(i + 1) * 128, :])
            acc[...] = nl.add(acc, t)  # BAD
        nl.store(out, acc)
        return out

    with pytest.raises(NkiRaceError) as ei:
        trnsim.simulate_kernel(k, rng.standard_normal((512, 64)).astype(np.float32))
    _expect(ei.value, "err_unexpected_output_dependencies", k, "# BAD")


def test_sequential_range_allows_the_same_dependency(rng):
    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        acc = nl.zeros((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        for i in nl.sequential_range(4):
            t = nl.load(a[i * 128:(i + 1) * 128, :])
            acc[...] = nl.add(acc, t)
        nl.store(out, acc)
        return out

    a = rng.standard_normal((512, 64)).astype(np.float32)
    got = trnsim.simulate_kernel(k, a)
    np.testing.assert_allclose(got, a.astype(np.float64).reshape(4, 128, 64).sum(0), rtol=1e-5, atol=1e-5)


def test_psum_accumulation_in_affine_range_is_allowed(rng):
    def k(lhsT, rhs):
        out = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
        ps = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
        for kk in nl.affine_range(lhsT.shape[0] // 128):
            ps += nisa.nc_matmul(nl.load(lhsT[kk * 128:(kk + 1) * 128, :]), nl.load(rhs[kk * 128:(kk + 1) * 128, :]))
        nl.store(out, nl.copy(ps))
        return out

    a = rng.standard_normal((512, 128)).astype(np.float32)
    b = rng.standard_normal((512, 512)).astype(np.float32)
    got = trnsim.simulate_kernel(k, a, b)
    np.testing.assert_allclose(got, a.astype(np.float64).T @ b, rtol=1e-4, atol=1e-3)


def test_disjoint_writes_per_iteration_are_not_races(rng):
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        for i in nl.affine_range(a.shape[0] // 128):
            for j in nl.affine_range(a.shape[1] // 256):
                t = nl.load(a[i * 128:(i + 1) * 128, j * 256:(j + 1) * 256])
                nl.store(out[i * 128:(i + 1) * 128, j * 256:(j + 1) * 256], value=nl.multiply(t, 2.0))
        return out

    a = rng.standard_normal((256, 1024)).astype(np.float32)
    np.testing.assert_allclose(trnsim.simulate_kernel(k, a), 2 * a, rtol=0, atol=0)


def test_sbuf_capacity_exceeded_by_live_tiles(rng):
    def k(a):
        out = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.shared_hbm)
        big = nl.ndarray((128, 60000), dtype=nl.float32, buffer=nl.sbuf)  # 240 KB per partition
        big[...] = nl.load(a)  # BAD
        nl.store(out, big[:, 0:8])
        return out

    with pytest.raises(NkiMemoryError) as ei:
        trnsim.simulate_kernel(k, rng.standard_normal((128, 60000)).astype(np.float32))
    assert ei.value.code == "err_sbuf_capacity_exceeded"
    assert ei.value.loc.file == __file__
    assert "big" in str(ei.value)


def test_block_dims_count_live_blocks_not_declared_size(rng):
    # 64 blocks x 128 x 2048 fp32 = 512 KiB declared per partition, but one block is live at a time.
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        buf = nl.ndarray((64, nl.par_dim(128), 2048), dtype=nl.float32, buffer=nl.sbuf)
        for i in nl.affine_range(64):
            buf[i] = nl.load(a[i])
            nl.store(out[i], value=buf[i])
        return out

    a = rng.standard_normal((64, 128, 2048)).astype(np.float32)
    np.testing.assert_array_equal(trnsim.simulate_kernel(k, a), a)


def test_uninitialised_read_is_reported_with_reading_line(rng):
    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        y = nl.exp(t)  # READS-UNINIT
        nl.store(out, y)
        return out

    with pytest.warns(trnsim.NkiWarning, match="never written"):
        got = trnsim.simulate_kernel(k, rng.standard_normal((128, 64)).astype(np.float32))
    assert np.isnan(got).all()
    d = [x for x in trnsim.last_launch().diagnostics if x.code == "warn_uninitialized_read"]
    assert d and d[0].loc.line == _line_of(k, "# READS-UNINIT")


def test_output_never_written_is_an_error(rng):
    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)  # NEVER-WRITTEN
        return out

    with pytest.raises(NkiError) as ei:
        trnsim.simulate_kernel(k, rng.standard_normal((128, 64)).astype(np.float32))
    assert ei.value.code == "err_tensor_output_not_written_to"


def test_inputs_are_never_modified(rng):
    def k(a):
        nl.store(a, nl.multiply(nl.load(a), 3.0))  # BAD
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.load(a))
        return out

    a = rng.standard_normal((128, 64)).astype(np.float32)
    before = a.copy()
    with pytest.raises(NkiError) as ei:
        trnsim.simulate_kernel(k, a)
    assert ei.value.code == "err_cannot_update_immutable_parameter"
    np.testing.assert_array_equal(a, before)


def test_python_control_flow_on_tile_is_an_error(rng):
    def k(a):
        t = nl.load(a)
        if t:  # BAD
            pass
        return a

    with pytest.raises(NkiError) as ei:
        trnsim.simulate_kernel(k, rng.standard_normal((128, 64)).astype(np.float32))
    _expect(ei.value, "err_ambiguous_tensor_truth_value", k, "# BAD")


def test_nki_api_outside_kernel():
    with pytest.raises(NkiError) as ei:
        nl.ndarray((128, 4), dtype=nl.float32)
    assert ei.value.code == "err_nki_api_outside_of_nki_kernel"


def test_traceback_hides_trnsim_frames(rng):
    def k(a):
        return nl.exp(a)

    with pytest.raises(NkiError) as ei:
        nki.simulate_kernel(nki.jit(k), rng.standard_normal((128, 4)).astype(np.float32))
    files = [str(tb.path) for tb in ei.traceback]
    assert not any("/trnsim/core/" in f or "/trnsim/isa/" in f for f in files[1:]), files
