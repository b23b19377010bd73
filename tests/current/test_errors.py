"""Strict checks of the current API: every error carries its code and the kernel's file:line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import trnsim
import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl

X = np.zeros((128, 64), np.float32)


def _raises(kernel, exc, code, line, arrays=(X,), target=None):
    with pytest.raises(exc) as e:
        kernel.launch(*arrays, target=target)
    assert e.value.code == code, str(e.value)
    assert e.value.loc.file == __file__ and e.value.loc.line == line, str(e.value)
    return e.value


@nki.jit
def dst_shape(a):
    t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    r = nl.ndarray((128, 32), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_reduce(dst=r, op=nl.add, data=t.reshape((128, 4, 16)), axis=2)  # L:reduce_dst
    return a


@nki.jit
def reduce_not_trailing(a):
    t = nl.ndarray((128, 4, 16), dtype=nl.float32, buffer=nl.sbuf)
    r = nl.ndarray((128, 16), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_reduce(dst=r, op=nl.add, data=t, axis=1)  # L:reduce_axis
    return a


@nki.jit
def transpose_dtype(a):
    t = nl.ndarray((64, 64), dtype=nl.bfloat16, buffer=nl.sbuf)
    p = nl.ndarray((64, 64), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_transpose(dst=p, data=t)  # L:transpose
    return a


@nki.jit
def hbm_operand(a):
    r = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=r, src=a)  # L:hbm
    return a


@nki.jit
def psum_dma(a):
    p = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.psum)
    nisa.memset(p, 0.0)
    nisa.dma_copy(dst=a, src=p)  # L:psumdma
    return a


@nki.jit
def raw_enum(a):
    t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a, dge_mode=2)  # L:enum
    return a


@nki.jit
def memset_type(a):
    t = nl.ndarray((128, 64), dtype=nl.int32, buffer=nl.sbuf)
    nisa.memset(t, 1.5)  # L:memset
    return a


@nki.jit
def too_many_partitions(a):
    nl.ndarray((256, 64), dtype=nl.float32, buffer=nl.sbuf)  # L:parts
    return a


@nki.jit
def matmul_dst_dtype(a):
    s = nl.ndarray((128, 64), dtype=nl.bfloat16, buffer=nl.sbuf)
    p = nl.ndarray((64, 64), dtype=nl.bfloat16, buffer=nl.psum)
    nisa.nc_matmul(p, s, s)  # L:mmdt
    return a


@nki.jit
def dma_transpose_shape(a):
    t = nl.ndarray((64, 128), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_transpose(dst=t.reshape((64, 2, 64)), src=a)  # L:dmat
    return a


@nki.jit
def trn3_only(a):
    t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.exponential(dst=t, src=t)  # L:v4
    return a


@nki.jit
def hwdge_dtype(a):
    t = nl.ndarray((128, 64), dtype=nl.bfloat16, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a, dge_mode=nisa.dge_mode.hwdge)  # L:hwdge
    return a


@nki.jit
def uninit_read(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=out, src=t)  # L:uninit
    return out


def test_error_codes_and_lines(lineof):
    _raises(dst_shape, trnsim.NkiValidationError, "err_shape_mismatch", lineof("reduce_dst"))
    _raises(reduce_not_trailing, trnsim.NkiValidationError, "err_invalid_reduce_axis", lineof("reduce_axis"))
    _raises(transpose_dtype, trnsim.NkiValidationError, "err_unsupported_dtype", lineof("transpose"))
    _raises(hbm_operand, trnsim.NkiValidationError, "err_unsupported_memory", lineof("hbm"))
    _raises(psum_dma, trnsim.NkiValidationError, "err_unsupported_memory", lineof("psumdma"))
    _raises(raw_enum, trnsim.NkiTypeError, "err_invalid_enum_value", lineof("enum"))
    _raises(memset_type, trnsim.NkiTypeError, "err_invalid_memset_value", lineof("memset"))
    _raises(too_many_partitions, trnsim.NkiValidationError, "err_num_partition_exceed_arch_limit", lineof("parts"))
    _raises(matmul_dst_dtype, trnsim.NkiValidationError, "err_unsupported_dtype", lineof("mmdt"), target="trn2")
    _raises(dma_transpose_shape, trnsim.NkiValidationError, "err_shape_mismatch", lineof("dmat"))
    _raises(trn3_only, trnsim.NkiUnsupportedError, "err_unsupported_on_target", lineof("v4"), target="trn2")
    _raises(hwdge_dtype, trnsim.NkiValidationError, "err_unsupported_dtype", lineof("hwdge"))
    assert issubclass(nisa.NkiValidationError, ValueError)


def test_uninitialized_read_warns_with_line(lineof):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        uninit_read(X)
    hits = [x for x in w if "warn_uninitialized_read" in str(x.message)]
    assert hits and hits[0].filename == __file__ and hits[0].lineno == lineof("uninit")


class Config:  # not an NKIObject
    tile = 128


class GoodConfig(nl.NKIObject):
    tile = 128


def test_python_subset_rules_are_warnings(lineof):
    @nki.jit
    def k(a, cfg, sizes):
        if cfg is None:  # L:is
            return a
        d = {1: 2}  # L:dict
        del d
        return a

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        k(X, Config(), [1, 2])
    msgs = [(str(x.message), x.lineno) for x in w if "warn_python_subset" in str(x.message)]
    text = " ".join(m for m, _ in msgs)
    assert "`is`" in text and "dict keys" in text and "NKIObject" in text and "tuple" in text
    assert {ln for m, ln in msgs if "`is`" in m} == {lineof("is")}
    assert {ln for m, ln in msgs if "dict keys" in m} == {lineof("dict")}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        k(X, GoodConfig(), (1, 2))
    assert not [x for x in w if "NKIObject" in str(x.message) or "tuple" in str(x.message)]


def test_launch_api_errors():
    with pytest.raises(trnsim.NkiValidationError) as e:
        nki.jit(platform_target="trn2")
    assert e.value.code == "err_invalid_jit_option"
    with pytest.raises(trnsim.NkiValidationError) as e:
        dst_shape[3]
    assert e.value.code == "err_invalid_launch_grid"
    with pytest.raises(trnsim.NkiValidationError):
        dst_shape[2, 2]
    with pytest.raises(trnsim.NkiUnsupportedError):
        nki.baremetal  # noqa: B018
    with pytest.raises(trnsim.NkiError) as e:
        nl.ndarray((2, 2), dtype=nl.float32)
    assert e.value.code == "err_nki_api_outside_of_nki_kernel"


@nki.jit
def reduce_nki02_axis(a):
    t = nl.ndarray((4, 8, 16), dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=t, value=1.0)
    r = nl.ndarray((4, 8), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_reduce(dst=r, op=nl.maximum, data=t, axis=1)  # L:nki02_axis
    return a


def test_reduce_axis_errors_say_which_axes_to_pass(lineof):
    """nki-library's cascaded_max passes axis=1 on a [b, f, e] tile into [b, f] (the NKI 0.2 numbering)."""
    e = _raises(reduce_nki02_axis, trnsim.NkiValidationError, "err_invalid_reduce_axis", lineof("nki02_axis"))
    assert "pass axis=(2,) to reduce the innermost dim into dst (4, 8)" in str(e)
    assert "NKI 0.2" in e.hint
    e = _raises(reduce_not_trailing, trnsim.NkiValidationError, "err_invalid_reduce_axis", lineof("reduce_axis"))
    assert "pass data.permute((0, 2, 1)) with axis=(2,) to reduce dims (1,)" in str(e)
