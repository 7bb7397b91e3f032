"""Composition with JAX transforms: jit, vmap (params and keys), grad (of expectation,
w.r.t. f's args, of an estimator), lax.scan training with optax, float32/float64,
sharding over 8 host devices, determinism, has_aux.

Statistical checks are |mean − exact| < 5 SE over R replicates (tests/_stats.py): chance
failure ≈ 5.7e-7 per scalar; keys are fixed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _stats import assert_unbiased, replicate
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import repgrad as rg

KEY = jax.random.key(0)
PARAMS = {"loc": jnp.array([0.3, -0.5, 1.0]), "scale": jnp.array([0.8, 1.1, 0.6])}


def normal(p):
    return rg.Normal(p["loc"], p["scale"])


def f_cos(x):
    return jnp.sum(jnp.cos(1.3 * x))


TRANSFORMS = {
    "pathwise": lambda f, **kw: rg.pathwise_value_and_grad(f, normal, num_samples=8, **kw),
    "score": lambda f, **kw: rg.score_value_and_grad(f, normal, num_samples=8, baseline="loo", **kw),
    "measure_valued": lambda f, **kw: rg.measure_valued_value_and_grad(f, normal, num_samples=8, **kw),
}


def _equal(a, b):
    return all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(jnp.array_equal, a, b)))


def _close(a, b, rtol=1e-6, atol=1e-6):
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


@pytest.mark.parametrize("name", ["pathwise", "score"])  # measure-valued: see test_has_aux_stacks_per_sample
def test_jit_determinism_and_vmap(name):
    fn = TRANSFORMS[name](f_cos)
    jfn = jax.jit(fn)
    # Same key → bit-identical results, under jit and (cheap estimators) eagerly.
    out = jfn(PARAMS, KEY)
    assert _equal(out, jfn(PARAMS, KEY))
    if name != "measure_valued":  # its eager lax.map is slow; the jitted path is what users run
        assert _equal(fn(PARAMS, KEY), fn(PARAMS, KEY))
        _close(out, fn(PARAMS, KEY), rtol=1e-5)
    # Different keys → different estimates.
    assert not _equal(out[1], jfn(PARAMS, jax.random.key(1))[1])
    # vmap over keys == one call per key.
    keys = jax.random.split(KEY, 3)
    vk = jax.jit(jax.vmap(fn, in_axes=(None, 0)))(PARAMS, keys)
    for i in range(3):
        _close(jax.tree_util.tree_map(lambda a, i=i: a[i], vk), jfn(PARAMS, keys[i]), rtol=1e-5)
    # vmap over params == one call per params.
    batch = jax.tree_util.tree_map(lambda a: jnp.stack([a, 2.0 * a]), PARAMS)
    vp = jax.jit(jax.vmap(fn, in_axes=(0, None)))(batch, KEY)
    for i in range(2):
        p_i = jax.tree_util.tree_map(lambda a, i=i: a[i], batch)
        _close(jax.tree_util.tree_map(lambda a, i=i: a[i], vp), jfn(p_i, KEY), rtol=1e-5)


def test_grad_wrt_f_args_exact():
    # f(x, w) = w · Σx: ∂/∂w of the MC objective is exactly the MC mean of Σx = loss(w=1).
    f = lambda x, w: w * jnp.sum(x)
    for name, opts in [("pathwise", {}), ("score", {"baseline": "loo"})]:  # measure-valued: test_expectation
        loss = jax.jit(rg.expectation(f, normal, estimator=name, num_samples=8, **opts))
        g_w = jax.grad(loss, argnums=2)(PARAMS, KEY, jnp.float32(2.0))
        np.testing.assert_allclose(g_w, loss(PARAMS, KEY, jnp.float32(1.0)), rtol=1e-6)


def test_grad_of_pathwise_estimator():
    # Differentiating the pathwise estimate of ∂μ E[cos(kx)] again gives an unbiased estimate
    # of ∂²/∂μ² E[cos(kx)] = −k² cos(kμ) e^{−k²σ²/2}.
    k, mu, sigma = 1.3, np.array([0.3, -0.5, 1.0]), np.array([0.8, 1.1, 0.6])
    exact = -(k**2) * np.cos(k * mu) * np.exp(-0.5 * k**2 * sigma**2)
    grad_fn = rg.pathwise_grad(f_cos, normal, num_samples=16)
    second = jax.grad(lambda loc, key: jnp.sum(grad_fn({"loc": loc, "scale": PARAMS["scale"]}, key)["loc"]))
    est = replicate(lambda key: second(PARAMS["loc"], key), jax.random.key(41), 300)
    assert_unbiased(est, exact, name="d²/dμ² via grad of pathwise_grad")


def _fit(estimator, steps=300, **opts):
    # minimize E[(x − 3)²] − log σ = (μ − 3)² + σ² − log σ  ⇒  μ* = 3, σ* = 1/√2.
    f = lambda x: jnp.sum((x - 3.0) ** 2)
    dist = lambda p: rg.Normal(p["loc"], jnp.exp(p["log_scale"]))
    loss = rg.expectation(f, dist, estimator=estimator, num_samples=16, **opts)
    stateful = loss.estimator.stateful
    objective = lambda p, key, s: loss(p, key, baseline_state=s) if stateful else (loss(p, key), None)
    objective_with_entropy = lambda p, key, s: (lambda out: (out[0] - jnp.sum(p["log_scale"]), out[1]))(
        objective(p, key, s)
    )
    opt = optax.adam(optax.cosine_decay_schedule(0.1, steps))  # decaying steps: little end jitter
    params = {"loc": jnp.zeros(2), "log_scale": jnp.zeros(2)}

    def step(carry, key):
        p, opt_state, s = carry
        g, s = jax.grad(objective_with_entropy, has_aux=True)(p, key, s)
        with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int32 and float
            updates, opt_state = opt.update(g, opt_state)
        return (optax.apply_updates(p, updates), opt_state, s), None

    init = (params, opt.init(params), loss.init_state() if stateful else None)
    (params, _, state), _ = jax.jit(lambda c, ks: jax.lax.scan(step, c, ks))(
        init, jax.random.split(KEY, steps)
    )
    return params, state


@pytest.mark.parametrize(
    "estimator, opts",
    [("pathwise", {}), ("score", {"baseline": "loo"}), ("score", {"baseline": "moving_average"})],
    ids=["pathwise", "score-loo", "score-moving-average"],
)
def test_scan_optax_training_converges(estimator, opts):
    params, state = _fit(estimator, **opts)
    # Deterministic (fixed keys); the decayed step size leaves the iterate near the optimum.
    np.testing.assert_allclose(params["loc"], 3.0, atol=0.15)
    np.testing.assert_allclose(jnp.exp(params["log_scale"]), 2**-0.5, atol=0.1)
    if state is not None:
        assert int(state.count) == 300


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_float64(name):
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), PARAMS)
        value, g = jax.jit(TRANSFORMS[name](f_cos))(p64, KEY)
        assert value.dtype == jnp.float64
        assert all(a.dtype == jnp.float64 for a in jax.tree_util.tree_leaves(g))
        if name == "measure_valued":
            return  # float32-under-x64 below exercises shared code; skip one slow compile
        # float32 params under x64: outputs stay float32.
        p32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), PARAMS)
        value, g = jax.jit(TRANSFORMS[name](lambda x: jnp.sum(jnp.cos(x))))(p32, KEY)
        assert value.dtype == jnp.float32
        assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(g))


def test_float64_mixed_dtypes_and_stateful_scan():
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), PARAMS)
        # f computing in float32 on float64 samples: the score surrogate casts, grads stay float64.
        f32 = lambda x: jnp.sum(jnp.cos(x.astype(jnp.float32)))
        v, g = rg.score_value_and_grad(f32, normal, num_samples=4)(p64, KEY)
        assert v.dtype == jnp.float32 and g["loc"].dtype == jnp.float64
        # Moving-average state created under x64 (float64) is a valid scan carry for float32 f.
        fn = rg.score_grad(f_cos, normal, num_samples=4, baseline="moving_average")
        p32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), PARAMS)

        def step(state, key):
            g, state = fn(p32, key, baseline_state=state)
            return state, g["loc"]

        state, _ = jax.lax.scan(step, fn.init_state(), jax.random.split(KEY, 3))
        assert int(state.count) == 3


@pytest.mark.parametrize("name", ["pathwise", "score", "measure_valued"])
def test_sharding_over_8_devices(name):
    assert len(jax.devices()) == 8  # tests/conftest.py asks XLA for 8 host devices
    mesh = Mesh(np.array(jax.devices()), ("s",))
    sharding = NamedSharding(mesh, P("s"))
    f = lambda x: (f_cos(x), x)  # aux = the samples themselves, to see their placement
    make = TRANSFORMS[name]
    ref = jax.jit(make(f, has_aux=True))(PARAMS, KEY)
    sharded = jax.jit(make(f, has_aux=True, sample_sharding=sharding))(PARAMS, KEY)
    (value, aux), g = sharded
    _close(sharded, ref, rtol=1e-6, atol=1e-6)
    # The per-sample array really is split across the 8 devices.
    assert aux.shape == (8, 3)
    assert len(aux.sharding.device_set) == 8 and not aux.sharding.is_fully_replicated
    # ... and through expectation too.
    loss = rg.expectation(f_cos, normal, estimator=name, num_samples=8, sample_sharding=sharding)
    _close(jax.jit(loss)(PARAMS, KEY), ref[0][0])


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_has_aux_stacks_per_sample(name):
    f = lambda x: (f_cos(x), {"x": x, "c": jnp.cos(x[0])})
    jfn = jax.jit(TRANSFORMS[name](f, has_aux=True))
    (value, aux), g = jfn(PARAMS, KEY)
    assert _equal(jfn(PARAMS, KEY), ((value, aux), g))  # same key → bit-identical
    assert aux["x"].shape == (8, 3) and aux["c"].shape == (8,)
    np.testing.assert_allclose(jnp.mean(jax.vmap(f_cos)(aux["x"])), value, rtol=1e-6)
    # grad transforms return (grads, aux).
    grad_fn = {
        "pathwise": rg.pathwise_grad,
        "score": lambda *a, **kw: rg.score_grad(*a, baseline="loo", **kw),
        "measure_valued": rg.measure_valued_grad,
    }[name]
    g2, aux2 = jax.jit(grad_fn(f, normal, num_samples=8, has_aux=True))(PARAMS, KEY)
    assert aux2["x"].shape == (8, 3)
    _close(g2, g)


def test_f_dtype_differs_from_params_dtype():
    # Grads follow the params' dtype and the value follows f's, for every estimator family.
    makers = {
        "pathwise": lambda f: rg.pathwise_value_and_grad(f, normal, num_samples=4),
        "score_loo": lambda f: rg.score_value_and_grad(f, normal, num_samples=4, baseline="loo"),
        "score_optimal": lambda f: rg.score_value_and_grad(f, normal, num_samples=4, baseline="optimal"),
        "score_delta": lambda f: rg.score_value_and_grad(f, normal, num_samples=4, control_variate="delta"),
        "measure_valued": lambda f: rg.measure_valued_value_and_grad(f, normal, num_samples=4),
    }
    with jax.enable_x64(True):
        for p_dtype, f_dtype in [(jnp.float64, jnp.float32), (jnp.float32, jnp.float64)]:
            params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, p_dtype), PARAMS)
            f = lambda x, f_dtype=f_dtype: jnp.sum(jnp.cos(x.astype(f_dtype)))
            for name, make in makers.items():
                value, g = make(f)(params, KEY)
                assert value.dtype == f_dtype, name
                assert all(a.dtype == p_dtype for a in jax.tree_util.tree_leaves(g)), name
                assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(g)), name
