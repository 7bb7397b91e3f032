"""``expectation``: surrogate values, gradients w.r.t. params (each estimator) and w.r.t.
f's own arguments, and agreement between estimators on the same problem.

Checks are |mean − exact| < 5 SE (or |mean_a − mean_b| < 5 combined SE) over R
replicates (tests/_stats.py): chance failure ≈ 5.7e-7 per scalar; keys are fixed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_agree, assert_unbiased, exact_grad, replicate

import repgrad as rg

R = 400
N = 16


def normal(p):
    return rg.Normal(p["loc"], p["scale"])


# f(x, w) = Σ cos(w·x): E = Σ cos(w μ) exp(−w² σ²/2); gradients w.r.t. μ, σ and w.
MU, SIGMA, W = np.array([0.4, -0.9]), np.array([0.8, 0.5]), np.array([1.3, 0.7])


def f_cos(x, w):
    return jnp.sum(jnp.cos(w * x))


def closed_cos(mu, sigma, w):
    return jnp.sum(jnp.cos(w * mu) * jnp.exp(-0.5 * w * w * sigma * sigma))


PARAMS = {"loc": jnp.asarray(MU, jnp.float32), "scale": jnp.asarray(SIGMA, jnp.float32)}
WF = jnp.asarray(W, jnp.float32)
EXACT = dict(zip(("loc", "scale", "w"), exact_grad(closed_cos, MU, SIGMA, W), strict=True))
OPTIONS = {
    "pathwise": {},
    "score": {"baseline": "loo"},
    "measure_valued": {},
}


def _grads(estimator, key):
    loss = rg.expectation(f_cos, normal, estimator=estimator, num_samples=N, **OPTIONS[estimator])
    g = jax.grad(loss, argnums=(0, 2))
    return replicate(lambda k: g(PARAMS, k, WF), key, R)


@pytest.fixture(scope="module")
def grads_by_estimator():
    return {name: _grads(name, jax.random.key(31 + i)) for i, name in enumerate(OPTIONS)}


@pytest.mark.parametrize("estimator", sorted(OPTIONS))
def test_grad_of_expectation_unbiased(grads_by_estimator, estimator):
    g_params, g_w = grads_by_estimator[estimator]
    assert_unbiased(g_params, {"loc": EXACT["loc"], "scale": EXACT["scale"]}, name=f"{estimator} params")
    # Gradients w.r.t. f's own argument flow by autodiff: E[∇_w f(x, w)] — unbiased for every estimator.
    assert_unbiased(g_w, EXACT["w"], name=f"{estimator} d/dw")


def test_estimators_agree(grads_by_estimator):
    # Same problem, independent keys: every pair has equal means within 5 combined SE.
    names = sorted(grads_by_estimator)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert_agree(grads_by_estimator[a][0], grads_by_estimator[b][0], name=f"{a} vs {b}")


def test_matches_value_and_grad_transforms():
    # jax.value_and_grad(expectation(...)) is the *_value_and_grad transform, and the loss
    # value is the plain MC mean of f on the same draws as pathwise. (Measure-valued is
    # covered statistically above and in test_measure_valued_normal.py; its compiles are slow.)
    key = jax.random.key(8)
    pairs = {
        "pathwise": rg.pathwise_value_and_grad(f_cos, normal, num_samples=N),
        "score": rg.score_value_and_grad(f_cos, normal, num_samples=N, baseline="loo"),
    }
    for name, vg in pairs.items():
        loss = rg.expectation(f_cos, normal, estimator=name, num_samples=N, **OPTIONS[name])
        v1, g1 = jax.jit(jax.value_and_grad(loss))(PARAMS, key, WF)
        v2, g2 = jax.jit(vg)(PARAMS, key, WF)
        assert v1.shape == () and v1.dtype == jnp.float32
        np.testing.assert_allclose(v1, v2, rtol=1e-6)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g1, g2)
        if name == "pathwise":
            v_ref = v1
        np.testing.assert_allclose(v1, v_ref, rtol=1e-6)  # same draws, same MC mean


def test_aliases_and_registry():
    assert {"pathwise", "score", "measure_valued"} <= set(rg.ESTIMATORS)
    key = jax.random.key(0)
    a = rg.expectation(f_cos, normal, estimator="reinforce", num_samples=4)
    b = rg.expectation(f_cos, normal, estimator="score", num_samples=4)
    assert jnp.array_equal(jax.grad(a)(PARAMS, key, WF)["loc"], jax.grad(b)(PARAMS, key, WF)["loc"])


def test_stateful_baseline_and_aux_outputs():
    loss = rg.expectation(
        lambda x: (jnp.sum(x * x), x[0]),
        normal,
        estimator="score",
        num_samples=4,
        has_aux=True,
        baseline="moving_average",
    )
    state = loss.init_state()
    (g, (aux, new_state)) = jax.grad(loss, has_aux=True)(PARAMS, jax.random.key(0), baseline_state=state)
    assert aux.shape == (4,) and int(new_state.count) == 1
    assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(PARAMS)
