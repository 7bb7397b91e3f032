"""Derivatives of every order: Hessians, Hessian-vector products and third derivatives of
``rg.expectation`` against closed forms, for every estimator that claims the order, and a
trace-time ``rg.DerivativeOrderError`` for every one that does not.

Statistical checks are |mean − exact| < 5 SE over R replicates (tests/_stats.py): chance
failure ≈ 5.7e-7 per scalar; keys are fixed.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

import repgrad as rg

P = jnp.array([0.7, 1.3])  # (μ, σ)
normal = lambda p: rg.Normal(p[0], p[1])
K = 2.0
COSTS = {
    # f(x), and E[f] under N(μ, σ²) as a function of p = (μ, σ)
    "square": (lambda x: x**2, lambda p: p[0] ** 2 + p[1] ** 2),
    "cube": (lambda x: x**3, lambda p: p[0] ** 3 + 3 * p[0] * p[1] ** 2),
    "cos": (lambda x: jnp.cos(K * x), lambda p: jnp.cos(K * p[0]) * jnp.exp(-0.5 * K**2 * p[1] ** 2)),
}
EVERY_ORDER = {
    "pathwise": rg.pathwise(),
    "score": rg.score(),
    "score_loo": rg.score(baseline="loo"),
    "score_delta": rg.score(baseline="loo", control_variate=rg.delta_method()),
    "pathwise_delta": rg.pathwise(control_variate=rg.delta_method()),
}


def _hessians(est, f, num_samples, r, seed=0, params=P, dist=normal):
    loss = rg.expectation(f, dist, est, num_samples=num_samples)
    return replicate(lambda k: jax.hessian(loss)(params, k), jax.random.key(seed), r)


@pytest.mark.parametrize("cost, name", list(itertools.product(COSTS, EVERY_ORDER)))
def test_normal_hessian_unbiased(cost, name):
    f, expected = COSTS[cost]
    est = _hessians(EVERY_ORDER[name], f, 256, 150)
    # The delta method is exact for a quadratic: its SE is float32 rounding, hence the slack.
    atol = 1e-5 if "delta" in name else 0.0
    assert_unbiased(est, jax.hessian(expected)(P), atol=atol, name=f"Hessian of E[{cost}] by {name}")


def test_moving_average_baseline_keeps_hessian_unbiased():
    f, expected = COSTS["cube"]
    loss = rg.expectation(f, normal, rg.score(baseline="moving_average"), num_samples=256)
    state = rg.MovingAverageState(value=jnp.asarray(3.0), count=jnp.asarray(5, jnp.int32))  # b ≠ 0
    est = replicate(lambda k: jax.hessian(loss, has_aux=True)(P, k, baseline_state=state)[0], jax.random.key(1), 150)
    assert_unbiased(est, jax.hessian(expected)(P), name="Hessian with a moving-average baseline")


@pytest.mark.parametrize("name", ["pathwise", "score_loo"])
def test_hvp_and_third_derivative(name):
    f, expected = COSTS["cube"]
    loss = rg.expectation(f, normal, EVERY_ORDER[name], num_samples=256)
    v = jnp.array([0.3, -1.1])
    hvp = lambda p, k: jax.jvp(lambda q: jax.grad(loss)(q, k), (p,), (v,))[1]
    est = replicate(lambda k: hvp(P, k), jax.random.key(2), 150)
    assert_unbiased(est, jax.jvp(jax.grad(expected), (P,), (v,))[1], name=f"HVP by {name}")
    third = replicate(lambda k: jax.jacfwd(jax.hessian(loss))(P, k), jax.random.key(3), 150)
    assert_unbiased(third, jax.jacfwd(jax.hessian(expected))(P), name=f"third derivative by {name}")


def test_jacrev_and_jacfwd_agree_with_hessian():
    f, _ = COSTS["cos"]
    loss = rg.expectation(f, normal, rg.score(baseline="loo"), num_samples=64)
    h = jax.hessian(loss)(P, jax.random.key(0))
    np.testing.assert_allclose(jax.jacrev(jax.jacrev(loss))(P, jax.random.key(0)), h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(jax.jacfwd(loss))(P, jax.random.key(0)), h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["pathwise", "score_loo"])
def test_mixed_derivative_in_f_args(name):
    # E[w x²] = w (μ² + σ²): ∂²/∂w∂p = (2μ, 2σ).
    loss = rg.expectation(lambda x, w: w * x**2, normal, EVERY_ORDER[name], num_samples=256)
    mixed = lambda k: jax.jacfwd(jax.grad(loss), argnums=2)(P, k, jnp.float32(1.5))
    assert_unbiased(replicate(mixed, jax.random.key(4), 150), 2.0 * P, name=f"∂²/∂w∂θ by {name}")


# ------------------------------------------------------------------ discrete


def _bernoulli_table(theta):
    """Exact E[f(b)] for b ~ Bern(σ(θ)), f = table over the 2³ configurations (by hand)."""
    p = jax.nn.sigmoid(theta)
    total = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=3):
        b = jnp.array(bits)
        total = total + jnp.prod(jnp.where(b > 0, p, 1.0 - p)) * _f_bern(b)
    return total


def _f_bern(b):
    return jnp.sum((b - 0.45) ** 2 * jnp.array([1.0, -2.0, 3.0])) + 2.0 * b[0] * b[2]


THETA = jnp.array([0.2, -0.4, 1.1])


def test_bernoulli_hessian_score_and_enumeration():
    exact = jax.hessian(_bernoulli_table)(THETA)
    bern = lambda t: rg.Bernoulli(logits=t)
    enum = jax.hessian(rg.expectation(_f_bern, bern, rg.enumeration()))(THETA, jax.random.key(0))
    np.testing.assert_allclose(enum, exact, rtol=1e-4, atol=1e-6)
    est = _hessians(rg.score(baseline="loo"), _f_bern, 256, 200, seed=5, params=THETA, dist=bern)
    assert_unbiased(est, exact, name="Bernoulli Hessian by score (loo)")


def test_categorical_hessian_score_and_enumeration():
    logits = jnp.array([[0.1, -0.3, 0.5], [0.0, 0.7, -0.2]])
    values = jnp.array([[1.0, -2.0, 0.5], [0.3, 2.0, -1.0]])
    f = lambda k: jnp.sum(jnp.take_along_axis(values, k[:, None], axis=1)) + 0.5 * (k[0] == k[1]).astype(jnp.float32)

    def exact(lg):
        p = jax.nn.softmax(lg, axis=-1)
        pairs = p[0][:, None] * p[1][None, :]
        return jnp.sum(p * values) + 0.5 * jnp.trace(pairs)

    cat = lambda lg: rg.Categorical(logits=lg)
    h_exact = jax.hessian(exact)(logits)
    enum = jax.hessian(rg.expectation(f, cat, rg.enumeration()))(logits, jax.random.key(0))
    np.testing.assert_allclose(enum, h_exact, rtol=1e-4, atol=1e-6)
    est = _hessians(rg.score(baseline="loo"), f, 256, 200, seed=6, params=logits, dist=cat)
    assert_unbiased(est, h_exact, name="Categorical Hessian by score (loo)")


# -------------------------------------------------- implicit reparameterization


@pytest.mark.parametrize("family", ["gamma", "beta", "dirichlet"])
def test_implicit_reparameterization_second_order(family):
    with jax.enable_x64(True):
        a = jnp.array([1.7, 2.3])
        if family == "gamma":
            dist, expected = (lambda p: rg.Gamma(p[0], p[1])), (lambda p: p[0] * (p[0] + 1) / p[1] ** 2)
        elif family == "beta":
            dist = lambda p: rg.Beta(p[0], p[1])
            expected = lambda p: p[0] * (p[0] + 1) / ((p[0] + p[1]) * (p[0] + p[1] + 1))
        else:
            dist = lambda p: rg.Dirichlet(p)
            expected = lambda p: p[0] * (p[0] + 1) / (jnp.sum(p) * (jnp.sum(p) + 1))
        f = (lambda x: x[0] ** 2) if family == "dirichlet" else (lambda x: x**2)
        est = _hessians(rg.pathwise(), f, 256, 150, seed=7, params=a, dist=dist)
        assert_unbiased(est, jax.hessian(expected)(a), name=f"{family} Hessian by implicit reparameterization")


# ---------------------------------------------------- first-order estimators raise


def _first_order():
    bern = lambda t: rg.Bernoulli(logits=t)
    control = lambda z, psi: psi * jnp.sum(jax.nn.sigmoid(z))
    cube = COSTS["cube"][0]
    lj = lambda z: -0.5 * jnp.sum(z**2)
    norm2 = lambda p: rg.Normal(p, 1.0)
    return {
        "measure_valued": (lambda: rg.expectation(cube, normal, rg.measure_valued(), num_samples=8), P, {}),
        "optimal_baseline": (lambda: rg.expectation(cube, normal, rg.score(baseline="optimal"), num_samples=8), P, {}),
        "optimal_coefficient": (
            lambda: rg.expectation(cube, normal, rg.score(control_variate=rg.delta_method(coefficient="optimal")), num_samples=8),
            P, {},
        ),
        "arm": (lambda: rg.expectation(_f_bern, bern, rg.arm(), num_samples=8), THETA, {}),
        "disarm": (lambda: rg.expectation(_f_bern, bern, rg.disarm(), num_samples=8), THETA, {}),
        "vimco": (lambda: rg.expectation(lambda b: -_f_bern(b), bern, rg.vimco(), num_samples=8), THETA, {}),
        "disarm_multisample": (lambda: rg.expectation(lambda b: -_f_bern(b), bern, rg.disarm_multisample(), num_samples=8), THETA, {}),
        "rebar": (lambda: rg.expectation(_f_bern, bern, rg.rebar(), num_samples=8), THETA, {"control_params": rg.rebar_init()}),
        "relax": (lambda: rg.expectation(_f_bern, bern, rg.relax(control), num_samples=8), THETA, {"control_params": jnp.float32(0.3)}),
        "elbo_stl": (lambda: rg.elbo(lj, norm2, num_samples=8, estimator="stl"), jnp.ones(2), {}),
        "iwae_dreg": (lambda: rg.iwae_bound(lj, norm2, num_samples=8, estimator="dreg"), jnp.ones(2), {}),
    }


@pytest.mark.parametrize("name", list(_first_order()))
def test_first_order_estimators_refuse_second_derivatives(name):
    build, params, kw = _first_order()[name]
    loss = build()
    scalar = (lambda p, k: loss(p, k, **kw)[0]) if kw else loss
    g = jax.grad(scalar)(params, jax.random.key(0))  # first order: fine, forward or reverse
    np.testing.assert_allclose(jax.jacfwd(scalar)(params, jax.random.key(0)), g, rtol=1e-5, atol=1e-6)
    with pytest.raises(rg.DerivativeOrderError, match="first derivatives only.*score"):
        jax.hessian(scalar)(params, jax.random.key(0))
    with pytest.raises(rg.DerivativeOrderError):
        jax.jit(jax.grad(lambda p: jnp.sum(jax.grad(scalar)(p, jax.random.key(0)))))(params)


def test_grad_transform_refuses_second_derivatives_and_mixed_ones():
    grad_fn = rg.measure_valued_grad(lambda x, w: w * x**3, normal, num_samples=8)
    with pytest.raises(rg.DerivativeOrderError, match="measure_valued"):
        jax.jacfwd(grad_fn)(P, jax.random.key(0), jnp.float32(1.0))
    with pytest.raises(rg.DerivativeOrderError, match="measure_valued"):  # ∂/∂w of the θ-gradient
        jax.jacfwd(grad_fn, argnums=2)(P, jax.random.key(0), jnp.float32(1.0))
    loss = rg.expectation(lambda x, w: w * x**3, normal, rg.measure_valued(), num_samples=8)
    g_w = jax.grad(loss, argnums=2)(P, jax.random.key(0), jnp.float32(1.0))  # f's args alone: autodiff
    np.testing.assert_allclose(g_w, loss(P, jax.random.key(0), jnp.float32(1.0)), rtol=1e-5)


def test_relaxations_gumbel_softmax_every_order_straight_through_first():
    bern = lambda t: rg.Bernoulli(logits=t)
    f = lambda z: jnp.sum(z**2)
    theta = jnp.array([0.3, -0.2])
    relaxed = rg.expectation(f, bern, rg.gumbel_softmax(temperature=0.5), num_samples=16)
    assert np.all(np.isfinite(jax.hessian(relaxed)(theta, jax.random.key(0))))  # the relaxed objective's
    st = rg.expectation(f, bern, rg.straight_through(temperature=0.5), num_samples=16)
    jax.grad(st)(theta, jax.random.key(0))
    with pytest.raises(rg.DerivativeOrderError, match="straight_through"):
        jax.hessian(st)(theta, jax.random.key(0))


def test_order_error_suggests_the_natural_alternative():
    lj = lambda z: -0.5 * jnp.sum(z**2)
    bound = rg.elbo(lj, lambda p: rg.Normal(p, 1.0), num_samples=4, estimator="stl")
    with pytest.raises(rg.DerivativeOrderError, match=r"rg\.elbo\(\.\.\., estimator='pathwise'\)"):
        jax.hessian(bound)(jnp.ones(2), jax.random.key(0))


def test_gamma_score_mixed_derivative_jacrev_under_jit_vmap_of_1024_keys():
    """jax 0.10.2 on CPU: jacrev(grad) through a jax.custom_jvp under jit(vmap) over ≥ 1,024
    keys was wrong (512 were right, jacfwd too). Gamma's log-density was such a custom_jvp:
    the score function's ∂²/∂θ∂w was off by up to 33 SE in 4 of 6 coordinates."""
    th = jnp.array([2.5, 1.5, 4.0, 1.5, 0.8, 2.0], jnp.float32)
    w = jnp.float32(0.8)
    loss = rg.expectation(lambda x, w: w * jnp.sum(jnp.cos(1.3 * x)), lambda t: rg.Gamma(t[:3], t[3:]), "score",
                          num_samples=8)
    rev = lambda k: jax.jacrev(jax.grad(loss, argnums=2), argnums=0)(th, k, w)
    fwd = lambda k: jax.jacfwd(jax.grad(loss, argnums=2), argnums=0)(th, k, w)
    keys = jax.random.split(jax.random.key(1), 1024)
    np.testing.assert_allclose(jax.jit(jax.vmap(rev))(keys), jax.jit(jax.vmap(fwd))(keys), rtol=1e-4, atol=1e-5)
