"""Legacy error catalogue (nki-api.md 6.1), the codes that apply while a kernel runs: each test breaks one rule
in a small kernel of its own and checks the documented code and that the error points at the kernel line marked
`# <- error` in this file. Numbers are the catalogue's. Codes that an eager simulator cannot check (19, 36) are
listed with the reason in docs/coverage.md."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.compiler as ncc
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
import trnsim.frontend.legacy.typing as nt
from trnsim.core.errors import NkiError
from trnsim.testing import expect_kernel_error

SOURCE = pathlib.Path(__file__).read_text().splitlines()


def raises_at_marker(kernel, code, *args, grid=None, marker="# <- error"):
    def launch(fn, *a):
        nki.simulate_kernel(nki.jit(fn)[grid] if grid is not None else nki.jit(fn), *a)

    err = expect_kernel_error(kernel, *args, code=code, at=None, runner=launch)
    assert marker in SOURCE[err.loc.line - 1], (err.loc.line, SOURCE[err.loc.line - 1], str(err))
    return err


@pytest.fixture
def x(rng):
    return rng.standard_normal((128, 64)).astype(np.float32)


def _out(shape=(128, 64)):
    return nl.ndarray(shape, dtype=nl.float32, buffer=nl.shared_hbm)


# 6 -------------------------------------------------------------------------------------------------------------
# annotated local assignments are checked by a line tracer, which steps aside for an active debugger / coverage tool
needs_tracer = pytest.mark.skipif(sys.gettrace() is not None, reason="another trace function is active")


@needs_tracer
def test_6_annotated_local_assignment_with_other_shape(x):
    def kernel(t):
        out = _out()
        ok: nt.tensor[[128, 64], nl.float32] = nl.load(t)
        half: nt.tensor[[128, 64], nl.float32] = nl.load(t[:, 0:32])  # <- error
        nl.store(out, ok)
        nl.store(out[:, 0:32], half)
        return out

    err = raises_at_marker(kernel, "err_annotation_shape_mismatch", x)
    assert err.values["shape"] == (128, 32) and err.values["annotation"] == (128, 64)


@needs_tracer
def test_6_annotated_assignment_in_a_loop_and_multi_line(x):
    def kernel(t):
        out = _out()
        for i in nl.affine_range(2):
            a: nt.tensor[[128, 32], nl.float32] = nl.load(t[:, i * 32 : i * 32 + 32])
            nl.store(out[:, i * 32 : i * 32 + 32], a)
        b: nt.tensor[[64, 64], nl.float32] = nl.exp(  # <- error
            nl.load(t)
        )
        nl.store(out, b)
        return out

    raises_at_marker(kernel, "err_annotation_shape_mismatch", x)


def test_6_matching_annotations_run(x):
    def kernel(t: nt.tensor[[128, 64], nl.float32]):
        out = _out()
        a: nt.tensor[[128, 64], nl.float32] = nl.load(t)
        nl.store(out, a)
        return out

    np.testing.assert_array_equal(nki.simulate_kernel(nki.jit(kernel), x), x)


@needs_tracer
def test_6_annotation_a_value_broadcasts_to_is_accepted(x):
    """nki-samples' select_and_scatter annotates an iota of two grid axes with the whole grid's shape."""

    def kernel(t):
        out = _out()
        col: nt.tensor[[128, 64], nl.float32] = nl.load(t[:, 0:1])  # [128, 1] broadcasts to the annotation
        nl.store(out, nl.add(nl.load(t), col))
        return out

    np.testing.assert_allclose(nki.simulate_kernel(nki.jit(kernel), x), x + x[:, :1], rtol=1e-6)


def test_6_parameter_annotation_with_other_shape(x):
    def kernel(t: nt.tensor[[64, 64], nl.float32]):  # <- error
        out = _out()
        nl.store(out, nl.load(t))
        return out

    raises_at_marker(kernel, "err_annotation_shape_mismatch", x)


# 9 -------------------------------------------------------------------------------------------------------------
def test_9_write_into_immutable_parameter(x):
    def kernel(t):
        out = _out()
        nl.store(t, nl.exp(nl.load(t)))  # <- error
        nl.store(out, nl.load(t))
        return out

    before = x.copy()
    raises_at_marker(kernel, "err_cannot_update_immutable_parameter", x)
    np.testing.assert_array_equal(x, before)


def test_9_mutable_parameter_may_be_updated(x):
    def kernel(t: nt.mutable_tensor):
        nl.store(t, nl.multiply(nl.load(t), 2.0))
        return t

    got = nki.simulate_kernel(nki.jit(kernel), x.copy())
    np.testing.assert_array_equal(got, 2 * x)


# 11 ------------------------------------------------------------------------------------------------------------
def test_11_assignment_copy_from_runtime_offsets_on_sbuf(rng):
    data = rng.standard_normal((1, 64)).astype(np.float32)
    idx = np.array([[3, 9, 12, 40]], dtype=np.int32)

    def kernel(d, i):
        out = nl.ndarray((1, 4), dtype=d.dtype, buffer=nl.shared_hbm)
        dt = nl.load(d)
        it = nl.load(i)
        dst = nl.ndarray((1, 4), dtype=d.dtype)
        dst[...] = dt[0, it]  # <- error
        nl.store(out, dst)
        return out

    err = raises_at_marker(kernel, "err_copy_dynamic_indirect_indices_not_natively_supported", data, idx)
    assert "tensor_copy_dynamic_src" in err.hint


def test_11_assignment_copy_to_runtime_offsets_on_sbuf(rng):
    data = rng.standard_normal((1, 4)).astype(np.float32)
    idx = np.array([[3, 9, 12, 40]], dtype=np.int32)

    def kernel(d, i):
        out = nl.ndarray((1, 64), dtype=d.dtype, buffer=nl.shared_hbm)
        dt = nl.load(d)
        it = nl.load(i)
        dst = nl.zeros((1, 64), dtype=d.dtype)
        dst[0, it] = dt  # <- error
        nl.store(out, dst)
        return out

    err = raises_at_marker(kernel, "err_copy_dynamic_indirect_indices_not_natively_supported", data, idx)
    assert "tensor_copy_dynamic_dst" in err.hint


# 13 ------------------------------------------------------------------------------------------------------------
def test_13_transpose_of_a_3d_tile(rng):
    def kernel(t):
        out = _out((8, 8))
        tile = nl.load(t)
        nl.store(out, nl.transpose(tile))  # <- error
        return out

    raises_at_marker(kernel, "err_exceed_max_supported_dimension", rng.standard_normal((8, 8, 2)).astype(np.float32))


# 16 ------------------------------------------------------------------------------------------------------------
def test_16_load_transpose2d_with_indirect_rows(rng):
    def kernel(t, i):
        out = _out((64, 128))
        rows = nl.load(i)
        nl.store(out, nl.load_transpose2d(t[rows, nl.arange(64)[None, :]]))  # <- error
        return out

    idx = rng.permutation(128).astype(np.int32)[:, None]
    raises_at_marker(kernel, "err_indirect_indices_are_not_supported_with_nki_api",
                     rng.standard_normal((128, 64)).astype(np.float32), idx)


def test_16_dma_transpose_with_indirect_rows(rng):
    def kernel(t, i):
        out = _out((64, 128))
        rows = nl.load(i)
        nl.store(out, nisa.dma_transpose(t[rows, nl.arange(64)[None, :]]))  # <- error
        return out

    idx = rng.permutation(128).astype(np.int32)[:, None]
    raises_at_marker(kernel, "err_indirect_indices_are_not_supported_with_nki_api",
                     rng.standard_normal((128, 64)).astype(np.float32), idx)


# 20 ------------------------------------------------------------------------------------------------------------
def test_20_mutable_parameter_not_returned(x):
    def kernel(t: nt.mutable_tensor):  # <- error
        nl.store(t, nl.add(nl.load(t), 1.0))
        out = _out()
        nl.store(out, nl.load(t))
        return out

    err = raises_at_marker(kernel, "err_mutable_parameter_not_returned", x)
    assert err.values["parameter"] == "t"


def test_20_mutable_parameter_returned_with_other_outputs(x):
    def kernel(t: nt.mutable_tensor):
        nl.store(t, nl.add(nl.load(t), 1.0))
        out = _out()
        nl.store(out, nl.load(t))
        return out, t

    got, upd = nki.simulate_kernel(nki.jit(kernel), x.copy())
    np.testing.assert_array_equal(got, x + 1)
    np.testing.assert_array_equal(upd, x + 1)


# 21 ------------------------------------------------------------------------------------------------------------
def test_21_gridded_kernel_launched_inside_a_kernel(x):
    @nki.jit
    def inner(t):
        out = _out()
        nl.store(out, nl.load(t))
        return out

    def kernel(t):
        return inner[2](t)  # <- error

    raises_at_marker(kernel, "err_nested_kernel_with_spmd_grid", x)


# 22 ------------------------------------------------------------------------------------------------------------
def test_22_nki_api_outside_of_a_kernel():
    with pytest.raises(NkiError) as ei:
        nl.zeros((128, 4), dtype=nl.float32)  # <- error
    assert ei.value.code == "err_nki_api_outside_of_nki_kernel"
    assert ei.value.loc.file == __file__ and "# <- error" in SOURCE[ei.value.loc.line - 1]


def test_22_isa_api_outside_of_a_kernel():
    with pytest.raises(NkiError) as ei:
        nisa.memset((128, 4), 0.0, nl.float32)  # <- error
    assert ei.value.code == "err_nki_api_outside_of_nki_kernel"
    assert ei.value.loc.file == __file__ and "# <- error" in SOURCE[ei.value.loc.line - 1]


# 24 ------------------------------------------------------------------------------------------------------------
def test_24_isa_operands_with_different_partition_counts(rng):
    def kernel(a, b):
        out = _out((128, 64))
        nl.store(out, nisa.tensor_tensor(nl.load(a), nl.load(b), np.add))  # <- error
        return out

    raises_at_marker(kernel, "err_num_partition_mismatch", rng.standard_normal((128, 64)).astype(np.float32),
                     rng.standard_normal((64, 128)).astype(np.float32))


# 29 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("api", ["zeros", "full", "ones"])
def test_29_init_value_on_directly_allocated_tile(api, x):
    def kernel(t):
        out = _out()
        buf = ncc.sbuf.mod_alloc(base_addr=0, num_free_tiles=(2,))
        if api == "zeros":
            z = nl.zeros((2, nl.par_dim(128), 64), dtype=nl.float32, buffer=buf)  # <- error
        elif api == "full":
            z = nl.full((2, nl.par_dim(128), 64), 1.0, dtype=nl.float32, buffer=buf)  # <- error
        else:
            z = nl.ones((2, nl.par_dim(128), 64), dtype=nl.float32, buffer=ncc.psum.mod_alloc(base_bank=0))  # <- error
        nl.store(out, nl.add(nl.load(t), z[0]))
        return out

    raises_at_marker(kernel, "err_tensor_creation_on_scratchpad_with_init_value_not_supported", x)


def test_29_allocated_tile_filled_after_allocation_runs(x):
    def kernel(t):
        out = _out()
        z = nl.ndarray((2, nl.par_dim(128), 64), dtype=nl.float32, buffer=ncc.sbuf.mod_alloc(base_addr=0))
        z[...] = 1.0
        nl.store(out, nl.add(nl.load(t), z[1]))
        return out

    np.testing.assert_array_equal(nki.simulate_kernel(nki.jit(kernel), x), x + 1)


# 31 ------------------------------------------------------------------------------------------------------------
def _allocated(shape, dtype=nl.float32, addr=0):
    return nl.ndarray(shape, dtype=dtype, buffer=ncc.sbuf.mod_alloc(base_addr=addr))


def test_31_nc_transpose_on_tensor_engine_in_allocated_kernel(rng):
    def kernel(t):
        out = _out((64, 128))
        a = _allocated((nl.par_dim(128), 64))
        a[...] = nl.load(t)
        nl.store(out, nisa.nc_transpose(a, engine=nisa.tensor_engine))  # <- error
        return out

    raises_at_marker(kernel, "err_transpose_on_tensor_engine_not_allowed_in_allocated_kernel",
                     rng.standard_normal((128, 64)).astype(np.float32))


def test_31_matmul_without_transpose_x_in_allocated_kernel(rng):
    def kernel(a, b):
        out = _out((128, 128))
        x = _allocated((nl.par_dim(128), 128))
        y = _allocated((nl.par_dim(128), 128), addr=512)
        x[...] = nl.load(a)
        y[...] = nl.load(b)
        nl.store(out, nl.matmul(x, y))  # <- error
        return out

    m = rng.standard_normal((128, 128)).astype(np.float32)
    raises_at_marker(kernel, "err_transpose_on_tensor_engine_not_allowed_in_allocated_kernel", m, m)


def test_31_transposes_that_remain_allowed_in_allocated_kernels(rng):
    """transpose_x=True matmuls, matmul-based transposes (is_transpose=True) and Vector-engine transposes."""
    m = rng.standard_normal((128, 128)).astype(np.float32)
    s = rng.standard_normal((32, 32)).astype(np.float32)

    def kernel(a, b, c):
        out = nl.ndarray((3, 128, 128), dtype=nl.float32, buffer=nl.shared_hbm)
        out_s = nl.ndarray((32, 32), dtype=nl.float32, buffer=nl.shared_hbm)
        x = _allocated((nl.par_dim(128), 128))
        y = _allocated((nl.par_dim(128), 128), addr=512)
        ident = _allocated((nl.par_dim(128), 128), addr=1024)
        x[...] = nl.load(a)
        y[...] = nl.load(b)
        ident[...] = nl.load(nl.shared_identity_matrix(128, dtype=nl.float32))
        nl.store(out[0], nl.matmul(x, y, transpose_x=True))
        tp = nl.ndarray((1, nl.par_dim(128), 128), dtype=nl.float32, buffer=ncc.psum.mod_alloc(base_bank=0))
        tp[0] = nisa.nc_matmul(x, ident, is_transpose=True)
        nl.store(out[1], nl.copy(tp[0]))
        nl.store(out[2], nl.copy(y))
        sm = _allocated((nl.par_dim(32), 32), addr=2048)
        sm[...] = nl.load(c)
        nl.store(out_s, nisa.nc_transpose(sm, engine=nisa.vector_engine))
        return out, out_s

    got, got_s = nki.simulate_kernel(nki.jit(kernel), m, m, s)
    np.testing.assert_allclose(got[0], m.T @ m, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(got[1], m.T)
    np.testing.assert_array_equal(got_s, s.T)
