"""Measure-valued (weak-derivative) gradient estimator."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..core import kernels, protocol
from ..core.estimator import Estimator, Out
from ..variance_reduction.baselines import leave_one_out
from ..variance_reduction.compose import with_control_variate
from .weak_derivatives import DECOMPOSITIONS, EnumeratedPart, ScorePart, same

_sg = jax.lax.stop_gradient

DEFAULT_ELEMENTS = 2**20  # evaluations at once × |x|: about 4 MB per float32 copy


def measure_valued(*, coupled: bool = True, chunk_size: int | None = None, control_variate=None) -> Estimator:
    r"""The measure-valued (weak-derivative) estimator.

    For a parameter θ_i of a factorized distribution, ∂p_θ/∂θ_i = c_θ (p⁺ − p⁻), so

    .. math::

      \frac{\partial}{\partial\theta_i} \mathbb{E}_{p_\theta}[f(x)]
        = c_{\theta_i} \big(\mathbb{E}_{p^+_{\theta_i}}[f(x)] - \mathbb{E}_{p^-_{\theta_i}}[f(x)]\big)
        \approx \frac{c_{\theta_i}}{N} \sum_{n=1}^N \big(f(\dot x_n) - f(\ddot x_n)\big),

    where p^± replace coordinate i of the sample and leave the others distributed as p_θ.
    Unbiased; f need not be differentiable. The cost is 4·|x| + 1 evaluations of f per
    sample for the Normal (K·|x| + |x| for a Categorical with K categories). The
    decompositions (Normal, MultivariateNormalDiag, Gamma, Exponential, Poisson, Bernoulli,
    Categorical) are listed in ``repgrad._src.estimators.weak_derivatives``; Gamma's
    concentration falls back to the elementwise score function with a leave-one-out
    baseline. f is only evaluated inside the support: a Categorical's masked categories
    (logit −inf) get weight exactly 0 and are never substituted, and a Bernoulli's
    derivatives stay right at probs = 0 and 1. First derivatives only: a second derivative
    raises ``repgrad.DerivativeOrderError``.

    Args:
      coupled: share randomness between p⁺ and p⁻ (variance reduction); for Gamma,
        Poisson and Categorical one side reuses the sample itself.
      chunk_size: the largest number of f evaluations made at once (each at one
        |x|-sized point): the replaced points cost O(chunk_size · |x|) memory, not
        O(N · |x|²), on top of the O(N · |x|) samples. ``None``: 2²⁰ / |x| (at least 64), about
        4 MB per float32 copy (see ``benchmarks/measure_valued_memory.py``). Chunking changes
        no result.
      control_variate: ``None``, ``"delta"`` or a ``repgrad.ControlVariate``; see
        ``repgrad.with_control_variate``.

    Returns:
      An ``Estimator`` for ``rg.grad``, ``rg.value_and_grad`` and ``rg.expectation``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> grad_fn = rg.grad(lambda x: x ** 2, lambda p: rg.Normal(p, 1.0), rg.measure_valued(),
      ...                   num_samples=1024)
      >>> g = grad_fn(jnp.float32(1.5), jax.random.key(0))  # exact: 3

    References:
      Pflug, "Sampling derivatives of probabilities", Computing 1989.
      Mohamed et al., "Monte Carlo Gradient Estimation in Machine Learning", JMLR 2020
      (arXiv:1906.10652), §6 and Table 1.
    """
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int (f evaluations at once), got {chunk_size!r}.")

    def surrogate(problem, d, key, state, control):
        decompose = DECOMPOSITIONS.get(type(d))
        if decompose is None:
            raise _unsupported(d)
        key_x, key_w = jax.random.split(key)
        x = _sg(problem.shard(protocol.draw(d, key_x, problem.num_samples)))
        values, aux = problem.evaluate(x)
        # f's args and values enter un-stopped: the pull-back never differentiates them, but its
        # guard then sees a mixed second derivative (params and f's args) and refuses it.
        # Each replaced point is evaluated with its sample's key (f_key): common random numbers.
        f_value, args, keys = problem.f_value, problem.args, problem.keys
        f = lambda xi, ki: f_value(xi, ki, *args)
        chunk = chunk_size or max(64, DEFAULT_ELEMENTS // math.prod(x.shape[1:]))
        grads = []
        for name, part in decompose(_sg(d), key_w, x.shape, coupled).items():
            grads.append((getattr(d, name), _part_gradient(part, f, keys, x, values, chunk)))
        value = jnp.mean(values)
        return Out(value + kernels.pullback(grads, "measure_valued", value.dtype), value, aux)

    est = Estimator("measure_valued", surrogate, max_order=1, family="measure_valued")
    return with_control_variate(est, control_variate)


def _unsupported(d):
    supported = ", ".join(sorted(t.__name__ for t in DECOMPOSITIONS))
    peer = "" if type(d).__module__.startswith("repgrad") else (
        f" {type(d).__module__}.{type(d).__name__} is another library's object; the measure-valued "
        "decompositions are written for repgrad's own families — build the same distribution with "
        "repgrad (e.g. repgrad.Normal(loc, scale)) in dist."
    )
    return TypeError(
        f"measure_valued_grad has no weak-derivative decomposition for {type(d).__name__}: it "
        f"supports repgrad's {supported}.{peer} Otherwise use repgrad.pathwise_grad or repgrad.score_grad."
    )


def _replace_each(f, keys, x, x_new, chunk):
    """f(x with coordinate i of each sample replaced by x_new's, that sample's key), for every i:
    shape (N, *S).

    At most ``chunk`` evaluations run at once (memory O(chunk · |x|)): all of them when they
    fit, else blocks of coordinates over all samples, else one coordinate over blocks of samples.
    """
    num_samples, sample_shape = x.shape[0], x.shape[1:]
    size = math.prod(sample_shape)
    flat_x, flat_new = x.reshape(num_samples, size), x_new.reshape(num_samples, size)
    f_flat = lambda xs, k: f(xs.reshape(sample_shape), k)

    def at(i):  # coordinate i replaced, every sample: (N,)
        one = lambda xs, v, k: f_flat(xs.at[i].set(v[i]), k)
        if num_samples <= chunk:
            return jax.vmap(one)(flat_x, flat_new, keys)
        return jax.lax.map(lambda xvk: one(*xvk), (flat_x, flat_new, keys), batch_size=chunk)

    coords = jnp.arange(size)
    if num_samples * size <= chunk:
        out = jax.vmap(at)(coords)
    else:
        out = jax.lax.map(at, coords, batch_size=max(1, chunk // num_samples))  # (size, N)
    return out.T.reshape(x.shape)


def _side(f, keys, x, values, x_new, chunk):
    """f with each coordinate replaced by x_new's: (N, *S), or (N, *S, K) for K alternatives."""
    if callable(x_new):
        if x_new is same:  # coupling that reuses the sample itself: f(x) for every coordinate
            return jnp.broadcast_to(values.reshape(values.shape + (1,) * (x.ndim - 1)), x.shape)
        x_new = x_new(x)
    x_new = _sg(jnp.asarray(x_new)).astype(x.dtype)
    if x_new.ndim == x.ndim + 1:
        sides = [_replace_each(f, keys, x, x_new[..., k], chunk) for k in range(x_new.shape[-1])]
        return jnp.stack(sides, axis=-1)
    return _replace_each(f, keys, x, x_new, chunk)


def _part_gradient(part, f, keys, x, values, chunk):
    """The leaf's gradient estimate, of the leaf's shape."""
    if isinstance(part, ScorePart):
        scores = part.scores(x)
        b = leave_one_out(values) if values.shape[0] > 1 else jnp.zeros_like(values)
        w = (values - b).astype(scores.dtype)
        return jnp.mean(w.reshape(w.shape + (1,) * (scores.ndim - 1)) * scores, axis=0)
    if isinstance(part, EnumeratedPart):
        plus = jnp.mean(_side(f, keys, x, values, part.alternatives, chunk), axis=0).astype(part.probs.dtype)
        return part.probs * (plus - jnp.sum(part.probs * plus, axis=-1, keepdims=True))
    c, x_plus, x_minus = part
    plus, minus = _side(f, keys, x, values, x_plus, chunk), _side(f, keys, x, values, x_minus, chunk)
    if plus.ndim > minus.ndim:
        minus = jnp.broadcast_to(minus[..., None], plus.shape)
    elif minus.ndim > plus.ndim:
        plus = jnp.broadcast_to(plus[..., None], minus.shape)
    return c * jnp.mean(plus - minus, axis=0).astype(c.dtype)
