"""Fused Mamba (selective state-space scan), the three kernels of AWS's fused_mamba tutorial (legacy NKI API).

Inputs in HBM (fp32 in the tutorial):

    delta [batch, channels, seq_len]     u [batch, channels, seq_len]     A [channels, state_size]
    B     [batch, state_size, seq_len]   C [batch, state_size, seq_len]

Output [batch, channels, seq_len]:

    out[b, c, t] = sum_s C[b, s, t] * h[b, c, s, t],
    h[b, c, s, t] = exp(delta[b, c, t] * A[c, s]) * h[b, c, s, t - 1] + delta[b, c, t] * B[b, s, t] * u[b, c, t]

Channels go on the partitions (tiles of 128), seq_len along the free axis, so that A[c, s] is a per-partition
scale of the Scalar engine's exp (steps 1 + 2 fused into one `activation`), B and C are partition-broadcast
rows, the recurrence over time is one `tensor_tensor_scan` on the Vector engine, and the sum over states
accumulates into an SBUF tile.

* `mamba_v1`: loops batch -> state -> channel tile; delta and u are reloaded for every state.
* `mamba_v2`: loops batch -> channel tile -> state; delta and u are loaded once per channel tile and reused
  by all states, and the accumulator shrinks to one [128, seq_len] tile per channel tile.
* `mamba_v3`: v2 plus tiling of seq_len (512 by default) inside the state loop, the scan carrying its last
  column from one seq tile to the next, and the per-state product in PSUM so the accumulation reads one PSUM
  and one SBUF operand.

The tutorial writes the state loop as an affine_range although every state adds into the same accumulator;
trnsim's strict race check rejects that loop-carried dependency, so the state loops here are
sequential_range loops (the instruction stream is the same).

Run this module to check all three against a float64 NumPy reference.
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl


def _dims(delta, A):
    batch, channels, seq_len = delta.shape
    state_size = A.shape[1]
    assert A.shape[0] == channels, f"A {A.shape} must have {channels} rows (one per channel)"
    assert channels % nl.tile_size.pmax == 0, f"channels={channels} must be a multiple of {nl.tile_size.pmax}"
    return batch, channels, seq_len, state_size


# ------------------------------------------------------------------------------------------------ v1
@nki.jit
def mamba_v1(delta, u, A, B, C):
    """Initial kernel: for every (batch, state, channel tile) load the operands and run steps 1-6."""
    batch, channels, seq_len, state_size = _dims(delta, A)
    P = nl.tile_size.pmax
    n_ctiles = channels // P
    out = nl.ndarray((batch, channels, seq_len), dtype=delta.dtype, buffer=nl.shared_hbm)

    for b in nl.affine_range(batch):
        # Running sum over states, one [P, seq_len] block per channel tile.
        acc = nl.zeros((n_ctiles, nl.par_dim(P), seq_len), dtype=delta.dtype)

        for s in nl.sequential_range(state_size):
            for ct in nl.affine_range(n_ctiles):
                c0 = ct * P
                delta_t = nl.load(delta[b, c0 : c0 + P, 0:seq_len])
                a_col = nl.load(A[c0 : c0 + P, s : s + 1])
                # Steps 1 + 2: exp(delta * A) in one Scalar-engine pass (A is a per-partition scale).
                dA = nisa.activation(op=nl.exp, data=delta_t, scale=a_col)

                u_t = nl.load(u[b, c0 : c0 + P, 0:seq_len])
                b_row = nl.load(B[b, s : s + 1, 0:seq_len])
                # Step 3: delta * u * B (B broadcast over the channel partitions).
                du = nisa.tensor_tensor(delta_t, u_t, op=nl.multiply)
                dBu = nisa.tensor_tensor(du, b_row.broadcast_to((P, seq_len)), op=nl.multiply)

                # Step 4: h[t] = dA[t] * h[t - 1] + dBu[t] along the free axis.
                h = nisa.tensor_tensor_scan(dA, dBu, initial=0, op0=np.multiply, op1=np.add)

                # Steps 5 + 6: multiply by C and add into the state sum.
                c_row = nl.load(C[b, s : s + 1, 0:seq_len])
                hC = nisa.tensor_tensor(h, c_row.broadcast_to((P, seq_len)), op=nl.multiply)
                acc[ct, 0:P, 0:seq_len] += hC

        for ct in nl.affine_range(n_ctiles):
            c0 = ct * P
            nl.store(out[b, c0 : c0 + P, 0:seq_len], acc[ct, 0:P, 0:seq_len])
    return out


# ------------------------------------------------------------------------------------------------ v2
@nki.jit
def mamba_v2(delta, u, A, B, C):
    """Loop reordering + fusion: channel tiles outside the state loop, delta / u loaded once per tile."""
    batch, channels, seq_len, state_size = _dims(delta, A)
    P = nl.tile_size.pmax
    n_ctiles = channels // P
    out = nl.ndarray((batch, channels, seq_len), dtype=delta.dtype, buffer=nl.shared_hbm)

    for b in nl.affine_range(batch):
        for ct in nl.affine_range(n_ctiles):
            c0 = ct * P
            acc = nl.zeros((nl.par_dim(P), seq_len), dtype=delta.dtype)
            # Reused by every state of this channel tile.
            delta_t = nl.load(delta[b, c0 : c0 + P, 0:seq_len])
            u_t = nl.load(u[b, c0 : c0 + P, 0:seq_len])

            for s in nl.sequential_range(state_size):
                a_col = nl.load(A[c0 : c0 + P, s : s + 1])
                dA = nisa.activation(op=nl.exp, data=delta_t, scale=a_col)

                b_row = nl.load(B[b, s : s + 1, 0:seq_len])
                du = nisa.tensor_tensor(delta_t, u_t, op=nl.multiply)
                dBu = nisa.tensor_tensor(du, b_row.broadcast_to((P, seq_len)), op=nl.multiply)

                h = nisa.tensor_tensor_scan(dA, dBu, initial=0, op0=np.multiply, op1=np.add)

                c_row = nl.load(C[b, s : s + 1, 0:seq_len])
                hC = nisa.tensor_tensor(h, c_row.broadcast_to((P, seq_len)), op=nl.multiply)
                acc[0:P, 0:seq_len] += hC

            nl.store(out[b, c0 : c0 + P, 0:seq_len], acc[0:P, 0:seq_len])
    return out


# ------------------------------------------------------------------------------------------------ v3
@nki.jit
def mamba_v3(delta, u, A, B, C, seq_tile=512):
    """v2 + seq_len tiling: per state, walk seq_len in tiles of `seq_tile`, carrying the scan state."""
    batch, channels, seq_len, state_size = _dims(delta, A)
    P = nl.tile_size.pmax
    n_ctiles = channels // P
    F = min(seq_tile, seq_len)
    assert seq_len % F == 0, f"seq_len={seq_len} must be a multiple of the seq tile {F}"
    n_stiles = seq_len // F
    out = nl.ndarray((batch, channels, seq_len), dtype=delta.dtype, buffer=nl.shared_hbm)

    for b in nl.affine_range(batch):
        for ct in nl.affine_range(n_ctiles):
            c0 = ct * P
            acc = nl.zeros((nl.par_dim(P), seq_len), dtype=delta.dtype)
            delta_t = nl.load(delta[b, c0 : c0 + P, 0:seq_len])
            u_t = nl.load(u[b, c0 : c0 + P, 0:seq_len])

            for s in nl.sequential_range(state_size):
                a_col = nl.load(A[c0 : c0 + P, s : s + 1])
                # The scan's last column, carried from one seq tile to the next.
                carry = nl.zeros((P, 1), dtype=delta.dtype)

                # The seq tiles depend on each other through `carry`: unrolled, in order.
                for st in nl.static_range(n_stiles):
                    t0 = st * F
                    dA = nisa.activation(op=nl.exp, data=delta_t[0:P, t0 : t0 + F], scale=a_col)

                    b_row = nl.load(B[b, s : s + 1, t0 : t0 + F])
                    du = nisa.tensor_tensor(delta_t[0:P, t0 : t0 + F], u_t[0:P, t0 : t0 + F], op=nl.multiply)
                    dBu = nisa.tensor_tensor(du, b_row.broadcast_to((P, F)), op=nl.multiply)

                    h = nisa.tensor_tensor_scan(dA, dBu, initial=carry, op0=np.multiply, op1=np.add)
                    carry[0:P, 0:1] = nl.copy(h[0:P, F - 1 : F])

                    c_row = nl.load(C[b, s : s + 1, t0 : t0 + F])
                    # The product goes to PSUM, so the accumulation reads one PSUM and one SBUF operand.
                    hC = nl.ndarray((P, F), dtype=delta.dtype, buffer=nl.psum)
                    hC[...] = nisa.tensor_tensor(h, c_row.broadcast_to((P, F)), op=nl.multiply)
                    acc[0:P, t0 : t0 + F] += hC

            nl.store(out[b, c0 : c0 + P, 0:seq_len], acc[0:P, 0:seq_len])
    return out


KERNELS = {"mamba_v1": mamba_v1, "mamba_v2": mamba_v2, "mamba_v3": mamba_v3}


# ------------------------------------------------------------------------------------------------ reference
def reference(delta, u, A, B, C) -> np.ndarray:
    """float64 NumPy reference of the selective scan (same layout as the kernels)."""
    delta, u, A, B, C = (np.asarray(x, dtype=np.float64) for x in (delta, u, A, B, C))
    batch, channels, seq_len = delta.shape
    dA = np.exp(delta[:, :, None, :] * A[None, :, :, None])  # [b, c, s, t]
    dBu = (delta * u)[:, :, None, :] * B[:, None, :, :]  # [b, c, s, t]
    h = np.zeros(dA.shape[:3], dtype=np.float64)
    out = np.zeros((batch, channels, seq_len), dtype=np.float64)
    for t in range(seq_len):
        h = dA[..., t] * h + dBu[..., t]
        out[:, :, t] = np.einsum("bcs,bs->bc", h, C[:, :, t])
    return out


def make_inputs(batch=1, channels=256, seq_len=512, state_size=16, dtype=np.float32, rng=None):
    """Random inputs in the ranges Mamba uses (delta > 0 small, A < 0: a decaying, stable scan)."""
    rng = rng if rng is not None else np.random.default_rng()
    delta = rng.uniform(0.01, 0.2, (batch, channels, seq_len)).astype(dtype)
    u = rng.standard_normal((batch, channels, seq_len)).astype(dtype)
    A = -rng.uniform(0.5, 2.0, (channels, state_size)).astype(dtype)
    B = rng.standard_normal((batch, state_size, seq_len)).astype(dtype)
    C = rng.standard_normal((batch, state_size, seq_len)).astype(dtype)
    return delta, u, A, B, C


def _check() -> None:
    args = make_inputs(batch=1, channels=256, seq_len=1024, state_size=4)
    ref = reference(*args)
    scale = float(np.abs(ref).max())
    for name, k in KERNELS.items():
        got = nki.simulate_kernel(k, *args)
        err = float(np.abs(got - ref).max()) / scale
        assert err < 1e-5, f"{name}: max relative error {err:.2e}"
        print(f"{name}: OK (max error {err:.2e} of max |out|)")


if __name__ == "__main__":
    _check()
