"""Unbiasedness of the pathwise estimator against closed forms.

Every statistical check is |mean − exact| < 5 SE over R independent replicates
(see tests/_stats.py): a correct estimator fails one such scalar check with
probability ≈ 5.7e-7, and the keys are fixed, so the tests are deterministic.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, exact_grad, gaussian_costs_problem, replicate

import repgrad as rg

R = 400  # replicates
N = 16  # samples per replicate


def normal(p):
    return rg.Normal(p["loc"], p["scale"])


def test_gaussian_costs_unbiased():
    f, params, exact_value, exact = gaussian_costs_problem()
    fn = rg.pathwise_value_and_grad(f, normal, num_samples=N)
    values, grads = replicate(lambda k: fn(params, k), jax.random.key(1), R)
    assert_unbiased(values, exact_value, name="value")
    # linear cost: the pathwise ∂μ estimate of E[2x] is exactly 2 (no noise).
    np.testing.assert_allclose(grads["loc"][:, [0, 4]], 2.0, rtol=1e-6)
    assert_unbiased(grads, exact, name="pathwise grad")


def test_mvn_diag_matches_normal():
    f, params, _, exact = gaussian_costs_problem()
    dist = lambda p: rg.MultivariateNormalDiag(p["loc"], p["scale"])
    g = replicate(lambda k: rg.pathwise_grad(f, dist, num_samples=N)(params, k), jax.random.key(2), R)
    assert_unbiased({"loc": g["loc"], "scale": g["scale"]}, exact, name="mvn-diag pathwise")


# (dist builder, params, closed-form E[f] as a function of the params' values)
# with f(x) = Σ (w1·x + w2·x²) via mean and variance: E[x²] = Var + mean².
def _moments(mean, var):
    return jnp.sum(0.7 * mean + 0.3 * (var + mean * mean))


FAMILIES = {
    "gamma": (
        lambda p: rg.Gamma(p[0], p[1]),
        (np.array([0.8, 2.5]), np.array([1.5, 0.7])),
        lambda a, b: _moments(a / b, a / (b * b)),
    ),
    "beta": (
        lambda p: rg.Beta(p[0], p[1]),
        (np.array([0.7, 3.0]), np.array([2.0, 1.2])),
        lambda a, b: _moments(a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1.0))),
    ),
    "exponential": (
        lambda p: rg.Exponential(p[0]),
        (np.array([0.6, 2.0]),),
        lambda r: _moments(1.0 / r, 1.0 / (r * r)),
    ),
    "lognormal": (
        lambda p: rg.LogNormal(p[0], p[1]),
        (np.array([-0.3, 0.2]), np.array([0.4, 0.25])),
        lambda m, s: _moments(jnp.exp(m + 0.5 * s * s), jnp.expm1(s * s) * jnp.exp(2.0 * m + s * s)),
    ),
    "laplace": (
        lambda p: rg.Laplace(p[0], p[1]),
        (np.array([0.5, -1.0]), np.array([0.8, 1.3])),
        lambda m, s: _moments(m, 2.0 * s * s),
    ),
    "logistic": (
        lambda p: rg.Logistic(p[0], p[1]),
        (np.array([0.5, -1.0]), np.array([0.8, 0.6])),
        lambda m, s: _moments(m, (s * np.pi) ** 2 / 3.0),
    ),
    "uniform": (
        lambda p: rg.Uniform(p[0], p[1]),
        (np.array([-0.5, 1.0]), np.array([1.5, 1.4])),
        lambda lo, hi: _moments(0.5 * (lo + hi), (hi - lo) ** 2 / 12.0),
    ),
}


def moments_f(x):
    return jnp.sum(0.7 * x + 0.3 * x * x)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_families_unbiased(family):
    dist, params64, closed_form = FAMILIES[family]
    params = tuple(jnp.asarray(p, jnp.float32) for p in params64)
    exact = exact_grad(closed_form, *params64)
    fn = rg.pathwise_grad(moments_f, dist, num_samples=N)
    g = replicate(lambda k: fn(params, k), jax.random.key(3), R)
    assert_unbiased(g, exact, name=f"{family} pathwise")


def test_dirichlet_unbiased():
    # E[w·x] = w·α/Σα for x ~ Dirichlet(α); batch of two simplices.
    alpha = np.array([[0.6, 1.5, 3.0], [2.0, 0.9, 1.1]])
    w = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]])
    exact = exact_grad(lambda a: jnp.sum(w * a / jnp.sum(a, -1, keepdims=True)), alpha)[0]
    f = lambda x: jnp.sum(jnp.asarray(w, jnp.float32) * x)
    fn = rg.pathwise_grad(f, rg.Dirichlet, num_samples=N)
    g = replicate(lambda k: fn(jnp.asarray(alpha, jnp.float32), k), jax.random.key(4), R)
    assert_unbiased(g, exact, name="dirichlet pathwise")


def test_mvn_tri_unbiased():
    # E[w·x + |x|²] = w·μ + |μ|² + tr(L Lᵀ); only L's lower triangle is a parameter.
    loc = np.array([0.5, -1.0, 0.2])
    tri = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]])
    w = np.array([1.0, 0.5, -2.0])
    closed = lambda m, L: jnp.dot(w, m) + jnp.dot(m, m) + jnp.sum(jnp.tril(L) ** 2)
    exact = exact_grad(closed, loc, tri)
    f = lambda x: jnp.dot(jnp.asarray(w, jnp.float32), x) + jnp.dot(x, x)
    dist = lambda p: rg.MultivariateNormalTri(p[0], p[1])
    params = (jnp.asarray(loc, jnp.float32), jnp.asarray(tri, jnp.float32))
    g = replicate(lambda k: rg.pathwise_grad(f, dist, num_samples=N)(params, k), jax.random.key(5), R)
    assert np.all(g[1][:, 0, 1:] == 0) and np.all(g[1][:, 1, 2] == 0)  # upper triangle: no gradient
    assert_unbiased(g, exact, name="mvn-tri pathwise")


def test_gradient_wrt_f_args_is_not_returned_but_value_uses_them():
    # pathwise_grad differentiates params only; f's extra args are plain inputs.
    f = lambda x, c: jnp.sum((x - c) ** 2)
    fn = rg.pathwise_value_and_grad(f, normal, num_samples=8)
    params = {"loc": jnp.zeros(2), "scale": jnp.ones(2)}
    v0, g0 = fn(params, jax.random.key(0), jnp.zeros(2))
    v1, g1 = fn(params, jax.random.key(0), jnp.ones(2))
    assert jax.tree_util.tree_structure(g1) == jax.tree_util.tree_structure(params)
    assert float(v1) != float(v0)
