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
    return x


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


def draw_scored(d, key, num_samples: int, shard=lambda x: x, *, joint: bool = True):
    """Stop-gradient samples and their log-densities, differentiable in ``d``'s parameters, for
    score-function estimators: (num_samples,) joint log-densities, or ``joint=False`` the
    elementwise ones as ``log_prob`` returns them.

    A repgrad family whose samples lose precision at the edge of the support in low precision
    (e.g. Beta draws that round to 1.0, Gamma draws below the smallest normal float) gives its
    log-density from the exact log-coordinates of the draw (``_sample_and_log_prob``), so the
    score stays finite and unbiased; any other distribution evaluates ``log_prob`` at the draw.
    """
    check_fixed_support(d)  # every score-function path draws here: biased for a moving support
    own = getattr(d, "_sample_and_log_prob", None) if isinstance(d, _d.Distribution) else None
    if own is not None:
        x, lp = own(key, (num_samples,))
        x = shard(jax.lax.stop_gradient(x))
    else:
        x = shard(jax.lax.stop_gradient(draw(d, key, num_samples)))
        lp = d.log_prob(x)
    lp = jnp.asarray(lp)
    return (x, jnp.sum(jnp.reshape(lp, (num_samples, -1)), axis=1)) if joint else (x, lp)


def joint_log_prob(d, x, num_samples: int):
    """log p(x_n) for each sample, summed over the batch: shape (num_samples,)."""
    return jnp.sum(jnp.reshape(d.log_prob(x), (num_samples, -1)), axis=1)
