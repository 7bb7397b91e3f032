"""Helpers shared by the discrete estimators: reading the logits of a Bernoulli or
Categorical, uniform/logistic/Gumbel noise, and pulling a per-logit gradient back to
the user's params.

Every unbiased discrete estimator here computes an estimate ĝ of ∂E[f]/∂logits and
returns the surrogate ``value + Σ ⟨⊥ĝ, logits − ⊥logits⟩`` (⊥ = stop-gradient), so
``jax.grad`` pulls ĝ back through ``params -> dist(params).logits`` with one
vector-Jacobian product, whatever that map is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _core
from . import _distributions as _d

_sg = jax.lax.stop_gradient


def _is(d, cls, name: str) -> bool:
    return isinstance(d, cls) or (hasattr(d, "logits") and name in type(d).__name__.lower())


def bernoulli_logits(d, estimator: str):
    """The logits of a factorized Bernoulli ``d``; a ``TypeError`` naming the fix otherwise."""
    if _is(d, _d.Bernoulli, "bernoulli"):
        logits = jnp.asarray(d.logits)
        if not jnp.issubdtype(logits.dtype, jnp.floating):
            raise TypeError(f"{estimator}: Bernoulli logits must be floating point, got {logits.dtype}.")
        return logits
    raise TypeError(
        f"{estimator} is defined for factorized Bernoulli variables: dist(params) must return "
        f"repgrad.Bernoulli(logits=...) (or probs=...), got {type(d).__name__}. For Categorical variables use repgrad.gumbel_softmax_grad, "
        "repgrad.rebar_grad or repgrad.relax_grad; for any distribution repgrad.score_grad."
    )


def categorical_logits(d, estimator: str):
    """The (normalized) logits of a Categorical ``d``, categories on the last axis."""
    if _is(d, _d.Categorical, "categorical"):
        return jnp.asarray(d.logits)
    raise TypeError(
        f"{estimator}: expected repgrad.Categorical(logits=...) from dist(params), got "
        f"{type(d).__name__}."
    )


def kind_of(d, estimator: str) -> str:
    """``"bernoulli"`` or ``"categorical"``; a ``TypeError`` naming the fix otherwise."""
    if _is(d, _d.Bernoulli, "bernoulli"):
        return "bernoulli"
    if _is(d, _d.Categorical, "categorical"):
        return "categorical"
    raise TypeError(
        f"{estimator} needs dist(params) to return repgrad.Bernoulli(logits=...) or "
        f"repgrad.Categorical(logits=...), got {type(d).__name__}. For other distributions "
        "use repgrad.score_grad or repgrad.pathwise_grad."
    )


def uniform(key, shape, dtype):
    """U(0, 1) noise in [tiny, 1): safe inside log and log1p(−u)."""
    return jax.random.uniform(key, shape, dtype, minval=jnp.finfo(dtype).tiny, maxval=1.0)


def logistic(u):
    """Logistic(0, 1) noise from uniform noise: log u − log(1 − u)."""
    return jnp.log(u) - jnp.log1p(-u)


def gumbel(u):
    """Gumbel(0, 1) noise from uniform noise: −log(−log u)."""
    return -jnp.log(-jnp.log(u))


def per_sample(w, like):
    """Reshapes a (N,) array to (N, 1, ..., 1) so it broadcasts against ``like`` (N, ...)."""
    return jnp.reshape(w, w.shape + (1,) * (like.ndim - 1)).astype(like.dtype)


def bernoulli_log_prob(b, logits):
    """Σ over the event of log Bern(b; σ(logits)), per sample: (N, *S) -> (N,)."""
    lp = -jax.nn.softplus(-logits) * b - jax.nn.softplus(logits) * (1.0 - b)
    return jnp.sum(jnp.reshape(lp, (lp.shape[0], -1)), axis=1)


def check_temperature(temperature, name: str = "temperature"):
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        if not temperature > 0:
            raise ValueError(f"{name} must be > 0, got {temperature}; e.g. {name}=0.5.")
    return temperature


def pullback(value, logits, g):
    """``value`` plus a zero whose gradient w.r.t. ``logits`` is ``g`` (one vjp to params)."""
    return value + _core.zero_with_grad([(logits, g)], value.dtype)
