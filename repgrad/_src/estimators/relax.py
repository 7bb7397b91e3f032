"""RELAX: an unbiased discrete estimator with a learned continuous control variate.

With z ∼ p_θ(z) the continuous variable whose hard threshold/argmax is the discrete sample
b = H(z), and z̃ ∼ p_θ(z | b) drawn by conditional reparameterization,

    ĝ = [f(b) − c(z̃)] ∇θ log p_θ(b) + ∇θ c(z) − ∇θ c(z̃),

unbiased for any differentiable c. RELAX takes a user network c_ψ(z); REBAR (``rebar.py``)
takes c(z) = η f(σ_λ(z)). Since E[ĝ] does not depend on ψ, ∇ψ Var[ĝ] = ∇ψ E[ĝ²], which the
transforms return next to the estimate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import kernels
from ..core.estimator import Estimator, Out
from . import _discrete

_sg = jax.lax.stop_gradient


def _reparameterize(kind, theta, u, v, b):
    """(z, z̃) as differentiable functions of the logits θ, given noise u, v and b = H(z)."""
    shape = u.shape
    th = jnp.broadcast_to(theta, shape)
    if kind == "bernoulli":
        z = th + _discrete.logistic(u)
        log_p, log_1mp = -jax.nn.softplus(-th), -jax.nn.softplus(th)  # log p, log(1 − p)
        p, one_m_p = jax.nn.sigmoid(th), jax.nn.sigmoid(-th)
        # b = 1: v' = (1−p) + v p ∈ (1−p, 1);  b = 0: v' = v(1−p) ∈ (0, 1−p).
        log_v1 = jnp.log1p(-(1.0 - v) * p)
        log_1mv1 = jnp.log1p(-v) + log_p
        log_v0 = jnp.log(v) + log_1mp
        log_1mv0 = jnp.log1p(-v * one_m_p)
        zt = th + jnp.where(b > 0.5, log_v1 - log_1mv1, log_v0 - log_1mv0)
        return z, zt
    thn = jax.nn.log_softmax(th, axis=-1)  # the max of the Gumbels then has location 0
    z = thn + _discrete.gumbel(u)
    e = -jnp.log(v)  # Exp(1) variables
    e_b = jnp.sum(e * b, axis=-1, keepdims=True)
    z_top = -jnp.log(e_b)
    z_rest = -jnp.logaddexp(jnp.log(e) - thn, jnp.log(e_b))
    zt = jnp.where(b > 0.5, jnp.broadcast_to(z_top, shape), z_rest)
    return z, zt


def _log_prob(kind, theta, b):
    th = jnp.broadcast_to(theta, b.shape)
    if kind == "bernoulli":
        lp = -jax.nn.softplus(-th) * b - jax.nn.softplus(th) * (1.0 - b)
    else:
        lp = jnp.sum(jax.nn.log_softmax(th, axis=-1) * b, axis=-1)
    return jnp.sum(jnp.reshape(lp, (lp.shape[0], -1)), axis=1)


def conditional_surrogate(name, make_control):
    """The REBAR/RELAX surrogate; ``make_control(kind, problem)`` is c(z, key, ψ, *args), key the
    sample's own key for f (``f_key``) or ``None``."""

    def surrogate(problem, d, key, state, psi):
        n, args = problem.num_samples, problem.args
        kind = _discrete.kind_of(d, name)
        logits = jnp.asarray(d.logits)
        theta = _sg(logits)
        shape = (n,) + theta.shape
        key_u, key_v = jax.random.split(key)
        u = _discrete.uniform(key_u, shape, theta.dtype)
        v = _discrete.uniform(key_v, shape, theta.dtype)
        if kind == "bernoulli":
            b = (jnp.broadcast_to(theta, shape) + _discrete.logistic(u) > 0).astype(theta.dtype)
        else:
            z0 = jnp.broadcast_to(theta, shape) + _discrete.gumbel(u)
            b = jax.nn.one_hot(jnp.argmax(z0, axis=-1), theta.shape[-1], dtype=theta.dtype)
        values, aux = problem.evaluate(b)
        f_b = _sg(values).astype(theta.dtype)
        control = make_control(kind, problem)

        def estimate(psi):
            def c(z):
                out = jax.vmap(lambda zi, ki: control(zi, ki, psi, *args))(z, problem.keys)
                if out.shape != (n,):
                    raise TypeError(
                        f"{name}: the control variate must return a scalar for one z, got shape "
                        f"{out.shape[1:]}. Reduce it inside control (e.g. jnp.sum)."
                    )
                return out.astype(theta.dtype)

            def h(th):
                z, zt = _reparameterize(kind, th, u, v, b)
                weight = f_b - c(_sg(zt))  # depends on ψ, not on θ
                return jnp.mean(weight * _log_prob(kind, th, b) + c(z) - c(zt))

            return jax.grad(h)(theta)

        g, psi_grad = _discrete.estimate_and_variance_grad(estimate, psi)
        value = jnp.mean(values)
        # f(b) enters ĝ stop-gradient: watching it refuses mixed θ/f-argument derivatives of ĝ.
        pull = kernels.pullback([(logits, g)], name, value.dtype, watch=(values,))
        return Out(value + pull, value, aux, (), psi_grad)

    return surrogate


def _no_default_psi():
    raise TypeError(
        "RELAX's control-variate parameters ψ belong to you: initialise them with your network's "
        "init (e.g. psi = net.init(key, z)) and pass control_params=psi; train them with the "
        "returned gradient of the estimator's variance (e.g. with optax)."
    )


def relax(control) -> Estimator:
    r"""The RELAX estimator of ∇θ E[f(b)] for Bernoulli or Categorical b, with a learned c_ψ.

    **Unbiased** for any differentiable c_ψ; f need not be differentiable (or even defined)
    at relaxed points. With z (logistic/Gumbel pre-threshold sample), b = H(z) and
    z̃ ∼ p_θ(z | b),

    .. math::

      \hat g = [f(b) - c_\psi(\tilde z)]\,\nabla_\theta \log p_\theta(b)
        + \nabla_\theta c_\psi(z) - \nabla_\theta c_\psi(\tilde z).

    ψ (your network's parameters) is trained to minimise Var[ĝ]; because E[ĝ] does not
    depend on ψ, ∇ψ Var[ĝ] = ∇ψ E[ĝ²] = E[2 ĝ ∂ĝ/∂ψ], computed by differentiating the
    estimate itself (second-order autodiff) and returned next to it. Variance is measured
    on the gradient w.r.t. the distribution's logits, summed over elements. The paper's
    discrete choice is c_ψ(z) = f(σ_λ(z)) + r_ψ(z). First derivatives only.

    **Learned control parameters.** Calls take ``control_params=psi`` (yours to initialise)
    and return ``(result, control_grads)``, ``control_grads`` = ∇ψ E[‖ĝ‖²] in ψ's structure:
    ``rg.grad`` → ``(grads, control_grads)``, ``rg.value_and_grad`` →
    ``((value, grads), control_grads)``, ``rg.expectation`` → ``(loss, control_grads)``.

    Args:
      control: ``control(z, psi, *args) -> scalar`` for one z of the logits' shape;
        differentiable in z and psi.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> control = lambda z, psi: psi * jnp.sum(jax.nn.sigmoid(z))
      >>> fn = rg.grad(lambda b: jnp.sum(b), lambda p: rg.Bernoulli(logits=p), rg.relax(control),
      ...              num_samples=8)
      >>> g, psi_grad = fn(jnp.zeros(2), jax.random.key(0), control_params=jnp.float32(1.0))

    References:
      Grathwohl, Choi, Wu, Roeder & Duvenaud, "Backpropagation through the Void: Optimizing
      control variates for black-box gradient estimation", ICLR 2018 (arXiv:1711.00123).
    """
    if not callable(control):
        raise TypeError(
            "RELAX needs control=c, a function c(z, psi, *args) -> scalar for one z (the continuous "
            f"pre-threshold sample), got {control!r}. For REBAR's built-in control use rg.rebar()."
        )
    surrogate = conditional_surrogate("relax", lambda kind, problem: lambda z, key, psi, *a: control(z, psi, *a))
    return Estimator("relax", surrogate, control_init=_no_default_psi, max_order=1, family="discrete")
