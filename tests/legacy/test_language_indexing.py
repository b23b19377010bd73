"""Legacy index algebra: nl.arange / nl.mgrid (.p / .x) expressions, nl.ds, strided / reversed / transposed /
non-affine accesses, tile-valued indices, masks with loop indices, and out-of-bound errors with file:line."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError

SOURCE = pathlib.Path(__file__).read_text().splitlines()


def simulate(kernel, *args, grid=None):
    k = nki.jit(kernel)
    return nki.simulate_kernel(k[grid] if grid is not None else k, *args)


def assert_error_at_marker(err: NkiError, code: str, marker: str = "# <- error") -> None:
    """The error carries `code` and points at this file's kernel line holding `marker`."""
    assert err.code == code, str(err)
    assert err.loc.file == __file__, str(err)
    assert marker in SOURCE[err.loc.line - 1], (err.loc.line, SOURCE[err.loc.line - 1])


def _load_store(access, out_shape):
    def kernel(x):
        out = nl.ndarray(out_shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.load(access(x)))
        return out

    return kernel


@pytest.mark.parametrize(
    "name,access,ref,out_shape",
    [
        ("arange", lambda x: x[nl.arange(64)[:, None], nl.arange(32)[None, :]], lambda x: x[:64, :32], (64, 32)),
        ("offset", lambda x: x[16 + nl.arange(64)[:, None], 8 + nl.arange(32)[None, :]], lambda x: x[16:80, 8:40],
         (64, 32)),
        ("start_stop", lambda x: x[nl.arange(8, 72)[:, None], nl.arange(32)[None, :]], lambda x: x[8:72, :32], (64, 32)),
        ("stride", lambda x: x[nl.arange(64)[:, None], 2 * nl.arange(24)[None, :]], lambda x: x[:64, 0:48:2], (64, 24)),
        ("arange_step", lambda x: x[nl.arange(0, 128, 2)[:, None], nl.arange(48)[None, :]], lambda x: x[0:128:2], (64, 48)),
        ("reversed", lambda x: x[127 - nl.arange(128)[:, None], nl.arange(48)[None, :]], lambda x: x[::-1], (128, 48)),
        ("transposed", lambda x: x[nl.arange(48)[None, :], nl.arange(40)[:, None]], lambda x: x[:48, :40].T, (40, 48)),
        ("mgrid", lambda x: x[nl.mgrid[0:128, 0:48]], lambda x: x, (128, 48)),
        ("mgrid_px", lambda x: (lambda g: x[g.p, g.x + 4])(nl.mgrid[0:100, 0:40]), lambda x: x[:100, 4:44], (100, 40)),
        ("floordiv", lambda x: x[nl.arange(64)[:, None], nl.arange(40)[None, :] // 2], lambda x: x[:64, np.arange(40) // 2],
         (64, 40)),
        ("mod", lambda x: x[nl.arange(64)[:, None], nl.arange(40)[None, :] % 7], lambda x: x[:64, np.arange(40) % 7],
         (64, 40)),
        ("diagonal", lambda x: x[nl.arange(32)[:, None], nl.arange(32)[:, None] + nl.arange(16)[None, :]],
         lambda x: x[np.arange(32)[:, None], np.arange(32)[:, None] + np.arange(16)[None, :]], (32, 16)),
        ("ds", lambda x: x[nl.ds(32, 64), nl.ds(8, 16)], lambda x: x[32:96, 8:24], (64, 16)),
        ("slices", lambda x: x[0:128, 10:20], lambda x: x[:, 10:20], (128, 10)),
        ("int_and_slice", lambda x: x[5:6, :], lambda x: x[5:6], (1, 48)),
    ],
)
def test_index_expressions(name, access, ref, out_shape, rng):
    x = rng.standard_normal((128, 48)).astype(np.float32)
    got = simulate(_load_store(access, out_shape), x)
    np.testing.assert_array_equal(got, ref(x))


def test_three_d_mgrid_and_loop_offsets(rng):
    def kernel(x):
        out = nl.ndarray((2, 64, 4, 8), dtype=x.dtype, buffer=nl.shared_hbm)
        i0, i1, i2 = nl.mgrid[0:64, 0:4, 0:8]
        for b in nl.affine_range(2):
            t = nl.load(x[b * 64 + i0, i1, i2])
            nl.store(out[b, i0, i1, i2], t)
        return out

    x = rng.standard_normal((128, 4, 8)).astype(np.float32)
    np.testing.assert_array_equal(simulate(kernel, x), x.reshape(2, 64, 4, 8))


def test_ds_with_loop_index_and_program_id(rng):
    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        pid = nl.program_id(0)
        for i in nl.affine_range(2):
            t = nl.load(x[nl.ds(pid * 128, 128), nl.ds(i * 32, 32)])
            nl.store(out[nl.ds(pid * 128, 128), nl.ds(i * 32, 32)], nl.negative(t))
        return out

    x = rng.standard_normal((256, 64)).astype(np.float32)
    np.testing.assert_array_equal(simulate(kernel, x, grid=2), -x)


def test_tile_valued_indices_gather_rows(rng):
    def kernel(x, idx):
        out = nl.ndarray((128, 32), dtype=x.dtype, buffer=nl.shared_hbm)
        i_p = nl.arange(128)[:, None]
        i_f = nl.arange(32)[None, :]
        it = nl.load(idx)
        nl.store(out, nl.load(x[it[i_p, 0], i_f]))
        return out

    x = rng.standard_normal((300, 32)).astype(np.float32)
    idx = rng.integers(0, 300, size=(128, 1)).astype(np.int32)
    np.testing.assert_array_equal(simulate(kernel, x, idx), x[idx[:, 0]])


def test_mask_with_program_id_and_loop_index(rng):
    n = 200

    def kernel(x):
        out = nl.ndarray((n, 16), dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:128, 0:16]
        base = nl.program_id(0) * 128
        t = nl.load(x[base + i_p, i_f], mask=(base + i_p < n))
        nl.store(out[base + i_p, i_f], nl.add(t, 1.0, mask=(base + i_p < n)), mask=(base + i_p < n))
        return out

    x = rng.standard_normal((n, 16)).astype(np.float32)
    np.testing.assert_array_equal(simulate(kernel, x, grid=2), x + 1)


def test_index_algebra_objects():
    i_p = nl.arange(128)[:, None]
    i_f = nl.arange(64)[None, :]
    e = 3 * i_p - 2 + i_f * 2
    assert e.shape == (128, 64)
    np.testing.assert_array_equal(e.evaluate(), 3 * np.arange(128)[:, None] - 2 + 2 * np.arange(64)[None, :])
    g = nl.mgrid[0:8, 0:4, 0:2]
    assert g.p.shape == (8, 1, 1) and g.x.shape == (1, 4, 1) and g.y.shape == (1, 1, 2)
    assert len(nl.arange(5)) == 5 and list(nl.arange(2, 5)) == [2, 3, 4]
    s = nl.ds(7, 3)
    assert s.to_slice() == slice(7, 10)


# ------------------------------------------------------------------------------------------------ bounds errors
def test_out_of_bound_arange_access_reports_kernel_line(rng):
    def kernel(x):
        out = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:128, 0:16]
        t = nl.load(x[i_p + 1, i_f])  # <- error
        nl.store(out, t)
        return out

    with pytest.raises(NkiError) as ei:
        simulate(kernel, rng.standard_normal((128, 16)).astype(np.float32))
    assert_error_at_marker(ei.value, "err_tensor_access_out_of_bound")


def test_out_of_bound_slice_reports_kernel_line(rng):
    def kernel(x):
        out = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.load(x[0:128, 8:24])  # <- error
        nl.store(out, t)
        return out

    with pytest.raises(NkiError) as ei:
        simulate(kernel, rng.standard_normal((128, 16)).astype(np.float32))
    assert_error_at_marker(ei.value, "err_tensor_access_out_of_bound")


def test_out_of_bound_tile_index_values_report_kernel_line(rng):
    def kernel(x, idx):
        out = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.arange(128)[:, None], nl.arange(16)[None, :]
        t = nl.load(x[nl.load(idx)[i_p, 0], i_f])  # <- error
        nl.store(out, t)
        return out

    idx = np.full((128, 1), 64, dtype=np.int32)
    with pytest.raises(NkiError) as ei:
        simulate(kernel, rng.standard_normal((64, 16)).astype(np.float32), idx)
    assert_error_at_marker(ei.value, "err_tensor_access_out_of_bound")


def test_mask_keeps_out_of_bound_rows_from_being_touched(rng):
    def kernel(x):
        out = nl.ndarray((100, 16), dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:128, 0:16]
        nl.store(out[i_p, i_f], nl.load(x[i_p, i_f], mask=i_p < 100), mask=i_p < 100)
        return out

    x = rng.standard_normal((100, 16)).astype(np.float32)
    np.testing.assert_array_equal(simulate(kernel, x), x)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 64),
    st.integers(1, 16),
    st.integers(-3, 3).filter(lambda v: v != 0),
    st.integers(-3, 3).filter(lambda v: v != 0),
    st.integers(0, 2**32 - 1),
)
def test_property_affine_accesses_match_numpy(p, f, a, b, seed):
    """x[a*i_p + c0, b*i_f + c1] for any non-zero integer coefficients equals NumPy's fancy indexing."""
    g = np.random.default_rng(seed)
    rows, cols = abs(a) * p + 2, abs(b) * f + 2
    x = g.standard_normal((rows, cols)).astype(np.float32)
    c0 = 0 if a > 0 else rows - 1
    c1 = 1 if b > 0 else cols - 1

    def kernel(t):
        out = nl.ndarray((p, f), dtype=t.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:p, 0:f]
        nl.store(out, nl.load(t[a * i_p + c0, b * i_f + c1]))
        return out

    ip, jf = np.arange(p)[:, None], np.arange(f)[None, :]
    np.testing.assert_array_equal(simulate(kernel, x), x[a * ip + c0, b * jf + c1])


def test_non_affine_mask_is_evaluated_elementwise(rng):
    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:16, 0:8]
        r = nl.zeros((16, 8), dtype=nl.float32)
        r[i_p, i_f] = nl.exp(nl.load(x), mask=(i_f // 2 < 3) & (i_p < 10) & (7 - i_f % 4 > 4))
        nl.store(out, r)
        return out

    x = rng.standard_normal((16, 8)).astype(np.float32)
    f, p = np.arange(8)[None, :], np.arange(16)[:, None]
    keep = (f // 2 < 3) & (p < 10) & (7 - f % 4 > 4)
    np.testing.assert_allclose(simulate(kernel, x), np.where(keep, np.exp(x.astype(np.float64)), 0), rtol=1e-5, atol=1e-5)
