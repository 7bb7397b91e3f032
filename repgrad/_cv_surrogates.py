"""Score-function and pathwise surrogates with control variates and per-coordinate
optimal baselines (the options ``control_variate=`` and ``baseline="optimal"``).

The plain estimators in ``_score``/``_pathwise`` hand over to these builders when one of
those options is given; the formulas are documented on ``repgrad.control_variate``,
``repgrad.delta_method`` and ``repgrad.optimal_baseline``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _control_variates as _cv
from . import _core
from . import _distributions as _d

_sg = jax.lax.stop_gradient


def elementwise_scores(d, x):
    """Per-sample scores w.r.t. each leaf of a factorized repgrad family: list of (N, *leaf.shape).

    Memory N × |leaf| (|leaf| = |x| per sample, times K for Categorical): the leaves of
    repgrad's families are broadcast to the batch shape, so this is not a Jacobian w.r.t.
    the user's params. Each score has mean zero under d, which per-coordinate baselines
    and coefficients need for unbiasedness.
    """
    if not isinstance(d, _d.Distribution) or isinstance(d, _d.MultivariateNormalTri):
        raise TypeError(
            f"baseline='optimal' needs per-sample scores that are elementwise in the distribution's "
            f"parameters, which repgrad's factorized families provide; {type(d).__name__} does not. "
            "Use baseline='loo' or a repgrad family (e.g. repgrad.Normal, repgrad.Bernoulli)."
        )
    leaves, treedef = jax.tree_util.tree_flatten(d)

    def log_prob(leaves, xi):
        if isinstance(d, _d.Categorical):
            # The leaf is normalized and log_prob reads it without renormalizing, so its raw
            # scores 1{x = k} are not mean-zero; differentiate through log_softmax instead
            # (scores 1{x = k} − p_k), the leaf's actual tangent space.
            return jnp.sum(_d.Categorical(logits=leaves[0]).log_prob(xi))
        return jnp.sum(jax.tree_util.tree_unflatten(treedef, leaves).log_prob(xi))

    return jax.vmap(jax.grad(log_prob), in_axes=(None, 0))(leaves, x)


def _expand(r, s):
    """(N,) residuals broadcast against (N, *leaf) scores."""
    return jnp.broadcast_to(r.reshape(r.shape + (1,) * (s.ndim - 1)).astype(s.dtype), s.shape)


def _optimal_leaf_grads(estimate, r, s_list, fresh=None):
    """ĝ_j = mean_n (r_n − b_{n,j}) s_{n,j} for every leaf coordinate j."""
    grads = []
    for j, s in enumerate(s_list):
        rs = _expand(r, s)
        s2 = s * s
        if estimate == "fresh":
            r_f, s_f = fresh[0], fresh[1][j]
            num, den = (
                jnp.sum(_expand(r_f, s_f) * s_f * s_f, 0, keepdims=True),
                jnp.sum(s_f * s_f, 0, keepdims=True),
            )
        else:
            num, den = jnp.sum(rs * s2, 0, keepdims=True), jnp.sum(s2, 0, keepdims=True)
        num, den = jnp.broadcast_to(num, s.shape), jnp.broadcast_to(den, s.shape)
        if estimate == "loo":
            num, den = num - rs * s2, den - s2  # leave sample n out: b_{n,j} independent of x_n
        ok = den > jnp.finfo(s.dtype).tiny
        b = jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)
        grads.append(jnp.mean((rs - b) * s, axis=0))
    return grads


def _strip_aux(f, has_aux):
    return (lambda x, *a: f(x, *a)[0]) if has_aux else f


def _build_cv(cv, f_only, d, args):
    sg_args = _sg(args)
    h, expected = cv.build(lambda xi: f_only(xi, *sg_args), d, sg_args)
    return h, expected


def _optimal_coefficient_grads(cv, f_only, d, x, weights, args):
    r"""ĝ_j = mean_n (a_nj − c_nj v_nj), a = (f − b) s_j, v = h s_j − ∂_j E[h], c by leave-one-out.

    v has mean zero (h does not depend on θ), so c_j* = E[a v]/E[v²]; c_nj leaves sample n
    out, so it is independent of (a_nj, v_nj) and the estimator stays unbiased.
    """
    d_sg = jax.tree_util.tree_map(_sg, d)
    leaves, treedef = jax.tree_util.tree_flatten(d_sg)
    s_list = elementwise_scores(d_sg, x)
    h, _ = _build_cv(cv, f_only, d_sg, args)
    hx = _sg(jax.vmap(h)(x))

    def expected(lv):
        return jnp.asarray(_build_cv(cv, f_only, jax.tree_util.tree_unflatten(treedef, lv), args)[1])

    d_expected = jax.grad(expected)(leaves)
    grads = []
    for s, dh in zip(s_list, d_expected, strict=True):
        a = _expand(weights, s) * s
        v = _expand(hx, s) * s - jnp.broadcast_to(dh.astype(s.dtype), s.shape)
        num = jnp.broadcast_to(jnp.sum(a * v, 0, keepdims=True), s.shape) - a * v
        den = jnp.broadcast_to(jnp.sum(v * v, 0, keepdims=True), s.shape) - v * v
        ok = den > jnp.finfo(s.dtype).tiny
        c = jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)
        grads.append(jnp.mean(a - c * v, axis=0))
    return grads


def score_cv_surrogate(
    f, dist, *, num_samples, has_aux, baseline=None, control_variate=None, sample_sharding=None
):
    """Score-function surrogate with a control variate and/or the per-coordinate optimal baseline."""
    cv = _cv.resolve_control_variate(control_variate)
    optimal = _cv.is_optimal_baseline(baseline)
    if optimal:
        opt = baseline if isinstance(baseline, _cv.OptimalBaseline) else _cv.optimal_baseline()
        base, min_samples, name, init = None, opt.min_samples, opt.name, None
    else:
        base = _cv.resolve_baseline(baseline)
        min_samples, name, init = base.min_samples, base.name, base.init
    _core.check_num_samples(num_samples, min_samples, f" for the {name} baseline")
    f_only = _strip_aux(f, has_aux)
    cv_opt = cv is not None and isinstance(cv.coefficient, str)
    if cv_opt:
        if cv.coefficient != "optimal":
            raise ValueError(f"coefficient must be a number or 'optimal', got {cv.coefficient!r}.")
        if optimal:
            raise TypeError(
                "coefficient='optimal' estimates its own per-coordinate coefficient; combine it with "
                "baseline=None, 'loo' or 'moving_average', not baseline='optimal'."
            )
        _core.check_num_samples(num_samples, 2, " for coefficient='optimal' (leave-one-out estimate)")

    def residuals(d, x, values, args):
        r, extra = _sg(values), jnp.zeros((), values.dtype)
        if cv is not None:
            h, expected = _build_cv(cv, f_only, d, args)
            c = jnp.asarray(cv.coefficient, values.dtype)
            r = r - c * _sg(jax.vmap(h)(x)).astype(values.dtype)
            expected = jnp.asarray(expected).astype(values.dtype)
            extra = c * (expected - _sg(expected))
        return r, extra

    def fn(params, key, args, state):
        d = _core.resolve_dist(dist, params)
        if optimal and opt.estimate == "fresh":
            key, key_b = jax.random.split(key)
        x = _sg(_core.shard_samples(_core.draw(d, key, num_samples), sample_sharding))
        values, aux = _core.eval_f(f, x, args, has_aux, num_samples)
        value = jnp.mean(values)
        if cv_opt:
            b, new_state = base.apply(_sg(values), state)
            grads = _optimal_coefficient_grads(cv, f_only, d, x, _sg(values) - b, args)
            term = _core.zero_with_grad(zip(jax.tree_util.tree_leaves(d), grads, strict=True), value.dtype)
            return value + term, (value, aux, new_state)
        r, extra = residuals(d, x, values, args)
        if optimal:
            d_sg = jax.tree_util.tree_map(_sg, d)
            s_list = elementwise_scores(d_sg, x)
            fresh = None
            if opt.estimate == "fresh":
                x_b = _sg(_core.draw(d_sg, key_b, num_samples))
                v_b, _ = _core.eval_f(f, x_b, _sg(args), has_aux, num_samples)
                fresh = (residuals(d, x_b, v_b, args)[0], elementwise_scores(d_sg, x_b))
            grads = _optimal_leaf_grads(opt.estimate, r, s_list, fresh)
            term = _core.zero_with_grad(zip(jax.tree_util.tree_leaves(d), grads, strict=True), value.dtype)
            new_state = state
        else:
            b, new_state = base.apply(r, state)
            log_p = _core.joint_log_prob(d, x, num_samples)
            weights = _sg(r - b).astype(log_p.dtype)
            term = jnp.mean(weights * (log_p - _sg(log_p)))
        loss = value + jnp.asarray(term).astype(value.dtype) + extra
        return loss, (value, aux, new_state)

    return _core.Surrogate(fn, init)


def pathwise_cv_surrogate(f, dist, *, num_samples, has_aux, control_variate, sample_sharding=None):
    """Pathwise surrogate with a control variate: ∇θ[f − c·h](x(θ, ε)) + c ∇θ E[h]."""
    cv = _cv.resolve_control_variate(control_variate)
    f_only = _strip_aux(f, has_aux)

    def fn(params, key, args, state):
        d = _core.resolve_dist(dist, params)
        x = _core.shard_samples(_core.sample_for_pathwise(d, key, num_samples), sample_sharding)
        values, aux = _core.eval_f(f, x, args, has_aux, num_samples)
        value = jnp.mean(values)
        h, expected = _build_cv(cv, f_only, d, args)
        if isinstance(cv.coefficient, str):
            raise TypeError(
                f"coefficient={cv.coefficient!r} is supported by the score-function estimator only; "
                "give pathwise_grad a numeric coefficient (1.0 for the delta method)."
            )
        c = jnp.asarray(cv.coefficient, values.dtype)
        t = (jnp.asarray(expected) - jnp.mean(jax.vmap(h)(x))).astype(values.dtype)
        return value + c * (t - _sg(t)), (value, aux, None)

    return _core.Surrogate(fn)
