"""ELBO/IWAE surrogates: sticking-the-landing and DReG against the plain pathwise gradient.

Mean comparisons are |mean_a − mean_b| < 5 combined SE over R replicates (independent
keys per estimator; tests/_stats.py): a chance failure has probability ≈ 5.7e-7 per
scalar; keys are fixed. Model: z ~ N(0, 1), x | z ~ N(z, s²) per coordinate, whose exact
posterior is N(x/(1+s²), s²/(1+s²)).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_agree, replicate

import repgrad as rg

R = 300
S2 = 0.5
X = jnp.array([1.0, -0.5])


def log_joint(z, x):
    return jnp.sum(-0.5 * z * z - 0.5 * (x - z) ** 2 / S2)


def normal(p):
    return rg.Normal(p["loc"], p["scale"])


POST_VAR = 1.0 / (1.0 + 1.0 / S2)
POSTERIOR = {"loc": POST_VAR * X / S2, "scale": jnp.full(2, POST_VAR**0.5)}
OFF = {"loc": POSTERIOR["loc"] + 0.3, "scale": POSTERIOR["scale"] * 1.3}


def grads(loss, params, key, num=R):
    return replicate(lambda k: jax.grad(loss)(params, k, X), key, num)


def total_var(g):
    return sum(float(np.sum(np.var(v, axis=0))) for v in jax.tree_util.tree_leaves(g))


def test_elbo_stl_agrees_with_pathwise_and_value_is_the_bound():
    path = rg.elbo(log_joint, normal, num_samples=4, estimator="pathwise")
    stl = rg.elbo(log_joint, normal, num_samples=4, estimator="stl")
    assert_agree(
        grads(stl, OFF, jax.random.key(1)), grads(path, OFF, jax.random.key(2)), name="stl vs pathwise"
    )
    key = jax.random.key(3)
    np.testing.assert_allclose(jax.jit(stl)(OFF, key, X), jax.jit(path)(OFF, key, X), rtol=1e-6)
    # the model gradient (w.r.t. log_joint's args) is the same for both
    gx = [jax.jit(jax.grad(b, argnums=2))(OFF, key, X) for b in (stl, path)]
    np.testing.assert_allclose(gx[0], gx[1], rtol=1e-5)


def test_stl_has_zero_variance_at_the_exact_posterior():
    stl = grads(rg.elbo(log_joint, normal, num_samples=2, estimator="stl"), POSTERIOR, jax.random.key(4), 50)
    path = grads(
        rg.elbo(log_joint, normal, num_samples=2, estimator="pathwise"), POSTERIOR, jax.random.key(4), 50
    )
    assert total_var(stl) < 1e-10
    assert all(np.max(np.abs(v)) < 1e-5 for v in jax.tree_util.tree_leaves(stl))
    assert total_var(path) > 0.1


def test_dreg_agrees_with_iwae_pathwise_and_has_lower_variance():
    k = 32
    path = grads(
        rg.iwae_bound(log_joint, normal, num_samples=k, estimator="pathwise"), OFF, jax.random.key(5)
    )
    dreg = grads(rg.iwae_bound(log_joint, normal, num_samples=k, estimator="dreg"), OFF, jax.random.key(6))
    assert_agree(dreg, path, name="dreg vs iwae pathwise")
    assert total_var(dreg) < 0.1 * total_var(path)


def test_iwae_model_gradient_value_and_k1():
    key = jax.random.key(7)
    bounds = {
        e: rg.iwae_bound(log_joint, normal, num_samples=8, num_bounds=2, estimator=e)
        for e in ("pathwise", "dreg", "stl")
    }
    vx = {e: jax.jit(jax.value_and_grad(b, argnums=2))(OFF, key, X) for e, b in bounds.items()}
    for e in ("dreg", "stl"):
        np.testing.assert_allclose(vx[e][0], vx["pathwise"][0], rtol=1e-6)
        np.testing.assert_allclose(vx[e][1], vx["pathwise"][1], rtol=1e-5, atol=1e-6)
    # K = 1: DReG and STL coincide with the ELBO's STL
    one = [
        jax.jit(jax.grad(b))(OFF, key, X)
        for b in (
            rg.iwae_bound(log_joint, normal, num_samples=1, estimator="dreg"),
            rg.elbo(log_joint, normal, num_samples=1, estimator="stl"),
        )
    ]
    for n in OFF:
        np.testing.assert_allclose(one[0][n], one[1][n], rtol=1e-5, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="estimator"):
        rg.elbo(log_joint, normal, num_samples=2, estimator="dreg")
    with pytest.raises(ValueError, match="num_samples"):
        rg.iwae_bound(log_joint, normal, num_samples=0)
    with pytest.warns(DeprecationWarning, match="num_particles"):
        old = rg.iwae_bound(log_joint, normal, num_particles=4, num_samples=2)  # K = 4, two bounds
    new = rg.iwae_bound(log_joint, normal, num_samples=4, num_bounds=2)
    np.testing.assert_array_equal(old(OFF, jax.random.key(0), X), new(OFF, jax.random.key(0), X))
    with pytest.raises(TypeError, match="reparameterizable"):
        rg.elbo(log_joint, lambda p: rg.Bernoulli(logits=p), num_samples=2)(
            jnp.zeros(2), jax.random.key(0), X
        )
    with pytest.raises(TypeError, match="log_joint"):
        rg.elbo(lambda z, x: z, normal, num_samples=2)(OFF, jax.random.key(0), X)
