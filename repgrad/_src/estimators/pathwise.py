"""Pathwise (reparameterization) gradient estimator."""

from __future__ import annotations

import jax.numpy as jnp

from ..core import path, protocol
from ..core.estimator import Estimator, Out
from ..variance_reduction.compose import with_control_variate


def pathwise(*, allow_zero_gradient: bool = False, control_variate=None) -> Estimator:
    r"""The pathwise (reparameterization) estimator.

    Samples are written as a differentiable function of the parameters and noise,
    x = g(θ, ε) with ε ~ p(ε), and the gradient goes through f:

    .. math::

      \nabla_\theta \mathbb{E}_{p_\theta(x)}[f(x)]
        = \mathbb{E}_{p(\epsilon)}[\nabla_x f(g(\theta, \epsilon))\, \nabla_\theta g(\theta, \epsilon)]
        \approx \frac{1}{N} \sum_{n=1}^N \nabla_\theta f(g(\theta, \epsilon_n)).

    Gamma, Beta and Dirichlet use implicit reparameterization (Figurnov et al., 2018):
    ∇θ x = −(∂F/∂θ)/(∂F/∂x) with F the CDF, as implemented by ``jax.random.gamma``.
    Unbiased; needs f differentiable in x and a continuous, reparameterizable p_θ. Its
    variance is typically far below the score function's, but it grows with the Lipschitz
    constant of f (Mohamed et al., 2020, §5). Unbiased at every derivative order that the
    sampler supports (x = g(θ, ε) is differentiated as often as asked).

    Where the pathwise gradient cannot be right, differentiating in the distribution's
    parameters raises ``repgrad.ZeroGradientError`` at trace time: f constant or piecewise
    constant in x (a comparison, ``jnp.heaviside``, ``astype(int)``: the estimate would be 0
    whatever the true gradient is), f with a jump (a piecewise-constant term added to a smooth
    one, ``x[0] ** 2 + (x[1] > 0)``: the jump's contribution would be missed), or a sampler
    that carries no gradient. f is read from its jaxpr once per trace (``core/dependence.py``),
    whatever else is differentiated at the same time (``argnums=(0, 2)``, ``jax.jvp``), also
    under a control variate. Continuous f with kinks (ReLU, ``abs``, ``max``) are fine.
    Derivatives in f's own arguments alone are exact for any f.

    Args:
      allow_zero_gradient: skip those checks (for an f that truly does not depend on x, or
        whose discontinuities you have ruled out).
      control_variate: ``None``, ``"delta"`` or a ``repgrad.ControlVariate``; see
        ``repgrad.with_control_variate``.

    Returns:
      An ``Estimator`` for ``rg.grad``, ``rg.value_and_grad`` and ``rg.expectation``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> grad_fn = rg.grad(lambda x: x ** 2, lambda p: rg.Normal(p, 1.0), rg.pathwise(), num_samples=4096)
      >>> g = grad_fn(jnp.float32(1.5), jax.random.key(0))  # exact: 2 * 1.5 = 3

    References:
      Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
      Figurnov, Mohamed & Mnih, "Implicit Reparameterization Gradients", NeurIPS 2018.
      Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient Estimation in Machine
      Learning", JMLR 2020 (arXiv:1906.10652), §5.
    """

    def surrogate(problem, d, key, state, control):
        x = protocol.draw_reparameterized(d, key, problem.num_samples)
        values, aux = problem.evaluate(x)
        if not allow_zero_gradient:
            values = path.checked_values(problem, d, x, values)
        value = jnp.mean(values)
        return Out(value, value, aux)

    est = Estimator("pathwise", surrogate, family="reparameterized")
    return with_control_variate(est, control_variate)
