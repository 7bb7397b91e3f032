r"""Per-coordinate optimal baselines and control-variate coefficients.

Both use per-sample quantities for every coordinate j of the distribution's leaves (memory
N × |leaf|, not a Jacobian w.r.t. the user's params) and return per-leaf gradient estimates
to be pulled back onto the leaves. Whatever is estimated for sample n — a baseline, a
coefficient, the decision that a coefficient cannot be estimated — is computed from the
other samples only (``others``: prefix plus suffix sums, so not even x_n's rounding enters),
which keeps the estimates unbiased (first derivatives).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import distributions as _d
from ..core import kernels, protocol
from ..core.estimator import Estimator, Out
from . import control_variates
from .baselines import baseline_kind

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


def tangent_projections(d):
    """For each leaf of ``d``, the map taking a gradient w.r.t. the leaf to the part that
    reaches the user's params.

    A repgrad ``Categorical`` stores normalized logits ℓ and reads them without renormalizing
    (``probs = exp ℓ``, ``log_prob``), so a function of the leaf has a gradient with a
    component along the all-ones direction that ``log_softmax`` in the constructor removes on
    the way to the params: g ↦ g − p Σ_k g_k. Per-coordinate coefficients are estimated
    after this projection, on both the estimates and ∂E[h], so that writing E[h] with
    ``d.probs`` or ``softmax(d.logits)`` makes no difference. ``MultivariateNormalTri``'s
    leaf is read through its lower triangle. Other leaves are unconstrained.
    """
    leaves = jax.tree_util.tree_leaves(d)
    identity = lambda g: g
    if isinstance(d, _d.Categorical):
        p = jnp.exp(_sg(d.logits))

        def project(g):
            q = jnp.reshape(p, (1,) * (g.ndim - p.ndim) + p.shape).astype(g.dtype)
            return g - q * jnp.sum(g, axis=-1, keepdims=True)

        return [project]
    if isinstance(d, _d.MultivariateNormalTri):
        return [identity if leaf is not d.scale_tri else jnp.tril for leaf in leaves]
    return [identity] * len(leaves)


def others(x):
    """Σ_{m≠n} x_m for every n (axis 0), as prefix plus suffix sums.

    ``sum − x_n`` would let x_n's rounding into the result, and cancels to noise when x_n
    dominates the sum; here sample n's own value never enters.
    """
    zero = jnp.zeros_like(x[:1])
    before = jnp.concatenate([zero, jnp.cumsum(x, axis=0)[:-1]])
    after = jnp.concatenate([jax.lax.cumsum(x, axis=0, reverse=True)[1:], zero])
    return before + after


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
        elif estimate == "loo":
            num, den = others(rs * s2), others(s2)  # b_{n,j} from the other samples: independent of x_n
        else:
            num, den = jnp.sum(rs * s2, 0, keepdims=True), jnp.sum(s2, 0, keepdims=True)
        b = _ratio(jnp.broadcast_to(num, s.shape), jnp.broadcast_to(den, s.shape), s.dtype)
        grads.append(jnp.mean((rs - b) * s, axis=0))
    return grads


def loo_coefficient(sum_av, sum_a, v, u, dh):
    r"""c_n = Ĉov₋ₙ(a, v) / V̂ar₋ₙ(v) from the other samples, or 0 where v is rounding noise.

    ``sum_av``/``sum_a`` are Σ_{m≠n} a_m v_m and Σ_{m≠n} a_m (a_m as estimated without
    sample n), ``v = u − ∂E[h]`` the control variate's per-sample estimates minus their
    known mean, all (N, *leaf). The coefficient is the regression slope of a on v over the
    other N − 1 samples (centred, so it is bounded by sd(a)/sd(v) and a constant v gives 0).

    Where the control variate's estimate carries no randomness (a Bernoulli's or
    Categorical's measure-valued estimate of a separable h, a pathwise estimate of a linear
    h), v is only rounding error, with a mean that rounding need not make zero, and a slope
    on it would cancel the gradient. So c_n = 0 where the other samples' spread of v is below
    √ε times the magnitude of u and ∂E[h] (ε the dtype's machine epsilon): a decision made
    from the other samples too, so c_n stays independent of x_n and ĝ unbiased.
    """
    n = v.shape[0]
    sum_v = others(v)
    cov = sum_av - sum_a * sum_v / (n - 1)
    var = others(v * v) - sum_v * sum_v / (n - 1)
    magnitude = others(u * u) / (n - 1) + dh * dh
    info = jnp.finfo(v.dtype)
    ok = (var > (n - 1) * info.eps * magnitude) & (var > info.tiny)
    return jnp.where(ok, cov / jnp.where(ok, var, 1.0), 0.0)


def coefficient_grads(s_list, values, b, kind, hx, expected_h, d_expected):
    r"""ĝ_j = mean_n (a_nj − c_nj v_nj), a = (f − b) s_j, v = (h − β) s_j − ∂_j E[h], c by leave-one-out.

    v has mean zero for any constant β (h does not depend on θ, E[s_j] = 0). Without a
    baseline β = 0, so v matches a = f s_j; with one, β = E[h], so v matches a = (f − b) s_j
    with b ≈ E[f] (else the regression would have to explain E[f] s_j, which v lacks).

    c_nj must not depend on x_n, so neither may the a_m it regresses on. By the baseline's
    ``kind`` (``baselines.baseline_kind``): ``"none"`` and ``"earlier_calls"`` use a as it
    is; ``"leave_one_out"`` replaces each b_m by the mean over the samples other than m and
    n (closed-form sums, O(N·|leaf|), needs N ≥ 3); ``"custom"`` (a user's ``Baseline``,
    which may read the batch) regresses (f − E[h]) s_j instead.
    """
    n = values.shape[0]
    beta = jnp.zeros((), hx.dtype) if kind == "none" else jnp.asarray(expected_h).astype(hx.dtype)
    grads = []
    for s, dh in zip(s_list, d_expected, strict=True):
        a = _expand(values - b, s) * s
        u = _expand(hx - beta, s) * s
        dh = jnp.broadcast_to(dh.astype(s.dtype), s.shape)
        v = u - dh
        if kind == "leave_one_out":
            # a_m = (f_m − (S₋ₙ − f_m)/(N − 2)) s_m with S₋ₙ = Σ_{k≠n} f_k, summed over m ≠ n.
            f, total = _expand(values, s), _expand(others(values), s)
            sum_av = ((n - 1) * others(f * s * v) - total * others(s * v)) / (n - 2)
            sum_a = ((n - 1) * others(f * s) - total * others(s)) / (n - 2)
        else:
            a_c = _expand(values - beta.astype(values.dtype), s) * s if kind == "custom" else a
            sum_av, sum_a = others(a_c * v), others(a_c)
        grads.append(jnp.mean(a - loo_coefficient(sum_av, sum_a, v, u, dh) * v, axis=0))
    return grads


def _check_optimal(cv):
    if cv.coefficient != "optimal":
        raise ValueError(f"coefficient must be a number or 'optimal', got {cv.coefficient!r}.")


def coefficient_estimator(base, cv) -> Estimator:
    """Score function with a control variate whose coefficient is estimated per leaf coordinate."""
    _check_optimal(cv)
    if not hasattr(base, "apply"):
        raise TypeError(
            "coefficient='optimal' estimates its own per-coordinate coefficient; combine it with "
            "baseline=None, 'loo' or 'moving_average', not baseline='optimal'."
        )
    name = ("score" if base.name == "none" else f"score ({base.name} baseline)") + f"+{cv.name}(optimal coefficient)"
    kind = baseline_kind(base)

    def surrogate(problem, d, key, state, control):
        x = _sg(problem.shard(protocol.draw(d, key, problem.num_samples)))
        values, aux = problem.evaluate(x)
        b, new_state = base.apply(_sg(values), state)
        d_sg = jax.tree_util.tree_map(_sg, d)
        leaves, treedef = jax.tree_util.tree_flatten(d_sg)
        h, _ = control_variates.build(cv, problem, d_sg)
        hx = _sg(jax.vmap(h)(x))
        expected = lambda lv: jnp.asarray(control_variates.build(cv, problem, treedef.unflatten(lv))[1])
        expected_h, d_expected = jax.value_and_grad(expected)(leaves)
        # The scores live in the leaves' tangent space (log_softmax for a Categorical); so must ∂E[h].
        d_expected = [p(g) for p, g in zip(tangent_projections(d_sg), d_expected, strict=True)]
        scores = elementwise_scores(d_sg, x)
        grads = coefficient_grads(scores, values, b, kind, hx, expected_h, d_expected)
        value = jnp.mean(values)
        term = kernels.pullback(zip(jax.tree_util.tree_leaves(d), grads, strict=True), name, value.dtype)
        return Out(value + term, value, aux, new_state)

    return Estimator(
        name, surrogate, init=base.init or (lambda: ()), stateful=base.init is not None,
        min_samples=max(3, base.min_samples), max_order=1,
    )


def _sg_inexact(tree):
    """``tree`` with its floating-point arrays stop-gradient (f's arguments may hold anything)."""
    return jax.tree_util.tree_map(
        lambda a: _sg(a) if isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jnp.inexact) else a, tree
    )


def per_sample_coefficient_estimator(estimator: Estimator, cv) -> Estimator:
    r"""``estimator`` with a control variate whose coefficient is estimated per leaf coordinate.

    The estimator runs on N single-sample problems (keys split from the call's key), giving
    per-sample estimates a_n of ∂E[f]/∂θ and, on the same samples, u_n of ∂E[h]/∂θ w.r.t. the
    distribution's leaves θ (memory N × |leaves|, no Jacobians w.r.t. the user's params), both
    projected onto the leaves' tangent space (``tangent_projections``). With
    v_n = u_n − ∂E[h]/∂θ (mean zero), c_nj is the regression slope of a_j on v_j over the other
    samples (``loo_coefficient``), so ĝ_j = (1/N) Σ_n (a_nj − c_nj v_nj) is unbiased. First
    derivatives only; needs N ≥ 3.
    """
    _check_optimal(cv)
    if estimator.stateful or estimator.control_init is not None or estimator.log_weight:
        raise TypeError(
            f"coefficient='optimal' runs the {estimator.name} estimator one sample at a time, which "
            "needs a stateless estimator of E[f]; give it a numeric coefficient instead."
        )
    if estimator.min_samples > 1:
        raise TypeError(
            f"coefficient='optimal' runs the {estimator.name} estimator one sample at a time, but it "
            f"needs at least {estimator.min_samples} samples per call (its baseline reads the other "
            "samples). For the score function pass both to rg.score(baseline=..., control_variate=cv), "
            "which estimates the coefficient from the elementwise scores; otherwise use a numeric coefficient."
        )
    name = f"{estimator.name}+{cv.name}(optimal coefficient)"

    def surrogate(problem, d, key, state, control):
        leaves, treedef = jax.tree_util.tree_flatten(d)
        sg_leaves = [_sg(leaf) for leaf in leaves]
        d_sg = treedef.unflatten(sg_leaves)
        h, _ = control_variates.build(cv, problem, d_sg)
        expected = lambda lv: jnp.asarray(control_variates.build(cv, problem, treedef.unflatten(lv))[1])
        projections = tangent_projections(d_sg)
        d_expected = jax.grad(expected)(sg_leaves)
        single = problem._replace(num_samples=1, sample_sharding=None)
        # The per-sample gradients are taken with f's arguments held fixed: ĝ's dependence on them
        # reaches the pull-back through ``watch`` (values), which refuses mixed derivatives, while
        # the value (from the live run below) stays differentiable in them at every order.
        frozen = single._replace(args=_sg_inexact(problem.args))

        def leaf_grads(prob, k):
            def loss(lv):
                out = estimator.surrogate(prob, treedef.unflatten(lv), k, (), None)
                return out.loss, out
            return jax.grad(loss, has_aux=True)(sg_leaves)

        def per_sample(k, f_key):
            one = lambda p: p._replace(keys=None if f_key is None else f_key[None])  # sample n's own f key
            g_f, _ = leaf_grads(one(frozen), k)
            g_h, _ = leaf_grads(one(frozen).replace_f(lambda x, k, *a: jnp.asarray(h(x)), has_aux=False), k)
            out = estimator.surrogate(one(single), d_sg, k, (), None)  # same draws: the value, live in f's args
            return g_f, g_h, out.value, out.aux

        g_f, g_h, values, aux = jax.vmap(per_sample)(jax.random.split(key, problem.num_samples), problem.keys)
        grads = []
        for project, a, u, dh in zip(projections, g_f, g_h, d_expected, strict=True):
            a, u = project(a), project(u)
            dh = jnp.broadcast_to(project(jnp.asarray(dh, u.dtype)), u.shape)
            v = u - dh
            c = loo_coefficient(others(a * v), others(a), v, u, dh)
            grads.append(jnp.mean(a - c * v, axis=0))
        value = jnp.mean(values)
        if aux is not None:  # (N, evaluations per sample, ...) -> one axis of evaluations
            aux = jax.tree_util.tree_map(lambda t: jnp.reshape(t, (-1,) + t.shape[2:]), aux)
        term = kernels.pullback(zip(leaves, grads, strict=True), name, value.dtype, watch=(values,))
        return Out(value + term, value, aux)

    return estimator._replace(name=name, surrogate=surrogate, min_samples=max(3, estimator.min_samples), max_order=1)
