"""Checks shared by the Bayesian layers: errors raised at trace time that name the fix."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._init import DenseParams


def check_params(params, cls, layer: str):
    """Checks ``params`` is a ``cls`` whose fields have consistent shapes and one dtype."""
    init = "init_dense" if cls is DenseParams else "init_conv2d"
    if not isinstance(params, cls):
        raise TypeError(
            f"{layer} expects a repgrad.nn.{cls.__name__} (from repgrad.nn.{init}), got "
            f"{type(params).__name__}. Build one with repgrad.nn.{init}(key, ...) or "
            f"repgrad.nn.{cls.__name__}(kernel_loc, kernel_rho, bias_loc, bias_rho)."
        )
    ndim = 2 if cls is DenseParams else 4
    kl, kr, bl, br = (jnp.shape(a) for a in params)
    if len(kl) != ndim:
        raise ValueError(f"{layer}: kernel_loc must have {ndim} axes, got shape {kl}.")
    if kr != kl or bl != (kl[-1],) or br != (kl[-1],):
        raise ValueError(
            f"{layer}: inconsistent parameter shapes kernel_loc {kl}, kernel_rho {kr}, bias_loc {bl}, "
            f"bias_rho {br}; kernel_rho must match kernel_loc and the biases must be ({kl[-1]},)."
        )
    dtypes = {jnp.result_type(a) for a in params}
    if len(dtypes) != 1:
        raise TypeError(f"{layer}: all parameters must share one dtype, got {sorted(map(str, dtypes))}.")


def prepare_input(x, params, example_ndim: int, layer: str):
    """Returns ``(x_batched, unbatched)``; checks rank, feature size and dtype against ``params``."""
    x = jnp.asarray(x) if not isinstance(x, (jax.Array, jax.core.Tracer)) else x
    dtype = jnp.result_type(params.kernel_loc)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(dtype)
    elif x.dtype != dtype:
        raise TypeError(
            f"{layer}: x has dtype {x.dtype} but the parameters are {dtype}; cast one of them, e.g. "
            f"x.astype({dtype.name!r}) or initialize the layer with dtype=x.dtype."
        )
    shape_kind = "(batch, features) or (features,)" if example_ndim == 1 else "NHWC (batch, height, width, channels) or HWC"
    if x.ndim not in (example_ndim, example_ndim + 1):
        raise ValueError(f"{layer}: x must be {shape_kind}, got shape {x.shape}.")
    expected = params.kernel_loc.shape[-2]
    if x.shape[-1] != expected:
        raise ValueError(
            f"{layer}: x has {x.shape[-1]} features on its last axis but the layer expects {expected} "
            f"(kernel_loc has shape {params.kernel_loc.shape}). Initialize the layer with "
            f"{'in_features' if example_ndim == 1 else 'in_channels'}={x.shape[-1]} or fix x's shape {x.shape}."
        )
    unbatched = x.ndim == example_ndim
    return (x[None] if unbatched else x), unbatched


def conv_options(strides, padding, dilation):
    """Normalizes conv options to (strides pair, padding, dilation pair)."""
    def pair(v, name):
        if isinstance(v, int):
            return (v, v)
        v = tuple(v)
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}.")
        return v

    return pair(strides, "strides"), padding, pair(dilation, "dilation")


__all__ = ["check_params", "prepare_input", "conv_options"]
