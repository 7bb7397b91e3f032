"""The Bayesian layers of :mod:`repgrad.nn` as Equinox modules.

Each class is a thin ``eqx.Module`` over the functional layer of the same name. Its one array
field, ``posterior``, is the :class:`repgrad.nn.DenseParams` / :class:`repgrad.nn.Conv2DParams`
the functional layers take, so ``eqx.filter_grad`` and optax see the posterior means and
softplus-scales as ordinary leaves. The noise key is passed explicitly, ``layer(x, key=key)``.

Unlike ``eqx.nn.Linear``, a layer takes a whole batch (``(batch, features)`` or NHWC), as the
functional layers do: Flipout draws one weight perturbation and per-example signs for the
batch, and the reparameterization layers share one weight sample across it. ``jax.vmap`` it
over examples only with a separate key per example. ``eqx.nn.inference_mode(model)`` runs the
layers at their posterior means. :func:`kl_divergence` sums the KL of every Bayesian layer in a
model, for the ELBO.

Importing this module imports Equinox (``pip install "repgrad[equinox]"``); ``import repgrad``
does not.

Example:
  >>> import equinox as eqx, jax, jax.numpy as jnp, repgrad as rg
  >>> from repgrad.nn.equinox import DenseFlipout, kl_divergence
  >>> class BayesianMLP(eqx.Module):
  ...     hidden: DenseFlipout
  ...     out: DenseFlipout
  ...     def __init__(self, key):
  ...         k1, k2 = jax.random.split(key)
  ...         self.hidden, self.out = DenseFlipout(4, 16, key=k1), DenseFlipout(16, 3, key=k2)
  ...     def __call__(self, x, *, key):
  ...         k1, k2 = jax.random.split(key)
  ...         return self.out(jax.nn.relu(self.hidden(x, key=k1)), key=k2)
  >>> model = BayesianMLP(jax.random.key(0))
  >>> @eqx.filter_value_and_grad
  ... def loss_fn(model, x, y, key):
  ...     logits = model(x, key=key)
  ...     log_lik = jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]
  ...     return rg.nn.elbo_loss(log_lik, kl_divergence(model), num_train=100)
  >>> loss, grads = loss_fn(model, jnp.ones((8, 4)), jnp.zeros(8, jnp.int32), jax.random.key(1))
  >>> grads.hidden.posterior.kernel_loc.shape
  (4, 16)
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from . import _frameworks
from ._init import Conv2DParams, DenseParams

__all__ = [
    "BayesianLayer",
    "Conv2DFlipout",
    "Conv2DLocalReparameterization",
    "Conv2DReparameterization",
    "DenseFlipout",
    "DenseLocalReparameterization",
    "DenseReparameterization",
    "kl_divergence",
]


class BayesianLayer(eqx.Module):
    """Base class: ``posterior`` (the functional layers' NamedTuple) and the forward pass.

    Subclasses set ``sampling`` (``"flipout"``, ``"reparameterization"`` or
    ``"local_reparameterization"``).
    """

    sampling: ClassVar[str]
    posterior: DenseParams | Conv2DParams
    inference: bool

    def _conv(self) -> tuple | None:
        return None

    def __call__(self, x, *, key=None, inference: bool | None = None):
        """Applies the layer with weight noise from ``key`` (or at the posterior mean in inference mode).

        Args:
          x: ``(batch, features)`` / NHWC, or one example; as the functional layer.
          key: a JAX PRNG key; required unless in inference mode.
          inference: overrides the module's flag (set by ``eqx.nn.inference_mode``).
        """
        inference = self.inference if inference is None else inference
        if inference:
            return _frameworks.posterior_mean(self.posterior, x, type(self).__name__, self._conv())
        if key is None:
            raise ValueError(
                f"{type(self).__name__} samples its weights: call it with key=jax.random.key(...) (split a fresh "
                "key per layer and step), or use eqx.nn.inference_mode(model) for the posterior-mean network."
            )
        return _frameworks.forward(self.posterior, self.sampling, x, key, self._conv())


class _Dense(BayesianLayer):
    # Each concrete class spells out its __init__: Equinox modules are dataclasses, and type checkers
    # would otherwise synthesize an __init__(posterior, inference) for them.
    def _init(self, in_features, out_features, key, init_scale, dtype, inference):
        self.posterior = _frameworks.init_dense(key, in_features, out_features, init_scale=init_scale, dtype=dtype)
        self.inference = inference


class _Conv2D(BayesianLayer):
    strides: int | tuple[int, int] = eqx.field(static=True)
    padding: str | tuple = eqx.field(static=True)
    dilation: int | tuple[int, int] = eqx.field(static=True)

    def _init(self, kernel_size, in_channels, out_channels, key, strides, padding, dilation, init_scale, dtype,
              inference):
        self.posterior = _frameworks.init_conv2d(key, kernel_size, in_channels, out_channels, init_scale=init_scale,
                                                 dtype=dtype)
        self.strides = strides if isinstance(strides, int) else tuple(strides)
        self.padding = padding if isinstance(padding, str) else tuple(map(tuple, padding))
        self.dilation = dilation if isinstance(dilation, int) else tuple(dilation)
        self.inference = inference

    def _conv(self):
        return self.strides, self.padding, self.dilation


class DenseFlipout(_Dense):
    """:func:`repgrad.nn.dense_flipout` as an Equinox module: ``DenseFlipout(in_features, out_features, key=...)``.

    Options: ``init_scale`` and ``dtype`` (as :func:`repgrad.nn.init_dense`), ``inference``.
    """

    sampling = "flipout"

    def __init__(self, in_features: int, out_features: int, *, key, init_scale: float = 1e-2, dtype=jnp.float32,
                 inference: bool = False):
        self._init(in_features, out_features, key, init_scale, dtype, inference)


class DenseReparameterization(_Dense):
    """:func:`repgrad.nn.dense_reparameterization` (one weight sample per call) as an Equinox module."""

    sampling = "reparameterization"

    def __init__(self, in_features: int, out_features: int, *, key, init_scale: float = 1e-2, dtype=jnp.float32,
                 inference: bool = False):
        self._init(in_features, out_features, key, init_scale, dtype, inference)


class DenseLocalReparameterization(_Dense):
    """:func:`repgrad.nn.dense_local_reparameterization` (sampled pre-activations) as an Equinox module."""

    sampling = "local_reparameterization"

    def __init__(self, in_features: int, out_features: int, *, key, init_scale: float = 1e-2, dtype=jnp.float32,
                 inference: bool = False):
        self._init(in_features, out_features, key, init_scale, dtype, inference)


class Conv2DFlipout(_Conv2D):
    """:func:`repgrad.nn.conv2d_flipout` as an Equinox module (NHWC inputs, HWIO kernel).

    ``Conv2DFlipout(kernel_size, in_channels, out_channels, key=..., strides=1, padding="SAME",
    dilation=1)``; further options as :class:`DenseFlipout`.
    """

    sampling = "flipout"

    def __init__(self, kernel_size, in_channels: int, out_channels: int, *, key, strides=1, padding="SAME",
                 dilation=1, init_scale: float = 1e-2, dtype=jnp.float32, inference: bool = False):
        self._init(kernel_size, in_channels, out_channels, key, strides, padding, dilation, init_scale, dtype,
                   inference)


class Conv2DReparameterization(_Conv2D):
    """:func:`repgrad.nn.conv2d_reparameterization` as an Equinox module (NHWC inputs)."""

    sampling = "reparameterization"

    def __init__(self, kernel_size, in_channels: int, out_channels: int, *, key, strides=1, padding="SAME",
                 dilation=1, init_scale: float = 1e-2, dtype=jnp.float32, inference: bool = False):
        self._init(kernel_size, in_channels, out_channels, key, strides, padding, dilation, init_scale, dtype,
                   inference)


class Conv2DLocalReparameterization(_Conv2D):
    """:func:`repgrad.nn.conv2d_local_reparameterization` as an Equinox module (NHWC inputs)."""

    sampling = "local_reparameterization"

    def __init__(self, kernel_size, in_channels: int, out_channels: int, *, key, strides=1, padding="SAME",
                 dilation=1, init_scale: float = 1e-2, dtype=jnp.float32, inference: bool = False):
        self._init(kernel_size, in_channels, out_channels, key, strides, padding, dilation, init_scale, dtype,
                   inference)


def kl_divergence(model, prior=None, *, key=None, num_samples: int = 1):
    """KL(q ‖ p) summed over every :class:`BayesianLayer` in the pytree ``model``.

    As :func:`repgrad.nn.kl_divergence`: closed form for a Normal prior (``None`` is N(0, 1)),
    Monte Carlo with ``key`` otherwise. Differentiable with ``eqx.filter_grad``.

    Example:
      >>> import jax
      >>> from repgrad.nn.equinox import DenseFlipout, kl_divergence
      >>> kl = kl_divergence([DenseFlipout(4, 8, key=jax.random.key(0)), DenseFlipout(8, 2, key=jax.random.key(1))])
    """
    layers = jax.tree_util.tree_leaves(model, is_leaf=lambda m: isinstance(m, BayesianLayer))
    posteriors = [m.posterior for m in layers if isinstance(m, BayesianLayer)]
    return _frameworks.kl_of_layers(posteriors, "equinox", prior, key, num_samples)
