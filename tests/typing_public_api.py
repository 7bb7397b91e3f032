"""Not collected by pytest: ``make typecheck`` runs pyright (basic mode) on this file and on the
package's public modules, so that code written the way the README and the docs write it
type-checks against repgrad's annotations. Calls only public names (``repgrad.__all__``,
``repgrad.nn``, ``repgrad.nn.flax``, ``repgrad.nn.equinox``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import repgrad as rg


def f(x: jax.Array, k: float) -> jax.Array:
    return jnp.sum(jnp.cos(k * x))


def dist(p: dict[str, jax.Array]) -> rg.Normal:
    return rg.Normal(p["loc"], p["scale"])


def estimators() -> None:
    params = {"loc": jnp.zeros(3), "scale": jnp.ones(3)}
    key = jax.random.key(0)
    g = rg.pathwise_grad(f, dist, num_samples=64)(params, key, 2.0)
    v, g = rg.score_value_and_grad(f, dist, num_samples=64, baseline="loo")(params, key, 2.0)
    g = rg.measure_valued_grad(f, dist, num_samples=64)(params, key, 2.0)
    loss = rg.expectation(f, dist, estimator="score", num_samples=64, baseline="loo")
    g_params, g_k = jax.grad(loss, argnums=(0, 2))(params, key, 2.0)
    fn = rg.score_grad(f, dist, num_samples=8, baseline=rg.moving_average_baseline(0.9))
    del v, g, g_params, g_k, fn


def bayesian_layers() -> None:
    params = rg.nn.init_dense(jax.random.key(0), 4, 3)
    x = jnp.ones((8, 4))
    y = rg.nn.dense_flipout(params, x, jax.random.key(1))
    kl = rg.nn.kl_divergence([params], rg.Normal(0.0, 1.0))
    loss = rg.nn.elbo_loss(-jnp.sum(y * y, axis=-1), kl, num_train=100)
    del loss


def flax_modules() -> None:
    from flax import nnx

    from repgrad.nn.flax import DenseFlipout, kl_divergence

    layer = DenseFlipout(4, 3, rngs=nnx.Rngs(0))
    y = layer(jnp.ones((8, 4)))
    kl = kl_divergence(layer)
    del y, kl


def equinox_modules() -> None:
    from repgrad.nn.equinox import DenseFlipout, kl_divergence

    layer = DenseFlipout(4, 3, key=jax.random.key(0))
    y = layer(jnp.ones((8, 4)), key=jax.random.key(1))
    kl = kl_divergence(layer)
    del y, kl
