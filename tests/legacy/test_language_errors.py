"""Legacy error codes of the language layer (nki-api.md 6.1): each test breaks one rule in a kernel and checks
the error's code and that its location is the kernel line (marked `# <- error`) in this file."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
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


# 1
def test_err_1d_arange_not_supported_as_index(x):
    def kernel(t):
        out = _out()
        nl.store(out, nl.load(t[nl.arange(128)]))  # <- error
        return out

    raises_at_marker(kernel, "err_1d_arange_not_supported", x)


def test_err_1d_arange_not_supported_in_arithmetic(x):
    def kernel(t):
        out = _out()
        i = nl.arange(64) + 1  # <- error
        nl.store(out, nl.load(t[i]))
        return out

    raises_at_marker(kernel, "err_1d_arange_not_supported", x)


# 5 / 12
def test_err_ambiguous_tensor_truth_value(x):
    def kernel(t):
        out = _out()
        a = nl.load(t)
        if a:  # <- error
            pass
        nl.store(out, a)
        return out

    raises_at_marker(kernel, "err_ambiguous_tensor_truth_value", x)


def test_err_ambiguous_truth_value_of_indexed_access(x):
    def kernel(t):
        out = _out()
        a = nl.load(t)
        i_p, i_f = nl.mgrid[0:128, 0:64]
        b = a[i_p, i_f] and a  # <- error
        nl.store(out, b)
        return out

    raises_at_marker(kernel, "err_ambiguous_tensor_truth_value", x)


def test_err_dynamic_control_flow_not_supported(x):
    def kernel(t):
        out = _out()
        a = nl.load(t)
        s = nl.load(t[0:1, 0:1])
        if s > 0:  # <- error
            a = nl.negative(a)
        nl.store(out, a)
        return out

    raises_at_marker(kernel, "err_dynamic_control_flow_not_supported", x)


# 8
def test_err_cannot_assign_to_index(x):
    def kernel(t):
        out = _out()
        i_p = nl.arange(128)[:, None]
        i_p[0] = 5  # <- error
        nl.store(out, nl.load(t))
        return out

    raises_at_marker(kernel, "err_cannot_assign_to_index", x)


def test_err_cannot_assign_to_mgrid(x):
    def kernel(t):
        out = _out()
        g = nl.mgrid[0:128, 0:64]
        g[0] = 3  # <- error
        nl.store(out, nl.load(t))
        return out

    raises_at_marker(kernel, "err_cannot_assign_to_index", x)


# 10
def test_err_control_flow_condition_depending_on_arange(x):
    def kernel(t):
        out = _out()
        i_p = nl.arange(128)[:, None]
        if i_p < 64:  # <- error
            pass
        nl.store(out, nl.load(t))
        return out

    raises_at_marker(kernel, "err_control_flow_condition_depending_on_arange", x)


# 13
def test_err_exceed_max_supported_dimension(rng):
    def kernel(t):
        out = nl.ndarray((64, 32), dtype=nl.float32, buffer=nl.shared_hbm)
        a = nl.load(t)
        nl.store(out, nl.transpose(a))  # <- error
        return out

    raises_at_marker(kernel, "err_exceed_max_supported_dimension", rng.standard_normal((32, 8, 8)).astype(np.float32))


# 14
def test_err_failed_to_infer_tile_from_local_tensor(rng):
    def kernel(t):
        out = nl.ndarray((2, 128, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        buf = nl.ndarray((2, nl.par_dim(128), 16), dtype=nl.float32)
        for b in nl.affine_range(2):
            buf[b] = nl.load(t[b])
        e = nl.exp(buf)  # <- error
        nl.store(out[0], e[0])
        return out

    raises_at_marker(kernel, "err_failed_to_infer_tile_from_local_tensor", rng.standard_normal((2, 128, 16)))


# 15
@pytest.mark.parametrize("api", ["zeros", "ones", "full"])
def test_err_hbm_tensor_with_init_value_not_supported(api, x):
    def kernel(t):
        out = _out()
        args = ((128, 64), 1.0, nl.float32) if api == "full" else ((128, 64), nl.float32)
        z = getattr(nl, api)(*args, buffer=nl.shared_hbm)  # <- error
        nl.store(out, nl.load(z))
        return out

    raises_at_marker(kernel, "err_hbm_tensor_with_init_value_not_supported", x)


# 17
def test_err_indirect_indices_free_dim(x):
    def kernel(t, idx):
        out = _out((128, 1))
        i_p = nl.arange(128)[:, None]
        it = nl.load(idx)
        nl.store(out, nl.load(t[i_p, it]))  # <- error
        return out

    raises_at_marker(kernel, "err_indirect_indices_free_dim", x, np.zeros((128, 1), dtype=np.int32))


# 23
def test_err_num_partition_exceed_arch_limit_on_allocation(x):
    def kernel(t):
        out = _out()
        big = nl.ndarray((256, 64), dtype=nl.float32, buffer=nl.sbuf)  # <- error
        nl.store(out, big)
        return out

    raises_at_marker(kernel, "err_num_partition_exceed_arch_limit", x)


def test_err_num_partition_exceed_arch_limit_on_load(rng):
    def kernel(t):
        out = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        a = nl.load(t)  # <- error
        nl.store(out, a)
        return out

    raises_at_marker(kernel, "err_num_partition_exceed_arch_limit", rng.standard_normal((256, 8)).astype(np.float32))


# 25
def test_err_shared_hbm_must_in_kernel_level(x):
    def kernel(t):
        out = _out()
        for _ in nl.affine_range(2):
            tmp = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.shared_hbm)  # <- error
            nl.store(tmp, nl.load(t))
        nl.store(out, nl.load(t))
        return out

    raises_at_marker(kernel, "err_shared_hbm_must_in_kernel_level", x)


# 26
def test_err_size_of_dimension_exceed_arch_limit(rng):
    def kernel(t):
        out = nl.ndarray((256, 64), dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out, nl.transpose(nl.load(t)))  # <- error
        return out

    raises_at_marker(kernel, "err_size_of_dimension_exceed_arch_limit", rng.standard_normal((64, 256)).astype(np.float32))


# 27
def test_err_store_dst_shape_smaller_than_other_shape_on_assignment(x):
    def kernel(t):
        out = _out()
        a = nl.load(t)
        small = nl.ndarray((128, 32), dtype=nl.float32)
        small[...] = nl.exp(a)  # <- error
        nl.store(out, a)
        return out

    raises_at_marker(kernel, "err_store_dst_shape_smaller_than_other_shape", x)


def test_err_store_dst_shape_smaller_than_other_shape_on_store(x):
    def kernel(t):
        out = _out((128, 32))
        nl.store(out, nl.load(t))  # <- error
        return out

    raises_at_marker(kernel, "err_store_dst_shape_smaller_than_other_shape", x)


# 28
def test_err_tensor_access_out_of_bound(x):
    def kernel(t):
        out = _out()
        i_p, i_f = nl.mgrid[0:128, 0:64]
        nl.store(out, nl.load(t[i_p, i_f + 1]))  # <- error
        return out

    raises_at_marker(kernel, "err_tensor_access_out_of_bound", x)


# 30
def test_err_tensor_output_not_written_to(x):
    def kernel(t):
        out = _out()  # <- error
        nl.load(t)
        return out

    # the location is the allocation of the output (inside _out, called from the kernel): check the helper line
    k = nki.jit(kernel)
    with pytest.raises(NkiError) as ei:
        nki.simulate_kernel(k, x)
    assert ei.value.code == "err_tensor_output_not_written_to"
    assert ei.value.loc.file == __file__


def test_err_tensor_output_not_written_to_points_at_allocation(x):
    def kernel(t):
        out = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.shared_hbm)  # <- error
        nl.load(t)
        return out

    raises_at_marker(kernel, "err_tensor_output_not_written_to", x)


# 32
def test_err_unexpected_output_dependencies(x):
    def kernel(t):
        out = _out()
        a = nl.load(t)
        acc = nl.zeros((128, 64), dtype=nl.float32)
        for _ in nl.affine_range(2):
            acc[...] = nl.add(acc, a)  # <- error
        nl.store(out, acc)
        return out

    raises_at_marker(kernel, "err_unexpected_output_dependencies", x)


# 33
def test_err_unsupported_expression_in_mask_or(x):
    def kernel(t):
        out = _out()
        i_p, i_f = nl.mgrid[0:128, 0:64]
        m = (i_p < 3) | (i_f < 2)  # <- error
        nl.store(out, nl.load(t, mask=m))
        return out

    raises_at_marker(kernel, "err_unsupported_expression_in_mask", x)


def test_err_unsupported_expression_in_mask_tile_value(x):
    def kernel(t):
        out = _out()
        a = nl.load(t)
        nl.store(out, nl.exp(a, mask=a))  # <- error
        return out

    raises_at_marker(kernel, "err_unsupported_expression_in_mask", x)


# 34
def test_err_unsupported_memory_compute_on_hbm(x):
    def kernel(t):
        out = _out()
        nl.store(out, nl.exp(t))  # <- error
        return out

    raises_at_marker(kernel, "err_unsupported_memory", x)


def test_err_unsupported_memory_load_from_sbuf(x):
    def kernel(t):
        out = _out()
        a = nl.load(t)
        nl.store(out, nl.load(a))  # <- error
        return out

    raises_at_marker(kernel, "err_unsupported_memory", x)


def test_err_unsupported_memory_reduce_on_hbm(x):
    def kernel(t):
        out = _out((128, 1))
        nl.store(out, nl.sum(t, axis=1, keepdims=True))  # <- error
        return out

    raises_at_marker(kernel, "err_unsupported_memory", x)


# 35
def test_err_unsupported_mixing_basic_advanced_tensor_indexing(x):
    def kernel(t):
        out = _out((64, 64))
        i_f = nl.arange(64)[None, :]
        nl.store(out, nl.load(t[0:64, i_f]))  # <- error
        return out

    raises_at_marker(kernel, "err_unsupported_mixing_basic_advanced_tensor_indexing", x)


# not in the catalogue, but errors of the language layer all the same
def test_broadcast_shape_mismatch(x):
    def kernel(t):
        out = _out()
        a = nl.load(t)
        b = nl.load(t[0:128, 0:32])
        nl.store(out, nl.add(a, b))  # <- error
        return out

    raises_at_marker(kernel, "err_shape_mismatch", x)


def test_all_reduce_program_axis_out_of_range(x):
    def kernel(t):
        out = _out()
        nl.store(out, nl.all_reduce(nl.load(t), op=np.add, program_axes=1))  # <- error
        return out

    raises_at_marker(kernel, "err_invalid_program_axis", x, grid=2)


def test_atomic_rmw_only_supports_add(x):
    def kernel(t, idx):
        out = _out()
        nl.store(out, nl.load(t))
        ix = nl.arange(64)[None, :]
        nl.atomic_rmw(out[nl.load(idx), ix], value=nl.load(t), op=np.maximum)  # <- error
        return out

    raises_at_marker(kernel, "err_unsupported_atomic_operation", x, np.arange(128, dtype=np.int32)[:, None])


def test_gather_flattened_needs_uint32_indices(x):
    def kernel(t, idx):
        out = _out()
        nl.store(out, nl.gather_flattened(nl.load(t), nl.load(idx)))  # <- error
        return out

    raises_at_marker(kernel, "err_unsupported_dtype", x, np.zeros((128, 64), dtype=np.int32))


def test_unknown_nl_name_is_a_clear_error():
    with pytest.raises(NkiError) as ei:
        nl.no_such_function  # noqa: B018
    assert ei.value.code == "err_unsupported_api"


def test_nisa_op_values_are_checked(x):
    def kernel(t):
        out = _out()
        nl.store(out, nisa.tensor_reduce(nl.exp, nl.load(t), axis=1))  # <- error
        return out

    raises_at_marker(kernel, "err_invalid_operator", x)
