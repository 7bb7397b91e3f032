"""The Bayesian layers of :mod:`repgrad.nn` as Flax NNX modules.

Each class is a thin ``nnx.Module`` over the functional layer of the same name: its
``nnx.Param``\\ s are the mean-field posterior (``kernel_loc``, ``kernel_rho``, ``bias_loc``,
``bias_rho``, as in :class:`repgrad.nn.DenseParams`), and every call draws its weight noise
from an ``nnx.Rngs`` stream (``"noise"`` by default, falling back to the default stream), the
way ``nnx.Dropout`` does. ``model.eval()`` (or ``deterministic=True``) runs the layers at their
posterior means; ``model.train()`` samples again. :func:`kl_divergence` sums the KL of every
Bayesian layer in a model, for the ELBO.

Importing this module imports Flax (``pip install "repgrad[flax]"``); ``import repgrad``
does not.

Example:
  >>> import jax, jax.numpy as jnp, optax, repgrad as rg
  >>> from flax import nnx
  >>> from repgrad.nn.flax import DenseFlipout, kl_divergence
  >>> class BayesianMLP(nnx.Module):
  ...     def __init__(self, rngs):
  ...         self.hidden = DenseFlipout(4, 16, rngs=rngs)
  ...         self.out = DenseFlipout(16, 3, rngs=rngs)
  ...     def __call__(self, x):
  ...         return self.out(jax.nn.relu(self.hidden(x)))
  >>> model = BayesianMLP(nnx.Rngs(params=0, noise=1))
  >>> def loss_fn(model, x, y):
  ...     log_lik = -optax.softmax_cross_entropy_with_integer_labels(model(x), y)
  ...     return rg.nn.elbo_loss(log_lik, kl_divergence(model), num_train=100)
  >>> optimizer = nnx.Optimizer(model, optax.sgd(1e-2), wrt=nnx.Param)
  >>> x, y = jnp.ones((8, 4)), jnp.zeros(8, jnp.int32)
  >>> loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
  >>> _ = optimizer.update(model, grads)  # updates model in place
  >>> model.eval()  # posterior means from now on; model.train() samples again
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

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


class BayesianLayer(nnx.Module):
    """Base class: the posterior ``nnx.Param``\\ s, the noise stream and the forward pass.

    Subclasses set ``sampling`` (``"flipout"``, ``"reparameterization"`` or
    ``"local_reparameterization"``) and build their posterior in ``__init__``.
    """

    sampling: ClassVar[str]

    def _setup(self, posterior, *, deterministic: bool, rng_collection: str, rngs):
        self.kernel_loc = nnx.Param(posterior.kernel_loc)
        self.kernel_rho = nnx.Param(posterior.kernel_rho)
        self.bias_loc = nnx.Param(posterior.bias_loc)
        self.bias_rho = nnx.Param(posterior.bias_rho)
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        if isinstance(rngs, nnx.Rngs):
            self.rngs = rngs[rng_collection].fork()
        elif isinstance(rngs, nnx.RngStream):
            self.rngs = rngs.fork()
        else:
            raise TypeError(
                f"{type(self).__name__} needs rngs=nnx.Rngs(...) (its 'params' stream initializes the posterior, "
                f"its {rng_collection!r} stream draws the weight noise), got {type(rngs).__name__}."
            )

    @property
    def posterior(self) -> DenseParams | Conv2DParams:
        """The current posterior as the functional layers' NamedTuple (arrays, not Params)."""
        cls = DenseParams if self.kernel_loc[...].ndim == 2 else Conv2DParams
        return cls(self.kernel_loc[...], self.kernel_rho[...], self.bias_loc[...], self.bias_rho[...])

    def _noise_key(self, rngs):
        rngs = self.rngs if rngs is None else rngs
        if isinstance(rngs, nnx.Rngs):
            return rngs[self.rng_collection]()
        if isinstance(rngs, nnx.RngStream):
            return rngs()
        if isinstance(rngs, jax.Array):
            return rngs
        raise TypeError(f"rngs must be an nnx.Rngs, an nnx.RngStream or a JAX key, got {type(rngs).__name__}.")

    def _conv(self) -> tuple | None:
        return None

    def __call__(self, x, *, rngs=None, deterministic: bool | None = None):
        """Applies the layer with fresh weight noise (or at the posterior mean if deterministic).

        Args:
          x: ``(batch, features)`` / NHWC, or one example; as the functional layer.
          rngs: overrides the stream given at construction: an ``nnx.Rngs``, an
            ``nnx.RngStream`` or a JAX key.
          deterministic: overrides the module's flag (set by ``model.eval()`` / ``train()``).
        """
        deterministic = self.deterministic if deterministic is None else deterministic
        if deterministic:
            return _frameworks.posterior_mean(self.posterior, x, type(self).__name__, self._conv())
        return _frameworks.forward(self.posterior, self.sampling, x, self._noise_key(rngs), self._conv())

    def set_view(self, deterministic: bool | None = None):
        """For ``nnx.view``: ``deterministic=True`` uses the posterior means."""
        if deterministic is not None:
            self.deterministic = deterministic


class _Dense(BayesianLayer):
    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs, init_scale: float = 1e-2,
                 dtype=jnp.float32, deterministic: bool = False, rng_collection: str = "noise"):
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"{type(self).__name__} needs rngs=nnx.Rngs(...), got {type(rngs).__name__}.")
        posterior = _frameworks.init_dense(rngs.params(), in_features, out_features, init_scale=init_scale,
                                           dtype=dtype)
        self._setup(posterior, deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)


class _Conv2D(BayesianLayer):
    def __init__(self, kernel_size, in_channels: int, out_channels: int, *, rngs: nnx.Rngs, strides=1,
                 padding="SAME", dilation=1, init_scale: float = 1e-2, dtype=jnp.float32,
                 deterministic: bool = False, rng_collection: str = "noise"):
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"{type(self).__name__} needs rngs=nnx.Rngs(...), got {type(rngs).__name__}.")
        posterior = _frameworks.init_conv2d(rngs.params(), kernel_size, in_channels, out_channels,
                                            init_scale=init_scale, dtype=dtype)
        self.strides, self.padding, self.dilation = strides, padding, dilation
        self._setup(posterior, deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)

    def _conv(self):
        return self.strides, self.padding, self.dilation


class DenseFlipout(_Dense):
    """:func:`repgrad.nn.dense_flipout` as an NNX module: ``DenseFlipout(in_features, out_features, rngs=...)``.

    Options: ``init_scale`` and ``dtype`` (as :func:`repgrad.nn.init_dense`),
    ``deterministic``, ``rng_collection`` (default ``"noise"``).
    """

    sampling = "flipout"


class DenseReparameterization(_Dense):
    """:func:`repgrad.nn.dense_reparameterization` (one weight sample per call) as an NNX module."""

    sampling = "reparameterization"


class DenseLocalReparameterization(_Dense):
    """:func:`repgrad.nn.dense_local_reparameterization` (sampled pre-activations) as an NNX module."""

    sampling = "local_reparameterization"


class Conv2DFlipout(_Conv2D):
    """:func:`repgrad.nn.conv2d_flipout` as an NNX module (NHWC inputs, HWIO kernel).

    ``Conv2DFlipout(kernel_size, in_channels, out_channels, rngs=..., strides=1, padding="SAME",
    dilation=1)``; further options as :class:`DenseFlipout`.
    """

    sampling = "flipout"


class Conv2DReparameterization(_Conv2D):
    """:func:`repgrad.nn.conv2d_reparameterization` as an NNX module (NHWC inputs)."""

    sampling = "reparameterization"


class Conv2DLocalReparameterization(_Conv2D):
    """:func:`repgrad.nn.conv2d_local_reparameterization` as an NNX module (NHWC inputs)."""

    sampling = "local_reparameterization"


def kl_divergence(model: nnx.Module, prior=None, *, key=None, num_samples: int = 1):
    """KL(q ‖ p) summed over every :class:`BayesianLayer` in ``model`` (nested modules included).

    As :func:`repgrad.nn.kl_divergence`: closed form for a Normal prior (``None`` is N(0, 1)),
    Monte Carlo with ``key`` otherwise. Differentiable with ``nnx.grad``.

    Example:
      >>> from flax import nnx
      >>> from repgrad.nn.flax import DenseFlipout, kl_divergence
      >>> layer = DenseFlipout(4, 3, rngs=nnx.Rngs(0))
      >>> kl = kl_divergence(layer)
    """
    posteriors = [m.posterior for _, m in nnx.iter_modules(model) if isinstance(m, BayesianLayer)]
    return _frameworks.kl_of_layers(posteriors, "flax", prior, key, num_samples)
