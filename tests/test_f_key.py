"""f with randomness of its own (issue 17, item 1): ``f_key=True`` calls ``f(x, key_n, *args)``
with an independent key per sample, split from the call's key. Unbiased on a noisy quadratic and
a noisy bandit; every point an estimator evaluates for one sample shares that sample's key, so an
additive noise cancels exactly in the coupled estimators (measure-valued, ARM, DisARM, IndeCateR,
enumeration)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

import repgrad as rg

KEY = jax.random.key(0)
NOISE = 0.5

# ---------------------------------------------------------------- noisy quadratic, Normal


def noisy_quadratic(x, key):
    """Σ (x + 0.5 ε)², ε ~ N(0, I) from f's own key: E = Σ μ² + σ² + 0.25."""
    return jnp.sum((x + NOISE * jax.random.normal(key, x.shape, x.dtype)) ** 2)


NORMAL = lambda p: rg.Normal(p["loc"], p["scale"])
PARAMS = {"loc": jnp.array([0.3, -0.7]), "scale": jnp.array([0.8, 1.2])}
EXACT = {"loc": 2 * PARAMS["loc"], "scale": 2 * PARAMS["scale"]}
CONTINUOUS = {
    "pathwise": rg.pathwise(),
    "pathwise+delta": rg.pathwise(control_variate="delta"),
    "score:loo": rg.score(baseline="loo"),
    "score:loo+delta(optimal)": rg.score(baseline="loo", control_variate=rg.delta_method(coefficient="optimal")),
    "measure_valued": rg.measure_valued(),
    "measure_valued+delta(optimal)": rg.with_control_variate(rg.measure_valued(), rg.delta_method(coefficient="optimal")),
}


@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_noisy_quadratic_unbiased(name):
    fn = rg.value_and_grad(noisy_quadratic, NORMAL, CONTINUOUS[name], num_samples=16, f_key=True)
    v, g = replicate(lambda k: fn(PARAMS, k), KEY, 300)
    assert_unbiased(g, EXACT, name=name)
    exact_value = float(jnp.sum(PARAMS["loc"] ** 2 + PARAMS["scale"] ** 2) + 2 * NOISE**2)
    assert_unbiased(v, exact_value, name=f"{name} value")


def test_hessian_with_f_key():
    loss = rg.expectation(noisy_quadratic, lambda p: rg.Normal(p, 1.0), rg.score(baseline="loo"), num_samples=32, f_key=True)
    h = replicate(lambda k: jax.hessian(loss)(PARAMS["loc"], k), KEY, 300)
    assert_unbiased(h, 2 * np.eye(2))


# ------------------------------------------------------------------- noisy bandit


MEANS = jnp.array([0.2, 1.0, -0.5])


def bernoulli_bandit(b, key):
    """Reward Σ_i b_i m_i + noise: E = Σ σ(θ_i) m_i."""
    return jnp.sum(b * MEANS) + NOISE * jax.random.normal(key, (), b.dtype)


def categorical_bandit(a, key):
    return MEANS[a] + NOISE * jax.random.normal(key)


THETA = jnp.array([0.4, -0.3, 0.1])
EXACT_BERNOULLI = jax.nn.sigmoid(THETA) * jax.nn.sigmoid(-THETA) * MEANS
EXACT_CATEGORICAL = jax.grad(lambda t: jnp.sum(jax.nn.softmax(t) * MEANS))(THETA)

DISCRETE = {
    "score:loo": (rg.score(baseline="loo"), {}),
    "measure_valued": (rg.measure_valued(), {}),
    "arm": (rg.arm(), {}),
    "disarm": (rg.disarm(), {}),
    "enumeration": (rg.enumeration(), {}),
    "indecater": (rg.indecater(), {}),
    "rebar": (rg.rebar(), {"control_params": rg.rebar_init()}),
    "unordered_set": (rg.unordered_set(k=2), {}),
    "rao_blackwell": (rg.rao_blackwell(k=2), {}),
    "double_cv": (rg.double_cv(), {"control_params": rg.double_cv_init()}),
}


@pytest.mark.parametrize("name", list(DISCRETE))
def test_noisy_bernoulli_bandit_unbiased(name):
    est, kw = DISCRETE[name]
    fn = rg.grad(bernoulli_bandit, lambda t: rg.Bernoulli(logits=t), est, num_samples=8, f_key=True)
    run = (lambda k: fn(THETA, k, **kw)[0]) if kw else (lambda k: fn(THETA, k))
    # Coupled estimators are exact on this separable reward (the noise cancels): float32 slack.
    assert_unbiased(replicate(run, KEY, 300), EXACT_BERNOULLI, atol=1e-6, name=name)


@pytest.mark.parametrize("name", ["score:loo", "measure_valued", "enumeration", "indecater", "unordered_set", "rao_blackwell"])
def test_noisy_categorical_bandit_unbiased(name):
    est, _ = DISCRETE[name]
    fn = rg.grad(categorical_bandit, lambda t: rg.Categorical(logits=t), est, num_samples=8, f_key=True)
    assert_unbiased(replicate(lambda k: fn(THETA, k), KEY, 300), EXACT_CATEGORICAL, atol=1e-6, name=name)


@pytest.mark.parametrize("name", ["measure_valued", "arm", "disarm", "enumeration", "indecater"])
def test_common_random_numbers_cancel_additive_noise(name):
    # Every point evaluated for sample n shares n's key, so noise added to f cancels in the
    # coupled differences: the gradient equals the noise-free one, to rounding.
    est, _ = DISCRETE[name]
    bern = lambda t: rg.Bernoulli(logits=t)
    noisy = rg.grad(bernoulli_bandit, bern, est, num_samples=8, f_key=True)(THETA, KEY)
    clean = rg.grad(lambda b, key: jnp.sum(b * MEANS), bern, est, num_samples=8, f_key=True)(THETA, KEY)
    np.testing.assert_allclose(noisy, clean, atol=2e-6)


# ------------------------------------------------------------------------ contract


def test_each_sample_its_own_key_and_same_key_same_bits():
    seen = rg.expectation(lambda x, key: jax.random.normal(key), lambda p: rg.Normal(p, 1.0), "score", num_samples=8, has_aux=True, f_key=True)
    f = lambda x, key: (jax.random.normal(key), jax.random.normal(key))
    loss = rg.expectation(f, lambda p: rg.Normal(p, 1.0), "score", num_samples=8, has_aux=True, f_key=True)
    _, aux = loss(jnp.float32(0.0), KEY)
    assert len(set(np.asarray(aux).tolist())) == 8  # independent keys
    _, aux2 = loss(jnp.float32(0.0), KEY)
    np.testing.assert_array_equal(aux, aux2)
    _, aux3 = loss(jnp.float32(0.0), jax.random.key(1))
    assert not np.array_equal(aux, aux3)
    del seen


def test_estimator_draws_do_not_change_with_f_key():
    # The estimator's own samples are drawn exactly as without f_key: bit-identical gradients
    # for an f that ignores its key.
    f = lambda x: jnp.sum(jnp.cos(x))
    plain = rg.score_grad(f, lambda p: rg.Normal(p, 1.0), num_samples=8, baseline="loo")(THETA, KEY)
    keyed = rg.score_grad(lambda x, key: f(x), lambda p: rg.Normal(p, 1.0), num_samples=8, baseline="loo", f_key=True)(THETA, KEY)
    np.testing.assert_array_equal(plain, keyed)


def test_f_key_under_jit_vmap_and_sharding():
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    fn = rg.pathwise_grad(noisy_quadratic, NORMAL, num_samples=8, f_key=True)
    g = fn(PARAMS, KEY)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), jax.jit(fn)(PARAMS, KEY), g)
    batch = jax.vmap(fn, in_axes=(None, 0))(PARAMS, jax.random.split(KEY, 3))
    assert batch["loc"].shape == (3, 2)
    mesh = jax.make_mesh((8,), ("s",), axis_types=(AxisType.Auto,))
    sharded = rg.pathwise_grad(noisy_quadratic, NORMAL, num_samples=8, f_key=True, sample_sharding=NamedSharding(mesh, P("s")))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), jax.jit(sharded)(PARAMS, KEY), g)


def test_elbo_with_f_key_dropout_decoder():
    def log_lik(z, key, x):
        keep = jax.random.bernoulli(key, 0.8, z.shape)
        return -0.5 * jnp.sum((x - jnp.where(keep, z, 0.0) / 0.8) ** 2)

    bound = rg.elbo(log_lik, lambda p: rg.Normal(p, 1.0), num_samples=8, prior=rg.Normal(jnp.zeros(2), 1.0),
                    kl="analytic", f_key=True)
    g = replicate(lambda k: jax.grad(bound)(jnp.zeros(2), k, jnp.ones(2)), KEY, 300)
    # E[log_lik] = -0.5 Σ E[(x - m z / 0.8)²], m ~ Bern(0.8), z ~ N(μ, 1): d/dμ = Σ (x - μ) at... by autodiff:
    def expected(mu):
        e_zm = mu  # E[m z / 0.8]
        e_sq = (mu**2 + 1.0) / 0.8  # E[(m z / 0.8)²] = E[m] E[z²] / 0.64
        return -0.5 * jnp.sum(1.0 - 2.0 * e_zm + e_sq) - 0.5 * jnp.sum(mu**2)
    assert_unbiased(g, jax.grad(expected)(jnp.zeros(2)))


def test_aliases_take_f_key_and_allow_zero_gradient():
    g = rg.pathwise_grad(lambda x: jnp.float32(1.0), lambda p: rg.Normal(p, 1.0), num_samples=4, allow_zero_gradient=True)(THETA, KEY)
    np.testing.assert_array_equal(g, 0.0)
    v, g = rg.pathwise_value_and_grad(lambda x: jnp.float32(1.0), lambda p: rg.Normal(p, 1.0), num_samples=4, allow_zero_gradient=True)(THETA, KEY)
    for alias in (rg.score_grad, rg.measure_valued_grad, rg.pathwise_grad):
        alias(noisy_quadratic, lambda p: rg.Normal(p, 1.0), num_samples=4, f_key=True)(THETA, KEY)
    rg.disarm_grad(bernoulli_bandit, lambda t: rg.Bernoulli(logits=t), num_samples=4, f_key=True)(THETA, KEY)
    rg.enumeration_grad(bernoulli_bandit, lambda t: rg.Bernoulli(logits=t), f_key=True, num_samples=4)(THETA, KEY)
    with pytest.raises(TypeError, match="f_key must be True or False"):
        rg.score_grad(noisy_quadratic, lambda p: rg.Normal(p, 1.0), f_key=1)
