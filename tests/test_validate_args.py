"""validate_args=True under jax.jit raises for invalid traced values at run time (issue 16,
item 12: it was a checkify.debug_check, silent unless the call was wrapped in checkify).

The check is a lax.cond that calls back to Python only where the rules fail; these tests pin
that it raises (with the concrete check's message naming the fix) under jit, vmap (one check
for the batch, not one callback per entry), grad and higher derivatives, scan, cond, with
parameters sharded over the 8 host devices (every device stops: none is left waiting at a
collective) and inside checkify.checkify, and that valid values, the default (None) and False
add nothing that raises. Deterministic: no statistics.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import repgrad as rg

KEY = jax.random.key(0)
F = lambda x: jnp.sum(x * x)
# jax reports an error raised in a host callback as a JaxRuntimeError carrying its message, or as
# the ValueError itself, depending on its dispatch path.
RUNTIME = (jax.errors.JaxRuntimeError, ValueError)
SCALE = r"Normal: scale must be positive and finite; got -1.*softplus.*validate_args=False"


def _normal(validate_args=True):
    return lambda s: rg.Normal(0.0, s, validate_args=validate_args)


def _run(fn, *args):
    return jax.block_until_ready(fn(*args))


@pytest.mark.parametrize("transform", [rg.score_grad, rg.pathwise_grad, rg.measure_valued_grad])
def test_jit_raises_at_run_time_naming_the_fix(transform):
    fn = jax.jit(transform(F, _normal(), num_samples=4))
    assert np.isfinite(_run(fn, jnp.float32(1.0), KEY))
    for _ in range(2):  # first call (compile) and cached call
        with pytest.raises(RUNTIME, match=SCALE):
            _run(fn, jnp.float32(-1.0), KEY)
    assert np.isfinite(_run(fn, jnp.float32(2.0), KEY))


@pytest.mark.parametrize(
    "make, bad, match",
    [
        (lambda p: rg.Bernoulli(probs=p, validate_args=True), 1.5, r"Bernoulli: probs must lie in \[0, 1\]; got 1.5.*logits="),
        (lambda p: rg.Categorical(probs=jnp.stack([p, 0.5]), validate_args=True), -0.1, r"probs must lie in \[0, 1\]"),
        (lambda p: rg.Gamma(p, 1.0, validate_args=True), 0.0, "concentration must be positive"),
        (lambda p: rg.Uniform(p, 0.5, validate_args=True), 1.0, "low must be below high, both finite; got 1, 0.5"),
        (lambda p: rg.MultivariateNormalTri(jnp.zeros(2), jnp.array([[1.0, 0.0], [0.3, p]]), validate_args=True), 0.0,
         "scale_tri must be finite with a nonzero diagonal"),
        (lambda p: rg.Normal(jnp.stack([0.0, p]), 1.0, validate_args=True), jnp.nan, r"loc must be finite; got nan at index \(1,\)"),
    ],
    ids=["bernoulli-probs", "categorical-probs", "gamma", "uniform", "mvn-tri", "nan-loc"],
)  # fmt: skip
def test_each_rule_at_run_time(make, bad, match):
    fn = jax.jit(lambda p: make(p).sample(KEY))
    with pytest.raises(RUNTIME, match=match):
        _run(fn, jnp.float32(bad))


def test_vmap_one_check_for_the_batch():
    """Under vmap the predicate is reduced over the batch (a custom_vmap rule): one callback in
    the program, not one per entry (a batched cond would become a select and unroll it), and the
    message points at the offending entry."""
    fn = jax.jit(jax.vmap(rg.pathwise_grad(F, _normal(), num_samples=4), in_axes=(0, None)))
    scales = jnp.ones(1000)
    assert np.all(np.isfinite(_run(fn, scales, KEY)))
    assert fn.lower(scales, KEY).as_text().count("python_cpu_callback") == 1
    with pytest.raises(RUNTIME, match=r"got -3 at index \(7,\) \(1 of 1000 entries invalid\)"):
        _run(fn, scales.at[7].set(-3.0), KEY)
    nested = jax.jit(jax.vmap(jax.vmap(lambda s: rg.Normal(0.0, s, validate_args=True).log_prob(1.0))))
    with pytest.raises(RUNTIME, match=r"index \(2, 3\)"):
        _run(nested, jnp.ones((4, 5)).at[2, 3].set(-1.0))


def test_derivatives_of_every_order_and_control_flow():
    loss = rg.expectation(F, _normal(), estimator="score", num_samples=4)
    for fn in (jax.grad(loss), jax.hessian(loss), jax.grad(jax.grad(loss)), jax.jacfwd(jax.grad(loss))):
        fn = jax.jit(fn)
        assert np.isfinite(_run(fn, jnp.float32(1.0), KEY))
        with pytest.raises(RUNTIME, match=SCALE):
            _run(fn, jnp.float32(-1.0), KEY)
    scan = jax.jit(lambda s: jax.lax.scan(lambda c, s: (c + _normal()(s).log_prob(1.0), None), 0.0, s)[0])
    assert np.isfinite(_run(scan, jnp.ones(3)))
    with pytest.raises(RUNTIME, match="scale must be positive"):
        _run(scan, jnp.array([1.0, -1.0, 1.0]))
    cond = jax.jit(lambda s, b: jax.lax.cond(b, lambda s: _normal()(s).log_prob(1.0), lambda s: s, s))
    assert np.isfinite(_run(cond, jnp.float32(-1.0), False))  # the branch that builds it does not run
    with pytest.raises(RUNTIME, match="scale must be positive"):
        _run(cond, jnp.float32(-1.0), True)


def test_sharded_parameters_every_device_stops():
    """Parameters sharded over 8 devices, a collective after the check: every device runs the
    callback on its own shard and stops, so none waits at the all-reduce (with the callback on
    device 0 only, the others waited until XLA aborted the process)."""
    mesh = jax.make_mesh((8,), ("d",), axis_types=(AxisType.Auto,))
    sharded = NamedSharding(mesh, P("d"))

    def total(s):
        d = rg.Normal(jnp.zeros(16), s, validate_args=True)
        return jnp.sum(d.log_prob(d.loc + 1.0)) + jnp.sum(d.scale)  # all-reduces after the check

    fn = jax.jit(total)
    assert np.isfinite(_run(fn, jax.device_put(jnp.linspace(0.5, 2.0, 16), sharded)))
    bad = jax.device_put(jnp.linspace(0.5, 2.0, 16).at[13].set(-1.0), sharded)
    with pytest.raises(RUNTIME, match="scale must be positive and finite; got"):
        _run(fn, bad)
    # Replicated parameters, samples sharded by the transforms (the README's recipe).
    score = jax.jit(rg.score_grad(F, _normal(), num_samples=64, sample_sharding=NamedSharding(mesh, P("d"))))
    assert np.isfinite(_run(score, jnp.float32(1.0), KEY))
    with pytest.raises(RUNTIME, match=SCALE):
        _run(score, jnp.float32(-1.0), KEY)
    assert np.isfinite(_run(fn, jax.device_put(jnp.linspace(0.5, 2.0, 16), sharded)))  # still usable


def test_inside_checkify_the_call_raises():
    """checkify.checkify does not see the check (a callback, not a checkify.check): the call raises."""
    fn = checkify.checkify(jax.jit(rg.score_grad(F, _normal(), num_samples=4)))
    err, g = fn(jnp.float32(1.0), KEY)
    assert err.get() is None and np.isfinite(g)
    with pytest.raises(RUNTIME, match=SCALE):
        _run(fn, jnp.float32(-1.0), KEY)


@pytest.mark.parametrize("validate_args", [None, False])
def test_default_and_off_add_nothing_to_traced_programs(validate_args):
    fn = jax.jit(rg.score_grad(F, _normal(validate_args), num_samples=4))
    assert "callback" not in str(jax.make_jaxpr(fn)(jnp.float32(1.0), KEY))
    _run(fn, jnp.float32(-1.0), KEY)  # no error: traced values are not checked (documented)
    fn_true = jax.jit(rg.score_grad(F, _normal(True), num_samples=4))
    assert "callback" in str(jax.make_jaxpr(fn_true)(jnp.float32(1.0), KEY))


def test_concrete_values_still_raise_at_construction():
    with pytest.raises(ValueError, match=SCALE):
        rg.Normal(0.0, -1.0, validate_args=True)
    with pytest.raises(ValueError, match=SCALE):  # inside the transforms' own (un-jitted) grad
        rg.score_grad(F, _normal(), num_samples=4)(jnp.float32(-1.0), KEY)
