"""Discrete families (not reparameterizable): Bernoulli, Categorical, Poisson."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from . import validation as v
from .base import (
    Distribution,
    _as_float,
    _as_value,
    _at_rank,
    _broadcast_params,
    _off_support,
    _safe,
    _to,
    _with_x,
)
from .saddle_point import poisson_log_prob
from .special import poisson_entropy
from .validation import VALIDATE_ARGS

__all__ = ["Bernoulli", "Categorical", "Poisson"]


def _logits_from(logits, probs, name):
    if (logits is None) == (probs is None):
        raise ValueError(f"{name} needs exactly one of logits= or probs=.")
    return logits, probs


_FINITE_LOGITS = v.Rule(
    ("logits",),
    lambda xp, x: xp.isfinite(x),
    "logits must be finite",
    "for a probability of exactly 0 or 1 pass probs= instead; otherwise look for a NaN or an "
    "overflow upstream",
)
_CATEGORY_LOGITS = v.Rule(
    ("logits",),
    lambda xp, x: ~xp.isnan(x) & (x < xp.inf),
    "logits must not be NaN or +inf (-inf masks a category)",
    "look for a NaN or an overflow upstream, or normalize with jax.nn.log_softmax",
)


@jax.custom_jvp
def _one_nan_beyond_first(x, edge):
    """1, whose derivative is NaN where ``edge`` (0 elsewhere): multiplies a first-order
    tangent so that differentiating it again yields NaN there."""
    return jnp.ones_like(x)


@_one_nan_beyond_first.defjvp
def _one_nan_beyond_first_jvp(primals, tangents):
    x, edge = primals
    return jnp.ones_like(x), jnp.where(edge, jnp.nan, 0.0).astype(x.dtype) * tangents[0]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _inside_probs(p, low, high):
    """``p`` moved into [low, high] in value, with derivative 1 (jnp.clip's 0 made the gradient
    at probs = 0 or 1 exactly 0). The floor tiny^(1/4) (3e-10 in float32) keeps the logit's
    derivative 1/p and σ'(logit) from underflowing, so first derivatives are right at the
    edge. Second derivatives there are not representable through float logits (terms of size
    1/p² cancel): where p was moved they are NaN, never a plausible number."""
    return jnp.clip(p, low, high)


@_inside_probs.defjvp
def _inside_probs_jvp(low, high, primals, tangents):
    (p,), (dp,) = primals, tangents
    edge = (p <= low) | (p >= high)
    return _inside_probs(p, low, high), dp * _one_nan_beyond_first(p, edge)


_SOME_PROBABILITY = v.Rule(
    ("probs",),
    lambda xp, p: xp.sum(p, axis=-1) > 0,
    "probs must have a positive entry along the last axis (all zeros normalize to NaN)",
    "give at least one category a positive probability",
)


class Bernoulli(Distribution):
    """Bernoulli(logits=...) or Bernoulli(probs=...); samples are floats 0./1.

    Not reparameterizable: use score-function, measure-valued or discrete estimators.
    ``probs`` of exactly 0 or 1 become finite logits (−22 and +16.6 in float32: probabilities
    3e-10 and 1 − 6e-8), so the log-density stays finite and first derivatives with respect to
    ``probs`` stay right there (``probs``, ``mean()`` and ``variance()`` keep their derivatives
    at those logits too). Second derivatives at exactly 0 or 1 cannot be carried by float
    logits: they are NaN there (differentiate twice at probs inside (0, 1), or use ``logits=``).
    At the edges, prefer ``measure_valued``, ``indecater`` or ``enumeration`` (they sum over
    both values of each variable): estimators that must *sample* the rare value (score, ARM,
    DisARM, REBAR/RELAX, double CV, RODEO, the unordered set and the sampled remainder of
    ``rao_blackwell``) stay unbiased there, but the gradient in that coordinate rides on an
    event of probability 3e-10 or 6e-8, so any affordable number of samples misses it.
    """

    _params = ("logits",)
    reparameterized = False

    def __init__(self, logits=None, probs=None, *, validate_args: bool | None = VALIDATE_ARGS):
        logits, probs = _logits_from(logits, probs, "Bernoulli")
        if logits is None:
            (probs,) = _as_float(probs)
            v.check("Bernoulli", validate_args, (v.unit_interval("probs", "logits="),), {"probs": probs})
            info = jnp.finfo(probs.dtype)
            probs = _inside_probs(probs, float(info.tiny) ** 0.25, 1.0 - float(info.epsneg))
            logits = jnp.log(probs) - jnp.log1p(-probs)
            rules = ()
        else:
            rules = (_FINITE_LOGITS,)
        (logits,) = _as_float(logits)
        self._init(validate_args, rules, logits=logits)

    @property
    def probs(self):
        # exp(log σ(ℓ)) rather than σ(ℓ): jax's derivative of σ, σ(1 − σ), rounds to 0 for ℓ ≳ 16.6
        # in float32 (probs = 1 after clipping), where log σ's, σ(−ℓ), stays exact.
        return jnp.exp(jax.nn.log_sigmoid(self.logits))

    def _sample(self, key, shape):
        u = jax.random.uniform(key, shape, self.logits.dtype)
        return (u < _to(shape, self.probs)).astype(self.logits.dtype)

    def log_prob(self, x):
        # Two softplus per sample (0.1.0's form). The hand-written x·l − softplus(l), softplus
        # at the parameter shape, compiles to less work (score_grad 1.17–1.29× faster,
        # benchmarks/RESULTS.md) but rounds differently in float32 (l − softplus(l) and
        # 1 − σ(l) cancel for l ≫ 0): the enumeration-vs-closed-form check of
        # tests/test_discrete_unbiased.py, whose gradient cancels ~2500-fold, then misses its
        # tolerance (relative error 2.8e-4 against 2.8e-5 with this form).
        x = _as_value(x, self.logits.dtype)
        outside = (x != 0) & (x != 1) & ~jnp.isnan(x)  # −inf off {0, 1}; NaN in, NaN out
        lp = self._log_prob_of_draws(_safe(x, outside, 0.0))
        return _off_support(jnp.broadcast_to(outside, lp.shape), lp)

    def _log_prob_of_draws(self, x):
        x, logits = _with_x(x, self.logits)
        return -jax.nn.softplus(-logits) * x - jax.nn.softplus(logits) * (1.0 - x)

    def mean(self):
        """E[x] = p = σ(logits)."""
        return self.probs

    def variance(self):
        """Var[x] = p(1 − p)."""
        return jnp.exp(jax.nn.log_sigmoid(self.logits) + jax.nn.log_sigmoid(-self.logits))  # p(1 − p), exact at the edges

    def mode(self):
        """1. where p > ½, else 0. (samples' dtype)."""
        return (self.logits > 0).astype(self.logits.dtype)

    def entropy(self):
        """H = −p log p − (1 − p) log(1 − p), from log p = log σ(ℓ) and log(1 − p) = log σ(−ℓ).

        No cancellation at the edges: at ℓ = ±30 it is 3·10⁻¹² (the form softplus(ℓ) − ℓσ(ℓ)
        gives 0 or rounding noise), and its derivative −ℓ p(1 − p) stays exact. ``probs`` of
        exactly 0 or 1 are stored as logits −22 and 16.6 (float32; see the class docstring):
        there the entropy is 7·10⁻⁹ and 1·10⁻⁶ instead of 0, and its derivative with respect to
        ``probs`` is that at those logits, finite where the exact one is ±∞.
        """
        log_p, log_q = jax.nn.log_sigmoid(self.logits), jax.nn.log_sigmoid(-self.logits)
        return -(jnp.exp(log_p) * log_p + jnp.exp(log_q) * log_q)


class Categorical(Distribution):
    """Categorical over the last axis of ``logits``/``probs``; samples are int32 indices.

    ``probs`` are normalized over the last axis; a logit of -inf (a probability of 0)
    masks its category exactly (it is never drawn). The derivative with respect to a
    probability that is exactly 0 does not exist in this parameterization (log 0): it is NaN;
    keep such probabilities positive (e.g. ``jax.nn.softmax``) when you differentiate them.
    """

    _params = ("logits",)
    reparameterized = False

    def __init__(self, logits=None, probs=None, *, validate_args: bool | None = VALIDATE_ARGS):
        logits, probs = _logits_from(logits, probs, "Categorical")
        if logits is None:
            (probs,) = _as_float(probs)
            rules = (v.unit_interval("probs", "logits="), _SOME_PROBABILITY)
            v.check("Categorical", validate_args, rules, {"probs": probs})
            logits = jnp.log(probs)
        (logits,) = _as_float(logits)
        if logits.ndim < 1:
            raise ValueError("Categorical needs logits with at least one axis (the categories).")
        self._init(validate_args, (_CATEGORY_LOGITS,) if probs is None else (), logits=jax.nn.log_softmax(logits, axis=-1))

    @property
    def batch_shape(self):
        return self.logits.shape[:-1]

    @property
    def event_shape(self):
        return ()

    @property
    def num_categories(self) -> int:
        return self.logits.shape[-1]

    @property
    def probs(self):
        return jnp.exp(self.logits)

    def _sample(self, key, shape):
        logits = jnp.broadcast_to(self.logits, shape + (self.num_categories,))
        return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)

    def log_prob(self, x):
        """log p(x); −inf outside {0, …, K − 1} (no wrap-around of −1 or K; a float x must be a
        whole number), NaN at NaN."""
        x = jnp.asarray(x)
        shape = jnp.broadcast_shapes(x.shape, self.batch_shape)
        logits = jnp.broadcast_to(self.logits, shape + (self.num_categories,))
        x = jnp.broadcast_to(x, shape)
        idx = jnp.clip(x, 0, self.num_categories - 1).astype(jnp.int32)
        outside = (x < 0) | (x > self.num_categories - 1)
        lp = jnp.take_along_axis(logits, idx[..., None], axis=-1)[..., 0]
        if jnp.issubdtype(x.dtype, jnp.floating):
            outside = outside | (jnp.floor(x) < x)
            lp = jnp.where(jnp.isnan(x), jnp.nan, lp)
        return _off_support(outside, lp)

    def _index_moment(self, power):
        """Σₖ kᵖ pₖ over the categories k = 0, …, K − 1."""
        k = jnp.arange(self.num_categories, dtype=self.logits.dtype)
        return jnp.sum(self.probs * jnp.reshape(k**power, (1,) * len(self.batch_shape) + k.shape), axis=-1)

    def mean(self):
        """E[x] = Σₖ k pₖ: the mean of the int32 index a sample is. (The mean of its one-hot
        encoding is ``probs``, which ``mean()`` returned before: see the CHANGELOG.)"""
        return self._index_moment(1)

    def variance(self):
        """Var[x] = Σₖ (k − E[x])² pₖ, of the index."""
        k = jnp.arange(self.num_categories, dtype=self.logits.dtype)
        k = jnp.reshape(k, (1,) * len(self.batch_shape) + k.shape)
        return jnp.sum(self.probs * jnp.square(k - self.mean()[..., None]), axis=-1)

    def mode(self):
        """argmax_k pₖ (int32; the first on ties)."""
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)

    def entropy(self):
        """H = −Σₖ pₖ log pₖ, with 0 log 0 = 0 for masked categories (logit −inf), whose
        derivatives are 0 (not NaN); exact at one-hot probabilities (H = 0)."""
        masked = jnp.isneginf(self.logits)
        log_p = jnp.where(masked, 0.0, self.logits)  # the double where: no 0·∞ in the gradient
        return -jnp.sum(jnp.exp(self.logits) * log_p, axis=-1)


class Poisson(Distribution):
    """Poisson(rate); samples are float counts. Score-function or measure-valued only."""

    _params = ("rate",)
    reparameterized = False
    _rules = (v.positive("rate"),)
    # Draws are int32 without jax_enable_x64: a rate near 2³¹ would be silently capped there.
    _int32_rate = v.Rule(
        ("rate",),
        lambda xp, r: r < 2.0**30,
        "rate must be below 2**30 without 64-bit mode (draws are int32)",
        "enable 64-bit mode (jax.config.update('jax_enable_x64', True))",
    )

    def __init__(self, rate, *, validate_args: bool | None = VALIDATE_ARGS):
        (rate,) = _broadcast_params("Poisson", rate=rate)
        rules = self._rules if jax.config.read("jax_enable_x64") else self._rules + (self._int32_rate,)
        self._init(validate_args, rules, rate=rate)

    def _sample(self, key, shape):
        return jax.random.poisson(key, _to(shape, self.rate), shape).astype(self.rate.dtype)

    def log_prob(self, x):
        """log p(x) in Loader's saddle-point form (``saddle_point.py``): accurate in float32 at
        large counts, where x log λ − λ − log Γ(x + 1) cancels (0.83 nats off at λ = x = 10⁶);
        −inf at negative or non-integer x and at +inf."""
        x = _as_value(x, self.rate.dtype)
        outside = (x < 0) | (jnp.floor(x) < x) | (x == jnp.inf)  # NaN: False (NaN out)
        return _off_support(outside, self._log_prob_of_draws(_safe(x, outside, 0.0)))

    def _log_prob_of_draws(self, x):
        return poisson_log_prob(*_at_rank(x, self.rate))

    def mean(self):
        """E[x] = rate."""
        return self.rate

    def variance(self):
        """Var[x] = rate."""
        return self.rate

    def stddev(self):
        """√rate."""
        return jnp.sqrt(self.rate)

    def mode(self):
        """⌊rate⌋ (at an integer rate, rate − 1 is a mode too)."""
        return jnp.floor(self.rate)

    def entropy(self):
        r"""H = −Σₖ pₖ log pₖ, pₖ = λᵏ e^{−λ}/k!, which has no closed form.

        Computed to the dtype's precision, not approximated: for λ ≤ 20 (float32; 50 in
        float64) the sum over k < 64 (128), whose tail is below 10⁻¹³ (10⁻¹⁸) of H, with
        log pₖ in Loader's saddle-point form (no cancellation); above, the asymptotic series
        ½ log(2πeλ) − 1/(12λ) − 1/(24λ²) − 19/(360λ³) − 9/(80λ⁴) − …, truncated where its
        error is 3·10⁻¹⁰ (7·10⁻¹⁷) relative. Differentiable to every order; the sum costs
        64 (128) log-densities per entry. See ``repgrad/_src/distributions/special.py``.
        """
        dtype = jnp.result_type(self.rate)
        return poisson_entropy(self._working().rate).astype(dtype)
