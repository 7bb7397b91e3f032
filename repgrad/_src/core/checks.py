"""Argument checks shared by every transform: each error names the fix."""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np


def check_num_samples(num_samples, minimum: int = 1, why: str = "") -> int:
    """``num_samples`` as a Python int >= ``minimum``; a ``TypeError``/``ValueError`` otherwise."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
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
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        ok = shape == ()
    elif dtype == jnp.uint32 and shape in ((2,), (4,)):
        ok = True  # legacy raw keys from jax.random.PRNGKey
    if not ok:
        got = f"array of dtype {dtype} and shape {shape}" if dtype is not None else repr(key)
        raise TypeError(
            f"key must be a single JAX PRNG key, got {got}. Create one with "
            "jax.random.key(seed) and split it for each call: the transforms take "
            "(params, key, *args) in that order. To use several keys, jax.vmap over them."
        )


def check_has_aux(has_aux) -> bool:
    return check_flag(has_aux, "has_aux")


def check_flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return value


def check_callable(f, what: str, example: str):
    if not callable(f):
        raise TypeError(f"{what} must be callable, got {type(f).__name__}; e.g. {example}.")
    return f


def _differentiable(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, complex)) and not isinstance(
        leaf, bool
    ) and jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def partition_params(params):
    """``(diff, static)``: the floating-point array leaves of ``params`` (others ``None``), and the
    rest (activation functions, integers, booleans, keys of an Equinox module or a Flax NNX
    ``State``; the floating leaves ``None``), as ``equinox.partition(params, is_inexact_array)``.

    Gradients are taken with respect to ``diff`` only, so their pytree has ``None`` where
    ``params`` holds something that has no gradient. ``params`` with no floating-point leaf at
    all raise a ``TypeError`` naming the fix.
    """
    diff = jax.tree_util.tree_map(lambda a: a if _differentiable(a) else None, params)
    if not jax.tree_util.tree_leaves(diff):
        kinds = sorted({_kind(a) for a in jax.tree_util.tree_leaves(params)}) or ["nothing"]
        raise TypeError(
            f"params must hold floating-point arrays to differentiate, got {', '.join(kinds)}. Cast "
            "them, e.g. jnp.asarray(params, jnp.float32) (integer params have no gradient; keep "
            "integers, booleans and functions beside floating-point leaves and they are passed "
            "through with a None gradient)."
        )
    static = jax.tree_util.tree_map(lambda a: None if _differentiable(a) else a, params)
    return diff, static


def combine_params(diff, static):
    """The inverse of :func:`partition_params`."""
    return jax.tree_util.tree_map(lambda a, b: b if a is None else a, diff, static, is_leaf=lambda a: a is None)


def _kind(leaf) -> str:
    dtype = getattr(leaf, "dtype", None)
    return f"arrays of dtype {dtype}" if dtype is not None else type(leaf).__name__
