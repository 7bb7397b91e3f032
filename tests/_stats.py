"""Standard-error based assertions for statistical tests (shared by the test files).

Usage (tests/ is on ``sys.path`` under pytest's default import mode)::

    from _stats import assert_unbiased, assert_agree, replicate

    est = replicate(lambda k: grad_fn(params, k), jax.random.key(0), 500)  # (R, ...) pytree
    assert_unbiased(est, exact)                                            # |mean − exact| < 5 SE

Tolerances come from the estimates themselves: SE = std(ddof=1)/sqrt(R). For an
unbiased estimator the standardized error is ~N(0, 1) (R ≳ 100, CLT), so a 5·SE bound
fails by chance with probability ≈ 5.7e-7 per scalar checked (two-sided); with fixed
keys the tests are deterministic anyway.
"""

from __future__ import annotations

import math

import jax
import numpy as np

# Two-sided normal tail P(|Z| > 5): the chance a correct estimator fails one 5-SE check.
FAIL_PROB_5SE = math.erfc(5 / math.sqrt(2))


def replicate(fn, key, num_replicates: int, *, jit: bool = True):
    """``fn(k)`` for ``num_replicates`` independent keys split from ``key``, stacked on axis 0.

    ``fn`` is vmapped over the keys (and jitted once), so R replicates cost one compile.
    """
    keys = jax.random.split(key, num_replicates)
    vfn = jax.vmap(fn)
    if jit:
        vfn = jax.jit(vfn)
    return jax.tree_util.tree_map(np.asarray, vfn(keys))


def mean_and_se(samples):
    """Mean and standard error over axis 0 (float64 numpy)."""
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim == 0 or s.shape[0] < 2:
        raise ValueError(f"need replicates on axis 0 (at least 2), got shape {s.shape}")
    return s.mean(axis=0), s.std(axis=0, ddof=1) / math.sqrt(s.shape[0])


def _check(diff, se, n_se, what, extra, atol):
    diff, se = np.broadcast_arrays(np.asarray(diff, np.float64), np.asarray(se, np.float64))
    bound = n_se * se + atol
    bad = ~(np.abs(diff) <= bound)
    if np.any(bad):
        idx = np.argwhere(bad)[:5].tolist() if diff.ndim else [()]
        z = np.abs(diff) / np.where(se > 0, se, np.nan)
        lines = [
            f"{what}: {int(np.sum(bad))}/{bad.size} elements off by more than {n_se} SE",
            f"  worst |diff|/SE = {np.nanmax(z) if np.any(np.isfinite(z)) else float('inf'):.2f}",
        ]
        for i in idx:
            i = tuple(i)
            lines.append(f"  at {i}: diff={diff[i]:.6g}  SE={se[i]:.6g}  {extra(i)}")
        raise AssertionError("\n".join(lines))


def assert_unbiased(samples, exact, n_se: float = 5.0, *, atol: float = 0.0, name: str = "estimate"):
    """Asserts |mean(samples, 0) − exact| < n_se · SE elementwise (pytrees allowed).

    Args:
      samples: per-replicate (or per-sample) estimates, shape (R, ...), or a pytree of such.
      exact: the exact value, broadcastable to ``samples.shape[1:]`` (same pytree).
      n_se: the tolerance in standard errors (5 ⇒ chance failure ≈ 5.7e-7 per element).
      atol: an absolute slack added to the bound (e.g. float32 rounding when SE ≈ 0).
      name: label for the failure message.
    """
    s_leaves, treedef = jax.tree_util.tree_flatten(samples)
    e_leaves = treedef.flatten_up_to(exact)
    for j, (s, e) in enumerate(zip(s_leaves, e_leaves, strict=True)):
        m, se = mean_and_se(s)
        e = np.asarray(e, np.float64)
        label = name if len(s_leaves) == 1 else f"{name}[leaf {j}]"
        mb = np.broadcast_to(m, np.broadcast_shapes(m.shape, e.shape))
        eb = np.broadcast_to(e, mb.shape)
        _check(mb - eb, se, n_se, label, lambda i, mb=mb, eb=eb: f"mean={mb[i]:.6g} exact={eb[i]:.6g}", atol)


def assert_agree(samples_a, samples_b, n_se: float = 5.0, *, atol: float = 0.0, name: str = "estimators"):
    """Asserts two independent sets of estimates have the same mean within n_se combined SEs.

    |mean_a − mean_b| < n_se · sqrt(SE_a² + SE_b²) elementwise (pytrees allowed).
    """
    a_leaves, treedef = jax.tree_util.tree_flatten(samples_a)
    b_leaves = treedef.flatten_up_to(samples_b)
    for j, (a, b) in enumerate(zip(a_leaves, b_leaves, strict=True)):
        ma, sa = mean_and_se(a)
        mb, sb = mean_and_se(b)
        label = name if len(a_leaves) == 1 else f"{name}[leaf {j}]"
        _check(
            ma - mb,
            np.sqrt(sa**2 + sb**2),
            n_se,
            label,
            lambda i, ma=ma, mb=mb: f"a={ma[i]:.6g} b={mb[i]:.6g}",
            atol,
        )


# ------------------------------------------------------------------ shared test problems


def gaussian_costs_problem():
    """A separable Gaussian problem with closed-form expectations.

    x ∈ R^8 ~ N(loc, diag(scale²)); f(x) = Σ_j c_j(x_j) with c_j cycling through the
    costs linear (2x), quadratic (x²), cos(1.5x) and exp(−0.5x²), each at two (μ, σ).
    Closed forms (per coordinate):
      E[2x] = 2μ;  E[x²] = μ² + σ²;  E[cos(kx)] = cos(kμ) e^{−k²σ²/2};
      E[exp(−kx²)] = exp(−kμ²/(1+2kσ²)) / sqrt(1+2kσ²).
    Returns ``(f, params, exact_value, exact_grad)``; the exact gradient is the
    derivative of the closed form (computed by autodiff in float64 numpy-free jax).
    """
    import jax.numpy as jnp

    k_cos, k_exp = 1.5, 0.5
    kinds = jnp.array([0, 1, 2, 3, 0, 1, 2, 3])

    def f(x):
        costs = jnp.stack([2.0 * x, x * x, jnp.cos(k_cos * x), jnp.exp(-k_exp * x * x)])  # (4, 8)
        return jnp.sum(jnp.take_along_axis(costs, kinds[None, :], axis=0)[0])

    def closed_form(loc, scale):
        s2 = scale * scale
        e_exp = jnp.exp(-k_exp * loc * loc / (1.0 + 2.0 * k_exp * s2)) / jnp.sqrt(1.0 + 2.0 * k_exp * s2)
        e_cos = jnp.cos(k_cos * loc) * jnp.exp(-0.5 * k_cos**2 * s2)
        costs = jnp.stack([2.0 * loc, loc * loc + s2, e_cos, e_exp])
        return jnp.sum(jnp.take_along_axis(costs, kinds[None, :], axis=0)[0])

    loc = np.array([0.5, -1.0, 0.3, 0.8, -0.4, 0.6, -1.2, 0.0])
    scale = np.array([0.7, 1.2, 0.9, 0.6, 1.3, 0.5, 0.4, 1.1])
    exact_value, (g_loc, g_scale) = _f64_value_and_grad(closed_form, loc, scale)
    params = {"loc": jnp.asarray(loc, jnp.float32), "scale": jnp.asarray(scale, jnp.float32)}
    return f, params, exact_value, {"loc": g_loc, "scale": g_scale}


def _f64_value_and_grad(fn, *args):
    """Value and gradient (all args) of a closed form, evaluated in float64."""
    import jax.numpy as jnp

    with jax.enable_x64(True):
        args64 = tuple(jnp.asarray(a, jnp.float64) for a in args)
        v, g = jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args64)
        return float(v), tuple(np.asarray(gi) for gi in g)


def exact_grad(fn, *args):
    """Gradient of a closed-form ``fn(*args)`` w.r.t. every arg, in float64 (numpy arrays)."""
    return _f64_value_and_grad(fn, *args)[1]
