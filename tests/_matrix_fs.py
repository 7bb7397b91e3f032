"""The f's of the estimator matrix and their exact expectations.

Each f(x, w) is separable over the coordinates x_j of one sample, with w an argument of f's
own (so mixed derivatives ∂θ∂w and Hessians in w alone are checked):

- ``smooth``: Σ_j [w cos(K x_j) + ½ w² x_j²] + w x_0 x_1;
- ``step``: Σ_j w 1(x_j > c_j); ``heaviside``: the same through ``jnp.heaviside``;
- ``partial``: w 1(x_0 > c_0) + Σ_{j≥1} [w cos(K x_j) + ½ w² x_j²] (one coordinate a step);
- ``int``: Σ_j 1(x_j > c_j) as int32 (no w);
- ``linear``: (w + ½ w²) Σ_j x_j (families with only a known mean);
- ``exp`` (Normal): w Σ_j e^{x_j} + 5 w, a large offset (issue 16, defect 2);
- ``masked`` (Categorical with a −inf logit): ``smooth``, but −inf at the masked category;
- ``noisy``: f(x, key, w) = smooth(x, w)·(1 + ½ s) with s = ±1 drawn from f's own key
  (``f_key=True``): E[f | x] = smooth(x, w), and the K-sample bound enumerates s too.

Categorical samples reach f as indices, or as one-hot vectors (relaxed estimators); both are
read as the index Σ_k k y_k.
"""

from __future__ import annotations

import itertools

import _matrix_exact as ex
import jax
import jax.numpy as jnp
import numpy as np

FS = ("smooth", "step", "heaviside", "partial", "int", "linear", "exp", "masked", "noisy")
NOISE = 0.5


def coordinates(x, family, onehot, dtype):
    if family.kind == "categorical" and onehot:
        return jnp.asarray(x, dtype) @ jnp.arange(family.categories, dtype=dtype)
    return jnp.reshape(jnp.asarray(x).astype(dtype), (family.dim,))


def _smooth_terms(x, w):
    return w * jnp.cos(ex.K * x) + 0.5 * w * w * x * x


def body(kind, family, x, w):
    """F(coordinates, w): the f of ``kind`` on float coordinates x (dim,)."""
    c = jnp.asarray(family.c(), x.dtype)
    if kind in ("smooth", "masked", "noisy"):
        out = jnp.sum(_smooth_terms(x, w)) + (w * x[0] * x[1] if family.dim >= 2 else 0.0)
        return out
    if kind == "step":
        return jnp.sum(w * (x > c).astype(x.dtype))
    if kind == "heaviside":
        return jnp.sum(w * jnp.heaviside(x - c, jnp.asarray(0.5, x.dtype)))
    if kind == "partial":
        return w * (x[0] > c[0]).astype(x.dtype) + jnp.sum(_smooth_terms(x[1:], w))
    if kind == "linear":
        return (w + 0.5 * w * w) * jnp.sum(x)
    if kind == "exp":
        return w * jnp.sum(jnp.exp(x)) + 5.0 * w
    raise ValueError(kind)


def make_f(kind, family, onehot=False):
    """f(x, w) for the estimator (float32 w; x as the estimator passes it); f(x, key, w) for
    ``noisy`` (to be called with ``f_key=True``)."""
    if kind == "noisy":

        def noisy(x, key, w):
            s = 2.0 * jax.random.bernoulli(key).astype(w.dtype) - 1.0
            return body("smooth", family, coordinates(x, family, onehot, w.dtype), w) * (1.0 + NOISE * s)

        return noisy

    def f(x, w):
        coords = coordinates(x, family, onehot, w.dtype)
        if kind == "int":
            c = jnp.asarray(family.c(), w.dtype)
            return jnp.sum(coords > c).astype(jnp.int32)
        out = body(kind, family, coords, w)
        if kind == "masked":
            hit = jnp.any(x[..., family.masked] > 0) if onehot else jnp.any(x == family.masked)
            out = jnp.where(hit, -jnp.inf, out)
        return out

    f.__name__ = f"f_{kind}"
    return f


def from_moments(kind, m, w):
    """E[f] from the moments of ``_matrix_exact``."""
    smooth = lambda sl: jnp.sum(w * m["cos"][sl] + 0.5 * w * w * m["sq"][sl])
    if kind in ("smooth", "masked", "noisy"):
        return smooth(slice(None)) + w * m["cross"]
    if kind in ("step", "heaviside"):
        return w * jnp.sum(m["tail"])
    if kind == "partial":
        return w * m["tail"][0] + smooth(slice(1, None))
    if kind == "int":
        return jnp.sum(m["tail"])
    if kind == "linear":
        return (w + 0.5 * w * w) * jnp.sum(m["mean"])
    if kind == "exp":
        return w * jnp.sum(m["exp"]) + 5.0 * w
    raise ValueError(kind)


def support(family, theta):
    """(points (M, dim), probs (M,)) of the joint support of a Bernoulli/Categorical family,
    points with a masked category left out."""
    probs, values = family.marginal(jnp.asarray(theta))  # (dim, V), (V,)
    idx = np.array(list(itertools.product(range(values.shape[0]), repeat=family.dim)))
    if family.masked is not None:
        idx = idx[~np.any(idx == family.masked, axis=1)]
    joint = jnp.prod(probs[np.arange(family.dim)[None, :], idx], axis=1)
    return jnp.asarray(values)[idx], joint


def with_noise(points, probs):
    """The joint support of (x, s) for the ``noisy`` f: s = ±1 appended to each point, each half."""
    n = points.shape[0]
    s = jnp.concatenate([jnp.full((n, 1), -1.0, points.dtype), jnp.full((n, 1), 1.0, points.dtype)])
    return jnp.concatenate([jnp.concatenate([points, points]), s], axis=1), 0.5 * jnp.concatenate([probs, probs])


def noisy_log_weight(family, p, w):
    """The ``noisy`` f at a point of ``with_noise``."""
    return body("smooth", family, p[:-1], w) * (1.0 + NOISE * p[-1])
