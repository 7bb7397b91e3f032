"""Bayesian layers under data parallelism: the batch sharded over host devices.

conftest.py gives 8 host CPU devices. The recipe under test::

    mesh = jax.make_mesh((k,), ("batch",), axis_types=(AxisType.Auto,))
    x = jax.device_put(x, NamedSharding(mesh, PartitionSpec("batch")))
    y = jax.jit(rg.nn.dense_flipout)(params, x, key)

Flipout's signs and local reparameterization's noise for example n are drawn from
``fold_in(key, n)``: they depend only on the key and the example's index, so outputs do
not depend on the number of devices (or processes, tests/test_multiprocess.py) the batch
is split over, and each device draws its own examples' noise. Not statistical: sharded
and unsharded runs draw the same noise, so they differ only by float32 rounding: XLA
picks its matmul/conv kernel by shape, so a shard's rows can round differently in the
last bit (the shared-sample layer, with no per-example noise, shows the same ≤ 2.4e-7 on
O(1) outputs), and gradients sum over the batch in a different order. We allow rtol 1e-5
plus atol 1e-6, orders of magnitude below the noise (posterior std 0.01 at init), so a
different draw would fail.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import repgrad as rg
from repgrad import nn

B = 32  # divisible by 1, 2, 4, 8 devices
RTOL, ATOL = 1e-5, 1e-6


def _sharding(k):
    if len(jax.devices()) < k:
        pytest.skip(f"needs {k} devices (conftest sets 8 host devices)")
    return NamedSharding(jax.make_mesh((k,), ("batch",), axis_types=(AxisType.Auto,)), P("batch"))


def _dense():
    return nn.init_dense(jax.random.key(0), 6, 5), jax.random.normal(jax.random.key(1), (B, 6))


def _conv():
    return nn.init_conv2d(jax.random.key(0), 3, 2, 4), jax.random.normal(jax.random.key(1), (B, 5, 5, 2))


LAYERS = {
    "dense_flipout": (nn.dense_flipout, _dense),
    "dense_local_reparameterization": (nn.dense_local_reparameterization, _dense),
    "conv2d_flipout": (nn.conv2d_flipout, _conv),
    "conv2d_local_reparameterization": (nn.conv2d_local_reparameterization, _conv),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_outputs_do_not_depend_on_device_count(name):
    layer, make = LAYERS[name]
    params, x = make()
    key = jax.random.key(7)
    fn = jax.jit(layer)
    want = np.asarray(fn(params, x, key))
    for k in (2, 8) if name == "dense_flipout" else (8,):
        sharding = _sharding(k)
        xs = jax.device_put(x, sharding)
        compiled = fn.lower(params, xs, key).compile()
        y = compiled(params, xs, key)
        np.testing.assert_allclose(np.asarray(y), want, rtol=RTOL, atol=ATOL, err_msg=f"{name} on {k} devices")
        assert y.sharding.spec == P("batch"), "outputs stay sharded over the batch"
        hlo = compiled.as_text()
        assert f"num_partitions={k}" in hlo
        # each device draws only its own examples' noise: no random-bit array with B rows
        assert not re.search(rf"u32\[{B},", hlo), "noise for the whole batch is generated on every device"
        assert "all-gather" not in hlo


@pytest.mark.parametrize("name", ["dense_flipout", "dense_local_reparameterization", "conv2d_flipout"])
def test_noise_depends_only_on_key_and_example_index(name):
    """Example n's output is the same in a batch of 5 as in a batch of 32."""
    layer, make = LAYERS[name]
    params, x = make()
    key = jax.random.key(7)
    fn = jax.jit(layer)
    np.testing.assert_allclose(np.asarray(fn(params, x[:5], key)), np.asarray(fn(params, x, key))[:5], rtol=RTOL, atol=ATOL)


def test_signs_independent_across_shards():
    """Sharded over 8 devices, each shard's signs are its own. With one input channel,
    x = 1 and no mean, Flipout's output is y_n = s_n (ε ∘ r_n): sign(y_nj) = sign(ε_j)·s_n·r_nj,
    so two examples agree in sign at j iff their sign products do, which for independent
    Rademacher signs happens with probability 1/2. Shard pairs must agree on about half of
    their entries (5-SE bound: chance failure ≈ 6e-7 per pair, 7 pairs), and the sharded
    outputs equal the unsharded ones."""
    batch, channels = 1024, 48
    layer = rg.nn.flipout(lambda w, x: x @ w, example_ndim=1)
    loc, scale = jnp.zeros((1, channels)), jnp.ones((1, channels))
    x = jnp.ones((batch, 1))
    sharding = _sharding(8)
    key = jax.random.key(11)
    fn = jax.jit(layer)
    y = fn(loc, scale, jax.device_put(x, sharding), key)
    assert {s.data.shape for s in y.addressable_shards} == {(batch // 8, channels)}
    np.testing.assert_allclose(np.asarray(y), np.asarray(fn(loc, scale, x, key)), rtol=RTOL, atol=ATOL)
    signs = np.sign(np.asarray(y)).reshape(8, batch // 8, channels)
    n = signs[0].size
    for a, b in zip(signs[:-1], signs[1:], strict=True):
        assert abs(np.mean(a == b) - 0.5) < 5 * 0.5 / math.sqrt(n)


@pytest.mark.slow
def test_sharded_elbo_gradient_matches_unsharded():
    """Data-parallel gradient of a Flipout MLP's negative ELBO: batch over 8 devices."""
    params = (nn.init_dense(jax.random.key(0), 6, 8), nn.init_dense(jax.random.key(1), 8, 3))
    x = jax.random.normal(jax.random.key(2), (B, 6))
    y = jax.random.randint(jax.random.key(3), (B,), 0, 3)

    def apply(ps, x, key):
        k1, k2 = jax.random.split(key)
        return nn.dense_flipout(ps[1], jnp.tanh(nn.dense_flipout(ps[0], x, k1)), k2)

    def log_lik(logits, y):
        return jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]

    grad = jax.jit(jax.grad(nn.make_elbo_loss(apply, log_lik, num_train=1000)))
    key = jax.random.key(5)
    want = grad(params, key, x, y)
    sharding = _sharding(8)
    xs, ys = jax.device_put(x, sharding), jax.device_put(y, sharding)
    compiled = grad.lower(params, key, xs, ys).compile()
    got = compiled(params, key, xs, ys)
    assert "all-reduce" in compiled.as_text()
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL), got, want)
    assert all(g.sharding.is_fully_replicated for g in jax.tree.leaves(got))
