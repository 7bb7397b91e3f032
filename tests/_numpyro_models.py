"""numpyro's own gradient-test models and guides, and an exact ELBO by brute-force enumeration.

MODELS reproduces, verbatim, the three models and guides (with their parameters and data) of
numpyro's ``test/infer/test_gradient.py`` (Copyright Contributors to the Pyro project,
Apache-2.0), the subject of tests/test_numpyro_gradient.py; the test logic is repgrad's own.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro as pyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.infer.util import log_density
from numpyro.ops.indexing import Vindex

# ----------------------------------------------------------------- numpyro's test_gradient.py


def model_0(data, params):
    with pyro.plate("data", len(data)):
        z = pyro.sample("z", dist.Categorical(jnp.array([0.3, 0.7])))
        pyro.sample("x", dist.Normal(z, 1), obs=data)


def guide_0(data, params):
    probs = pyro.param("probs", params["probs"], constraint=constraints.simplex)
    with pyro.plate("data", len(data)):
        pyro.sample("z", dist.Categorical(probs))


params_0 = {"probs": np.array([[0.4, 0.6], [0.5, 0.5]])}


def model_1(data, params):
    a = pyro.sample("a", dist.Categorical(jnp.array([0.3, 0.7])))
    with pyro.plate("data", len(data)):
        probs_b = jnp.array([[0.1, 0.9], [0.2, 0.8]])
        b = pyro.sample("b", dist.Categorical(probs_b[a]))
        pyro.sample("c", dist.Normal(b, 1), obs=data)


def guide_1(data, params):
    probs_a = pyro.param("probs_a", params["probs_a"], constraint=constraints.simplex)
    probs_b = pyro.param("probs_b", params["probs_b"], constraint=constraints.simplex)
    a = pyro.sample("a", dist.Categorical(probs_a))
    with pyro.plate("data", len(data)) as idx:
        pyro.sample("b", dist.Categorical(Vindex(probs_b)[a, idx]))


params_1 = {
    "probs_a": np.array([0.5, 0.5]),
    "probs_b": np.array([[[0.5, 0.5], [0.6, 0.4]], [[0.4, 0.6], [0.35, 0.65]]]),
}


def model_2(data, params):
    prob_b = jnp.array([[0.3, 0.7], [0.4, 0.6]])
    prob_c = jnp.array([[0.5, 0.5], [0.6, 0.4]])
    prob_d = jnp.array([[0.2, 0.8], [0.3, 0.7]])
    prob_e = jnp.array([[0.5, 0.5], [0.1, 0.9]])
    a = pyro.sample("a", dist.Categorical(jnp.array([0.3, 0.7])))
    with pyro.plate("data", len(data)):
        b = pyro.sample("b", dist.Categorical(prob_b[a]))
        c = pyro.sample("c", dist.Categorical(prob_c[b]))
        pyro.sample("d", dist.Categorical(prob_d[b]))
        pyro.sample("e", dist.Categorical(prob_e[c]), obs=data)


def guide_2(data, params):
    probs_a = pyro.param("probs_a", params["probs_a"], constraint=constraints.simplex)
    probs_b = pyro.param("probs_b", params["probs_b"], constraint=constraints.simplex)
    probs_c = pyro.param("probs_c", params["probs_c"], constraint=constraints.simplex)
    probs_d = pyro.param("probs_d", params["probs_d"], constraint=constraints.simplex)
    a = pyro.sample("a", dist.Categorical(probs_a))
    with pyro.plate("data", len(data)) as idx:
        b = pyro.sample("b", dist.Categorical(probs_b[a]))
        pyro.sample("c", dist.Categorical(Vindex(probs_c)[b, idx]))
        pyro.sample("d", dist.Categorical(Vindex(probs_d)[b, idx]))


params_2 = {
    "probs_a": np.array([0.5, 0.5]),
    "probs_b": np.array([[0.4, 0.6], [0.3, 0.7]]),
    "probs_c": np.array([[[0.3, 0.7], [0.8, 0.2]], [[0.2, 0.8], [0.5, 0.5]]]),
    "probs_d": np.array([[[0.2, 0.8], [0.9, 0.1]], [[0.1, 0.9], [0.4, 0.6]]]),
}

MODELS = {
    "model_0": (model_0, guide_0, params_0, np.array([-0.5, 2.0])),
    "model_1": (model_1, guide_1, params_1, np.array([-0.5, 2.0])),
    "model_2": (model_2, guide_2, params_2, np.array([0, 1])),
}

# ----------------------------------------------------------------- repgrad's helpers

SIMPLEX = dist.biject_to(constraints.simplex)


def as_numpyro():
    """numpyro's own promotion rules (the suite's are strict)."""
    return _Both()


class _Both:
    def __enter__(self):
        self._d, self._r = jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow")
        self._d.__enter__()
        self._r.__enter__()

    def __exit__(self, *exc):
        self._r.__exit__(*exc)
        self._d.__exit__(*exc)


def raw_params(params):
    """The unconstrained coordinates numpyro's test (and SVI) differentiate in."""
    with as_numpyro():
        return jax.tree.map(lambda p: SIMPLEX.inv(jnp.asarray(p, jnp.float32)), params)


def constrained(raw):
    with as_numpyro():
        return jax.tree.map(SIMPLEX, raw)


def loss_fn(elbo, model, guide, data):
    """loss(raw, key): the ELBO object's loss in numpyro's test coordinates."""

    def loss(raw, key):
        with as_numpyro():
            return elbo.loss(key, {}, model, guide, data, constrained(raw))

    return loss


def exact_loss(model, guide, data):
    """−ELBO(raw) exactly: the sum over every configuration of the guide's (categorical) latents
    of q · (log q − log p), each log-density by numpyro's ``log_density``."""

    def shapes(raw):
        with as_numpyro():
            tr = handlers.trace(handlers.seed(guide, 0)).get_trace(data, constrained(raw))
        return {n: (s["value"].shape, s["fn"].support.upper_bound + 1) for n, s in tr.items() if s["type"] == "sample"}

    def loss(raw):
        sites = shapes(raw)
        names = sorted(sites)
        cells = [(n, i) for n in names for i in np.ndindex(sites[n][0])]
        grids = itertools.product(*[range(int(sites[n][1])) for n, _ in cells])
        configs = np.array(list(grids), np.int32)  # (M, cells)
        params = constrained(raw)

        def term(row):
            values = {n: jnp.zeros(sites[n][0], jnp.int32) for n in names}
            for j, (n, i) in enumerate(cells):
                values[n] = values[n].at[i].set(row[j])
            with as_numpyro():
                log_q, _ = log_density(handlers.substitute(guide, data=values), (data, params), {}, {})
                log_p, _ = log_density(handlers.substitute(model, data=values), (data, params), {}, {})
            return jnp.exp(log_q) * (log_q - log_p)

        return jnp.sum(jax.vmap(term)(jnp.asarray(configs)))

    return loss
