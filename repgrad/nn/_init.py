"""Posterior parameters of Bayesian dense and conv layers, and their initializers.

Every weight w has a mean-field Normal posterior q(w) = N(loc, softplus(rho)²). The
scale is stored through its softplus pre-image ``rho`` so that gradient steps can never
make it negative: σ = softplus(ρ) = log(1 + e^ρ).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["DenseParams", "Conv2DParams", "init_dense", "init_conv2d", "softplus_inverse"]


class DenseParams(NamedTuple):
    """Posterior of a dense layer ``y = x W + b``.

    Attributes:
      kernel_loc: (in_features, out_features) posterior mean of W.
      kernel_rho: same shape; posterior std of W is ``softplus(kernel_rho)``.
      bias_loc: (out_features,) posterior mean of b.
      bias_rho: (out_features,); posterior std of b is ``softplus(bias_rho)``.
    """

    kernel_loc: jax.Array
    kernel_rho: jax.Array
    bias_loc: jax.Array
    bias_rho: jax.Array

    @property
    def kernel_scale(self) -> jax.Array:
        return jax.nn.softplus(self.kernel_rho)

    @property
    def bias_scale(self) -> jax.Array:
        return jax.nn.softplus(self.bias_rho)


class Conv2DParams(NamedTuple):
    """Posterior of a 2-D convolution (NHWC inputs, HWIO kernel).

    Attributes:
      kernel_loc: (height, width, in_channels, out_channels) posterior mean of the kernel.
      kernel_rho: same shape; posterior std is ``softplus(kernel_rho)``.
      bias_loc: (out_channels,) posterior mean of the bias.
      bias_rho: (out_channels,); posterior std is ``softplus(bias_rho)``.
    """

    kernel_loc: jax.Array
    kernel_rho: jax.Array
    bias_loc: jax.Array
    bias_rho: jax.Array

    @property
    def kernel_scale(self) -> jax.Array:
        return jax.nn.softplus(self.kernel_rho)

    @property
    def bias_scale(self) -> jax.Array:
        return jax.nn.softplus(self.bias_rho)


LAYER_PARAMS = (DenseParams, Conv2DParams)


def softplus_inverse(scale):
    """ρ with softplus(ρ) = scale, i.e. ρ = log(e^scale − 1), computed stably."""
    scale = jnp.asarray(scale)
    return scale + jnp.log(-jnp.expm1(-scale))


def _check_dims(**dims):
    for name, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive Python int, got {value!r}.")


def _check_scale(init_scale):
    if not (isinstance(init_scale, (int, float)) and init_scale > 0):
        raise ValueError(f"init_scale must be a positive float (the initial posterior std), got {init_scale!r}.")


def _posterior(key, shape, fan_in, num_out, init_scale, dtype):
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype (e.g. jnp.float32), got {dtype}.")
    # LeCun-normal means: Var(loc) = 1/fan_in keeps pre-activations O(1) at init.
    kernel_loc = jax.random.normal(key, shape, dtype) * jnp.asarray(1.0 / math.sqrt(fan_in), dtype)
    rho = softplus_inverse(jnp.asarray(init_scale, dtype))
    return (
        kernel_loc,
        jnp.full(shape, rho, dtype),
        jnp.zeros((num_out,), dtype),
        jnp.full((num_out,), rho, dtype),
    )


def init_dense(key, in_features: int, out_features: int, *, init_scale: float = 1e-2, dtype=jnp.float32):
    """Initial posterior of a Bayesian dense layer.

    ``kernel_loc ~ N(0, 1/in_features)`` (LeCun normal), ``bias_loc = 0``, and every
    posterior std starts at ``init_scale`` (small, so the network starts close to a
    deterministic one and the KL term pulls the scales up as training allows).

    Args:
      key: a JAX PRNG key.
      in_features: size of the input's last axis.
      out_features: number of outputs.
      init_scale: initial posterior standard deviation of every weight and bias.
      dtype: floating dtype of the parameters (and of the layer's outputs).

    Returns:
      A :class:`DenseParams`.

    Example:
      >>> import jax, repgrad as rg
      >>> params = rg.nn.init_dense(jax.random.key(0), 4, 3)
      >>> params.kernel_loc.shape, params.bias_rho.shape
      ((4, 3), (3,))
    """
    _check_dims(in_features=in_features, out_features=out_features)
    _check_scale(init_scale)
    return DenseParams(*_posterior(key, (in_features, out_features), in_features, out_features, init_scale, dtype))


def init_conv2d(
    key,
    kernel_size,
    in_channels: int,
    out_channels: int,
    *,
    init_scale: float = 1e-2,
    dtype=jnp.float32,
):
    """Initial posterior of a Bayesian 2-D convolution (HWIO kernel).

    Args:
      key: a JAX PRNG key.
      kernel_size: an int or a pair ``(height, width)``.
      in_channels: channels of the NHWC input.
      out_channels: output channels.
      init_scale: initial posterior standard deviation of every weight and bias.
      dtype: floating dtype of the parameters.

    Returns:
      A :class:`Conv2DParams` with ``kernel_loc ~ N(0, 1/(h·w·in_channels))``.

    Example:
      >>> import jax, repgrad as rg
      >>> params = rg.nn.init_conv2d(jax.random.key(0), 3, 1, 8)
      >>> params.kernel_loc.shape
      (3, 3, 1, 8)
    """
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    kernel_size = tuple(kernel_size)
    if len(kernel_size) != 2:
        raise ValueError(f"kernel_size must be an int or a pair (height, width), got {kernel_size!r}.")
    _check_dims(kernel_height=kernel_size[0], kernel_width=kernel_size[1], in_channels=in_channels,
                out_channels=out_channels)
    _check_scale(init_scale)
    shape = (*kernel_size, in_channels, out_channels)
    fan_in = kernel_size[0] * kernel_size[1] * in_channels
    return Conv2DParams(*_posterior(key, shape, fan_in, out_channels, init_scale, dtype))
