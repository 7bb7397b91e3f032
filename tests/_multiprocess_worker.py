"""One process of a multi-process ``jax.distributed`` job on the CPU backend.

tests/test_multiprocess.py starts ``NUM_PROCESSES`` of these::

    python tests/_multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT

Each initializes ``jax.distributed`` against a coordinator on localhost:PORT (process 0
hosts it), gets ``LOCAL_DEVICES`` CPU devices of its own, and runs two computations
sharded over the global mesh of all processes' devices, communicating through XLA's CPU
collectives (gloo over TCP): a sharded-sample ``rg.expectation`` gradient and two
data-parallel training step of a Flipout Bayesian MLP. It prints one JSON line with the
results. The same problems, run unsharded in one process by :func:`reference`, give the
numbers the test compares them with: JAX's runtime is the whole distribution layer.
"""

from __future__ import annotations

import json
import os
import sys

LOCAL_DEVICES = 2

if __name__ == "__main__":  # before jax is imported
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={LOCAL_DEVICES}"
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import repgrad as rg  # noqa: E402

NUM_SAMPLES = 64  # sample axis of the expectation, divisible by the 4 global devices
BATCH, FEATURES, HIDDEN, CLASSES = 64, 8, 16, 3
STEPS, LEARNING_RATE = 1, 0.05


# ------------------------------------------------------------------------- problems


def expectation_problem():
    def f(x, w):
        return jnp.sum(jnp.cos(w * x)) + 0.5 * jnp.sum(x * x)

    def dist(p):
        return rg.Normal(p["loc"], p["scale"])

    params = {"loc": np.array([0.3, -0.2, 1.0], np.float32), "scale": np.array([0.8, 1.1, 0.5], np.float32)}
    return f, dist, params, np.float32(1.5)


def expectation_grads(sample_sharding=None):
    """``value_and_grad`` of the sharded expectation w.r.t. (params, w), per estimator, jitted."""
    f, dist, _, _ = expectation_problem()
    out = {}
    for name, options in {"pathwise": {}, "score": {"baseline": "loo"}}.items():
        loss = rg.expectation(
            f, dist, estimator=name, num_samples=NUM_SAMPLES, sample_sharding=sample_sharding, **options
        )
        out[name] = jax.jit(lambda p, key_data, w, loss=loss: jax.value_and_grad(loss, argnums=(0, 2))(
            p, jax.random.wrap_key_data(key_data), w))
    return out


def bnn_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=BATCH).astype(np.int32)
    return x, y


def bnn_init():
    """Posterior means ~ N(0, 1/fan_in), posterior scales softplus(-4) ≈ 0.018 (host arrays)."""
    rng = np.random.default_rng(1)

    def layer(n_in, n_out):
        loc = (rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        rho = np.full((n_in, n_out), -4.0, np.float32)
        return rg.nn.DenseParams(loc, rho, np.zeros(n_out, np.float32), np.full(n_out, -4.0, np.float32))

    return layer(FEATURES, HIDDEN), layer(HIDDEN, CLASSES)


def bnn_train(data_sharding=None):
    """``STEPS`` SGD steps on the negative ELBO of a Flipout MLP; the batch is sharded over
    ``data_sharding`` (data parallelism), the parameters replicated. Returns a jitted
    ``train(params, x, y, key_data) -> (params, losses)``."""

    def apply(params, x, key):
        k1, k2 = jax.random.split(key)
        h = jnp.tanh(rg.nn.dense_flipout(params[0], x, k1))
        return rg.nn.dense_flipout(params[1], h, k2)

    def log_lik(logits, y):
        return jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]

    loss = rg.nn.make_elbo_loss(apply, log_lik, num_train=10 * BATCH)

    def train(params, x, y, key_data):
        if data_sharding is not None:  # what a data loader would hand over: a batch-sharded array
            x, y = (jax.lax.with_sharding_constraint(a, data_sharding) for a in (x, y))
        key = jax.random.wrap_key_data(key_data)
        losses = []
        for step in range(STEPS):
            value, grads = jax.value_and_grad(loss)(params, jax.random.fold_in(key, step), x, y)
            params = jax.tree.map(lambda p, g: p - LEARNING_RATE * g, params, grads)
            losses.append(value)
        return params, jnp.stack(losses)

    return jax.jit(train)


def key_data():
    """The key, as raw data (global arrays of typed keys cannot be built from host values)."""
    return np.asarray(jax.random.key_data(jax.random.key(3)))


def _flat(tree):
    return [np.asarray(a, np.float64).ravel().tolist() for a in jax.tree.leaves(tree)]


def reference():
    """Both problems in one process, unsharded: the numbers the workers must reproduce."""
    _, _, params, w = expectation_problem()
    out = {name: _flat(fn(params, key_data(), w)) for name, fn in expectation_grads().items()}
    x, y = bnn_data()
    out["bnn"] = _flat(bnn_train()(bnn_init(), x, y, key_data()))
    return out


# ---------------------------------------------------------------------------- worker


def _replicated(tree, mesh):
    """Host values (identical on every process) as replicated global arrays."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda a: jax.make_array_from_callback(np.shape(a), sharding, lambda idx: np.asarray(a)[idx]), tree)


def _local_rows(sharding, shape):
    """The contiguous block of rows of a batch-sharded global array this process holds."""
    idx = sharding.addressable_devices_indices_map(shape).values()
    starts = [i[0].start or 0 for i in idx]
    stops = [i[0].stop if i[0].stop is not None else shape[0] for i in idx]
    return slice(min(starts), max(stops))


def _fetch(tree):
    """Replicated outputs: read this process's copy."""
    return _flat(jax.tree.map(lambda a: a.addressable_data(0), tree))


def main(process_id: int, num_processes: int, port: int):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # the default; said for the reader
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=num_processes, process_id=process_id,
        initialization_timeout=60,
    )
    assert jax.process_count() == num_processes and jax.local_device_count() == LOCAL_DEVICES
    mesh = jax.make_mesh((jax.device_count(),), ("batch",), axis_types=(AxisType.Auto,))
    sharded = NamedSharding(mesh, P("batch"))

    out = {"process_index": jax.process_index(), "device_count": jax.device_count()}
    _, _, params, w = expectation_problem()
    args = _replicated((params, key_data(), w), mesh)
    for name, fn in expectation_grads(sample_sharding=sharded).items():
        compiled = fn.lower(*args).compile()
        out[name] = _fetch(compiled(*args))
        out[name + "_hlo_all_reduce"] = "all-reduce" in compiled.as_text()

    # Data parallelism: each process loads only its own rows of the batch.
    x, y = bnn_data()
    rows = _local_rows(sharded, x.shape)
    gx = jax.make_array_from_process_local_data(sharded, x[rows], x.shape)
    gy = jax.make_array_from_process_local_data(sharded, y[rows], y.shape)
    out["rows"] = [rows.start, rows.stop]
    out["bnn"] = _fetch(bnn_train(sharded)(_replicated(bnn_init(), mesh), gx, gy, _replicated(key_data(), mesh)))
    print(json.dumps(out), flush=True)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
