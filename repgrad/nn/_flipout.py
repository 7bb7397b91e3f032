"""Flipout: pseudo-independent weight perturbations per example, as a vmapped per-example function."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from . import _ops, _validation
from ._init import Conv2DParams, DenseParams
from ._reparameterization import per_example_keys, standard_normal_like

__all__ = ["flipout", "dense_flipout", "conv2d_flipout"]


def flipout(layer_fn, *, example_ndim: int = 1):
    r"""Turns a layer linear in its weights into a per-example Flipout layer.

    ``layer_fn(weights, x_single)`` must be linear in the pytree ``weights`` (a dense
    map ``x W + b``, a convolution, ...) with channels on the last axis of its input and
    of its output. The weights have a mean-field posterior ``W = W̄ + ΔŴ``,
    ``ΔŴ = σ ∘ ε`` with **one** shared draw ε ~ N(0, I). Example n gets its own
    perturbation ``ΔW_n = ΔŴ ∘ (s_n r_nᵀ)`` with Rademacher sign vectors s_n (input
    channels) and r_n (output channels); since ΔŴ is symmetric and independent of the
    signs, ΔW_n has exactly the distribution of ΔŴ, so every example's output is an
    exact sample, while different examples' perturbations are decorrelated. By
    linearity the per-example output is

    .. math::
       y_n = \operatorname{layer}(\bar W, x_n)
             + \operatorname{layer}(\Delta\hat W, x_n \circ s_n) \circ r_n ,

    written here for one example and ``jax.vmap``-ed over the batch, so XLA turns it
    into two batched layer applications and per-example weights are never materialized.
    Signs are per example and channel and shared over any other axes (the spatial
    positions of a conv), so each spatial position sees the same per-example kernel. A
    bias (a weight on a constant input) is perturbed by ``Δb ∘ r_n``. Example n's signs
    are drawn from ``fold_in(key_signs, n)``: its output depends only on the key and its
    index n, so a batch sharded over devices (or hosts) gives the unsharded result.

    Args:
      layer_fn: ``layer_fn(weights, x_single) -> y_single``, linear in ``weights``.
      example_ndim: number of axes of one example (1 for dense, 3 for HWC conv); an
        input with one more axis is a batch.

    Returns:
      ``apply(loc, scale, x, key)`` where ``loc`` and ``scale`` are pytrees shaped like
      ``weights`` (posterior means and standard deviations) and ``x`` is a batch (or one
      example).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> layer = rg.nn.flipout(lambda w, x: x @ w["kernel"] + w["bias"])
      >>> loc = {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}
      >>> scale = jax.tree_util.tree_map(lambda a: 0.1 * jnp.ones_like(a), loc)
      >>> layer(loc, scale, jnp.ones((8, 4)), jax.random.key(0)).shape
      (8, 3)

    References:
      Wen, Vicol, Ba, Tran & Grosse, "Flipout: Efficient Pseudo-Independent Weight
      Perturbations on Mini-Batches", ICLR 2018 (arXiv 1803.04386).
    """
    if not callable(layer_fn):
        raise TypeError(f"flipout expects a function layer_fn(weights, x_single), got {type(layer_fn).__name__}.")
    if isinstance(example_ndim, bool) or not isinstance(example_ndim, int) or example_ndim < 1:
        raise ValueError(f"example_ndim must be a positive int (1 for dense, 3 for HWC conv), got {example_ndim!r}.")

    @functools.wraps(layer_fn)
    def apply(loc, scale, x, key):
        loc_leaves, treedef = jax.tree_util.tree_flatten(loc)
        try:
            scale_leaves = treedef.flatten_up_to(scale)
        except (ValueError, TypeError) as e:
            raise ValueError(f"flipout: scale must have the same structure as loc ({treedef}): {e}") from None
        for a, b in zip(loc_leaves, scale_leaves, strict=True):
            if jnp.shape(a) != jnp.shape(b):
                raise ValueError(f"flipout: loc and scale leaves must have equal shapes, got {jnp.shape(a)} and {jnp.shape(b)}.")
        x = jnp.asarray(x)
        if x.ndim not in (example_ndim, example_ndim + 1):
            raise ValueError(
                f"flipout: x must have {example_ndim} axes (one example) or {example_ndim + 1} (a batch), got shape {x.shape}."
            )
        unbatched = x.ndim == example_ndim
        if unbatched:
            x = x[None]
        out = jax.eval_shape(layer_fn, loc, x[0])
        if len(out.shape) < 1:
            raise ValueError("flipout: layer_fn must return an array with an output-channel (last) axis.")

        k_eps, key_signs = jax.random.split(key)
        eps = standard_normal_like(k_eps, loc_leaves)
        delta = treedef.unflatten([s * e for s, e in zip(scale_leaves, eps, strict=True)])
        signs_in, signs_out = draw_signs(key_signs, x.shape[0], x.shape[-1], out.shape[-1], x.dtype)

        def per_example(x_n, s_n, r_n):
            y = layer_fn(loc, x_n)
            dy = layer_fn(delta, x_n * jnp.broadcast_to(s_n, x_n.shape))
            return y + dy * jnp.broadcast_to(r_n, dy.shape)

        y = jax.vmap(per_example)(x, signs_in, signs_out)
        return y[0] if unbatched else y

    return apply


_WORD_BITS = 32


def draw_signs(key, batch: int, in_channels: int, out_channels: int, dtype):
    """Rademacher sign vectors ``(batch, in_channels)`` and ``(batch, out_channels)``: ±1, each w.p. 1/2.

    Example n's signs are the bits of ⌈(in + out)/32⌉ random 32-bit words drawn from
    ``fold_in(key, n)`` (:func:`per_example_keys`), so they depend only on (key, n): not on
    the batch size, nor on the devices or processes the batch is sharded over. The bits of
    a uniformly random word are independent fair coins, so one word gives 32 signs: 32×
    fewer threefry hashes than one uniform draw per sign, which at batch 2048 cost about as
    much as Flipout's second matmul (benchmarks/RESULTS.md, "Flipout at large batch").
    """
    channels = in_channels + out_channels
    words = -(-channels // _WORD_BITS)
    bits = jax.vmap(lambda k: jax.random.bits(k, (words,), jnp.uint32))(per_example_keys(key, batch))
    shifts = jnp.arange(_WORD_BITS, dtype=jnp.uint32)
    coins = (bits[:, :, None] >> shifts[None, None, :]) & jnp.uint32(1)  # (batch, words, 32)
    coins = coins.reshape(batch, words * _WORD_BITS)[:, :channels]
    signs = jnp.where(coins == 0, 1.0, -1.0).astype(dtype)
    return signs[:, :in_channels], signs[:, in_channels:]


def _dense_single(weights, x):
    kernel, bias = weights
    return _ops.dense(kernel, bias, x)


_dense_flipout = flipout(_dense_single, example_ndim=1)


def dense_flipout(params: DenseParams, x, key):
    r"""Bayesian dense layer with Flipout perturbations.

    .. math::
       y_n = x_n \bar W + \bar b + \big((x_n \circ s_n)\,\Delta\hat W + \Delta\hat b\big) \circ r_n,
       \qquad \Delta\hat W = \sigma_W \circ \varepsilon_W,\ s_n, r_n \in \{\pm 1\}^{d}.

    Each example's output has exactly the distribution it would have under its own
    weight sample; gradients average over pseudo-independent perturbations, so their
    variance keeps falling ~1/N with batch size N where a shared sample's plateaus. Cost:
    two matmuls forward and two backward (about 2× a shared-sample layer) and
    N·(d_in + d_out) random signs, 32 from each random 32-bit word. See :func:`flipout`
    for the derivation.

    Args:
      params: a :class:`DenseParams`.
      x: ``(batch, in_features)`` or ``(in_features,)``.
      key: a JAX PRNG key.

    Returns:
      ``(batch, out_features)`` (or ``(out_features,)``).

    Example:
      >>> import jax, repgrad as rg
      >>> params = rg.nn.init_dense(jax.random.key(0), 4, 3)
      >>> rg.nn.dense_flipout(params, jax.numpy.ones((8, 4)), jax.random.key(1)).shape
      (8, 3)

    References:
      Wen et al., ICLR 2018 (arXiv 1803.04386).
    """
    _validation.check_params(params, DenseParams, "dense_flipout")
    x, unbatched = _validation.prepare_input(x, params, 1, "dense_flipout")
    y = _dense_flipout(
        (params.kernel_loc, params.bias_loc), (params.kernel_scale, params.bias_scale), x, key
    )
    return y[0] if unbatched else y


def conv2d_flipout(params: Conv2DParams, x, key, *, strides=1, padding="SAME", dilation=1):
    r"""Bayesian 2-D convolution (NHWC) with Flipout perturbations.

    :math:`y_n = x_n \star \bar K + \bar b + ((x_n \circ s_n) \star \Delta\hat K + \Delta\hat b) \circ r_n`
    with one sign per example and input channel (s_n) and per example and output
    channel (r_n), shared over spatial positions, so example n is convolved with the
    single kernel ``K̄ + ΔK̂ ∘ (s_n r_nᵀ)`` (broadcast over the kernel's spatial axes).

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
      >>> rg.nn.conv2d_flipout(params, jax.numpy.ones((5, 8, 8, 2)), jax.random.key(1)).shape
      (5, 8, 8, 4)

    References:
      Wen et al., ICLR 2018 (arXiv 1803.04386).
    """
    _validation.check_params(params, Conv2DParams, "conv2d_flipout")
    x, unbatched = _validation.prepare_input(x, params, 3, "conv2d_flipout")
    opts = _validation.conv_options(strides, padding, dilation)

    def conv_single(weights, x_n):
        kernel, bias = weights
        return _ops.conv2d(kernel, bias, x_n[None], *opts)[0]

    layer = flipout(conv_single, example_ndim=3)
    y = layer((params.kernel_loc, params.bias_loc), (params.kernel_scale, params.bias_scale), x, key)
    return y[0] if unbatched else y
