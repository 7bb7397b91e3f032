"""The deterministic dense and conv maps that every Bayesian layer applies to its sampled or mean
weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def conv2d(kernel, bias, x, strides, padding, dilation):
    """NHWC conv with an HWIO kernel plus bias (x batched)."""
    y = jax.lax.conv_general_dilated(
        x, kernel, window_strides=strides, padding=padding, rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + jnp.broadcast_to(bias, y.shape)


def dense(kernel, bias, x):
    """x W + b for x of shape (..., in_features)."""
    y = x @ kernel
    return y + jnp.broadcast_to(bias, y.shape)


__all__ = ["conv2d", "dense"]
