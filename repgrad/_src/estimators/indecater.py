"""IndeCateR: for each variable, an exact sum over its values with the other variables sampled."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..core import kernels, protocol
from ..core.estimator import Estimator, Out
from . import _discrete

_sg = jax.lax.stop_gradient

DEFAULT_ELEMENTS = 2**20  # evaluations at once × |x|: about 4 MB per float32 copy


def indecater(*, chunk_size: int | None = None) -> Estimator:
    r"""The IndeCateR (independent categorical REINFORCE) estimator of ∇θ E_{x∼p_θ}[f(x)].

    **Unbiased.** For a factorized Bernoulli or Categorical x = (x_1, …, x_D) whose variable d
    has K values and probabilities p_d(·; θ_d), the gradient in θ_d is a sum over x_d's own
    values with the others sampled:

    .. math::

      \nabla_{\theta_d} \mathbb{E}[f(x)]
        = \mathbb{E}_{x_{\ne d}}\Big[\sum_{k=1}^K \nabla_{\theta_d} p_d(k)\, f(x_{\ne d}, x_d = k)\Big]
        \approx \frac1N \sum_{n=1}^N \sum_{k=1}^K \nabla_{\theta_d} p_d(k)\, f(x^{(n)}_{\ne d}, k),

    the same N samples x^(n) serving every d. For logits, ∂p_d(k)/∂θ_{d,j} = p_d(k)(δ_kj −
    p_d(j)) (Bernoulli: σ'(θ_d) (f(·, 1) − f(·, 0))). The value is the plain mean of f over the N
    samples. The variance comes from the other variables only; f need not be differentiable.

    **Cost:** N·(D·(K − 1) + 1) evaluations of f (the sample's own value is one of each variable's
    K), no derivative of f: N·(D + 1) for a Bernoulli. They run ``chunk_size`` at a time, so the
    substituted points take O(chunk_size · D) memory on top of the O(N · D) samples. aux is that
    of the N samples. First derivatives only: a second derivative that moves θ raises
    ``repgrad.DerivativeOrderError``.

    Args:
      chunk_size: the largest number of f evaluations made at once; ``None``: 2²⁰ / D (at least
        64). Chunking changes no result.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.grad(lambda b: jnp.prod(1.0 + b), lambda p: rg.Bernoulli(logits=p), rg.indecater(),
      ...             num_samples=8)(jnp.zeros(3), jax.random.key(0))  # exact: 0.25·1.5² each

    References:
      De Smet, Sansone & Zuidberg Dos Martires, "Differentiable Sampling of Categorical
      Distributions Using the CatLog-Derivative Trick", NeurIPS 2023 (arXiv:2311.12569).
      Titsias & Lázaro-Gredilla, "Local Expectation Gradients for Black Box Variational
      Inference", NeurIPS 2015 (the same sum, per variable).
    """
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int (f evaluations at once), got {chunk_size!r}.")

    def surrogate(problem, d, key, state, control):
        n = problem.num_samples
        kind = _discrete.kind_of(d, "indecater")
        logits = jnp.asarray(d.logits)
        theta = _sg(logits)
        x = _sg(problem.shard(protocol.draw(d, key, n)))  # (N, *shape)
        values, aux = problem.evaluate(x)
        num_values = 2 if kind == "bernoulli" else logits.shape[-1]
        size = math.prod(x.shape[1:])
        chunk = chunk_size or max(64, DEFAULT_ELEMENTS // max(size, 1))
        # table[n, d, j] = f(x_n with variable d moved j values on, mod K); j = 0 is x_n itself.
        moved = _moved_values(problem, x, num_values, chunk)  # (N, D, K − 1)
        own = jnp.broadcast_to(values[:, None, None], (n, size, 1))
        table = jnp.concatenate([own, moved], axis=-1)
        flat = x.reshape(n, size).astype(jnp.int32)
        # by value: at[n, d, c] = table[n, d, (c − x_nd) mod K]
        shift = (jnp.arange(num_values, dtype=jnp.int32)[None, None, :] - flat[:, :, None]) % num_values
        by_value = jnp.mean(jnp.take_along_axis(_sg(table), shift, axis=-1), axis=0)  # (D, K)
        if kind == "bernoulli":
            var = _discrete.bernoulli_variance(theta.reshape(-1))
            g = (var * (by_value[:, 1] - by_value[:, 0]).astype(var.dtype)).reshape(theta.shape)
        else:
            probs = jax.nn.softmax(theta, axis=-1).reshape(size, num_values)
            # masked categories (probability 0) never enter, whatever f is there
            fv = jnp.where(probs > 0, by_value.astype(probs.dtype), 0.0)
            g = (probs * (fv - jnp.sum(probs * fv, axis=-1, keepdims=True))).reshape(theta.shape)
        value = jnp.mean(values)
        # f's values enter ĝ stop-gradient: watching them refuses mixed θ/f-argument derivatives.
        pull = kernels.pullback([(logits, g)], "indecater", value.dtype, watch=(values, table))
        return Out(value + pull, value, aux)

    return Estimator("indecater", surrogate, max_order=1, family="discrete")


def _moved_values(problem, x, num_values, chunk):
    """f at every sample with one variable moved to each of its other values: (N, D, K − 1).

    Each evaluation goes through ``problem.evaluate`` over the N samples (row n is sample n's
    point); the D·(K − 1) substitutions run ``max(1, chunk // N)`` at a time.
    """
    n = x.shape[0]
    size = math.prod(x.shape[1:])
    flat = x.reshape(n, size)
    count = size * (num_values - 1)

    def at(m):  # substitution m: variable m // (K − 1), moved (m % (K − 1)) + 1 values on
        var, step = m // (num_values - 1), m % (num_values - 1) + 1
        old = flat[:, var]
        new = ((old.astype(jnp.int32) + step) % num_values).astype(flat.dtype)
        points = flat.at[:, var].set(new).reshape(x.shape)
        return problem.evaluate(points, n)[0]  # (N,)

    ms = jnp.arange(count, dtype=jnp.int32)
    if n * count <= chunk:
        out = jax.vmap(at)(ms)
    else:
        out = jax.lax.map(at, ms, batch_size=max(1, chunk // n))
    return out.T.reshape(n, size, num_values - 1)
