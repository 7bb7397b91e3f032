"""``rg.numpyro.ELBO``'s per-site estimators beyond the score function, against closed forms:
DisARM per plate element and on a whole (unplated) site, measure-valued on a continuous site,
pathwise and score sites nested; the errors that name the fix.

Statistical checks are |mean − exact| < 5 SE over independent keys (tests/_stats.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_agree, assert_unbiased, replicate

numpyro = pytest.importorskip("numpyro")
import numpyro.distributions as dist  # noqa: E402
from _numpyro_models import as_numpyro  # noqa: E402
from numpyro.infer import TraceGraph_ELBO  # noqa: E402

import repgrad as rg  # noqa: E402

X = jnp.array([0.9, 1.1, -1.0, 1.2, -0.3, 0.4])
N = X.shape[0]
PHI = jnp.linspace(-1.0, 1.0, N)
_LOG_2PI = float(np.log(2 * np.pi))


def mixture(data, plated=True):
    if plated:
        with numpyro.plate("data", N):
            z = numpyro.sample("z", dist.Bernoulli(0.5))
    else:
        z = numpyro.sample("z", dist.Bernoulli(0.5 * jnp.ones(N)).to_event(1))
    with numpyro.plate("data", N):
        numpyro.sample("x", dist.Normal(2.0 * z - 1.0, 1.0), obs=data)


def mixture_guide(data, plated=True):
    logits = numpyro.param("logits", jnp.zeros(N))
    if plated:
        with numpyro.plate("data", N):
            numpyro.sample("z", dist.Bernoulli(logits=logits))
    else:
        numpyro.sample("z", dist.Bernoulli(logits=logits).to_event(1))


def _mixture_exact(phi):
    """−ELBO: per element Σ_z q(z) (log ½ + log N(x; 2z − 1, 1) − log q(z))."""
    q1 = jax.nn.sigmoid(phi)
    term = lambda z, qz: qz * (jnp.log(0.5) - 0.5 * (X - (2.0 * z - 1.0)) ** 2 - 0.5 * _LOG_2PI - jnp.log(qz))
    return -jnp.sum(term(1.0, q1) + term(0.0, 1.0 - q1))


def _grads(elbo, model, guide, params, r, key, *args):
    def loss(p, k):
        with as_numpyro():
            return elbo.loss(k, p, model, guide, X, *args)

    return replicate(lambda k: jax.grad(loss)(params, k), key, r)


@pytest.mark.parametrize("plated", [True, False])
def test_disarm_is_unbiased_and_beats_the_score_function(plated):
    exact = jax.grad(_mixture_exact)(PHI)
    g = {}
    for label, spec in [("disarm", rg.disarm()), ("score", "score")]:
        elbo = rg.numpyro.ELBO(4, estimators={"z": spec})
        g[label] = _grads(elbo, mixture, mixture_guide, {"logits": PHI}, 1000, jax.random.key(0), plated)["logits"]
        assert_unbiased(g[label], exact, name=f"{label} (plated={plated})")
    # per plate element (plated): each element's own pair; whole site: the joint DisARM estimator
    assert np.sum(np.var(g["disarm"], 0)) < 0.5 * np.sum(np.var(g["score"], 0))


def _gaussian(data):
    with numpyro.plate("data", N):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(z, 1.0), obs=data)


def _gaussian_guide(data):
    loc = numpyro.param("loc", jnp.zeros(N))
    scale = numpyro.param("scale", jnp.ones(N), constraint=dist.constraints.positive)
    with numpyro.plate("data", N):
        numpyro.sample("z", dist.Normal(loc, scale))


def _gaussian_exact(p):
    """−ELBO in closed form: E_q[log N(z; 0, 1) + log N(x; z, 1)] + entropy of N(μ, σ²)."""
    mu, s = p["loc"], p["scale"]
    expected = -_LOG_2PI - 0.5 * (mu**2 + s**2) - 0.5 * ((X - mu) ** 2 + s**2)
    return -jnp.sum(expected + 0.5 * jnp.log(2 * np.pi * np.e * s**2))


@pytest.mark.parametrize("spec", [None, "measure_valued", "score:loo"])
def test_continuous_site_pathwise_measure_valued_and_score(spec):
    params = {"loc": jnp.linspace(-0.5, 0.5, N), "scale": jnp.full(N, 0.8)}
    elbo = rg.numpyro.ELBO(4, estimators={} if spec is None else {"z": spec})
    g = _grads(elbo, _gaussian, _gaussian_guide, params, 400, jax.random.key(1))
    assert_unbiased(g, jax.grad(_gaussian_exact)(params), name=f"Gaussian site ({spec or 'pathwise'})")


def _nested(data):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    with numpyro.plate("data", N):
        b = numpyro.sample("b", dist.Bernoulli(logits=z * jnp.ones(N)))
        numpyro.sample("x", dist.Normal(2.0 * b - 1.0 + 0.5 * z, 1.0), obs=data)


def _nested_guide(data):
    loc = numpyro.param("loc", jnp.float32(0.2))
    w = numpyro.param("w", jnp.zeros(N))
    z = numpyro.sample("z", dist.Normal(loc, 1.0))  # pathwise
    with numpyro.plate("data", N):
        numpyro.sample("b", dist.Bernoulli(logits=w + z))  # score: its distribution depends on z


def test_nested_pathwise_and_score_sites_agree_with_tracegraph():
    params = {"loc": jnp.float32(0.2), "w": jnp.linspace(-0.5, 0.5, N)}
    ours = _grads(rg.numpyro.ELBO(4), _nested, _nested_guide, params, 600, jax.random.key(2))
    theirs = _grads(TraceGraph_ELBO(4), _nested, _nested_guide, params, 600, jax.random.key(3))
    assert_agree(ours, theirs, name="nested pathwise → score sites")


def test_hessian_in_model_only_parameters_is_exact_next_to_a_first_order_site():
    """A first-order site refuses second derivatives in its own parameters only."""

    def model(data, shift):
        with numpyro.plate("data", N):
            z = numpyro.sample("z", dist.Bernoulli(0.5))
            numpyro.sample("x", dist.Normal(2.0 * z - 1.0 + shift, 1.0), obs=data)

    elbo = rg.numpyro.ELBO(2, estimators={"z": "disarm"})
    guide = lambda data, shift: mixture_guide(data)
    loss = lambda phi, shift, k: elbo.loss(k, {"logits": phi}, model, guide, X, shift)
    with as_numpyro():
        h = jax.jit(jax.hessian(loss, argnums=1))(PHI, jnp.float32(0.3), jax.random.key(0))
        np.testing.assert_allclose(h, float(N), rtol=1e-5)  # −ELBO is ½ Σ (x − μ − shift)² + const in shift
        with pytest.raises(rg.DerivativeOrderError):
            jax.eval_shape(jax.hessian(loss), PHI, jnp.float32(0.3), jax.random.key(0))  # refused at trace time


def test_errors_name_the_fix():
    call = lambda elbo: elbo.loss(jax.random.key(0), {"logits": PHI}, mixture, mixture_guide, X)
    with as_numpyro():
        with pytest.raises(TypeError, match="score:loo"):
            call(rg.numpyro.ELBO(2, estimators={"z": "pathwise"}))
        with pytest.raises(ValueError, match="num_particles >= 2"):
            call(rg.numpyro.ELBO(1, estimators={"z": "score:loo"}))
        with pytest.raises(ValueError, match="latent sites are \\['z'\\]"):
            call(rg.numpyro.ELBO(2, estimators={"y": "score"}))
        with pytest.raises(TypeError, match="relaxation"):
            call(rg.numpyro.ELBO(2, estimators={"z": rg.gumbel_softmax(temperature=0.5)}))
    with pytest.raises(ValueError, match="num_particles"):
        rg.numpyro.ELBO(0)
    with pytest.raises(TypeError, match="map guide site names"):
        rg.numpyro.ELBO(2, estimators=["score"])
