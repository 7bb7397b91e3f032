"""Exact expectations for the estimator matrix, in float64, differentiable in the parameters.

Every family's f is separable over the coordinates of one sample plus one cross term, so the
exact E[f] needs, per coordinate j, E[x_j], E[x_j²], E[cos(K x_j)], P(x_j > c_j), and
E[x_0 x_1]. ``moments_*`` return them from closed forms, or from a quadrature whose nodes sit in
the *standard* variable (x = loc + scale·z) or whose weights are the density itself on a fixed
grid, so that derivatives of every order with respect to the parameters are exact (a fixed
x-grid quadrature of a location family would miss the Laplace kink the way DiCE does).
Call them under ``jax.enable_x64(True)``; ``jax.grad``/``jax.hessian`` of them are the exact
derivatives the estimators are checked against.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special

K = 1.3  # the frequency of the cosine term of the smooth f


@functools.lru_cache
def _legendre(n):
    """Gauss–Legendre nodes and weights on (0, 1)."""
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


@functools.lru_cache
def _hermite(n):
    """Nodes and weights for E[g(z)], z ~ N(0, 1) (probabilists' Gauss–Hermite)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / math.sqrt(2.0 * math.pi)


@functools.lru_cache
def _laguerre(n):
    """Nodes and weights for ∫_0^∞ g(t) e^{−t} dt."""
    return np.polynomial.laguerre.laggauss(n)


def _moments(mean, sq, cos, tail, cross, exp=None):
    return {"mean": mean, "sq": sq, "cos": cos, "tail": tail, "cross": cross, "exp": exp}


def _indep_cross(mean):
    return mean[0] * mean[1] if mean.shape[0] >= 2 else jnp.zeros((), mean.dtype)


# ----------------------------------------------------------------- location-scale families


def normal(loc, scale, c):
    s2 = scale * scale
    cos = jnp.cos(K * loc) * jnp.exp(-0.5 * K * K * s2)
    exp = jnp.exp(loc + 0.5 * s2)
    return _moments(loc, loc * loc + s2, cos, special.ndtr((loc - c) / scale), _indep_cross(loc), exp)


def mvn_tri(loc, tril, c):
    cov = tril @ tril.T
    var = jnp.diagonal(cov)
    m = normal(loc, jnp.sqrt(var), c)
    m["cross"] = cov[0, 1] + loc[0] * loc[1]
    return m


def lognormal(loc, scale, c):
    z, wz = _hermite(120)
    x = jnp.exp(loc[:, None] + scale[:, None] * z[None, :])
    cos = jnp.sum(wz[None, :] * jnp.cos(K * x), axis=1)
    mean = jnp.exp(loc + 0.5 * scale * scale)
    tail = special.ndtr((loc - jnp.log(c)) / scale)
    return _moments(mean, jnp.exp(2.0 * loc + 2.0 * scale * scale), cos, tail, _indep_cross(mean))


def laplace(loc, scale, c):
    cos = jnp.cos(K * loc) / (1.0 + K * K * scale * scale)
    above = 0.5 * jnp.exp(-(c - loc) / scale)  # c ≥ loc
    below = 1.0 - 0.5 * jnp.exp((c - loc) / scale)  # c < loc
    tail = jnp.where(c >= loc, above, below)
    return _moments(loc, loc * loc + 2.0 * scale * scale, cos, tail, _indep_cross(loc))


def logistic(loc, scale, c):
    a = math.pi * K * scale
    cos = jnp.cos(K * loc) * a / jnp.sinh(a)
    sq = loc * loc + (math.pi * scale) ** 2 / 3.0
    return _moments(loc, sq, cos, jax.nn.sigmoid((loc - c) / scale), _indep_cross(loc))


def uniform(low, high, c):
    width = high - low
    cos = (jnp.sin(K * high) - jnp.sin(K * low)) / (K * width)
    sq = (low * low + low * high + high * high) / 3.0
    mean = 0.5 * (low + high)
    return _moments(mean, sq, cos, (high - c) / width, _indep_cross(mean))


def exponential(rate, c):
    mean = 1.0 / rate
    cos = rate * rate / (rate * rate + K * K)
    return _moments(mean, 2.0 * mean * mean, cos, jnp.exp(-rate * c), _indep_cross(mean))


# ------------------------------------------------------------------------ gamma families


def gamma(conc, rate, c):
    mean = conc / rate
    sq = conc * (conc + 1.0) / (rate * rate)
    r = K / rate
    cos = (1.0 + r * r) ** (-0.5 * conc) * jnp.cos(conc * jnp.arctan(r))  # Re (1 − iK/β)^−α
    # P(x > c) = ∫_0^∞ p(c + t/β) dt/β: Gauss–Laguerre in t, nodes independent of (α, β).
    t, wt = _laguerre(80)
    log_kernel = (conc[:, None] - 1.0) * jnp.log(rate[:, None] * c[:, None] + t[None, :])
    tail = jnp.exp(-rate * c - special.gammaln(conc)) * jnp.sum(wt[None, :] * jnp.exp(log_kernel), axis=1)
    return _moments(mean, sq, cos, tail, _indep_cross(mean))


def _beta_quad(a, b, g, lo):
    """E[g(x) 1(x > lo)] for Beta(a, b) by Gauss–Legendre on (lo, 1), density as weights."""
    u, wu = _legendre(200)
    x = lo[:, None] + (1.0 - lo[:, None]) * u[None, :]
    log_p = (a[:, None] - 1.0) * jnp.log(x) + (b[:, None] - 1.0) * jnp.log1p(-x) - _log_beta(a, b)[:, None]
    return (1.0 - lo) * jnp.sum(wu[None, :] * jnp.exp(log_p) * g(x), axis=1)


def _log_beta(a, b):
    return special.gammaln(a) + special.gammaln(b) - special.gammaln(a + b)


def beta(a, b, c):
    mean = a / (a + b)
    sq = a * (a + 1.0) / ((a + b) * (a + b + 1.0))
    cos = _beta_quad(a, b, lambda x: jnp.cos(K * x), jnp.zeros_like(a))
    tail = _beta_quad(a, b, jnp.ones_like, c)
    return _moments(mean, sq, cos, tail, _indep_cross(mean))


def dirichlet(conc, c):
    total = jnp.sum(conc)
    m = beta(conc, total - conc, c)  # the marginals
    m["cross"] = conc[0] * conc[1] / (total * (total + 1.0))
    return m


# ---------------------------------------------------------------------- discrete families


def _enumerated(probs, points, c):
    """Moments of independent coordinates with probabilities ``probs`` (D, M) on ``points`` (M,)."""
    e = lambda g: jnp.sum(probs * g(points)[None, :], axis=1)
    mean = e(lambda x: x)
    tail = jnp.sum(probs * (points[None, :] > c[:, None]).astype(probs.dtype), axis=1)
    return _moments(mean, e(lambda x: x * x), e(lambda x: jnp.cos(K * x)), tail, _indep_cross(mean))


def bernoulli(p, c):
    return _enumerated(jnp.stack([1.0 - p, p], axis=1), jnp.array([0.0, 1.0]), c)


def categorical(probs, c):
    return _enumerated(probs, jnp.arange(probs.shape[-1], dtype=probs.dtype), c)


def poisson(rate, c, terms=80):
    k = jnp.arange(terms, dtype=rate.dtype)
    log_p = k[None, :] * jnp.log(rate[:, None]) - rate[:, None] - special.gammaln(k + 1.0)[None, :]
    m = _enumerated(jnp.exp(log_p), k, c)
    # closed forms where they exist (the truncated sums agree to 1e-16 at these rates)
    m["cos"] = jnp.exp(rate * (math.cos(K) - 1.0)) * jnp.cos(rate * math.sin(K))
    m["sq"] = rate + rate * rate
    return m


# ------------------------------------------------------------ relaxed and K-sample objectives


def relaxed_bernoulli(logits, temperature, c):
    """Moments of y = σ((θ + l)/τ), l ~ Logistic(0, 1): Gauss–Legendre in u = σ(l)."""
    u, wu = _legendre(400)
    noise = np.log(u) - np.log1p(-u)
    y = jax.nn.sigmoid((logits[:, None] + noise[None, :]) / temperature)
    e = lambda g: jnp.sum(wu[None, :] * g(y), axis=1)
    mean = e(lambda v: v)
    return _moments(mean, e(lambda v: v * v), e(lambda v: jnp.cos(K * v)), e(lambda v: (v > c[:, None]).astype(v.dtype)), _indep_cross(mean))


def k_sample_bound(points, probs, log_weight, k):
    """E[log (1/k) Σ_i exp(log_weight(x_i))] over x_1..k i.i.d., by enumeration.

    ``points`` (M, ...) and ``probs`` (M,) list the support (zero-probability points left out).
    """
    lw = jax.vmap(log_weight)(points)  # (M,)
    idx = np.array(list(itertools.product(range(points.shape[0]), repeat=k)))  # (M^k, k)
    p = jnp.prod(probs[idx], axis=1)
    bound = special.logsumexp(lw[idx], axis=1) - math.log(k)
    return jnp.sum(p * bound)
