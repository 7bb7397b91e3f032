"""REBAR: RELAX with the control variate c(z) = η f(σ_λ(z)), f at the Concrete relaxation."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..core import dependence, kernels, path
from ..core.estimator import Estimator
from . import _discrete
from .relax import conditional_surrogate

# f at relaxed points carries the control variate's derivative: a step or a jump in f has none
# there, so η ∇f(σ_λ(z)) misses the jump's mass and ĝ is biased (0 for a step at ½).
_NOT_DIFFERENTIABLE = (dependence.PIECEWISE, dependence.JUMP)
_INSTEAD = (
    "REBAR's control variate η f(σ_λ(z)) needs f differentiable at relaxed points; use rg.relax(control) "
    "with a control of your own, or an unbiased discrete estimator (rg.disarm(), rg.score(baseline='loo'), "
    "rg.indecater(), rg.enumeration())."
)


def rebar_control(f, *, categorical: bool, has_aux: bool = False):
    """REBAR's control variate c_ψ(z) = η f(σ_λ(z)), ψ = {"eta": η, "log_temperature": log λ}.

    σ_λ(z) is sigmoid(z/λ) for Bernoulli and softmax(z/λ) (last axis) for Categorical. Returns
    ``control(z, psi, *args)``.
    """
    control = _keyed_control(lambda y, key, *args: f(y, *args), categorical=categorical, has_aux=has_aux)
    return lambda z, psi, *args: control(z, None, psi, *args)


def _keyed_control(f, *, categorical: bool, has_aux: bool):
    """``control(z, key, psi, *args)`` = η f(σ_λ(z), key, *args): f at the relaxed sample with that
    sample's own key (``f_key``), the same noise as f(b)."""

    def control(z, key, psi, *args):
        if not isinstance(psi, dict) or set(psi) != {"eta", "log_temperature"}:
            raise TypeError(
                f"REBAR's control_params must be {{'eta': η, 'log_temperature': log λ}}, got {psi!r}; "
                "start from fn.init_control_params() (or rg.rebar_init())."
            )
        dtype = z.dtype
        tau = jnp.exp(jnp.asarray(psi["log_temperature"], dtype))
        y = jax.nn.softmax(z / tau, axis=-1) if categorical else jax.nn.sigmoid(z / tau)
        out = f(y, key, *args)
        out = out[0] if has_aux else out
        return jnp.asarray(psi["eta"], dtype) * jnp.asarray(out).astype(dtype)

    return control


def rebar_init(eta: float = 1.0, temperature: float = 0.5):
    """REBAR's initial control-variate parameters ψ = {"eta": η, "log_temperature": log λ}."""
    _discrete.check_temperature(temperature)
    return {"eta": jnp.asarray(eta, jnp.float32), "log_temperature": jnp.asarray(math.log(temperature), jnp.float32)}


def rebar(*, eta: float = 1.0, temperature: float = 0.5) -> Estimator:
    r"""The REBAR estimator of ∇θ E[f(b)] for Bernoulli or Categorical b.

    **Unbiased** (for any η, λ). With z ∼ p_θ(z) (θ + logistic noise for Bernoulli, θ +
    Gumbel noise for Categorical), b = H(z) (threshold at 0 / one-hot argmax),
    z̃ ∼ p_θ(z | b) by conditional reparameterization and σ_λ the Concrete relaxation,

    .. math::

      \hat g = [f(b) - \eta f(\sigma_\lambda(\tilde z))]\,\nabla_\theta \log p_\theta(b)
        + \eta \nabla_\theta f(\sigma_\lambda(z)) - \eta \nabla_\theta f(\sigma_\lambda(\tilde z)),

    averaged over ``num_samples`` draws (each: one f at b, four f-gradients at relaxed
    points). f must also accept relaxed b (in (0, 1) for Bernoulli; on the simplex for
    Categorical, so Categorical b is passed one-hot) and be differentiable there. η and λ
    are the learned control parameters ψ = {"eta", "log_temperature"}, started from
    ``fn.init_control_params()``; calls take ``control_params=psi`` and return
    ``(result, control_grads)`` with ∇ψ E[‖ĝ‖²] = ∇ψ Var[ĝ] (see ``rg.relax``). First
    derivatives only.

    Args:
      eta, temperature: the initial η and λ of ``init_control_params()``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.value_and_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p),
      ...                        rg.rebar(), num_samples=8)
      >>> (value, g), psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params=fn.init_control_params())

    References:
      Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein, "REBAR: Low-variance, unbiased
      gradient estimates for discrete latent variable models", NeurIPS 2017
      (arXiv:1703.07370).
    """
    _discrete.check_temperature(temperature)

    def make_control(kind, problem):
        return _keyed_control(problem.f, categorical=kind == "categorical", has_aux=problem.has_aux)

    conditional = conditional_surrogate("rebar", make_control)

    def surrogate(problem, d, key, state, psi):
        out = conditional(problem, d, key, state, psi)
        # f read from its jaxpr at one relaxed point (a one-hot row for Categorical: the logits' shape)
        logits = jnp.asarray(d.logits)
        state_f = dependence.in_samples(problem.source_f, jnp.zeros((1,) + logits.shape, logits.dtype),
                                        problem.args, problem.take_keys(0))
        if state_f not in _NOT_DIFFERENTIABLE:
            return out
        message = path.path_message(state_f, "rebar", _INSTEAD)
        params = kernels.dist_params(d, problem.params)
        # refused only when θ is differentiated: the value and f's own derivatives stay exact
        loss = kernels.require_path_derivative(out.loss, None, params, message, refused=True, structural=False)
        return out._replace(loss=loss)

    return Estimator(
        "rebar", surrogate, control_init=lambda: rebar_init(eta, temperature), max_order=1, family="discrete"
    )
