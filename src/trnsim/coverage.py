"""Which documented NKI API names trnsim implements: an inventory per API generation, checked against the code.

The inventory below is data transcribed from nki-api.md (section 1.3 runners, 4.5 `nki.language`, 5.1/5.4
`nki.isa`, 5.6 `nki.collectives`; documented signatures copied verbatim). A name counts as implemented when
its trnsim module defines it and it is not a stub marked `_trnsim_missing`. For functions the documented
signature is compared with the implementation's (parameter names, order, keyword-only-ness, required-ness).

Generations are columns: `legacy` (G1, `neuronxcc.nki`, served by `trnsim.frontend.legacy`) and `current`
(G2, `nki`, served by `trnsim.frontend.current` once that package exists; until then its names are missing).

    python -m trnsim coverage            # totals
    python -m trnsim coverage --write    # regenerate docs/coverage.md
    python -m trnsim coverage --check    # exit 1 when docs/coverage.md is stale
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One documented name: a function (with its documented signature) or an object (class, constant, enum)."""

    name: str
    signature: str | None = None
    note: str = ""

    @property
    def kind(self) -> str:
        return "function" if self.signature is not None else "object"


def _f(name: str, signature: str, note: str = "") -> Entry:
    return Entry(name, signature, note)


def _o(name: str, note: str = "") -> Entry:
    return Entry(name, None, note)


GENERATIONS = ("legacy", "current")

#: API group -> (short label, public module name per generation, trnsim module per generation)
GROUPS: dict[str, dict[str, Any]] = {
    "nki": {
        "label": "nki",
        "public": {"legacy": "neuronxcc.nki", "current": "nki"},
        "module": {"legacy": "trnsim.frontend.legacy", "current": "trnsim.frontend.current"},
    },
    "language": {
        "label": "nl",
        "public": {"legacy": "neuronxcc.nki.language", "current": "nki.language"},
        "module": {"legacy": "trnsim.frontend.legacy.language", "current": "trnsim.frontend.current.language"},
    },
    "isa": {
        "label": "nisa",
        "public": {"legacy": "neuronxcc.nki.isa", "current": "nki.isa"},
        "module": {"legacy": "trnsim.frontend.legacy.isa", "current": "trnsim.frontend.current.isa"},
    },
    "collectives": {
        "label": "collectives",
        "public": {"current": "nki.collectives"},
        "module": {"current": "trnsim.frontend.current.collectives"},
    },
}

# ------------------------------------------------------------------------------------------------ inventory
# nki-api.md 1.1 / 1.3 (G1) and 1.2 / 1.4 (G2)
_G1_NKI = (
    _f("jit", '(func=None, mode="auto", **kwargs)'),
    _f("baremetal", "(kernel=None, **kwargs)"),
    _f("benchmark", "(kernel=None, **kwargs)"),
    _f("profile", "(func=None, **kwargs)"),
    _f("simulate_kernel", "(kernel, *args, **kwargs)"),
    _f("trace", "(func=None, **kwargs)", "undocumented"),
    _o("tensor"),
    _o("FrameworkKernel"),
)

_G2_NKI = (
    _f("jit", "(fn=None, **kwargs)"),
    _f("simulate", "(kernel)"),
)

_G1_LANGUAGE = (
    _f("ndarray", "(shape, dtype, *, buffer=None, name='', **kwargs)"),
    _f("zeros", "(shape, dtype, *, buffer=None, name='', **kwargs)"),
    _f("ones", "(shape, dtype, *, buffer=None, name='', **kwargs)"),
    _f("full", "(shape, fill_value, dtype, *, buffer=None, name='', **kwargs)"),
    _f("zeros_like", "(a, dtype=None, *, buffer=None, name='', **kwargs)"),
    _f("empty_like", "(a, dtype=None, *, buffer=None, name='', **kwargs)"),
    _f("rand", "(shape, dtype=np.float32, **kwargs)"),
    _f("random_seed", "(seed, *, mask=None, **kwargs)"),
    _f("shared_constant", "(constant, dtype=None, **kwargs)"),
    _f("shared_identity_matrix", "(n, dtype=np.uint8, **kwargs)"),
    _f("load", "(src, *, mask=None, dtype=None, **kwargs)"),
    _f("store", "(dst, value, *, mask=None, **kwargs)"),
    _f("load_transpose2d", "(src, *, mask=None, dtype=None, **kwargs)"),
    _f("atomic_rmw", "(dst, value, op, *, mask=None, **kwargs)"),
    _f("copy", "(src, *, mask=None, dtype=None, **kwargs)"),
    _f("broadcast_to", "(src, *, shape, **kwargs)"),
    _f("gather_flattened", "(data, indices, *, mask=None, dtype=None, **kwargs)"),
    _f("add", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("subtract", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("multiply", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("divide", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("power", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("maximum", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("minimum", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("fmod", "(x, y, dtype=None, mask=None, **kwargs)"),
    _f("mod", "(x, y, dtype=None, mask=None, **kwargs)"),
    _f("abs", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("negative", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("sign", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("trunc", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("floor", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("ceil", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("exp", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("log", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("cos", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("sin", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("tan", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("tanh", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("arctan", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("sqrt", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("rsqrt", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("square", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("reciprocal", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("sigmoid", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("relu", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("gelu", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("gelu_dx", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("gelu_apprx_tanh", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("gelu_apprx_sigmoid", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("silu", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("silu_dx", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("erf", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("erf_dx", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("softplus", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("mish", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("softmax", "(x, axis, *, dtype=None, compute_dtype=None, mask=None, **kwargs)"),
    _f("rms_norm", "(x, w, axis, n, epsilon=1e-06, *, dtype=None, compute_dtype=None, mask=None, **kwargs)"),
    _f("dropout", "(x, rate, *, dtype=None, mask=None, **kwargs)"),
    _f("sum", "(x, axis, *, dtype=None, mask=None, keepdims=False, **kwargs)"),
    _f("prod", "(x, axis, *, dtype=None, mask=None, keepdims=False, **kwargs)"),
    _f("max", "(x, axis, *, dtype=None, mask=None, keepdims=False, **kwargs)"),
    _f("min", "(x, axis, *, dtype=None, mask=None, keepdims=False, **kwargs)"),
    _f("mean", "(x, axis, *, dtype=None, mask=None, keepdims=False, **kwargs)"),
    _f("var", "(x, axis, *, dtype=None, mask=None, **kwargs)"),
    _f("all", "(x, axis, *, dtype=bool, mask=None, **kwargs)"),
    _f("loop_reduce", "(x, op, loop_indices, *, dtype=None, mask=None, **kwargs)"),
    _f("equal", "(x, y, *, dtype=bool, mask=None, **kwargs)"),
    _f("not_equal", "(x, y, *, dtype=bool, mask=None, **kwargs)"),
    _f("greater", "(x, y, *, dtype=bool, mask=None, **kwargs)"),
    _f("greater_equal", "(x, y, *, dtype=bool, mask=None, **kwargs)"),
    _f("less", "(x, y, *, dtype=bool, mask=None, **kwargs)"),
    _f("less_equal", "(x, y, *, dtype=bool, mask=None, **kwargs)"),
    _f("logical_and", "(x, y, *, dtype=bool, mask=None, **kwargs)"),
    _f("logical_or", "(x, y, *, dtype=bool, mask=None, **kwargs)"),
    _f("logical_xor", "(x, y, *, dtype=bool, mask=None, **kwargs)"),
    _f("logical_not", "(x, *, dtype=bool, mask=None, **kwargs)"),
    _f("bitwise_and", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("bitwise_or", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("bitwise_xor", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("invert", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("left_shift", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("right_shift", "(x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("where", "(condition, x, y, *, dtype=None, mask=None, **kwargs)"),
    _f("ds", "(start, size)"),
    _f("arange", "(*args)"),
    _o("mgrid"),
    _f("expand_dims", "(data, axis)"),
    _f("matmul", "(x, y, *, transpose_x=False, mask=None, **kwargs)"),
    _f("transpose", "(x, *, dtype=None, mask=None, **kwargs)"),
    _f("affine_range", "(*args, **kwargs)"),
    _f("sequential_range", "(*args, **kwargs)"),
    _f("static_range", "(*args)"),
    _f("program_id", "(axis)"),
    _f("num_programs", "(axes=None)"),
    _f("program_ndim", "()"),
    _o("nc"),
    _o("spmd_dim"),
    _f(
        "all_reduce",
        "(x, op, program_axes, *, dtype=None, mask=None, parallel_reduce=True, asynchronous=False, **kwargs)",
    ),
    _o("par_dim"),
    _f("device_print", "(prefix, x, *, mask=None, **kwargs)"),
    _f("static_cast", "(input_data, dtype)", "undocumented"),
    _f("finfo", "(dtype)", "undocumented"),
    _f("gemm_grid", "()", "undocumented"),
    _f("gemm_stationary_grid", "()", "undocumented"),
)


_G2_LANGUAGE = (
    _f("ndarray", "(shape, dtype, buffer=sbuf, name='', address=None)"),
    _f("zeros", "(shape, dtype, buffer=sbuf, name='')"),
    _f("ones", "(shape, dtype, buffer=sbuf, name='')"),
    _f("full", "(shape, fill_value, dtype, buffer=sbuf, name='')"),
    _f("zeros_like", "(x, dtype=None, buffer=None, name='')"),
    _f("empty_like", "(x: NkiTensor, dtype=None, buffer=None, name='')"),
    _f("rand", "(shape, dtype, buffer=sbuf, name='')"),
    _f("random_seed", "(seed)"),
    _f("shared_constant", "(constant)"),
    _f("shared_identity_matrix", "(n, dtype=uint8, dst: NkiTensor | None=None)"),
    _f("load", "(src: NkiTensor, dtype=None)"),
    _f("store", "(dst: NkiTensor, value: NkiTensor)"),
    _f("load_transpose2d", "(src: NkiTensor, dtype=None)"),
    _f("copy", "(x, dtype=None)"),
    _f("broadcast_to", "(x, shape, dtype=None)"),
    _f("gather_flattened", "(data: NkiTensor, indices: NkiTensor, axis=0, dtype=None)"),
    _f("add", "(x, y, dtype=None)"),
    _f("subtract", "(x, y, dtype=None)"),
    _f("multiply", "(x, y, dtype=None)"),
    _f("divide", "(x, y, dtype=None)", "undocumented"),
    _f("power", "(x, y, dtype=None)"),
    _f("maximum", "(x, y, dtype=None)"),
    _f("minimum", "(x, y, dtype=None)"),
    _f("abs_max", "(x, y, dtype=None)"),
    _f("abs_min", "(x, y, dtype=None)"),
    _f("fmod", "(x, y, dtype=None)", "undocumented"),
    _f("mod", "(x, y, dtype=None)", "undocumented"),
    _f("abs", "(x, dtype=None)"),
    _f("negative", "(x, dtype=None)"),
    _f("sign", "(x, dtype=None)"),
    _f("trunc", "(x, dtype=None)"),
    _f("floor", "(x, dtype=None)"),
    _f("ceil", "(x, dtype=None)"),
    _f("exp", "(x, dtype=None)"),
    _f("log", "(x, dtype=None)"),
    _f("cos", "(x, dtype=None)"),
    _f("sin", "(x, dtype=None)"),
    _f("tan", "(x, dtype=None)"),
    _f("tanh", "(x, dtype=None)"),
    _f("arctan", "(x, dtype=None)"),
    _f("sqrt", "(x, dtype=None)"),
    _f("rsqrt", "(x, dtype=None)"),
    _f("square", "(x, dtype=None)"),
    _f("reciprocal", "(x, dtype=None)"),
    _f("sigmoid", "(x, dtype=None)"),
    _f("relu", "(x, dtype=None)"),
    _f("gelu", "(x, dtype=None)"),
    _f("gelu_dx", "(x, dtype=None)"),
    _f("gelu_apprx_tanh", "(x, dtype=None)"),
    _f("gelu_apprx_sigmoid", "(x, dtype=None)"),
    _f("gelu_apprx_sigmoid_dx", "(x, dtype=None)"),
    _f("silu", "(x, dtype=None)"),
    _f("silu_dx", "(x, dtype=None)"),
    _f("erf", "(x, dtype=None)"),
    _f("erf_dx", "(x, dtype=None)"),
    _f("softplus", "(x, dtype=None)"),
    _f("mish", "(x, dtype=None)"),
    _f("softmax", "(x, axis=-1, dtype=None)"),
    _f("rms_norm", "(x, w, axis, n, epsilon=1e-06, dtype=None, compute_dtype=None)"),
    _f("dropout", "(x, rate, dtype=None)"),
    _f("sum", "(x, axis, dtype=None, keepdims=False)"),
    _f("prod", "(x, axis, dtype=None, keepdims=False)"),
    _f("max", "(x, axis, dtype=None, keepdims=False)"),
    _f("min", "(x, axis, dtype=None, keepdims=False)"),
    _f("mean", "(x, axis, dtype=None, keepdims=False)"),
    _f("var", "(x, axis, dtype=None, keepdims=False)"),
    _f("all", "(x, axis, dtype=None)"),
    _f("equal", "(x, y, dtype=None)"),
    _f("not_equal", "(x, y, dtype=None)"),
    _f("greater", "(x, y, dtype=None)"),
    _f("greater_equal", "(x, y, dtype=None)"),
    _f("less", "(x, y, dtype=None)"),
    _f("less_equal", "(x, y, dtype=None)"),
    _f("logical_and", "(x, y, dtype=None)"),
    _f("logical_or", "(x, y, dtype=None)"),
    _f("logical_xor", "(x, y, dtype=None)"),
    _f("logical_not", "(x, dtype=None)"),
    _f("bitwise_and", "(x, y, dtype=None)"),
    _f("bitwise_or", "(x, y, dtype=None)"),
    _f("bitwise_xor", "(x, y, dtype=None)"),
    _f("invert", "(x, dtype=None)"),
    _f("left_shift", "(x, y, dtype=None)"),
    _f("right_shift", "(x, y, dtype=None)"),
    _f("where", "(condition, x, y, dtype=None)"),
    _f("ds", "(start, size)"),
    _f("expand_dims", "(x, axis)"),
    _f("matmul", "(x, y, transpose_x=False)"),
    _f("transpose", "(x, dtype=None)"),
    _f("affine_range", "(start, stop=None, step=1)"),
    _f("sequential_range", "(start, stop=None, step=1)"),
    _f("static_range", "(start, stop=None, step=1)"),
    _f("dynamic_range", "(start, stop=None, step=1)"),
    _f("fori_loop", "(lower, upper, body_fun, step=1)"),
    _f("while_loop", "(init, body_fun)"),
    _f("program_id", "(axis=0)"),
    _f("num_programs", "(axes=0)"),
    _f("program_ndim", "()"),
    _f("is_hbm", "(buffer)"),
    _f("is_on_chip", "(buffer)"),
    _f("is_psum", "(buffer)"),
    _f("is_sbuf", "(buffer)"),
    _f("device_print", "(print_prefix, tensor: NkiTensor)"),
    _f("no_reorder", "()"),
)


_G1_ISA = (
    _f(
        "nc_matmul",
        "(stationary, moving, *, is_stationary_onezero=False, is_moving_onezero=False, is_transpose=False, "
        "tile_position=(), tile_size=(), mask=None, **kwargs)",
    ),
    _f("nc_transpose", "(data, *, mask=None, dtype=None, engine=engine.unknown, **kwargs)"),
    _f(
        "activation",
        "(op, data, *, bias=None, scale=1.0, reduce_op=None, reduce_res=None, reduce_cmd=reduce_cmd.idle, "
        "mask=None, dtype=None, **kwargs)",
    ),
    _f(
        "activation_reduce",
        "(op, data, *, reduce_op, reduce_res, bias=None, scale=1.0, mask=None, dtype=None, **kwargs)",
    ),
    _f("tensor_tensor", "(data1, data2, op, *, dtype=None, mask=None, engine=engine.unknown, **kwargs)"),
    _f(
        "tensor_scalar",
        "(data, op0, operand0, reverse0=False, op1=None, operand1=None, reverse1=False, *, dtype=None, "
        "mask=None, engine=engine.unknown, **kwargs)",
    ),
    _f(
        "scalar_tensor_tensor",
        "(*, data, op0, operand0, op1, operand1, reverse0=False, reverse1=False, dtype=None, mask=None, **kwargs)",
    ),
    _f("tensor_reduce", "(op, data, axis, *, mask=None, dtype=None, negate=False, keepdims=False, **kwargs)"),
    _f(
        "tensor_scalar_reduce",
        "(*, data, op0, operand0, reduce_op, reduce_res, reverse0=False, dtype=None, mask=None, **kwargs)",
    ),
    _f(
        "tensor_tensor_scan",
        "(data0, data1, initial, op0, op1, reverse0=False, reverse1=False, *, dtype=None, mask=None, **kwargs)",
    ),
    _f("tensor_partition_reduce", "(op, data, *, mask=None, dtype=None, **kwargs)"),
    _f("reciprocal", "(data, *, dtype=None, mask=None, **kwargs)"),
    _f("bn_stats", "(data, *, mask=None, dtype=None, **kwargs)"),
    _f("bn_aggr", "(data, *, mask=None, dtype=None, **kwargs)"),
    _f("dropout", "(data, prob, *, mask=None, dtype=None, **kwargs)"),
    _f("memset", "(shape, value, dtype, *, mask=None, engine=engine.unknown, **kwargs)"),
    _f("tensor_copy", "(src, *, mask=None, dtype=None, engine=engine.unknown, **kwargs)"),
    _f("tensor_copy_predicated", "(*, src, dst, predicate, reverse_pred=False, mask=None, dtype=None, **kwargs)"),
    _f("tensor_copy_dynamic_src", "(src, *, mask=None, dtype=None, engine=engine.unknown, **kwargs)"),
    _f("tensor_copy_dynamic_dst", "(*, dst, src, mask=None, dtype=None, engine=engine.unknown, **kwargs)"),
    _f(
        "select_reduce",
        "(*, dst, predicate, on_true, on_false, reduce_res=None, reduce_cmd=reduce_cmd.idle, "
        "reduce_op=np.amax, reverse_pred=False, mask=None, dtype=None, **kwargs)",
    ),
    _f(
        "range_select",
        "(*, on_true_tile, comp_op0, comp_op1, bound0, bound1, reduce_cmd=reduce_cmd.idle, reduce_res=None, "
        "reduce_op=np.amax, range_start=0, on_false_value=fp32.min, mask=None, dtype=None, **kwargs)",
    ),
    _f("max8", "(*, src, mask=None, dtype=None, **kwargs)"),
    _f("nc_find_index8", "(*, data, vals, mask=None, dtype=None, **kwargs)"),
    _f("nc_match_replace8", "(*, data, vals, imm, dst_idx=None, mask=None, dtype=None, **kwargs)"),
    _f("nc_stream_shuffle", "(src, dst, shuffle_mask, *, dtype=None, mask=None, **kwargs)"),
    _f("iota", "(expr, dtype, *, mask=None, **kwargs)"),
    _f("affine_select", "(pred, on_true_tile, on_false_value, *, mask=None, dtype=None, **kwargs)"),
    _f("local_gather", "(src_buffer, index, num_elem_per_idx=1, num_valid_indices=None, *, mask=None)"),
    _f("sequence_bounds", "(*, segment_ids, dtype=None)"),
    _f(
        "builtin_custom_op",
        "(function_name, lib_file_name, ulib_to_ucode_version, ulib_to_isa_version, srcs, dsts, **kwargs)",
    ),
    _f("dma_copy", "(*, dst, src, mask=None, dst_rmw_op=None, oob_mode=oob_mode.error, dge_mode=dge_mode.unknown)"),
    _f("dma_transpose", "(src, *, axes=None, mask=None, dtype=None, **kwargs)"),
    _f("get_nc_version", "()"),
)


_G2_ISA = (
    _f(
        "nc_matmul",
        "(dst: NkiTensor, stationary: NkiTensor, moving: NkiTensor, is_stationary_onezero=False, "
        "is_moving_onezero=False, is_transpose=False, accumulate=None, tile_position=(), tile_size=(), "
        "perf_mode=matmul_perf_mode.none, name=None)",
    ),
    _f(
        "nc_matmul_mx",
        "(dst: NkiTensor, stationary: NkiTensor, moving: NkiTensor, stationary_scale: NkiTensor, "
        "moving_scale: NkiTensor, tile_position=None, tile_size=None, accumulate=None, name=None)",
    ),
    _f("nc_transpose", "(dst: NkiTensor, data: NkiTensor, engine=engine.unknown, name=None)"),
    _f(
        "activation",
        "(dst: NkiTensor, op, data: NkiTensor, bias: float | NkiTensor | None=None, "
        "scale: float | NkiTensor=1.0, reduce_op=None, reduce_res: NkiTensor | None=None, "
        "reduce_cmd=reduce_cmd.idle, name=None)",
    ),
    _f(
        "activation_reduce",
        "(dst: NkiTensor, op, data: NkiTensor, reduce_op, reduce_res: NkiTensor, "
        "bias: float | NkiTensor | None=None, scale: float | NkiTensor=1.0, name=None)",
    ),
    _f(
        "activate2",
        "(dst: NkiTensor, op, data: NkiTensor, imm0: float | NkiTensor, imm1: float | NkiTensor, op0, op1, "
        "relu_param: float | NkiTensor=0.0, reverse0=False, reverse1=False, reduce_op=None, "
        "reduce_res: NkiTensor | None=None, reduce_cmd=reduce_cmd.idle, name=None)",
    ),
    _f("tensor_tensor", "(dst: NkiTensor, data1: NkiTensor, data2: NkiTensor, op, engine=engine.unknown, name=None)"),
    _f(
        "tensor_scalar",
        "(dst: NkiTensor, data: NkiTensor, op0, operand0: float | NkiTensor, reverse0=False, op1=None, "
        "operand1: float | NkiTensor | None=None, reverse1=False, engine=engine.unknown, name=None)",
    ),
    _f(
        "scalar_tensor_tensor",
        "(dst: NkiTensor, data: NkiTensor, op0, operand0: float | NkiTensor, op1, operand1: NkiTensor, "
        "reverse0=False, reverse1=False, name=None)",
    ),
    _f("tensor_reduce", "(dst: NkiTensor, op, data: NkiTensor, axis, negate=False, keepdims=False, name=None)"),
    _f(
        "tensor_scalar_reduce",
        "(dst: NkiTensor, data: NkiTensor, op0, operand0: float | NkiTensor, reduce_op, "
        "reduce_res: NkiTensor | None=None, reverse0=False, reduce_cmd: reduce_cmd=reduce_cmd.reset_reduce, "
        "reduce_init: float | NkiTensor | None=None, reduce_res_negate=False, name=None)",
    ),
    _f(
        "tensor_scalar_cumulative",
        "(dst: NkiTensor, src: NkiTensor, op0, op1, imm0: float | NkiTensor, "
        "imm1: float | NkiTensor | None=None, reduce_cmd=reduce_cmd.reset_reduce, name=None)",
    ),
    _f(
        "tensor_tensor_scan",
        "(dst: NkiTensor, data0: NkiTensor, data1: NkiTensor, initial: float | NkiTensor, op0, op1, "
        "reverse0=False, reverse1=False, name=None)",
    ),
    _f("tensor_partition_reduce", "(dst: NkiTensor, op, data: NkiTensor, name=None)"),
    _f("reciprocal", "(dst: NkiTensor, data: NkiTensor, name=None)"),
    _f(
        "exponential",
        "(dst: NkiTensor, src: NkiTensor, max_value: float | NkiTensor=0.0, reduce_res: NkiTensor | None=None, "
        "reduce_cmd: reduce_cmd=reduce_cmd.idle, reduce_init: float | NkiTensor=0.0, name=None)",
    ),
    _f("bn_stats", "(dst: NkiTensor, data: NkiTensor, name=None)"),
    _f("bn_aggr", "(dst: NkiTensor, data: NkiTensor, name=None)"),
    _f("dropout", "(dst: NkiTensor, data: NkiTensor, prob: float | NkiTensor, name=None)"),
    _f("memset", "(dst: NkiTensor, value, engine=engine.unknown, name=None)"),
    _f("tensor_copy", "(dst: NkiTensor, src: NkiTensor, engine=engine.unknown, name=None)"),
    _f(
        "tensor_copy_predicated",
        "(dst: NkiTensor, src: float | NkiTensor, predicate: NkiTensor, reverse_pred=False, name=None)",
    ),
    _f(
        "select_reduce",
        "(dst: NkiTensor, predicate: NkiTensor, on_true: NkiTensor, on_false: float | NkiTensor, "
        "reduce_res: NkiTensor | None=None, reduce_cmd=reduce_cmd.idle, reduce_op=maximum, reverse_pred=False, "
        "name=None)",
    ),
    _f(
        "range_select",
        "(dst: NkiTensor, on_true_tile: NkiTensor, comp_op0, comp_op1, bound0: NkiTensor, bound1: NkiTensor, "
        "reduce_cmd=reduce_cmd.reset_reduce, reduce_res: NkiTensor | None=None, reduce_op=maximum, "
        "range_start=0, on_false_value=..., name=None)",
    ),
    _f("max8", "(dst: NkiTensor, src: NkiTensor, name=None)"),
    _f("nc_find_index8", "(dst: NkiTensor, data: NkiTensor, vals: NkiTensor, name=None)"),
    _f(
        "nc_match_replace8",
        "(dst: NkiTensor, data: NkiTensor, vals: NkiTensor, imm: float, dst_idx: NkiTensor | None=None, name=None)",
    ),
    _f("nc_stream_shuffle", "(dst: NkiTensor, src: NkiTensor, shuffle_mask, name=None)"),
    _f("quantize_mx", "(dst: NkiTensor, src: NkiTensor, dst_scale: NkiTensor, name=None)"),
    _f("rng", "(dst: NkiTensor, engine=engine.vector, name=None)"),
    _f("rand2", "(dst: NkiTensor, min: float | NkiTensor, max: float | NkiTensor, name=None)"),
    _f("set_rng_seed", "(src_seeds: NkiTensor, name=None)"),
    _f("rand_set_state", "(src_seeds: NkiTensor, engine=engine.gpsimd, name=None)"),
    _f("rand_get_state", "(dst: NkiTensor, engine=engine.gpsimd, name=None)"),
    _f("iota", "(dst: NkiTensor, pattern, offset=0, channel_multiplier=0, name=None)"),
    _f(
        "affine_select",
        "(dst: NkiTensor, pattern, channel_multiplier, on_true_tile: NkiTensor, on_false_value, cmp_op=equal, "
        "offset=0, name=None)",
    ),
    _f(
        "local_gather",
        "(dst: NkiTensor, src_buffer: NkiTensor, index: NkiTensor, num_elem_per_idx=1, num_valid_indices=None, "
        "name=None)",
    ),
    _f("nc_n_gather", "(dst: NkiTensor, data: NkiTensor, indices: NkiTensor, name=None)"),
    _f("sequence_bounds", "(dst: NkiTensor, segment_ids: NkiTensor, name=None)"),
    _f("nonzero_with_count", "(dst: NkiTensor, src: NkiTensor, index_offset=0, padding_val=-1, name=None)"),
    _f("topk", "(val_dst: NkiTensor, idx_dst: NkiTensor, src: NkiTensor, n, name=None)"),
    _f(
        "dma_copy",
        "(dst: NkiTensor, src: NkiTensor, priority=None, oob_mode=oob_mode.error, dge_mode=dge_mode.unknown, "
        "engine=engine.unknown, name=None)",
    ),
    _f(
        "dma_transpose",
        "(dst: NkiTensor, src: NkiTensor, axes=None, priority=None, dge_mode=dge_mode.unknown, "
        "oob_mode=oob_mode.error, name=None)",
    ),
    _f(
        "dma_compute",
        "(dst: NkiTensor, srcs: list[NkiTensor], reduce_op, scales=None, unique_indices=True, "
        "oob_mode=oob_mode.error, name=None)",
    ),
    _f("sendrecv", "(src, dst, send_to_rank, recv_from_rank, pipe_id, dma_engine=dma_engine.dma, name=None)"),
    _f("core_barrier", "(data: NkiTensor, cores, engine=engine.gpsimd, name=None)"),
    _f("register_alloc", "(x: int | None=None)"),
    _f("register_move", "(dst, src)"),
    _f("register_load", "(dst, src: NkiTensor)"),
    _f("register_store", "(dst: NkiTensor, src)"),
    _f("get_nc_version", "()"),
    _f("get_nc_sub_version", "()"),
)


_G2_COLLECTIVES = (
    _f("all_reduce", "(srcs, dsts, replica_group, op, priority=None, name=None)"),
    _f("all_gather", "(srcs, dsts, replica_group, collective_dim, priority=None, name=None)"),
    _f(
        "all_gather_v",
        "(srcs, dsts, replica_group, metadata_tensor, recv_counts_known=False, has_rdispls=False, "
        "priority=None, name=None)",
    ),
    _f("reduce_scatter", "(srcs, dsts, replica_group, collective_dim, op, priority=None, name=None)"),
    _f("all_to_all", "(srcs, dsts, replica_group, collective_dim, priority=None, name=None)"),
    _f(
        "all_to_all_v",
        "(srcs, dsts, replica_group, metadata_tensor, recv_counts_known=False, has_rdispls=False, "
        "priority=None, name=None)",
    ),
    _f("collective_permute", "(srcs, dsts, source_target_pairs, priority=None, name=None)"),
    _f(
        "collective_permute_implicit",
        "(srcs_by_channel, dsts_by_channel, replica_group, channel_ids=[0], priority=None, name=None)",
    ),
    _f(
        "collective_permute_implicit_reduce",
        "(srcs0_by_channel, srcs1_by_channel, dsts_by_channel, replica_group, op, channel_ids=[0], "
        "priority=None, name=None)",
    ),
    _f(
        "collective_permute_implicit_current_processing_rank_id",
        "(iteration_id, replica_group, channel_id=0, name=None)",
    ),
    _f("rank_id", "(name=None)"),
    _o("ReplicaGroup"),
)


# nki-api.md 1.1 / 2.1 / 2.4 / 3.1 / 4 (non-function names of nki.language)
_G1_DTYPES = (
    "bool_", "int8", "int16", "int32", "uint8", "uint16", "uint32",
    "float16", "float32", "bfloat16", "tfloat32", "float8_e4m3", "float8_e5m2",
)  # fmt: skip
_G2_DTYPES = _G1_DTYPES + ("float8_e4m3fn", "float8_e8m0fnu", "float8_e5m2_x4", "float8_e4m3fn_x4", "float4_e2m1fn_x4")
_BUFFERS = ("sbuf", "psum", "hbm", "private_hbm", "shared_hbm")

_G1_LANGUAGE_OBJECTS = tuple(_o(n) for n in _G1_DTYPES + _BUFFERS + ("tile_size", "fp32", "bfp16"))
_G2_LANGUAGE_OBJECTS = tuple(
    _o(n) for n in ("NkiTensor", "NKIObject", "MemoryRegion") + _G2_DTYPES + _BUFFERS + ("tile_size", "prelu", "bypass")
) + (_o("average", "undocumented"),)

# nki-api.md 1.1 / 5.1 (non-instruction names of nki.isa)
_G1_ISA_OBJECTS = tuple(
    _o(n)
    for n in (
        "engine", "reduce_cmd", "dge_mode", "oob_mode", "nc_version",
        "tensor_engine", "vector_engine", "scalar_engine", "gpsimd_engine", "unknown_engine", "dma_engine", "fp32",
    )
)  # fmt: skip
_G2_ISA_OBJECTS = tuple(
    _o(n)
    for n in (
        "engine", "reduce_cmd", "dge_mode", "oob_mode", "matmul_perf_mode", "nc_version", "dma_engine",
        "VirtualRegister", "NkiInstruction", "NkiValidationError",
    )
) + tuple(
    _o(n, "deprecated alias")
    for n in ("tensor_engine", "vector_engine", "scalar_engine", "gpsimd_engine", "unknown_engine")
)  # fmt: skip

#: generation -> API group -> documented names
INVENTORY: dict[str, dict[str, tuple[Entry, ...]]] = {
    "legacy": {
        "nki": _G1_NKI,
        "language": _G1_LANGUAGE + _G1_LANGUAGE_OBJECTS,
        "isa": _G1_ISA + _G1_ISA_OBJECTS,
    },
    "current": {
        "nki": _G2_NKI,
        "language": _G2_LANGUAGE + _G2_LANGUAGE_OBJECTS,
        "isa": _G2_ISA + _G2_ISA_OBJECTS,
        "collectives": _G2_COLLECTIVES,
    },
}


# ------------------------------------------------------------------------------------------------ checking
IMPLEMENTED, SIGNATURE, MISSING = "implemented", "signature differs", "missing"
_ABSENT = object()


@dataclass
class Row:
    """The status of one documented name in one generation."""

    generation: str
    group: str
    entry: Entry
    status: str
    notes: tuple[str, ...] = ()


def load_module(name: str) -> Any:
    """The trnsim module serving an API module, or None if it cannot be imported (not built yet)."""
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None


def _available(name: str) -> bool:
    return load_module(name) is not None


def _lookup(module: Any, name: str) -> Any:
    if module is None:
        return _ABSENT
    ns = getattr(module, "__dict__", {})
    if name in ns:
        return ns[name]
    try:  # module-level __getattr__ (lazy names); unknown names raise
        return getattr(module, name)
    except Exception:  # noqa: BLE001
        return _ABSENT


Param = tuple[str, str, bool]  # (name, kind: positional / keyword / *args / **kwargs, has a default)


def doc_params(signature: str) -> list[Param] | None:
    """Parameters of a documented signature such as `(x, y, *, dtype=None, mask=None, **kwargs)`."""
    try:
        fn = ast.parse(f"def _f{signature}: pass").body[0]
    except SyntaxError:
        return None
    a = fn.args  # type: ignore[attr-defined]
    pos = a.posonlyargs + a.args
    defaults = [None] * (len(pos) - len(a.defaults)) + list(a.defaults)
    out: list[Param] = [(p.arg, "positional", d is not None) for p, d in zip(pos, defaults)]
    if a.vararg:
        out.append((a.vararg.arg, "*args", True))
    out += [(p.arg, "keyword", d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        out.append((a.kwarg.arg, "**kwargs", True))
    return out


def impl_params(obj: Any) -> list[Param] | None:
    """Parameters of an implementation (following functools.wraps wrappers)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: "positional",
        inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
        inspect.Parameter.VAR_POSITIONAL: "*args",
        inspect.Parameter.KEYWORD_ONLY: "keyword",
        inspect.Parameter.VAR_KEYWORD: "**kwargs",
    }
    return [
        (
            p.name,
            kinds[p.kind],
            p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD),
        )
        for p in sig.parameters.values()
    ]


def compare_signatures(doc: list[Param], impl: list[Param]) -> list[str]:
    """Differences that can break a call written against the documented signature (empty: compatible)."""
    notes: list[str] = []
    dpos = [p for p in doc if p[1] == "positional"]
    ipos = [p for p in impl if p[1] == "positional"]
    by_name = {p[0]: p for p in impl}
    impl_kwargs = any(p[1] == "**kwargs" for p in impl)
    # order of the documented positional parameters that trnsim also takes positionally
    dnames = [p[0] for p in dpos if p[0] in by_name and by_name[p[0]][1] == "positional"]
    if dnames != [p[0] for p in ipos[: len(dnames)]]:
        notes.append(
            f"positional parameters ({', '.join(p[0] for p in dpos)}) are ({', '.join(p[0] for p in ipos)}) in trnsim"
        )
    doc_names = {p[0] for p in doc}
    for p in ipos[len(dpos) :]:
        if not p[2] and p[0] not in doc_names:
            notes.append(f"extra required parameter '{p[0]}'")
    for p in impl:
        if p[1] == "keyword" and not p[2] and p[0] not in doc_names:
            notes.append(f"extra required parameter '{p[0]}'")
    for name, kind, has_default in doc:
        if kind in ("*args", "**kwargs"):
            if not any(q[1] == kind for q in impl):
                notes.append(f"no {kind}")
            continue
        q = by_name.get(name)
        if q is None:
            notes.append(f"'{name}' only reaches **kwargs (ignored)" if impl_kwargs else f"no parameter '{name}'")
        elif has_default and not q[2]:
            notes.append(f"'{name}' is required in trnsim")
        elif kind == "positional" and q[1] == "keyword":
            notes.append(f"'{name}' is keyword-only in trnsim")
    return notes


def check_entry(generation: str, group: str, entry: Entry, module: Any) -> Row:
    obj = _lookup(module, entry.name)
    if obj is _ABSENT:
        return Row(generation, group, entry, MISSING)
    if getattr(obj, "_trnsim_missing", False):
        return Row(generation, group, entry, MISSING, ("stub: raises NkiUnsupportedError",))
    notes: list[str] = []
    if entry.signature is not None and (inspect.isfunction(obj) or inspect.ismethod(obj)):
        doc, impl = doc_params(entry.signature), impl_params(obj)
        if doc is not None and impl is not None:
            notes = compare_signatures(doc, impl)
    return Row(generation, group, entry, SIGNATURE if notes else IMPLEMENTED, tuple(notes))


def collect(generations: Sequence[str] = GENERATIONS) -> list[Row]:
    """Check every documented name of the given generations against the code."""
    rows: list[Row] = []
    for gen in generations:
        for group, entries in INVENTORY[gen].items():
            module = load_module(GROUPS[group]["module"][gen])
            rows += [check_entry(gen, group, e, module) for e in entries]
    return rows


def totals(rows: Sequence[Row]) -> dict[tuple[str, str], dict[str, int]]:
    """(generation, group or '*') -> counts of documented / implemented (incl. signature differs) / missing."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        for key in ((r.generation, r.group), (r.generation, "*")):
            t = out.setdefault(key, {"documented": 0, IMPLEMENTED: 0, SIGNATURE: 0, MISSING: 0})
            t["documented"] += 1
            t[r.status] += 1
    return out


# ------------------------------------------------------------------------------------------------ error catalogue
#: nki-api.md 6.1, the G1 error catalogue: (number, code, how trnsim checks it where that needs saying). Whether
#: trnsim raises a code is read from its source (`raised_codes`); the notes explain checks that an eager simulator
#: does differently or cannot do.
LEGACY_ERRORS: tuple[tuple[int, str, str], ...] = (
    (1, "err_1d_arange_not_supported", ""),
    (2, "err_activation_bias_invalid_type", ""),
    (3, "err_activation_scale_invalid_type", ""),
    (4, "err_activation_scale_scalar_or_vector", ""),
    (5, "err_ambiguous_tensor_truth_value", ""),
    (
        6,
        "err_annotation_shape_mismatch",
        "parameter annotations are compared with the arguments at launch; Python does not evaluate annotations of "
        "local assignments, so they are read from the kernel's source and checked by a line tracer on the kernel's "
        "own frame, which steps aside while another trace function (debugger, coverage tool) is active (a local "
        "whose value broadcasts to its annotation is accepted); also `tensor.assert_shape`",
    ),
    (
        7,
        "err_bias_tensor_must_be_specified_in_allocation",
        "not checked yet (direct-allocation kernels are recognised by their ncc allocation buffers, see #29 / #31)",
    ),
    (8, "err_cannot_assign_to_index", ""),
    (9, "err_cannot_update_immutable_parameter", "raised after the run, at the kernel line of the first write"),
    (10, "err_control_flow_condition_depending_on_arange", ""),
    (11, "err_copy_dynamic_indirect_indices_not_natively_supported", "assignments between on-chip tiles"),
    (12, "err_dynamic_control_flow_not_supported", ""),
    (13, "err_exceed_max_supported_dimension", ""),
    (14, "err_failed_to_infer_tile_from_local_tensor", ""),
    (15, "err_hbm_tensor_with_init_value_not_supported", ""),
    (16, "err_indirect_indices_are_not_supported_with_nki_api", "nl.load_transpose2d, nisa.dma_transpose"),
    (17, "err_indirect_indices_free_dim", ""),
    (
        18,
        "err_leading_dimension_of_tensor_must_be_partition",
        "not raised on purpose: trnsim follows the SDKs before 2.25, where leading block dims are legal (and common "
        "in public kernels)",
    ),
    (
        19,
        "err_local_variable_used_out_of_scope",
        "not checked: Python keeps names bound after an `if` / `for` block, and the kernel runs as Python; telling "
        "tensors from other values would need the compiler's static types",
    ),
    (20, "err_mutable_parameter_not_returned", "reported at the kernel's `def` line after the run"),
    (21, "err_nested_kernel_with_spmd_grid", ""),
    (22, "err_nki_api_outside_of_nki_kernel", ""),
    (23, "err_num_partition_exceed_arch_limit", ""),
    (24, "err_num_partition_mismatch", ""),
    (
        25,
        "err_shared_hbm_must_in_kernel_level",
        "reported inside loops; creation in a branch or a helper function is not detected (helpers run inlined)",
    ),
    (26, "err_size_of_dimension_exceed_arch_limit", ""),
    (27, "err_store_dst_shape_smaller_than_other_shape", ""),
    (28, "err_tensor_access_out_of_bound", ""),
    (
        29,
        "err_tensor_creation_on_scratchpad_with_init_value_not_supported",
        "nl.zeros / ones / full with an ncc allocation buffer (not with `lazy_initialization=True`)",
    ),
    (30, "err_tensor_output_not_written_to", ""),
    (
        31,
        "err_transpose_on_tensor_engine_not_allowed_in_allocated_kernel",
        "once the kernel has allocated a tensor with an ncc allocation buffer: nisa.nc_transpose on the Tensor "
        "engine, nl.transpose, nl.matmul(transpose_x=False)",
    ),
    (32, "err_unexpected_output_dependencies", ""),
    (33, "err_unsupported_expression_in_mask", ""),
    (34, "err_unsupported_memory", ""),
    (35, "err_unsupported_mixing_basic_advanced_tensor_indexing", ""),
    (
        36,
        "err_while_loop_requires_unconditional_entry",
        "not checked: whether a `while` condition is tested before the first iteration is a property of the "
        "compiled loop; the simulator runs Python's `while` as written",
    ),
)


def raised_codes() -> set[str]:
    """Error codes that trnsim's source raises (quoted code names in its modules, this one excluded)."""
    root = os.path.dirname(os.path.abspath(__file__))
    names = {code for _, code, _ in LEGACY_ERRORS}
    found: set[str] = set()
    for dirpath, _, files in os.walk(root):
        for fn in files:
            path = os.path.join(dirpath, fn)
            if not fn.endswith(".py") or os.path.abspath(path) == os.path.abspath(__file__):
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
            found.update(c for c in names if f'"{c}"' in text)
    return found


def render_errors() -> list[str]:
    raised = raised_codes()
    lines = [
        "",
        "## Legacy error catalogue (nki-api.md 6.1)",
        "",
        "Codes of the G1 error catalogue and whether trnsim raises them (read from its source); errors point at the",
        "kernel line. Tests: `tests/legacy/test_errors_catalogue.py`, `tests/legacy/test_language_errors.py`.",
        "",
        "| # | code | raised | notes |",
        "|---:|---|---|---|",
    ]
    for num, code, note in LEGACY_ERRORS:
        lines.append(f"| {num} | `{code}` | {'yes' if code in raised else 'no'} | {_cell(note)} |")
    return lines


# ------------------------------------------------------------------------------------------------ rendering
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(rows: Sequence[Row] | None = None) -> str:
    """docs/coverage.md: totals, then per API group one table with a status column per generation."""
    rows = collect() if rows is None else rows
    gens = [g for g in GENERATIONS if any(r.generation == g for r in rows)]
    tot = totals(rows)
    lines = [
        "# NKI API coverage",
        "",
        "Generated by `python -m trnsim coverage --write` from the documented-name inventory in",
        "`src/trnsim/coverage.py` (transcribed from nki-api.md sections 1.3, 4.5, 5.1, 5.4 and 5.6) and the code;",
        "`tests/legacy/test_language_coverage.py` fails when this file is out of date. A name is *implemented* when",
        "its trnsim module defines it (and it is not a stub); *signature differs* lists documented parameters that",
        "the implementation names, orders or requires differently. `legacy` is `neuronxcc.nki` (G1), `current` is",
        "`nki` (G2).",
        "",
        "## Totals",
        "",
        "| generation | API | documented | implemented | signature differs | missing |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for gen in gens:
        for group in list(INVENTORY[gen]) + ["*"]:
            t = tot.get((gen, group))
            if t is None:
                continue
            label = "**all**" if group == "*" else f"`{GROUPS[group]['public'][gen]}`"
            lines.append(
                f"| {gen} | {label} | {t['documented']} | {t[IMPLEMENTED] + t[SIGNATURE]} | {t[SIGNATURE]} | "
                f"{t[MISSING]} |"
            )
    by_key = {(r.generation, r.group, r.entry.name): r for r in rows}
    for group, info in GROUPS.items():
        names: list[str] = []
        for gen in gens:
            for e in INVENTORY[gen].get(group, ()):
                if e.name not in names:
                    names.append(e.name)
        if not names:
            continue
        publics = ", ".join(f"`{info['public'][g]}`" for g in gens if g in info["public"])
        lines += ["", f"## {info['label']} ({publics})", ""]
        absent = [
            f"`{info['module'][g]}` ({g})" for g in gens if g in info["module"] and not _available(info["module"][g])
        ]
        if absent:
            lines += ["Not importable (yet): " + ", ".join(absent) + ".", ""]
        lines.append("| name | module | " + " | ".join(gens) + " | notes |")
        lines.append("|---|---|" + "---|" * len(gens) + "---|")
        for name in names:
            cells, notes = [], []
            for gen in gens:
                r = by_key.get((gen, group, name))
                if r is None:
                    cells.append("—")
                    continue
                cells.append(r.status)
                extra = ([r.entry.note] if r.entry.note else []) + list(r.notes)
                if extra:
                    notes.append(f"{gen}: " + "; ".join(extra))
            kind = next(r.entry.kind for g in gens if (r := by_key.get((g, group, name))) is not None)
            shown = f"`{name}`" if kind == "object" else f"`{name}()`"
            lines.append(f"| {shown} | {info['label']} | " + " | ".join(cells) + f" | {_cell(' / '.join(notes))} |")
    if "legacy" in gens:
        lines += render_errors()
    return "\n".join(lines) + "\n"


def default_doc_path() -> str:
    """docs/coverage.md of the source checkout (or of the current directory for an installed package)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isdir(os.path.join(root, "docs")) and os.path.isdir(os.path.join(root, "src")):
        return os.path.join(root, "docs", "coverage.md")
    return os.path.join(os.getcwd(), "docs", "coverage.md")


def summary_text(rows: Sequence[Row]) -> str:
    tot = totals(rows)
    out = []
    for gen in GENERATIONS:
        t = tot.get((gen, "*"))
        if t is None:
            continue
        impl = t[IMPLEMENTED] + t[SIGNATURE]
        parts = ", ".join(
            f"{GROUPS[g]['label']} {tot[(gen, g)][IMPLEMENTED] + tot[(gen, g)][SIGNATURE]}/{tot[(gen, g)]['documented']}"
            for g in INVENTORY[gen]
        )
        out.append(
            f"{gen:8s} {impl}/{t['documented']} documented names implemented "
            f"({t[SIGNATURE]} with signature differences, {t[MISSING]} missing): {parts}"
        )
    return "\n".join(out)


def coverage_command(argv: Sequence[str]) -> int:
    """`python -m trnsim coverage [--write] [--check] [--missing] [--path FILE]`."""
    p = argparse.ArgumentParser(prog="python -m trnsim coverage", description="implemented-vs-documented NKI API")
    p.add_argument("--write", action="store_true", help="regenerate the coverage document")
    p.add_argument("--check", action="store_true", help="exit 1 if the coverage document is out of date")
    p.add_argument("--missing", action="store_true", help="list missing names and signature differences")
    p.add_argument("--path", default=None, help="coverage document (default: docs/coverage.md)")
    args = p.parse_args(list(argv))
    path = args.path or default_doc_path()
    rows = collect()
    print(summary_text(rows))
    if args.missing:
        for gen in GENERATIONS:
            for group in INVENTORY[gen]:
                if not _available(GROUPS[group]["module"][gen]):
                    print(f"  {gen:8s} {GROUPS[group]['public'][gen]}: module not available (all names missing)")
        for r in rows:
            if r.status != IMPLEMENTED and _available(GROUPS[r.group]["module"][r.generation]):
                label = GROUPS[r.group]["public"][r.generation]
                print(
                    f"  {r.generation:8s} {label}.{r.entry.name}: {r.status}"
                    + (f" ({'; '.join(r.notes)})" if r.notes else "")
                )
    text = render(rows)
    if args.write:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {path}")
    if args.check:
        try:
            with open(path, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            print(f"{path} is out of date; run `python -m trnsim coverage --write`", file=sys.stderr)
            return 1
    return 0
