"""The distribution protocol: resolving ``dist(params)``, drawing samples and log-densities,
whatever the library (repgrad's families, distrax/TFP's ``sample(seed=, sample_shape=)``,
numpyro's ``sample(key, sample_shape)`` with ``has_rsample``). Peer libraries are never
imported: objects are recognised by what they have.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .. import distributions as _d
from . import kernels


def resolve_dist(dist, params):
    """Calls ``dist(params)`` and checks the result speaks a distribution protocol."""
    if not callable(dist):
        raise TypeError(
            f"dist must be a callable params -> distribution, got {type(dist).__name__}. "
            "Write e.g. dist=lambda p: repgrad.Normal(p['loc'], p['scale'])."
        )
    try:
        if isinstance(dist, type) and issubclass(dist, _d.Distribution):
            # Convenience: a family class takes params as a dict of keywords or a tuple.
            family: Any = dist
            if isinstance(params, dict):
                d = family(**params)
            elif isinstance(params, (tuple, list)):
                d = family(*params)
            else:
                d = family(params)
        else:
            d = dist(params)
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        if isinstance(e, (jax.errors.JAXTypeError, jax.errors.JAXIndexError)):
            raise  # a tracing error inside dist (e.g. Python control flow on a tracer): not a structure problem
        structure = jax.tree_util.tree_structure(params)
        raise TypeError(
            f"dist(params) failed with {type(e).__name__}: {e}. params (structure {structure}) "
            "must have the structure that dist reads, e.g. {'loc': ..., 'scale': ...} for "
            "dist=lambda p: Normal(p['loc'], p['scale'])."
        ) from e
    if isinstance(d, type):
        raise TypeError(
            f"dist(params) returned the class {d.__name__} itself, not a distribution: call it "
            f"with the parameters, e.g. dist=lambda p: repgrad.{d.__name__}(p['loc'], p['scale'])."
        )
    if not (hasattr(d, "sample") and hasattr(d, "log_prob")):
        what = (
            f"an array of shape {getattr(d, 'shape', ())}"
            if isinstance(d, jax.Array) or hasattr(d, "shape")  # tracers are jax.Array instances
            else type(d).__name__
        )
        raise TypeError(
            f"dist(params) returned {what}, which has no sample/log_prob. dist maps params to a "
            "distribution object: return a repgrad family (e.g. repgrad.Normal(loc, scale)) or a "
            "distrax/TFP/numpyro distribution."
        )
    return d


def is_reparameterized(d) -> bool | None:
    """True/False when the distribution says; None when it does not."""
    if isinstance(d, _d.Distribution):
        return d.reparameterized
    rtype = getattr(d, "reparameterization_type", None)  # TFP / distrax
    if rtype is not None:
        return "FULLY_REPARAMETERIZED" in str(rtype).upper() or "FULLY_REPARAMETERIZED" in repr(rtype).upper()
    if hasattr(d, "has_rsample"):  # numpyro
        return bool(d.has_rsample)
    return None


def draw(d, key, num_samples: int, *, reparameterized: bool = False):
    """``num_samples`` samples stacked on a new leading axis, whatever the protocol."""
    if isinstance(d, _d.Distribution):
        return d.sample(key, (num_samples,))
    if hasattr(d, "has_rsample"):  # numpyro: positional key
        if reparameterized:
            return d.rsample(key, (num_samples,))
        return d.sample(key, (num_samples,))
    return d.sample(seed=key, sample_shape=(num_samples,))  # distrax / TFP


def not_reparameterized_error(d, estimator: str) -> TypeError:
    return TypeError(
        f"{estimator} needs a reparameterizable distribution, but {type(d).__name__} is not "
        "(its samples are discrete or carry no gradient). Use repgrad.score_grad "
        "(score function / REINFORCE), repgrad.measure_valued_grad, or for Bernoulli/"
        "Categorical a relaxation or an unbiased discrete estimator from repgrad."
    )


def draw_reparameterized(d, key, num_samples: int, estimator: str = "pathwise_grad"):
    """Samples that are differentiable functions of ``d``'s parameters; a ``TypeError`` otherwise."""
    rep = is_reparameterized(d)
    if rep is False:
        raise not_reparameterized_error(d, estimator)
    x = draw(d, key, num_samples, reparameterized=True)
    if rep is None and not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise not_reparameterized_error(d, estimator)
    if _tfp_implicit(d):
        x = kernels.first_order_value(x, kernels.DerivativeOrderError(
            f"{estimator} through TFP's {type(d).__name__} sampler: its implicit-reparameterization "
            "derivatives are right at first order only (second derivatives of a TFP Gamma's draws were "
            "36% off, and grad of grad raises inside TFP). For Hessians use repgrad's own family "
            f"(rg.{type(d).__name__}, exact at every order) or numpyro's, or score/enumeration."))
    return x


# TFP samplers differentiated by implicit reparameterization (a gamma draw inside): their
# custom gradients are first order only.
_TFP_IMPLICIT = ("Gamma", "Beta", "Dirichlet", "Chi2", "InverseGamma", "Kumaraswamy", "StudentT")


def _tfp_implicit(d) -> bool:
    return type(d).__module__.startswith("tensorflow_probability") and type(d).__name__ in _TFP_IMPLICIT


def support_depends_on_params(d) -> bool:
    """Whether ``d``'s support moves with its parameters: a family that says so
    (``support_depends_on_params``, True for repgrad's Uniform) or a peer library's Uniform."""
    flag = getattr(d, "support_depends_on_params", None)
    if flag is not None:
        return bool(flag)
    return type(d).__name__ == "Uniform" and hasattr(d, "low") and hasattr(d, "high")


def check_fixed_support(d) -> None:
    """Score-function estimators need a support that does not move with the parameters."""
    if support_depends_on_params(d):
        raise TypeError(
            f"score-function estimators cannot differentiate {type(d).__name__}: its support moves "
            "with its parameters, so the score-function gradient misses the boundary terms of "
            "∂/∂θ ∫ p_θ(x) f(x) dx and would be silently biased. Use repgrad.pathwise_grad (or "
            "estimator='pathwise', rg.sample(..., estimator='pathwise')), which differentiates the "
            "samples themselves."
        )


# Peers' families whose log-density is not twice differentiable in a parameter (repgrad's own
# declare ``log_prob_smoothness``): |x − loc| has a kink at x = loc, the triangle one at its peak.
_PEER_SMOOTHNESS = {
    "Laplace": {"loc": 1},
    "AsymmetricLaplace": {"loc": 1},
    "AsymmetricLaplaceQuantile": {"loc": 1},
    "Triangular": {"peak": 1},
}
# Peers' families whose support moves with a parameter, by name (numpyro's are also read off
# their ``support`` constraint). Others cannot be detected: a ``TransformedDistribution``
# through a bijector with learned parameters, a mixture of them; the README says so.
_PEER_MOVING_SUPPORT = {
    "Pareto": ("scale",),
    "TruncatedNormal": ("low", "high"),
    "TruncatedCauchy": ("low", "high"),
    "Triangular": ("low", "high"),
    "PERT": ("low", "high"),
    "GeneralizedPareto": ("loc", "scale", "concentration"),
    "Uniform": ("low", "high"),
    "Clipped": ("minimum", "maximum"),
    "ClippedNormal": ("minimum", "maximum"),
    "ClippedLogistic": ("minimum", "maximum"),
}
_WRAPPED = ("distribution", "base_dist", "base_distribution")


def _components(d, depth: int = 4):
    """``d`` and the distributions it wraps (Independent, Sample, Masked, Expanded, ...)."""
    yield d
    if depth:
        for name in _WRAPPED:
            inner = getattr(d, name, None)
            if inner is not None and inner is not d and hasattr(inner, "log_prob"):
                yield from _components(inner, depth - 1)


def _support_bounds(support, depth: int = 4):
    """The array-valued bounds of a numpyro constraint (``lower_bound``, ``upper_bound``, ...)."""
    bounds = []
    for name in ("lower_bound", "upper_bound", "low", "high"):
        value = getattr(support, name, None)
        if value is not None and not callable(value):
            bounds.append(value)
    inner = getattr(support, "base_constraint", None)
    if inner is not None and depth:
        bounds += _support_bounds(inner, depth - 1)
    return bounds


def _smoothness_error(d, param: str) -> kernels.DerivativeOrderError:
    return kernels.DerivativeOrderError(
        f"a score-function second derivative in {type(d).__name__}'s {param} would be biased: its "
        f"log-density is not twice differentiable in {param} (it has a kink at x = {param}, so "
        f"∂²p/∂{param}² has a point mass that the estimate ∇²p(x)/p(x) never sees). Differentiate "
        f"{param} only once with a score-function estimator, or use the pathwise estimator "
        "(rg.pathwise(), rg.sample(..., estimator='pathwise')), exact at every order for a smooth f."
    )


def _moving_support_error(d, params) -> TypeError:
    return TypeError(
        f"score-function estimators cannot differentiate {type(d).__name__} in {', '.join(params)}: "
        "its support moves with them, so the score-function gradient misses the boundary terms of "
        "∂/∂θ ∫ p_θ(x) f(x) dx and would be silently biased. Use repgrad.pathwise_grad (or "
        "estimator='pathwise', rg.sample(..., estimator='pathwise')), which differentiates the "
        "samples themselves, or hold those parameters fixed."
    )


def score_guards(d):
    """A zero scalar to add to ``d``'s log-densities in score-function estimators: it raises at
    trace time on derivatives those estimators would get wrong.

    - a second derivative in a parameter whose log-density is smooth to first order only
      (``log_prob_smoothness`` of repgrad's families; a peer's Laplace ``loc``):
      ``DerivativeOrderError``;
    - any derivative in a parameter its support moves with (a numpyro family's ``support``
      bounds; a peer's Pareto ``scale``, TruncatedNormal ``low``/``high``): ``TypeError``.
    """
    total = jnp.zeros(())
    for part in _components(d):
        name = type(part).__name__
        own = isinstance(part, _d.Distribution)
        smooth = getattr(part, "log_prob_smoothness", None) if own else _PEER_SMOOTHNESS.get(name)
        for param, order in (smooth or {}).items():
            value = getattr(part, param, None)
            if value is None or order >= 2:
                continue
            if order == 0:  # not even a first derivative (a support bound)
                total = total + kernels.constant_in([value], _moving_support_error(part, [param]))
            else:
                total = total + kernels.first_order_in(value, _smoothness_error(part, param))
        if own:
            continue
        moving = [p for p in _PEER_MOVING_SUPPORT.get(name, ()) if getattr(part, p, None) is not None]
        bounds = [getattr(part, p) for p in moving]
        if hasattr(part, "has_rsample") and hasattr(part, "support"):  # numpyro: read the constraint
            try:
                bounds += _support_bounds(part.support)
                moving = moving or ["the bounds of its support"]
            except Exception:  # a support that cannot be read: fall back to the name table
                pass
        if bounds:
            total = total + kernels.constant_in(bounds, _moving_support_error(part, moving))
    return total


def draw_scored(d, key, num_samples: int, shard=lambda x: x, *, joint: bool = True):
    """Stop-gradient samples and their log-densities, differentiable in ``d``'s parameters, for
    score-function estimators: (num_samples,) joint log-densities, or ``joint=False`` the
    elementwise ones as ``log_prob`` returns them.

    A repgrad family whose samples lose precision at the edge of the support in low precision
    (e.g. Beta draws that round to 1.0, Gamma draws below the smallest normal float) gives its
    log-density from the exact log-coordinates of the draw (``_sample_and_log_prob``), so the
    score stays finite and unbiased; any other distribution evaluates ``log_prob`` at the draw.

    The log-densities carry ``score_guards(d)``: a second derivative in a parameter whose
    log-density has a kink (a Laplace's ``loc``) and any derivative in a parameter the support
    moves with (a peer's Pareto ``scale``) raise at trace time.
    """
    check_fixed_support(d)  # every score-function path draws here: biased for a moving support
    own = getattr(d, "_sample_and_log_prob", None) if isinstance(d, _d.Distribution) else None
    if own is not None:
        x, lp = own(key, (num_samples,))
        x = shard(jax.lax.stop_gradient(x))
    else:
        x = shard(jax.lax.stop_gradient(draw(d, key, num_samples)))
        # The draws lie inside the support: repgrad's families skip the support mask there (the
        # mask made XLA compute the sampler twice, 7-9% of a score gradient).
        lp = d._log_prob_of_draws(x) if isinstance(d, _d.Distribution) else d.log_prob(x)
    lp = jnp.asarray(lp) + score_guards(d).astype(jnp.result_type(lp))
    return (x, jnp.sum(jnp.reshape(lp, (num_samples, -1)), axis=1)) if joint else (x, lp)


def joint_log_prob(d, x, num_samples: int):
    """log p(x_n) for each sample, summed over the batch: shape (num_samples,)."""
    return jnp.sum(jnp.reshape(d.log_prob(x), (num_samples, -1)), axis=1)
