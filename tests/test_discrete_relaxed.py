"""Gumbel-softmax / Concrete and straight-through: biased estimators.

Theory used (Bernoulli logits θ, logistic noise L, f(y) = Σ a_i y_i linear):
d/dθ E[σ((θ + L)/τ)] = E_{s∼Logistic}[σ'(τ s − θ)] → σ'(θ) as τ → 0, with bias O(τ²).
So for linear f the relaxed gradient converges to the exact one as τ → 0 (the value
E[f(relaxed)] converges too). We check (1) at τ = 1 the estimator matches this
relaxed gradient (computed by quadrature) and is visibly biased for the discrete one,
(2) at τ = 0.02 it agrees with the exact gradient within 5 SE (quadrature shows the
remaining bias is far below the SE). 5-SE checks fail by chance with p ≈ 5.7e-7.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, mean_and_se, replicate

import repgrad as rg

R = 2000
THETA = np.array([-1.0, 0.3, 2.0])
A = jnp.array([1.0, -2.0, 0.5])


def bern(p):
    return rg.Bernoulli(logits=p)


def linear(y):
    return jnp.sum(A * y)


def relaxed_grad_quadrature(theta, tau):
    s = np.linspace(-60.0, 60.0, 400001)
    ds = s[1] - s[0]
    dsig = lambda x: np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))) ** 2
    return np.array([np.sum(dsig(s) * dsig(tau * s - th)) * ds for th in theta]) * np.asarray(A)


def exact_grad():
    p = 1.0 / (1.0 + np.exp(-THETA))
    return p * (1.0 - p) * np.asarray(A)


def test_relaxed_biased_at_high_temperature():
    g = replicate(lambda k: rg.gumbel_softmax_grad(linear, bern, num_samples=4, temperature=1.0)(jnp.asarray(THETA, jnp.float32), k), jax.random.key(0), R)
    relaxed = relaxed_grad_quadrature(THETA, 1.0)
    assert_unbiased(g, relaxed, name="gumbel-softmax vs its relaxed objective")
    m, se = mean_and_se(g)
    assert np.max(np.abs(m - exact_grad()) / se) > 5.0  # biased for the discrete objective


def test_relaxed_converges_as_temperature_goes_to_zero():
    biases = [np.max(np.abs(relaxed_grad_quadrature(THETA, tau) - exact_grad())) for tau in (1.0, 0.3, 0.1, 0.02)]
    assert all(b1 > b2 for b1, b2 in zip(biases, biases[1:], strict=False))  # monotone in τ
    g = replicate(lambda k: rg.gumbel_softmax_grad(linear, bern, num_samples=8, temperature=0.02)(jnp.asarray(THETA, jnp.float32), k), jax.random.key(1), R)
    _, se = mean_and_se(g)
    assert np.all(np.abs(relaxed_grad_quadrature(THETA, 0.02) - exact_grad()) < 0.2 * se)  # the O(τ²) bias is invisible at this sample size
    assert_unbiased(g, exact_grad(), name="gumbel-softmax at τ=0.02")


def test_straight_through_value_is_hard_and_gradient_soft():
    theta = jnp.asarray(THETA, jnp.float32)
    fn = rg.gumbel_softmax_value_and_grad(linear, bern, num_samples=4, temperature=0.5, straight_through=True)
    v, g = replicate(lambda k: fn(theta, k), jax.random.key(2), R)
    exact_value = float(np.sum(np.asarray(A) / (1.0 + np.exp(-THETA))))
    assert_unbiased(v, exact_value, name="ST value (hard forward pass)")
    # For linear f the ST gradient equals the relaxed one (both are A · ∂y_soft/∂θ).
    assert_unbiased(g, relaxed_grad_quadrature(THETA, 0.5), name="ST gradient")
    # hard forward pass: every per-sample value is a sum of a subset of A
    loss = rg.expectation(lambda y: (jnp.sum(y * (1.0 - y)), y), bern, estimator="straight_through", num_samples=8, has_aux=True, temperature=0.5)
    val, y = loss(theta, jax.random.key(3))
    assert float(val) == 0.0 and set(np.unique(np.asarray(y)).tolist()) <= {0.0, 1.0}


def test_categorical_relaxed_and_straight_through():
    theta = jnp.array([[0.2, -0.5, 0.1], [1.0, 0.0, -1.0]])
    cat = lambda p: rg.Categorical(logits=p)
    costs = jnp.array([0.0, 1.0, 3.0])
    f = lambda y: jnp.sum(y @ costs)  # linear
    exact = rg.enumeration_grad(lambda k: jnp.sum(costs[k]), cat)(theta, jax.random.key(0))
    # relaxed samples lie on the simplex; ST samples are one-hot in the forward pass
    loss = rg.expectation(lambda y: (jnp.float32(0.0), y), cat, estimator="gumbel_softmax", num_samples=16, has_aux=True, temperature=0.5)
    _, y = loss(theta, jax.random.key(1))
    np.testing.assert_allclose(np.sum(y, axis=-1), 1.0, rtol=1e-5)
    loss = rg.expectation(lambda y: (jnp.float32(0.0), y), cat, estimator="straight_through", num_samples=16, has_aux=True)
    _, y = loss(theta, jax.random.key(1))
    assert set(np.unique(np.asarray(y)).tolist()) == {0.0, 1.0}
    # small temperature: agrees with the exact gradient of the linear objective
    g = replicate(lambda k: rg.gumbel_softmax_grad(f, cat, num_samples=8, temperature=0.05)(theta, k), jax.random.key(2), R)
    assert_unbiased(g, exact, name="categorical gumbel-softmax at τ=0.05")


def test_temperature_checked_and_learnable():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        rg.gumbel_softmax_grad(linear, bern, temperature=0.0)
    # a traced temperature: differentiate the relaxed objective w.r.t. τ itself
    def obj(tau):
        return rg.expectation(linear, bern, estimator="concrete", num_samples=8, temperature=tau)(jnp.zeros(3), jax.random.key(0))

    assert np.isfinite(float(jax.grad(obj)(jnp.float32(0.5))))
