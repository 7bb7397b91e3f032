"""Evaluating ``f(x, *args)`` over stacked samples, with ``has_aux`` and output checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def eval_f(f, x, args, has_aux: bool, num_samples: int, keys=None):
    """Evaluates ``f(x_n, key_n, *args)`` for each point (``key_n`` from ``keys``, or ``None``);
    returns (values (N,), stacked aux)."""
    out = jax.vmap(lambda xi, ki: _check_output(f(xi, ki, *args), has_aux))(x, keys)
    values, aux = out if has_aux else (out, None)
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


def _check_output(out, has_aux):
    """f's output for one sample, checked before vmap stacks it (so errors speak of f, not of vmap)."""
    if has_aux:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(
                "has_aux=True requires f to return a pair (value, aux); got "
                f"{_describe(out)}. Return `value, aux` from f or set has_aux=False."
            )
        _check_value(out[0], has_aux)
        return out
    return _check_value(out, has_aux)


def _check_value(value, has_aux):
    if isinstance(value, tuple) and not has_aux:
        raise TypeError("f returned a tuple; if it is (value, aux), pass has_aux=True to the transform.")
    if value is None or isinstance(value, (dict, list, tuple, str)):
        raise TypeError(
            f"f must return a scalar (a JAX/NumPy number) for one sample x, got {_describe(value)}. "
            + (
                "Return the cost itself (e.g. jnp.sum(...)) and put other outputs in aux: "
                "f returns (value, aux) with has_aux=True."
                if not has_aux
                else "The first element of f's (value, aux) pair must be that scalar."
            )
        )
    return value


def _describe(out):
    if out is None:
        return "None (did f forget a return statement?)"
    if isinstance(out, dict):
        return f"a dict with keys {sorted(map(str, out))}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of length {len(out)}"
    return type(out).__name__
