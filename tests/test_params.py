"""params with leaves that have no gradient (issue 16 case 14, issue 17 item 2): the transforms
differentiate the floating-point array leaves and pass the rest through with a ``None``
gradient, as ``equinox.filter_grad`` does; params with no floating-point leaf get a
``TypeError`` that names the cast (not JAX's "allow_int" advice)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

import repgrad as rg

KEY = jax.random.key(0)
F = lambda x: jnp.sum(x**2)  # E[F] = Σ (μ² + 1), gradient 2μ
LOC = jnp.array([0.2, -0.3])


@pytest.mark.parametrize("params", [jnp.array([1, 2]), 3, jnp.array([True, False])], ids=["int-array", "python-int", "bool"])
@pytest.mark.parametrize("transform", [rg.pathwise_grad, rg.score_grad, rg.measure_valued_grad])
def test_params_without_floats_name_the_cast(params, transform):
    dist = lambda p: rg.Normal(jnp.asarray(p, jnp.float32), 1.0)
    with pytest.raises(TypeError, match=r"jnp\.asarray\(params, jnp\.float32\)"):
        transform(F, dist, num_samples=4)(params, KEY)


def test_integer_leaves_pass_through_with_none_gradient():
    params = {"loc": LOC, "k": jnp.int32(2), "name": "unused"}
    dist = lambda p: rg.Normal(p["loc"] * p["k"].astype(jnp.float32), 1.0)
    g = rg.score_grad(F, dist, num_samples=8, baseline="loo")(params, KEY)
    assert g["k"] is None and g["name"] is None
    v, g2 = rg.value_and_grad(F, dist, "pathwise", num_samples=8)(params, KEY)
    assert g2["k"] is None
    est = replicate(lambda k: rg.pathwise_grad(F, dist, num_samples=16)(params, k)["loc"], KEY, 200)
    assert_unbiased(est, 2.0 * 2.0 * (2.0 * LOC))  # d/dloc Σ (2 loc)² = 8 loc


def test_equinox_module_with_function_int_and_bool_fields():
    eqx = pytest.importorskip("equinox")

    class Policy(eqx.Module):
        loc: jax.Array
        act: object
        repeats: int
        flip: bool

    module = Policy(LOC, jax.nn.relu, 2, True)

    def dist(m):
        loc = m.act(m.loc) * m.repeats
        return rg.Normal(-loc if m.flip else loc, 1.0)

    for estimator in ("pathwise", "score:loo", "measure_valued"):
        g = rg.grad(F, dist, estimator, num_samples=8)(module, KEY)
        assert isinstance(g, Policy) and g.act is None and g.repeats is None and g.flip is None
        assert np.all(np.isfinite(np.asarray(g.loc)))
    est = replicate(lambda k: rg.pathwise_grad(F, dist, num_samples=16)(module, k).loc, KEY, 200)
    # E[F] = Σ (2 relu(loc))² + 2: gradient 8 relu(loc) where loc > 0
    assert_unbiased(est, 8.0 * np.maximum(np.asarray(LOC), 0.0))
    jitted = eqx.filter_jit(rg.pathwise_grad(F, dist, num_samples=8))
    np.testing.assert_allclose(jitted(module, KEY).loc, rg.pathwise_grad(F, dist, num_samples=8)(module, KEY).loc, rtol=1e-6)


def test_flax_nnx_state_with_function_int_and_rng_fields():
    nnx = pytest.importorskip("flax.nnx")

    class Policy(nnx.Module):
        def __init__(self, rngs):
            self.loc = nnx.Param(LOC)
            self.act = jax.nn.relu
            self.repeats = 2
            self.flip = True
            self.steps = nnx.Variable(jnp.int32(0))
            self.rngs = rngs

    graphdef, state = nnx.split(Policy(nnx.Rngs(0)))

    def dist(s):
        m = nnx.merge(graphdef, s)
        loc = m.act(m.loc[...]) * m.repeats
        return rg.Normal(-loc if m.flip else loc, 1.0)

    g = rg.score_grad(F, dist, num_samples=8, baseline="loo")(state, KEY)
    assert np.all(np.isfinite(np.asarray(g["loc"][...])))
    est = replicate(lambda k: rg.pathwise_grad(F, dist, num_samples=16)(state, k)["loc"][...], KEY, 200)
    assert_unbiased(est, 8.0 * np.maximum(np.asarray(LOC), 0.0))
