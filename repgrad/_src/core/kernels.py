r"""The few surrogate kernels every estimator is assembled from.

A *surrogate* is a scalar whose value is the Monte Carlo estimate of E[f] and whose
derivatives are the estimator's. Three kinds of term build every estimator in repgrad:

- nothing extra (pathwise): f̄ itself, differentiated through the samples;
- the score term, with the DiCE magic box ⊡(τ) = exp(τ − ⊥τ) (⊥ = stop-gradient):
  ``score_term(w, log_p)`` = (1/N) Σ_n w_n (⊡(log p_n) − 1). Its value is exactly 0 and
  its k-th derivative is (1/N) Σ_n w_n ∇^k p_n / p_n, an unbiased estimate of ∇^k E[w] at
  every order k when w does not depend on the parameters of p (Foerster et al., 2018);
- an explicit gradient g pulled back onto the leaves θ it estimates the gradient for:
  ``pullback(θ, g)`` has value 0 and first derivative Σ ⟨g, dθ⟩. Estimators written this way
  (measure-valued, ARM, REBAR, ...) are first-order estimators: differentiating the
  pull-back a second time raises :class:`DerivativeOrderError` at trace time, naming the
  estimators that support higher orders — never a silent zero.

``with_value(t, v)`` has the value of v and the derivatives of t, at every order; pathwise
estimators guard against gradients that are structurally zero (``require_path_derivative``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_sg = jax.lax.stop_gradient

EVERY_ORDER = (
    "pathwise",
    "score (no, leave-one-out or moving-average baseline; numeric control variates)",
    "enumeration",
)
# What to use instead, by estimator, where the generic advice does not fit.
ALTERNATIVES = {
    "elbo": "rg.elbo(..., estimator='pathwise')",
    "iwae_bound": "rg.iwae_bound(..., estimator='pathwise')",
}


class DerivativeOrderError(TypeError):
    """An estimator was differentiated past the derivative order it estimates without bias."""


def order_error(name: str) -> DerivativeOrderError:
    instead = next((alt for key, alt in ALTERNATIVES.items() if name.startswith(key)), None)
    instead = instead or "rg.expectation(f, dist, estimator='score', baseline='loo')"
    return DerivativeOrderError(
        f"{name} estimates first derivatives only, and this differentiates it a second time "
        "(jax.hessian, grad of grad, jvp of grad, or a derivative of a transform's output). Its "
        "higher derivatives would be silently wrong, so repgrad refuses. Estimators that are "
        f"unbiased at every order: {'; '.join(EVERY_ORDER)} — e.g. {instead}. To differentiate "
        "only a value, use rg.expectation, not a *_grad transform."
    )


# --------------------------------------------------------------------------- DiCE


@jax.custom_jvp
def magic_box(log_p):
    """⊡(log p) = exp(log p − ⊥log p): value 1, d⊡ = ⊡ · d log p, at every order (DiCE).

    Written with a custom JVP so the value is the constant 1 (no exp is computed) and first
    derivatives cost exactly what the classic (log p − ⊥log p) form costs.
    """
    return jnp.ones_like(log_p)


@magic_box.defjvp
def _magic_box_jvp(primals, tangents):
    (log_p,), (d_log_p,) = primals, tangents
    box = magic_box(log_p)
    return box, box * d_log_p


def score_term(weights, log_p):
    """(1/N) Σ_n w_n (⊡(log p_n) − 1): value 0; unbiased for ∇^k E[w] at every order k.

    ``weights`` (N,) may depend on f's own arguments (so mixed derivatives are right) but
    must not depend on the parameters of ``log_p`` except through a baseline independent of
    sample n. Returned in ``weights``' dtype.
    """
    w = weights.astype(log_p.dtype)
    return jnp.mean(w * (magic_box(log_p) - 1.0)).astype(weights.dtype)


# ------------------------------------------------------- first-order pull-back


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _first_order_guard(name, xs):
    return xs


@_first_order_guard.defjvp
def _first_order_guard_jvp(name, primals, tangents):
    raise order_error(name)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _pullback(name, thetas, cotangents, watched):
    return jnp.zeros((), jnp.result_type(*cotangents))


@_pullback.defjvp
def _pullback_jvp(name, primals, tangents):
    thetas, cotangents, watched = primals
    d_thetas = tangents[0]  # the value is identically 0: the other inputs' tangents do not enter
    # Inside this rule, the inputs carry a tangent only if an outer transform differentiates
    # them: a second derivative, which the guard refuses.
    thetas, cotangents, watched = _first_order_guard(name, (thetas, cotangents, watched))
    out = jnp.zeros((), jnp.result_type(*cotangents))
    for theta, g, dt in zip(thetas, cotangents, d_thetas, strict=True):
        out = out + jnp.sum(g.astype(theta.dtype) * dt).astype(out.dtype)
    return _pullback(name, thetas, cotangents, watched), out


def pullback(pairs, name: str, dtype=None, watch=()):
    """Σ ⟨g, θ − ⊥θ⟩ over ``(θ, g)`` pairs: value 0, gradient g w.r.t. θ, first order only.

    Each g is cast to its θ's dtype (gradients follow the parameters) and the total to
    ``dtype`` (f's value dtype), so it can be added to f's value. g is never differentiated;
    it, and any arrays in ``watch``, may depend on f's own arguments: differentiating them
    once more (a mixed second derivative) is what the guard refuses.
    """
    pairs = [(jnp.asarray(t), jnp.asarray(g)) for t, g in pairs]
    thetas = tuple(t for t, _ in pairs)
    cotangents = tuple(g.astype(t.dtype) for t, g in pairs)
    total = _pullback(name, thetas, cotangents, tuple(jnp.asarray(w) for w in watch))
    return total.astype(dtype) if dtype is not None else total


def first_order(x, name: str):
    """``x`` unchanged, with its first derivative; differentiating it twice raises (at trace time)."""
    return _first_order_value(name, x)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _first_order_value(name, x):
    return x


@_first_order_value.defjvp
def _first_order_value_jvp(name, primals, tangents):
    (x,), (dx,) = primals, tangents
    x = _first_order_guard(name, x)  # x has a tangent here only under a second derivative
    return _first_order_value(name, x), dx


# ---------------------------------------------------------------- helpers


def with_value(t, v):
    """The value of ``v`` with the derivatives of ``t``, at every order: t − ⊥t + ⊥v."""
    return (t - _sg(t)).astype(jnp.result_type(v)) + _sg(v)


# ------------------------------------------------ structurally zero gradients


class ZeroGradientError(TypeError):
    """A pathwise gradient would be zero because nothing on the path carries a derivative."""


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _nonzero_probe(message, values, params):
    return values


def _nonzero_probe_jvp(message, primals, tangents):
    values, params = primals
    d_values, d_params = tangents
    symbolic = jax.custom_derivatives.SymbolicZero
    if isinstance(d_values, symbolic):
        if any(not isinstance(t, symbolic) for t in jax.tree_util.tree_leaves(d_params)):
            raise ZeroGradientError(message)  # params move, the values cannot: structurally zero
        d_values = jax.custom_derivatives.zero_from_primal(values)
    return _nonzero_probe(message, values, params), d_values


_nonzero_probe.defjvp(_nonzero_probe_jvp, symbolic_zeros=True)


def dist_params(d, params):
    """What the samples are differentiated through: ``d``'s array leaves when it is a pytree
    of them (repgrad, numpyro, distrax), else the user's ``params``."""
    leaves = [a for a in jax.tree_util.tree_leaves(d) if isinstance(a, jax.Array)]  # tracers included
    return leaves or params


def require_path_derivative(values, params, message: str):
    """``values`` unchanged; differentiating them w.r.t. ``params`` raises ``message`` at trace
    time when their derivative is *structurally* zero (f piecewise constant, a sampler that
    carries no gradient) — the pathwise estimator would otherwise return an exact 0.
    """
    floats = [p for p in jax.tree_util.tree_leaves(params) if jax.numpy.issubdtype(jax.numpy.result_type(p), jax.numpy.inexact)]
    return _nonzero_probe(message, values, tuple(floats))
