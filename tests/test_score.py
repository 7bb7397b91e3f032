"""Unbiasedness of the score-function estimator (with each baseline) against closed forms
and, for discrete families, exact enumeration.

Every statistical check is |mean − exact| < 5 SE over R independent replicates
(tests/_stats.py): a correct estimator fails one scalar check with probability
≈ 5.7e-7; keys are fixed, so the outcome is deterministic.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, exact_grad, gaussian_costs_problem, replicate
from test_pathwise import FAMILIES, moments_f

import repgrad as rg

R = 400
N = 16


def normal(p):
    return rg.Normal(p["loc"], p["scale"])


@pytest.mark.parametrize("baseline", [None, "loo"])
def test_gaussian_costs_unbiased(baseline):
    f, params, exact_value, exact = gaussian_costs_problem()
    fn = rg.score_value_and_grad(f, normal, num_samples=N, baseline=baseline)
    values, grads = replicate(lambda k: fn(params, k), jax.random.key(11), R)
    assert_unbiased(values, exact_value, name="value")
    assert_unbiased(grads, exact, name=f"score grad, baseline={baseline}")


def test_gaussian_costs_moving_average_unbiased():
    # The moving-average baseline only uses earlier calls, so every step's estimate is
    # unbiased: run T steps (state threaded through lax.scan) per replicate and average.
    f, params, _, exact = gaussian_costs_problem()
    fn = rg.score_grad(f, normal, num_samples=N, baseline=rg.moving_average_baseline(0.5))
    T = 4

    def run(key):
        def step(state, k):
            g, state = fn(params, k, baseline_state=state)
            return state, g

        state, gs = jax.lax.scan(step, fn.init_state(), jax.random.split(key, T))
        return jax.tree_util.tree_map(lambda a: jnp.mean(a, 0), gs), state

    grads, states = replicate(run, jax.random.key(12), R)
    assert_unbiased(grads, exact, name="score grad, moving average")
    assert np.all(states.count == T)
    # After T steps the debiased average tracks E[f] (≈ 4.77) closely.
    f_bar = states.value / (1.0 - 0.5**T)
    assert_unbiased(f_bar, gaussian_costs_problem()[2], name="debiased moving average")


def test_moving_average_state_keeps_dtype():
    # Regression: the state must be a valid lax.scan carry (same dtype in and out).
    fn = rg.score_grad(lambda x: x * x, lambda p: rg.Normal(p, 1.0), num_samples=4, baseline="moving_average")
    state = fn.init_state()
    _, new_state = fn(jnp.float32(1.0), jax.random.key(0), baseline_state=state)
    assert [a.dtype for a in new_state] == [a.dtype for a in state]
    # First call: no history, b = 0; then the debiased baseline equals the first mean.
    assert int(new_state.count) == 1


SCORE_FAMILIES = sorted(set(FAMILIES) - {"uniform"})  # Uniform's support moves with θ: score is biased


@pytest.mark.parametrize("family", SCORE_FAMILIES)
def test_families_unbiased(family):
    dist, params64, closed_form = FAMILIES[family]
    params = tuple(jnp.asarray(p, jnp.float32) for p in params64)
    exact = exact_grad(closed_form, *params64)
    fn = rg.score_grad(moments_f, dist, num_samples=N, baseline="loo")
    g = replicate(lambda k: fn(params, k), jax.random.key(13), R)
    assert_unbiased(g, exact, name=f"{family} score")


def test_dirichlet_unbiased():
    alpha = np.array([[0.6, 1.5, 3.0], [2.0, 0.9, 1.1]])
    w = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]])
    exact = exact_grad(lambda a: jnp.sum(w * a / jnp.sum(a, -1, keepdims=True)), alpha)[0]
    f = lambda x: jnp.sum(jnp.asarray(w, jnp.float32) * x)
    fn = rg.score_grad(f, rg.Dirichlet, num_samples=N, baseline="loo")
    g = replicate(lambda k: fn(jnp.asarray(alpha, jnp.float32), k), jax.random.key(14), R)
    assert_unbiased(g, exact, name="dirichlet score")


def test_mvn_tri_unbiased():
    loc = np.array([0.5, -1.0, 0.2])
    tri = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]])
    w = np.array([1.0, 0.5, -2.0])
    closed = lambda m, L: jnp.dot(w, m) + jnp.dot(m, m) + jnp.sum(jnp.tril(L) ** 2)
    exact = exact_grad(closed, loc, tri)
    f = lambda x: jnp.dot(jnp.asarray(w, jnp.float32), x) + jnp.dot(x, x)
    dist = lambda p: rg.MultivariateNormalTri(p[0], p[1])
    params = (jnp.asarray(loc, jnp.float32), jnp.asarray(tri, jnp.float32))
    fn = rg.score_grad(f, dist, num_samples=N, baseline="loo")
    g = replicate(lambda k: fn(params, k), jax.random.key(15), R)
    assert_unbiased(g, exact, name="mvn-tri score")


def test_bernoulli_by_enumeration():
    # E[f(b)] = Σ_{b ∈ {0,1}³} Π σ(±logit) f(b): exact gradient by enumerating all 8 states.
    logits = np.array([-0.5, 0.3, 1.2])
    target = np.array([0.45, 0.1, 0.8])
    f = lambda b: jnp.sum((b - jnp.asarray(target, b.dtype)) ** 2) + b[0] * b[2]
    states = np.array(list(itertools.product([0.0, 1.0], repeat=3)))

    def closed(lg):
        p = jax.nn.sigmoid(lg)
        probs = jnp.prod(jnp.where(states == 1.0, p, 1.0 - p), axis=1)
        return jnp.sum(probs * jax.vmap(f)(jnp.asarray(states, lg.dtype)))

    exact = exact_grad(closed, logits)[0]
    fn = rg.score_grad(f, lambda lg: rg.Bernoulli(logits=lg), num_samples=N)  # no baseline
    g = replicate(lambda k: fn(jnp.asarray(logits, jnp.float32), k), jax.random.key(16), R)
    assert_unbiased(g, exact, name="bernoulli score")


def test_bernoulli_probs_parameterization():
    # Gradient w.r.t. probs: E[b] = p, so ∂/∂p E[Σ c·b] = c.
    c = jnp.array([1.0, -2.0, 0.5])
    fn = rg.score_grad(
        lambda b: jnp.sum(c * b), lambda p: rg.Bernoulli(probs=p), num_samples=N, baseline="loo"
    )
    g = replicate(lambda k: fn(jnp.array([0.2, 0.5, 0.7]), k), jax.random.key(17), R)
    assert_unbiased(g, np.asarray(c), name="bernoulli(probs) score")


def test_categorical_by_enumeration():
    # Batched Categorical (2 rows × 4 classes): E[Σ_r table[r, x_r]] = Σ_r softmax(l_r)·table[r].
    logits = np.array([[0.1, -1.0, 0.7, 0.0], [1.5, 0.2, -0.3, -2.0]])
    table = np.array([[1.0, 3.0, -2.0, 0.5], [0.0, -1.0, 2.0, 4.0]])
    closed = lambda lg: jnp.sum(jax.nn.softmax(lg, axis=-1) * table)
    exact = exact_grad(closed, logits)[0]
    tab = jnp.asarray(table, jnp.float32)
    f = lambda x: jnp.sum(jnp.take_along_axis(tab, x[:, None], axis=1))
    fn = rg.score_grad(f, lambda lg: rg.Categorical(logits=lg), num_samples=N, baseline="loo")
    g = replicate(lambda k: fn(jnp.asarray(logits, jnp.float32), k), jax.random.key(18), R)
    assert_unbiased(g, exact, name="categorical score")


def test_poisson_unbiased():
    # E[x + x²] = λ + λ + λ² ⇒ ∂λ = 2 + 2λ.
    rate = np.array([0.7, 3.0])
    fn = rg.score_grad(lambda x: jnp.sum(x + x * x), rg.Poisson, num_samples=N, baseline="loo")
    g = replicate(lambda k: fn(jnp.asarray(rate, jnp.float32), k), jax.random.key(19), R)
    assert_unbiased(g, 2.0 + 2.0 * rate, name="poisson score")


def test_value_is_plain_monte_carlo_mean():
    # The returned value is mean f(x_n) on the same samples, whatever the baseline.
    f = lambda x: jnp.sum(jnp.cos(x))
    params = {"loc": jnp.array([0.3, -0.2]), "scale": jnp.array([1.0, 0.5])}
    key = jax.random.key(3)
    v_none, _ = rg.score_value_and_grad(f, normal, num_samples=8)(params, key)
    v_loo, _ = rg.score_value_and_grad(f, normal, num_samples=8, baseline="loo")(params, key)
    v_pw, _ = rg.pathwise_value_and_grad(f, normal, num_samples=8)(params, key)
    assert v_none == v_loo
    np.testing.assert_allclose(v_none, v_pw, rtol=1e-6)  # same draws as pathwise
