"""Variance reduction of repgrad's baselines, control variates, couplings, STL and DReG.

For each problem the gradient estimator is replicated R times (independent keys, the
same keys for every option of a problem) and the total variance Σ_j Var[ĝ_j] is
reported with its ratio to the problem's reference estimator (first row), measured in
the same run. Closed-form problems (all estimators unbiased, checked in the tests):

- score, x ∈ R³ ~ N(μ, σ²), f(x) = Σ sin(x_j) + 5, N = 16 samples;
- pathwise, same problem;
- measure-valued, Gamma(α, λ) and Poisson(λ) in R², f(x) = Σ x², N = 16;
- ELBO/IWAE: z ~ N(0, I₂), x | z ~ N(z, ½ I), q = N(m, s²) off the posterior
  (and at it for STL); ELBO with N = 4, IWAE with K particles.

Usage: ``python benchmarks/control_variates.py [--small] [--replicates R]``.
"""

from __future__ import annotations

import argparse
import datetime
import platform

import jax
import jax.numpy as jnp
import numpy as np

import repgrad as rg

N = 16
LOC, SCALE = jnp.array([0.3, 1.0, -0.6]), jnp.array([0.5, 0.8, 0.3])
PARAMS = {"loc": LOC, "scale": SCALE}


def normal(p):
    return rg.Normal(p["loc"], p["scale"])


def sin_f(x):
    return jnp.sum(jnp.sin(x)) + 5.0


def total_var(fn, replicates, seed=0):
    keys = jax.random.split(jax.random.key(seed), replicates)
    g = jax.jit(jax.vmap(fn))(keys)
    return sum(float(np.sum(np.var(np.asarray(v, np.float64), axis=0))) for v in jax.tree_util.tree_leaves(g))


def problems():
    cv_user = rg.control_variate(lambda x: jnp.sum(x), lambda d: jnp.sum(d.mean()))
    score = lambda **kw: lambda k: rg.score_grad(sin_f, normal, num_samples=N, **kw)(PARAMS, k)
    path = lambda **kw: lambda k: rg.pathwise_grad(sin_f, normal, num_samples=N, **kw)(PARAMS, k)
    yield (
        "score, Normal, Σsin x + 5",
        [
            ("no baseline", score()),
            ("leave-one-out", score(baseline="loo")),
            ("optimal per-coordinate (loo)", score(baseline="optimal")),
            ("optimal per-coordinate (fresh)", score(baseline=rg.optimal_baseline("fresh"))),
            ("delta method", score(control_variate="delta")),
            ("delta method + loo", score(control_variate="delta", baseline="loo")),
            (
                "delta method, estimated coefficient",
                score(control_variate=rg.delta_method(coefficient="optimal")),
            ),
            ("user CV h = Σx", score(control_variate=cv_user, baseline="loo")),
        ],
    )
    yield (
        "pathwise, Normal, Σsin x + 5",
        [
            ("plain", path()),
            ("delta method", path(control_variate="delta")),
        ],
    )
    sq = lambda x: jnp.sum(x * x)
    for name, dist, theta in [
        ("Gamma", lambda p: rg.Gamma(p[0], p[1]), (jnp.array([1.5, 3.0]), jnp.array([2.0, 0.7]))),
        ("Poisson", lambda p: rg.Poisson(p[0]), (jnp.array([0.5, 2.0]),)),
    ]:
        mv = lambda c, dist=dist, theta=theta: (
            lambda k: rg.measure_valued_grad(sq, dist, num_samples=N, coupled=c)(theta, k)[-1]
        )
        yield f"measure-valued, {name} rate, Σx²", [("uncoupled", mv(False)), ("coupled", mv(True))]
    s2, x = 0.5, jnp.array([1.0, -0.5])
    log_joint = lambda z, x: jnp.sum(-0.5 * z * z - 0.5 * (x - z) ** 2 / s2)
    pv = 1.0 / (1.0 + 1.0 / s2)
    post = {"loc": pv * x / s2, "scale": jnp.full(2, pv**0.5)}
    off = {"loc": post["loc"] + 0.3, "scale": post["scale"] * 1.3}
    elbo = lambda e, p: lambda k: jax.grad(rg.elbo(log_joint, normal, num_samples=4, estimator=e))(p, k, x)
    yield (
        "ELBO (N = 4), q off the posterior",
        [("pathwise", elbo("pathwise", off)), ("STL", elbo("stl", off))],
    )
    yield (
        "ELBO (N = 4), q = exact posterior",
        [("pathwise", elbo("pathwise", post)), ("STL", elbo("stl", post))],
    )
    for k in (4, 32):
        iw = lambda e, k=k: (
            lambda key: jax.grad(rg.iwae_bound(log_joint, normal, num_samples=k, estimator=e))(off, key, x)
        )
        yield f"IWAE encoder gradient, K = {k}", [("pathwise", iw("pathwise")), ("DReG", iw("dreg"))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny smoke-test settings")
    parser.add_argument("--replicates", type=int, default=None)
    args = parser.parse_args(argv)
    replicates = args.replicates or (8 if args.small else 2000)
    print(
        f"# repgrad control-variate variance ({platform.machine()}, jax {jax.__version__}, "
        f"{datetime.date.today()}, R = {replicates})"
    )
    print("| problem | estimator | total variance | ratio to first row |")
    print("|---|---|---|---|")
    rows = []
    for title, options in problems():
        if args.small:  # smoke run: two options per problem, one problem per family
            if "exact posterior" in title or "K = 4" in title or "Poisson" in title:
                continue
            options = options[:2]
        ref = None
        for label, fn in options:
            v = total_var(fn, replicates)
            ref = v if ref is None else ref
            ratio = v / ref if ref > 0 else float("nan")
            rows.append((title, label, v, ratio))
            print(f"| {title} | {label} | {v:.4g} | {ratio:.3g} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
