"""Unbiased discrete estimators against exact gradients by enumeration, and the
variance orderings the papers report on the DisARM toy f(b) = Σ (b − t)².

Every statistical check is |mean − exact| < 5 SE over R replicates (tests/_stats.py):
a correct estimator fails one such scalar check with probability ≈ 5.7e-7; keys are
fixed, so the tests are deterministic.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

import repgrad as rg

R = 1000  # replicates
THETA = jnp.array([-1.0, 0.3, 2.0, 0.0])


def bern(p):
    return rg.Bernoulli(logits=p)


def toy(t):
    return lambda b: jnp.sum((b - t) ** 2)


def toy_exact(theta, t):
    p = jax.nn.sigmoid(theta)
    return np.asarray(p * (1.0 - p) * (1.0 - 2.0 * t))


def relax_control(z, psi):  # a small learned control: a·Σσ(z) + c·Σσ(z)² + d
    s = jax.nn.sigmoid(z)
    return psi["a"] * jnp.sum(s) + psi["c"] * jnp.sum(s * s) + psi["d"]


PSI = {"a": jnp.float32(0.2), "c": jnp.float32(0.1), "d": jnp.float32(0.5)}


def estimators(f, n):
    rebar = rg.rebar_grad(f, bern, num_samples=n)
    relax = rg.relax_grad(f, bern, control=relax_control, num_samples=n)
    return {
        "arm": rg.arm_grad(f, bern, num_samples=n),
        "disarm": rg.disarm_grad(f, bern, num_samples=n),
        "reinforce_loo": rg.score_grad(f, bern, num_samples=2 * n, baseline="loo"),
        "rebar": lambda p, k: rebar(p, k, control_params=rebar.init_control_params())[0],
        "relax": lambda p, k: relax(p, k, control_params=PSI)[0],
    }


@pytest.mark.parametrize("t", [0.45, 0.499])
def test_toy_unbiased(t):
    """ARM, DisARM, REINFORCE-LOO, REBAR, RELAX (one jitted replicate for all five)."""
    f = toy(t)
    exact = toy_exact(THETA, t)
    _, enum = rg.enumeration_value_and_grad(f, bern)(THETA, jax.random.key(0))
    np.testing.assert_allclose(enum, exact, rtol=1e-5, atol=1e-8)  # enumeration = closed form
    est = estimators(f, 2)
    g = replicate(lambda k: {name: fn(THETA, k) for name, fn in est.items()}, jax.random.key(1), R)
    for name, samples in g.items():
        assert_unbiased(samples, exact, name=f"{name} (t={t})")


def test_value_unbiased_and_expectation_registration():
    f = toy(0.45)
    exact_value = float(rg.enumeration_value_and_grad(f, bern)(THETA, jax.random.key(0))[0])
    exact_grad = toy_exact(THETA, 0.45)
    for name in ["arm", "disarm"]:
        loss = rg.expectation(f, bern, estimator=name, num_samples=2)
        v, g = replicate(lambda k, loss=loss: jax.value_and_grad(loss)(THETA, k), jax.random.key(2), R)
        assert_unbiased(v, exact_value, name=f"{name} value")
        assert_unbiased(g, exact_grad, name=f"{name} via expectation")
    loss = rg.expectation(f, bern, estimator="rebar", num_samples=2)
    psi = loss.init_control_params()
    g = replicate(lambda k: jax.grad(loss, has_aux=True)(THETA, k, control_params=psi)[0], jax.random.key(3), R)
    assert_unbiased(g, exact_grad, name="rebar via expectation")


def test_any_params_to_logits_map_and_f_args():
    """Gradients reach arbitrary params through logits = W x + c, and f's args by autodiff."""
    params = {"w": jnp.array([[0.5, -1.0], [0.3, 0.8], [-0.6, 0.1]]), "c": jnp.array([0.1, -0.2, 0.4])}
    x = jnp.array([1.0, -0.5])
    dist = lambda p: rg.Bernoulli(logits=p["w"] @ x + p["c"])
    f = lambda b, a: jnp.sum((b - a) ** 2 * jnp.arange(1.0, 4.0))
    a = jnp.float32(0.3)
    exact = rg.enumeration_grad(f, dist)
    e_params = exact(params, jax.random.key(0), a)
    e_a = jax.grad(rg.expectation(f, dist, estimator="exact"), argnums=2)(params, jax.random.key(0), a)
    for name in ["disarm", "rebar"]:
        loss = rg.expectation(f, dist, estimator=name, num_samples=2)
        kw = {"control_params": loss.init_control_params()} if name == "rebar" else {}

        def one(k, loss=loss, kw=kw):
            gp, ga = jax.grad(lambda p, a: loss(p, k, a, **kw)[0] if kw else loss(p, k, a), argnums=(0, 1))(params, a)
            return gp, ga

        gp, ga = replicate(one, jax.random.key(4), R)
        assert_unbiased(gp, e_params, name=f"{name} params")
        assert_unbiased(ga, e_a, name=f"{name} f-args")


def test_categorical_rebar_relax_unbiased():
    theta = jnp.array([[0.2, -0.5, 0.1], [1.0, 0.0, -1.0]])
    cat = lambda p: rg.Categorical(logits=p)
    costs = jnp.array([0.0, 1.0, 3.0])
    f = lambda y: jnp.sum(y @ costs) ** 2  # y one-hot (B, C); smooth in relaxed y
    f_idx = lambda k: jnp.sum(costs[k]) ** 2
    exact = rg.enumeration_grad(f_idx, cat)(theta, jax.random.key(0))
    rebar = rg.rebar_grad(f, cat, num_samples=2)
    control = lambda z, psi: psi * jnp.sum(jax.nn.softmax(z, axis=-1) @ costs) ** 2
    relax = rg.relax_grad(f, cat, control=control, num_samples=2)
    g1 = replicate(lambda k: rebar(theta, k, control_params=rebar.init_control_params())[0], jax.random.key(5), R)
    g2 = replicate(lambda k: relax(theta, k, control_params=jnp.float32(0.7))[0], jax.random.key(6), R)
    assert_unbiased(g1, exact, name="categorical rebar")
    assert_unbiased(g2, exact, name="categorical relax")


@pytest.mark.parametrize("name", ["vimco", "disarm_multisample"])
def test_multisample_bound_unbiased(name):
    K, target = 3, jnp.array([0.45, 0.8])
    log_w = lambda b: -3.0 * jnp.sum((b - target) ** 2)
    theta = jnp.array([0.3, -0.7])
    bound = lambda bs: jax.nn.logsumexp(jax.vmap(log_w)(bs)) - jnp.log(jnp.float32(K))
    joint = lambda p: rg.Bernoulli(logits=jnp.broadcast_to(p, (K, 2)))  # K i.i.d. copies
    exact_v, exact = rg.enumeration_value_and_grad(bound, joint)(theta, jax.random.key(0))
    fn = {"vimco": rg.vimco_value_and_grad, "disarm_multisample": rg.disarm_multisample_value_and_grad}[name]
    v, g = replicate(lambda k: fn(log_w, bern, num_samples=K)(theta, k), jax.random.key(7), R)
    assert_unbiased(v, exact_v, name=f"{name} bound")
    assert_unbiased(g, exact, name=name)


def test_enumeration_categorical_closed_form():
    theta = jnp.array([0.2, -0.5, 0.1])
    costs = jnp.array([0.0, 1.0, 3.0])
    v, g = rg.enumeration_value_and_grad(lambda k: costs[k], lambda p: rg.Categorical(logits=p))(
        theta, jax.random.key(0)
    )
    closed = lambda th: jnp.sum(jax.nn.softmax(th) * costs)
    np.testing.assert_allclose(v, closed(theta), rtol=1e-6)
    np.testing.assert_allclose(g, jax.grad(closed)(theta), rtol=1e-5, atol=1e-7)


def _variance_and_se(g, exact):
    """Per-replicate total squared error Σ_i (g_i − exact_i)²: its mean is the total
    variance, and its SE comes from the same replicates."""
    sq = np.sum((np.asarray(g, np.float64) - exact) ** 2, axis=1)
    return sq.mean(), sq.std(ddof=1) / np.sqrt(sq.size)


@pytest.mark.parametrize("t", [0.45, 0.499])
def test_variance_ordering(t):
    """DisARM ≤ ARM (Rao-Blackwellisation) and RLOO < plain REINFORCE, at equal cost (2
    evaluations of f per estimate), as in Dong et al. (2020, Fig. 1). Ordering is
    asserted with a 5-SE margin on the difference of the estimated variances."""
    f, theta = toy(t), jnp.zeros(16)  # the paper's toy at its initialisation (p = 1/2)
    exact = toy_exact(theta, t)
    n = 4000
    est = {
        "arm": rg.arm_grad(f, bern, num_samples=1),
        "disarm": rg.disarm_grad(f, bern, num_samples=1),
        "rloo": rg.score_grad(f, bern, num_samples=2, baseline="loo"),
        "reinforce": rg.score_grad(f, bern, num_samples=2),
    }
    var = {k: _variance_and_se(replicate(lambda key, fn=fn: fn(theta, key), jax.random.key(8), n), exact) for k, fn in est.items()}
    for low, high in [("disarm", "arm"), ("rloo", "reinforce")]:
        (vl, sl), (vh, sh) = var[low], var[high]
        assert vl + 5 * np.hypot(sl, sh) < vh, (low, var[low], high, var[high])
