"""Gaussian families: Normal, MultivariateNormalDiag, MultivariateNormalTri, LogNormal."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import validation as v
from .base import (
    _LOG_SQRT_2PI,
    Distribution,
    _as_float,
    _at_rank,
    _broadcast_params,
    _off_support,
    _safe,
    _sg,
    _to,
    to_positive_support,
)
from .validation import VALIDATE_ARGS

__all__ = ["Normal", "MultivariateNormalDiag", "MultivariateNormalTri", "LogNormal"]


class Normal(Distribution):
    """Normal distribution N(loc, scale²), elementwise over the broadcast shape."""

    _params = ("loc", "scale")
    _rules = (v.finite("loc"), v.positive("scale"))

    def __init__(self, loc, scale, *, validate_args: bool | None = VALIDATE_ARGS):
        loc, scale = _broadcast_params("Normal", loc=loc, scale=scale)
        self._init(validate_args, self._rules, loc=loc, scale=scale)

    def _sample(self, key, shape):
        eps = jax.random.normal(key, shape, self.loc.dtype)
        loc, scale = _to(shape, self.loc, self.scale)
        return loc + scale * eps

    def log_prob(self, x):
        """log p(x); −inf at x = ±inf (off the real line), with zero derivatives there."""
        x = jnp.asarray(x)
        outside = jnp.isinf(x)
        return _off_support(outside, self._log_density(_safe(x, outside, 0.0)))

    def _log_density(self, x):
        """The density's formula at finite x."""
        # (x − loc) / scale as hand-written code has it; see _at_rank.
        x, loc, scale, log_norm = _at_rank(x, self.loc, self.scale, jnp.log(self.scale) + _LOG_SQRT_2PI)
        z = (x - loc) / scale
        return -0.5 * z * z - log_norm

    _log_prob_of_draws = _log_density

    def mean(self):
        """E[x] = loc."""
        return self.loc

    def variance(self):
        """Var[x] = scale²."""
        return jnp.square(self.scale)

    def stddev(self):
        """scale."""
        return self.scale

    def mode(self):
        """loc."""
        return self.loc

    def entropy(self):
        """H = ½ log(2πe·scale²) = log scale + ½(1 + log 2π)."""
        return jnp.log(self.scale) + (0.5 + _LOG_SQRT_2PI)


class MultivariateNormalDiag(Distribution):
    """Multivariate normal with diagonal covariance diag(scale_diag²); event is the last axis."""

    _params = ("loc", "scale_diag")
    event_ndims = 1
    _rules = (v.finite("loc"), v.positive("scale_diag"))

    def __init__(self, loc, scale_diag, *, validate_args: bool | None = VALIDATE_ARGS):
        loc, scale_diag = _broadcast_params("MultivariateNormalDiag", loc=loc, scale_diag=scale_diag)
        if loc.ndim < 1:
            raise ValueError("MultivariateNormalDiag needs loc/scale_diag with at least one axis.")
        self._init(validate_args, self._rules, loc=loc, scale_diag=scale_diag)

    def _normal(self):
        return Normal(self.loc, self.scale_diag, validate_args=False)

    def _sample(self, key, shape):
        return self._normal()._sample(key, shape)

    def log_prob(self, x):
        """log p(x); −inf where a coordinate is ±inf, with zero derivatives there."""
        x = jnp.asarray(x)
        infinite = jnp.isinf(x)
        lp = self._log_prob_of_draws(_safe(x, infinite, 0.0))
        return _off_support(jnp.broadcast_to(jnp.any(infinite, axis=-1), lp.shape), lp)

    def _log_prob_of_draws(self, x):
        return jnp.sum(self._normal()._log_density(x), axis=-1)

    def mean(self):
        """E[x] = loc."""
        return self.loc

    def variance(self):
        """The diagonal of the covariance, scale_diag²."""
        return jnp.square(self.scale_diag)

    def stddev(self):
        """scale_diag."""
        return self.scale_diag

    def covariance(self):
        """diag(scale_diag²), of shape ``batch_shape + (D, D)``."""
        return _diagonal_matrix(self.variance())

    def mode(self):
        """loc."""
        return self.loc

    def entropy(self):
        """H = Σᵢ log scale_diagᵢ + (D/2)(1 + log 2π)."""
        return jnp.sum(jnp.log(self.scale_diag), axis=-1) + self.loc.shape[-1] * (0.5 + _LOG_SQRT_2PI)


def _diagonal_matrix(diagonal):
    """diag(d) over the last axis, batched: d[..., :, None] times the identity at d's rank."""
    eye = jnp.eye(diagonal.shape[-1], dtype=diagonal.dtype)
    return diagonal[..., :, None] * jnp.reshape(eye, (1,) * (diagonal.ndim - 1) + eye.shape)


def _nonsingular_tri(name):
    return v.Rule(
        (name,),
        lambda xp, tri: xp.all(xp.isfinite(tri), axis=(-2, -1))
        & xp.all(xp.diagonal(tri, axis1=-2, axis2=-1) != 0, axis=-1),
        f"{name} must be finite with a nonzero diagonal",
        "build it as jnp.tril(raw, -1) + jnp.diag(jax.nn.softplus(raw_diag)) (a Cholesky factor)",
    )


class MultivariateNormalTri(Distribution):
    """Multivariate normal N(loc, L Lᵀ) with lower-triangular ``scale_tri`` L.

    Only the lower triangle of ``scale_tri`` is read; x = loc + L ε.
    """

    _params = ("loc", "scale_tri")
    event_ndims = 1
    _rules = (v.finite("loc"), _nonsingular_tri("scale_tri"))

    def __init__(self, loc, scale_tri, *, validate_args: bool | None = VALIDATE_ARGS):
        loc, scale_tri = _as_float(loc, scale_tri)
        d = loc.shape[-1:]
        if scale_tri.ndim < 2 or scale_tri.shape[-2:] != d + d:
            raise ValueError(
                f"MultivariateNormalTri needs scale_tri of shape (..., {d[0] if d else 'D'}, "
                f"{d[0] if d else 'D'}) matching loc; got loc {loc.shape}, scale_tri "
                f"{scale_tri.shape}."
            )
        try:
            batch = jnp.broadcast_shapes(loc.shape[:-1], scale_tri.shape[:-2])
        except ValueError:
            raise ValueError(
                f"MultivariateNormalTri: the batch shapes of loc {loc.shape[:-1]} and scale_tri "
                f"{scale_tri.shape[:-2]} do not broadcast together. Give them the same batch "
                "shape, or shapes that broadcast (size-1 axes where they differ)."
            ) from None
        self._init(
            validate_args,
            self._rules,
            loc=jnp.broadcast_to(loc, batch + d),
            scale_tri=jnp.broadcast_to(jnp.tril(scale_tri), batch + d + d),
        )

    # Sample axes are moved behind the event axis, (*sample, *batch, D) -> (*batch, D, S), so
    # L multiplies or solves all samples at once: memory O(S·D + D²), not O(S·D²) from
    # broadcasting L to every sample.
    def _samples_last(self, y):
        n = y.ndim - self.loc.ndim
        sample_shape = y.shape[:n]
        return jnp.moveaxis(jnp.reshape(y, (-1,) + y.shape[n:]), 0, -1), sample_shape

    @staticmethod
    def _samples_first(y, sample_shape):
        y = jnp.moveaxis(y, -1, 0)
        return jnp.reshape(y, sample_shape + y.shape[1:])

    def _sample(self, key, shape):
        eps, sample_shape = self._samples_last(jax.random.normal(key, shape, self.loc.dtype))
        return _to(shape, self.loc) + self._samples_first(self.scale_tri @ eps, sample_shape)

    def log_prob(self, x):
        """log p(x); −inf where a coordinate is ±inf, with zero derivatives there."""
        x = jnp.asarray(x)
        infinite = jnp.isinf(x)
        lp = self._log_prob_of_draws(_safe(x, infinite, 0.0))
        return _off_support(jnp.broadcast_to(jnp.any(infinite, axis=-1), lp.shape), lp)

    def _log_prob_of_draws(self, x):
        x = jnp.asarray(x)
        shape = jnp.broadcast_shapes(x.shape, self.loc.shape)
        x, loc = _to(shape, x, self.loc)
        diff, sample_shape = self._samples_last(x - loc)
        z = jax.scipy.linalg.solve_triangular(self.scale_tri, diff, lower=True)  # (*batch, D, S)
        maha = self._samples_first(jnp.sum(z * z, axis=-2)[..., None, :], sample_shape)[..., 0]
        log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(self.scale_tri, axis1=-2, axis2=-1))), axis=-1)
        return -0.5 * maha - jnp.broadcast_to(log_det, maha.shape) - shape[-1] * _LOG_SQRT_2PI

    def mean(self):
        """E[x] = loc."""
        return self.loc

    def covariance(self):
        """L Lᵀ, of shape ``batch_shape + (D, D)``."""
        return self.scale_tri @ jnp.swapaxes(self.scale_tri, -1, -2)

    def variance(self):
        """The diagonal of L Lᵀ: the row sums of L²."""
        return jnp.sum(jnp.square(self.scale_tri), axis=-1)  # diag(L Lᵀ)

    def mode(self):
        """loc."""
        return self.loc

    def entropy(self):
        """H = log |det L| + (D/2)(1 + log 2π) = Σᵢ log |Lᵢᵢ| + (D/2)(1 + log 2π)."""
        log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(self.scale_tri, axis1=-2, axis2=-1))), axis=-1)
        return log_det + self.loc.shape[-1] * (0.5 + _LOG_SQRT_2PI)


class LogNormal(Distribution):
    """Log-normal: exp(N(loc, scale²)).

    Draws that overflow or underflow the float type are kept inside (0, ∞) (clipped to
    [tiny, max], derivatives of the draw kept); score-function estimators take the
    log-density from the normal draw itself, so it stays exact there.
    """

    _params = ("loc", "scale")
    _rules = (v.finite("loc"), v.positive("scale"))
    _exact_log_prob = True

    def __init__(self, loc, scale, *, validate_args: bool | None = VALIDATE_ARGS):
        loc, scale = _broadcast_params("LogNormal", loc=loc, scale=scale)
        self._init(validate_args, self._rules, loc=loc, scale=scale)

    def _normal(self):
        return Normal(self.loc, self.scale, validate_args=False)

    def _sample(self, key, shape):
        return jnp.exp(self._normal()._sample(key, shape))

    def _to_support(self, x):
        return to_positive_support(x)

    def _draw_with_log_prob(self, key, shape):
        log_x = _sg(self._normal())._sample(key, shape)  # the draw, held fixed
        return self._to_support(jnp.exp(log_x)), self._normal()._log_density(log_x) - log_x

    def log_prob(self, x):
        """log p(x); −inf for x ≤ 0 and x = +inf, with zero derivatives there."""
        x = jnp.asarray(x)
        outside = (x <= 0) | (x == jnp.inf)
        log_x = jnp.log(_safe(x, outside, 1.0))
        return _off_support(outside, self._normal()._log_density(log_x) - log_x)

    def mean(self):
        """E[x] = exp(loc + scale²/2)."""
        return jnp.exp(self.loc + 0.5 * jnp.square(self.scale))

    def variance(self):
        """Var[x] = (exp(scale²) − 1) exp(2 loc + scale²), as exp(2 loc + scale² + log(exp(scale²) − 1)):
        finite wherever the variance is (the product overflowed for large scale and negative loc)."""
        s2 = jnp.square(self.scale)
        return jnp.exp(2.0 * self.loc + s2 + _log_expm1(s2))

    def stddev(self):
        """exp(loc + scale²/2) √(exp(scale²) − 1)."""
        s2 = jnp.square(self.scale)
        return jnp.exp(self.loc + 0.5 * (s2 + _log_expm1(s2)))

    def mode(self):
        """exp(loc − scale²)."""
        return jnp.exp(self.loc - jnp.square(self.scale))

    def entropy(self):
        """H = loc + ½ log(2πe·scale²): the normal entropy plus E[log x] = loc."""
        return self.loc + jnp.log(self.scale) + (0.5 + _LOG_SQRT_2PI)


def _log_expm1(y):
    """log(exp(y) − 1) for y > 0, without overflow for large y (y + log(1 − exp(−y)))."""
    large = y > 1.0
    y_large, y_small = jnp.where(large, y, 1.0), jnp.where(large, 1.0, y)
    return jnp.where(large, y_large + jnp.log1p(-jnp.exp(-y_large)), jnp.log(jnp.expm1(y_small)))
