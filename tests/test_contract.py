"""One contract over every registered estimator: registering an estimator tests it.

For each distinct factory in ``repgrad.ESTIMATORS`` (with the options it needs, below), the
transforms built on it must: give bit-identical results for the same key and different ones
for another key; vmap over params and over keys; run in a
``lax.scan`` training loop carrying its state/control parameters; run in float64; stack aux
with ``has_aux``; split the sample axis over 8 devices with the unsharded numbers; return
gradients with the params' pytree structure; reject bad ``num_samples``, keys and non-scalar
f with errors that name the fix; and give the transform its own signature, so ``jax.jit``'s
``static_argnums``/``donate_argnames`` and ``eqx.filter_jit`` bind to it.

Nothing here is statistical: the unbiasedness of each estimator is tested in its own file.
"""

import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import repgrad as rg
from repgrad._src import registry

KEY = jax.random.key(0)
N = 8

# Options an estimator cannot do without; a newly registered estimator that needs some
# fails below until it gets an entry here.
REQUIRED_OPTIONS = {"relax": {"control": lambda z, psi, *args: psi * jnp.sum(jax.nn.sigmoid(z))}}
CONTROL_PARAMS = {"relax": lambda: jnp.asarray(0.5)}  # weakly typed: float32 or float64


def _registered():
    return registry.distinct_names()


NAMES = _registered()


def _problem(est, dtype=jnp.float32):
    """(f, dist, params) suited to the estimator's family: a dict of two leaves."""
    if est.family in ("reparameterized", "any", "measure_valued"):
        params = {"loc": jnp.array([0.3, -0.5, 1.0], dtype), "log_scale": jnp.array([-0.2, 0.1, 0.0], dtype)}
        dist = lambda p: rg.Normal(p["loc"], jnp.exp(p["log_scale"]))
        f = lambda x: jnp.sum(jnp.cos(1.3 * x))
    else:
        params = {"logits": jnp.array([0.2, -0.4, 1.1], dtype), "shift": jnp.array(0.1, dtype)}
        dist = lambda p: rg.Bernoulli(logits=p["logits"] + p["shift"])
        weights = jnp.array([1.0, 2.0, 3.0], dtype)
        f = lambda b: jnp.sum((b - 0.45) ** 2 * weights)
        if est.log_weight:
            f = lambda b: -jnp.sum((b - 0.45) ** 2 * weights)
    return f, dist, params


def _estimator(name):
    return rg.ESTIMATORS[name](**REQUIRED_OPTIONS.get(name, {}))


def _inputs(name, est):
    """Keyword inputs of a call: initial state and control parameters."""
    kw = {}
    if est.stateful:
        kw["baseline_state"] = est.init()
    if est.control_init is not None:
        kw["control_params"] = CONTROL_PARAMS[name]() if name in CONTROL_PARAMS else est.control_init()
    return kw


def _grads(out, est):
    """The gradient pytree from a rg.grad result (dropping control grads / state)."""
    if est.stateful:
        out = out[0]
    if est.control_init is not None:
        out = out[0]
    return out


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


def _close(a, b, rtol=2e-5, atol=1e-6):
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


@pytest.mark.parametrize("name", NAMES)
def test_estimator_value_is_complete(name):
    est = _estimator(name)
    assert isinstance(est, rg.Estimator) and est.surrogate and est.name
    assert est.family in ("any", "reparameterized", "measure_valued", "bernoulli", "discrete")
    assert est.max_order in (None, 1)
    state = est.init()  # defined for every estimator: () when stateless
    assert (state == ()) != est.stateful
    doc = inspect.getdoc(rg.ESTIMATORS[name])
    assert "Example" in doc and ("References" in doc or "see" in doc), f"rg.{name} needs its math, example and paper"


@pytest.mark.parametrize("name", NAMES)
def test_determinism_jit_vmap_structure(name):
    est = _estimator(name)
    f, dist, params = _problem(est)
    kw = _inputs(name, est)
    fn = rg.grad(f, dist, est, num_samples=N)
    jfn = jax.jit(fn)
    g = _grads(jfn(params, KEY, **kw), est)
    assert jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(params)
    assert all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(params), strict=True))
    assert _equal(g, _grads(jfn(params, KEY, **kw), est)), "same key must give the same bits"
    if name != "enumeration":  # exact: no randomness to vary
        assert not _equal(g, _grads(jfn(params, jax.random.key(1), **kw), est)), "the key must matter"
    keys = jax.random.split(KEY, 3)
    vk = jax.jit(jax.vmap(lambda k: _grads(fn(params, k, **kw), est)))(keys)
    for i in range(3):
        _close(jax.tree_util.tree_map(lambda a, i=i: a[i], vk), _grads(jfn(params, keys[i], **kw), est))
    batch = jax.tree_util.tree_map(lambda a: jnp.stack([a, 0.5 * a]), params)
    vp = jax.jit(jax.vmap(lambda p: _grads(fn(p, KEY, **kw), est)))(batch)
    for i in range(2):
        p_i = jax.tree_util.tree_map(lambda a, i=i: a[i], batch)
        _close(jax.tree_util.tree_map(lambda a, i=i: a[i], vp), _grads(jfn(p_i, KEY, **kw), est))


@pytest.mark.parametrize("name", NAMES)
def test_has_aux_and_value(name):
    est = _estimator(name)
    f, dist, params = _problem(est)
    kw = _inputs(name, est)
    out = jax.jit(rg.value_and_grad(lambda x: (f(x), jnp.sum(x)), dist, est, num_samples=N, has_aux=True))(params, KEY, **kw)
    if est.stateful:
        out = out[0]
    if est.control_init is not None:
        out = out[0]
    (value, aux), _ = out
    assert value.shape == () and jnp.isfinite(value)
    assert aux.ndim == 1 and aux.shape[0] >= N or name == "enumeration", aux.shape
    plain = jax.jit(rg.value_and_grad(f, dist, est, num_samples=N))(params, KEY, **kw)
    plain = plain[0] if est.stateful else plain
    plain = plain[0] if est.control_init is not None else plain
    assert np.array_equal(plain[0], value)


@pytest.mark.parametrize("name", NAMES)
def test_scan_training_loop_and_float64(name):
    est = _estimator(name)
    with jax.enable_x64(True):
        f, dist, params = _problem(est, jnp.float64)
        kw = _inputs(name, est)
        fn = rg.grad(f, dist, est, num_samples=N)

        def step(carry, key):
            p, kw = carry
            out = fn(p, key, **kw)
            new = dict(kw)
            if est.stateful:
                out, new["baseline_state"] = out
            if est.control_init is not None:
                out, control_grads = out
                new["control_params"] = jax.tree_util.tree_map(lambda c, g: c - 0.01 * g, kw["control_params"], control_grads)
            p = jax.tree_util.tree_map(lambda a, g: a - 0.05 * g, p, out)
            return (p, new), None

        (p, _), _ = jax.lax.scan(step, (params, kw), jax.random.split(KEY, 3))
        for leaf in jax.tree_util.tree_leaves(p):
            assert leaf.dtype == jnp.float64 and bool(jnp.all(jnp.isfinite(leaf)))


@pytest.mark.parametrize("name", NAMES)
def test_sample_sharding_over_8_devices(name):
    est = _estimator(name)
    f, dist, params = _problem(est)
    kw = _inputs(name, est)
    mesh = jax.make_mesh((8,), ("samples",), axis_types=(jax.sharding.AxisType.Auto,))
    sharding = NamedSharding(mesh, P("samples"))
    sharded = jax.jit(rg.value_and_grad(f, dist, est, num_samples=N, sample_sharding=sharding))
    plain = jax.jit(rg.value_and_grad(f, dist, est, num_samples=N))
    _close(sharded(params, KEY, **kw), plain(params, KEY, **kw), rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_name_the_fix(name):
    est = _estimator(name)
    f, dist, params = _problem(est)
    kw = _inputs(name, est)
    with pytest.raises(ValueError, match="num_samples"):
        rg.grad(f, dist, est, num_samples=0)
    with pytest.raises(TypeError, match="static value"):
        rg.grad(f, dist, est, num_samples=2.0)
    fn = rg.grad(f, dist, est, num_samples=N)
    with pytest.raises(TypeError, match=r"jax\.random\.key"):
        fn(params, 0, **kw)
    with pytest.raises(TypeError, match=r"jax\.random\.key"):
        fn(params, jax.random.split(KEY, 2), **kw)
    with pytest.raises(TypeError, match=r"jnp\.sum"):
        rg.grad(lambda x: jnp.stack([f(x), f(x)]), dist, est, num_samples=N)(params, KEY, **kw)
    with pytest.raises(TypeError, match="positionally"):
        fn(params, KEY, extra=1.0, **kw)


@pytest.mark.parametrize("name", NAMES)
def test_own_signature_for_jit_options(name):
    est = _estimator(name)
    f, dist, params = _problem(est)
    kw = _inputs(name, est)
    def g_with_arg(x, c):
        return f(x) * c

    for build in (rg.grad, rg.value_and_grad, rg.expectation):
        fn = build(g_with_arg, dist, est, num_samples=N)
        sig = list(inspect.signature(fn).parameters)
        assert sig[:3] == ["params", "key", "args"] and set(sig[3:]) == set(kw), sig
        assert not hasattr(fn, "__wrapped__") and "g_with_arg" in fn.__name__ and "g_with_arg" in fn.__doc__
        assert fn.init_state() == est.init()
    loss = jax.jit(rg.expectation(g_with_arg, dist, est, num_samples=N), static_argnums=2)
    out = loss(params, KEY, 2.0, **kw)
    assert np.isfinite(jax.tree_util.tree_leaves(out)[0])


def test_donate_argnames_binds_to_params():
    est = rg.pathwise()
    f, dist, params = _problem(est)
    fn = rg.value_and_grad(lambda x, c: f(x) * c, dist, est, num_samples=N)
    ref = jax.jit(fn)(params, KEY, 2.0)
    donated = jax.tree_util.tree_map(jnp.copy, params)
    with warnings.catch_warnings():  # the CPU backend cannot reuse donated buffers; binding is what is tested
        warnings.filterwarnings("ignore", "Some donated buffers were not usable")
        _close(jax.jit(fn, donate_argnames="params")(donated, KEY, 2.0), ref)


def test_equinox_filter_jit():
    eqx = pytest.importorskip("equinox")
    est = rg.score(baseline="loo")
    f, dist, params = _problem(est)
    fn = rg.grad(f, dist, est, num_samples=N)
    _close(eqx.filter_jit(fn)(params, KEY), jax.jit(fn)(params, KEY))
    loss = rg.expectation(lambda x, n: f(x) ** n, dist, est, num_samples=N)
    _close(eqx.filter_jit(loss)(params, KEY, 2), jax.jit(loss, static_argnums=2)(params, KEY, 2))


def test_unknown_registered_option_needs_an_entry():
    for name in NAMES:
        sig = inspect.signature(rg.ESTIMATORS[name])
        required = [n for n, p in sig.parameters.items() if p.default is inspect.Parameter.empty]
        assert set(required) <= set(REQUIRED_OPTIONS.get(name, {})), (
            f"rg.{name} has required options {required}: add them to REQUIRED_OPTIONS in this file"
        )
