"""Computation graphs: integer and boolean costs are taken with a correct gradient, the same way
by the returned cost, ``rg.cost`` and ``rg.dice`` (issue 16, case 5); ``rg.sample``/``rg.cost``
inside a JAX transformation of the model get an error that names ``rg.dice`` (case 14)."""

import jax
import jax.numpy as jnp
import pytest
from _stats import assert_unbiased, replicate

import repgrad as rg

KEY = jax.random.key(0)
THETA = jnp.array([0.2, -0.3, 0.5])
TARGET = jnp.array([1.0, 0.0, 1.0])


def _exact_mismatch_grad(theta):
    # E[Σ 1(b_i ≠ t_i)] = Σ (t_i ? 1 − p_i : p_i), p = σ(θ)
    p = jax.nn.sigmoid(theta)
    return jax.grad(lambda t: jnp.sum(jnp.where(TARGET > 0, 1.0 - jax.nn.sigmoid(t), jax.nn.sigmoid(t))))(theta), p


def _returned(theta, key):
    b = rg.sample(key, rg.Bernoulli(logits=theta), estimator="score")
    return jnp.sum(b != TARGET)  # int32


def _recorded(theta, key):
    b = rg.sample(key, rg.Bernoulli(logits=theta), estimator="score")
    rg.cost(b != TARGET)  # bool
    return None


@pytest.mark.parametrize("model", [_returned, _recorded], ids=["returned-int", "rg.cost-bool"])
@pytest.mark.parametrize("baseline", [None, "loo"])
def test_integer_costs_in_stochastic(model, baseline):
    objective = rg.stochastic(model, num_samples=16, baseline=baseline)
    value = objective(THETA, KEY)
    assert jnp.issubdtype(value.dtype, jnp.floating)
    g = replicate(lambda k: jax.grad(objective)(THETA, k), KEY, 300)
    assert_unbiased(g, _exact_mismatch_grad(THETA)[0])
    h = replicate(lambda k: jax.hessian(objective)(THETA, k), jax.random.key(1), 300)
    exact_h = jax.hessian(lambda t: jnp.sum(jnp.where(TARGET > 0, 1.0 - jax.nn.sigmoid(t), jax.nn.sigmoid(t))))(THETA)
    assert_unbiased(h, exact_h)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
def test_integer_costs_in_dice(dtype):
    rewards = jnp.array([1, 2, 3], jnp.int32)

    def episode(theta, key):
        flips = jax.random.bernoulli(key, jax.nn.sigmoid(theta), (3,))
        log_probs = rg.Bernoulli(logits=theta).log_prob(flips.astype(jnp.float32))
        costs = flips if dtype == jnp.bool_ else flips.astype(jnp.int32) * rewards
        return rg.dice(costs, log_probs, dependence="all")

    g = replicate(lambda k: jax.grad(episode)(jnp.float32(0.3), k), KEY, 4000)
    p = jax.nn.sigmoid(0.3)
    scale = 3.0 if dtype == jnp.bool_ else 6.0
    assert_unbiased(g, scale * p * (1 - p))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda body, key: jax.vmap(body)(jax.random.split(key, 2)),
        lambda body, key: jax.lax.scan(lambda c, k: (c, body(k)), 0.0, jax.random.split(key, 2))[1],
        lambda body, key: jax.lax.cond(True, body, body, key),
        lambda body, key: jax.jit(body)(key),
        lambda body, key: jax.checkpoint(body)(key),
    ],
    ids=["vmap", "scan", "cond", "jit", "checkpoint"],
)
@pytest.mark.parametrize("what", ["sample", "cost"])
def test_nodes_inside_transformations_name_dice(wrap, what):
    def model(theta, key):
        def body(k):
            if what == "sample":
                return rg.sample(k, rg.Normal(theta, 1.0))
            z = jax.random.normal(k)
            rg.cost(z)
            return z

        return jnp.sum(wrap(body, key))

    with pytest.raises(RuntimeError, match=r"rg\.dice"):
        rg.stochastic(model, num_samples=2)(jnp.float32(0.1), KEY)
