"""Local reparameterization: sample pre-activations instead of weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _ops, _validation
from ._init import Conv2DParams, DenseParams
from ._reparameterization import normal, per_example_keys

__all__ = ["dense_local_reparameterization", "conv2d_local_reparameterization"]


def _sample_preactivations(mean, var, key):
    # Example n's noise from fold_in(key, n): it depends only on (key, n), so sharding the
    # batch over devices or processes gives the unsharded result (tests/test_nn_sharding.py).
    keys = per_example_keys(key, mean.shape[0])
    eps = jax.vmap(lambda k: normal(k, mean.shape[1:], mean.dtype))(keys)  # float32 draws, cast
    return mean + jnp.sqrt(var) * eps


def dense_local_reparameterization(params: DenseParams, x, key):
    r"""Bayesian dense layer by the local reparameterization trick.

    With independent Gaussian weights, each pre-activation is Gaussian given the input,
    so it is sampled directly, independently for every example:

    .. math::
       y_{nj} \sim \mathcal N\Big(\textstyle\sum_i x_{ni}\mu_{ij} + \mu_{b,j},\;
       \sum_i x_{ni}^2\sigma_{ij}^2 + \sigma_{b,j}^2\Big).

    The outputs have the same per-example distribution as with an independent weight
    sample per example, at the cost of two matmuls. It applies to layers whose
    pre-activations are linear in Gaussian weights (dense, conv); the gradient with
    respect to the scales differs from (and usually has lower variance than) explicit
    per-example sampling. Example n's noise is drawn from ``fold_in(key, n)``, so it
    depends only on the key and n, however the batch is sharded.

    Args:
      params: a :class:`DenseParams`.
      x: ``(batch, in_features)`` or ``(in_features,)``.
      key: a JAX PRNG key.

    Returns:
      ``(batch, out_features)`` (or ``(out_features,)``).

    Example:
      >>> import jax, repgrad as rg
      >>> params = rg.nn.init_dense(jax.random.key(0), 4, 3)
      >>> rg.nn.dense_local_reparameterization(params, jax.numpy.ones((8, 4)), jax.random.key(1)).shape
      (8, 3)

    References:
      Kingma, Salimans & Welling, "Variational Dropout and the Local Reparameterization
      Trick", NeurIPS 2015 (arXiv 1506.02557).
    """
    _validation.check_params(params, DenseParams, "dense_local_reparameterization")
    x, unbatched = _validation.prepare_input(x, params, 1, "dense_local_reparameterization")
    mean = _ops.dense(params.kernel_loc, params.bias_loc, x)
    var = _ops.dense(jnp.square(params.kernel_scale), jnp.square(params.bias_scale), jnp.square(x))
    y = _sample_preactivations(mean, var, key)
    return y[0] if unbatched else y


def conv2d_local_reparameterization(params: Conv2DParams, x, key, *, strides=1, padding="SAME", dilation=1):
    r"""Bayesian 2-D convolution (NHWC) by local reparameterization.

    Mean ``x ⋆ μ_K + μ_b`` and variance ``x² ⋆ σ_K² + σ_b²``; every output element is
    sampled independently. (Neighbouring outputs of one example share weights under the
    true posterior, so unlike the dense case this is an approximation of the per-example
    weight-sampling distribution: the marginals match, the spatial correlations do not.)

    Args:
      params: a :class:`Conv2DParams`.
      x: ``(batch, height, width, in_channels)`` or ``(height, width, in_channels)``.
      key: a JAX PRNG key.
      strides, padding, dilation: as in :func:`conv2d_reparameterization`.

    Returns:
      NHWC outputs (HWC for a single example).

    Example:
      >>> import jax, repgrad as rg
      >>> params = rg.nn.init_conv2d(jax.random.key(0), 3, 2, 4)
      >>> rg.nn.conv2d_local_reparameterization(params, jax.numpy.ones((5, 8, 8, 2)), jax.random.key(1)).shape
      (5, 8, 8, 4)

    References:
      Kingma, Salimans & Welling 2015 (arXiv 1506.02557).
    """
    _validation.check_params(params, Conv2DParams, "conv2d_local_reparameterization")
    x, unbatched = _validation.prepare_input(x, params, 3, "conv2d_local_reparameterization")
    opts = _validation.conv_options(strides, padding, dilation)
    mean = _ops.conv2d(params.kernel_loc, params.bias_loc, x, *opts)
    var = _ops.conv2d(jnp.square(params.kernel_scale), jnp.square(params.bias_scale), jnp.square(x), *opts)
    y = _sample_preactivations(mean, var, key)
    return y[0] if unbatched else y
