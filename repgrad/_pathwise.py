"""Pathwise (reparameterization) gradient estimator."""

from __future__ import annotations

import jax.numpy as jnp

from . import _core, _cv_surrogates


def _pathwise_surrogate(f, dist, *, num_samples, has_aux, control_variate=None, sample_sharding=None):
    if control_variate is not None:
        return _cv_surrogates.pathwise_cv_surrogate(
            f,
            dist,
            num_samples=num_samples,
            has_aux=has_aux,
            control_variate=control_variate,
            sample_sharding=sample_sharding,
        )

    def fn(params, key, args, state):
        d = _core.resolve_dist(dist, params)
        x = _core.shard_samples(_core.sample_for_pathwise(d, key, num_samples), sample_sharding)
        values, aux = _core.eval_f(f, x, args, has_aux, num_samples)
        value = jnp.mean(values)
        return value, (value, aux, None)

    return _core.Surrogate(fn)


def pathwise_value_and_grad(
    f, dist, *, num_samples: int = 1, has_aux: bool = False, control_variate=None, sample_sharding=None
):
    r"""Monte Carlo value and pathwise (reparameterization) gradient of E_{p_θ}[f].

    Samples are written as a differentiable function of the parameters and noise,
    x = g(θ, ε) with ε ~ p(ε), and the gradient goes through f:

    .. math::

      \nabla_\theta \mathbb{E}_{p_\theta(x)}[f(x)]
        = \mathbb{E}_{p(\epsilon)}[\nabla_x f(g(\theta, \epsilon))\, \nabla_\theta g(\theta, \epsilon)]
        \approx \frac{1}{N} \sum_{n=1}^N \nabla_\theta f(g(\theta, \epsilon_n)).

    Gamma, Beta and Dirichlet use implicit reparameterization (Figurnov et al., 2018):
    ∇θ x = −(∂F/∂θ)/(∂F/∂x) with F the CDF, as implemented by ``jax.random.gamma``.
    Unbiased; needs f differentiable in x and a continuous, reparameterizable p_θ.
    Its variance is typically far below the score function's, but it grows with the
    Lipschitz constant of f (Mohamed et al., 2020, §5).

    Args:
      f: ``f(x, *args)`` returning a scalar for one sample ``x`` (or ``(scalar, aux)``
        with ``has_aux=True``).
      dist: ``dist(params)`` returning a reparameterizable distribution: a repgrad
        family, or a distrax/TFP/numpyro distribution with a reparameterized sampler.
      num_samples: N, the number of samples averaged (keyword-only, static).
      has_aux: whether f returns ``(value, aux)``; aux is stacked over samples.
      control_variate: ``None``, ``"delta"`` or a ``repgrad.ControlVariate``: the
        estimate becomes ∇θ[f − c·h](x(θ, ε)) averaged, plus c·∇θE[h] (h must be
        differentiable in x); see ``repgrad.control_variate``.
      sample_sharding: optional ``jax.sharding.Sharding`` for the sample axis, e.g.
        ``NamedSharding(mesh, PartitionSpec("samples"))``; f's evaluations are then
        split across devices by XLA.

    Returns:
      ``fn(params, key, *args) -> (value, grads)`` (``((value, aux), grads)`` with
      ``has_aux``), ``grads`` having the structure of ``params``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> f = lambda x: jnp.sum(x ** 2)
      >>> dist = lambda p: rg.Normal(p["loc"], p["scale"])
      >>> fn = rg.pathwise_value_and_grad(f, dist, num_samples=1000)
      >>> value, g = fn({"loc": jnp.ones(2), "scale": jnp.ones(2)}, jax.random.key(0))
      >>> g["loc"].shape
      (2,)

    References:
      Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
      Figurnov, Mohamed & Mnih, "Implicit Reparameterization Gradients", NeurIPS 2018.
      Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient Estimation in Machine
      Learning", JMLR 2020 (arXiv:1906.10652), §5.
    """
    num_samples = _core.check_num_samples(num_samples)
    has_aux = _core.check_has_aux(has_aux)
    surrogate = _pathwise_surrogate(
        f,
        dist,
        num_samples=num_samples,
        has_aux=has_aux,
        control_variate=control_variate,
        sample_sharding=sample_sharding,
    )
    return _core.make_value_and_grad(surrogate, f, has_aux)


def pathwise_grad(
    f, dist, *, num_samples: int = 1, has_aux: bool = False, control_variate=None, sample_sharding=None
):
    r"""Pathwise (reparameterization) gradient of E_{p_θ}[f]; see ``pathwise_value_and_grad``.

    .. math::

      \hat g = \frac{1}{N} \sum_{n=1}^N \nabla_\theta f(g(\theta, \epsilon_n)),
      \quad \epsilon_n \sim p(\epsilon).

    Returns:
      ``fn(params, key, *args) -> grads`` (``(grads, aux)`` with ``has_aux``).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> grad_fn = rg.pathwise_grad(lambda x: x ** 2, lambda p: rg.Normal(p, 1.0), num_samples=4096)
      >>> g = grad_fn(jnp.float32(1.5), jax.random.key(0))  # exact: 2 * 1.5 = 3

    References:
      Kingma & Welling 2014; Figurnov et al. 2018; Mohamed et al. 2020 (arXiv:1906.10652).
    """
    vg = pathwise_value_and_grad(
        f,
        dist,
        num_samples=num_samples,
        has_aux=has_aux,
        control_variate=control_variate,
        sample_sharding=sample_sharding,
    )
    return _core.make_grad(vg, f, has_aux)
