"""Sharding the sample axis across devices with ``jax.sharding`` (README recipe).

conftest.py gives 8 host CPU devices. The recipe under test::

    mesh = jax.make_mesh((8,), ("samples",), axis_types=(jax.sharding.AxisType.Auto,))
    sharding = NamedSharding(mesh, PartitionSpec("samples"))
    loss = rg.expectation(f, dist, estimator=..., num_samples=64, sample_sharding=sharding)

These are not statistical tests: the sharded and unsharded transforms draw the *same*
samples from the same key, so they must agree up to the float32 rounding of a reduction
done in a different order (relative error ≲ N·eps ≈ 64 · 1.2e-7 ≈ 8e-6 in the worst case;
we allow 2e-5 relative plus a tiny absolute slack for near-zero entries).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import repgrad as rg

N = 64  # divisible by 1, 2, 4, 8 devices
RTOL, ATOL = 2e-5, 1e-6


def _mesh(k):
    if len(jax.devices()) < k:
        pytest.skip(f"needs {k} devices (conftest sets 8 host devices)")
    return jax.make_mesh((k,), ("samples",), axis_types=(AxisType.Auto,))


def _problem():
    def f(x, w):
        return jnp.sum(jnp.cos(w * x)) + 0.5 * jnp.sum(x * x)

    def dist(p):
        return rg.Normal(p["loc"], p["scale"])

    params = {"loc": jnp.array([0.3, -0.2, 1.0]), "scale": jnp.array([0.8, 1.1, 0.5])}
    return f, dist, params, jnp.float32(1.5)


def _close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL, atol=ATOL), a, b)


@pytest.mark.parametrize(
    "estimator,options",
    [("pathwise", {}), ("score", {"baseline": "loo"})],
    ids=["pathwise", "score-loo"],
)
def test_sharded_expectation_matches_unsharded(estimator, options):
    f, dist, params, w = _problem()
    sharding = NamedSharding(_mesh(8), P("samples"))
    key = jax.random.key(3)
    sharded = rg.expectation(f, dist, estimator=estimator, num_samples=N, sample_sharding=sharding, **options)
    plain = rg.expectation(f, dist, estimator=estimator, num_samples=N, **options)
    grad = lambda loss: jax.jit(jax.value_and_grad(loss, argnums=(0, 2)))(params, key, w)
    _close(grad(sharded), grad(plain))


def test_sharded_grad_is_partitioned_and_all_reduced():
    """The compiled program runs on 8 partitions and all-reduces the mean over samples."""
    f, dist, params, w = _problem()
    sharding = NamedSharding(_mesh(8), P("samples"))
    fn = jax.jit(rg.pathwise_grad(f, dist, num_samples=N, sample_sharding=sharding))
    hlo = fn.lower(params, jax.random.key(0), w).compile().as_text()
    assert "num_partitions=8" in hlo
    assert "all-reduce" in hlo


def test_aux_stays_sharded_over_samples():
    """f's per-sample outputs live on the devices that computed them (8 shards of 8)."""
    f, dist, params, w = _problem()
    sharding = NamedSharding(_mesh(8), P("samples"))
    f_aux = lambda x, w: (f(x, w), x[0])
    fn = jax.jit(rg.pathwise_value_and_grad(f_aux, dist, num_samples=N, has_aux=True, sample_sharding=sharding))
    (value, aux), grads = fn(params, jax.random.key(0), w)
    assert aux.shape == (N,)
    assert aux.sharding.spec == P("samples")
    assert {s.data.shape for s in aux.addressable_shards} == {(N // 8,)}
    assert grads["loc"].sharding.is_fully_replicated


def test_fewer_devices_and_stateful_baseline_in_scan(k=2):
    """A sub-mesh works, and a stateful baseline threads through lax.scan under sharding."""
    f, dist, params, w = _problem()
    sharding = NamedSharding(_mesh(k), P("samples"))
    make = lambda **kw: rg.score_value_and_grad(f, dist, num_samples=N, baseline="moving_average", **kw)

    def run(fn):
        def step(carry, key):
            p, state = carry
            (v, g), state = fn(p, key, w, baseline_state=state)
            p = jax.tree.map(lambda a, b: a - 0.05 * b, p, g)
            return (p, state), v

        keys = jax.random.split(jax.random.key(1), 4)
        return jax.jit(lambda: jax.lax.scan(step, (params, fn.init_state()), keys))()

    _close(run(make(sample_sharding=sharding)), run(make()))
