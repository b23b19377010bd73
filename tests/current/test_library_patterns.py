"""Current-API constructs as production kernels use them (trnsim/kernels/current/library_patterns.py): .ap() with
vector / scalar offsets, dma_compute scatter-add and gather-RMW, nc_matmul accumulate modes, manual placement,
register-driven device loops, nl.no_reorder and Kernel.with_schedule."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim
import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl
from trnsim.kernels.current import library_patterns as lp


def test_moe_route_scatter_add(rng):
    T, H = 300, 64
    x = rng.standard_normal((T, H)).astype(np.float32)
    idx = np.stack([rng.permutation(T)[:128] for _ in range(3)], axis=1).astype(np.uint32)
    w = rng.uniform(0.5, 1.5, (128, 3)).astype(np.float32)
    init = rng.standard_normal((T, H)).astype(np.float32)
    got = nki.simulate(lp.moe_route_scatter_add)(x, idx, w, init)
    np.testing.assert_allclose(got, lp.moe_route_scatter_add_reference(x, idx, w, init), rtol=1e-5, atol=1e-5)


def test_gather_accumulate_dma_rmw(rng):
    table = rng.standard_normal((50, 32)).astype(np.float32)
    idx = rng.integers(0, 50, (128, 4)).astype(np.int32)  # repeated rows across k are fine: one gather per k
    got = nki.simulate(lp.gather_accumulate)(table, idx)
    np.testing.assert_allclose(got, lp.gather_accumulate_reference(table, idx), rtol=1e-5, atol=1e-5)


def test_dma_compute_hbm_sources_and_fused_residual(rng):
    a, b, c = (rng.standard_normal((200, 48)).astype(np.float32) for _ in range(3))
    total, pair = nki.simulate(lp.fused_residual_add)(a, b, c)
    np.testing.assert_allclose(total, a.astype(np.float64) + b + c, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pair, a.astype(np.float64) + b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n_valid", [128, 384])
def test_register_driven_loops(rng, n_valid):
    x = rng.standard_normal((512, 40)).astype(np.float32)
    n = np.array([[n_valid]], dtype=np.int32)
    out, count = nki.simulate(lp.dynamic_row_tiles)(x, n)
    want, want_count = lp.dynamic_row_tiles_reference(x, n)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(count, want_count)


def test_psum_bias_accumulate_manual_placement_schedule(rng):
    lhsT = rng.standard_normal((256, 128)).astype(np.float32)
    rhs = rng.standard_normal((256, 1024)).astype(np.float32)
    bias = rng.standard_normal((1, 1024)).astype(np.float32)
    k = lp.psum_accumulate_bias.with_schedule([("store1", "evac1"), ("evac0", ["bias0"])])
    out, rec = k.launch(lhsT, rhs, bias)
    np.testing.assert_allclose(out, lhsT.T.astype(np.float64) @ rhs + bias, rtol=1e-4, atol=1e-4)
    named = {i.attrs["name"]: i for i in rec.stream if "name" in i.attrs}
    assert named["store1"].attrs["schedule_after"] == [named["evac1"].idx]
    assert named["evac0"].attrs["schedule_after"] == [named["bias0"].idx]
    blocks = {i.attrs.get("no_reorder") for i in rec.stream if i.attrs.get("name", "").startswith(("evac", "store"))}
    assert len(blocks) == 2 and None not in blocks  # one no_reorder block per output tile
    # only the instructions inside the blocks are tagged
    assert all(i.attrs.get("no_reorder") is None for i in rec.stream if i.opcode == "MATMUL")


def test_psum_accumulate_none_restarts_after_read(rng):
    lhsT = rng.standard_normal((256, 128)).astype(np.float32)
    rhs = rng.standard_normal((256, 256)).astype(np.float32)
    out = nki.simulate(lp.psum_reuse_accumulate_none)(lhsT, rhs)
    want = lhsT.T.astype(np.float64) @ rhs
    np.testing.assert_allclose(out[0], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[1], want, rtol=1e-4, atol=1e-4)  # not 2x: the read closed the group


def test_accumulate_true_on_fresh_psum_warns(rng):
    @nki.jit
    def k(a, b):
        out = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
        sa = nl.ndarray((128, 128), dtype=nl.float32, buffer=nl.sbuf)
        sb = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=sa, src=a)
        nisa.dma_copy(dst=sb, src=b)
        ps = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.psum)
        nisa.nc_matmul(dst=ps, stationary=sa, moving=sb, accumulate=True)
        r = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=r, src=ps)
        nisa.dma_copy(dst=out, src=r)
        return out

    a = rng.standard_normal((128, 128)).astype(np.float32)
    b = rng.standard_normal((128, 64)).astype(np.float32)
    with pytest.warns(trnsim.NkiWarning, match="uninit|never written|garbage"):
        nki.simulate(k)(a, b)


def test_no_reorder_rejects_dynamic_loops(lineof):
    @nki.jit
    def k(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        with nl.no_reorder():
            for _ in nl.static_range(2):  # static loops are unrolled: allowed
                nisa.tensor_scalar(dst=t, data=t, op0=nl.add, operand0=1.0)
            nl.fori_loop(0, 2, lambda i: None)  # L:fori
        nisa.dma_copy(dst=out, src=t)
        return out

    with pytest.raises(trnsim.NkiValidationError) as e:
        nki.simulate(k)(np.zeros((128, 4), np.float32))
    assert e.value.code == "err_dynamic_loop_in_no_reorder" and e.value.loc.line == lineof("fori")


def test_depends_on_rules(lineof):
    @nki.jit
    def k(x, bad):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        u = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        load = nisa.dma_copy(dst=t, src=x, name="load")
        handles = []

        def body(i):
            h = nisa.tensor_scalar(dst=u, data=t, op0=nl.add, operand0=1.0)
            h.depends_on(load, kind=nisa.dependency.runtime)  # producer in an enclosing scope: allowed
            handles.append(h)

        nl.fori_loop(0, 2, body)
        st = nisa.dma_copy(dst=out, src=u)
        if bad:
            st.depends_on(handles[-1])  # L:out_of_loop
        return out, st

    x = np.ones((128, 4), np.float32)
    (out, _), rec = k.launch(x, False)
    np.testing.assert_array_equal(out, x + 1)
    dep = [i for i in rec.stream if i.attrs.get("depends_on")]
    assert len(dep) == 2 and all(i.attrs["dependency_kind"] == "runtime" for i in dep)
    with pytest.raises(trnsim.NkiValidationError) as e:
        nki.simulate(k)(x, True)
    assert e.value.code == "err_dependency_across_dynamic_loop" and e.value.loc.line == lineof("out_of_loop")


def test_with_schedule_checks_names():
    @nki.jit
    def k(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        a = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        b = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.reciprocal(dst=a, data=t, name="recip")
        nisa.tensor_scalar(dst=b, data=t, op0=nl.add, operand0=1.0, name="plus1")
        nisa.tensor_tensor(dst=t, data1=a, data2=b, op=nl.add)
        nisa.dma_copy(dst=out, src=t)
        return out

    x = np.full((128, 8), 2.0, np.float32)
    out, rec = k.with_schedule([("recip", "plus1")]).launch(x)  # reversed w.r.t. program order: still satisfied
    np.testing.assert_allclose(out, 0.5 + 3.0)
    recip = next(i for i in rec.stream if i.attrs.get("name") == "recip")
    plus1 = next(i for i in rec.stream if i.attrs.get("name") == "plus1")
    assert recip.attrs["schedule_after"] == [plus1.idx]
    with pytest.warns(trnsim.NkiWarning, match="plus_one"):
        k.with_schedule([("recip", "plus_one")]).launch(x)
    with pytest.raises(trnsim.NkiValidationError) as e:
        k.with_schedule([("recip",)])
    assert e.value.code == "err_invalid_schedule"
