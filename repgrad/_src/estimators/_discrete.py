"""What the discrete estimators share: reading a Bernoulli's or Categorical's logits,
uniform/logistic/Gumbel noise, and broadcasting per-sample weights.

Every unbiased discrete estimator here computes an estimate ĝ of ∂E[f]/∂logits and pulls it
back onto the logits with ``kernels.pullback``, so ``jax.grad`` carries ĝ to the user's
params through ``params -> dist(params).logits`` with one vector-Jacobian product.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import distributions as _d


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
        f"repgrad.Bernoulli(logits=...) (or probs=...), got {type(d).__name__}. For Categorical "
        "variables use repgrad.gumbel_softmax_grad, repgrad.rebar_grad or repgrad.relax_grad; for any "
        "distribution repgrad.score_grad."
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


def antithetic_pair(theta, u):
    """DisARM's pair b = 1[u < σ(θ)], b̃ = 1[1 − u < σ(θ)]: both Bern(σ(θ)), antithetic."""
    p = jax.nn.sigmoid(jnp.broadcast_to(theta, u.shape))
    return (u < p).astype(theta.dtype), (1.0 - u < p).astype(theta.dtype)


def disarm_coefficient(theta, b, b_tilde):
    """(−1)^{b̃} 1[b ≠ b̃] σ(|θ|), elementwise: DisARM's weight on ½(f(b) − f(b̃))."""
    sign = jnp.where(b_tilde > 0.5, -1.0, 1.0).astype(theta.dtype)
    return jnp.where(b != b_tilde, sign, 0.0) * jax.nn.sigmoid(jnp.abs(jnp.broadcast_to(theta, b.shape)))


def bernoulli_score(b, theta):
    """∂/∂θ log Bern(b; σ(θ)) = b − σ(θ), written σ(−θ) where b = 1: 1 − σ(θ) rounds to 0 (or
    to twice its value) at the clipped logits of probs = 1, and a pull-back onto ``probs``
    divides by σ(θ)σ(−θ) exactly, so that rounding became a gradient of 0 or 2× the truth."""
    theta = jnp.broadcast_to(theta, b.shape)
    return jnp.where(b > 0, jax.nn.sigmoid(-theta), -jax.nn.sigmoid(theta))


def bernoulli_variance(theta):
    """σ(θ)(1 − σ(θ)) = σ(θ)σ(−θ), accurate at both edges (see ``bernoulli_score``)."""
    return jax.nn.sigmoid(theta) * jax.nn.sigmoid(-theta)


def estimate_and_variance_grad(estimate, psi):
    """ĝ = ``estimate(ψ)`` and ∇ψ Σ ĝ²: the learned control's training signal. ĝ is unbiased
    for every ψ, so ∇ψ E[Σ ĝ²] is the gradient of its variance (RELAX, double CV, RODEO)."""

    def variance_objective(q):
        g = estimate(q)
        return jnp.sum(g * g), g

    (_, g), psi_grad = jax.value_and_grad(variance_objective, has_aux=True)(psi)
    return g, psi_grad


def check_temperature(temperature, name: str = "temperature"):
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        if not temperature > 0:
            raise ValueError(f"{name} must be > 0, got {temperature}; e.g. {name}=0.5.")
    return temperature
