"""Measure-valued gradients beyond the Normal: Gamma, Exponential, Poisson, Bernoulli,
Categorical, coupled and not, against closed forms or enumeration.

Each check is |mean − exact| < 5 SE over R replicates (tests/_stats.py): a correct
estimator fails one scalar check with probability ≈ 5.7e-7; keys are fixed.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, exact_grad, replicate

import repgrad as rg

R = 300
N = 16


def square(x):
    return jnp.sum(x * x)


# (dist builder, params, closed-form E[Σ x²] as a function of the params)
CASES = {
    "gamma": (
        lambda p: rg.Gamma(p[0], p[1]),
        (np.array([1.5, 3.0]), np.array([2.0, 0.7])),
        lambda a, b: jnp.sum(a * (a + 1.0) / (b * b)),
    ),
    "exponential": (
        lambda p: rg.Exponential(p[0]),
        (np.array([0.8, 2.0]),),
        lambda lam: jnp.sum(2.0 / (lam * lam)),
    ),
    "poisson": (
        lambda p: rg.Poisson(p[0]),
        (np.array([0.5, 2.0]),),
        lambda lam: jnp.sum(lam + lam * lam),
    ),
}


_CACHE = {}


def _estimates(family, coupled):
    """R replicate estimates (cached: the coupling test reuses them, one compile each)."""
    if (family, coupled) not in _CACHE:
        dist, theta, _ = CASES[family]
        params = tuple(jnp.asarray(t, jnp.float32) for t in theta)
        fn = rg.measure_valued_grad(square, dist, num_samples=N, coupled=coupled)
        _CACHE[family, coupled] = replicate(lambda k: fn(params, k), jax.random.key(1), R)
    return _CACHE[family, coupled]


@pytest.mark.parametrize("coupled", [True, False], ids=["coupled", "uncoupled"])
@pytest.mark.parametrize("family", sorted(CASES))
def test_continuous_and_count_families(family, coupled):
    _, theta, closed = CASES[family]
    assert_unbiased(_estimates(family, coupled), exact_grad(closed, *theta), name=f"{family} measure-valued")


@pytest.mark.parametrize("family", ["gamma", "poisson"])
def test_coupling_lowers_variance(family):
    # Common random numbers: f(x⁺) and f(x⁻) are positively correlated for smooth f.
    var = {c: np.var(_estimates(family, c)[-1], axis=0) for c in (True, False)}  # the rate leaf
    assert np.all(var[True] <= var[False])


def test_bernoulli_enumeration():
    logits = jnp.array([0.3, -1.0, 1.5])
    w = jnp.array([1.0, 2.0, -0.5])
    f = lambda b: jnp.sum(w * b) + 3.0 * b[0] * b[1] - jnp.sin(b[2] + b[0])
    dist = lambda lg: rg.Bernoulli(logits=lg)
    bits = jnp.array(list(itertools.product([0.0, 1.0], repeat=3)), jnp.float32)

    def exact_value(lg):
        return jnp.sum(jnp.exp(jnp.sum(jax.vmap(dist(lg).log_prob)(bits), -1)) * jax.vmap(f)(bits))

    exact = jax.grad(exact_value)(logits)
    # p^± = δ₁, δ₀ are deterministic, so coupled=True/False give the same estimator.
    g = replicate(lambda k: rg.measure_valued_grad(f, dist, num_samples=N)(logits, k), jax.random.key(3), R)
    assert_unbiased(g, exact, name="bernoulli measure-valued")


def test_categorical_enumeration_logits_and_probs():
    logits = jnp.array([[0.1, 0.5, -0.3], [1.0, 0.0, -1.0]])
    vals = jnp.array([[1.0, -2.0, 0.5], [3.0, 0.0, 1.0]])
    f = lambda x: jnp.sum(vals[jnp.arange(2), x]) + vals[0, x[0]] * vals[1, x[1]]

    def expected(p):  # exact E[f] for independent rows with probabilities p
        e = jnp.sum(p * vals, axis=-1)
        return jnp.sum(e) + e[0] * e[1]

    exact_l = jax.grad(lambda lg: expected(jax.nn.softmax(lg, -1)))(logits)
    g = replicate(
        lambda k: rg.measure_valued_grad(f, lambda lg: rg.Categorical(logits=lg), num_samples=N)(logits, k),
        jax.random.key(4),
        R,
    )
    assert_unbiased(g, exact_l, name="categorical (logits)")
    probs = jax.nn.softmax(logits, -1)
    # d/dp of E[f] through Categorical(probs=p) = log_softmax(log p): the gradient of expected(p / Σp)
    exact_p = jax.grad(lambda p: expected(p / jnp.sum(p, -1, keepdims=True)))(probs)
    g = replicate(
        lambda k: rg.measure_valued_grad(f, lambda p: rg.Categorical(probs=p), num_samples=N)(probs, k),
        jax.random.key(5),
        R,
    )
    assert_unbiased(g, exact_p, name="categorical (probs)")


def test_expectation_and_jit_compose():
    f = lambda x, w: jnp.sum(w * x * x)
    w = jnp.array([1.0, 2.0])
    loss = rg.expectation(f, lambda p: rg.Poisson(p), estimator="measure_valued", num_samples=8)
    lam = jnp.array([0.5, 2.0])
    grad_fn = jax.jit(jax.grad(loss, argnums=(0, 2)))
    g1, g2 = grad_fn(lam, jax.random.key(0), w), grad_fn(lam, jax.random.key(0), w)
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2, strict=True))
    assert g1[0].shape == (2,) and g1[1].shape == (2,)


def test_unsupported_family_error():
    with pytest.raises(TypeError, match="no weak-derivative decomposition"):
        rg.measure_valued_grad(square, lambda p: rg.Beta(p, 1.0), num_samples=4)(
            jnp.ones(2), jax.random.key(0)
        )
