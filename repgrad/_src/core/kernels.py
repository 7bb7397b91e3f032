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
import numpy as np

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
def _first_order_guard(error, xs):
    return xs


@_first_order_guard.defjvp
def _first_order_guard_jvp(error, primals, tangents):
    raise error


def _is_zero(t) -> bool:
    return isinstance(t, jax.custom_derivatives.SymbolicZero)


def _moving(tangents) -> bool:
    """Whether any of these (symbolic-zero-aware) tangents is not structurally zero."""
    return any(not _is_zero(t) for t in jax.tree_util.tree_leaves(tangents, is_leaf=_is_zero))


def _instantiate(tangent, primal):
    return jax.custom_derivatives.zero_from_primal(primal) if _is_zero(tangent) else tangent


# The first-order kernels below see which of their inputs an enclosing derivative moves
# (symbolic zeros). A first-order estimator's gradient ĝ(θ, w) may depend on f's own
# arguments w. Differentiating the surrogate once more is then:
#   - in w only (a Hessian in f's arguments): exact, since the surrogate's value is the
#     plain Monte Carlo mean of f and ĝ's pull-back adds 0 in value and in w;
#   - in θ after θ, w after θ, or θ after w: a derivative of ĝ, which is refused.
# So the inputs θ are guarded whenever the kernel is differentiated, and ĝ (and the arrays
# it is built from, ``watch``) only when this derivative moves θ.


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _pullback(error, thetas, cotangents, watched):
    return jnp.zeros((), jnp.result_type(*cotangents))


def _pullback_jvp(error, primals, tangents):
    thetas, cotangents, watched = primals
    d_thetas = tangents[0]  # the value is identically 0: the other inputs' tangents do not enter
    # Inside this rule, an input carries a tangent only if an outer transform differentiates
    # it: a second derivative, which the guard refuses (see above for which inputs).
    thetas = _first_order_guard(error, thetas)
    out = jnp.zeros((), jnp.result_type(*cotangents))
    if _moving(d_thetas):
        cotangents, watched = _first_order_guard(error, (cotangents, watched))
        for theta, g, dt in zip(thetas, cotangents, d_thetas, strict=True):
            out = out + jnp.sum(g.astype(theta.dtype) * _instantiate(dt, theta)).astype(out.dtype)
    return _pullback(error, thetas, cotangents, watched), out


_pullback.defjvp(_pullback_jvp, symbolic_zeros=True)


def pullback(pairs, name: str, dtype=None, watch=(), error: Exception | None = None):
    """Σ ⟨g, θ − ⊥θ⟩ over ``(θ, g)`` pairs: value 0, gradient g w.r.t. θ, first order only.

    Each g is cast to its θ's dtype (gradients follow the parameters) and the total to
    ``dtype`` (f's value dtype), so it can be added to f's value. g is never differentiated;
    it, and any arrays in ``watch``, may depend on f's own arguments: a Hessian in those
    arguments alone is exact (the pull-back adds nothing there), while any second derivative
    that moves θ — θ twice, or θ and f's arguments — raises ``error`` (by default the
    :class:`DerivativeOrderError` naming the estimators that support it).
    """
    pairs = [(jnp.asarray(t), jnp.asarray(g)) for t, g in pairs]
    thetas = tuple(t for t, _ in pairs)
    cotangents = tuple(g.astype(t.dtype) for t, g in pairs)
    total = _pullback(error or order_error(name), thetas, cotangents, tuple(jnp.asarray(w) for w in watch))
    return total.astype(dtype) if dtype is not None else total


def first_order_in(theta, error: Exception):
    """A zero scalar that raises ``error`` when ``theta`` is differentiated twice (a first
    derivative in θ passes, as does any derivative in anything else).

    Added to a surrogate (or a log-density), it limits the derivative order in one input:
    e.g. a Laplace's ``loc``, whose log-density has a kink that DiCE's second derivative
    cannot see.
    """
    theta = jnp.asarray(theta)
    return _pullback(error, (theta,), (jnp.zeros_like(theta),), ())


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _constant_in(error, xs):
    return jnp.zeros(())


def _constant_in_jvp(error, primals, tangents):
    if _moving(tangents[0]):
        raise error
    return _constant_in(error, *primals), jnp.zeros(())


_constant_in.defjvp(_constant_in_jvp, symbolic_zeros=True)


def constant_in(xs, error: Exception):
    """A zero scalar that raises ``error`` when any of ``xs`` is differentiated at all: e.g. the
    bounds of a support, which a score-function estimator must not see move."""
    return _constant_in(error, _inexact_leaves(xs))


def first_order(x, name: str, watch=()):
    """``x`` unchanged, with its first derivative; differentiating it twice raises (at trace time).

    ``watch``: arrays (f's own arguments) that the estimate built from ``x`` also depends on;
    a second derivative that moves them together with ``x`` is refused too, one that moves
    only them is not (as for :func:`pullback`).
    """
    return _first_order_value(order_error(name), x, _inexact_leaves(watch))


def first_order_value(x, error: Exception):
    """``x`` unchanged, with its first derivative; differentiating it twice raises ``error``."""
    return _first_order_value(error, x, ())


def _inexact_leaves(tree):
    """The floating-point array leaves of ``tree`` (f's arguments may hold anything else too)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return tuple(jnp.asarray(a) for a in leaves if _is_array(a) and jnp.issubdtype(jnp.result_type(a), jnp.inexact))


def _is_array(a) -> bool:
    return isinstance(a, (jax.Array, np.ndarray, np.generic, float, complex)) and not isinstance(a, bool)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _first_order_value(error, x, watched):
    return x


def _first_order_value_jvp(error, primals, tangents):
    (x, watched), (dx, _) = primals, tangents
    x = _first_order_guard(error, x)  # x has a tangent here only under a second derivative
    if _moving(dx):
        watched = _first_order_guard(error, watched)
    return _first_order_value(error, x, watched), _instantiate(dx, x)


_first_order_value.defjvp(_first_order_value_jvp, symbolic_zeros=True)


# ---------------------------------------------------------------- helpers


def with_value(t, v):
    """The value of ``v`` with the derivatives of ``t``, at every order: t − ⊥t + ⊥v."""
    return (t - _sg(t)).astype(jnp.result_type(v)) + _sg(v)


# ------------------------------------------------ structurally zero gradients


class ZeroGradientError(TypeError):
    """A pathwise gradient would be zero because nothing on the path carries a derivative."""


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _path_probe(message, refused, values, samples, params):
    return values


def _path_probe_jvp(message, refused, primals, tangents):
    values, samples, params = primals
    d_values, d_samples, d_params = tangents
    structural = samples is not None and (not _moving(d_samples) or not _moving(d_values))
    if _moving(d_params) and (refused or structural):
        raise ZeroGradientError(message)
    return _path_probe(message, refused, values, samples, params), _instantiate(d_values, values)


_path_probe.defjvp(_path_probe_jvp, symbolic_zeros=True)


def dist_params(d, params):
    """What the samples are differentiated through: ``d``'s array leaves when it is a pytree
    of them (repgrad, numpyro, distrax), else the user's ``params``."""
    try:
        leaves = [a for a in jax.tree_util.tree_leaves(d) if isinstance(a, jax.Array)]  # tracers included
    except Exception:  # not a pytree of arrays (e.g. TFP's JointDistributionNamed of callables)
        leaves = []
    return leaves or params


def require_path_derivative(values, samples, params, message: str, *, refused: bool = False, structural: bool = True):
    """``values`` unchanged; differentiating them in ``params`` raises ``ZeroGradientError(message)``
    at trace time when the pathwise gradient cannot be right:

    - ``refused``: the caller's reading of f (``dependence.dependence``) found it constant,
      piecewise constant or with a jump in the samples;
    - the ``samples`` carry no derivative (a sampler without one);
    - JAX's structural zeros show the values do not move (when nothing else does).

    ``structural=False`` checks ``refused`` only (no samples at hand; a graph whose value may
    rightly not move). Only a derivative that moves ``params`` raises: differentiating in f's own arguments alone
    (``jax.grad(loss, argnums=2)``) is exact whatever f is.
    """
    floats = lambda tree: tuple(
        p for p in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(jnp.result_type(p), jnp.inexact)
    )
    samples = floats(samples) if structural else None
    return _path_probe(message, bool(refused), values, samples, floats(params))
