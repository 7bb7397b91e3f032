r"""Per-coordinate optimal baselines and control-variate coefficients for the score function.

Both use the elementwise scores s_{n,j} = ∂ log p_θ(x_n)/∂θ_j of a factorized family, one
per coordinate j of the distribution's leaves (memory N × |leaf|, not a Jacobian w.r.t.
the user's params), and return per-leaf gradient estimates to be pulled back onto the
leaves. Leave-one-out estimates keep them unbiased (first derivatives).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import distributions as _d
from ..core import kernels, protocol
from ..core.estimator import Estimator, Out
from . import control_variates

_sg = jax.lax.stop_gradient


def elementwise_scores(d, x):
    """Per-sample scores w.r.t. each leaf of a factorized repgrad family: list of (N, *leaf.shape).

    Each score has mean zero under d, which per-coordinate baselines and coefficients need
    for unbiasedness.
    """
    if not isinstance(d, _d.Distribution) or isinstance(d, _d.MultivariateNormalTri):
        raise TypeError(
            f"baseline='optimal' needs per-sample scores that are elementwise in the distribution's "
            f"parameters, which repgrad's factorized families provide; {type(d).__name__} does not. "
            "Use baseline='loo' or a repgrad family (e.g. repgrad.Normal, repgrad.Bernoulli)."
        )
    protocol.check_fixed_support(d)
    leaves, treedef = jax.tree_util.tree_flatten(d)

    def log_prob(leaves, xi):
        if isinstance(d, _d.Categorical):
            # The leaf is normalized and log_prob reads it without renormalizing, so its raw
            # scores 1{x = k} are not mean-zero; differentiate through log_softmax instead
            # (scores 1{x = k} − p_k), the leaf's actual tangent space.
            return jnp.sum(_d.Categorical(logits=leaves[0], validate_args=False).log_prob(xi))
        return jnp.sum(jax.tree_util.tree_unflatten(treedef, leaves).log_prob(xi))

    return jax.vmap(jax.grad(log_prob), in_axes=(None, 0))(leaves, x)


def _expand(r, s):
    """(N,) residuals broadcast against (N, *leaf) scores."""
    return jnp.broadcast_to(r.reshape(r.shape + (1,) * (s.ndim - 1)).astype(s.dtype), s.shape)


def _ratio(num, den, dtype):
    ok = den > jnp.finfo(dtype).tiny
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def baseline_grads(estimate, r, s_list, fresh=None):
    """ĝ_j = mean_n (r_n − b_{n,j}) s_{n,j}, b_j = E[r s_j²]/E[s_j²], for every leaf coordinate j."""
    grads = []
    for j, s in enumerate(s_list):
        rs = _expand(r, s)
        s2 = s * s
        if estimate == "fresh":
            assert fresh is not None  # the caller draws the fresh samples for this estimate
            r_f, s_f = fresh[0], fresh[1][j]
            num = jnp.sum(_expand(r_f, s_f) * s_f * s_f, 0, keepdims=True)
            den = jnp.sum(s_f * s_f, 0, keepdims=True)
        else:
            num, den = jnp.sum(rs * s2, 0, keepdims=True), jnp.sum(s2, 0, keepdims=True)
        num, den = jnp.broadcast_to(num, s.shape), jnp.broadcast_to(den, s.shape)
        if estimate == "loo":
            num, den = num - rs * s2, den - s2  # leave sample n out: b_{n,j} independent of x_n
        b = _ratio(num, den, s.dtype)
        grads.append(jnp.mean((rs - b) * s, axis=0))
    return grads


def coefficient_grads(s_list, weights, hx, d_expected):
    r"""ĝ_j = mean_n (a_nj − c_nj v_nj), a = w s_j, v = h s_j − ∂_j E[h], c by leave-one-out.

    v has mean zero (h does not depend on θ), so c_j* = E[a v]/E[v²]; c_nj leaves sample n
    out, so it is independent of (a_nj, v_nj) and the estimator stays unbiased.
    """
    grads = []
    for s, dh in zip(s_list, d_expected, strict=True):
        a = _expand(weights, s) * s
        v = _expand(hx, s) * s - jnp.broadcast_to(dh.astype(s.dtype), s.shape)
        num = jnp.broadcast_to(jnp.sum(a * v, 0, keepdims=True), s.shape) - a * v
        den = jnp.broadcast_to(jnp.sum(v * v, 0, keepdims=True), s.shape) - v * v
        c = _ratio(num, den, s.dtype)
        grads.append(jnp.mean(a - c * v, axis=0))
    return grads


def coefficient_estimator(base, cv) -> Estimator:
    """Score function with a control variate whose coefficient is estimated per leaf coordinate."""
    if cv.coefficient != "optimal":
        raise ValueError(f"coefficient must be a number or 'optimal', got {cv.coefficient!r}.")
    if not hasattr(base, "apply"):
        raise TypeError(
            "coefficient='optimal' estimates its own per-coordinate coefficient; combine it with "
            "baseline=None, 'loo' or 'moving_average', not baseline='optimal'."
        )
    name = ("score" if base.name == "none" else f"score ({base.name} baseline)") + f"+{cv.name}(optimal coefficient)"

    def surrogate(problem, d, key, state, control):
        x = _sg(problem.shard(protocol.draw(d, key, problem.num_samples)))
        values, aux = problem.evaluate(x)
        b, new_state = base.apply(_sg(values), state)
        d_sg = jax.tree_util.tree_map(_sg, d)
        leaves, treedef = jax.tree_util.tree_flatten(d_sg)
        h, _ = control_variates.build(cv, problem, d_sg)
        hx = _sg(jax.vmap(h)(x))
        expected = lambda lv: jnp.asarray(control_variates.build(cv, problem, treedef.unflatten(lv))[1])
        grads = coefficient_grads(elementwise_scores(d_sg, x), values - b, hx, jax.grad(expected)(leaves))
        value = jnp.mean(values)
        term = kernels.pullback(zip(jax.tree_util.tree_leaves(d), grads, strict=True), name, value.dtype)
        return Out(value + term, value, aux, new_state)

    return Estimator(
        name, surrogate, init=base.init or (lambda: ()), stateful=base.init is not None,
        min_samples=max(2, base.min_samples), max_order=1,
    )


def per_sample_coefficient_estimator(estimator: Estimator, cv) -> Estimator:
    r"""``estimator`` with a control variate whose coefficient is estimated per leaf coordinate.

    The estimator runs on N single-sample problems (keys split from the call's key), giving
    per-sample estimates a_n of ∂E[f]/∂θ and, on the same samples, u_n of ∂E[h]/∂θ w.r.t. the
    distribution's leaves θ (memory N × |leaves|, no Jacobians w.r.t. the user's params). With
    v_n = u_n − ∂E[h]/∂θ (mean zero), c_j = Σ_{m≠n} a_mj v_mj / Σ_{m≠n} v_mj² leaves sample n
    out, so ĝ_j = (1/N) Σ_n (a_nj − c_nj v_nj) is unbiased. First derivatives only.
    """
    if cv.coefficient != "optimal":
        raise ValueError(f"coefficient must be a number or 'optimal', got {cv.coefficient!r}.")
    if estimator.stateful or estimator.control_init is not None or estimator.log_weight:
        raise TypeError(
            f"coefficient='optimal' runs the {estimator.name} estimator one sample at a time, which "
            "needs a stateless estimator of E[f]; give it a numeric coefficient instead."
        )
    name = f"{estimator.name}+{cv.name}(optimal coefficient)"

    def surrogate(problem, d, key, state, control):
        leaves, treedef = jax.tree_util.tree_flatten(d)
        sg_leaves = [_sg(leaf) for leaf in leaves]
        h, _ = control_variates.build(cv, problem, treedef.unflatten(sg_leaves))
        expected = lambda lv: jnp.asarray(control_variates.build(cv, problem, treedef.unflatten(lv))[1])
        d_expected = jax.grad(expected)(sg_leaves)
        single = problem._replace(num_samples=1, sample_sharding=None)

        def leaf_grads(prob, k):
            def loss(lv):
                out = estimator.surrogate(prob, treedef.unflatten(lv), k, (), None)
                return out.loss, out
            return jax.grad(loss, has_aux=True)(sg_leaves)

        def per_sample(k):
            g_f, out = leaf_grads(single, k)
            g_h, _ = leaf_grads(single.replace_f(lambda x, *a: jnp.asarray(h(x)), has_aux=False), k)
            return g_f, g_h, out.value, out.aux

        g_f, g_h, values, aux = jax.vmap(per_sample)(jax.random.split(key, problem.num_samples))
        grads = []
        for a, u, dh in zip(g_f, g_h, d_expected, strict=True):
            v = u - jnp.reshape(dh, (1,) + dh.shape).astype(u.dtype)
            num = jnp.sum(a * v, 0, keepdims=True) - a * v
            den = jnp.sum(v * v, 0, keepdims=True) - v * v
            grads.append(jnp.mean(a - _ratio(num, den, a.dtype) * v, axis=0))
        value = jnp.mean(values)
        if aux is not None:  # (N, evaluations per sample, ...) -> one axis of evaluations
            aux = jax.tree_util.tree_map(lambda t: jnp.reshape(t, (-1,) + t.shape[2:]), aux)
        term = kernels.pullback(zip(leaves, grads, strict=True), name, value.dtype, watch=(values,))
        return Out(value + term, value, aux)

    return estimator._replace(name=name, surrogate=surrogate, min_samples=max(2, estimator.min_samples), max_order=1)
