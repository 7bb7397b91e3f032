"""Interface of the discrete estimators: errors that name the fix, determinism,
composition with jit/vmap/grad/scan, float64, has_aux, and RELAX's variance gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import repgrad as rg


def bern(p):
    return rg.Bernoulli(logits=p)


def toy(b):
    return jnp.sum((b - 0.45) ** 2)


def test_errors_name_the_fix():
    normal = lambda p: rg.Normal(p, 1.0)
    for fn in (rg.arm_grad, rg.disarm_grad):
        with pytest.raises(TypeError, match="Bernoulli"):
            fn(toy, normal)(jnp.zeros(2), jax.random.key(0))
    with pytest.raises(ValueError, match="num_samples must be >= 2"):
        rg.vimco_grad(toy, bern, num_samples=1)
    with pytest.raises(ValueError, match="max_configurations"):
        rg.enumeration_grad(toy, bern)(jnp.zeros(13), jax.random.key(0))
    with pytest.raises(TypeError, match="control"):
        rg.expectation(toy, bern, estimator="relax")
    relax = rg.relax_grad(toy, bern, control=lambda z, psi: psi * jnp.sum(z))
    with pytest.raises(TypeError, match="belong to you"):
        relax.init_control_params()
    assert relax.init_state() == ()  # no baseline state: ψ lives in control_params
    rebar = rg.rebar_grad(toy, bern)
    with pytest.raises(TypeError, match="control_params="):
        rebar(jnp.zeros(2), jax.random.key(0))
    with pytest.raises(TypeError, match="Bernoulli"):
        rg.gumbel_softmax_grad(toy, normal)(jnp.zeros(2), jax.random.key(0))


@pytest.mark.parametrize("name", ["arm", "disarm", "gumbel_softmax", "vimco", "disarm_multisample"])
def test_same_key_same_result_and_jit(name):
    loss = rg.expectation(toy, bern, estimator=name, num_samples=3)
    theta = jnp.array([0.1, -0.4, 1.2])
    grad = jax.jit(jax.grad(loss))
    g1 = grad(theta, jax.random.key(3))
    np.testing.assert_array_equal(g1, grad(theta, jax.random.key(3)))  # same key: bit-identical
    assert not np.array_equal(g1, grad(theta, jax.random.key(4)))  # and the key matters


def test_vmap_over_params_and_keys_and_has_aux():
    fn = rg.disarm_value_and_grad(lambda b: (toy(b), b), bern, num_samples=4, has_aux=True)
    thetas = jnp.stack([jnp.zeros(3), jnp.ones(3)])
    keys = jax.random.split(jax.random.key(0), 2)
    (values, aux), grads = jax.vmap(fn)(thetas, keys)
    assert values.shape == (2,) and aux.shape == (2, 8, 3) and grads.shape == (2, 3)
    single = fn(thetas[1], keys[1])
    np.testing.assert_allclose(grads[1], single[1], rtol=1e-6)


def test_training_loop_in_lax_scan_with_rebar_state():
    """REBAR's η, λ trained alongside θ with optax inside lax.scan; everything explicit."""
    fn = rg.rebar_value_and_grad(toy, bern, num_samples=4)
    opt, opt_psi = optax.sgd(1.0), optax.sgd(0.01)  # (optax.adam trips strict dtype promotion)
    theta, psi = jnp.zeros(4), fn.init_control_params()
    carry = (theta, opt.init(theta), psi, opt_psi.init(psi))

    def step(carry, key):
        theta, s, psi, s_psi = carry
        (value, g), g_psi = fn(theta, key, control_params=psi)
        u, s = opt.update(g, s)
        u_psi, s_psi = opt_psi.update(g_psi, s_psi)
        return (optax.apply_updates(theta, u), s, optax.apply_updates(psi, u_psi), s_psi), value

    (theta, _, psi, _), values = jax.lax.scan(step, carry, jax.random.split(jax.random.key(1), 60))
    assert float(jnp.mean(theta)) < -0.5  # E[(b − 0.45)²] is minimised at p → 0 (drift −1.5)
    assert set(psi) == {"eta", "log_temperature"} and np.isfinite(float(psi["eta"]))


def test_relax_variance_gradient_matches_finite_differences():
    control = lambda z, psi: psi["a"] * jnp.sum(jax.nn.sigmoid(z / psi["t"])) + psi["c"]
    with jax.enable_x64(True):
        theta = jnp.array([0.3, -1.1, 0.8])
        psi = {"a": jnp.float64(0.4), "t": jnp.float64(0.7), "c": jnp.float64(0.2)}
        fn = jax.jit(rg.relax_grad(toy, bern, control=control, num_samples=16))
        key = jax.random.key(5)
        g, g_psi = fn(theta, key, control_params=psi)
        assert g.dtype == jnp.float64
        sq = lambda q: float(jnp.sum(fn(theta, key, control_params=q)[0] ** 2))
        for name in psi:
            eps = 1e-6
            hi = dict(psi, **{name: psi[name] + eps})
            lo = dict(psi, **{name: psi[name] - eps})
            np.testing.assert_allclose(float(g_psi[name]), (sq(hi) - sq(lo)) / (2 * eps), rtol=1e-5, atol=1e-9)


def test_float64_everywhere():
    with jax.enable_x64(True):
        theta = jnp.zeros(3, jnp.float64)
        for name in ["disarm", "straight_through", "enumeration", "vimco"]:
            g = jax.jit(jax.grad(rg.expectation(toy, bern, estimator=name, num_samples=2)))(theta, jax.random.key(0))
            assert g.dtype == jnp.float64, name
        fn = rg.rebar_grad(toy, bern, num_samples=2)
        g, g_psi = jax.jit(fn)(theta, jax.random.key(0), control_params=fn.init_control_params())
        assert g.dtype == jnp.float64 and g_psi["eta"].dtype == jnp.float32  # ψ keeps its own dtype


def test_public_names_documented():
    for name in [
        "arm_grad", "arm_value_and_grad", "disarm_grad", "disarm_value_and_grad", "disarm_multisample_grad",
        "disarm_multisample_value_and_grad", "enumeration_grad", "enumeration_value_and_grad",
        "gumbel_softmax_grad", "gumbel_softmax_value_and_grad", "rebar_grad", "rebar_value_and_grad",
        "relax_grad", "relax_value_and_grad", "vimco_grad", "vimco_value_and_grad", "rebar_init", "rebar_control",
    ]:
        obj = getattr(rg, name)
        assert name in rg.__all__ and obj.__doc__
        if name.endswith("grad"):
            doc = obj.__doc__
            assert "Example:" in doc and "References:" in doc, name
            assert ("nbiased" in doc) or ("Exact" in doc) or ("iased" in doc), name


def test_has_aux_with_control_variates_and_relaxed():
    fn = jax.jit(rg.rebar_value_and_grad(lambda b: (toy(b), jnp.sum(b)), bern, num_samples=3, has_aux=True))
    ((value, aux), g), g_psi = fn(jnp.zeros(2), jax.random.key(0), control_params=rg.rebar_init())
    assert aux.shape == (3,) and g.shape == (2,) and set(g_psi) == {"eta", "log_temperature"}
    gs = rg.gumbel_softmax_grad(lambda y: (toy(y), y), bern, num_samples=3, has_aux=True)
    g, y = jax.jit(gs)(jnp.zeros(2), jax.random.key(0))
    assert y.shape == (3, 2) and np.all((np.asarray(y) > 0) & (np.asarray(y) < 1))
