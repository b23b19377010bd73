"""LayerNorm over the last axis (legacy NKI API), the two versions of AWS's layernorm tutorial.

out = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta, x [R, D] (rows tiled by 128 partitions, ragged last
tile masked), gamma and beta [D]; fp32 statistics.

* `layernorm`     nki.language only: mean, mean of squares (var = E[x^2] - E[x]^2), rsqrt, multiply / add.
* `layernorm_bn`  nki.isa: the Vector engine's bn_stats over 512-element slices of each row (the last slice
                  masked when D is not a multiple of 512) and one bn_aggr give mean and variance; the shift
                  and scale are one two-operator tensor_scalar.
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl


def _load_params(gamma, beta, D, P):
    """gamma and beta as [1, D] tiles broadcast over the partitions (loaded once, reused by every row tile)."""
    i_w = nl.arange(1)[:, None]
    i_f = nl.arange(D)[None, :]
    gamma_sb = nl.load(gamma.reshape((1, D))[i_w, i_f])
    beta_sb = nl.load(beta.reshape((1, D))[i_w, i_f])
    return gamma_sb.broadcast_to((P, D)), beta_sb.broadcast_to((P, D))


@nki.jit
def layernorm(x, gamma, beta, eps=1e-5):
    """LayerNorm with nki.language operations."""
    R, D = x.shape
    assert tuple(gamma.shape) == (D,) and tuple(beta.shape) == (D,), "gamma / beta must have shape (D,)"
    out = nl.ndarray((R, D), dtype=x.dtype, buffer=nl.shared_hbm)
    P = nl.tile_size.pmax
    i_p = nl.arange(P)[:, None]
    i_f = nl.arange(D)[None, :]
    gamma_b, beta_b = _load_params(gamma, beta, D, P)

    for i in nl.affine_range((R + P - 1) // P):
        rows = i * P + i_p < R
        x_sb = nl.load(x[i * P + i_p, i_f], mask=rows)
        mean = nl.mean(x_sb, axis=[1], keepdims=True, dtype=nl.float32, mask=rows)
        mean_sq = nl.mean(nl.square(x_sb, dtype=nl.float32, mask=rows), axis=[1], keepdims=True, mask=rows)
        var = nl.subtract(mean_sq, nl.multiply(mean, mean, mask=rows), mask=rows)
        rstd = nl.rsqrt(nl.add(var, eps, mask=rows), mask=rows)
        normed = nl.multiply(nl.subtract(x_sb, mean, dtype=nl.float32, mask=rows), rstd, mask=rows)
        y = nl.add(nl.multiply(normed, gamma_b, mask=rows), beta_b, dtype=x.dtype, mask=rows)
        nl.store(out[i * P + i_p, i_f], value=y, mask=rows)
    return out


@nki.jit
def layernorm_bn(x, gamma, beta, eps=1e-5):
    """LayerNorm with bn_stats / bn_aggr statistics and a fused shift-and-scale."""
    R, D = x.shape
    assert tuple(gamma.shape) == (D,) and tuple(beta.shape) == (D,), "gamma / beta must have shape (D,)"
    out = nl.ndarray((R, D), dtype=x.dtype, buffer=nl.shared_hbm)
    P = nl.tile_size.pmax
    FMAX = nl.tile_size.bn_stats_fmax  # 512
    n_stats = (D + FMAX - 1) // FMAX
    i_p = nl.arange(P)[:, None]
    i_f = nl.arange(D)[None, :]
    i_bn = nl.arange(FMAX)[None, :]
    i_6 = nl.arange(6)[None, :]
    i_agg = nl.arange(6 * n_stats)[None, :]
    gamma_b, beta_b = _load_params(gamma, beta, D, P)

    for i in nl.affine_range((R + P - 1) // P):
        rows = i * P + i_p < R
        x_sb = nl.load(x[i * P + i_p, i_f], mask=rows)

        # (count, mean, count*var) of the even and odd elements of each 512-element slice
        stats = nl.ndarray((P, 6 * n_stats), dtype=nl.float32, buffer=nl.sbuf)
        for j in nl.affine_range(n_stats):
            stats[i_p, j * 6 + i_6] = nisa.bn_stats(
                x_sb[i_p, j * FMAX + i_bn], mask=rows & (j * FMAX + i_bn < D), dtype=nl.float32
            )
        mean_var = nisa.bn_aggr(stats[i_p, i_agg], mask=rows)
        mean = mean_var[i_p, 0]
        var = mean_var[i_p, 1]

        rstd = nl.rsqrt(nl.add(var, eps, mask=rows), mask=rows)
        # (x - mean) * rstd as one Vector instruction with two ALU operators
        normed = nisa.tensor_scalar(
            x_sb, op0=np.subtract, operand0=mean, op1=np.multiply, operand1=rstd, dtype=nl.float32, mask=rows
        )
        y = nl.add(nl.multiply(normed, gamma_b, mask=rows), beta_b, dtype=x.dtype, mask=rows)
        nl.store(out[i * P + i_p, i_f], value=y, mask=rows)
    return out


# ------------------------------------------------------------------------------------------------ self-test
def reference(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """float64 NumPy reference."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * np.asarray(gamma, np.float64) + np.asarray(beta, np.float64)


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-4), (ml_dtypes.bfloat16, 3e-2)):
        x = (rng.standard_normal((200, 700)) + 0.5).astype(dt)
        gamma = rng.uniform(0.5, 1.5, 700).astype(dt)
        beta = rng.standard_normal(700).astype(dt)
        ref = reference(x, gamma, beta)
        worst = 0.0
        for kern in (layernorm, layernorm_bn):
            got = nki.simulate_kernel(kern, x, gamma, beta).astype(np.float64)
            err = float(np.max(np.abs(got - ref) / (1 + np.abs(ref))))
            assert err < tol, f"{kern.__name__} ({np.dtype(dt).name}): error {err:.3g} >= {tol}"
            worst = max(worst, err)
        print(f"layernorm ({np.dtype(dt).name}): OK (max err |d|/(1+|ref|) {worst:.2e})")


if __name__ == "__main__":
    _check()
