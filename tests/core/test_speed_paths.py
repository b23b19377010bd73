"""The simulator's speed paths change nothing observable: cached checks still catch every error, cached index
resolution and fp32 shadows give the same values, written-state shortcuts still report uninitialised reads."""

from __future__ import annotations

import gc
import pickle
import warnings

import ml_dtypes
import numpy as np
import pytest

import trnsim
import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core import memory
from trnsim.core.errors import NkiError, NkiWarning
from trnsim.core.source import SourceLoc

BF16 = ml_dtypes.bfloat16


def test_cached_checks_still_raise_for_a_new_signature(rng):
    """The second add has the same call site but mismatched shapes: its checks must run (and fail)."""

    def k(a, b):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        x = nl.load(a)
        y = nl.load(b)
        dst = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        for i in nl.sequential_range(3):
            src = x if i < 2 else y
            nisa.tensor_tensor(data1=x, data2=src, op=np.add, dtype=nl.float32)
        nl.store(out, dst)
        return out

    a = rng.standard_normal((128, 64)).astype(np.float32)
    b = rng.standard_normal((128, 32)).astype(np.float32)
    with pytest.raises(NkiError) as ei:
        trnsim.simulate_kernel(k, a, b)
    assert ei.value.code in ("err_shape_mismatch", "err_num_partition_mismatch"), ei.value


def test_cached_matmul_checks_per_target(rng):
    """Checks that depend on the target (moving free size <= 512 before NeuronCore-v4) are cached per run."""

    def k(a, b):
        out = nl.ndarray((128, 1024), dtype=nl.float32, buffer=nl.shared_hbm)
        s = nl.load(a)
        m = nl.load(b)
        r = nl.copy(nisa.nc_matmul(s, m))
        nl.store(out, r)
        return out

    a = rng.standard_normal((128, 128)).astype(np.float32)
    b = rng.standard_normal((128, 1024)).astype(np.float32)
    with pytest.raises(NkiError) as ei:
        nki.jit(k, platform_target="trn2")(a, b)
    assert ei.value.code == "err_size_of_dimension_exceed_arch_limit"


def _matmul_twice(a, b):
    """lhs tile read by two matmuls with a write in between: the second must see the new values."""
    out = nl.ndarray((2, 128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
    s = nl.load(a)
    m = nl.load(b)
    for i in nl.sequential_range(2):
        p = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.psum)
        p[...] = nisa.nc_matmul(s[:, 0:128], m)
        nl.store(out[i], nl.copy(p))
        s[...] = nl.multiply(s, 2.0, dtype=s.dtype)
    return out


@pytest.mark.parametrize("dt", [np.float32, BF16])
def test_fp32_shadow_is_dropped_by_writes(rng, dt):
    a = rng.standard_normal((128, 256)).astype(dt)
    b = rng.standard_normal((128, 512)).astype(dt)
    got = trnsim.simulate_kernel(_matmul_twice, a, b)
    a64 = a.astype(np.float64)
    ref0 = a64[:, :128].T @ b.astype(np.float64)
    a2 = (a.astype(np.float32) * 2).astype(dt).astype(np.float64)
    ref1 = a2[:, :128].T @ b.astype(np.float64)
    tol = 1e-4 if dt is np.float32 else 2e-2
    np.testing.assert_allclose(got[0], ref0, rtol=tol, atol=tol * np.abs(ref0).max())
    np.testing.assert_allclose(got[1], ref1, rtol=tol, atol=tol * np.abs(ref1).max())


def test_shadow_view_matches_direct_conversion(rng):
    st, mem, arr, wm = memory.allocate((128, 1024), np.dtype(BF16), memory.SBUF, fill=0)
    arr[...] = rng.standard_normal((128, 1024)).astype(BF16)
    t = trnsim.core.tensor.Tensor(st, mem, arr, wm)
    for key in [(slice(None), slice(0, 128)), (slice(None), slice(512, 1024)), (slice(0, 64), slice(3, 900, 7))]:
        v = t.basic_view(key)
        a1 = v.read_fp32_shadowed()
        a2 = v.read_fp32_shadowed()  # second read: from the shadow
        np.testing.assert_array_equal(a1, arr[key].astype(np.float32))
        np.testing.assert_array_equal(a2, arr[key].astype(np.float32))
    assert mem.shadow is not None
    t.write(np.zeros((128, 1024), np.float32))
    assert mem.shadow is None


def test_cached_index_resolution_respects_bounds(rng):
    """The same subscript structure is resolved from the cache; a shifted one out of bounds still raises."""

    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.load(a)
        i_p = nl.arange(128)[:, None]
        i_f = nl.arange(64)[None, :]
        acc = nl.zeros((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        for j in nl.sequential_range(3):
            acc[i_p, i_f] = nl.add(acc[i_p, i_f], t[i_p, j * 64 + i_f])  # j = 2 is out of bounds
        nl.store(out, acc)
        return out

    with pytest.raises(NkiError) as ei:
        trnsim.simulate_kernel(k, rng.standard_normal((128, 128)).astype(np.float32))
    assert "out of bounds" in str(ei.value) or ei.value.code.startswith("err_")


def test_timing_only_then_full_run_of_the_same_kernel(rng):
    """Index resolutions cached in a timing-only run (no written-state arrays) must not leak into a full run."""
    from trnsim.kernels.matmul import matmul_tiled

    a = rng.standard_normal((256, 256)).astype(np.float32)
    b = rng.standard_normal((256, 512)).astype(np.float32)
    matmul_tiled.launch(a, b, numerics=False)
    got, _ = matmul_tiled.launch(a, b)
    np.testing.assert_allclose(got, a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


def test_uninitialised_read_still_reported_after_full_writes(rng):
    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        x = nl.load(a)
        t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        t[:, 0:32] = nl.copy(x[:, 0:32])
        nl.store(out, nl.add(t, x))  # reads t[:, 32:64], never written
        return out

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = trnsim.simulate_kernel(k, rng.standard_normal((128, 64)).astype(np.float32))
    assert any(issubclass(x.category, NkiWarning) and "never written" in str(x.message) for x in w)
    assert np.isnan(got[:, 32:]).all() and not np.isnan(got[:, :32]).any()


def test_masked_results_keep_their_poison(rng):
    """Unmasked results skip the poison fill (their instruction writes every element); masked ones keep it."""

    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        x = nl.load(a)
        i_p = nl.arange(128)[:, None]
        i_f = nl.arange(64)[None, :]
        y = nl.exp(x[i_p, i_f], mask=(i_f < 32))
        nl.store(out, y)
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = trnsim.simulate_kernel(k, rng.standard_normal((128, 64)).astype(np.float32))
    assert np.isnan(got[:, 32:]).all()
    assert np.isfinite(got[:, :32]).all()


def test_region_fast_paths_equal_the_general_computation():
    for shape, pdim in [((128, 512), 0), ((4, 128, 64), 1), ((1, 7), 0), ((300,), 0)]:
        buf = memory.SBUF if len(shape) > 1 and shape[pdim] <= 128 else memory.HBM
        st, mem, arr, wm = memory.allocate(shape, np.dtype(np.float32), buf, pdim=pdim)
        t = trnsim.core.tensor.Tensor(st, mem, arr, wm)
        assert t.region() == memory.region(arr, st)
        if arr.ndim == 2:
            v = t.basic_view((slice(1, None), slice(2, 5)))
            assert v.region() == memory.region(v.array, st)


def test_source_locations_hash_and_pickle():
    a = SourceLoc("f.py", 3, "k")
    b = pickle.loads(pickle.dumps(a))
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1


def test_launch_restores_host_settings(rng):
    before = gc.get_threshold()
    blas = memory._openblas()
    threads = blas[1]() if blas else None
    trnsim.simulate_kernel(_matmul_twice, rng.standard_normal((128, 256)).astype(np.float32),
                           rng.standard_normal((128, 512)).astype(np.float32))
    assert gc.get_threshold() == before
    if blas:
        assert blas[1]() == threads


def test_basic_view_offsets_match_the_data_pointer():
    """Views made by basic indexing carry their byte offset (so their box needs no pointer lookup); it must be the
    offset NumPy itself gives, for every kind of integer / slice key, and the boxes must not change."""
    import random

    from trnsim.core.memory import SBUF, Storage, region
    from trnsim.core.tensor import Tensor

    st = Storage(np.zeros((7, 9, 5), dtype=np.float32), SBUF, written=np.zeros((7, 9, 5), dtype=np.uint8))
    mem = st.take_mem()
    whole = Tensor(st, mem, mem.data, mem.written)
    base = mem.data.__array_interface__["data"][0]
    rnd = random.Random(0)

    def key_part(n):
        if rnd.random() < 0.3:
            return rnd.randrange(-n, n)
        return slice(
            rnd.choice([None, -2 * n, -3, 0, 2, n]), rnd.choice([None, -1, 1, 3, n, 3 * n]), rnd.choice([None, 1, 2, -1, -3])
        )

    checked = 0
    for _ in range(3000):
        key = tuple(key_part(n) for n in mem.data.shape[: rnd.randint(1, 3)])
        view = whole.basic_view(key)
        if view.array.size == 0:
            continue
        want = view.array.__array_interface__["data"][0] - base
        assert view._off == want, key
        assert view.region() == region(view.array, st, None), key
        sub = view.basic_view((slice(None),) * view.array.ndim)  # a view of a view keeps the offset
        assert sub._off == want
        checked += 1
    assert checked > 1000


def test_broadcast_views_built_on_the_storage_match_numpy():
    """`Tensor.broadcast` builds the read-only view straight on the storage data when the view's offset is known;
    it must equal np.broadcast_to (values, shape, read-only) and keep the view's box."""
    import random

    from trnsim.core.memory import SBUF, Storage
    from trnsim.core.tensor import Tensor

    st = Storage(np.arange(6 * 8 * 5, dtype=np.float32).reshape(6, 8, 5), SBUF)
    mem = st.take_mem()
    whole = Tensor(st, mem, mem.data, None)
    rnd = random.Random(1)
    checked = 0
    for _ in range(2000):
        key = tuple(rnd.choice([slice(None), slice(1, 2), slice(0, 3), slice(2, 3)]) for _ in range(3))
        view = whole.basic_view(key)
        shape = tuple(rnd.choice([n, 4, 7]) if n == 1 else n for n in view.shape)
        if rnd.random() < 0.3:
            shape = (rnd.choice([1, 3]),) + shape
        want = np.broadcast_to(view.array, shape)
        got = view.broadcast(shape)
        assert got._off is not None
        np.testing.assert_array_equal(got.array, want)
        assert not got.array.flags.writeable
        assert got.region() == view.region()  # broadcasting repeats the same bytes
        checked += 1
    assert checked == 2000
    with pytest.raises(ValueError):
        whole.basic_view((slice(0, 2),)).broadcast((3, 8, 5))


def test_resolution_moved_to_other_constants_equals_a_fresh_resolution():
    """A cached resolution of `t[c0 + a*i, c1 + b*j]` is moved to other constants by shifting its start; the view
    (shape, strides, data pointer, written-state view, box) must equal resolving the subscript from scratch, for
    random grids, coefficients, constants and mask boxes, and out-of-range constants must still raise."""
    import random
    import sys

    from trnsim.core.context import Run, activate
    from trnsim.core.errors import NkiIndexError
    from trnsim.core.memory import SBUF, allocate
    from trnsim.frontend.legacy.indexing import MaskRanges
    from trnsim.frontend.legacy.tensor import LegacyTensor

    tmod = sys.modules["trnsim.frontend.legacy.tensor"]
    rnd = random.Random(7)

    def resolve(base, key, ranges):
        return tmod.resolve_access(base, key, ranges, [])[0]

    checked = raised = 0
    with activate(Run("trn2")):
        for _ in range(300):
            rows, cols = rnd.choice([(128, 96), (64, 200), (128, 512)])
            st, mem, arr, wm = allocate((rows, cols), np.dtype(np.float32), SBUF)
            base = LegacyTensor(st, mem, arr, wm)
            np_, nf = rnd.randint(1, min(rows, 32)), rnd.randint(1, 40)
            g = nl.mgrid[0:np_, 0:nf]
            a, b = rnd.choice([1, 1, 2]), rnd.choice([1, 1, 3, -1])
            ranges = {}
            if rnd.random() < 0.4:
                lo = rnd.randint(0, nf - 1)
                ranges = MaskRanges({g.x.terms and next(iter(g.x.terms)): (lo, rnd.randint(lo + 1, nf))})

            def key(c0, c1, g=g, a=a, b=b):
                return (g.p * a + c0, g.x * b + c1)

            c0, c1 = rnd.randint(0, 8), rnd.randint(40, 60)
            try:
                first = resolve(base, key(c0, c1), ranges)  # cached under the constant-free key
            except NkiIndexError:
                continue
            for _ in range(5):
                d0, d1 = rnd.randint(-4, 40), rnd.randint(-30, 120)
                tmod._RESOLVED.clear()
                try:
                    fresh = resolve(base, key(d0, d1), ranges)
                except NkiIndexError:
                    fresh = None
                tmod._RESOLVED.clear()
                resolve(base, key(c0, c1), ranges)
                try:
                    moved = resolve(base, key(d0, d1), ranges)  # from the cached recipe, shifted
                except NkiIndexError:
                    moved = None
                if fresh is None:
                    assert moved is None
                    raised += 1
                    continue
                assert moved.array.shape == fresh.array.shape and moved.array.strides == fresh.array.strides
                assert moved.array.__array_interface__["data"] == fresh.array.__array_interface__["data"]
                assert moved.wmask.__array_interface__["data"] == fresh.wmask.__array_interface__["data"]
                assert moved.region() == fresh.region()
                checked += 1
            assert first is not None
    assert checked > 300 and raised > 50


@pytest.mark.parametrize("poison, track", [(True, True), (False, True), (False, False)])
def test_result_tile_allocation_matches_the_general_one(poison, track):
    """`allocate_tile` (every instruction's result tile) must give the same storage and arrays as `allocate`."""
    from trnsim.core.memory import SBUF, Storage, allocate, allocate_tile

    for shape, dt in (((128, 4), np.float32), ((64, 3, 5), BF16), ((1, 1), np.int32)):
        dt = np.dtype(dt)
        a = allocate(shape, dt, SBUF, name="t", core=1, fill="poison" if poison else "empty", track_writes=track)
        b = allocate_tile(shape, dt, SBUF, "t", None, 1, poison, track)
        for slot in Storage.__slots__:
            if slot in ("id", "_mem", "__weakref__", "new_mem", "layout"):
                continue
            assert getattr(a[0], slot) == getattr(b[0], slot), slot
        assert a[0].layout is None and b[0].layout is not None  # (the shared facts compared above come from it)
        assert a[0].mem is a[1] and b[0].mem is b[1] and b[0].new_mem is None
        assert a[2].shape == b[2].shape and a[2].dtype == b[2].dtype and a[2].flags.c_contiguous == b[2].flags.c_contiguous
        if poison:
            np.testing.assert_array_equal(a[2].view(np.uint8), b[2].view(np.uint8))
        assert (a[3] is None) == (b[3] is None)
        if a[3] is not None:
            np.testing.assert_array_equal(a[3], b[3])
        for name in ("full", "shadow", "hits"):
            assert getattr(a[1], name) == getattr(b[1], name)


def test_small_and_large_access_logs_find_the_same_overlaps():
    """The row-by-row check of short access logs and the vectorised one of long logs report the same rows."""
    from trnsim.core.context import ACCUM, READ, WRITE, _AccessLog
    from trnsim.core.instruction import Access

    rng = np.random.default_rng(7)
    st, mem, arr, wm = memory.allocate((128, 64), np.dtype(np.float32), memory.SBUF, fill=0)
    whole = trnsim.core.tensor.Tensor(st, mem, arr, wm)

    def random_access() -> Access:
        p0, f0 = int(rng.integers(0, 120)), int(rng.integers(0, 60))
        v = whole.basic_view((slice(p0, p0 + int(rng.integers(1, 9))), slice(f0, f0 + int(rng.integers(1, 5)))))
        return Access(v)

    for _ in range(50):
        n = int(rng.integers(1, 30))
        small, large = _AccessLog(), _AccessLog()
        for _ in range(n):
            acc, it, kind = random_access(), int(rng.integers(0, 4)), int(rng.choice([READ, WRITE, ACCUM]))
            small.add(it, kind, acc, None, SourceLoc("f.py", 1))
            large.add(it, kind, acc, None, SourceLoc("f.py", 1))
        large.boxes  # noqa: B018 - builds the array: the log now takes the vectorised path
        probe, it, kind = random_access(), int(rng.integers(0, 4)), int(rng.choice([READ, WRITE, ACCUM]))
        assert small.overlapping(it, kind, probe) == large.overlapping(it, kind, probe)


def test_reused_subscript_views_follow_the_tile(rng):
    """`tiles[k][i.p, i.x]` with the same index objects reuses the tile's last view; other tiles, other subscripts
    and writes between the reads still give the right values."""

    def k(a):
        out = nl.ndarray((3, 128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
        i = nl.mgrid[0:128, 0:64]
        j = nl.mgrid[0:128, 0:64]
        tiles = [nl.load(a[t]) for t in range(2)]
        for r in nl.sequential_range(3):
            s = nl.add(tiles[r % 2][i.p, i.x], tiles[(r + 1) % 2][j.p, j.x])
            tiles[0][i.p, i.x] = nl.multiply(tiles[0][i.p, i.x], 2.0)
            nl.store(out[r], s)
        return out

    a = rng.standard_normal((2, 128, 64)).astype(np.float32)
    got = trnsim.simulate_kernel(k, a)
    t0, t1 = a[0].astype(np.float64), a[1].astype(np.float64)
    ref = []
    for r in range(3):
        ref.append((t0 if r % 2 == 0 else t1) + (t1 if r % 2 == 0 else t0))
        t0 = t0 * 2
    np.testing.assert_allclose(got, np.stack(ref), rtol=1e-6)


def test_index_expression_assignments_of_a_whole_tile_match_plain_ones(rng):
    """`t[i.p, i.x] = fresh` takes the `t[...] = fresh` path only when the subscript selects all of t in order;
    partial, stepped and offset subscripts still go through the general path, with the same values as NumPy."""

    def k(a):
        out = nl.ndarray((4, 128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
        whole = nl.mgrid[0:128, 0:64]
        part = nl.mgrid[0:128, 0:32]
        step = nl.mgrid[0:64, 0:32]
        for r in nl.affine_range(4):
            t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
            t[...] = nl.zeros((128, 64), dtype=nl.float32, buffer=nl.sbuf)
            if r == 0:
                t[whole.p, whole.x] = nl.exp(nl.load(a))
            elif r == 1:
                t[part.p, part.x] = nl.exp(nl.load(a[:, 0:32]))
            elif r == 2:
                t[part.p, 32 + part.x] = nl.exp(nl.load(a[:, 0:32]))
            else:
                t[2 * step.p, 2 * step.x] = nl.exp(nl.load(a[0:64, 0:32]))
            nl.store(out[r], t)
        return out

    a = rng.standard_normal((128, 64)).astype(np.float32)
    got = trnsim.simulate_kernel(k, a)
    e = np.exp(a.astype(np.float64))
    ref = np.zeros((4, 128, 64))
    ref[0] = e
    ref[1][:, :32] = e[:, :32]
    ref[2][:, 32:] = e[:, :32]
    ref[3][0:128:2, 0:64:2] = e[0:64, 0:32]
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)

    def loads(key_kind):
        def k2(a):
            out = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
            i = nl.mgrid[0:128, 0:64]
            t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
            if key_kind == "exprs":
                t[i.p, i.x] = nl.load(a)
            else:
                t[...] = nl.load(a)
            nl.store(out, t)
            return out

        nki.simulate_kernel(k2, a)
        return [(ins.opcode, [(w.p_lo, w.p_hi, w.f_lo, w.f_hi) for w in ins.writes]) for ins in trnsim.last_launch().stream]

    assert loads("exprs") == loads("plain")

    def transposed(a):
        """A subscript that selects every element of a square tile, but not in order: not the `t[...]` path."""
        out = nl.ndarray((128, 128), dtype=nl.float32, buffer=nl.shared_hbm)
        i = nl.mgrid[0:128, 0:128]
        t = nl.ndarray((128, 128), dtype=nl.float32, buffer=nl.sbuf)
        t[i.x, i.p] = nl.exp(nl.load(a))
        nl.store(out, t)
        return out

    sq = rng.standard_normal((128, 128)).astype(np.float32)
    np.testing.assert_allclose(trnsim.simulate_kernel(transposed, sq), np.exp(sq.astype(np.float64)).T, rtol=1e-6)


def test_plain_loads_match_the_general_path(rng):
    """`nl.load(view)` without mask or cast (fast path) records the same instruction and values as the same load
    through the general path (forced here by passing the source dtype explicitly)."""

    def k(a, explicit):
        out = nl.ndarray((2, 128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        i = nl.mgrid[0:128, 0:64]
        for r in nl.affine_range(2):
            if explicit:
                x = nl.load(a[r * 128 + i.p, i.x], dtype=a.dtype)
                y = nl.load(a[r * 128 : (r + 1) * 128, 64:128], dtype=a.dtype)
            else:
                x = nl.load(a[r * 128 + i.p, i.x])
                y = nl.load(a[r * 128 : (r + 1) * 128, 64:128])
            nl.store(out[r], nl.add(x, y))
        return out

    a = rng.standard_normal((256, 128)).astype(BF16)
    records = []
    for explicit in (False, True):
        got = trnsim.simulate_kernel(k, a, explicit)
        ref = a[:, :64].astype(np.float32) + a[:, 64:].astype(np.float32)
        np.testing.assert_array_equal(got.reshape(256, 64), ref.astype(BF16))
        records.append([(ins.opcode, ins.engine, str(ins.in_dtype), str(ins.out_dtype),
                         [(x.storage.buffer.kind, x.storage.shape, x.p_lo, x.p_hi, x.f_lo, x.f_hi) for x in ins.reads + ins.writes])
                        for ins in trnsim.last_launch().stream])
    assert records[0] == records[1]


def test_plain_matmuls_match_the_general_path(rng):
    """`nl.matmul(x, y, transpose_x=True)` of plain SBUF tiles (fast path) records the same instructions and values
    as the same call through the general path (forced by an always-true mask)."""

    def k(a, b, general):
        out = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
        i = nl.mgrid[0:128, 0:128]
        x = nl.load(a)
        y = nl.load(b)
        ps = nl.zeros((128, 512), dtype=nl.float32, buffer=nl.psum)
        for _ in nl.affine_range(2):
            if general:
                ps[...] += nl.matmul(x[i.p, i.x], y, transpose_x=True, mask=True)
            else:
                ps[...] += nl.matmul(x[i.p, i.x], y, transpose_x=True)
        nl.store(out, nl.copy(ps))
        return out

    a = rng.standard_normal((128, 128)).astype(BF16)
    b = rng.standard_normal((128, 512)).astype(BF16)
    ref = 2 * (a.astype(np.float64).T @ b.astype(np.float64))
    records = []
    for general in (False, True):
        got = trnsim.simulate_kernel(k, a, b, general)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)
        records.append([(ins.opcode, ins.engine, ins.flops, dict(ins.attrs, stationary_id=None, src_name=None),
                         [(x.storage.buffer.kind, x.storage.shape, x.p_lo, x.p_hi, x.f_lo, x.f_hi, x.accumulate)
                          for x in ins.reads + ins.writes])
                        for ins in trnsim.last_launch().stream])
    assert records[0] == records[1]


def test_sliced_views_match_the_general_subscript_path():
    """`t[a:b, c:d]` (one-pass `_sliced`) gives the view, byte offset, written-state view and bounds errors of the
    general subscript path, on whole tensors and on views of them, for in- and out-of-bounds slices."""
    import random

    from trnsim.core.errors import NkiIndexError
    from trnsim.core.memory import HBM, SBUF, Storage
    from trnsim.frontend.legacy.tensor import LegacyTensor, _check_basic, _keep_free_dims

    rnd = random.Random(1)
    checked = rejected = 0
    for buf, shape in ((HBM, (40, 24)), (SBUF, (16, 6, 10)), (HBM, (9,))):
        st = Storage(np.zeros(shape, dtype=np.float32), buf, written=np.zeros(shape, dtype=np.uint8))
        mem = st.take_mem()
        whole = LegacyTensor(st, mem, mem.data, mem.written)
        for parent in (whole, whole.basic_view((slice(1, None),) * len(shape))):
            for _ in range(400):
                n = parent.array.shape
                key = tuple(
                    slice(rnd.choice([None, -1, 0, 1, m // 2, m, m + 1]), rnd.choice([None, -1, 0, 2, m, m + 2]),
                          rnd.choice([None, None, None, 1, 2]))
                    for m in n[: rnd.randint(1, len(n))]
                )
                fast = parent._sliced(key)
                try:
                    _check_basic(parent.shape, key, st.name)
                except NkiIndexError:
                    assert fast is None, key  # out of bounds: left to the general path, which raises
                    with pytest.raises(NkiIndexError):
                        parent[key]
                    rejected += 1
                    continue
                if fast is None:  # (a step: not a fast-path key)
                    assert any(k.step is not None for k in key)
                    continue
                slow = parent.basic_view(_keep_free_dims(parent, key))
                assert type(fast) is type(slow) and fast.array.shape == slow.array.shape
                assert fast.array.strides == slow.array.strides
                assert fast.array.__array_interface__["data"] == slow.array.__array_interface__["data"]
                assert fast.wmask.__array_interface__["data"] == slow.wmask.__array_interface__["data"]
                assert fast._off == slow._off and fast.region() == slow.region(), key
                again = parent._sliced(key)  # (a two-slice key: the view kept by its bounds)
                assert again is not fast and again.array.shape == fast.array.shape and again.region() == fast.region()
                assert again._sig == fast._sig and not again._inplace_done
                checked += 1
    assert checked > 300 and rejected > 300, (checked, rejected)


def test_fresh_tiles_take_their_signature_from_the_layout():
    """A new plain tile gets its region and check signature from its layout: the same values a tile computes for
    itself, per dtype and memory, with tfloat32 tiles kept apart from float32 ones."""
    from trnsim.core.memory import TileLayout
    from trnsim.isa.common import signature

    seen = {}

    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        for it in nl.sequential_range(2):
            for dt, buf in ((nl.float32, nl.sbuf), (nl.tfloat32, nl.sbuf), (nl.bfloat16, nl.sbuf), (nl.float32, nl.psum)):
                t = nl.ndarray((128, 64), dtype=dt, buffer=buf)
                assert isinstance(t.storage.layout, TileLayout)
                preset = (t._sig, t._reg)
                layout, t.storage.layout, t._sig, t._reg = t.storage.layout, None, None, None  # compute it afresh
                fresh = (signature(t), t.region())
                t.storage.layout, t._sig = layout, None
                assert signature(t) == fresh[0]  # (fills the layout's entry on the first pass)
                assert preset[1] == fresh[1]
                if dt is nl.tfloat32:
                    assert preset[0] is None  # (tf32 is a per-storage flag: never taken from the layout)
                else:
                    assert preset[0] == fresh[0] if it else preset[0] in (None, fresh[0])  # (filled in pass 0)
                seen.setdefault((str(dt), buf.name), set()).add(fresh[0])
        nl.store(out, nl.load(a))
        return out

    trnsim.simulate_kernel(k, np.ones((128, 64), np.float32))
    assert all(len(s) == 1 for s in seen.values())
    assert seen[("float32", "sbuf")] != seen[("tfloat32", "sbuf")] != seen[("float32", "psum")]


def test_timing_only_tiles_of_one_layout_share_an_array():
    """A timing-only run gives every plain tile of one layout the same (never read or written) array: the storages
    stay distinct and every view keeps the box it has in a full simulation."""
    seen = {}

    def k(a, numerics):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        for i in nl.affine_range(3):
            t = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
            t[...] = nl.load(a)
            u = nl.exp(t[0:64, 8:24])
            seen.setdefault(numerics, []).append(
                (t.storage, t.mem, t[0:64, 8:24].region(), t[i : i + 5, 2:3].region(), u.region(), u.mem))
        nl.store(out, value=t)
        return out

    a = np.ones((128, 64), np.float32)
    trnsim.simulate_kernel(k, a, True)
    trnsim.estimate(k, a, False, numerics=False)
    full, timing_only = seen[True], seen[False]
    assert [r[2:5] for r in full] == [r[2:5] for r in timing_only]
    assert len({id(r[0]) for r in timing_only}) == 3  # distinct storages...
    assert len({id(r[1]) for r in timing_only}) == 1 and len({id(r[5]) for r in timing_only}) == 1  # ...one array
    assert len({id(r[1]) for r in full}) == 3 and timing_only[0][1].written is None


def test_loads_and_matmuls_with_masks_still_go_through_the_masked_off_handling(rng):
    """`nl.load` / `nl.matmul` take their unmasked fast paths themselves; a mask (always false, a predicate that
    holds nowhere, or one that holds) still goes through the masked-off handling: nothing recorded for a dead call."""
    from trnsim.frontend.legacy.lowering import DeadTile

    def k(a, b):
        out = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
        i = nl.arange(128)[:, None]
        x = nl.load(a)
        y = nl.load(b)
        n0 = len(trnsim.core.context.current().stream)
        assert isinstance(nl.load(a, mask=False), DeadTile)
        assert isinstance(nl.load(b, mask=(i < 0)), DeadTile)
        assert isinstance(nl.matmul(x, y, transpose_x=True, mask=False), DeadTile)
        assert len(trnsim.core.context.current().stream) == n0  # (dead calls record nothing)
        ps = nl.matmul(x, y, transpose_x=True, mask=True)
        nl.store(out, nl.copy(ps))
        return out

    a = rng.standard_normal((128, 128)).astype(np.float32)
    b = rng.standard_normal((128, 512)).astype(np.float32)
    got = trnsim.simulate_kernel(k, a, b)
    np.testing.assert_allclose(got, a.astype(np.float64).T @ b.astype(np.float64), rtol=1e-4, atol=1e-3)
