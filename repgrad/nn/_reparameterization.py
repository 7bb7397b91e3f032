"""Bayesian layers with one weight sample shared by the whole batch (reparameterization)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from . import _ops, _validation
from ._init import Conv2DParams, DenseParams

__all__ = [
    "sample_weights",
    "noise_dtype",
    "normal",
    "standard_normal_like",
    "per_example_keys",
    "dense_reparameterization",
    "conv2d_reparameterization",
]


def sample_weights(params, key):
    """One reparameterized draw (kernel, bias) = loc + softplus(rho) ∘ ε, ε ~ N(0, I).

    Example:
      >>> import jax, repgrad as rg
      >>> kernel, bias = rg.nn.sample_weights(rg.nn.init_dense(jax.random.key(0), 4, 3), jax.random.key(1))
    """
    kernel_eps, bias_eps = standard_normal_like(key, (params.kernel_loc, params.bias_loc))
    return params.kernel_loc + params.kernel_scale * kernel_eps, params.bias_loc + params.bias_scale * bias_eps


def noise_dtype(dtype):
    """The dtype Gaussian noise is drawn in: at least float32, then cast to the parameters' dtype.

    ``jax.random.normal`` in bfloat16 has 128 distinct values, the largest 2.52, with mean
    −0.012 and variance 0.994: layer outputs would be biased by many standard errors over a
    few thousand draws (as the estimators were; ``repgrad/_src/distributions/base.py``,
    ``_working_dtype``)."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return jnp.dtype(jnp.float32)
    return dtype


def normal(key, shape, dtype):
    """N(0, 1) noise of ``dtype``, drawn in :func:`noise_dtype`."""
    return jax.random.normal(key, shape, noise_dtype(dtype)).astype(dtype)


def standard_normal_like(key, arrays):
    """Independent N(0, 1) noise shaped like each array, from a single random draw.

    One ``jax.random.normal`` call (not one per array) keeps the compiled program small:
    every threefry call site adds to compile time. Drawn in at least float32
    (:func:`noise_dtype`) and cast to each array's dtype."""
    sizes = [math.prod(jnp.shape(a)) for a in arrays]
    dtype = noise_dtype(jnp.result_type(arrays[0]))
    flat = jax.random.normal(key, (sum(sizes),), dtype)
    out, start = [], 0
    for a, size in zip(arrays, sizes, strict=True):
        out.append(flat[start : start + size].reshape(jnp.shape(a)).astype(jnp.result_type(a)))
        start += size
    return out


def per_example_keys(key, batch: int):
    """``batch`` keys, the n-th being ``fold_in(key, n)``.

    Noise drawn from key n depends only on (key, n): never on the batch size, nor on how
    the batch is split across devices or processes, whatever ``jax_threefry_partitionable``
    says. The draws are elementwise in the batch, so under a batch sharding XLA generates
    each shard's noise on its own device, with no communication."""
    return jax.vmap(lambda n: jax.random.fold_in(key, n))(jnp.arange(batch, dtype=jnp.uint32))


def dense_reparameterization(params: DenseParams, x, key):
    r"""Bayesian dense layer, one weight sample shared by every example.

    .. math::
       W = \mu_W + \sigma_W \circ \varepsilon_W,\quad b = \mu_b + \sigma_b \circ \varepsilon_b,
       \quad y_n = x_n W + b,\qquad \varepsilon \sim \mathcal N(0, I),\ \sigma = \operatorname{softplus}(\rho).

    Unbiased for any batch size, but all examples share one perturbation, so the
    gradient variance does not fall below the weight-noise term however large the batch
    (compare :func:`dense_flipout` and :func:`dense_local_reparameterization`).

    Args:
      params: a :class:`DenseParams`.
      x: inputs of shape ``(batch, in_features)``, or ``(in_features,)`` for one example.
      key: a JAX PRNG key.

    Returns:
      ``(batch, out_features)`` (or ``(out_features,)``) outputs.

    Example:
      >>> import jax, repgrad as rg
      >>> params = rg.nn.init_dense(jax.random.key(0), 4, 3)
      >>> rg.nn.dense_reparameterization(params, jax.numpy.ones((8, 4)), jax.random.key(1)).shape
      (8, 3)

    References:
      Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014 (arXiv 1312.6114);
      Blundell et al., "Weight Uncertainty in Neural Networks", ICML 2015 (arXiv 1505.05424).
    """
    _validation.check_params(params, DenseParams, "dense_reparameterization")
    x, unbatched = _validation.prepare_input(x, params, 1, "dense_reparameterization")
    kernel, bias = sample_weights(params, key)
    y = _ops.dense(kernel, bias, x)
    return y[0] if unbatched else y


def conv2d_reparameterization(params: Conv2DParams, x, key, *, strides=1, padding="SAME", dilation=1):
    r"""Bayesian 2-D convolution (NHWC), one kernel sample shared by every example.

    :math:`K = \mu_K + \sigma_K \circ \varepsilon`, :math:`y_n = x_n \star K + b`.

    Args:
      params: a :class:`Conv2DParams` (HWIO kernel).
      x: ``(batch, height, width, in_channels)``, or ``(height, width, in_channels)``.
      key: a JAX PRNG key.
      strides: int or pair.
      padding: ``"SAME"``, ``"VALID"`` or explicit pairs, as in ``jax.lax.conv_general_dilated``.
      dilation: kernel dilation, int or pair.

    Returns:
      NHWC outputs (HWC for a single example).

    Example:
      >>> import jax, repgrad as rg
      >>> params = rg.nn.init_conv2d(jax.random.key(0), 3, 2, 4)
      >>> rg.nn.conv2d_reparameterization(params, jax.numpy.ones((5, 8, 8, 2)), jax.random.key(1)).shape
      (5, 8, 8, 4)

    References:
      Kingma & Welling 2014 (arXiv 1312.6114); Blundell et al. 2015 (arXiv 1505.05424).
    """
    _validation.check_params(params, Conv2DParams, "conv2d_reparameterization")
    x, unbatched = _validation.prepare_input(x, params, 3, "conv2d_reparameterization")
    opts = _validation.conv_options(strides, padding, dilation)
    kernel, bias = sample_weights(params, key)
    y = _ops.conv2d(kernel, bias, x, *opts)
    return y[0] if unbatched else y
