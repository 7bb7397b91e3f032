"""The derivative operators of the matrix, each applied alike to the Monte Carlo objective and
to the exact float64 expectation.

An operator maps a scalar objective ``L(θ, w)`` (θ the flat distribution parameters, w an
argument of f's own) to a pytree; the transforms ``rg.grad``/``rg.value_and_grad`` have their
own entries, whose exact counterparts are the plain derivatives. ``ORDER`` classifies each
operator by what it differentiates: ``"value"``, ``"first"`` (θ, or θ and w together),
``"ww"`` (w only, well defined for every estimator), ``"tw"`` (mixed θ–w), ``"tt"`` (θ twice)
and ``"ttt"`` (θ three times).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

TANGENT_W = 0.7


def _tangent(theta):
    n = theta.shape[0]
    return jnp.asarray(np.where(np.arange(n) % 2 == 0, 1.0, -0.5), theta.dtype)


def _scalar0(L, theta):
    """L as a function of θ_0 alone."""
    return lambda t0, w: L(theta.at[0].set(t0), w)


PURE = {
    "value": lambda L, t, w: L(t, w),
    "grad": lambda L, t, w: jax.grad(L)(t, w),
    "grad_joint": lambda L, t, w: jax.grad(L, argnums=(0, 1))(t, w),
    "jacrev_joint": lambda L, t, w: jax.jacrev(L, argnums=(0, 1))(t, w),
    "jvp_joint": lambda L, t, w: jax.jvp(L, (t, w), (_tangent(t), jnp.asarray(TANGENT_W, w.dtype)))[1],
    "hess": lambda L, t, w: jax.hessian(L)(t, w),
    "jacfwd_jacrev": lambda L, t, w: jax.jacfwd(jax.jacrev(L))(t, w),
    "grad_grad": lambda L, t, w: jax.grad(jax.grad(_scalar0(L, t)))(t[0], w),
    "hess_joint": lambda L, t, w: jax.hessian(L, argnums=(0, 1))(t, w),
    "jacrev_grad_w": lambda L, t, w: jax.jacrev(jax.grad(L, argnums=1))(t, w),
    "hess_args": lambda L, t, w: jax.hessian(L, argnums=1)(t, w),
    "third": lambda L, t, w: jax.jacfwd(jax.jacfwd(jax.jacrev(L)))(t, w),
}

# Operators on the transforms: (the transform's use, the pure operator giving the exact value).
TRANSFORM = {
    "rg_grad": ("grad", lambda G, VG, t, w: G(t, w)),
    "rg_value_and_grad": (None, lambda G, VG, t, w: VG(t, w)),
    "hess_rg_grad": ("hess", lambda G, VG, t, w: jax.jacfwd(G)(t, w)),
}

ORDER = {
    "value": "value",
    "grad": "first",
    "rg_grad": "first",
    "rg_value_and_grad": "first",
    "grad_joint": "first",
    "jacrev_joint": "first",
    "jvp_joint": "first",
    "hess_args": "ww",
    "jacrev_grad_w": "tw",
    "hess": "tt",
    "jacfwd_jacrev": "tt",
    "grad_grad": "tt",
    "hess_rg_grad": "tt",
    "hess_joint": "tt",
    "third": "ttt",
}

FULL = tuple(k for k in ORDER if k != "third")
CORE = ("value", "grad", "grad_joint", "jvp_joint", "hess_joint", "jacrev_grad_w", "hess_args")
INT_OPS = ("value", "grad", "hess")


def exact(op, E, theta, w):
    """The exact value of ``op`` from the float64 expectation ``E(θ, w)``."""
    if op == "rg_value_and_grad":
        return (E(theta, w), jax.grad(E)(theta, w))
    if op in TRANSFORM:
        return PURE[TRANSFORM[op][0]](E, theta, w)
    return PURE[op](E, theta, w)


def estimate(op, L, G, VG, theta, w):
    """``op`` of the Monte Carlo objective ``L(θ, w)`` (transforms ``G``, ``VG`` for rg_*)."""
    if op in TRANSFORM:
        return TRANSFORM[op][1](G, VG, theta, w)
    return PURE[op](L, theta, w)


def nan_mask(op, edge, n):
    """Entries of ``op``'s output that differentiate twice, at least once in an edge index of θ
    (Bernoulli probs 0 or 1: documented NaN there)."""
    if not edge or ORDER[op] not in ("tt", "tw"):
        return None
    rows = np.zeros(n, bool)
    rows[list(edge)] = True
    if op == "jacrev_grad_w":
        return rows
    if op == "grad_grad":
        return np.asarray(rows[0])
    mat = rows[:, None] | rows[None, :]
    if op == "hess_joint":  # ((θθ, θw), (wθ, ww))
        return ((mat, rows), (rows, np.asarray(False)))
    return mat
