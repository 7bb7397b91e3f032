"""What a score-function estimator would get wrong, refused at trace time (issue 16, cases 1, 10):
a second derivative in a parameter whose log-density has a kink (a Laplace's loc), and any
derivative in a parameter a peer's support moves with (Pareto's scale, TruncatedNormal's low)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

import repgrad as rg

KEY = jax.random.key(0)
numpyro_dist = pytest.importorskip("numpyro.distributions")
tfd = pytest.importorskip("tensorflow_probability.substrates.jax").distributions


def _laplace_cos(loc, scale):
    """E[cos x] for x ~ Laplace(loc, scale): cos(loc) / (1 + scale²) (its characteristic function)."""
    return jnp.cos(loc) / (1.0 + scale**2)


LAPLACES = {
    "repgrad": lambda p: rg.Laplace(p[0], p[1]),
    "numpyro": lambda p: numpyro_dist.Laplace(p[0], p[1]),
    "tfp": lambda p: tfd.Laplace(p[0], p[1]),
}
P = jnp.array([0.1, 0.8])


@pytest.mark.parametrize("family", list(LAPLACES))
@pytest.mark.parametrize("baseline", [None, "loo"])
def test_laplace_score_hessian_in_loc_refused(family, baseline):
    loss = rg.expectation(jnp.cos, LAPLACES[family], rg.score(baseline=baseline), num_samples=8)
    with pytest.raises(rg.DerivativeOrderError, match="loc.*pathwise"):
        jax.hessian(loss)(P, KEY)
    with pytest.raises(rg.DerivativeOrderError, match="pathwise"):
        jax.hessian(lambda loc: loss(jnp.stack([loc, P[1]]), KEY))(P[0])


@pytest.mark.parametrize("family", list(LAPLACES))
def test_laplace_score_first_order_and_scale_hessian_unbiased(family):
    loss = rg.expectation(jnp.cos, LAPLACES[family], rg.score(baseline="loo"), num_samples=32)
    g = replicate(lambda k: jax.grad(loss)(P, k), KEY, 200)
    assert_unbiased(g, jax.grad(lambda p: _laplace_cos(p[0], p[1]))(P))
    # Only the scale twice (loc a constant): its log-density is smooth there.
    make = LAPLACES[family]
    scale_loss = rg.expectation(jnp.cos, lambda s: make((P[0], s)), rg.score(baseline="loo"), num_samples=32)
    h = replicate(lambda k: jax.hessian(scale_loss)(P[1], k), jax.random.key(1), 200)
    assert_unbiased(h, jax.hessian(lambda s: _laplace_cos(P[0], s))(P[1]))


def test_laplace_score_node_in_stochastic_graph_refused():
    def model(p, key):
        return jnp.cos(rg.sample(key, rg.Laplace(p[0], p[1]), estimator="score"))

    objective = rg.stochastic(model, num_samples=8, baseline="loo")
    jax.grad(objective)(P, KEY)
    with pytest.raises(rg.DerivativeOrderError):
        jax.hessian(objective)(P, KEY)


def test_laplace_pathwise_hessian_is_exact_in_expectation():
    loss = rg.expectation(jnp.cos, LAPLACES["repgrad"], rg.pathwise(), num_samples=64)
    h = replicate(lambda k: jax.hessian(loss)(P, k), KEY, 200)
    assert_unbiased(h, jax.hessian(lambda p: _laplace_cos(p[0], p[1]))(P))


MOVING = {
    "numpyro-pareto-scale": (lambda t: numpyro_dist.Pareto(t, 3.0), "Pareto"),
    "numpyro-truncnormal-low": (lambda t: numpyro_dist.TruncatedNormal(0.0, 1.0, low=t), "Truncated"),
    "numpyro-truncnormal-high": (lambda t: numpyro_dist.TruncatedNormal(0.0, 1.0, low=-1.0, high=t + 1.0), "Truncated"),
    "tfp-pareto-scale": (lambda t: tfd.Pareto(3.0, t), "Pareto"),
    "tfp-truncnormal-low": (lambda t: tfd.TruncatedNormal(0.0, 1.0, t, 3.0), "TruncatedNormal"),
}


@pytest.fixture(autouse=True)
def _standard_promotion():
    # numpyro's and TFP's internals mix int32 and float32 (as elsewhere in the suite).
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.mark.parametrize("name", list(MOVING))
@pytest.mark.parametrize("estimator", ["score", "score:loo"])
def test_moving_support_refused_for_score(name, estimator):
    dist, match = MOVING[name]
    loss = rg.expectation(jnp.cos, dist, estimator, num_samples=8)
    value = loss(jnp.float32(1.0), KEY)  # the value alone is fine
    assert np.isfinite(value)
    with pytest.raises(TypeError, match=f"{match}.*support moves.*pathwise"):
        jax.grad(loss)(jnp.float32(1.0), KEY)


def test_parameters_that_do_not_move_the_support_are_fine():
    # Pareto's concentration: the support [1, ∞) stays put, so the score is right.
    f = lambda x: jnp.exp(-x)
    for dist in (lambda a: numpyro_dist.Pareto(1.0, a), lambda a: tfd.Pareto(a, 1.0)):
        loss = rg.expectation(f, dist, "score:loo", num_samples=64)
        g = replicate(lambda k, loss=loss: jax.grad(loss)(jnp.float32(2.5), k), KEY, 200)
        # E[e^{-x}] = ∫_1^∞ α x^{-α-1} e^{-x} dx; its derivative in α by quadrature (float64).
        x = np.linspace(1.0, 60.0, 400001)
        dens = lambda a: a * x ** (-a - 1.0) * np.exp(-x)
        d_exact = (np.trapezoid(dens(2.5 + 1e-4), x) - np.trapezoid(dens(2.5 - 1e-4), x)) / 2e-4
        assert_unbiased(g, d_exact)
