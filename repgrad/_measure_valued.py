"""Measure-valued (weak-derivative) gradient estimator.

For a parameter θ_i of a factorized distribution, the derivative of the density is
written as a scaled difference of two densities,
∂p_θ/∂θ_i = c_θ (p⁺ − p⁻), so that

    ∂/∂θ_i E_p[f(x)] = c_θ (E_{p⁺}[f(x)] − E_{p⁻}[f(x)]),

where p^± replace coordinate i of x and leave the others distributed as p_θ.
Each family supplies its decomposition: ``decomposition(d, key, shape, coupled)``
returns ``{param_name: (c, x_plus, x_minus)}`` with ``c`` of the parameter's shape
and ``x_plus``/``x_minus`` of ``shape`` (the samples' shape). Families are registered
in ``DECOMPOSITIONS``; Gamma, Exponential, Poisson, Bernoulli and Categorical live in
``_mv_families`` (which also allows a trailing axis of alternatives, couplings that
reuse the sample, and a score-function fallback for a leaf, see there).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from . import _core
from . import _distributions as _d
from ._mv_families import FAMILY_DECOMPOSITIONS, EnumeratedPart, ScorePart

_sg = jax.lax.stop_gradient


def _rayleigh(key, shape, dtype):
    # Rayleigh(1) = Weibull(scale √2, shape 2): the positive part of ∂N/∂μ.
    u = jax.random.uniform(key, shape, dtype, minval=jnp.finfo(dtype).tiny)
    return jnp.sqrt(-2.0 * jnp.log(u))


def _double_sided_maxwell(key, shape, dtype):
    # Density t² φ(t): ± the norm of a 3-d standard normal.
    k1, k2 = jax.random.split(key)
    radius = jnp.linalg.norm(jax.random.normal(k1, shape + (3,), dtype), axis=-1)
    return jax.random.rademacher(k2, shape, dtype) * radius


def _normal_decomposition(loc, scale, key, shape, coupled):
    """Normal: μ via double-sided Rayleigh (Weibull), σ via double-sided Maxwell vs. Normal."""
    dtype = loc.dtype
    c_loc, c_scale = 1.0 / (scale * math.sqrt(2.0 * math.pi)), 1.0 / scale
    loc, scale = jnp.broadcast_to(loc, shape), jnp.broadcast_to(scale, shape)
    k_r1, k_r2, k_m, k_u = jax.random.split(key, 4)
    r_plus = _rayleigh(k_r1, shape, dtype)
    r_minus = r_plus if coupled else _rayleigh(k_r2, shape, dtype)
    m = _double_sided_maxwell(k_m, shape, dtype)
    if coupled:
        # M·U with U ~ Uniform(0, 1) is standard normal: couples p⁺ and p⁻ for σ.
        z = m * jax.random.uniform(k_u, shape, dtype)
    else:
        z = jax.random.normal(k_u, shape, dtype)
    return (c_loc, loc + scale * r_plus, loc - scale * r_minus), (c_scale, loc + scale * m, loc + scale * z)


def _normal(d, key, shape, coupled):
    loc_part, scale_part = _normal_decomposition(d.loc, d.scale, key, shape, coupled)
    return {"loc": loc_part, "scale": scale_part}


def _mvn_diag(d, key, shape, coupled):
    loc_part, scale_part = _normal_decomposition(d.loc, d.scale_diag, key, shape, coupled)
    return {"loc": loc_part, "scale_diag": scale_part}


DECOMPOSITIONS = {
    _d.Normal: _normal,
    _d.MultivariateNormalDiag: _mvn_diag,
    **FAMILY_DECOMPOSITIONS,  # Gamma, Exponential, Poisson, Bernoulli, Categorical (_mv_families)
}


def _replace_each(f, args, x, x_new):
    """f(x with coordinate i of each sample replaced by x_new's), for every i: shape (N, *S)."""
    num_samples, sample_shape = x.shape[0], x.shape[1:]
    size = math.prod(sample_shape)
    flat_x, flat_new = x.reshape(num_samples, size), x_new.reshape(num_samples, size)

    def at(i):
        mixed = jax.vmap(lambda xs, v: xs.at[i].set(v[i]))(flat_x, flat_new)
        return jax.vmap(lambda xs: f(xs.reshape(sample_shape), *args))(mixed)

    # Chunking coordinates keeps memory at O(chunk · N · |x|), not O(N · |x|²); with at most one
    # chunk (size <= 64) a plain vmap is the same computation and compiles faster.
    coords = jnp.arange(size)
    out = jax.vmap(at)(coords) if size <= 64 else jax.lax.map(at, coords, batch_size=64)  # (size, N)
    return out.T.reshape((num_samples,) + sample_shape)


def _side(f, args, x, values, x_new):
    """f with each coordinate replaced by x_new's: (N, *S), or (N, *S, K) for K alternatives."""
    if callable(x_new):
        x_new = x_new(x)
    if x_new is x:  # coupling that reuses the sample itself: f(x) for every coordinate
        return jnp.broadcast_to(values.reshape(values.shape + (1,) * (x.ndim - 1)), x.shape)
    x_new = _sg(x_new).astype(x.dtype)
    if x_new.ndim == x.ndim + 1:
        return jnp.stack([_replace_each(f, args, x, x_new[..., k]) for k in range(x_new.shape[-1])], axis=-1)
    return _replace_each(f, args, x, x_new)


def _part_gradient(part, f, args, x, values):
    """The leaf's gradient estimate, of the leaf's shape."""
    if isinstance(part, ScorePart):
        scores = part.scores(x)
        n = values.shape[0]
        b = (jnp.sum(values) - values) / (n - 1) if n > 1 else jnp.zeros_like(values)
        w = (values - b).astype(scores.dtype)
        return jnp.mean(w.reshape(w.shape + (1,) * (scores.ndim - 1)) * scores, axis=0)
    if isinstance(part, EnumeratedPart):
        plus = jnp.mean(_side(f, args, x, values, part.alternatives), axis=0).astype(part.probs.dtype)
        return part.probs * (plus - jnp.sum(part.probs * plus, axis=-1, keepdims=True))
    c, x_plus, x_minus = part
    plus, minus = _side(f, args, x, values, x_plus), _side(f, args, x, values, x_minus)
    if plus.ndim > minus.ndim:
        minus = jnp.broadcast_to(minus[..., None], plus.shape)
    elif minus.ndim > plus.ndim:
        plus = jnp.broadcast_to(plus[..., None], minus.shape)
    return c * jnp.mean(plus - minus, axis=0).astype(c.dtype)


def _measure_valued_surrogate(f, dist, *, num_samples, has_aux, coupled=True, sample_sharding=None):
    def fn(params, key, args, state):
        d = _core.resolve_dist(dist, params)
        decompose = DECOMPOSITIONS.get(type(d))
        if decompose is None:
            supported = ", ".join(sorted(t.__name__ for t in DECOMPOSITIONS))
            raise TypeError(
                f"measure_valued_grad has no weak-derivative decomposition for {type(d).__name__} "
                f"(supported: {supported}). Use repgrad.pathwise_grad or repgrad.score_grad."
            )
        key_x, key_w = jax.random.split(key)
        x = _sg(_core.shard_samples(_core.draw(d, key_x, num_samples), sample_sharding))
        values, aux = _core.eval_f(f, x, args, has_aux, num_samples)
        f_only = (lambda xs, *a: f(xs, *a)[0]) if has_aux else f
        sg_args = _sg(args)
        grads = {}
        for name, part in decompose(_sg(d), key_w, x.shape, coupled).items():
            grads[name] = _sg(_part_gradient(part, f_only, sg_args, x, _sg(values)))
        value = jnp.mean(values)
        loss = value + _core.zero_with_grad(((getattr(d, name), g) for name, g in grads.items()), value.dtype)
        return loss, (value, aux, None)

    return _core.Surrogate(fn)


def measure_valued_value_and_grad(
    f, dist, *, num_samples: int = 1, has_aux: bool = False, coupled: bool = True, sample_sharding=None
):
    r"""Monte Carlo value and measure-valued gradient of E_{p_θ}[f].

    .. math::

      \frac{\partial}{\partial\theta_i} \mathbb{E}_{p_\theta}[f(x)]
        = c_{\theta_i} \big(\mathbb{E}_{p^+_{\theta_i}}[f(x)] - \mathbb{E}_{p^-_{\theta_i}}[f(x)]\big)
        \approx \frac{c_{\theta_i}}{N} \sum_{n=1}^N \big(f(\dot x_n) - f(\ddot x_n)\big).

    For the Normal N(μ, σ²): ∂μ uses c = 1/(σ√2π) with p^± = μ ± σ·Rayleigh(1) (a
    double-sided Weibull); ∂σ uses c = 1/σ with p⁺ = μ + σ·(double-sided Maxwell) and
    p⁻ = N(μ, σ²). With ``coupled=True`` the two sides share their randomness (the same
    Rayleigh draw for μ; for σ, x⁻ = μ + σ·M·U with M the Maxwell draw and U uniform,
    which is Normal), which lowers the variance. Unbiased; f need not be
    differentiable. The cost is 4·|x| + 1 evaluations of f per sample.

    Args:
      f: ``f(x, *args)`` returning a scalar for one sample (``(scalar, aux)`` with
        ``has_aux``).
      dist: ``dist(params)`` returning a family in ``DECOMPOSITIONS`` (Normal,
        MultivariateNormalDiag, Gamma, Exponential, Poisson, Bernoulli, Categorical).
        Gamma's rate (and Exponential's) is measure-valued with c = α/λ, p⁺ = Gamma(α, λ),
        p⁻ = Gamma(α+1, λ); Gamma's concentration falls back to the elementwise score
        function with a leave-one-out baseline. Poisson: c = 1, p⁺ = 1 + Poisson(λ),
        p⁻ = Poisson(λ). Bernoulli logits: c = p(1−p), p⁺ = δ₁, p⁻ = δ₀. Categorical
        logits: c = p_k, p⁺ = δ_k, p⁻ = Categorical(p) (K·|x| + |x| evaluations).
      num_samples: N (keyword-only, static).
      has_aux: whether f returns ``(value, aux)``.
      coupled: share randomness between p⁺ and p⁻ (variance reduction); for Gamma,
        Poisson and Categorical one side reuses the sample itself.
      sample_sharding: optional ``jax.sharding.Sharding`` for the sample axis.

    Returns:
      ``fn(params, key, *args) -> (value, grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.measure_valued_value_and_grad(jnp.cos, lambda p: rg.Normal(p[0], p[1]),
      ...                                       num_samples=256)
      >>> value, g = fn((jnp.float32(1.0), jnp.float32(1.0)), jax.random.key(0))

    References:
      Pflug, "Sampling derivatives of probabilities", Computing 1989.
      Mohamed et al., "Monte Carlo Gradient Estimation in Machine Learning", JMLR 2020
      (arXiv:1906.10652), §6 and Table 1.
    """
    num_samples = _core.check_num_samples(num_samples)
    has_aux = _core.check_has_aux(has_aux)
    surrogate = _measure_valued_surrogate(
        f, dist, num_samples=num_samples, has_aux=has_aux, coupled=coupled, sample_sharding=sample_sharding
    )
    return _core.make_value_and_grad(surrogate, f, has_aux)


def measure_valued_grad(
    f, dist, *, num_samples: int = 1, has_aux: bool = False, coupled: bool = True, sample_sharding=None
):
    r"""Measure-valued gradient of E_{p_θ}[f]; see ``measure_valued_value_and_grad``.

    .. math::

      \hat g_i = \frac{c_{\theta_i}}{N} \sum_{n=1}^N \big(f(\dot x_n) - f(\ddot x_n)\big),
      \quad \dot x_n \sim p^+_{\theta_i},\ \ddot x_n \sim p^-_{\theta_i}.

    Returns:
      ``fn(params, key, *args) -> grads``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> grad_fn = rg.measure_valued_grad(lambda x: x ** 2, lambda p: rg.Normal(p, 1.0),
      ...                                  num_samples=1024)
      >>> g = grad_fn(jnp.float32(1.5), jax.random.key(0))  # exact: 3

    References:
      Mohamed et al. 2020 (arXiv:1906.10652), §6.
    """
    vg = measure_valued_value_and_grad(
        f, dist, num_samples=num_samples, has_aux=has_aux, coupled=coupled, sample_sharding=sample_sharding
    )
    return _core.make_grad(vg, f, has_aux)
