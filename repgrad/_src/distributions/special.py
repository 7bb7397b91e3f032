"""Special functions for entropies and KL divergences, without cancellation.

The textbook entropies and KL divergences of the Gamma family subtract terms of size α log α:
the entropy of Gamma(α, 1), α + log Γ(α) + (1 − α) ψ(α), is ½ log(2πeα) + O(1/α), so at
α = 10⁶ float32 (ε = 1.2·10⁻⁷) loses about 1 nat of 7.8 to cancellation, and the KL between
two Gamma or Beta distributions with concentrations near 10⁴ comes out with the wrong sign.
Here each is written as a sum of terms that are small, or of one sign, using

- Stirling's error δ(x) = log Γ(x) − (x − ½) log x + x − ½ log 2π (``stirlerr``; the same
  function as ``saddle_point``'s stirlerr, for real x > 0);
- the digamma remainder ε(x) = ψ(x) − log x + 1/(2x) (``digamma_remainder``);
- Loader's deviance bd0(x, y) = x log(x/y) + y − x ≥ 0 (``bd0``, from ``saddle_point``).

Above a threshold (3 in float32 and narrower, 12 in float64) δ and ε are their asymptotic
series in the Bernoulli numbers B₂ₙ (seven terms: truncation error below 2·10⁻⁸ absolute at
x = 3 and 10⁻¹⁷ at x = 12); below it, the direct forms, whose terms are then of size one.

The Poisson entropy has no closed form: ``poisson_entropy`` sums −Σₖ pₖ log pₖ over k < 64
(float32; 128 in float64) for rates up to 20 (50), and above uses its asymptotic series
½ log(2πeλ) − 1/(12λ) − 1/(24λ²) − 19/(360λ³) − … (12 terms; coefficients derived with exact
rational arithmetic from Stirling's series and the Poisson central moments). Both are within
3·10⁻¹⁰ (float32 settings) and 7·10⁻¹⁷ (float64) relative of a 50-digit reference: exact to
the dtype, not an approximation.

References:
  Loader, C. (2000). Fast and accurate computation of binomial probabilities.
  Abramowitz & Stegun (1964), 6.1.40 (Stirling's series) and 6.3.18 (digamma).
  Evans, R. J., Boersma, J. et al. (1988). The entropy of a Poisson distribution.
  SIAM Review 30(2), 314-317 (the first terms of the Poisson series).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy import special

from .saddle_point import _bd0, poisson_log_prob

__all__ = ["bd0", "digamma_remainder", "gamma_entropy", "poisson_entropy", "stirlerr"]

# B₂ₙ for n = 1…7: seven terms of each series.
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)


def _series_start(dtype) -> float:
    """Where δ and ε switch to their series: the seventh term's remainder (|B₁₆|/(16·15 x¹⁵) and
    |B₁₆|/(16 x¹⁶)) is below the dtype's rounding there."""
    return 12.0 if jnp.finfo(dtype).bits > 32 else 3.0


def _split(x):
    """(large, x for the series, x for the direct form): each branch gets an argument where it
    is finite, so the unselected branch's derivative is 0, not 0·∞ = NaN."""
    start = _series_start(x.dtype)
    large = x >= start
    return large, jnp.where(large, x, start), jnp.where(large, start, x)


def _polynomial(w, coefficients):
    """Σⱼ cⱼ wʲ, j = 0, 1, …, by Horner's rule."""
    total = jnp.full_like(w, coefficients[-1])
    for c in coefficients[-2::-1]:
        total = c + w * total
    return total


def stirlerr(x):
    """δ(x) = log Γ(x) − (x − ½) log x + x − ½ log 2π = Σₙ B₂ₙ / (2n(2n − 1) x²ⁿ⁻¹), for real x > 0."""
    large, xs, xd = _split(x)
    coefficients = [b / (2 * n * (2 * n - 1)) for n, b in enumerate(_BERNOULLI, 1)]
    series = _polynomial(1.0 / (xs * xs), coefficients) / xs
    direct = special.gammaln(xd) - (xd - 0.5) * jnp.log(xd) + xd - _HALF_LOG_2PI
    return jnp.where(large, series, direct)


def digamma_remainder(x):
    """ε(x) = ψ(x) − log x + 1/(2x) = −Σₙ B₂ₙ / (2n x²ⁿ), for real x > 0."""
    large, xs, xd = _split(x)
    w = 1.0 / (xs * xs)
    series = -w * _polynomial(w, [b / (2 * n) for n, b in enumerate(_BERNOULLI, 1)])
    direct = special.digamma(xd) - jnp.log(xd) + 0.5 / xd
    return jnp.where(large, series, direct)


def bd0(x, y):
    """x log(x/y) + y − x ≥ 0 for x, y > 0 (Loader's deviance; see ``saddle_point``)."""
    return _bd0(x, y, jnp.log(x), jnp.log(y))


def gamma_entropy(concentration):
    """The entropy of Gamma(α, 1), α + log Γ(α) + (1 − α) ψ(α).

    For large α it is ½ log(2πeα) − 1/(2α) + δ(α) + (1 − α) ε(α)
    = ½ log(2πeα) − 1/(3α) − 1/(12α²) − 1/(90α³) + …, i.e. ½ log(2πeα) − 1/(2α) +
    Σₙ B₂ₙ (α^{1−2n}/(2n − 1) − α^{−2n}/(2n)); below the threshold, the textbook form (whose
    terms are then of size one, and which is −∞ rather than NaN at subnormal α).
    """
    large, a_series, a_direct = _split(concentration)
    w = 1.0 / (a_series * a_series)
    odd = _polynomial(w, [b / (2 * n - 1) for n, b in enumerate(_BERNOULLI, 1)]) / a_series
    even = w * _polynomial(w, [b / (2 * n) for n, b in enumerate(_BERNOULLI, 1)])
    series = _HALF_LOG_2PI_E + 0.5 * jnp.log(a_series) - 0.5 / a_series + odd - even
    direct = a_direct + special.gammaln(a_direct) + (1.0 - a_direct) * special.digamma(a_direct)
    return jnp.where(large, series, direct)


# The Poisson entropy's asymptotic series H(λ) − ½ log(2πeλ) = Σⱼ cⱼ λ^{−j}, j = 1…12, with
# exact rational coefficients (derived from E[log Γ(k + 1)] = Σₙ ψ⁽ⁿ⁻¹⁾(λ + 1) μₙ/n!, μₙ the
# Poisson central moments, and Stirling's series; the first three are Evans et al.'s).
_POISSON_SERIES = (
    -1 / 12, -1 / 24, -19 / 360, -9 / 80, -863 / 2520, -1375 / 1008, -33953 / 5040,
    -57281 / 1440, -3250433 / 11880, -378351 / 176, -13695779093 / 720720, -24466579093 / 131040,
)  # fmt: skip
# (largest rate summed, terms summed, series terms used) per precision: the sum's tail beyond
# k = 63 at λ = 20 is below 10⁻¹³ of H (float32), beyond 127 at λ = 50 below 10⁻¹⁸ (float64);
# the series' truncation error is 3·10⁻¹⁰ at λ = 20 with 8 terms, 7·10⁻¹⁷ at λ = 50 with 12.
_POISSON_SETTINGS = {32: (20.0, 64, 8), 64: (50.0, 128, 12)}


def poisson_entropy(rate):
    """The entropy of Poisson(λ), −Σₖ pₖ log pₖ: summed over k < K for λ ≤ λ₀, the asymptotic
    series above (see the module docstring); log pₖ is Loader's saddle-point form (accurate in
    float32), so the sum has no cancellation; derivatives of every order by autodiff."""
    bits = 64 if jnp.finfo(rate.dtype).bits > 32 else 32
    largest, terms, series_terms = _POISSON_SETTINGS[bits]
    large = rate > largest
    r_series = jnp.where(large, rate, largest)
    r_sum = jnp.where(large, largest, rate)
    k = jnp.reshape(jnp.arange(terms, dtype=rate.dtype), (1,) * jnp.ndim(rate) + (terms,))
    log_p = poisson_log_prob(k, r_sum[..., None])
    summed = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
    coefficients = (0.0,) + _POISSON_SERIES[:series_terms]
    series = _HALF_LOG_2PI_E + 0.5 * jnp.log(r_series) + _polynomial(1.0 / r_series, coefficients)
    return jnp.where(large, series, summed)
