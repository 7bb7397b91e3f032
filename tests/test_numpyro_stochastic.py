"""numpyro's three gradient-test models (tests/_numpyro_models.py) written as ``rg.stochastic``
graphs: with the downstream credit traced from the program (the default), the gradient's
variance equals ``TraceGraph_ELBO``'s on every coordinate (|Δvariance| < 5 SE); with program
order, a cost recorded after a node it does not read is credited to it — model_2's ``d`` terms
to ``c`` — and the variance of ``probs_c`` grows.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

numpyro = pytest.importorskip("numpyro")
from _numpyro_models import MODELS, constrained, exact_loss, loss_fn, raw_params  # noqa: E402
from numpyro.infer import TraceGraph_ELBO  # noqa: E402

import repgrad as rg  # noqa: E402

_sg = jax.lax.stop_gradient
_LOG_2PI = float(np.log(2 * np.pi))
IDX = jnp.arange(2)


def _normal(x, loc):
    return -0.5 * (x - loc) ** 2 - 0.5 * _LOG_2PI


def _node(key, probs, plate=False):
    q = rg.Categorical(probs=probs)
    x = rg.sample(key, q, estimator="score", plate=plate)
    return x, _sg(q.log_prob(x))  # as TraceGraph_ELBO does, −log q enters stop-gradient


def graph_0(raw, key, data):
    p = constrained(raw)
    z, log_q = _node(key, p["probs"], plate=True)
    rg.cost(-(jnp.log(jnp.array([0.3, 0.7]))[z] + _normal(data, z.astype(jnp.float32)) - log_q))


def graph_1(raw, key, data):
    p = constrained(raw)
    ka, kb = jax.random.split(key)
    a, log_qa = _node(ka, p["probs_a"])
    b, log_qb = _node(kb, p["probs_b"][a, IDX], plate=True)
    rg.cost(-(jnp.log(jnp.array([0.3, 0.7]))[a] - log_qa))
    prior_b = jnp.log(jnp.array([[0.1, 0.9], [0.2, 0.8]]))[a]
    rg.cost(-(prior_b[b] - log_qb + _normal(data, b.astype(jnp.float32))))


def graph_2(raw, key, data):
    p = constrained(raw)
    ka, kb, kc, kd = jax.random.split(key, 4)
    a, log_qa = _node(ka, p["probs_a"])
    b, log_qb = _node(kb, jnp.broadcast_to(p["probs_b"][a], (2, 2)), plate=True)
    c, log_qc = _node(kc, p["probs_c"][b, IDX], plate=True)
    d, log_qd = _node(kd, p["probs_d"][b, IDX], plate=True)
    log = lambda t: jnp.log(jnp.array(t))
    # every cost recorded after every node: program order credits d's terms to c too
    rg.cost(-(log([0.3, 0.7])[a] - log_qa))
    rg.cost(-(log([[0.3, 0.7], [0.4, 0.6]])[a, b] - log_qb))
    rg.cost(-(log([[0.5, 0.5], [0.6, 0.4]])[b, c] - log_qc))
    rg.cost(-(log([[0.2, 0.8], [0.3, 0.7]])[b, d] - log_qd))
    rg.cost(-log([[0.5, 0.5], [0.1, 0.9]])[c, data])


GRAPHS = {"model_0": graph_0, "model_1": graph_1, "model_2": graph_2}


def _variance_and_se(samples):
    c = samples - samples.mean(0)
    var, m4 = np.mean(c**2, 0), np.mean(c**4, 0)
    return var, np.sqrt(np.maximum(m4 - var**2, 0.0) / samples.shape[0])


def _flat(tree):
    return np.concatenate([np.reshape(np.asarray(tree[k], np.float64), (np.shape(tree[k])[0], -1)) for k in sorted(tree)], 1)


@pytest.mark.parametrize("model_name", list(MODELS))
def test_stochastic_matches_tracegraph_coordinate_by_coordinate(model_name):
    model, guide, params, data = MODELS[model_name]
    raw, r = raw_params(params), 1500
    tracegraph = loss_fn(TraceGraph_ELBO(), model, guide, data)
    theirs = _flat(replicate(lambda k: jax.grad(tracegraph)(raw, k), jax.random.key(0), r))
    ours = {}
    for downstream in ("traced", "program_order") if model_name == "model_2" else ("traced",):
        objective = rg.stochastic(GRAPHS[model_name], downstream=downstream)
        ours[downstream] = replicate(lambda k, o=objective: jax.grad(o)(raw, k, jnp.asarray(data)), jax.random.key(1), r)
        assert_unbiased(ours[downstream], jax.grad(exact_loss(model, guide, data))(raw), atol=1e-6, name=f"{model_name} {downstream}")  # atol: float32 zeros
    var_t, se_t = _variance_and_se(theirs)
    var_o, se_o = _variance_and_se(_flat(ours["traced"]))
    assert np.all(np.abs(var_o - var_t) <= 5 * np.hypot(se_o, se_t) + 1e-12), (var_o, var_t)
    if model_name == "model_2":  # program order credits d's costs to c: probs_c's variance grows
        var_p, _ = _variance_and_se(np.reshape(np.asarray(ours["program_order"]["probs_c"], np.float64), (r, -1)))
        var_c, _ = _variance_and_se(np.reshape(np.asarray(ours["traced"]["probs_c"], np.float64), (r, -1)))
        assert np.max(var_p / var_c) > 2.0, (var_p, var_c)
