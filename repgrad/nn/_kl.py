"""KL divergence from the layers' mean-field Normal posteriors to a prior."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._src import distributions as _d
from ._init import LAYER_PARAMS

__all__ = ["kl_normal", "kl_divergence"]


def kl_normal(q_loc, q_scale, p_loc, p_scale):
    r"""Elementwise KL(N(q_loc, q_scale²) ‖ N(p_loc, p_scale²)).

    .. math::
       \mathrm{KL} = \log\frac{\sigma_p}{\sigma_q} + \frac{\sigma_q^2 + (\mu_q - \mu_p)^2}{2\sigma_p^2} - \frac12 .

    Example:
      >>> import repgrad as rg
      >>> float(rg.nn.kl_normal(0.0, 1.0, 0.0, 1.0))
      0.0
    """
    q_loc, q_scale, p_loc, p_scale = jnp.broadcast_arrays(q_loc, q_scale, p_loc, p_scale)
    ratio = q_scale / p_scale
    return -jnp.log(ratio) + 0.5 * (jnp.square(ratio) + jnp.square((q_loc - p_loc) / p_scale)) - 0.5


def _layers(params):
    leaves = jax.tree_util.tree_leaves(params, is_leaf=lambda p: isinstance(p, LAYER_PARAMS))
    layers = [p for p in leaves if isinstance(p, LAYER_PARAMS)]
    if not layers:
        raise TypeError(
            "kl_divergence found no repgrad.nn.DenseParams/Conv2DParams in params (structure "
            f"{jax.tree_util.tree_structure(params)}). Pass a layer's params or a pytree (list, dict) of them."
        )
    return layers


def _cast_prior(prior, dtype):
    cast = lambda a: jnp.asarray(a, dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a
    return jax.tree_util.tree_map(cast, prior)


_LEAVES = ("kernel", "bias")


def _prior_shape(prior):
    """(batch_shape, event_shape) of a distribution; () for either it does not declare."""
    return tuple(getattr(prior, "batch_shape", ())), tuple(getattr(prior, "event_shape", ()))


def _fits(prior, shape) -> bool:
    """Whether ``prior`` is a density over an array of ``shape``: its event shape is the array's
    trailing axes and its batch shape broadcasts to the rest."""
    batch, event = _prior_shape(prior)
    lead = tuple(shape[: len(shape) - len(event)])
    if len(event) > len(shape) or tuple(shape[len(lead):]) != event:
        return False
    try:
        return tuple(jnp.broadcast_shapes(batch, lead)) == lead
    except ValueError:
        return False


def _describe(prior):
    batch, event = _prior_shape(prior)
    return f"{type(prior).__name__} of shape {batch + event}" + (f" (event shape {event})" if event else "")


def _layer_priors(prior, layer, index):
    """The (kernel, bias) priors of one layer (``None``: the default N(0, 1))."""
    shapes = (jnp.shape(layer.kernel_loc), jnp.shape(layer.bias_loc))
    if isinstance(prior, dict):
        unknown = sorted(set(prior) - set(_LEAVES), key=str)
        if unknown:
            raise ValueError(f"a per-leaf prior is a dict with keys 'kernel' and/or 'bias', got the keys {unknown}.")
        priors = tuple(prior.get(name) for name in _LEAVES)
        for name, p, shape in zip(_LEAVES, priors, shapes, strict=True):
            _check_distribution(p, f"prior[{name!r}]")
            if p is not None and not _fits(p, shape):
                raise ValueError(
                    f"prior[{name!r}], a {_describe(p)}, does not broadcast to the {name} of layer {index}, of shape "
                    f"{shape}. Give it a shape that does, or call kl_divergence on each layer with its own prior and "
                    "add the results."
                )
        return priors
    _check_distribution(prior, "prior")
    fits = tuple(_fits(prior, shape) for shape in shapes)
    if fits == (True, True):
        return prior, prior
    if fits[0]:
        return prior, None  # a kernel-shaped prior: the bias keeps the default N(0, 1)
    raise ValueError(
        f"the prior, a {_describe(prior)}, broadcasts to neither the kernel {shapes[0]} nor the bias {shapes[1]} of "
        f"layer {index}. A prior applies elementwise to the leaves its shape broadcasts to; give one per leaf, "
        "prior={'kernel': ..., 'bias': ...}, with shapes that broadcast to those leaves (one prior per input "
        "feature of a dense kernel has shape (in_features, 1)), or call kl_divergence on each layer with its own "
        "prior and add the results."
    )


def _check_distribution(prior, name):
    if prior is not None and not hasattr(prior, "log_prob"):
        raise TypeError(f"{name} must be a distribution with log_prob (e.g. repgrad.Normal(0., 1.)), got {type(prior).__name__}.")


def kl_divergence(params, prior=None, *, key=None, num_samples: int = 1, method: str = "auto"):
    r"""KL(q ‖ p) summed over every weight and bias of the Bayesian layers in ``params``.

    q is the mean-field posterior N(loc, softplus(rho)²) of each weight. The prior p, for
    each layer's kernel and bias:

    * ``None``: N(0, 1) for every weight and bias.
    * One distribution: the prior of every leaf its shape broadcasts to (elementwise, or
      over an event shape that matches the leaf's trailing axes): ``rg.Normal(0., 1.)``,
      ``rg.Normal(mu, s)`` with ``(out_features,)`` parameters (kernel and bias), or with a
      kernel's shape, e.g. ``(in, out)`` means from a pretrained network: then it is the
      kernel's prior and the bias keeps the default N(0, 1). A prior that broadcasts to
      neither the kernel nor the bias of a layer raises a ``ValueError``.
    * A dict ``{"kernel": p_kernel, "bias": p_bias}``: one prior per leaf (a missing key
      means N(0, 1)), each of which must broadcast to that leaf in every layer.
      (Different priors per layer: call :func:`kl_divergence` per layer and add.)

    For each leaf:

    * Normal prior (``repgrad.Normal``): closed form, see :func:`kl_normal`.
    * Any other prior with ``log_prob`` (e.g. a scale mixture, a Laplace): Monte Carlo,
      :math:`\frac1S\sum_s \log q(w_s) - \log p(w_s)` with reparameterized draws
      :math:`w_s \sim q`, so it is unbiased and differentiable; needs ``key``.

    Args:
      params: a :class:`DenseParams`/:class:`Conv2DParams` or a pytree of them (other
        leaves, e.g. deterministic weights, are ignored).
      prior: ``None`` (standard Normal), a distribution with ``log_prob``, or a dict of
        them with keys ``"kernel"`` and/or ``"bias"``.
      key: PRNG key, required for the Monte Carlo estimate.
      num_samples: draws for the Monte Carlo estimate.
      method: ``"auto"`` (closed form when available), ``"analytic"`` or ``"mc"``.

    Returns:
      A scalar: the total KL in nats.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> layers = [rg.nn.init_dense(jax.random.key(0), 4, 8), rg.nn.init_dense(jax.random.key(1), 8, 2)]
      >>> kl = rg.nn.kl_divergence(layers, rg.Normal(0.0, 1.0))
      >>> kl_mc = rg.nn.kl_divergence(layers, rg.Laplace(0.0, 1.0), key=jax.random.key(2))
      >>> pretrained = jnp.ones((4, 8))  # a prior centred on known kernel weights, N(0, 1) for the bias
      >>> kl_0 = rg.nn.kl_divergence(layers[0], rg.Normal(pretrained, 0.1))
      >>> kl_0 = rg.nn.kl_divergence(layers[0], {"kernel": rg.Normal(pretrained, 0.1), "bias": rg.Normal(0.0, 0.1)})

    References:
      Blundell et al., "Weight Uncertainty in Neural Networks", ICML 2015 (arXiv 1505.05424).
    """
    if method not in ("auto", "analytic", "mc"):
        raise ValueError(f"method must be 'auto', 'analytic' or 'mc', got {method!r}.")
    layers = _layers(params)
    if prior is None:
        prior = _d.Normal(0.0, 1.0)
    priors = [_layer_priors(prior, layer, i) for i, layer in enumerate(layers)]
    default = _d.Normal(0.0, 1.0)
    priors = [tuple(default if p is None else p for p in pair) for pair in priors]
    not_normal = sorted({type(p).__name__ for pair in priors for p in pair if not isinstance(p, _d.Normal)})
    if method == "analytic" and not_normal:
        raise ValueError(
            f"no closed-form KL from a Normal posterior to {', '.join(not_normal)}; use method='auto' or "
            "'mc' with a key for a Monte Carlo estimate."
        )
    use_mc = method == "mc" or bool(not_normal)
    if use_mc:
        if key is None:
            raise ValueError(
                f"the KL to a {(not_normal or ['Normal'])[0]} prior is estimated by Monte Carlo; pass "
                "key=jax.random.key(...) (and optionally num_samples=...)."
            )
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}.")

    total = []
    keys = jax.random.split(key, len(layers)) if use_mc else [None] * len(layers)
    for layer, pair, k in zip(layers, priors, keys, strict=True):
        dtype = jnp.result_type(layer.kernel_loc)
        leaves = ((layer.kernel_loc, layer.kernel_scale), (layer.bias_loc, layer.bias_scale))
        for (loc, scale), p in zip(leaves, pair, strict=True):
            p = _cast_prior(p, dtype)
            if method != "mc" and isinstance(p, _d.Normal):
                total.append(jnp.sum(kl_normal(loc, scale, jnp.broadcast_to(p.loc, loc.shape),
                                               jnp.broadcast_to(p.scale, loc.shape))))
            else:
                k, sub = jax.random.split(k)
                q = _d.Normal(loc, scale)
                w = q.sample(sub, (num_samples,))
                # Each summed whole: a prior with an event shape gives one log-density per event.
                total.append((jnp.sum(q.log_prob(w)) - jnp.sum(p.log_prob(w))) / num_samples)
    return sum(total[1:], total[0])
