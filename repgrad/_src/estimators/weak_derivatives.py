r"""Weak-derivative decompositions ∂p_θ/∂θ = c_θ (p⁺ − p⁻), one per family and leaf
(Mohamed et al. 2020, §6 and Table 1), for the measure-valued estimator.

A decomposition ``decompose(d, key, shape, coupled)`` returns ``{leaf_name: part}``, the
part one of

- ``(c, x_plus, x_minus)``: ``x_plus``/``x_minus`` arrays of the samples' shape (or of that
  shape plus a trailing axis of alternatives, each with its own c), or functions of the
  samples x for couplings that reuse x;
- ``EnumeratedPart``: a categorical leaf whose p⁻ expectation is summed exactly;
- ``ScorePart``: a leaf with no clean two-density split, estimated by elementwise scores.

Families:

- Normal N(μ, σ²): ∂μ uses c = 1/(σ√2π) with p^± = μ ± σ·Rayleigh(1) (a double-sided
  Weibull); ∂σ uses c = 1/σ with p⁺ = μ + σ·(double-sided Maxwell) and p⁻ = N(μ, σ²).
  Coupled: the same Rayleigh draw for μ; for σ, x⁻ = μ + σ·M·U with M the Maxwell draw and
  U uniform (which is standard normal).
- Gamma(α, λ), rate λ: ∂p/∂λ = (α/λ) p − x p and x·Gamma(x; α, λ) = (α/λ)·Gamma(x; α+1, λ),
  so c = α/λ, p⁺ = Gamma(α, λ), p⁻ = Gamma(α+1, λ). Coupled: x⁺ = the sample's own
  coordinate and x⁻ = x⁺ + E/λ with E ~ Exp(1). Exponential(λ) is Gamma(1, λ).
- Gamma concentration α: ∂p/∂α = p·(log λx − ψ(α)) has no standard two-density split, so
  that leaf uses the elementwise score function with a leave-one-out baseline.
- Poisson(λ): ∂p(x)/∂λ = p(x−1) − p(x): c = 1, p⁺ = 1 + Poisson(λ), p⁻ = Poisson(λ).
  Coupled: x⁺ = x + 1, x⁻ = x.
- Bernoulli(logits ℓ): ∂E[f]/∂p = f(1) − f(0), so for the logits c = p(1 − p) = σ(ℓ)σ(−ℓ)
  (computed so, which stays positive at probs = 0 and 1), p⁺ = δ₁, p⁻ = δ₀.
- Categorical (normalized logits, the leaf): with p = softmax(u), ∂E[f]/∂u_k =
  p_k (f(k) − E[f]): for each category, c = p_k, p⁺ = δ_k, p⁻ = Categorical(p), whose
  expectation is the exact sum Σ_j p_j f(x₋ᵢ, j) over the K evaluations already made
  (Rao-Blackwellized; ``coupled`` has no effect). The cotangent sums to zero over k, so
  pulling it back through ``log_softmax`` returns it unchanged. A masked category (logit
  −inf, probability exactly 0) is never evaluated: its weight p_k is 0 and the most probable
  category stands in for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy import special

from .. import distributions as _d


class EnumeratedPart(NamedTuple):
    """A categorical leaf: ĝ_k = p_k (f(x₋ᵢ, k) − Σ_j p_j f(x₋ᵢ, j)) from all K replacements."""

    probs: jax.Array  # (*S, K)
    alternatives: jax.Array  # (N, *S, K) int32: every category


class ScorePart(NamedTuple):
    """A leaf estimated by the elementwise score function: ``scores(x)`` is (N, *leaf shape)."""

    scores: Callable[[jax.Array], jax.Array]


def same(x):
    """The coupling that reuses the sample itself."""
    return x


def _rayleigh(key, shape, dtype):
    # Rayleigh(1) = Weibull(scale √2, shape 2): the positive part of ∂N/∂μ.
    u = jax.random.uniform(key, shape, dtype, minval=jnp.finfo(dtype).tiny)
    return jnp.sqrt(-2.0 * jnp.log(u))


def _double_sided_maxwell(key, shape, dtype):
    # Density t² φ(t): ± the norm of a 3-d standard normal.
    k1, k2 = jax.random.split(key)
    radius = jnp.linalg.norm(jax.random.normal(k1, shape + (3,), dtype), axis=-1)
    return jax.random.rademacher(k2, shape, dtype) * radius


def _normal_parts(loc, scale, key, shape, coupled):
    dtype = loc.dtype
    c_loc, c_scale = 1.0 / (scale * math.sqrt(2.0 * math.pi)), 1.0 / scale
    loc, scale = jnp.broadcast_to(loc, shape), jnp.broadcast_to(scale, shape)
    k_r1, k_r2, k_m, k_u = jax.random.split(key, 4)
    r_plus = _rayleigh(k_r1, shape, dtype)
    r_minus = r_plus if coupled else _rayleigh(k_r2, shape, dtype)
    m = _double_sided_maxwell(k_m, shape, dtype)
    z = m * jax.random.uniform(k_u, shape, dtype) if coupled else jax.random.normal(k_u, shape, dtype)
    return (c_loc, loc + scale * r_plus, loc - scale * r_minus), (c_scale, loc + scale * m, loc + scale * z)


def _normal(d, key, shape, coupled):
    loc, scale = _normal_parts(d.loc, d.scale, key, shape, coupled)
    return {"loc": loc, "scale": scale}


def _mvn_diag(d, key, shape, coupled):
    loc, scale = _normal_parts(d.loc, d.scale_diag, key, shape, coupled)
    return {"loc": loc, "scale_diag": scale}


def _gamma_rate(conc, rate, key, shape, coupled):
    dtype = rate.dtype
    c = conc / rate
    conc, rate = jnp.broadcast_to(conc, shape), jnp.broadcast_to(rate, shape)
    k1, k2 = jax.random.split(key)
    if coupled:
        extra = jax.random.exponential(k1, shape, dtype) / rate
        return c, same, (lambda x: x.astype(extra.dtype) + extra)
    # Kept inside the support as the family's own draws are: a small concentration rounds
    # many Gamma draws to 0 in float32, where an f such as log x is −inf.
    x_plus = _d.to_positive_support(jax.random.gamma(k1, conc, shape, dtype) / rate)
    x_minus = _d.to_positive_support(jax.random.gamma(k2, conc + 1.0, shape, dtype) / rate)
    return c, x_plus, x_minus


def _gamma(d, key, shape, coupled):
    def scores(x):
        a, b = jnp.broadcast_to(d.concentration, x.shape), jnp.broadcast_to(d.rate, x.shape)
        # Draws below the smallest normal float come back as tiny (the family keeps its samples
        # inside the support; Gamma(0.01) puts 42% of its mass there in float32), where
        # log(b·x) is not the draw's. Their score is replaced by its expectation given that
        # event, log(b·tiny) − 1/α (P(G < g | G < t) = (g/t)^α as t → 0): f sees the same x for
        # all of them, so the estimate stays unbiased (Rao-Blackwell).
        tiny = float(jnp.finfo(x.dtype).tiny)
        clipped = x <= tiny
        x = x.astype(a.dtype)
        log_bx = jnp.where(clipped, jnp.log(b * tiny) - 1.0 / a, jnp.log(b * jnp.where(clipped, 1.0, x)))
        return log_bx - special.digamma(a)

    return {"concentration": ScorePart(scores), "rate": _gamma_rate(d.concentration, d.rate, key, shape, coupled)}


def _exponential(d, key, shape, coupled):
    return {"rate": _gamma_rate(jnp.ones_like(d.rate), d.rate, key, shape, coupled)}


def _poisson(d, key, shape, coupled):
    dtype = d.rate.dtype
    c = jnp.ones_like(d.rate)
    if coupled:
        return {"rate": (c, lambda x: x + 1.0, same)}
    k1, k2 = jax.random.split(key)
    rate = jnp.broadcast_to(d.rate, shape)
    draw = lambda k: jax.random.poisson(k, rate, shape).astype(dtype)
    return {"rate": (c, draw(k1) + 1.0, draw(k2))}


def _bernoulli(d, key, shape, coupled):
    dtype = d.logits.dtype
    # σ(ℓ)σ(−ℓ), not p(1 − p): at probs = 1 (ℓ = 16.6 in float32) p rounds to 1 and p(1 − p) to 0.
    c = jax.nn.sigmoid(d.logits) * jax.nn.sigmoid(-d.logits)
    return {"logits": (c, jnp.ones(shape, dtype), jnp.zeros(shape, dtype))}


def _categorical(d, key, shape, coupled):
    num = d.num_categories
    categories = jnp.broadcast_to(jnp.arange(num, dtype=jnp.int32), d.logits.shape)
    # A masked category (logit −inf) has probability exactly 0: it gets weight p_k = 0, and f is
    # evaluated at the most probable category instead, so an f that is ±inf or NaN only where
    # it is never drawn cannot turn 0 · f into NaN.
    mode = jnp.argmax(d.logits, axis=-1).astype(jnp.int32)
    alternatives = jnp.where(d.logits == -jnp.inf, mode[..., None], categories)
    return {"logits": EnumeratedPart(d.probs, jnp.broadcast_to(alternatives, shape + (num,)))}


def _in_working_precision(decompose):
    """The decomposition computed from the parameters in at least float32, so its noise is
    drawn in float32 for bfloat16/float16 parameters (bfloat16 noise biased the Normal's loc
    gradient by 27 standard errors); the replaced points are cast back to the samples' dtype."""

    def decompose_working(d, key, shape, coupled):
        return decompose(d._working(), key, shape, coupled)

    return decompose_working


DECOMPOSITIONS = {
    family: _in_working_precision(decompose)
    for family, decompose in {
        _d.Normal: _normal,
        _d.MultivariateNormalDiag: _mvn_diag,
        _d.Gamma: _gamma,
        _d.Exponential: _exponential,
        _d.Poisson: _poisson,
        _d.Bernoulli: _bernoulli,
        _d.Categorical: _categorical,
    }.items()
}
