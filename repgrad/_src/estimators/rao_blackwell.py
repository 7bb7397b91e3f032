"""Rao-Blackwellized top-k: an exact sum over the k most probable configurations, plus sampled
remainders."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import kernels
from ..core.estimator import Estimator, Out
from . import _without_replacement as wr

_sg = jax.lax.stop_gradient


def rao_blackwell(k: int = 4) -> Estimator:
    r"""The Rao-Blackwellized (top-k) score-function estimator of ∇θ E_{x∼p_θ}[f(x)].

    **Unbiased.** C_k is the set of the k most probable configurations of the whole
    (factorized Bernoulli or Categorical) sample — found by beam search, exact for a product
    distribution — and x'_1, …, x'_N are drawn from p_θ restricted to the rest (the first
    configuration outside C_k of a Gumbel-top-(k+1) draw). Then

    .. math::

      \mathbb{E}[f] = \sum_{x \in C_k} p_\theta(x) f(x) + (1 - p_\theta(C_k))\,
        \mathbb{E}_{x' \sim p_\theta(\cdot \mid x' \notin C_k)}[f(x')],

    .. math::

      \hat g = \frac1N \sum_{n=1}^N \Big[\sum_{x \in C_k} \nabla_\theta p_\theta(x)\,(f(x) - b_n)
        + (1 - p_\theta(C_k))\, \nabla_\theta \log p_\theta(x'_n)\,(f(x'_n) - b_n)\Big],

    unbiased for any b_n independent of x'_n (its two terms cancel in expectation): the mean of
    the other remainders' f (leave-one-out) when N ≥ 2, else the p-weighted mean of f over C_k.
    The value is the same decomposition's estimate of E[f]. The variance left is that of the
    remainder, scaled by (1 − p(C_k))²: small when the top k hold most of the mass.

    **Cost:** k + N evaluations of f (C_k once, one remainder per sample; aux is stacked over
    the k, then the N), no derivative of f. f gets Bernoulli samples as floats 0./1. and
    Categorical ones as int32 indices. First derivatives only: a second derivative that moves
    θ raises ``repgrad.DerivativeOrderError``.

    Args:
      k: the number of configurations summed exactly, smaller than the number of configurations
        of the distribution (else use ``rg.enumeration()``).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.grad(lambda k: (k == 2).astype(jnp.float32), lambda p: rg.Categorical(logits=p),
      ...             rg.rao_blackwell(k=2), num_samples=4)(jnp.array([1.0, 0.5, -1.0, -2.0]), jax.random.key(0))

    References:
      Liu, Regier, Tripuraneni, Jordan & McAuliffe, "Rao-Blackwellized Stochastic Gradients for
      Discrete Distributions", ICML 2019 (arXiv:1810.04777).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"rao_blackwell: k must be a positive int, got {k!r}; e.g. rg.rao_blackwell(k=4).")

    def surrogate(problem, d, key, state, control):
        n = problem.num_samples
        tab = wr.table(d, "rao_blackwell")
        wr.check_support(tab, k + 1, "rao_blackwell", f"more than k={k} configurations (a remainder to sample)")
        logits = jnp.asarray(d.logits)
        dtype = tab.log_p.dtype
        theta = _sg(logits).astype(dtype)
        top, top_score = wr.most_probable(tab.log_p, k)
        top_valid = jnp.isfinite(top_score)
        beams, phi = jax.vmap(lambda kk: wr.sample_without_replacement(tab.log_p, kk, k + 1))(jax.random.split(key, n))
        in_top = jnp.any(jnp.all(beams[:, :, None, :] == top[None, None], axis=-1) & top_valid[None, None], axis=-1)
        first = jnp.argmax(~in_top & jnp.isfinite(phi), axis=1)  # the best perturbed one outside C_k
        rest = jnp.take_along_axis(beams, first[:, None, None], axis=1)[:, 0]  # (N, V)
        # C_k's k configurations are evaluated once and shared by every sample (not split over
        # devices: k need not divide among them); row n of the remainders is sample n's. With
        # f_key they share one key of their own, independent of the samples' (common random numbers).
        top_keys = None if problem.fixed_key is None else jnp.stack([problem.fixed_key] * k)
        top_values, top_aux = problem._replace(sample_sharding=None).evaluate(wr.to_samples(tab, top), k, top_keys)
        rest_values, rest_aux = problem.evaluate(wr.to_samples(tab, rest), n)
        values = jnp.concatenate([top_values, rest_values])
        aux = None if top_aux is None else jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), top_aux, rest_aux)
        f = _sg(values).astype(dtype)
        f_top, f_rest = jnp.where(top_valid, f[:k], 0.0), f[k:]

        log_p_top = jnp.where(top_valid, wr.log_prob(tab, top), -jnp.inf)
        p_top = jnp.exp(log_p_top)
        rest_mass = jnp.exp(wr.log_rest_mass(log_p_top))
        if n >= 2:
            b = (jnp.sum(f_rest) - f_rest) / (n - 1)
        else:
            # softmax, not p / Σp: the top configurations of many variables underflow in float32
            weights = jax.nn.softmax(jnp.where(top_valid, log_p_top, -jnp.inf))
            b = jnp.broadcast_to(jnp.sum(weights * f_top), (1,))
        top_w = jnp.where(top_valid, p_top, 0.0).astype(values.dtype)
        value = jnp.sum(top_w * values[:k]) + rest_mass.astype(values.dtype) * jnp.mean(values[k:])
        # ĝ = Σ_{C_k} p(x) (f(x) − b̄) ∇log p(x) + (1 − p(C_k)) mean_n (f(x'_n) − b_n) ∇log p(x'_n)
        expand = lambda w: w.reshape(w.shape + (1,) * theta.ndim)
        exact = jnp.sum(expand(p_top * (f_top - jnp.mean(b))) * wr.score(tab, theta, top), axis=0)
        sampled = rest_mass * jnp.mean(expand(f_rest - b) * wr.score(tab, theta, rest), axis=0)
        g = exact + sampled
        # f's values enter ĝ stop-gradient: watching them refuses mixed θ/f-argument derivatives.
        pull = kernels.pullback([(logits, g)], "rao_blackwell", value.dtype, watch=(values,))
        return Out(value + pull, value, aux)

    return Estimator("rao_blackwell", surrogate, max_order=1, family="discrete")
