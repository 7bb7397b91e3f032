"""Poisson and Gamma log-densities in Loader's saddle-point form, accurate in float32.

The textbook form log p(x; λ) = x log λ − λ − log Γ(x + 1) subtracts terms of size x log x:
at λ = x = 10⁶ they are 1.4·10⁷ and the result is −7.8, so float32 (ε = 1.2·10⁻⁷) loses
0.8 nats to cancellation. Loader (2000) rewrites it, for x ≥ 1, as

    log p(x; λ) = −stirlerr(x) − bd0(x, λ) − ½ log(2πx),

with three terms that are each ≥ 0 and subtracted, so the result is as accurate as its
terms (a few ε relative):

- stirlerr(x) = log Γ(x + 1) − (x + ½) log x + x − ½ log 2π, Stirling's error, small and
  positive: a table for x ≤ 15 (computed with ``decimal`` at 40 digits at import), the
  asymptotic series 1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷) + 1/(1188x⁹) above
  (the Bernoulli numbers B₂ₖ/(2k(2k − 1)x²ᵏ⁻¹); the next term is below 10⁻¹⁶ at x = 16);
- bd0(x, λ) = x log(x/λ) + λ − x = λ·h((x − λ)/λ) ≥ 0, with h(u) = (1 + u) log1p(u) − u,
  the "deviance" term. Near x = λ it cancels too; with v = (x − λ)/(x + λ),
  x log(x/λ) = 2x·atanh(v), so bd0 = (x − λ)·v + 2x·Σ_{j≥1} v^{2j+1}/(2j + 1), a sum of
  terms that shrink by v² ≤ 1/9 for |v| < 1/3; beyond it the closed form x·log(x/λ) − (x − λ)
  loses at most ~10ε of bd0 (its two terms differ by a factor ≥ 1.39; log x − log λ replaces
  log(x/λ) where the ratio over- or underflows).

Measured against a 50-digit reference over rates 10⁻³…10⁷ and counts 0…2²⁴: within
3.5ε·max(1, |log p|) in float32 and float64 (the textbook form: 2·10⁷ ε; scipy's float64
``poisson.logpmf``: 10⁷ ε).

x = 0 gives log p = −λ. Only non-negative integer x is passed here (``Poisson.log_prob``
masks the rest). The derivatives are set by a custom JVP to those of the textbook form,
∂/∂λ = x/λ − 1 (written (x − λ)/λ: exact when x is near λ) and ∂/∂x = log λ − ψ(x + 1), whose
own derivatives jax takes, so every order is exact (score-function estimators differentiate
log-densities to any order). The Gamma density is b·(this form at k = a − 1, λ = b·x), with
real k; ``gamma_log_prob`` uses it for a ≥ 16, where the series for stirlerr holds for real k
(below, the textbook form's terms are those of log Γ(16) ≈ 28 and a·log b at most). In float32
at a = b = 10⁶ it is 6·10⁻⁵ nats off (the textbook form: 0.04), the rest being the rounding of
b·x.

References:
  Loader, C. (2000). Fast and accurate computation of binomial probabilities.
"""

from __future__ import annotations

import decimal
import math

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.scipy import special

__all__ = ["gamma_log_prob", "poisson_log_prob"]

_PI = decimal.Decimal("3.14159265358979323846264338327950288419716939937510")
_TABLE_MAX = 15  # stirlerr(n) from the table for n ≤ 15, from the series above
_SERIES = (1.0 / 12.0, 1.0 / 360.0, 1.0 / 1260.0, 1.0 / 1680.0, 1.0 / 1188.0)
_V_MAX = 1.0 / 3.0  # |v| below which bd0 is summed as a series in v²


def _stirlerr_table():
    """stirlerr(n) for n = 0, …, 15 at 40 digits (n = 0: unused, 0)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        half_log_2pi = (2 * _PI).ln() / 2
        table = [0.0]
        for n in range(1, _TABLE_MAX + 1):
            d = decimal.Decimal(n)
            value = decimal.Decimal(math.factorial(n)).ln() - (d + decimal.Decimal("0.5")) * d.ln() + d - half_log_2pi
            table.append(float(value))
    return tuple(table)


_STIRLERR = _stirlerr_table()


def _stirlerr_series(x):
    """Stirling's error by its asymptotic series: to 2·10⁻¹⁶ for real x ≥ 15."""
    w = 1.0 / (x * x)
    s0, s1, s2, s3, s4 = _SERIES
    return (s0 - w * (s1 - w * (s2 - w * (s3 - w * s4)))) / x


def _stirlerr(x):
    """Stirling's error at integer-valued x ≥ 1."""
    table = jnp.asarray(_STIRLERR, x.dtype)[jnp.clip(x, 0, _TABLE_MAX).astype(jnp.int32)]
    return jnp.where(x > _TABLE_MAX, _stirlerr_series(x), table)


def _series_terms(dtype) -> int:
    """Terms of Σ_{j≥1} v^{2j+1}/(2j + 1) after which the rest is below ε/4 relative to bd0
    (the tail relative to bd0 ≤ 2|v|^{2J+1}/(2J + 3) at |v| = 1/3): 7 in float32, 16 in float64."""
    eps = float(jnp.finfo(dtype).eps)
    j = 1
    while 2.0 * _V_MAX ** (2 * j + 1) / (2 * j + 3) > eps / 4:
        j += 1
    return j


def _bd0(x, rate, log_x, log_rate):
    """x log(x/λ) + λ − x ≥ 0, without cancellation, for x ≥ 1 and λ > 0."""
    d = x - rate
    v = d / (x + rate)
    w = v * v
    terms = _series_terms(x.dtype)
    total = jnp.full_like(w, 1.0 / (2 * terms + 1))
    for j in range(terms - 1, 0, -1):  # Horner: 1/3 + w/5 + w²/7 + ...
        total = 1.0 / (2 * j + 1) + w * total
    series = d * v + 2.0 * x * v * w * total
    # log(x/λ): the ratio over- or underflows for λ far from x (then there is no cancellation).
    ratio = x / rate
    info = jnp.finfo(x.dtype)
    finite_ratio = (ratio >= float(info.tiny)) & (ratio <= float(info.max))
    log_ratio = jnp.where(finite_ratio, jnp.log(jnp.where(finite_ratio, ratio, 1.0)), log_x - log_rate)
    closed = x * log_ratio - d
    return jnp.where(jnp.abs(v) < _V_MAX, series, closed)


@jax.custom_jvp
def poisson_log_prob(x, rate):
    """log p(x; rate) for integer-valued x ≥ 0 and rate > 0 (broadcasting), Loader's form."""
    x_pos = jnp.maximum(x, 1.0)
    log_x = jnp.log(x_pos)
    log_rate = jnp.log(rate)
    positive = -_stirlerr(x_pos) - _bd0(x_pos, rate, log_x, log_rate) - 0.5 * (log_x + math.log(2.0 * math.pi))
    return jnp.where(x == 0.0, -rate, positive)  # NaN in, NaN out


def _poisson_log_prob_jvp(primals, tangents):
    x, rate = primals
    dx, drate = tangents
    out = poisson_log_prob(x, rate)
    tangent = jnp.zeros_like(out)
    # Symbolic zeros: no ψ(x + 1) per sample for the (usual) fixed x.
    if not isinstance(drate, SymbolicZero):
        tangent = tangent + (x - rate) / rate * drate
    if not isinstance(dx, SymbolicZero):
        tangent = tangent + (jnp.log(rate) - special.digamma(x + 1.0)) * dx
    return out, tangent


poisson_log_prob.defjvp(_poisson_log_prob_jvp, symbolic_zeros=True)


# Gamma(a, b) at a ≥ 16 in the same form: its density is b·Pois(a − 1; b·x) with the Poisson
# extended to real counts, so log p = log b − stirlerr(a − 1) − bd0(a − 1, b·x) − ½ log(2π(a − 1)),
# where a log b − log Γ(a) + (a − 1) log x − b x cancels (0.04 nats off in float32 at a = b = 10⁶).
_GAMMA_LARGE = 16.0
_sg = jax.lax.stop_gradient


def gamma_log_prob(x, log_x, a, b):
    """log Gamma(x; a, b) for x ≥ 0 with ``log_x`` = log x (exact where the caller has it),
    broadcasting; Loader's form where a ≥ 16, the textbook form below. Its derivatives, of
    every order, are the textbook form's (differentiated by jax).

    The value is attached as ``textbook + ⊥(value − textbook)`` rather than by a
    ``jax.custom_jvp``: jax 0.10.2 on CPU returns wrong ``jax.jacrev(jax.grad(...))`` through a
    custom_jvp under ``jax.jit(jax.vmap(...))`` over 1,024 or more keys (512 are right, and so
    is jacfwd): every score-function mixed derivative of a Gamma was off by up to 33 SE there.
    """
    log_b = jnp.log(b)
    # (a − 1)·log x is 0 at a = 1 even where x = 0 (log x = −inf); its a-derivative is log x
    safe_log_x = jnp.where((_sg(a) == 1.0) & jnp.isinf(_sg(log_x)), 0.0, log_x)
    textbook = (a - 1.0) * safe_log_x - b * x + (a * log_b - special.gammaln(a))
    k = jnp.maximum(_sg(a) - 1.0, _GAMMA_LARGE - 1.0)  # the unused branch stays finite
    head = _sg(log_b) - _stirlerr_series(k) - 0.5 * (jnp.log(k) + math.log(2.0 * math.pi))
    large = head - _bd0(k, _sg(b) * _sg(x), jnp.log(k), _sg(log_b) + _sg(log_x))
    value = jnp.where(_sg(a) >= _GAMMA_LARGE, large, _sg(textbook))
    # textbook − ⊥textbook is 0 in value and carries every derivative; where textbook is ±inf
    # (x = 0) the value is the only thing there is.
    finite = jnp.isfinite(_sg(textbook))
    return value + jnp.where(finite, textbook - _sg(textbook), 0.0)
