"""NkiTensor views, current-API indexing rules, access patterns (.ap) and manual placement (address=)."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim
import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl


def _copy_view(make_view, a, out_shape):
    """Kernel: load a into SBUF [P, F], copy make_view(tile) into a fresh tile of out_shape, store it."""

    @nki.jit
    def k(x):
        out = nl.ndarray(out_shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        r = nl.ndarray(out_shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=r, src=make_view(t))
        nisa.dma_copy(dst=out, src=r)
        return out

    return nki.simulate(k)(a)


def test_on_chip_indexing_keeps_partition_and_two_dims(rng):
    shapes = {}

    @nki.jit
    def k(x):
        t = nl.ndarray((128, 4, 16), dtype=nl.float32, buffer=nl.sbuf)
        h = nl.ndarray((8, 4, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        shapes.update(
            p_int=t[5].shape, free_int=t[:, 1].shape, two_ints=t[:, 1, 2].shape, ell=t[..., 3].shape,
            step=t[0:64, ::2, :].shape, neg=t[:, -1, -4:].shape, ds=t[:, nl.ds(1, 2), :].shape,
            hbm_int=h[2].shape, hbm_two=h[2, 3].shape,
        )
        return x

    nki.simulate(k)(rng.standard_normal((2, 2)).astype(np.float32))
    assert shapes == {
        "p_int": (1, 4, 16), "free_int": (128, 16), "two_ints": (128, 1), "ell": (128, 4), "step": (64, 2, 16),
        "neg": (128, 4), "ds": (128, 2, 16), "hbm_int": (4, 16), "hbm_two": (16,),
    }


def test_view_methods_match_numpy(rng):
    a = rng.standard_normal((128, 64)).astype(np.float32)
    a3 = a.reshape(128, 4, 16)
    cases = [
        (lambda t: t.reshape((128, 4, 16)).permute((0, 2, 1)), (128, 16, 4), a3.transpose(0, 2, 1)),
        (lambda t: t.reshape((128, 4, 16)).slice(2, 2, 14, 3), (128, 4, 4), a3[:, :, 2:14:3]),
        (lambda t: t.reshape((128, 4, 16)).select(1, 3), (128, 16), a3[:, 3]),
        (lambda t: t[:, 0:1].broadcast(1, 64), (128, 64), np.broadcast_to(a[:, 0:1], (128, 64))),
        (lambda t: t.reshape_dim(1, (8, -1)).flatten_dims(1, 2), (128, 64), a),
        (lambda t: t.reshape_dim(1, (4, 16)).rearrange("p a b", "p b a"), (128, 16, 4), a3.transpose(0, 2, 1)),
        (lambda t: t.rearrange("p (a b)", "p b a", {"a": 8}), (128, 8, 8), a.reshape(128, 8, 8).transpose(0, 2, 1)),
        (lambda t: t.expand_dim(1).squeeze_dim(1), (128, 64), a),
        (lambda t: t.ap(pattern=[[64, 128], [-1, 64]], offset=63), (128, 64), a[:, ::-1]),
        (lambda t: t.ap(pattern=[[64, 64], [2, 32]], offset=64 * 64 + 1), (64, 32), a[64:, 1::2]),
        (lambda t: t.ap(), (128, 64), a),
    ]
    for make, shape, want in cases:
        got = _copy_view(make, a, shape)
        np.testing.assert_array_equal(got, want)


def test_view_reinterpret_and_writes_through_views(rng):
    a = rng.integers(-1000, 1000, (128, 32)).astype(np.int32)

    @nki.jit
    def k(x):
        out = nl.ndarray((128, 64), dtype=nl.int16, buffer=nl.shared_hbm)
        t = nl.ndarray((128, 32), dtype=nl.int32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        halves = t.view(nl.int16)  # [128, 64] bit reinterpretation
        nisa.dma_copy(dst=out, src=halves)
        return out

    got = nki.simulate(k)(a)
    np.testing.assert_array_equal(got, a.view(np.int16))
    assert nki.NkiTensor.reinterpret_cast is nki.NkiTensor.view


def test_static_out_of_bounds_is_an_error_with_kernel_line(lineof):
    @nki.jit
    def k(x):
        t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        v = t[:, 0:65]  # L:slice
        return v

    with pytest.raises(trnsim.NkiIndexError) as e:
        nki.simulate(k)(np.zeros((2, 2), np.float32))
    assert e.value.code == "err_tensor_access_out_of_bound"
    assert e.value.loc.file == __file__ and e.value.loc.line == lineof("slice")

    @nki.jit
    def k2(x):
        t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        return t.ap(pattern=[[64, 128], [1, 65]])  # L:ap

    with pytest.raises(trnsim.NkiIndexError) as e:
        nki.simulate(k2)(np.zeros((2, 2), np.float32))
    assert e.value.code == "err_tensor_access_out_of_bound" and e.value.loc.line == lineof("ap")

    @nki.jit
    def k3(x):
        t = nl.ndarray((128, 4, 16), dtype=nl.float32, buffer=nl.sbuf)
        return t.permute((1, 0, 2))  # L:perm

    with pytest.raises(trnsim.NkiValidationError) as e:
        nki.simulate(k3)(np.zeros((2, 2), np.float32))
    assert e.value.code == "err_partition_dim_view" and e.value.loc.line == lineof("perm")


def test_indirect_gather_scatter_and_oob_modes(rng, lineof):
    data = rng.standard_normal((200, 32)).astype(np.float32)
    idx = rng.integers(0, 200, (128, 1)).astype(np.uint32)
    idx[7, 0] = 500  # out of range

    @nki.jit
    def gather(d, ix, skip):
        out = nl.ndarray((128, 32), dtype=d.dtype, buffer=nl.shared_hbm)
        i_sb = nl.ndarray((128, 1), dtype=nl.uint32, buffer=nl.sbuf)
        nisa.dma_copy(dst=i_sb, src=ix)
        g = nl.ndarray((128, 32), dtype=d.dtype, buffer=nl.sbuf)
        nisa.memset(dst=g, value=0.0)
        mode = nisa.oob_mode.skip if skip else nisa.oob_mode.error
        nisa.dma_copy(dst=g, src=d.ap(pattern=[[32, 128], [1, 32]], vector_offset=i_sb, indirect_dim=0), oob_mode=mode)  # L:gather
        nisa.dma_copy(dst=out, src=g)
        return out

    got = nki.simulate(gather)(data, idx, True)
    want = np.where(idx < 200, data[np.minimum(idx[:, 0], 199)], 0.0)
    np.testing.assert_array_equal(got, want)
    with pytest.raises(trnsim.NkiIndexError) as e:
        nki.simulate(gather)(data, idx, False)
    assert e.value.code == "err_tensor_access_out_of_bound" and e.value.loc.line == lineof("gather")

    src = rng.standard_normal((128, 32)).astype(np.float32)
    perm = rng.permutation(200)[:128].reshape(128, 1).astype(np.uint32)

    @nki.jit
    def scatter(s, ix, out):
        i_sb = nl.ndarray((128, 1), dtype=nl.uint32, buffer=nl.sbuf)
        nisa.dma_copy(dst=i_sb, src=ix)
        t = nl.ndarray((128, 32), dtype=s.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=s)
        nisa.dma_copy(dst=out.ap(pattern=[[32, 128], [1, 32]], vector_offset=i_sb, indirect_dim=0), src=t)
        return out

    base = np.zeros((200, 32), np.float32)
    got = nki.simulate(scatter)(src, perm, base)
    want = np.zeros((200, 32), np.float32)
    want[perm[:, 0]] = src
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(base, want)  # in-place write copied back to the caller's array


def test_scalar_offset_register_and_dynamic_slice(rng):
    a = rng.standard_normal((512, 16)).astype(np.float32)

    @nki.jit
    def k(x):
        out = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.shared_hbm)
        acc = nl.ndarray((128, 16), dtype=nl.float32, buffer=nl.sbuf)
        nisa.memset(dst=acc, value=0.0)
        step = nisa.register_alloc(128)
        r = nisa.register_alloc(0)

        def body(i):
            t = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=x.ap(pattern=[[16, 128], [1, 16]], scalar_offset=r, indirect_dim=0))
            nisa.tensor_tensor(dst=acc, data1=acc, data2=t, op=nl.add)
            nisa.register_move(r, i)

        nl.fori_loop(0, 4, body)
        # r now holds 3 (the last induction value): a dynamic row slice through nl.ds
        t2 = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t2, src=x[nl.ds(r, 128), :])
        nisa.tensor_tensor(dst=acc, data1=acc, data2=t2, op=nl.add)
        del step
        nisa.dma_copy(dst=out, src=acc)
        return out

    got = nki.simulate(k)(a)
    # offsets used: scalar_offset * 16 elements = rows 0, 0, 1, 2 (register lags one iteration), then rows 3..130
    want = a[0:128] + a[0:128] + a[1:129] + a[2:130] + a[3:131]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_manual_placement_checks(lineof):
    @nki.jit
    def ok(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        for _i in range(3):
            t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf, address=(0, 4096))  # reused after last use
            nisa.dma_copy(dst=t, src=x)
            nisa.dma_copy(dst=out, src=t)
        return out

    x = np.ones((128, 64), np.float32)
    np.testing.assert_array_equal(nki.simulate(ok)(x), x)

    @nki.jit
    def overlap(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        a = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf, address=(0, 0))
        b = nl.ndarray((64, 64), dtype=x.dtype, buffer=nl.sbuf, address=(64, 128))
        nisa.dma_copy(dst=a, src=x)
        nisa.dma_copy(dst=b, src=x[0:64, :])  # L:overlap
        nisa.tensor_tensor(dst=a[64:128, :], data1=a[64:128, :], data2=b, op=nl.add)
        nisa.dma_copy(dst=out, src=a)
        return out

    with pytest.raises(trnsim.NkiMemoryError) as e:
        nki.simulate(overlap)(x)
    assert e.value.code == "err_overlapping_manual_allocation" and e.value.loc.line == lineof("overlap")

    @nki.jit
    def bad_bank(x):
        return nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.psum, address=(0, 1024))  # L:bank

    with pytest.raises(trnsim.NkiValidationError) as e:
        nki.simulate(bad_bank)(x)
    assert e.value.code == "err_invalid_address" and e.value.loc.line == lineof("bank")
    assert "bank boundary" in str(e.value)


def test_sbuf_capacity_is_checked_per_core(lineof):
    @nki.jit
    def big(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        tiles = []
        for i in range(30):
            t = nl.ndarray((128, 2048), dtype=nl.float32, buffer=nl.sbuf)
            nisa.memset(dst=t, value=float(i))
            tiles.append(t)
        for t in tiles:
            nisa.dma_copy(dst=out, src=t[:, 0:4])  # L:cap
        return out

    with pytest.raises(trnsim.NkiMemoryError) as e:
        nki.simulate(big)(np.zeros((128, 4), np.float32))
    assert e.value.code == "err_sbuf_capacity_exceeded"
