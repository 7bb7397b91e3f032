"""``rg.numpyro.ELBO`` on numpyro's own gradient tests (``test/infer/test_gradient.py``: three
discrete models with plates, reproduced in tests/_numpyro_models.py), through ``SVI``:

- the gradient SVI applies equals the exact one (brute-force enumeration, which equals
  ``TraceEnum_ELBO``) at numpyro's tolerance (atol 0.02 with 10,000 particles), and within 5
  standard errors over independent keys, for every per-site estimator that applies;
- its standard deviation over keys: with the score estimator, ``TraceGraph_ELBO``'s on every
  coordinate (|Δvariance| < 5 SE); with leave-one-out, a lower total variance (> 5 SE);
- ``jax.hessian`` of the loss is unbiased with score sites (DiCE), and refused
  (``rg.DerivativeOrderError``) with a first-order site.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _stats import assert_unbiased, replicate

numpyro = pytest.importorskip("numpyro")
from _numpyro_models import MODELS, as_numpyro, exact_loss, loss_fn, raw_params  # noqa: E402
from numpyro.infer import SVI, TraceGraph_ELBO  # noqa: E402

import repgrad as rg  # noqa: E402

SITES = {"model_0": "z", "model_1": "ab", "model_2": "abcd"}
ESTIMATORS = {
    "default (score:loo)": None,
    "score": "score",
    "enumeration": "enumeration",
    "measure_valued": "measure_valued",
}


def _elbo(model_name, spec, num_particles):
    estimators = {} if spec is None else {n: spec for n in SITES[model_name]}
    return rg.numpyro.ELBO(num_particles, estimators=estimators)


def _flat(tree):
    return np.concatenate([np.reshape(np.asarray(tree[k]), (np.shape(tree[k])[0], -1)) for k in sorted(tree)], 1)


def _svi_gradient(elbo, model, guide, params, data, key):
    """The gradient SVI applies, in its unconstrained coordinates: one SGD(1) step is −grad."""
    with as_numpyro():
        svi = SVI(model, guide, optax.sgd(1.0), loss=elbo)
        state = svi.init(jax.random.key(0), data, params)
        before = svi.optim.get_params(state.optim_state)
        state, _ = jax.jit(svi.update)(state._replace(rng_key=key), data, params)
        after = svi.optim.get_params(state.optim_state)
    return jax.tree.map(jnp.subtract, before, after)


@pytest.mark.parametrize("model_name", list(MODELS))
def test_numpyro_gradient_test_through_svi(model_name):
    """numpyro's own check, with rg.numpyro.ELBO's defaults: atol 0.02 with 10,000 particles."""
    model, guide, params, data = MODELS[model_name]
    exact = _exact_gradient(model_name)
    g = _svi_gradient(rg.numpyro.ELBO(10_000), model, guide, params, data, jax.random.key(1))
    for name in sorted(exact):
        np.testing.assert_allclose(g[name], exact[name], atol=0.02, err_msg=f"{model_name} {name}")


# Categorical sites: measure-valued makes the same K evaluations as enumeration, so it runs on one model.
CASES = [("model_0", spec) for spec in ESTIMATORS] + [
    ("model_1", "score"), ("model_1", "enumeration"), ("model_2", "default (score:loo)"), ("model_2", "enumeration"),
]


@pytest.mark.parametrize("model_name,spec", CASES)
def test_every_site_estimator_is_unbiased(model_name, spec):
    """As repgrad checks estimators: within 5 standard errors over independent keys."""
    model, guide, params, data = MODELS[model_name]
    loss = loss_fn(_elbo(model_name, ESTIMATORS[spec], 8), model, guide, data)
    est = replicate(lambda k: jax.grad(loss)(raw_params(params), k), jax.random.key(2), 300)
    assert_unbiased(est, _exact_gradient(model_name), atol=1e-5, name=f"{model_name} {spec}")  # atol: enumeration is exact


@functools.cache
def _exact_gradient(model_name):
    model, guide, params, data = MODELS[model_name]
    return jax.jit(jax.grad(exact_loss(model, guide, data)))(raw_params(params))


def _variance_and_se(samples):
    """Per-coordinate variance over axis 0 and its standard error, sqrt((m4 − s⁴)/R)."""
    s = np.asarray(samples, np.float64)
    c = s - s.mean(0)
    var, m4 = np.mean(c**2, 0), np.mean(c**4, 0)
    return var, np.sqrt(np.maximum(m4 - var**2, 0.0) / s.shape[0])


@pytest.mark.parametrize("model_name", list(MODELS))
def test_standard_deviation_against_tracegraph(model_name):
    model, guide, params, data = MODELS[model_name]
    raw, particles, r = raw_params(params), 4, 1000
    grads = {}
    for label, elbo in [
        ("tracegraph", TraceGraph_ELBO(num_particles=particles)),
        ("score", _elbo(model_name, "score", particles)),
        ("loo", _elbo(model_name, None, particles)),
    ]:
        loss = loss_fn(elbo, model, guide, data)
        grads[label] = _flat(replicate(lambda k, loss=loss: jax.grad(loss)(raw, k), jax.random.key(3), r))
    var_t, se_t = _variance_and_se(grads["tracegraph"])
    var_s, se_s = _variance_and_se(grads["score"])
    # the score estimator is TraceGraph_ELBO's, coordinate by coordinate
    assert np.all(np.abs(var_s - var_t) <= 5 * np.hypot(se_s, se_t) + 1e-12), (var_s, var_t)
    # leave-one-out across the particles: a lower total variance
    var_l, se_l = _variance_and_se(grads["loo"])
    assert var_l.sum() + 5 * np.sqrt(np.sum(se_l**2) + np.sum(se_t**2)) < var_t.sum(), (var_l, var_t)


def test_hessian_is_unbiased_with_score_sites_and_refused_with_first_order_ones():
    model, guide, params, data = MODELS["model_1"]
    raw = raw_params(params)
    exact = jax.jit(jax.hessian(exact_loss(model, guide, data)))(raw)
    loss = loss_fn(rg.numpyro.ELBO(8), model, guide, data)  # score:loo at both sites
    est = replicate(lambda k: jax.hessian(loss)(raw, k), jax.random.key(4), 150)
    assert_unbiased(est, exact, atol=1e-6, name="DiCE Hessian of the ELBO")  # atol: float32 zeros
    for spec in ("enumeration", "measure_valued"):
        loss = loss_fn(rg.numpyro.ELBO(2, estimators={"b": spec}), model, guide, data)
        jax.eval_shape(jax.grad(loss), raw, jax.random.key(0))
        with pytest.raises(rg.DerivativeOrderError):  # at trace time
            jax.eval_shape(jax.hessian(loss), raw, jax.random.key(0))
