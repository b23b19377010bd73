"""Spill policy of timing-only runs whose live tiles exceed SBUF (`timing.model.plan_spills`)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import trnsim
import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.frontend.legacy.typing import tensor
from trnsim.timing.arch import get_arch
from trnsim.timing.model import plan_spills

F32 = np.float32
TILE = 4096  # bytes per partition of every [128, 1024] fp32 tile
STEPS = 4


def _step_tiles(y, k):
    """One step's temporaries: b (a load), c, d; at `d` the tiles a, acc, b, c, d are live (the SBUF peak)."""
    b = nl.load(y[k])
    c = nisa.tensor_tensor(b, b, op=nl.multiply)
    d = nisa.tensor_tensor(c, b, op=nl.add)
    return d


@nki.jit
def clean_and_dirty(x, y):
    """`a` is loaded once and only read; `acc` is rewritten every step; b, c, d are per-step temporaries. With
    room for 4.25 tiles the 5 tiles live at `d` overflow SBUF by 0.75 tile each step, and `a` (next use farthest
    away) is the victim."""
    out = nl.ndarray((128, 1024), dtype=x.dtype, buffer=nl.shared_hbm)
    a = nl.load(x)
    acc = nl.zeros((128, 1024), dtype=x.dtype)
    for k in range(STEPS):
        d = _step_tiles(y, k)
        acc[...] = nisa.tensor_tensor(acc, d, op=nl.add)
        acc[...] = nisa.tensor_tensor(acc, a, op=nl.add)
    nl.store(out, value=acc)
    return out


# every spill option off: whole tiles, saved at every eviction, Belady victims, reloads as early as possible
PLAIN = {"spill_whole_tiles": True, "spill_reuse_saved_copies": False, "spill_reload_waits_for_room": False,
         "spill_drop_clean_tiles": False, "spill_reload_on_demand": False}


def _run(kernel=clean_and_dirty, arch=None, **changes):
    """Timing-only estimate of `kernel` on `arch` (default: trn1 with room for 4.25 tiles and the PLAIN spill
    policy updated by `changes`)."""
    if arch is None:
        arch = get_arch("trn1").variant("tiny_sbuf", sbuf_usable_bytes_per_partition=4 * TILE + TILE // 4,
                                        **{**PLAIN, **changes})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = trnsim.estimate(kernel, tensor[[128, 1024], F32], tensor[[STEPS, 128, 1024], F32], target=arch)
    return est, arch


def _kinds(est):
    return [(s["kind"], s["tensor"], s["bytes"] // 128) for s in est.extra["spills"]]


def test_whole_tiles_saved_again_at_every_eviction_without_options():
    est, _ = _run()
    assert _kinds(est) == [("spill", "a", TILE), ("reload", "a", TILE)] * STEPS
    assert est.extra["spill_save_bytes"] == est.extra["spill_reload_bytes"] == STEPS * 128 * TILE


def test_unmodified_tile_keeps_its_hbm_copy():
    est, _ = _run(spill_reuse_saved_copies=True)
    # `a` is never written after its first save: later evictions only reload it
    assert _kinds(est) == [("spill", "a", TILE)] + [("reload", "a", TILE)] * STEPS
    assert est.extra["spill_save_bytes"] == 128 * TILE
    assert est.extra["spill_reload_bytes"] == STEPS * 128 * TILE


def test_only_overflowing_bytes_move_and_reloads_wait_for_room():
    est, arch = _run(spill_reuse_saved_copies=True, spill_whole_tiles=False, spill_reload_waits_for_room=True)
    over = 5 * TILE - arch.sbuf_usable_bytes_per_partition
    assert _kinds(est) == [("spill", "a", over)] + [("reload", "a", over)] * STEPS
    # each reload waits for the end of the instruction that had no room for `a` (the step's peak, `d`)
    stream = est.extra["launch"].stream
    ext, orig_pos, extra = plan_spills(stream, arch)
    peaks = [orig_pos[p] for p, ins in enumerate(stream) if ins.writes and ins.writes[0].storage.name == "d"]
    reloads = [p for p, ins in enumerate(ext) if ins.attrs.get("spill") == "reload"]
    assert len(reloads) == len(peaks) == STEPS
    for r, peak in zip(reloads, peaks):
        assert peak in extra[r] and peak < r
    t = est.timings
    for s, k in zip(est.extra["spills"][1:], range(STEPS)):
        assert s["start"] >= t[stream.index(ext[peaks[k]])].end - 1e-6


@pytest.mark.parametrize("changes", [{}, {"spill_reuse_saved_copies": True, "spill_whole_tiles": False}])
def test_fitting_stream_plans_no_spills(changes):
    est, arch = _run(arch=get_arch("trn1").variant("roomy", **changes))
    assert plan_spills(est.extra["launch"].stream, arch) is None
    assert "spills" not in est.extra


@nki.jit
def clean_far_dirty_farther(x, y):
    """At the peak (`d`: a, acc, b, c, d live) the accumulator's next use is farther away than that of `a`, an
    unmodified load of the input: Belady evicts `acc` (a save and a reload every step), the compiler drops `a`
    (only a reload from `x`)."""
    out = nl.ndarray((128, 1024), dtype=x.dtype, buffer=nl.shared_hbm)
    a = nl.load(x)
    acc = nl.zeros((128, 1024), dtype=x.dtype)
    for k in range(STEPS):
        d = _step_tiles(y, k)
        e = nisa.tensor_tensor(d, a, op=nl.add)
        acc[...] = nisa.tensor_tensor(acc, e, op=nl.add)
    nl.store(out, value=acc)
    return out


def test_belady_evicts_the_dirty_accumulator_without_options():
    est, _ = _run(clean_far_dirty_farther)
    assert _kinds(est) == [("spill", "acc", TILE), ("reload", "acc", TILE)] * STEPS


def test_clean_tiles_are_dropped_first_and_never_saved():
    est, _ = _run(clean_far_dirty_farther, spill_drop_clean_tiles=True)
    # `a` holds only data of the read-only input x: dropped at each peak, reloaded from x, no save at all
    assert _kinds(est) == [("reload", "a", TILE)] * STEPS
    assert est.extra["spill_save_bytes"] == 0
    # in clean_and_dirty the victim `a` was the Belady choice anyway; now its first save is gone too
    est, _ = _run(spill_drop_clean_tiles=True)
    assert _kinds(est) == [("reload", "a", TILE)] * STEPS


def test_loaded_then_modified_tile_is_not_clean():
    @nki.jit
    def modified(x, y):
        out = nl.ndarray((128, 1024), dtype=x.dtype, buffer=nl.shared_hbm)
        a = nl.load(x)
        a[...] = nisa.tensor_tensor(a, a, op=nl.add)  # no longer a copy of x
        acc = nl.zeros((128, 1024), dtype=x.dtype)
        for k in range(STEPS):
            d = _step_tiles(y, k)
            acc[...] = nisa.tensor_tensor(acc, d, op=nl.add)
            acc[...] = nisa.tensor_tensor(acc, a, op=nl.add)
        nl.store(out, value=acc)
        return out

    est, _ = _run(modified, spill_drop_clean_tiles=True)
    assert _kinds(est) == [("spill", "a", TILE), ("reload", "a", TILE)] * STEPS


def test_reloads_on_demand_wait_for_the_reading_engines_previous_instruction():
    changes = {"spill_drop_clean_tiles": True, "spill_reload_on_demand": True}
    est, arch = _run(clean_far_dirty_farther, **changes)
    stream = est.extra["launch"].stream
    ext, orig_pos, extra = plan_spills(stream, arch)
    reloads = [p for p, ins in enumerate(ext) if ins.attrs.get("spill") == "reload"]
    assert len(reloads) == STEPS
    t = est.timings
    for r, s in zip(reloads, est.extra["spills"]):
        use = ext[r + 1]  # the reload sits just before the instruction that reads `a` (e)
        assert any(acc.storage.name == "a" for acc in use.reads)
        k = stream.index(use)
        prev = max(j for j in range(k) if stream[j].engine == use.engine and stream[j].core == use.core)
        assert orig_pos[prev] in extra[r]
        assert s["start"] >= t[prev].end - 1e-6
    # without the option the reload of `a` may be prefetched: the kernel is no slower
    early, _ = _run(clean_far_dirty_farther, spill_drop_clean_tiles=True)
    assert early.total_ns <= est.total_ns
