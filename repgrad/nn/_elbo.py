"""The evidence lower bound for Bayesian networks, with the KL scaled per example."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ._kl import kl_divergence

__all__ = ["elbo_loss", "make_elbo_loss"]


def _check_num_train(num_train):
    if isinstance(num_train, bool) or not isinstance(num_train, int) or num_train < 1:
        raise ValueError(
            f"num_train must be the (positive int) size of the training set, got {num_train!r}; the KL is "
            "divided by it so that the loss is the negative ELBO per training example."
        )


def elbo_loss(log_likelihood, kl, *, num_train: int, kl_weight: float = 1.0):
    r"""Negative ELBO per training example, estimated from one minibatch.

    For a training set of size D and a minibatch B,

    .. math::
       -\frac{\mathrm{ELBO}}{D} \approx -\frac1{|B|}\sum_{n\in B}\log p(y_n \mid x_n, w)
            + \frac{\mathrm{KL}(q\,\|\,p)}{D},

    an unbiased estimate of the full-data negative ELBO divided by D. Dividing the KL by
    the *training-set* size (not the batch size) is what keeps the prior's weight right.

    Args:
      log_likelihood: per-example log-likelihoods, shape ``(batch,)`` (not their sum).
      kl: scalar KL(q ‖ p), e.g. from :func:`kl_divergence`.
      num_train: number of training examples D.
      kl_weight: multiplies the KL (1 is the ELBO; < 1 for KL annealing / cold posteriors).

    Returns:
      The scalar loss to minimize.

    Example:
      >>> import jax.numpy as jnp, repgrad as rg
      >>> float(rg.nn.elbo_loss(jnp.array([-1.0, -3.0]), 50.0, num_train=100))
      2.5
    """
    _check_num_train(num_train)
    log_likelihood = jnp.asarray(log_likelihood)
    if log_likelihood.ndim != 1:
        raise ValueError(
            f"log_likelihood must hold one value per example, shape (batch,), got shape {log_likelihood.shape}. "
            "Sum over any event axes first (e.g. jnp.sum(ll, axis=-1)); do not pre-average over the batch."
        )
    kl = jnp.asarray(kl)
    if kl.ndim != 0:
        raise ValueError(f"kl must be a scalar, got shape {kl.shape}; sum the per-weight KLs.")
    dtype = log_likelihood.dtype
    return -jnp.mean(log_likelihood) + jnp.asarray(kl_weight, dtype) * kl.astype(dtype) / jnp.asarray(num_train, dtype)


def make_elbo_loss(apply_fn, log_likelihood_fn, *, num_train: int, prior=None, kl_num_samples: int = 1,
                   kl_weight: float = 1.0, has_aux: bool = False):
    """Builds ``loss(params, key, x, y)``: the negative ELBO per training example.

    ``apply_fn(params, x, key)`` runs the Bayesian network (one forward pass with its
    own randomness); ``log_likelihood_fn(outputs, y)`` returns per-example
    log-likelihoods ``(batch,)``. The KL of every Bayesian layer in ``params`` to
    ``prior`` (see :func:`kl_divergence`; Monte Carlo with a key split off ``key`` when
    no closed form exists) is divided by ``num_train``, as in :func:`elbo_loss`.

    Args:
      apply_fn: ``apply_fn(params, x, key) -> outputs``.
      log_likelihood_fn: ``log_likelihood_fn(outputs, y) -> (batch,)``.
      num_train: training-set size.
      prior: prior for :func:`kl_divergence` (``None``: standard Normal).
      kl_num_samples: Monte Carlo draws for a non-Normal prior.
      kl_weight: see :func:`elbo_loss`.
      has_aux: also return ``{"nll": ..., "kl": ...}``.

    Returns:
      ``loss(params, key, x, y)``, ready for ``jax.value_and_grad`` and optax.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> def apply(params, x, key):
      ...     return rg.nn.dense_flipout(params, x, key)
      >>> def log_lik(logits, y):
      ...     return jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]
      >>> loss = rg.nn.make_elbo_loss(apply, log_lik, num_train=1000)
      >>> params = rg.nn.init_dense(jax.random.key(0), 4, 3)
      >>> grads = jax.grad(loss)(params, jax.random.key(1), jnp.ones((8, 4)), jnp.zeros(8, jnp.int32))
    """
    _check_num_train(num_train)

    @functools.wraps(apply_fn)
    def loss(params, key, x, y):
        k_fwd, k_kl = jax.random.split(key)
        ll = log_likelihood_fn(apply_fn(params, x, k_fwd), y)
        kl = kl_divergence(params, prior, key=k_kl, num_samples=kl_num_samples)
        value = elbo_loss(ll, kl, num_train=num_train, kl_weight=kl_weight)
        if has_aux:
            return value, {"nll": -jnp.mean(ll), "kl": kl}
        return value

    return loss
