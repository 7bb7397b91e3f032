"""Double control variates: the leave-one-out baseline, itself corrected by a linear control variate."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import kernels
from ..core.estimator import Estimator, Out
from . import _discrete

_sg = jax.lax.stop_gradient


def values_and_input_grads(problem, b):
    """f and ∇_b f at each of the N samples, through ``problem.evaluate`` (row n: sample n).

    f's values at different samples do not depend on each other's points, so one vjp with
    unit cotangents gives every per-sample input gradient.
    """
    values, vjp, aux = jax.vjp(lambda pts: problem.evaluate(pts), b, has_aux=True)
    (grads,) = vjp(jnp.ones_like(values))
    return values, grads, aux


def bernoulli_draw(d, key, n, estimator):
    """(logits, ⊥logits, probabilities, samples (N, ...) as floats) of a factorized Bernoulli."""
    logits = _discrete.bernoulli_logits(d, estimator)
    theta = _sg(logits)
    p = jax.nn.sigmoid(theta)
    u = _discrete.uniform(key, (n,) + theta.shape, theta.dtype)
    return logits, theta, p, (u < jnp.broadcast_to(p, u.shape)).astype(theta.dtype)


def leave_one_out_mean(a):
    """(Σ_j a_j − a_n) / (N − 1) along axis 0."""
    return (jnp.sum(a, axis=0, keepdims=True) - a) / (a.shape[0] - 1)


def _sum_event(a):
    return jnp.sum(a.reshape(a.shape[0], -1), axis=1)


def double_cv_init(alpha: float = 0.0):
    """Double CV's initial control parameters ψ = {"alpha": α}."""
    return {"alpha": jnp.asarray(alpha, jnp.float32)}


def double_cv(*, alpha: float = 0.0) -> Estimator:
    r"""The double control variate estimator of ∇θ E_{b∼Bern(σ(θ))}[f(b)].

    **Unbiased** for every α. With N ≥ 2 samples b_n, p = σ(θ), the score s_n = b_n − p of the
    logits, ∇f(b_n) the derivative of f in its (continuous) input at the binary point, and
    ḡ_{−n} = mean_{m≠n} ∇f(b_m), the leave-one-out baseline is itself corrected by the linear
    (Taylor) control variate α ḡ_{−n}·s_n, whose expectation is known:

    .. math::

      v_n = f(b_n) + \alpha\, \bar g_{-n} \cdot (b_n - p), \qquad
      \hat g = \frac1N \sum_n \Big(v_n - \frac{1}{N-1}\sum_{m \ne n} v_m\Big)(b_n - p)
        - \alpha\, p(1 - p) \odot \frac1N \sum_n \nabla f(b_n).

    The first term's α part has expectation α p(1 − p) ⊙ E[∇f], which the second removes; the
    leave-one-out part of v_m has mean zero given b_n. α is the learned control parameter
    ψ = {"alpha"} (0 at start: REINFORCE with the leave-one-out baseline): calls take
    ``control_params=psi`` and return ``(result, control_grads)``, ∇ψ E[‖ĝ‖²] = ∇ψ Var[ĝ], to
    be fed to an optimizer as for ``rg.relax``. The value is the plain mean of f over the N
    samples.

    **Cost:** N evaluations of f and N of its input gradient (one vjp). f must take binary
    b as floats and is differentiated there; where it is not differentiable the estimate stays
    unbiased, only the variance reduction is lost. Bernoulli only. First derivatives only: a
    second derivative that moves θ raises ``repgrad.DerivativeOrderError``.

    Args:
      alpha: the initial α of ``init_control_params()``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p), rg.double_cv(),
      ...              num_samples=4)
      >>> g, psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params=fn.init_control_params())

    References:
      Titsias & Shi, "Double Control Variates for Gradient Estimation in Discrete Latent
      Variable Models", AISTATS 2022 (arXiv:2111.05300); the authors' code (thjashin/double-cv,
      thjashin/rodeo).
    """

    def surrogate(problem, d, key, state, psi):
        n = problem.num_samples
        logits, theta, p, b = bernoulli_draw(d, key, n, "double_cv")
        values, grads, aux = values_and_input_grads(problem, b)
        f = _sg(values).astype(theta.dtype)
        gb = _sg(grads).astype(theta.dtype)
        s = _discrete.bernoulli_score(b, theta)
        g_loo = leave_one_out_mean(gb)

        def estimate(psi):
            if not isinstance(psi, dict) or set(psi) != {"alpha"}:
                raise TypeError(
                    f"double_cv's control_params must be {{'alpha': α}}, got {psi!r}; start from "
                    "fn.init_control_params() (or rg.double_cv_init())."
                )
            alpha = jnp.asarray(psi["alpha"]).astype(theta.dtype)
            v = f + alpha * _sum_event(g_loo * s)
            weight = v - leave_one_out_mean(v)
            g = jnp.mean(_discrete.per_sample(weight, s) * s, axis=0)
            return g - alpha * _discrete.bernoulli_variance(theta) * jnp.mean(gb, axis=0)

        g, psi_grad = _discrete.estimate_and_variance_grad(estimate, psi)
        value = jnp.mean(values)
        # f's values and gradients enter ĝ stop-gradient: watching them refuses mixed derivatives.
        pull = kernels.pullback([(logits, g)], "double_cv", value.dtype, watch=(values, grads))
        return Out(value + pull, value, aux, (), psi_grad)

    return Estimator(
        "double_cv", surrogate, control_init=lambda: double_cv_init(alpha), min_samples=2, max_order=1, family="bernoulli"
    )
