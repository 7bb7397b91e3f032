r"""Composing a control variate with any estimator.

For h with E_{p_θ}[h] known in closed form (as a differentiable function of θ),

.. math::

  \nabla_\theta \mathbb{E}_{p_\theta}[f] = \nabla_\theta \mathbb{E}_{p_\theta}[f - c\,h]
    + c\,\nabla_\theta \mathbb{E}_{p_\theta}[h],

so any estimator applied to the residual f − c·h, plus c·∇E[h] exactly, is unbiased for
any c — at every derivative order the estimator supports, since the second term is
differentiated exactly. ``with_control_variate`` builds that estimator from any other; the
value it reports is the estimator's own value of f − c·h plus c·E[h], unbiased for E[f].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import kernels
from ..core.estimator import Estimator
from .control_variates import ControlVariate, build
from .delta import delta_method
from .optimal import per_sample_coefficient_estimator

_sg = jax.lax.stop_gradient


def resolve_control_variate(control_variate) -> ControlVariate | None:
    if control_variate is None or isinstance(control_variate, ControlVariate):
        return control_variate
    if isinstance(control_variate, str) and control_variate in ("delta", "delta_method"):
        return delta_method()
    raise TypeError(
        f"control_variate must be None, 'delta', or a repgrad.ControlVariate (from "
        f"repgrad.control_variate(h, expected_value) or repgrad.delta_method()); got {control_variate!r}."
    )


def with_control_variate(estimator: Estimator, control_variate) -> Estimator:
    r"""``estimator`` applied to f − c·h, plus c·∇θE[h] computed exactly.

    .. math::

      \hat g_{\rm cv} = \hat g(f - c\,h) + c\,\nabla_\theta \mathbb{E}_{p_\theta}[h].

    Works with every estimator (pathwise, score, measure-valued, the discrete ones), and
    keeps whatever derivative orders the estimator supports (the second term is exact).
    The reported value is the estimator's value of f − c·h plus c·E[h]: unbiased for E[f]
    (with a plain-mean estimator it is the control-variate estimate of E[f]; the set estimators
    weight their points, so a plain mean of every f evaluated would be biased). A biased
    relaxation (Gumbel-softmax) reports its plain mean of f, the relaxed objective's value.

    Args:
      estimator: an ``Estimator`` value (e.g. ``rg.measure_valued()``).
      control_variate: ``"delta"``, ``rg.delta_method(...)``, ``rg.control_variate(h, E)``, or
        ``None`` (returns ``estimator`` unchanged). With ``coefficient="optimal"`` one coefficient
        per coordinate of the distribution's parameters is estimated from per-sample estimates
        (the estimator run one sample at a time; regression on the other samples, unbiased;
        first derivatives only, N ≥ 3). Estimators that need several samples per call (a
        leave-one-out baseline) are refused: the score function does it from its elementwise
        scores with any baseline (``rg.score(baseline=..., control_variate=...)``).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> est = rg.with_control_variate(rg.measure_valued(), rg.delta_method())
      >>> g = rg.grad(lambda x: jnp.sum(jnp.sin(x)), lambda p: rg.Normal(p, 0.5), est,
      ...             num_samples=16)(jnp.ones(2), jax.random.key(0))
    """
    cv = resolve_control_variate(control_variate)
    if cv is None:
        return estimator
    if estimator.log_weight or estimator.name == "enumeration":
        raise TypeError(
            f"the {estimator.name} estimator takes no control variate: "
            + ("it is exact." if estimator.name == "enumeration" else "f is a log-weight inside a K-sample bound.")
        )
    if isinstance(cv.coefficient, str):
        return per_sample_coefficient_estimator(estimator, cv)

    def surrogate(problem, d, key, state, control):
        h, expected = build(cv, problem, d)
        f, has_aux = problem.f, problem.has_aux

        def residual(x, key, *args):
            out = f(x, key, *args)
            fx, aux = out if has_aux else (out, None)
            fx = jnp.asarray(fx)
            c = jnp.asarray(cv.coefficient, fx.dtype)
            return fx - c * jnp.asarray(h(x)).astype(fx.dtype), (fx, aux)

        out = estimator.surrogate(problem.replace_f(residual, has_aux=True), d, key, state, control)
        fx, aux = out.aux
        c = jnp.asarray(cv.coefficient, out.value.dtype)
        if estimator.biased:
            # a relaxation evaluates f at relaxed points, where E[h] (over the discrete
            # distribution) does not apply: its value is the plain mean, as without the cv
            value = jnp.mean(fx).astype(out.value.dtype)
        else:
            # the estimator's own value of f − c·h, plus c·E[h]: unbiased for E[f] whatever
            # points it evaluated (the set estimators weight theirs: a plain mean is biased)
            value = out.value + c * jnp.asarray(_sg(expected)).astype(out.value.dtype)
        loss = kernels.with_value(out.loss + c * jnp.asarray(expected).astype(value.dtype), value)
        return out._replace(loss=loss, value=value, aux=aux if has_aux else None)

    return estimator._replace(name=f"{estimator.name}+{cv.name}", surrogate=surrogate)
