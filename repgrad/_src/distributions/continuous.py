"""Other reparameterized scalar families: Laplace, Logistic, Uniform, Exponential."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from . import validation as v
from .base import Distribution, _at_rank, _broadcast_params, _clip, _off_support, _safe, _sg, _to
from .validation import VALIDATE_ARGS

__all__ = ["Laplace", "Logistic", "Uniform", "Exponential"]


class Laplace(Distribution):
    """Laplace distribution with density exp(-|x - loc| / scale) / (2 scale).

    Its log-density has a kink at x = loc: ∂p/∂loc jumps there, so ∂²p/∂loc² holds a point
    mass that score-function (DiCE) estimates never sample. ``log_prob_smoothness`` declares
    first order in ``loc`` (second derivatives in ``loc`` need ``pathwise``); every order in
    ``scale``, also mixed with one derivative in ``loc``.
    """

    _params = ("loc", "scale")
    _rules = (v.finite("loc"), v.positive("scale"))
    log_prob_smoothness = {"loc": 1}

    def __init__(self, loc, scale, *, validate_args: bool | None = VALIDATE_ARGS):
        loc, scale = _broadcast_params("Laplace", loc=loc, scale=scale)
        self._init(validate_args, self._rules, loc=loc, scale=scale)

    def _sample(self, key, shape):
        loc, scale = _to(shape, self.loc, self.scale)
        return loc + scale * jax.random.laplace(key, shape, self.loc.dtype)

    def log_prob(self, x):
        """log p(x); −inf at x = ±inf, with zero derivatives there."""
        x = jnp.asarray(x)
        outside = jnp.isinf(x)
        return _off_support(outside, self._log_prob_of_draws(_safe(x, outside, 0.0)))

    def _log_prob_of_draws(self, x):
        x, loc, scale, log_norm = _at_rank(x, self.loc, self.scale, jnp.log(2.0 * self.scale))
        return -jnp.abs(x - loc) / scale - log_norm

    def mean(self):
        """E[x] = loc."""
        return self.loc

    def variance(self):
        """Var[x] = 2 scale²."""
        return 2.0 * jnp.square(self.scale)

    def stddev(self):
        """√2 scale."""
        return math.sqrt(2.0) * self.scale

    def mode(self):
        """loc."""
        return self.loc

    def entropy(self):
        """H = 1 + log(2 scale)."""
        return 1.0 + jnp.log(2.0 * self.scale)


class Logistic(Distribution):
    """Logistic distribution with location ``loc`` and scale ``scale``."""

    _params = ("loc", "scale")
    _rules = (v.finite("loc"), v.positive("scale"))

    def __init__(self, loc, scale, *, validate_args: bool | None = VALIDATE_ARGS):
        loc, scale = _broadcast_params("Logistic", loc=loc, scale=scale)
        self._init(validate_args, self._rules, loc=loc, scale=scale)

    def _sample(self, key, shape):
        loc, scale = _to(shape, self.loc, self.scale)
        return loc + scale * jax.random.logistic(key, shape, self.loc.dtype)

    def log_prob(self, x):
        """log p(x); −inf at x = ±inf (it was NaN at −inf), with zero derivatives there."""
        x = jnp.asarray(x)
        outside = jnp.isinf(x)
        return _off_support(outside, self._log_prob_of_draws(_safe(x, outside, 0.0)))

    def _log_prob_of_draws(self, x):
        x, loc, scale, log_scale = _at_rank(x, self.loc, self.scale, jnp.log(self.scale))
        z = (x - loc) / scale
        return -z - 2.0 * jax.nn.softplus(-z) - log_scale

    def mean(self):
        """E[x] = loc."""
        return self.loc

    def variance(self):
        """Var[x] = π² scale²/3."""
        return jnp.square(self.scale * math.pi) / 3.0

    def stddev(self):
        """π scale/√3."""
        return (math.pi / math.sqrt(3.0)) * self.scale

    def mode(self):
        """loc."""
        return self.loc

    def entropy(self):
        """H = log scale + 2."""
        return jnp.log(self.scale) + 2.0


_ORDERED = v.Rule(
    ("low", "high"),
    lambda xp, low, high: xp.isfinite(low) & xp.isfinite(high) & (low < high),
    "low must be below high, both finite",
    "parameterize the width, e.g. high = low + jax.nn.softplus(raw_width)",
)


class Uniform(Distribution):
    """Uniform on [low, high]; reparameterized as low + (high - low) u.

    Draws that round up to ``high`` are moved to the float just below it, so every sample
    is inside [low, high); ``log_prob`` is −log(high − low) on the closed interval, as scipy. Its support moves with the parameters, so the score-function
    estimator would be biased for it (the boundary terms of ∂/∂θ ∫_low^high are missing):
    score-function estimators refuse it (``support_depends_on_params``); use
    ``pathwise_grad``.
    """

    _params = ("low", "high")
    _rules = (_ORDERED,)
    support_depends_on_params = True
    log_prob_smoothness = {"low": 0, "high": 0}  # the support's edges move: no score derivative

    def __init__(self, low, high, *, validate_args: bool | None = VALIDATE_ARGS):
        low, high = _broadcast_params("Uniform", low=low, high=high)
        self._init(validate_args, self._rules, low=low, high=high)

    def _sample(self, key, shape):
        low, high = _to(shape, self.low, self.high)
        return low + (high - low) * jax.random.uniform(key, shape, self.low.dtype)

    def _to_support(self, x):
        below_high = jnp.nextafter(_sg(self.high), jnp.full_like(self.high, -jnp.inf))
        return _clip(x, _to(x.shape, self.low), _to(x.shape, below_high))

    def log_prob(self, x):
        """−log(high − low) on the closed interval [low, high] (as scipy; draws never reach
        high), −inf outside it, NaN at NaN."""
        x, low, high, log_width = _at_rank(x, self.low, self.high, jnp.log(self.high - self.low))
        outside = (x < low) | (x > high)
        return _off_support(outside, jnp.where(jnp.isnan(x), jnp.nan, -log_width))

    def mean(self):
        """E[x] = (low + high)/2."""
        return 0.5 * (self.low + self.high)

    def variance(self):
        """Var[x] = (high − low)²/12."""
        return jnp.square(self.high - self.low) / 12.0

    def stddev(self):
        """(high − low)/√12."""
        return (self.high - self.low) / math.sqrt(12.0)

    def mode(self):
        """Not unique: every point of [low, high] is one; ``NotImplementedError``."""
        raise NotImplementedError("Uniform has no single mode: every point of [low, high] is one. Use mean() for one.")

    def entropy(self):
        """H = log(high − low)."""
        return jnp.log(self.high - self.low)


class Exponential(Distribution):
    """Exponential distribution with rate ``rate`` (mean 1/rate)."""

    _params = ("rate",)
    _rules = (v.positive("rate"),)

    def __init__(self, rate, *, validate_args: bool | None = VALIDATE_ARGS):
        (rate,) = _broadcast_params("Exponential", rate=rate)
        self._init(validate_args, self._rules, rate=rate)

    def _sample(self, key, shape):
        return jax.random.exponential(key, shape, self.rate.dtype) / _to(shape, self.rate)

    def _to_support(self, x):
        return _clip(x, 0.0, float(jnp.finfo(x.dtype).max), may_overflow=True)  # a tiny rate overflows

    def log_prob(self, x):
        """log p(x); −inf for x < 0 and x = +inf, with zero derivatives there."""
        x = jnp.asarray(x)
        outside = (x < 0) | (x == jnp.inf)
        return _off_support(outside, self._log_prob_of_draws(_safe(x, outside, 0.0)))

    def _log_prob_of_draws(self, x):
        x, rate, log_rate = _at_rank(x, self.rate, jnp.log(self.rate))
        return log_rate - rate * x

    def mean(self):
        """E[x] = 1/rate."""
        return 1.0 / self.rate

    def variance(self):
        """Var[x] = 1/rate²."""
        return 1.0 / jnp.square(self.rate)

    def stddev(self):
        """1/rate."""
        return 1.0 / self.rate

    def mode(self):
        """0."""
        return jnp.zeros_like(self.rate)

    def entropy(self):
        """H = 1 − log rate."""
        return 1.0 - jnp.log(self.rate)
