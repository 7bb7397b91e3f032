"""Bayesian layers with bfloat16 parameters: outputs with the right mean and variance.

``jax.random.normal`` in bfloat16 has 128 distinct values (mean −0.012, variance 0.994), so
noise drawn in bfloat16 biases every layer: the shared-sample layers' means, Flipout's and
local reparameterization's variances. The layers draw in float32 and cast
(``repgrad.nn._reparameterization.noise_dtype``). The inputs make every output one weight
(identity rows for dense, one-hot images for conv: each kernel element reaches exactly one output
of one example), so each replicate pools thousands of independent standardized outputs z; their
mean (exact 0) and mean square (exact 1) are checked at 5 standard errors over the replicates
(tests/_stats.py). Before the fix they were off by 8–38 SE (Flipout: the variance, 8 and 11).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

from repgrad import nn

R = 1000
BF16 = jnp.bfloat16
DENSE = {"reparameterization": nn.dense_reparameterization, "local": nn.dense_local_reparameterization,
         "flipout": nn.dense_flipout}
CONV = {"reparameterization": nn.conv2d_reparameterization, "local": nn.conv2d_local_reparameterization,
        "flipout": nn.conv2d_flipout}


def _posterior(params, key):
    """Zero means (so bfloat16 rounding of the mean cannot bias the check), varied scales (so
    the rounding of σ, σ² and sqrt(var) averages out), small bias scales."""
    k1, k2 = jax.random.split(key)
    rho = nn.softplus_inverse(jax.random.uniform(k1, params.kernel_rho.shape, minval=0.5, maxval=1.5))
    bias_rho = nn.softplus_inverse(jax.random.uniform(k2, params.bias_rho.shape, minval=0.02, maxval=0.05))
    return type(params)(jnp.zeros_like(params.kernel_loc), rho.astype(BF16), jnp.zeros_like(params.bias_loc),
                        bias_rho.astype(BF16))


def _check(layer, params, x, var, key):
    sd = jnp.sqrt(jnp.asarray(var, jnp.float32))

    def stats(k):
        z = layer(params, x, k).astype(jnp.float32) / sd
        return jnp.stack([jnp.mean(z), jnp.mean(z * z)])

    s = replicate(stats, key, R)
    assert_unbiased(s[:, 0], 0.0, name="mean of standardized outputs")
    assert_unbiased(s[:, 1], 1.0, name="variance of standardized outputs")


@pytest.mark.parametrize("name", list(DENSE))
def test_dense_bf16_mean_and_variance(name):
    params = _posterior(nn.init_dense(jax.random.key(0), 64, 64, dtype=BF16), jax.random.key(1))
    x = jnp.eye(64, dtype=BF16)  # y_n = row n of the sampled kernel (+ bias)
    var = np.square(np.asarray(params.kernel_scale, np.float64)) + np.square(np.asarray(params.bias_scale, np.float64))
    y = DENSE[name](params, x, jax.random.key(2))
    assert y.dtype == BF16
    _check(DENSE[name], params, x, var, jax.random.key(3))


@pytest.mark.parametrize("name", list(CONV))
def test_conv_bf16_mean_and_variance(name):
    c = 32
    params = _posterior(nn.init_conv2d(jax.random.key(0), 3, c, c, dtype=BF16), jax.random.key(1))
    x = jnp.zeros((c, 5, 5, c), BF16).at[jnp.arange(c), 2, 2, jnp.arange(c)].set(1)  # example n: pixel (2, 2), channel n

    def window(p, xx, k):  # the 3x3 outputs around the pixel: one kernel element each
        return CONV[name](p, xx, k)[:, 1:4, 1:4]

    s2 = np.square(np.asarray(params.kernel_scale, np.float64))[::-1, ::-1]  # (3, 3, in, out): offset flips
    var = np.transpose(s2, (2, 0, 1, 3)) + np.square(np.asarray(params.bias_scale, np.float64))
    assert window(params, x, jax.random.key(2)).dtype == BF16
    _check(window, params, x, var, jax.random.key(3))
