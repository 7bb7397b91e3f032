"""Flipout: pseudo-independent weight perturbations per example, as a vmapped per-example function."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _flipout_plan as _plan
from . import _ops, _validation
from ._init import Conv2DParams, DenseParams
from ._reparameterization import per_example_keys, standard_normal_like

__all__ = ["flipout", "dense_flipout", "conv2d_flipout"]


def flipout(layer_fn, *, example_ndim: int = 1, signs: str = "auto"):
    r"""Turns a layer linear in its weights into a per-example Flipout layer.

    ``layer_fn(weights, x_single)`` must be linear in the pytree ``weights`` (a dense map
    ``x W + b``, a convolution, a token-mixing matrix, ...). The weights have a mean-field
    posterior ``W = W̄ + ΔŴ``, ``ΔŴ = σ ∘ ε`` with **one** shared draw ε ~ N(0, I). Example n
    gets its own perturbation ``ΔW_n``: ΔŴ with some elements' signs flipped, the flips
    independent of ε. Every element of ΔŴ is independent and symmetric, so ``ΔW_n`` has
    exactly the distribution of ΔŴ whatever the flips: each example's outputs, jointly, are an
    exact sample of the layer under its own posterior weight draw, while different examples'
    perturbations are decorrelated. Two flip schemes, chosen per weight leaf:

    * **channel signs** (Flipout): ``ΔW_n = ΔŴ ∘ M(s_n, r_n)`` with Rademacher vectors s_n on
      x's last (input-channel) axis and r_n on the output's last axis. By linearity

      .. math::
         y_n = \operatorname{layer}(\bar W, x_n)
               + \operatorname{layer}(\Delta\hat W, x_n \circ s_n) \circ r_n ,

      written for one example and ``jax.vmap``-ed: two batched layer applications, no
      per-example weights. This is an exact per-example sample only if, for each leaf, some
      sign mask M satisfies :math:`\operatorname{layer}(\Delta W \circ M(s, r), x) = r \circ
      \operatorname{layer}(\Delta W, s \circ x)` for all ΔW, s, r: a kernel that contracts x's
      last axis and maps onto the output's last axis (dense; conv with M = s rᵀ shared over the
      kernel's spatial axes), a bias (M = r), a per-channel scale (M = s ∘ r).
    * **one sign per example**: ``ΔW_n = t_n ΔŴ``,
      :math:`y_n = \operatorname{layer}(\bar W, x_n) + t_n \operatorname{layer}(\Delta\hat W, x_n)`.
      Exact for every linear layer (a scalar weight, a weight mixing tokens along a
      non-channel axis, ...) at the same cost, but the examples' perturbations differ only in
      sign: their outputs are uncorrelated, yet not as independent as with channel signs, so
      gradient variance falls less with the batch size.

    With channel signs on a layer that fails the identity (``y = w·x`` with a scalar w, or a
    (T, T) weight mixing the tokens of a (T, C) input), examples' outputs would have the right
    marginals but the wrong joint distribution (Var Σ_j y_nj 3.85 instead of 16 for the scalar
    weight on four channels). Where an exact scheme exists at the same cost, refusing would
    only push users to a costlier one, so ``signs="auto"`` checks the identity and picks per
    leaf: ``layer_fn`` is pure and shapes are static, so at trace time it is run on random
    concrete probes (``jax.ensure_compile_time_eval``, exact floating-point comparisons; a
    leaf that fails the identity passes them with probability < 1e-8 for a layer linear in x,
    see ``repgrad/nn/_flipout_plan.py``). Leaves that pass get channel signs, the others one
    sign per example; a layer with both kinds costs three batched applications instead of two.
    The probes also check that ``layer_fn`` is linear in its weights and raise a
    ``ValueError`` if it is not (no sign scheme, and not the split into ``layer(W̄, x)`` plus
    a perturbation either, is right then). They run as one compiled program of a few dozen
    single-example evaluations, once per trace (about 0.3 s of compile time on a CPU for a
    small layer; cached across eager calls). :func:`dense_flipout`, :func:`conv2d_flipout` and
    the Flax/Equinox modules are known channel contractions and skip them.

    A ``layer_fn`` that closes over traced values (an enclosing ``jit``'s, ``grad``'s or
    ``vmap``'s arguments) cannot run on concrete probes. Rather than guess, ``"auto"`` then
    gives every leaf one sign per example (exact whatever the layer) and warns; pass such
    values in x or as constants, or choose ``signs`` explicitly.

    Signs are per example and channel and shared over any other axes (a conv's spatial
    positions). Example n's signs are drawn from ``fold_in(key_signs, n)``: its output depends
    only on the key and its index n, so a batch sharded over devices (or hosts) gives the
    unsharded result.

    Args:
      layer_fn: ``layer_fn(weights, x_single) -> y_single``, linear in ``weights``.
      example_ndim: number of axes of one example (1 for dense, 3 for HWC conv); an
        input with one more axis is a batch.
      signs: ``"auto"`` (checked per leaf, as above), ``"channels"`` (every leaf must take
        channel signs: checked, and a ``ValueError`` names the leaves that cannot; taken on
        trust when ``layer_fn`` closes over traced values) or ``"example"`` (one sign per
        example for every leaf; no identity probes).

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
      >>> mix = rg.nn.flipout(lambda w, x: w @ x, example_ndim=2)  # (T, T) weight mixing tokens
      >>> mix(jnp.eye(5), 0.1 * jnp.ones((5, 5)), jnp.ones((8, 5, 3)), jax.random.key(0)).shape
      (8, 5, 3)

    References:
      Wen, Vicol, Ba, Tran & Grosse, "Flipout: Efficient Pseudo-Independent Weight
      Perturbations on Mini-Batches", ICLR 2018 (arXiv 1803.04386).
    """
    if not callable(layer_fn):
        raise TypeError(f"flipout expects a function layer_fn(weights, x_single), got {type(layer_fn).__name__}.")
    if isinstance(example_ndim, bool) or not isinstance(example_ndim, int) or example_ndim < 1:
        raise ValueError(f"example_ndim must be a positive int (1 for dense, 3 for HWC conv), got {example_ndim!r}.")
    if signs not in ("auto", _plan.CHANNELS, _plan.EXAMPLE):
        raise ValueError(f"signs must be 'auto', 'channels' or 'example', got {signs!r}.")
    cache = {}

    def schemes(loc_leaves, treedef, x_example, out):
        sig = (treedef, tuple(jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)) for a in loc_leaves),
               x_example, out)
        if sig not in cache:
            result, checked = _plan.plan(layer_fn, loc_leaves, treedef, x_example, out, signs)
            if not checked:
                return result
            cache[sig] = result
        return cache[sig]

    apply = _build(layer_fn, example_ndim, schemes)
    apply.__name__ = apply.__qualname__ = f"flipout({getattr(layer_fn, '__name__', 'layer_fn')})"
    apply.__doc__ = (f"Flipout layer over {apply.__name__[8:-1]}: ``apply(loc, scale, x, key)`` (see "
                     "repgrad.nn.flipout).")
    return apply


def _build(layer_fn, example_ndim, schemes):
    """``apply(loc, scale, x, key)``; ``schemes(loc_leaves, treedef, x_example, out)`` gives each
    leaf's sign scheme."""

    def apply(loc, scale, x, key):
        loc_leaves, treedef = jax.tree_util.tree_flatten(loc)
        try:
            scale_leaves = treedef.flatten_up_to(scale)
        except (ValueError, TypeError) as e:
            raise ValueError(f"flipout: scale must have the same structure as loc ({treedef}): {e}") from None
        for a, b in zip(loc_leaves, scale_leaves, strict=True):
            if jnp.shape(a) != jnp.shape(b):
                raise ValueError(f"flipout: loc and scale leaves must have equal shapes, got {jnp.shape(a)} and {jnp.shape(b)}.")
            if not jnp.issubdtype(jnp.result_type(a), jnp.floating):
                raise TypeError(f"flipout: weights must be floating point, got a {jnp.result_type(a)} leaf in loc.")
        x = jnp.asarray(x)
        if x.ndim not in (example_ndim, example_ndim + 1):
            raise ValueError(
                f"flipout: x must have {example_ndim} axes (one example) or {example_ndim + 1} (a batch), got shape {x.shape}."
            )
        unbatched = x.ndim == example_ndim
        if unbatched:
            x = x[None]
        x_example = jax.ShapeDtypeStruct(x.shape[1:], x.dtype)
        out = jax.eval_shape(layer_fn, loc, x_example)
        if not isinstance(out, jax.ShapeDtypeStruct):
            raise ValueError(f"flipout: layer_fn must return one array, got {jax.tree_util.tree_structure(out)}.")
        kinds = schemes(loc_leaves, treedef, x_example, out)
        channel = _plan.CHANNELS in kinds
        example = _plan.EXAMPLE in kinds
        if channel and out.ndim < 1:
            raise ValueError("flipout: layer_fn must return an array with an output-channel (last) axis.")

        k_eps, key_signs = jax.random.split(key)
        eps = standard_normal_like(k_eps, loc_leaves)
        deltas = [s * e for s, e in zip(scale_leaves, eps, strict=True)]
        pick = lambda kind: treedef.unflatten(
            [d if k == kind else jnp.zeros_like(d) for d, k in zip(deltas, kinds, strict=True)])
        batch, n_in = x.shape[0], x.shape[-1]
        n_out = out.shape[-1] if channel else 0
        if channel and not example:
            signs_in, signs_out = draw_signs(key_signs, batch, n_in, n_out, x.dtype, out.dtype)
            signs_example = None
        else:
            coins = rademacher(key_signs, batch, (n_in + n_out if channel else 0) + 1)
            signs_in = coins[:, :n_in].astype(x.dtype) if channel else None
            signs_out = coins[:, n_in:-1].astype(out.dtype) if channel else None
            signs_example = coins[:, -1].astype(out.dtype)
        delta_channel = treedef.unflatten(deltas) if not example else (pick(_plan.CHANNELS) if channel else None)
        delta_example = treedef.unflatten(deltas) if not channel else (pick(_plan.EXAMPLE) if example else None)

        def per_example(x_n, s_n, r_n, t_n):
            y = layer_fn(loc, x_n)
            if channel:
                dy = layer_fn(delta_channel, x_n * jnp.broadcast_to(s_n, x_n.shape))
                y = y + dy * jnp.broadcast_to(r_n, dy.shape)
            if example:
                y = y + layer_fn(delta_example, x_n) * t_n
            return y

        y = jax.vmap(per_example)(x, signs_in, signs_out, signs_example)
        return y[0] if unbatched else y

    return apply


_WORD_BITS = 32


def rademacher(key, batch: int, channels: int):
    """``(batch, channels)`` uint32 coins in {0, 1} → signs ``1 − 2·coin`` (as float32): ±1 w.p. 1/2 each.

    Example n's signs are the bits of ⌈channels/32⌉ random 32-bit words drawn from
    ``fold_in(key, n)`` (:func:`per_example_keys`), so they depend only on (key, n): not on
    the batch size, nor on the devices or processes the batch is sharded over. The bits of
    a uniformly random word are independent fair coins, so one word gives 32 signs: 32×
    fewer threefry hashes than one uniform draw per sign, which at batch 2048 cost about as
    much as Flipout's second matmul (benchmarks/RESULTS.md, "Flipout at large batch").
    """
    words = -(-channels // _WORD_BITS)
    bits = jax.vmap(lambda k: jax.random.bits(k, (words,), jnp.uint32))(per_example_keys(key, batch))
    shifts = jnp.arange(_WORD_BITS, dtype=jnp.uint32)
    coins = (bits[:, :, None] >> shifts[None, None, :]) & jnp.uint32(1)  # (batch, words, 32)
    coins = coins.reshape(batch, words * _WORD_BITS)[:, :channels]
    return jnp.where(coins == 0, 1.0, -1.0)


def draw_signs(key, batch: int, in_channels: int, out_channels: int, dtype, out_dtype=None):
    """Rademacher sign vectors ``(batch, in_channels)`` and ``(batch, out_channels)``: ±1, each w.p. 1/2.

    Drawn by :func:`rademacher` (32 signs per random word, example n's from ``fold_in(key, n)``);
    the output-channel signs in ``out_dtype`` (default ``dtype``).
    """
    signs = rademacher(key, batch, in_channels + out_channels)
    if out_dtype is None or jnp.dtype(out_dtype) == jnp.dtype(dtype):
        signs = signs.astype(dtype)
        return signs[:, :in_channels], signs[:, in_channels:]
    return signs[:, :in_channels].astype(dtype), signs[:, in_channels:].astype(out_dtype)


def _dense_single(weights, x):
    kernel, bias = weights
    return _ops.dense(kernel, bias, x)


def _all_channels(loc_leaves, treedef, x_example, out):
    return (_plan.CHANNELS,) * len(loc_leaves)


# Known channel contractions: channel signs for every leaf, no probes.
_dense_flipout = _build(_dense_single, 1, _all_channels)


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

    layer = _build(conv_single, 3, _all_channels)
    y = layer((params.kernel_loc, params.bias_loc), (params.kernel_scale, params.bias_scale), x, key)
    return y[0] if unbatched else y
