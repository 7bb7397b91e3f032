r"""Weak-derivative decompositions beyond the Normal, for ``measure_valued_grad``.

Each entry writes ∂p_θ/∂θ = c_θ (p⁺ − p⁻) for one coordinate (Mohamed et al. 2020,
Table 1), with densities w.r.t. the same base measure:

- Gamma(α, λ), rate λ: p(x) = λ^α x^{α−1} e^{−λx}/Γ(α), so ∂p/∂λ = (α/λ) p − x p and
  x·Gamma(x; α, λ) = (α/λ)·Gamma(x; α+1, λ). Hence c = α/λ, p⁺ = Gamma(α, λ),
  p⁻ = Gamma(α+1, λ). Coupled: x⁺ = the sample's own coordinate and x⁻ = x⁺ + E/λ with
  E ~ Exp(1) (a Gamma(α+1) is a Gamma(α) plus an independent Exp).
- Exponential(λ) is Gamma(1, λ): c = 1/λ, p⁺ = Exp(λ), p⁻ = Gamma(2, λ).
- Gamma concentration α: ∂p/∂α = p·(log λx − ψ(α)) has no standard two-density
  split, so that leaf uses the elementwise score-function estimator with a
  leave-one-out baseline instead (unbiased; documented as such).
- Poisson(λ): ∂p(x)/∂λ = p(x−1) − p(x), so c = 1, p⁺ = 1 + Poisson(λ), p⁻ = Poisson(λ).
  Coupled: x⁺ = x + 1, x⁻ = x (same draw).
- Bernoulli(logits ℓ): ∂/∂p E[f] = f(1) − f(0), i.e. c = 1, p⁺ = δ₁, p⁻ = δ₀; by the
  chain rule dp/dℓ = p(1−p), so for the logits leaf c = p(1 − p). Deterministic sides.
- Categorical (normalized logits ℓ = log p, the leaf): with p = softmax(u),
  ∂E[f]/∂u_k = p_k (f(k) − E[f]), i.e. for each category k, c = p_k, p⁺ = δ_k,
  p⁻ = Categorical(p). Per coordinate i, given the other coordinates x₋ᵢ, f(x₋ᵢ, k) is
  evaluated for every k, and E_{p⁻} is then the exact sum Σ_j p_j f(x₋ᵢ, j), so
  ĝ_{ik} = p_ik (f(x₋ᵢ, k) − Σ_j p_ij f(x₋ᵢ, j)) (Rao-Blackwellized; ``coupled`` has no
  effect). The cotangent sums to zero over k, so pulling it back through
  ``log_softmax`` returns it unchanged: it is the gradient w.r.t. the user's logits.

A decomposition returns ``{leaf_name: part}``, ``part`` either ``(c, x_plus, x_minus)``
(``x_plus``/``x_minus`` arrays of the samples' shape, or of that shape plus a trailing
axis of alternatives each with its own c, or functions of the samples x for couplings that
reuse x), or a ``ScorePart``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy import special

from . import _distributions as _d


class EnumeratedPart(NamedTuple):
    """A categorical leaf: ĝ_k = p_k (f(x₋ᵢ, k) − Σ_j p_j f(x₋ᵢ, j)) from all K replacements.

    p⁻ = Categorical(p) has its expectation computed exactly from the K evaluations
    already made for the p⁺ = δ_k sides, so there is no p⁻ draw and ``coupled`` has no
    effect (a sampled p⁻ would cancel anyway in the pull-back through log_softmax).
    """

    probs: jax.Array  # (*S, K)
    alternatives: jax.Array  # (N, *S, K) int32: every category


class ScorePart(NamedTuple):
    """A leaf estimated by the elementwise score function: ``scores(x)`` is (N, *leaf shape)."""

    scores: Callable[[jax.Array], jax.Array]


def _same(x):
    return x


def _gamma_rate(conc, rate, key, shape, coupled):
    dtype = rate.dtype
    c = conc / rate
    conc, rate = jnp.broadcast_to(conc, shape), jnp.broadcast_to(rate, shape)
    k1, k2 = jax.random.split(key)
    if coupled:
        extra = jax.random.exponential(k1, shape, dtype) / rate
        return c, _same, (lambda x: x + extra)
    x_plus = jax.random.gamma(k1, conc, shape, dtype) / rate
    x_minus = jax.random.gamma(k2, conc + 1.0, shape, dtype) / rate
    return c, x_plus, x_minus


def _gamma(d, key, shape, coupled):
    def scores(x):
        a, b = jnp.broadcast_to(d.concentration, x.shape), jnp.broadcast_to(d.rate, x.shape)
        return jnp.log(b * x) - special.digamma(a)

    return {
        "concentration": ScorePart(scores),
        "rate": _gamma_rate(d.concentration, d.rate, key, shape, coupled),
    }


def _exponential(d, key, shape, coupled):
    return {"rate": _gamma_rate(jnp.ones_like(d.rate), d.rate, key, shape, coupled)}


def _poisson(d, key, shape, coupled):
    dtype = d.rate.dtype
    c = jnp.ones_like(d.rate)
    if coupled:
        return {"rate": (c, lambda x: x + 1.0, _same)}
    k1, k2 = jax.random.split(key)
    rate = jnp.broadcast_to(d.rate, shape)
    draw = lambda k: jax.random.poisson(k, rate, shape).astype(dtype)
    return {"rate": (c, draw(k1) + 1.0, draw(k2))}


def _bernoulli(d, key, shape, coupled):
    p = d.probs
    dtype = d.logits.dtype
    return {"logits": (p * (1.0 - p), jnp.ones(shape, dtype), jnp.zeros(shape, dtype))}


def _categorical(d, key, shape, coupled):
    num = d.num_categories
    return {
        "logits": EnumeratedPart(d.probs, jnp.broadcast_to(jnp.arange(num, dtype=jnp.int32), shape + (num,)))
    }


FAMILY_DECOMPOSITIONS = {
    _d.Gamma: _gamma,
    _d.Exponential: _exponential,
    _d.Poisson: _poisson,
    _d.Bernoulli: _bernoulli,
    _d.Categorical: _categorical,
}
