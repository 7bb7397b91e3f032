"""REBAR and RELAX: unbiased estimators with a (learned) continuous control variate.

Both use the same skeleton. With z ∼ p_θ(z) the continuous variable whose hard
threshold/argmax is the discrete sample b = H(z), and z̃ ∼ p_θ(z | b) drawn by
conditional reparameterization,

    ĝ = [f(b) − c(z̃)] ∇θ log p_θ(b) + ∇θ c(z) − ∇θ c(z̃),

unbiased for any differentiable c. REBAR takes c(z) = η f(σ_λ(z)) (f at the
Concrete relaxation); RELAX takes any user network c_ψ(z). Control-variate
parameters are trained to minimise the estimator's variance; since E[ĝ] does not
depend on them, ∇ψ Var[ĝ] = ∇ψ E[ĝ²], which we return next to the estimator.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from . import _core
from . import _discrete_common as _dc

_sg = jax.lax.stop_gradient


def _reparameterize(kind, theta, u, v, b):
    """(z, z̃) as differentiable functions of the logits θ, given noise u, v and b = H(z)."""
    shape = u.shape
    th = jnp.broadcast_to(theta, shape)
    if kind == "bernoulli":
        z = th + _dc.logistic(u)
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
    z = thn + _dc.gumbel(u)
    e = -jnp.log(v)  # Exp(1) variables
    e_b = jnp.sum(e * b, axis=-1, keepdims=True)
    z_top = -jnp.log(e_b)
    z_rest = -jnp.logaddexp(jnp.log(e) - thn, jnp.log(e_b))
    zt = jnp.where(b > 0.5, jnp.broadcast_to(z_top, shape), z_rest)
    return z, zt


def _log_prob(kind, theta, b):
    th = jnp.broadcast_to(theta, b.shape)
    if kind == "bernoulli":
        return _dc.bernoulli_log_prob(b, th)
    lp = jnp.sum(jax.nn.log_softmax(th, axis=-1) * b, axis=-1)
    return jnp.sum(jnp.reshape(lp, (lp.shape[0], -1)), axis=1)


def _control_variate_surrogate(f, dist, control, *, num_samples, has_aux, name, sample_sharding=None):
    def fn(params, key, args, psi):
        d = _core.resolve_dist(dist, params)
        kind = _dc.kind_of(d, name)
        logits = jnp.asarray(d.logits)
        theta = _sg(logits)
        shape = (num_samples,) + theta.shape
        key_u, key_v = jax.random.split(key)
        u = _dc.uniform(key_u, shape, theta.dtype)
        v = _dc.uniform(key_v, shape, theta.dtype)
        if kind == "bernoulli":
            b = (jnp.broadcast_to(theta, shape) + _dc.logistic(u) > 0).astype(theta.dtype)
        else:
            z0 = jnp.broadcast_to(theta, shape) + _dc.gumbel(u)
            b = jax.nn.one_hot(jnp.argmax(z0, axis=-1), theta.shape[-1], dtype=theta.dtype)
        b = _core.shard_samples(b, sample_sharding)
        values, aux = _core.eval_f(f, b, args, has_aux, num_samples)
        f_b = _sg(values).astype(theta.dtype)

        def estimate(psi):
            def c(z):
                out = jax.vmap(lambda zi: control(zi, psi, *args))(z)
                if out.shape != (num_samples,):
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

        def variance_objective(psi):
            g = estimate(psi)
            return jnp.sum(g * g), g

        (_, g), psi_grad = jax.value_and_grad(variance_objective, has_aux=True)(psi)
        value = jnp.mean(values)
        return _dc.pullback(value, logits, g), (value, aux, psi_grad)

    return fn


def _relax_state_error():
    raise TypeError(
        "RELAX's control-variate parameters ψ belong to you: initialise them with your network's "
        "init (e.g. psi = net.init(key, z)) and pass control_params=psi; train them with the "
        "returned gradient of the estimator's variance (e.g. with optax)."
    )


def _relax_surrogate(f, dist, *, num_samples, has_aux, control=None, sample_sharding=None):
    if not callable(control):
        raise TypeError(
            "RELAX needs control=c, a function c(z, psi, *args) -> scalar for one z (the "
            f"continuous pre-threshold sample), got {control!r}. For REBAR's built-in control "
            "use repgrad.rebar_grad."
        )
    fn = _control_variate_surrogate(
        f, dist, control, num_samples=num_samples, has_aux=has_aux, name="relax", sample_sharding=sample_sharding
    )
    return _core.Surrogate(fn, _relax_state_error, state_name="control_params")


def rebar_control(f, *, categorical: bool, has_aux: bool = False):
    """REBAR's control variate c_ψ(z) = η f(σ_λ(z)), ψ = {"eta": η, "log_temperature": log λ}.

    σ_λ(z) is sigmoid(z/λ) for Bernoulli and softmax(z/λ) (last axis) for Categorical.
    """

    def control(z, psi, *args):
        dtype = z.dtype
        tau = jnp.exp(jnp.asarray(psi["log_temperature"], dtype))
        y = jax.nn.softmax(z / tau, axis=-1) if categorical else jax.nn.sigmoid(z / tau)
        out = f(y, *args)
        out = out[0] if has_aux else out
        return jnp.asarray(psi["eta"], dtype) * jnp.asarray(out).astype(dtype)

    return control


def rebar_init(eta: float = 1.0, temperature: float = 0.5):
    """REBAR's initial control-variate parameters ψ = {"eta": η, "log_temperature": log λ}."""
    _dc.check_temperature(temperature)
    return {"eta": jnp.asarray(eta, jnp.float32), "log_temperature": jnp.asarray(math.log(temperature), jnp.float32)}


def _rebar_surrogate(f, dist, *, num_samples, has_aux, eta=1.0, temperature=0.5, sample_sharding=None):
    def fn(params, key, args, psi):
        d = _core.resolve_dist(dist, params)
        control = rebar_control(f, categorical=_dc.kind_of(d, "rebar") == "categorical", has_aux=has_aux)
        inner = _control_variate_surrogate(
            f, dist, control, num_samples=num_samples, has_aux=has_aux, name="rebar",
            sample_sharding=sample_sharding,
        )
        return inner(params, key, args, psi)

    return _core.Surrogate(fn, lambda: rebar_init(eta, temperature), state_name="control_params")


def rebar_value_and_grad(
    f, dist, *, num_samples: int = 1, has_aux: bool = False, eta: float = 1.0, temperature: float = 0.5,
    sample_sharding=None,
):
    r"""Value and REBAR gradient of E[f(b)] for Bernoulli or Categorical b.

    **Unbiased** (for any η, λ). With z ∼ p_θ(z) (θ + logistic noise for Bernoulli,
    θ + Gumbel noise for Categorical), b = H(z) (threshold at 0 / one-hot argmax),
    z̃ ∼ p_θ(z | b) by conditional reparameterization and σ_λ the Concrete relaxation,

    .. math::

      \hat g = [f(b) - \eta f(\sigma_\lambda(\tilde z))]\,\nabla_\theta \log p_\theta(b)
        + \eta \nabla_\theta f(\sigma_\lambda(z)) - \eta \nabla_\theta f(\sigma_\lambda(\tilde z)),

    averaged over ``num_samples`` draws (each: one f at b, four f-gradients at relaxed
    points). η and λ are the control-variate parameters ψ = {"eta", "log_temperature"};
    the transform also returns ∇ψ E[‖ĝ‖²] = ∇ψ Var[ĝ] (variance summed over the
    logits), so ψ can be tuned online with any optimizer, as in the paper.

    Args:
      f: ``f(b, *args)`` scalar per sample; it must also accept relaxed b (in (0, 1) for
        Bernoulli; on the simplex, one-hot-like on the last axis, for Categorical — so
        Categorical b is passed one-hot, not as an index) and be differentiable there.
      dist: ``dist(params)`` returning ``repgrad.Bernoulli`` or ``repgrad.Categorical``.
      num_samples: N.
      has_aux: whether f returns ``(value, aux)``.
      eta, temperature: initial η and λ returned by ``fn.init_state()``.
      sample_sharding: optional sharding of the sample axis.

    Returns:
      ``fn(params, key, *args, control_params=psi) -> ((value, grads), psi_grads)``
      with ``psi_grads`` = ∇ψ E[‖ĝ‖²] in the structure of ψ; start from
      ``psi = fn.init_state()``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> f = lambda b: jnp.sum((b - 0.45) ** 2)
      >>> fn = rg.rebar_value_and_grad(f, lambda p: rg.Bernoulli(logits=p), num_samples=8)
      >>> psi = fn.init_state()
      >>> (value, g), psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params=psi)

    References:
      Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein, "REBAR: Low-variance, unbiased
      gradient estimates for discrete latent variable models", NeurIPS 2017
      (arXiv:1703.07370).
    """
    num_samples = _core.check_num_samples(num_samples)
    has_aux = _core.check_has_aux(has_aux)
    s = _rebar_surrogate(
        f, dist, num_samples=num_samples, has_aux=has_aux, eta=eta, temperature=temperature,
        sample_sharding=sample_sharding,
    )
    return _core.make_value_and_grad(s, f, has_aux)


def rebar_grad(
    f, dist, *, num_samples: int = 1, has_aux: bool = False, eta: float = 1.0, temperature: float = 0.5,
    sample_sharding=None,
):
    r"""REBAR gradient (unbiased); see ``rebar_value_and_grad``.

    Returns:
      ``fn(params, key, *args, control_params=psi) -> (grads, psi_grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.rebar_grad(lambda b: jnp.sum(b), lambda p: rg.Bernoulli(logits=p), num_samples=8)
      >>> g, psi_grad = fn(jnp.zeros(2), jax.random.key(0), control_params=fn.init_state())

    References:
      Tucker et al., NeurIPS 2017 (arXiv:1703.07370).
    """
    vg = rebar_value_and_grad(
        f, dist, num_samples=num_samples, has_aux=has_aux, eta=eta, temperature=temperature,
        sample_sharding=sample_sharding,
    )
    return _core.make_grad(vg, f, has_aux)


def relax_value_and_grad(f, dist, control, *, num_samples: int = 1, has_aux: bool = False, sample_sharding=None):
    r"""Value and RELAX gradient of E[f(b)] with a learned control variate c_ψ.

    **Unbiased** for any differentiable c_ψ; f need not be differentiable (or even
    defined) at relaxed points. With z, b = H(z) and z̃ ∼ p_θ(z | b) as in REBAR,

    .. math::

      \hat g = [f(b) - c_\psi(\tilde z)]\,\nabla_\theta \log p_\theta(b)
        + \nabla_\theta c_\psi(z) - \nabla_\theta c_\psi(\tilde z).

    ψ (your network's parameters) is trained to minimise Var[ĝ]; because E[ĝ] does not
    depend on ψ, ∇ψ Var[ĝ] = ∇ψ E[ĝ²] = E[2 ĝ ∂ĝ/∂ψ], computed by differentiating the
    estimate itself (second-order autodiff) and returned next to it. Variance is
    measured on the gradient w.r.t. the distribution's logits, summed over elements.
    The paper's discrete choice is c_ψ(z) = f(σ_λ(z)) + r_ψ(z).

    Args:
      f: ``f(b, *args)`` scalar per discrete sample (Categorical b one-hot, float).
      dist: ``dist(params)`` returning ``repgrad.Bernoulli`` or ``repgrad.Categorical``.
      control: ``control(z, psi, *args) -> scalar`` for one z of the logits' shape
        (logistic/Gumbel pre-threshold sample); differentiable in z and psi.
      num_samples: N.
      has_aux: whether f returns ``(value, aux)``.
      sample_sharding: optional sharding of the sample axis.

    Returns:
      ``fn(params, key, *args, control_params=psi) -> ((value, grads), psi_grads)``;
      ψ and its optimizer state stay yours. Via ``repgrad.expectation(...,
      estimator="relax", control=c)`` pass ψ as ``control_params=psi`` and get
      ``(loss, psi_grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> f = lambda b: jnp.sum((b - 0.45) ** 2)
      >>> control = lambda z, psi: psi["a"] * jnp.sum(jax.nn.sigmoid(z)) + psi["c"]
      >>> fn = rg.relax_value_and_grad(f, lambda p: rg.Bernoulli(logits=p), control, num_samples=8)
      >>> psi = {"a": jnp.float32(0.0), "c": jnp.float32(0.5)}
      >>> (value, g), psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params=psi)

    References:
      Grathwohl, Choi, Wu, Roeder & Duvenaud, "Backpropagation through the Void:
      Optimizing control variates for black-box gradient estimation", ICLR 2018
      (arXiv:1711.00123).
    """
    num_samples = _core.check_num_samples(num_samples)
    has_aux = _core.check_has_aux(has_aux)
    s = _relax_surrogate(
        f, dist, num_samples=num_samples, has_aux=has_aux, control=control, sample_sharding=sample_sharding
    )
    return _core.make_value_and_grad(s, f, has_aux)


def relax_grad(f, dist, control, *, num_samples: int = 1, has_aux: bool = False, sample_sharding=None):
    r"""RELAX gradient (unbiased); see ``relax_value_and_grad``.

    Returns:
      ``fn(params, key, *args, control_params=psi) -> (grads, psi_grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> control = lambda z, psi: psi * jnp.sum(jax.nn.sigmoid(z))
      >>> fn = rg.relax_grad(lambda b: jnp.sum(b), lambda p: rg.Bernoulli(logits=p), control, num_samples=8)
      >>> g, psi_grad = fn(jnp.zeros(2), jax.random.key(0), control_params=jnp.float32(1.0))

    References:
      Grathwohl et al., ICLR 2018 (arXiv:1711.00123).
    """
    vg = relax_value_and_grad(f, dist, control, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding)
    return _core.make_grad(vg, f, has_aux)
