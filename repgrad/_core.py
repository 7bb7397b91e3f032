"""Machinery shared by every estimator: argument checks, the distribution protocol,
evaluating ``f`` over samples, and turning a surrogate loss into a ``jax.grad``-style
transform.

Every estimator in repgrad is written as a *surrogate*: a function of
``(params, key, args, state)`` whose value is the Monte Carlo estimate of E[f] and
whose ``jax.grad`` with respect to ``params`` is the estimator. ``expectation``
returns surrogates; the ``*_value_and_grad`` transforms differentiate them.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _distributions as _d


class Surrogate(NamedTuple):
    """An estimator, as a surrogate objective.

    Attributes:
      fn: ``fn(params, key, args, state) -> (loss, (value, aux, new_state))``; ``loss``
        equals ``value`` numerically and its gradient w.r.t. ``params`` is the estimator.
      init_state: ``None`` when stateless, else a callable returning the initial state.
      state_name: the keyword the public functions take the state by.
    """

    fn: Callable[..., Any]
    init_state: Callable[[], Any] | None = None
    state_name: str = "baseline_state"


# ----------------------------------------------------------------------------- checks


def check_num_samples(num_samples, minimum: int = 1, why: str = "") -> int:
    if not isinstance(num_samples, int) or isinstance(num_samples, bool):
        try:
            if isinstance(num_samples, bool):
                raise TypeError("bool")  # True/False are ints to Python, but surely a mistake here
            num_samples = operator.index(num_samples)
        except TypeError:
            raise TypeError(
                f"num_samples must be a Python int, got {num_samples!r} of type "
                f"{type(num_samples).__name__}. It sets array shapes, so it cannot be traced; "
                "pass it as a static value, e.g. num_samples=64."
            ) from None
    if num_samples < minimum:
        raise ValueError(f"num_samples must be >= {minimum}{why}; got {num_samples}. Use e.g. num_samples=16.")
    return num_samples


def check_key(key) -> None:
    """Raises a ``TypeError`` (at trace time) unless ``key`` is a JAX PRNG key."""
    ok = False
    if isinstance(key, (jax.Array, jax.core.Tracer)) or hasattr(key, "dtype"):
        dtype = getattr(key, "dtype", None)
        shape = getattr(key, "shape", None)
        if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            ok = shape == ()
        elif dtype == jnp.uint32 and shape in ((2,), (4,)):
            ok = True  # legacy raw keys from jax.random.PRNGKey
    if not ok:
        got = f"array of dtype {key.dtype} and shape {key.shape}" if hasattr(key, "dtype") else repr(key)
        raise TypeError(
            f"key must be a single JAX PRNG key, got {got}. Create one with "
            "jax.random.key(seed) and split it for each call: the transforms take "
            "(params, key, *args) in that order. To use several keys, jax.vmap over them."
        )


def check_has_aux(has_aux) -> bool:
    if not isinstance(has_aux, bool):
        raise TypeError(f"has_aux must be True or False, got {has_aux!r}.")
    return has_aux


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
            if isinstance(params, dict):
                d = dist(**params)
            elif isinstance(params, (tuple, list)):
                d = dist(*params)
            else:
                d = dist(params)
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
    if not (hasattr(d, "sample") and hasattr(d, "log_prob")):
        raise TypeError(
            f"dist(params) returned {type(d).__name__}, which has no sample/log_prob. Return a "
            "repgrad distribution (e.g. repgrad.Normal) or a distrax/TFP/numpyro one."
        )
    return d


# ------------------------------------------------------------ the distribution protocol


def is_reparameterized(d) -> bool | None:
    """True/False when the distribution says; None when it does not."""
    if isinstance(d, _d.Distribution):
        return d.reparameterized
    rtype = getattr(d, "reparameterization_type", None)  # TFP
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


def joint_log_prob(d, x, num_samples: int):
    """log p(x_n) for each sample, summed over the batch: shape (num_samples,)."""
    lp = d.log_prob(x)
    lp = jnp.reshape(lp, (num_samples, -1))
    return jnp.sum(lp, axis=1)


def not_reparameterized_error(d, estimator: str) -> TypeError:
    return TypeError(
        f"{estimator} needs a reparameterizable distribution, but {type(d).__name__} is not "
        "(its samples are discrete or carry no gradient). Use repgrad.score_grad "
        "(score function / REINFORCE), repgrad.measure_valued_grad, or for Bernoulli/"
        "Categorical a relaxation or an unbiased discrete estimator from repgrad."
    )


def sample_for_pathwise(d, key, num_samples: int):
    rep = is_reparameterized(d)
    if rep is False:
        raise not_reparameterized_error(d, "pathwise_grad")
    x = draw(d, key, num_samples, reparameterized=True)
    if rep is None and not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise not_reparameterized_error(d, "pathwise_grad")
    return x


# ------------------------------------------------------------------- evaluating f


def shard_samples(x, sharding):
    """Places the leading (sample) axis of ``x`` with ``sharding``, if one is given.

    Checked at trace time, because XLA would otherwise quietly replicate the samples
    (indivisible count) or refuse the constraint deep inside (Explicit mesh axes).
    """
    if sharding is None:
        return x
    if not isinstance(sharding, jax.sharding.Sharding):
        raise TypeError(
            f"sample_sharding must be a jax.sharding.Sharding, got {type(sharding).__name__}; e.g. "
            "NamedSharding(mesh, PartitionSpec('samples'))."
        )
    mesh = getattr(sharding, "mesh", None)
    axis_types = getattr(mesh, "axis_types", ())
    if any(str(t).endswith("Explicit") for t in axis_types):
        raise ValueError(
            "sample_sharding uses a mesh with Explicit axes, which with_sharding_constraint cannot "
            "use; build the mesh with Auto axes: jax.make_mesh(shape, names, "
            "axis_types=(jax.sharding.AxisType.Auto,) * len(names))."
        )

    def place(a):
        try:
            sharding.shard_shape(a.shape)
        except ValueError as e:
            raise ValueError(
                f"num_samples={a.shape[0]} cannot be split evenly by sample_sharding ({e}). Use a "
                "multiple of the number of devices on the sample axis."
            ) from None
        return jax.lax.with_sharding_constraint(a, sharding)

    return jax.tree_util.tree_map(place, x)


def eval_f(f, x, args, has_aux: bool, num_samples: int):
    """Evaluates ``f(x_n, *args)`` for each sample; returns (values (N,), stacked aux)."""
    out = jax.vmap(lambda xi: f(xi, *args))(x)
    if has_aux:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(
                "has_aux=True requires f to return a pair (value, aux); got "
                f"{type(out).__name__}. Return `value, aux` from f or set has_aux=False."
            )
        values, aux = out
    else:
        values, aux = out, None
    if isinstance(values, tuple):
        raise TypeError(
            "f returned a tuple; if it is (value, aux), pass has_aux=True to the transform."
        )
    values = jnp.asarray(values)
    if values.shape != (num_samples,):
        raise TypeError(
            f"f must return a scalar for one sample x, but returned shape {values.shape[1:]}. "
            "Reduce it inside f (e.g. jnp.sum(...) or jnp.mean(...)), or return extra outputs "
            "as aux with has_aux=True. For a vector of expectations, jax.vmap over several f."
        )
    if not jnp.issubdtype(values.dtype, jnp.floating):
        raise TypeError(
            f"f must return a floating-point scalar, got dtype {values.dtype}; "
            "cast with .astype(jnp.float32)."
        )
    return values, aux


def zero_with_grad(leaves_and_cotangents, dtype=None):
    """Σ ⟨g, θ - stop_gradient(θ)⟩: value 0, gradient g w.r.t. θ.

    Each g is cast to its θ's dtype (gradients follow the params) and, when ``dtype`` is given
    (f's value dtype), each term to ``dtype``, so the total can be added to f's value.
    """
    total = jnp.zeros((), dtype) if dtype is not None else 0.0
    for theta, g in leaves_and_cotangents:
        theta = jnp.asarray(theta)
        g = jax.lax.stop_gradient(jnp.asarray(g)).astype(theta.dtype)
        term = jnp.sum(g * (theta - jax.lax.stop_gradient(theta)))
        total = total + (term.astype(dtype) if dtype is not None else term)
    return total


# ------------------------------------------------------------- building transforms


def make_value_and_grad(surrogate: Surrogate, f, has_aux: bool):
    """``jax.value_and_grad`` over a surrogate, with the call-time checks and outputs."""
    stateful = surrogate.init_state is not None

    @functools.wraps(f)
    def value_and_grad_fn(params, key, *args, **kwargs):
        state = _pop_state(kwargs, stateful, surrogate.state_name)
        check_key(key)
        grad_of = jax.grad(lambda p: surrogate.fn(p, key, args, state), has_aux=True)
        grads, (value, aux, new_state) = grad_of(params)
        out = ((value, aux), grads) if has_aux else (value, grads)
        return (out, new_state) if stateful else out

    value_and_grad_fn.init_state = surrogate.init_state
    return value_and_grad_fn


def make_grad(value_and_grad_fn, f, has_aux: bool):
    stateful = value_and_grad_fn.init_state is not None

    @functools.wraps(f)
    def grad_fn(params, key, *args, **kwargs):
        res = value_and_grad_fn(params, key, *args, **kwargs)
        out, state = res if stateful else (res, None)
        (value, grads) = out
        result = (grads, value[1]) if has_aux else grads
        return (result, state) if stateful else result

    grad_fn.init_state = value_and_grad_fn.init_state
    return grad_fn


def make_expectation(surrogate: Surrogate, f, has_aux: bool):
    stateful = surrogate.init_state is not None

    @functools.wraps(f)
    def loss_fn(params, key, *args, **kwargs):
        state = _pop_state(kwargs, stateful, surrogate.state_name)
        check_key(key)
        loss, (_, aux, new_state) = surrogate.fn(params, key, args, state)
        if has_aux and stateful:
            return loss, (aux, new_state)
        if has_aux:
            return loss, aux
        if stateful:
            return loss, new_state
        return loss

    loss_fn.init_state = surrogate.init_state
    return loss_fn


def _pop_state(kwargs, stateful, name):
    if stateful:
        if name not in kwargs:
            raise TypeError(
                f"This estimator carries state: call it as fn(params, key, *args, {name}=state), "
                f"starting from state = fn.init_state(), and feed back the state it returns."
            )
        state = kwargs.pop(name)
        if state is None:
            raise TypeError(
                f"{name}=None: pass the estimator's state, starting from state = fn.init_state() "
                "and feeding back the state each call returns."
            )
    else:
        state = kwargs.pop(name, None)
        if state is not None:
            raise TypeError(f"{name}= was given but this estimator has no state; drop it.")
    if kwargs:
        raise TypeError(
            f"unexpected keyword arguments {sorted(kwargs)}; extra arguments of f are passed "
            "positionally: fn(params, key, *args)."
        )
    return state
