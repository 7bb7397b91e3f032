"""Distinct configurations of a factorized Bernoulli or Categorical: the k most probable, and k
drawn without replacement — what the unordered-set and Rao-Blackwellized estimators share.

A factorized distribution over V variables with K values each (K = 2 for a Bernoulli) is a
distribution over K^V joint configurations. Both searches go variable by variable, keeping
``width`` partial configurations:

- the k most probable configurations: beam search with width k is exact for a product
  distribution (a prefix outside the top k of its own length has k better prefixes, and each
  of them, completed like it, beats it);
- k draws without replacement: the Gumbel-top-k trick over configurations, drawn lazily by
  stochastic beam search (Kool, van Hoof & Welling, ICML 2019, arXiv:1903.06059): a partial
  configuration's perturbed log-probability is the maximum over its completions, and its
  children's are drawn conditioned on that maximum, so the k beams at the end are exactly the
  top k of independently Gumbel-perturbed joint log-probabilities.

Everything here is stop-gradient and in float32 (float64 under x64): the estimators
differentiate only the joint log-probabilities of the configurations they get (``log_prob``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _discrete

_sg = jax.lax.stop_gradient


class Table(NamedTuple):
    """A factorized distribution as V variables of K values.

    Attributes:
      log_p: (V, K) log-probabilities, stop-gradient, in the computation dtype. Bernoulli: column
        1 is the value 1.
      kind: ``"bernoulli"`` or ``"categorical"``.
      shape: one sample's shape (the logits' for Bernoulli, without the last axis for Categorical).
      dtype: one sample's dtype (the logits' float dtype for Bernoulli, int32 for Categorical).
    """

    log_p: jax.Array
    kind: str
    shape: tuple
    dtype: jnp.dtype


def compute_dtype(dtype):
    """float64 stays, anything narrower is computed in float32."""
    return jnp.dtype(jnp.float64) if jnp.dtype(dtype) == jnp.float64 else jnp.dtype(jnp.float32)


def table(d, estimator: str) -> Table:
    kind = _discrete.kind_of(d, estimator)
    logits = _sg(jnp.asarray(d.logits))
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"{estimator}: logits must be floating point, got {logits.dtype}.")
    lg = logits.astype(compute_dtype(logits.dtype))
    if kind == "bernoulli":
        flat = lg.reshape(-1)
        log_p = jnp.stack([-jax.nn.softplus(flat), -jax.nn.softplus(-flat)], axis=-1)
        return Table(log_p, kind, logits.shape, logits.dtype)
    num = logits.shape[-1]
    log_p = jax.nn.log_softmax(lg, axis=-1).reshape(-1, num)
    return Table(log_p, kind, logits.shape[:-1], jnp.dtype(jnp.int32))


def support_size(tab: Table) -> int:
    """K^V, the number of joint configurations (a Python int, exact however large)."""
    num_vars, num_values = tab.log_p.shape
    return num_values**num_vars


def check_support(tab: Table, needed: int, estimator: str, what: str):
    size = support_size(tab)
    if size < needed:
        raise ValueError(
            f"{estimator} needs {what}, but the distribution has only {size} configurations. Lower k, "
            "or compute the expectation exactly with rg.enumeration()."
        )


def to_samples(tab: Table, assign):
    """(…, V) int assignments → samples in the distribution's own format (…, *shape)."""
    lead = assign.shape[:-1]
    return assign.reshape(lead + tab.shape).astype(tab.dtype)


def log_prob(tab: Table, assign):
    """Joint log-probabilities of (…, V) assignments, from the (stop-gradient) table."""
    per_var = jnp.take_along_axis(jnp.broadcast_to(tab.log_p, assign.shape + tab.log_p.shape[-1:]), assign[..., None], axis=-1)
    return jnp.sum(per_var[..., 0], axis=-1)


def score(tab: Table, theta, assign):
    """∇θ log p(assign) for (…, V) assignments, in θ's (the logits') shape: b − σ(θ) for a
    Bernoulli, one_hot(x) − softmax(θ) for a Categorical."""
    lead = assign.shape[:-1]
    if tab.kind == "bernoulli":
        return _discrete.bernoulli_score(assign.reshape(lead + theta.shape), theta)
    probs = jax.nn.softmax(theta, axis=-1)
    hot = jax.nn.one_hot(assign.reshape(lead + theta.shape[:-1]), theta.shape[-1], dtype=theta.dtype)
    return hot - jnp.broadcast_to(probs, hot.shape)


def most_probable(log_p, width: int):
    """The ``width`` most probable configurations, most probable first: ((width, V) int32, (width,)
    joint log-probabilities; −inf marks a slot left empty by a support smaller than ``width``)."""
    num_vars, num_values = log_p.shape
    init_score = jnp.full((width,), -jnp.inf, log_p.dtype).at[0].set(0.0)

    def step(carry, v):
        score, beams = carry
        children = score[:, None] + log_p[v][None, :]
        best, idx = jax.lax.top_k(children.reshape(-1), width)
        beams = beams[idx // num_values].at[:, v].set((idx % num_values).astype(jnp.int32))
        return (best, beams), None

    (score, beams), _ = jax.lax.scan(step, (init_score, jnp.zeros((width, num_vars), jnp.int32)), jnp.arange(num_vars, dtype=jnp.int32))
    return beams, score


def _log1mexp(x):
    """log(1 − eˣ) for x ≤ 0, accurate on both sides of −log 2."""
    return jnp.where(x > -0.6931472, jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def sample_without_replacement(log_p, key, width: int):
    """``width`` configurations drawn without replacement (stochastic beam search), in the order
    of their Gumbel perturbations: ((width, V) int32, (width,) joint log-probabilities; −inf
    marks an empty slot when fewer than ``width`` configurations have positive probability)."""
    num_vars, num_values = log_p.shape
    dtype = log_p.dtype
    noise = _discrete.gumbel(_discrete.uniform(key, (num_vars, width, num_values), dtype))
    neg_inf = jnp.asarray(-jnp.inf, dtype)
    init_g = jnp.full((width,), -jnp.inf, dtype).at[0].set(0.0)  # the root's perturbation: any constant
    init_phi = jnp.full((width,), -jnp.inf, dtype).at[0].set(0.0)

    def step(carry, v):
        g, phi, beams = carry
        phi_c = phi[:, None] + log_p[v][None, :]  # (width, K) log-probabilities of the children
        live = jnp.isfinite(phi_c) & jnp.isfinite(g)[:, None]
        g_c = jnp.where(live, phi_c + noise[v], neg_inf)  # independent Gumbel(φ_child) draws
        top = jnp.max(g_c, axis=1, keepdims=True)
        # Condition the children's maximum on the parent's perturbation g: the children's
        # perturbations become −log(e^{−g} − e^{−top} + e^{−g_c}) (Kool et al. 2019, App. B).
        gap = jnp.where(live, g_c - jnp.where(live, top, 0.0), -1.0)
        t = g[:, None]
        u = jnp.where(live, t - g_c, 0.0) + _log1mexp(jnp.minimum(gap, 0.0))
        cond = jnp.where(live, t - jax.nn.softplus(u), neg_inf)
        best, idx = jax.lax.top_k(cond.reshape(-1), width)
        parent, value = idx // num_values, (idx % num_values).astype(jnp.int32)
        beams = beams[parent].at[:, v].set(value)
        phi = jnp.where(jnp.isfinite(best), phi_c.reshape(-1)[idx], neg_inf)
        return (best, phi, beams), None

    init = (init_g, init_phi, jnp.zeros((width, num_vars), jnp.int32))
    (_, phi, beams), _ = jax.lax.scan(step, init, jnp.arange(num_vars, dtype=jnp.int32))
    return beams, phi


def subset_log_f(log_p, log_rest):
    r"""log F(T) for every subset T of k items (index: bitmask), where

    .. math:: F(\emptyset) = 1, \qquad F(T) = \frac{\sum_{t \in T} p_t\, F(T \setminus t)}{\rho + \sum_{t \in T} p_t},

    ρ = ``exp(log_rest)``: the probability, drawing without replacement from T and one more item
    of mass ρ, that the extra item comes last. For k configurations S drawn without replacement
    and ρ = 1 − p(S), F(S) is the probability of the unordered set S, and F(S ∖ E) that of S ∖ E
    drawn from the distribution without E (Kool et al. 2020, whose integral form is this
    recursion's solution). Exact, positive terms only; O(2^k · k).
    """
    k = log_p.shape[0]
    member, layers = _subset_layers(k)
    dtype = log_p.dtype
    masked = jnp.where(jnp.asarray(member), log_p[None, :], -jnp.inf)
    log_mass = jnp.logaddexp(log_rest, jax.nn.logsumexp(masked, axis=1))  # log(ρ + P(T))
    log_f = jnp.full((2**k,), -jnp.inf, dtype).at[0].set(0.0)
    for masks, preds, items in layers:
        terms = log_f[preds] + log_p[items]
        log_f = log_f.at[masks].set(_logsumexp_rows(terms) - log_mass[masks])
    return log_f


def _logsumexp_rows(a):
    m = jnp.max(a, axis=1, keepdims=True)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    return jnp.log(jnp.sum(jnp.exp(a - m), axis=1)) + m[:, 0]


_LAYERS: dict = {}


def _subset_layers(k: int):
    """Static index tables of the subset recursion, by number of elements (cached per k)."""
    if k not in _LAYERS:
        masks = np.arange(2**k)
        member = ((masks[:, None] >> np.arange(k)[None, :]) & 1).astype(bool)
        count = member.sum(axis=1)
        layers = []
        for c in range(1, k + 1):
            layer = masks[count == c]
            items = np.stack([np.flatnonzero(member[m]) for m in layer])  # (n_c, c)
            preds = layer[:, None] ^ (1 << items)
            layers.append((layer, preds, items))
        _LAYERS[k] = (member, layers)
    return _LAYERS[k]


def log_rest_mass(log_p):
    """log(1 − Σ p) of a set of configurations, −inf when they hold all the mass (up to rounding)."""
    total = jax.nn.logsumexp(log_p)
    return jnp.where(total < 0.0, _log1mexp(jnp.minimum(total, 0.0)), -jnp.inf)


def num_configurations_checked(k: int, name: str, largest: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= largest:
        raise ValueError(f"{name}: k must be an int in [2, {largest}], got {k!r}; e.g. {name}(k=4).")
    return int(k)

