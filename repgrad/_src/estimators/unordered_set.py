"""The unordered set estimator: k samples without replacement, Rao-Blackwellized over their order."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import kernels
from ..core.estimator import Estimator, Out
from . import _without_replacement as wr

_sg = jax.lax.stop_gradient
LARGEST_K = 16  # the exact weights sum over the 2^k subsets of the set


def unordered_set(k: int = 4) -> Estimator:
    r"""The unordered set estimator of ∇θ E_{x∼p_θ}[f(x)], with its built-in baseline.

    **Unbiased.** Each of the ``num_samples`` = N samples is a set S of k distinct
    configurations of the whole (factorized Bernoulli or Categorical) sample, drawn without
    replacement by Gumbel-top-k (stochastic beam search over the variables, so any number of
    them works). With p(S) the probability of the unordered set and p^{D∖B}(·) the same for the
    distribution with the configurations B removed, R(S, s) = p^{D∖{s}}(S ∖ {s}) / p(S) and

    .. math::

      \hat g = \sum_{s \in S} \nabla_\theta p_\theta(s)\, R(S, s)\,\big(f(s) - B(S, s)\big),
      \qquad
      B(S, s) = \sum_{s' \in S} p_\theta(s')\, \frac{p^{D \setminus \{s, s'\}}(S \setminus \{s, s'\})}
        {p^{D \setminus \{s\}}(S \setminus \{s\})}\, f(s'),

    the baseline B(S, s) being an unbiased estimate of E[f] given that s was drawn first
    (k ≥ 2). The value is the unordered set estimate Σ_s p(s) R(S, s) f(s), unbiased too (and
    its derivatives in f's own arguments). All the probabilities of sets are computed exactly,
    in log space, by one recursion over the 2^k subsets of S (k ≤ 16); the remaining mass
    1 − p(S) is rounded in float32 when S holds nearly all of it.

    **Cost:** N·k evaluations of f (aux is stacked over them, sample by sample), no
    derivative of f. f gets Bernoulli samples as floats 0./1. and Categorical ones as int32
    indices, as from ``sample``. First derivatives only: a second derivative that moves θ
    raises ``repgrad.DerivativeOrderError``.

    Args:
      k: the number of distinct configurations per sample, 2 ≤ k ≤ 16 and at most the number of
        configurations of the distribution.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.grad(lambda k: (k == 2).astype(jnp.float32), lambda p: rg.Categorical(logits=p),
      ...             rg.unordered_set(k=2), num_samples=16)(jnp.zeros(3), jax.random.key(0))

    References:
      Kool, van Hoof & Welling, "Estimating Gradients for Discrete Random Variables by Sampling
      without Replacement", ICLR 2020 (arXiv:2002.06043); Kool, van Hoof & Welling, "Stochastic
      Beams and Where to Find Them", ICML 2019 (arXiv:1903.06059).
    """
    k = wr.num_configurations_checked(k, "unordered_set", LARGEST_K)

    def surrogate(problem, d, key, state, control):
        n = problem.num_samples
        tab = wr.table(d, "unordered_set")
        wr.check_support(tab, k, "unordered_set", f"k={k} distinct configurations")
        logits = jnp.asarray(d.logits)
        theta = _sg(logits)
        beams, phi = jax.vmap(lambda kk: wr.sample_without_replacement(tab.log_p, kk, k))(jax.random.split(key, n))
        x = wr.to_samples(tab, beams)  # (N, k, *shape): row n holds sample n's k configurations
        # Sample n's k configurations share its key for f (f_key): common random numbers.
        values, aux = problem.evaluate(x.reshape((n * k,) + x.shape[2:]), n * k, problem.take_keys(jnp.arange(n * k) // k))
        f = _sg(values).reshape(n, k).astype(tab.log_p.dtype)
        valid = jnp.isfinite(phi)
        log_p = jnp.where(valid, wr.log_prob(tab, beams), -jnp.inf)
        value_w, grad_w = jax.vmap(_weights)(log_p, valid, f)
        value = jnp.mean(jnp.sum(value_w.astype(values.dtype) * values.reshape(n, k), axis=1))
        # ĝ = mean_n Σ_s ∇p(s) R (f − B) = mean_n Σ_s [p(s) R (f − B)] ∇ log p(s)
        scores = wr.score(tab, theta.astype(f.dtype), beams)  # (N, k, *logits.shape)
        g = jnp.mean(jnp.sum(grad_w.reshape(grad_w.shape + (1,) * theta.ndim) * scores, axis=1), axis=0)
        # f's values enter ĝ stop-gradient: watching them refuses mixed θ/f-argument derivatives.
        pull = kernels.pullback([(logits, g)], "unordered_set", value.dtype, watch=(values,))
        return Out(value + pull, value, aux)

    return Estimator("unordered_set", surrogate, max_order=1, family="discrete")


def _weights(log_p, valid, f):
    """For one set: (p(s) R(S, s), p(s) R(S, s) (f(s) − B(S, s))) per configuration s.

    Configurations in empty slots (fewer positive-probability configurations than k) are left
    out of S; they get weight 0.
    """
    k = log_p.shape[0]
    bits = 2 ** jnp.arange(k, dtype=jnp.int32)
    full = jnp.sum(jnp.where(valid, bits, 0), dtype=jnp.int32)
    log_f = wr.subset_log_f(log_p, wr.log_rest_mass(log_p))
    without = full - jnp.where(valid, bits, 0)  # S ∖ {s}
    log_r = log_f[without] - log_f[full]
    value_w = jnp.where(valid, jnp.exp(log_p + log_r), 0.0)
    # B(S, s) = p(s) f(s) + Σ_{s' ≠ s} p(s') F(S ∖ {s, s'}) / F(S ∖ {s}) f(s')
    pair = without[:, None] - jnp.where(valid, bits, 0)[None, :]  # S ∖ {s, s'}
    others = valid[None, :] & valid[:, None] & ~jnp.eye(k, dtype=bool)
    coef = jnp.where(others, jnp.exp(log_p[None, :] + log_f[pair] - log_f[without][:, None]), 0.0)
    coef = coef + jnp.diag(jnp.where(valid, jnp.exp(log_p), 0.0))
    f0 = jnp.where(valid, f, 0.0)
    baseline = coef @ f0
    return value_w, jnp.where(valid, value_w * (f0 - baseline), 0.0)
