"""nki.language (current API): dtypes, buffers, tile sizes, creation, data movement and the experimental
element-wise / reduction / matmul functions, checked against NumPy float64."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import trnsim
import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl

NL_FUNCTIONS = """ndarray zeros ones full zeros_like empty_like rand random_seed shared_constant shared_identity_matrix
load store load_transpose2d copy broadcast_to gather_flattened add subtract multiply divide power maximum minimum
abs_max abs_min fmod mod abs negative sign trunc floor ceil exp log cos sin tan tanh arctan sqrt rsqrt square
reciprocal sigmoid relu gelu gelu_dx gelu_apprx_tanh gelu_apprx_sigmoid gelu_apprx_sigmoid_dx silu silu_dx erf erf_dx
softplus mish softmax rms_norm dropout sum prod max min mean var all equal not_equal greater greater_equal less
less_equal logical_and logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor invert left_shift
right_shift where ds expand_dims matmul transpose affine_range sequential_range static_range dynamic_range fori_loop
while_loop program_id num_programs program_ndim is_hbm is_on_chip is_psum is_sbuf device_print no_reorder""".split()

DTYPES = """bool_ int8 int16 int32 uint8 uint16 uint32 float16 float32 bfloat16 tfloat32 float8_e4m3 float8_e5m2
float8_e4m3fn float8_e8m0fnu float8_e5m2_x4 float8_e4m3fn_x4 float4_e2m1fn_x4""".split()


def test_inventory():
    assert len(NL_FUNCTIONS) == 103 and len(set(NL_FUNCTIONS)) == 103
    for name in NL_FUNCTIONS:
        assert callable(getattr(nl, name)), name
    assert len(DTYPES) == 18
    for name in DTYPES:
        getattr(nl, name)
    assert nl.float8_e4m3fn_x4.itemsize == 4 and nl.float4_e2m1fn_x4.itemsize == 2
    assert nl.sbuf == nl.MemoryRegion.sbuf and nl.is_hbm(nl.shared_hbm) and nl.is_on_chip(nl.psum)
    assert nl.tile_size.pmax == 128 and nl.tile_size.psum_bank_fmax == 512 and nl.tile_size.gemm_moving_fmax == 512
    assert issubclass(nki.NkiTensor, trnsim.core.tensor.Tensor)
    with pytest.raises(AttributeError):
        nl.par_dim  # noqa: B018 - legacy only
    assert not hasattr(nl, "mgrid")


@pytest.mark.parametrize("target, sbuf", [("trn1", 180224), ("trn2", 212984), ("trn3", 245752)])
def test_tile_size_and_nc_version_follow_the_target(monkeypatch, target, sbuf):
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", target)
    got = {}

    @nki.jit
    def k(x):
        got["v"] = nisa.get_nc_version()
        got["sbuf"] = nl.tile_size.sbuf_fmax_bytes
        got["sub"] = nisa.get_nc_sub_version()
        return x

    nki.simulate(k)(np.zeros((2, 2), np.float32))
    assert got["v"] == {"trn1": nisa.nc_version.gen2, "trn2": nisa.nc_version.gen3, "trn3": nisa.nc_version.gen4}[target]
    assert got["v"] >= nisa.nc_version.gen2 and got["sbuf"] == sbuf and got["sub"] == 0


def run_nl(fn, *arrays):
    """Kernel: nl.load each input, out = fn(*tiles), nl.store it."""

    @nki.jit
    def k(a, b):
        tiles = [nl.load(x) for x in (a, b) if isinstance(x, nki.NkiTensor)]
        r = fn(*tiles)
        if r.buffer == nl.psum:
            r = nl.copy(r)
        out = nl.ndarray(r.shape, dtype=r.dtype, buffer=nl.shared_hbm)
        nl.store(out, r)
        return out

    return nki.simulate(k)(*(list(arrays) + [None] * (2 - len(arrays))))


def test_binary_functions(rng):
    x = rng.standard_normal((64, 32)).astype(np.float32)
    y = rng.uniform(0.5, 2, (64, 32)).astype(np.float32)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    cases = {
        nl.add: x64 + y64, nl.subtract: x64 - y64, nl.multiply: x64 * y64, nl.maximum: np.maximum(x64, y64),
        nl.minimum: np.minimum(x64, y64), nl.power: np.abs(x64) ** y64, nl.greater: (x64 > y64).astype(float),
        nl.equal: (x64 == x64).astype(float),
    }
    for fn, want in cases.items():
        if fn is nl.power:
            got = run_nl(lambda a, b: nl.power(nl.abs(a), b), x, y)
        elif fn is nl.equal:
            got = run_nl(lambda a, b: nl.equal(a, a), x, y)
        else:
            got = run_nl(fn, x, y)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=fn.__name__)
    np.testing.assert_allclose(run_nl(lambda a: nl.multiply(a, 3.0), x), 3 * x64, rtol=1e-6)
    np.testing.assert_allclose(run_nl(lambda a: nl.subtract(1.0, a), x), 1 - x64, rtol=1e-6, atol=1e-6)
    assert run_nl(lambda a, b: nl.less(a, b), x, y).dtype == np.float32  # 1 / 0 in the input dtype
    xi = rng.integers(0, 1000, (32, 16)).astype(np.int32)
    np.testing.assert_array_equal(run_nl(lambda a: nl.bitwise_and(a, 255), xi), xi & 255)
    np.testing.assert_array_equal(run_nl(lambda a: nl.right_shift(a, 2), xi), xi >> 2)


def test_unary_functions_and_reductions(rng):
    x = rng.uniform(0.1, 3.0, (64, 48)).astype(np.float32)
    x64 = x.astype(np.float64)
    cases = {
        nl.exp: np.exp(x64), nl.log: np.log(x64), nl.sqrt: np.sqrt(x64), nl.rsqrt: 1 / np.sqrt(x64),
        nl.tanh: np.tanh(x64), nl.sigmoid: 1 / (1 + np.exp(-x64)), nl.square: x64 * x64, nl.negative: -x64,
        nl.reciprocal: 1 / x64, nl.sin: np.sin(x64), nl.cos: np.cos(x64), nl.floor: np.floor(x64),
        nl.silu: x64 / (1 + np.exp(-x64)), nl.gelu: 0.5 * x64 * (1 + np.vectorize(math.erf)(x64 / math.sqrt(2))),
    }
    for fn, want in cases.items():
        np.testing.assert_allclose(run_nl(fn, x), want, rtol=2e-5, atol=1e-6, err_msg=fn.__name__)
    red = {
        nl.sum: x64.sum(1), nl.max: x64.max(1), nl.min: x64.min(1), nl.mean: x64.mean(1), nl.prod: x64[:, :8].prod(1),
    }
    for fn, want in red.items():
        src = (lambda a, f=fn: f(a[:, 0:8], axis=1)) if fn is nl.prod else (lambda a, f=fn: f(a, axis=1))
        got = run_nl(src, x)
        assert got.shape == (64, 1)
        np.testing.assert_allclose(got[:, 0], want, rtol=1e-5, err_msg=fn.__name__)
    np.testing.assert_allclose(run_nl(lambda a: nl.var(a, axis=1), x)[:, 0], x64.var(1), rtol=1e-4)
    np.testing.assert_allclose(run_nl(lambda a: nl.sum(a, axis=1, keepdims=True), x)[:, 0], x64.sum(1), rtol=1e-5)


def test_composites_and_matmul(rng):
    x = rng.standard_normal((128, 64)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, (128, 64)).astype(np.float32)
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(1, keepdims=True))
    np.testing.assert_allclose(run_nl(nl.softmax, x), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    rms = x64 / np.sqrt((x64 * x64).sum(1, keepdims=True) / 64 + 1e-6) * w
    np.testing.assert_allclose(run_nl(lambda a, b: nl.rms_norm(a, b, axis=1, n=64), x, w), rms, rtol=1e-5, atol=1e-6)
    c = (rng.random((128, 64)) > 0.5).astype(np.float32)
    np.testing.assert_array_equal(run_nl(lambda a, b: nl.where(b, a, -1.0), x, c), np.where(c != 0, x, -1.0))
    a = rng.standard_normal((128, 96)).astype(np.float32)
    b = rng.standard_normal((128, 256)).astype(np.float32)
    np.testing.assert_allclose(run_nl(lambda p, q: nl.matmul(p, q, transpose_x=True), a, b), a.T.astype(np.float64) @ b,
                               rtol=1e-4, atol=1e-4)
    sq = rng.standard_normal((96, 128)).astype(np.float32)
    np.testing.assert_allclose(run_nl(lambda p, q: nl.matmul(p, q), sq, b), sq.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(run_nl(nl.transpose, a), a.T)


def test_creation_and_movement(rng):
    x = rng.standard_normal((100, 64)).astype(ml_dtypes.bfloat16)

    @nki.jit
    def k(a):
        z = nl.zeros((100, 64), dtype=nl.float32)
        o = nl.ones((100, 64), dtype=nl.float32)
        f = nl.full((100, 64), 2.5, dtype=nl.float32)
        t = nl.load(a, dtype=nl.float32)
        s = nl.add(nl.add(z, o), nl.multiply(f, t))
        c = nl.copy(s, dtype=nl.bfloat16)
        eye = nl.shared_identity_matrix(100, dtype=nl.float32)
        tt = nl.load_transpose2d(a)
        bc = nl.broadcast_to(nl.load(a[0:1, :]), (100, 64))
        out = nl.ndarray((3, 100, 64), dtype=nl.bfloat16, buffer=nl.shared_hbm)
        nl.store(out[0], c)
        nl.store(out[1], nl.copy(eye[:, 0:64], dtype=nl.bfloat16))
        nl.store(out[2], bc)
        ot = nl.ndarray((64, 100), dtype=a.dtype, buffer=nl.shared_hbm)
        nl.store(ot, tt)
        const = nl.shared_constant(np.arange(12, dtype=np.float32).reshape(3, 4))
        return out, ot, const

    out, ot, const = nki.simulate(k)(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(out[0].astype(np.float64), 1 + 2.5 * x64, rtol=1e-2, atol=1e-2)
    np.testing.assert_array_equal(out[1].astype(np.float64), np.eye(100, 64))
    np.testing.assert_array_equal(out[2], np.broadcast_to(x[0:1], (100, 64)))
    np.testing.assert_array_equal(ot, x.T)
    np.testing.assert_array_equal(const, np.arange(12).reshape(3, 4))


def test_current_api_rules(lineof):
    @nki.jit
    def bcast(a):
        t = nl.load(a)
        return nl.add(t, t[:, 0:1])  # L:bcast

    with pytest.raises(trnsim.NkiValidationError) as e:
        nki.simulate(bcast)(np.zeros((8, 8), np.float32))
    assert e.value.code == "err_shape_mismatch" and e.value.loc.line == lineof("bcast")

    @nki.jit
    def strbuf(a):
        return nl.ndarray((8, 8), dtype=nl.float32, buffer="sbuf")  # L:str

    with pytest.raises(trnsim.NkiTypeError) as e:
        nki.simulate(strbuf)(np.zeros((8, 8), np.float32))
    assert e.value.code == "err_unsupported_memory" and e.value.loc.line == lineof("str")

    @nki.jit
    def axis1(a):
        return nl.program_id(1)  # L:axis

    with pytest.raises(trnsim.NkiValidationError) as e:
        nki.simulate(axis1)(np.zeros((8, 8), np.float32))
    assert e.value.code == "err_invalid_program_axis" and e.value.loc.line == lineof("axis")

    @nki.jit
    def hbm_zero(a):
        return nl.zeros((8, 8), dtype=nl.float32, buffer=nl.shared_hbm)  # L:hbmz

    with pytest.raises(trnsim.NkiValidationError) as e:
        nki.simulate(hbm_zero)(np.zeros((8, 8), np.float32))
    assert e.value.code == "err_hbm_tensor_with_init_value_not_supported" and e.value.loc.line == lineof("hbmz")


def test_device_print_per_core(capsys):
    @nki.jit
    def k(a):
        t = nl.load(a)
        nl.device_print("t=", t)
        return a

    k[2](np.arange(4, dtype=np.float32).reshape(2, 2))
    out = capsys.readouterr().out
    assert "[core 0] t=" in out and "[core 1] t=" in out
