"""Gamma-based families: Gamma, Beta, Dirichlet, drawn in log space with implicit
reparameterization.

All three are built from log G, G ~ Gamma(α, 1), drawn by ``jax.random.loggamma``: with a
small concentration most of G's mass lies below the smallest float (Gamma(0.01): 42% under
1.2e-38 in float32), where G itself rounds to 0 but log G is exact. So

- samples are returned inside the open support — Gamma in [tiny, max], Beta and each
  Dirichlet coordinate in [tiny, 1 − eps/2] — with a straight-through clip that keeps the
  draw's own pathwise derivatives;
- score-function estimators get the log-density from the exact log-coordinates of the
  draw (log x, and log(1 − x) = log G₀ − log(G₁ + G₀) for Beta), never from a rounded x,
  so it stays finite and the score unbiased (Beta(0.1, 0.1) in float32 rounds 10% of its
  draws to exactly 1.0, where log(1 − x) = −inf);
- the pathwise derivative ∂ log G/∂α is the implicit one, (∂F/∂α)/(∂F/∂G)/G (Figurnov et
  al., 2018), and where G underflows its small-G limit: from F(G; α) ≈ G^α/Γ(α + 1),
  ∂ log G/∂α = (ψ(α + 1) − log G)/α, exact to the dtype's precision below G = 1e-13
  (float32) or 1e-20 (float64). (jax's own
  derivative evaluates the implicit one at G = tiny there, which biases Beta(0.01, 0.01)
  pathwise gradients by 8 standard errors.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy import special

from . import validation as v
from .base import (
    Distribution,
    _as_float,
    _at_rank,
    _broadcast_params,
    _clip,
    _off_support,
    _safe,
    _sg,
    _to,
    to_positive_support,
)
from .saddle_point import gamma_log_prob
from .special import gamma_entropy
from .validation import VALIDATE_ARGS

__all__ = ["Gamma", "Beta", "Dirichlet"]

# Below these the small-G limit of ∂ log G/∂α is used; its neglected terms are O(G), under the
# dtype's rounding: G = e^-46 ≈ 1e-20 in float64, G = e^-30 ≈ 1e-13 in float32 (lower, the
# implicit derivative's own derivative overflows float32 near G = 5e-20, so second derivatives
# of Gamma(0.1) were −inf/NaN). Above them the implicit derivative is computed directly.
_SMALL_LOG_G = {64: -46.0, 32: -30.0}


@jax.jit  # one compiled kernel also in eager mode (random_gamma_grad op by op costs 0.3 s a call)
def _d_log_gamma_direct(concentration, log_g):
    small = log_g < _SMALL_LOG_G.get(jnp.finfo(log_g.dtype).bits, -30.0)
    g = jnp.exp(jnp.where(small, 0.0, log_g))
    implicit = jax.lax.random_gamma_grad(concentration, g) / g
    limit = (special.digamma(concentration + 1.0) - log_g) / concentration
    return jnp.where(small, limit, implicit)


def _forward_partials(fn):
    """``fn`` (elementwise in its arguments) with derivatives of every order computed by
    forward mode inside a custom JVP, each partial as a value.

    jax's ``random_gamma_grad`` is a ``while_loop``: forward mode through it works, reverse
    mode does not. Here the JVP is Σᵢ ∂ᵢfn · tᵢ with each ∂ᵢfn computed by ``jax.jvp`` (and
    itself wrapped the same way), a product that reverse mode can transpose: so
    ``jax.grad(jax.grad(...))`` and deeper work, not only ``jax.hessian``.
    """

    @jax.custom_jvp
    def wrapped(*args):
        return fn(*args)

    @wrapped.defjvp
    def wrapped_jvp(primals, tangents):
        args = jnp.broadcast_arrays(*primals)
        out = wrapped(*args)
        tangent = jnp.zeros_like(out)
        for i, t in enumerate(tangents):
            unit = tuple(jnp.ones_like(a) if j == i else jnp.zeros_like(a) for j, a in enumerate(args))
            partial = _forward_partials(lambda *a, unit=unit: jax.jvp(fn, a, unit)[1])
            tangent = tangent + partial(*args) * t
        return out, tangent

    return wrapped


# ∂ log G/∂α at fixed CDF value, for G = exp(log_g) ~ Gamma(α, 1).
_d_log_gamma = _forward_partials(_d_log_gamma_direct)


@jax.custom_jvp
def _implicit_log_gamma(concentration, log_g):
    """``log_g`` (a stop-gradient draw) as a function of the concentration, by implicit
    differentiation; derivatives of every order (the JVP is itself differentiable)."""
    return log_g


@_implicit_log_gamma.defjvp
def _implicit_log_gamma_jvp(primals, tangents):
    concentration, log_g = primals
    d_concentration, _ = tangents
    out = _implicit_log_gamma(concentration, log_g)
    return out, _d_log_gamma(concentration, out) * d_concentration


def _log_gamma(key, concentration):
    """log G, G ~ Gamma(concentration, 1), same draws as ``jax.random.loggamma``/``gamma``
    for the key; ``concentration`` has the sample's shape."""
    log_g = jax.random.loggamma(key, _sg(concentration), concentration.shape, concentration.dtype)
    return _implicit_log_gamma(concentration, _sg(log_g))


@jax.custom_jvp
def _log_beta(a, b):
    """log B(a, b), as ``jax.scipy.special.betaln``, with derivatives that stay finite for tiny
    a and b.

    ``betaln``'s own derivative is NaN once max(a, b) ≲ 1e-5 in float32 (and at 1e-4 when XLA
    folds constants): the derivative of its unused large-argument branch overflows and is
    multiplied by zero. Below max(a, b) = 8, where ``betaln`` is gammaln(a) + gammaln(b) −
    gammaln(a + b), the derivative is written out, ψ(a) − ψ(a + b) and ψ(b) − ψ(a + b); above
    it, ``betaln``'s own (evaluated at arguments where both branches are finite).
    """
    return special.betaln(a, b)


@_log_beta.defjvp
def _log_beta_jvp(primals, tangents):
    a, b = primals
    da, db = tangents
    small = jnp.maximum(a, b) < 8.0
    digamma_ab = special.digamma(a + b)
    written = (special.digamma(a) - digamma_ab) * da + (special.digamma(b) - digamma_ab) * db
    big_a, big_b = jnp.where(small, 8.0, a), jnp.where(small, 8.0, b)
    _, large = jax.jvp(special.betaln, (big_a, big_b), (da, db))
    return _log_beta(a, b), jnp.where(small, written, large)


def _unit_interval(x):
    """Clip into the open unit interval (0, 1): [tiny, 1 − eps/2], the floats strictly inside."""
    info = jnp.finfo(x.dtype)
    return _clip(x, float(info.tiny), 1.0 - float(info.epsneg))


def _off_simplex(x):
    """Points off the probability simplex (last axis): a negative coordinate, or a sum that
    misses 1 by more than (2K + 2)·ε of x's float type, the worst-case rounding of a vector
    normalized in that type (its normalizing sum of K terms is off by ≤ (K − 1)·ε relative),
    summed again here (another (K − 1)·ε), plus the coordinates' own rounding: 8·10⁻⁷ for K = 3
    in float32, 6·10⁻⁵ for K = 256 (scipy, in float64, allows 10⁻⁹). NaN coordinates are not
    off it (NaN in, NaN out)."""
    k = x.shape[-1]
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    tol = (2 * k + 2) * float(jnp.finfo(dtype).eps)
    return jnp.any(x < 0, axis=-1) | (jnp.abs(jnp.sum(x, axis=-1) - 1.0) > tol)


def _dirichlet_entropy(concentration):
    """The Dirichlet entropy over the last axis, log B(α) + (α₀ − K) ψ(α₀) − Σⱼ (αⱼ − 1) ψ(αⱼ),
    written as Σⱼ H_Γ(αⱼ) − H_Γ(α₀) − (K − 1) ψ(α₀) with H_Γ(a) the entropy of Gamma(a, 1) (x is
    G/ΣG for independent Gⱼ ~ Gamma(αⱼ, 1)): terms of size log α, where the textbook form's are
    of size α log α (at α = 10⁴ in float32 it loses 10⁻³ nats of −4.2)."""
    total = jnp.sum(concentration, axis=-1)
    k = concentration.shape[-1]
    return jnp.sum(gamma_entropy(concentration), axis=-1) - gamma_entropy(total) - (k - 1) * special.digamma(total)


def _in_working_precision(dist, summary):
    """``summary(dist)`` computed in at least float32 (special functions are coarse in bfloat16)
    and returned in the parameters' dtype."""
    dtype = jnp.result_type(dist._first)
    return summary(dist._working()).astype(dtype)


class Gamma(Distribution):
    """Gamma(concentration, rate), with implicit reparameterization in the concentration.

    Samples are exp(log G − log rate) with log G from ``jax.random.loggamma`` (the same
    draws as ``jax.random.gamma`` for the key), differentiated with respect to the
    concentration by implicit differentiation of the CDF (Figurnov et al., 2018), so the
    pathwise estimator works without a closed-form inverse CDF. Samples stay in
    [tiny, max] (see ``repgrad/_src/distributions/gamma.py``); score-function estimators
    take the log-density from the exact log of the draw.
    """

    _params = ("concentration", "rate")
    _rules = (v.positive("concentration"), v.positive("rate"))
    _exact_log_prob = True

    def __init__(self, concentration, rate, *, validate_args: bool | None = VALIDATE_ARGS):
        concentration, rate = _broadcast_params("Gamma", concentration=concentration, rate=rate)
        self._init(validate_args, self._rules, concentration=concentration, rate=rate)

    def _log_sample(self, key, shape):
        conc, rate = _to(shape, self.concentration, self.rate)
        return _log_gamma(key, conc) - jnp.log(rate)

    def _sample(self, key, shape):
        return jnp.exp(self._log_sample(key, shape))

    def _to_support(self, x):
        return to_positive_support(x)

    def _draw_with_log_prob(self, key, shape):
        log_x = _sg(self)._log_sample(key, shape)  # the draw, held fixed
        x = jnp.exp(log_x)
        log_x, x_, a, b = _at_rank(log_x, x, self.concentration, self.rate)
        return self._to_support(x), gamma_log_prob(x_, log_x, a, b)

    def log_prob(self, x):
        """log p(x): at concentration ≥ 16 in Loader's saddle-point form (``saddle_point.py``),
        accurate in float32 where the textbook form cancels; −inf for x < 0 and x = +inf; at
        x = 0 as scipy (log rate for concentration 1, +inf below, −inf above)."""
        x, a, b = _at_rank(x, self.concentration, self.rate)
        outside = (x < 0) | (x == jnp.inf)
        x = _safe(x, outside, 1.0)
        return _off_support(outside, gamma_log_prob(x, jnp.log(x), a, b))

    def mean(self):
        """E[x] = concentration/rate."""
        return self.concentration / self.rate

    def variance(self):
        """Var[x] = concentration/rate²."""
        return self.concentration / jnp.square(self.rate)

    def stddev(self):
        """√concentration/rate."""
        return jnp.sqrt(self.concentration) / self.rate

    def mode(self):
        """(concentration − 1)/rate for concentration ≥ 1; 0 below (the density is unbounded there)."""
        return jnp.where(self.concentration >= 1.0, (self.concentration - 1.0) / self.rate, 0.0)

    def entropy(self):
        r"""H = α − log β + log Γ(α) + (1 − α) ψ(α), for α = concentration and β = rate.

        For large α (≥ 3 in float32, ≥ 12 in float64) as its asymptotic series,
        ½ log(2πeα) − log β − 1/(3α) − 1/(12α²) − 1/(90α³) + …: the textbook form cancels terms
        of size α log α (1 nat lost of 7.8 at α = 10⁶ in float32); see
        ``repgrad/_src/distributions/special.py``.
        """
        return _in_working_precision(self, lambda d: gamma_entropy(d.concentration) - jnp.log(d.rate))


class Beta(Distribution):
    """Beta(concentration1, concentration0), implicitly reparameterized through Gamma draws.

    x = G₁/(G₁ + G₀) from the log-gammas (the same draws as ``jax.random.beta``), kept in
    [tiny, 1 − eps/2]; score-function estimators take the log-density from the exact
    log x and log(1 − x).
    """

    _params = ("concentration1", "concentration0")
    _rules = (v.positive("concentration1"), v.positive("concentration0"))
    _exact_log_prob = True

    def __init__(self, concentration1, concentration0, *, validate_args: bool | None = VALIDATE_ARGS):
        concentration1, concentration0 = _broadcast_params(
            "Beta", concentration1=concentration1, concentration0=concentration0
        )
        self._init(validate_args, self._rules, concentration1=concentration1, concentration0=concentration0)

    def _log_sample(self, key, shape):
        """(log x, log(1 − x)), each exact."""
        a, b = _to(shape, self.concentration1, self.concentration0)
        key_a, key_b = jax.random.split(key)
        log_ga, log_gb = _log_gamma(key_a, a), _log_gamma(key_b, b)
        log_total = jnp.logaddexp(log_ga, log_gb)
        return log_ga - log_total, log_gb - log_total

    def _sample(self, key, shape):
        return jnp.exp(self._log_sample(key, shape)[0])

    def _to_support(self, x):
        return _unit_interval(x)

    def _draw_with_log_prob(self, key, shape):
        log_x, log1m_x = _sg(self)._log_sample(key, shape)  # the draw, held fixed
        a, b = self.concentration1, self.concentration0
        log_x, log1m_x, a, b, log_beta = _at_rank(log_x, log1m_x, a, b, _log_beta(a, b))
        return self._to_support(jnp.exp(log_x)), (a - 1.0) * log_x + (b - 1.0) * log1m_x - log_beta

    def log_prob(self, x):
        """log p(x); −inf outside [0, 1]; at x = 0 and 1 as scipy (finite, +inf or −inf as the
        concentration there is 1, below or above it)."""
        a, b = self.concentration1, self.concentration0
        x, a, b, log_beta = _at_rank(x, a, b, _log_beta(a, b))
        outside = (x < 0) | (x > 1)
        x = _safe(x, outside, 0.5)
        return _off_support(outside, special.xlogy(a - 1.0, x) + special.xlog1py(b - 1.0, -x) - log_beta)

    def mean(self):
        """E[x] = a/(a + b), for a = concentration1 and b = concentration0."""
        return self.concentration1 / (self.concentration1 + self.concentration0)

    def variance(self):
        """Var[x] = ab/((a + b)²(a + b + 1))."""
        a, b = self.concentration1, self.concentration0
        return a * b / (jnp.square(a + b) * (a + b + 1.0))

    def mode(self):
        """(a − 1)/(a + b − 2) for a, b > 1; 0 where the density decreases (a < 1 ≤ b, or a = 1 < b),
        1 where it increases (b < 1 ≤ a, or b = 1 < a); NaN where there is no single mode (a, b < 1:
        two, at 0 and 1; a = b = 1: the uniform)."""
        a, b = self.concentration1, self.concentration0
        interior = (a > 1.0) & (b > 1.0)
        uniform = (a == 1.0) & (b == 1.0)
        at_zero = (a <= 1.0) & (b >= 1.0) & ~uniform
        at_one = (b <= 1.0) & (a >= 1.0) & ~uniform
        a_in, b_in = jnp.where(interior, a, 2.0), jnp.where(interior, b, 2.0)  # no 0/0 in the gradient
        edge = jnp.where(at_zero, 0.0, jnp.where(at_one, 1.0, jnp.nan)).astype(a.dtype)
        return jnp.where(interior, (a_in - 1.0) / (a_in + b_in - 2.0), edge)

    def entropy(self):
        r"""H = log B(a, b) − (a − 1) ψ(a) − (b − 1) ψ(b) + (a + b − 2) ψ(a + b).

        Computed as H_Γ(a) + H_Γ(b) − H_Γ(a + b) − ψ(a + b), H_Γ the entropy of Gamma(·, 1)
        (x = G₁/(G₁ + G₀)), whose terms are of size log a where the textbook form's are of size
        a log a: at a = b = 10⁴ in float32 this is −4.2259 against the textbook's 10⁻³-off value.
        """
        stacked = lambda d: jnp.stack([d.concentration1, d.concentration0], axis=-1)
        return _in_working_precision(self, lambda d: _dirichlet_entropy(stacked(d)))


class Dirichlet(Distribution):
    """Dirichlet(concentration) over the last axis, implicitly reparameterized.

    x = softmax(log G) with log G from ``jax.random.loggamma`` (the same draws as
    ``jax.random.dirichlet``); each coordinate is kept in [tiny, 1 − eps/2], and
    score-function estimators take the log-density from the exact log x = log G − logsumexp(log G).
    """

    _params = ("concentration",)
    event_ndims = 1
    _rules = (v.positive("concentration"),)
    _exact_log_prob = True

    def __init__(self, concentration, *, validate_args: bool | None = VALIDATE_ARGS):
        (conc,) = _as_float(concentration)
        if conc.ndim < 1:
            raise ValueError("Dirichlet needs a concentration with at least one axis (the simplex).")
        self._init(validate_args, self._rules, concentration=conc)

    def _log_sample(self, key, shape):
        log_g = _log_gamma(key, jnp.broadcast_to(self.concentration, shape))
        return log_g - special.logsumexp(log_g, axis=-1, keepdims=True)

    def _sample(self, key, shape):
        return jnp.exp(self._log_sample(key, shape))

    def _to_support(self, x):
        return _unit_interval(x)

    def _draw_with_log_prob(self, key, shape):
        log_x = _sg(self)._log_sample(key, shape)  # the draw, held fixed
        conc = self.concentration
        norm = jnp.sum(special.gammaln(conc), -1) - special.gammaln(jnp.sum(conc, -1))  # batch shape, once
        lx, conc = _at_rank(log_x, conc)
        lp, norm = _at_rank(jnp.sum((conc - 1.0) * lx, -1), norm)
        return self._to_support(jnp.exp(log_x)), lp - norm

    def log_prob(self, x):
        """log p(x); −inf where a coordinate is negative or the coordinates do not sum to 1
        within (2K + 2)·ε of x's float type (K categories; see ``_off_simplex``); at a zero
        coordinate as Beta (finite, +inf or −inf as its concentration is 1, below or above it)."""
        conc = self.concentration
        norm = jnp.sum(special.gammaln(conc), -1) - special.gammaln(jnp.sum(conc, -1))  # batch shape, once
        x, conc = _at_rank(x, conc)
        outside = _off_simplex(x)
        x = _safe(x, outside[..., None], 1.0 / x.shape[-1])
        lp, norm, outside = _at_rank(jnp.sum(special.xlogy(conc - 1.0, x), -1), norm, outside)
        return _off_support(outside, lp - norm)

    def mean(self):
        """E[x] = α/α₀, with α₀ = Σⱼ αⱼ."""
        return self.concentration / jnp.sum(self.concentration, -1, keepdims=True)

    def variance(self):
        """Var[xⱼ] = αⱼ(α₀ − αⱼ)/(α₀²(α₀ + 1))."""
        total = jnp.sum(self.concentration, -1, keepdims=True)
        return self.concentration * (total - self.concentration) / (jnp.square(total) * (total + 1.0))

    def covariance(self):
        """Cov[xᵢ, xⱼ] = (δᵢⱼ mᵢ − mᵢ mⱼ)/(α₀ + 1) with m = α/α₀, of shape ``batch_shape + (K, K)``."""
        total = jnp.sum(self.concentration, -1, keepdims=True)
        m = self.concentration / total
        eye = jnp.reshape(jnp.eye(m.shape[-1], dtype=m.dtype), (1,) * (m.ndim - 1) + 2 * m.shape[-1:])
        return (m[..., :, None] * eye - m[..., :, None] * m[..., None, :]) / (total[..., None] + 1.0)

    def mode(self):
        """(α − 1)/(α₀ − K) where every αⱼ > 1; NaN otherwise (the density is unbounded on a face
        of the simplex: no single mode)."""
        conc = self.concentration
        interior = jnp.all(conc > 1.0, axis=-1, keepdims=True)
        conc_in = jnp.where(interior, conc, 2.0)  # no 0/0 in the gradient
        mode = (conc_in - 1.0) / jnp.sum(conc_in - 1.0, axis=-1, keepdims=True)
        return jnp.where(interior, mode, jnp.asarray(jnp.nan, conc.dtype))

    def entropy(self):
        r"""H = log B(α) + (α₀ − K) ψ(α₀) − Σⱼ (αⱼ − 1) ψ(αⱼ), log B(α) = Σⱼ log Γ(αⱼ) − log Γ(α₀).

        Computed as Σⱼ H_Γ(αⱼ) − H_Γ(α₀) − (K − 1) ψ(α₀), H_Γ the entropy of Gamma(·, 1): no
        cancellation of terms of size α log α at large concentrations (see Beta.entropy).
        """
        return _in_working_precision(self, lambda d: _dirichlet_entropy(d.concentration))
