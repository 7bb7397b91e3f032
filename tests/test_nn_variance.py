"""Gradient variance of Bayesian MLP layers versus batch size (Flipout's claim).

With minibatches drawn i.i.d. from a dataset, per-example gradients are exchangeable, so
for every estimator Var[ĝ_N] = a + b/N exactly, with a = Cov(g_n, g_m) (n ≠ m, shared
randomness) and a + b = Var(g_1). A shared weight sample makes a large (variance stops
falling); Flipout makes it small. Variances are totals over all parameters, estimated
from R replicates; their standard errors come from the per-replicate squared deviations.
Bounds are 5 SE (chance failure ≈ 5.7e-7 per check, see tests/_stats.py).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from _stats import assert_agree

from repgrad import nn

R = 400
NS = (1, 4, 16, 64, 256, 1024)


def _problem():
    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], (512, 6))
    w_true = jax.random.normal(k[1], (6, 3))
    y = jnp.argmax(x @ w_true + 0.5 * jax.random.normal(k[2], (512, 3)), axis=1)
    p1 = nn.init_dense(k[3], 6, 16, init_scale=0.3)
    p2 = nn.init_dense(jax.random.fold_in(k[3], 1), 16, 3, init_scale=0.3)
    return x, y, (p1, p2)


@functools.cache
def _grad_fn(layer):
    """Replicated gradients for a batch of N: one compile serves every N ≤ max(NS).

    The batch always has max(NS) i.i.d. examples; ``weights`` = 1/N on the first N and 0
    on the rest, so the estimate has exactly the law of a batch of N (the unused
    examples' signs and noise never touch it)."""
    x, y, params = _problem()

    def loss(ps, key, x, y, idx, weights):
        k1, k2 = jax.random.split(key)
        h = jnp.tanh(layer(ps[0], x[idx], k1))
        logits = layer(ps[1], h, k2)
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[idx][:, None], axis=1)[:, 0]
        return jnp.sum(weights * nll)

    def one(key, weights, x, y, params):
        k_data, k_w = jax.random.split(key)
        idx = jax.random.randint(k_data, (max(NS),), 0, x.shape[0])  # i.i.d. minibatch
        g = jax.grad(loss)(params, k_w, x, y, idx, weights)
        return jnp.concatenate([jnp.ravel(a) for a in jax.tree_util.tree_leaves(g)])

    # data and params as arguments, not closed-over constants (which slow XLA's compile)
    run = jax.jit(jax.vmap(one, in_axes=(0, None, None, None, None)))
    return lambda keys, weights: run(keys, weights, x, y, params)


def _sq_dev(layer, n, key):
    """Per-replicate squared deviation from the mean gradient, summed over parameters.

    Its mean is (R−1)/R · total variance; returned rescaled so the mean is unbiased."""
    weights = jnp.where(jnp.arange(max(NS)) < n, 1.0 / n, 0.0)
    g = np.asarray(_grad_fn(layer)(jax.random.split(key, R), weights), np.float64)
    return np.sum((g - g.mean(axis=0)) ** 2, axis=1) * R / (R - 1)


def _var(z):
    return z.mean(), z.std(ddof=1) / math.sqrt(len(z))


def test_batch_size_one_flipout_equals_shared_sample():
    """At N = 1 the Flipout perturbation ΔŴ∘(s rᵀ) has the law of ΔŴ: same gradient variance."""
    z_flip = _sq_dev(nn.dense_flipout, 1, jax.random.key(1))
    z_shared = _sq_dev(nn.dense_reparameterization, 1, jax.random.key(2))
    assert_agree(z_flip[:, None], z_shared[:, None], name="Var at N=1")


def test_variance_falls_like_a_plus_b_over_n_and_beats_shared():
    res = {}
    for name, layer in (("flipout", nn.dense_flipout), ("shared", nn.dense_reparameterization)):
        res[name] = np.array([_var(_sq_dev(layer, n, jax.random.key(100 + n))) for n in NS])  # (len(NS), 2)
    for name, vs in res.items():
        v, se = vs[:, 0], vs[:, 1]
        # weighted least squares fit of v = a + b/N
        A = np.stack([np.ones(len(NS)), 1.0 / np.asarray(NS)], axis=1) / se[:, None]
        (a, b), *_ = np.linalg.lstsq(A, v / se, rcond=None)
        fit = a + b / np.asarray(NS)
        assert np.all(np.abs(v - fit) < 5 * se), (name, v, fit, se)
        assert b > 0
        assert np.all(np.diff(v) < 0), (name, v)
    v_flip, se_flip = res["flipout"][-1]
    v_shared, se_shared = res["shared"][-1]
    # "far below": at N = 1024 Flipout's variance is < 1/10 of the shared sample's, with 5-SE margins
    assert v_flip + 5 * se_flip < 0.1 * (v_shared - 5 * se_shared), (v_flip, v_shared)
    # and Flipout keeps falling ~1/N: at N = 1024 within a factor 3 of Var(1)/1024 (a is small)
    assert res["flipout"][-1, 0] < 3 * res["flipout"][0, 0] / NS[-1]
