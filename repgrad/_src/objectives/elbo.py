"""The evidence lower bound as a surrogate, with pathwise or sticking-the-landing gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ..core import checks, evaluate, kernels, protocol, sharding
from ..core import estimator as estimator_module
from ..distributions.kl import closed_form_kl

_sg = jax.lax.stop_gradient

ESTIMATORS = ("pathwise", "stl")
KL = (None, "analytic", "monte_carlo")


def check_choice(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}.")
    return value


def reparameterized(dist, params, key, num, sample_sharding):
    """q = dist(params) and ``num`` reparameterized latents z (sharded)."""
    q = protocol.resolve_dist(dist, params)
    z = protocol.draw_reparameterized(q, key, num, "elbo/iwae_bound")
    return q, sharding.shard_samples(z, sample_sharding)


def keyed(log_joint, f_key: bool, key, num: int):
    """``(log_joint(z, key_n, *args), keys)``: the log joint taking a key, and the N keys of its
    own randomness with ``f_key`` (``None`` otherwise, and the key is ignored)."""
    if f_key:
        return log_joint, estimator_module.f_keys(key, num)[0]
    return (lambda z, k, *args: log_joint(z, *args)), None


def pathwise_terms(log_joint, dist, params, key, args, num, *, has_aux, sample_sharding, keys=None):
    """(log p(x, z_n), log q(z_n), aux), everything differentiable: the plain pathwise bound.
    ``log_joint(z, key, *args)`` gets ``keys[n]`` (or ``None``)."""
    q, z = reparameterized(dist, params, key, num, sample_sharding)
    lq = protocol.joint_log_prob(q, z, num)
    lj, aux = _eval(log_joint, z, args, has_aux, num, keys)
    return lj, lq.astype(lj.dtype), aux


def stl_terms(log_joint, dist, params, key, args, num, *, has_aux, sample_sharding, keys=None):
    """(lw_θ, lw_stl, aux) for sticking the landing and DReG, each (num,).

    lw_θ = log p(x, ⊥z) − ⊥log q(z) is differentiable only in log_joint's args (the value and
    the model gradient); lw_stl = log p(x, z; ⊥args) − log q_⊥φ(z) is differentiable in φ only
    through z.
    """
    q, z = reparameterized(dist, params, key, num, sample_sharding)
    q_stop = protocol.resolve_dist(dist, jax.tree_util.tree_map(_sg, params))
    lq = protocol.joint_log_prob(q, z, num)
    lj_stl, _ = _eval(log_joint, z, _sg(args), has_aux, num, keys)
    lw_stl = lj_stl - protocol.joint_log_prob(q_stop, z, num).astype(lj_stl.dtype)
    lj_theta, aux = _eval(log_joint, _sg(z), args, has_aux, num, keys)
    return lj_theta - _sg(lq).astype(lj_theta.dtype), lw_stl, aux


def _eval(log_joint, z, args, has_aux, num, keys=None):
    try:
        return evaluate.eval_f(log_joint, z, args, has_aux, num, keys)
    except TypeError as e:
        raise TypeError(f"log_joint: {e} It returns the scalar log p(x, z) for one latent z.") from None


def elbo(
    log_joint: Callable[..., Any],
    dist: Callable[[Any], Any],
    *,
    num_samples: int = 1,
    estimator: str = "pathwise",
    has_aux: bool = False,
    sample_sharding: jax.sharding.Sharding | None = None,
    prior: Any = None,
    kl: str | None = None,
    f_key: bool = False,
) -> Callable[..., Any]:
    r"""The evidence lower bound as a surrogate: value = ELBO estimate, gradient = estimator.

    .. math::

      \mathcal{L}(\phi, \theta) = \mathbb{E}_{q_\phi(z)}[\log p_\theta(x, z) - \log q_\phi(z)]
        \approx \frac{1}{N}\sum_n \log p_\theta(x, z_n) - \log q_\phi(z_n),
        \quad z_n = g(\phi, \epsilon_n).

    ``estimator="pathwise"`` differentiates everything (unbiased at every order).
    ``"stl"`` (sticking the landing) drops the score term ∇φ log q_φ(z)|_{z fixed}, whose
    expectation is zero: the gradient is (1/N) Σ ∇z[log p(x, z) − log q_φ(z)]|_{z_n} ∂z_n/∂φ,
    unbiased, and exactly zero when q equals the posterior (first derivatives only).
    Gradients w.r.t. the model's own parameters (log_joint's extra args) are the usual
    (1/N) Σ ∇θ log p_θ(x, z_n).

    **KL in closed form.** With ``kl="analytic"`` (and ``prior=``), the first argument is the
    log-*likelihood* log p(x | z) and

    .. math::

      \mathcal{L} = \mathbb{E}_{q_\phi}[\log p_\theta(x \mid z)] - \mathrm{KL}(q_\phi \,\|\, p(z)),

    with the KL exact where a closed form is known — every pair for which
    ``q.kl_divergence(p)`` has one (repgrad's Normal, LogNormal, MultivariateNormalDiag/Tri,
    Laplace, Exponential, Gamma, Beta, Dirichlet and Uniform pairs among the reparameterized
    families; the formulas are in ``repgrad/_src/distributions/kl.py``), and distrax/TFP pairs
    through their ``kl_divergence`` — summed over the batch, and the Monte Carlo
    (1/N) Σ log q(z_n) − log p(z_n) otherwise; ``kl="monte_carlo"`` always uses the latter.
    The bound is to be *maximized*; minimize ``-elbo(...)``.

    Args:
      log_joint: ``log_joint(z, *args)`` returning the scalar log p(x, z) for one latent z
        (the log-likelihood log p(x | z) with ``kl=``); ``(scalar, aux)`` with ``has_aux``.
      dist: ``dist(params)`` returning a reparameterizable q.
      num_samples: N (keyword-only, static).
      estimator: ``"pathwise"`` or ``"stl"``.
      has_aux: whether log_joint returns ``(value, aux)``; aux is stacked over samples.
      sample_sharding: optional ``jax.sharding.Sharding`` for the sample axis.
      prior: with ``kl=``: the prior p(z), a distribution or ``prior(*args) ->`` one.
      kl: ``None`` (log_joint is the joint), ``"analytic"`` or ``"monte_carlo"``.
      f_key: call ``log_joint(z, key_n, *args)`` with a key of its own for each sample
        (dropout in a decoder, a simulator), split from the call's key.

    Returns:
      ``loss(params, key, *args)``: a scalar (``(scalar, aux)`` with ``has_aux``) whose
      value is the ELBO estimate and whose ``jax.grad`` is the chosen estimator.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> log_lik = lambda z, x: jnp.sum(-0.5 * (x - z) ** 2)
      >>> bound = rg.elbo(log_lik, lambda p: rg.Normal(p["loc"], p["scale"]), num_samples=8,
      ...                 prior=rg.Normal(jnp.zeros(2), 1.0), kl="analytic")
      >>> params = {"loc": jnp.zeros(2), "scale": jnp.ones(2)}
      >>> g = jax.grad(bound)(params, jax.random.key(0), jnp.ones(2))

    References:
      Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
      Roeder, Wu & Duvenaud, "Sticking the Landing: Simple, Lower-Variance Gradient
      Estimators for Variational Inference", NeurIPS 2017 (arXiv:1703.09194).
    """
    check_choice(estimator, ESTIMATORS, "elbo estimator")
    check_choice(kl, KL, "kl")
    num_samples = checks.check_num_samples(num_samples)
    has_aux = checks.check_has_aux(has_aux)
    f_key = checks.check_flag(f_key, "f_key")
    sample_sharding = sharding.check_sharding(sample_sharding)
    if (kl is None) != (prior is None):
        raise TypeError(
            "kl= and prior= go together: with kl='analytic' or 'monte_carlo' pass prior=p(z) and give "
            "the log-likelihood log p(x | z) as the first argument; without them, log_joint is log p(x, z)."
        )
    if kl == "analytic" and estimator == "stl":
        raise ValueError("sticking the landing drops q's score term of a Monte Carlo entropy; with "
                         "kl='analytic' there is none: use estimator='pathwise'.")

    def loss(params, key, *args):
        checks.check_key(key)
        q = protocol.resolve_dist(dist, params)  # for the KL; the draws resolve it again
        p = (prior(*args) if callable(prior) and not hasattr(prior, "log_prob") else prior) if kl else None
        exact_kl = closed_form_kl(q, p) if kl == "analytic" else None
        joint, keys = keyed(log_joint, f_key, key, num_samples)
        if kl is not None and exact_kl is None:  # Monte Carlo KL: log p(x | z) + log p(z) is the joint
            joint = _with_prior(joint, p, has_aux)
        options = dict(has_aux=has_aux, sample_sharding=sample_sharding, keys=keys)
        if estimator == "pathwise":
            lj, lq, aux = pathwise_terms(joint, dist, params, key, args, num_samples, **options)
            # With an exact KL, log q leaves the Monte Carlo part: E_q[log p(x|z)] − KL(q‖p).
            value = jnp.mean(lj) - exact_kl.astype(lj.dtype) if exact_kl is not None else jnp.mean(lj - lq)
        else:
            # STL: φ only through z (q's parameters stopped); θ as usual. Value = mean(lw).
            lw_theta, lw_stl, aux = stl_terms(joint, dist, params, key, args, num_samples, **options)
            n = jnp.full(lw_stl.shape, 1.0 / num_samples, lw_stl.dtype)
            term = kernels.pullback([(lw_stl, n)], "elbo(estimator='stl')", lw_theta.dtype, watch=(lw_theta,))
            value = jnp.mean(lw_theta) + term
        return (value, aux) if has_aux else value

    loss.__name__ = loss.__qualname__ = f"elbo_{getattr(log_joint, '__name__', 'log_joint')}"
    return loss


def _with_prior(log_lik, prior, has_aux):
    def joint(z, key, *args):
        out = log_lik(z, key, *args)
        value, aux = out if has_aux else (out, None)
        lp = jnp.sum(prior.log_prob(z))
        total = value + lp.astype(jnp.result_type(value))
        return (total, aux) if has_aux else total

    return joint
