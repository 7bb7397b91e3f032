"""Baselines and control variates: unbiasedness against closed forms and variance
no larger than without them where theory says so.

Statistical checks are |mean − exact| < 5 SE over R replicates (tests/_stats.py): a
correct estimator fails one scalar check with probability ≈ 5.7e-7; keys are fixed.
Variance comparisons use the same keys (common random numbers) and a theory-backed
problem; margins are large (the measured ratios are in /tmp/notes/C1.md).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, exact_grad, replicate

import repgrad as rg

R = 400  # replicates
N = 16  # samples per replicate

LOC = np.array([0.3, 1.0, -0.6])
SCALE = np.array([0.5, 0.8, 0.3])
PARAMS = {"loc": jnp.asarray(LOC, jnp.float32), "scale": jnp.asarray(SCALE, jnp.float32)}
OFFSET = 5.0  # a large constant in f: the case baselines are for


def normal(p):
    return rg.Normal(p["loc"], p["scale"])


def sin_f(x):
    return jnp.sum(jnp.sin(x)) + OFFSET


def sin_exact(loc, scale):  # E[sin x] = sin(μ) e^{−σ²/2}
    return jnp.sum(jnp.sin(loc) * jnp.exp(-0.5 * scale * scale)) + OFFSET


EXACT = dict(zip(("loc", "scale"), exact_grad(sin_exact, LOC, SCALE), strict=True))


def total_var(g):
    return sum(float(np.sum(np.var(v, axis=0))) for v in jax.tree_util.tree_leaves(g))


@pytest.fixture(scope="module")
def plain_score():
    fn = rg.score_grad(sin_f, normal, num_samples=N)
    return replicate(lambda k: fn(PARAMS, k), jax.random.key(1), R)


@pytest.mark.parametrize(
    "baseline",
    ["loo", rg.optimal_baseline("loo"), rg.optimal_baseline("fresh")],
    ids=["loo", "opt-loo", "opt-fresh"],
)
def test_baselines_unbiased_and_reduce_variance(baseline, plain_score):
    fn = rg.score_grad(sin_f, normal, num_samples=N, baseline=baseline)
    g = replicate(lambda k: fn(PARAMS, k), jax.random.key(1), R)
    assert_unbiased(g, EXACT, name=f"score + {baseline}")
    assert total_var(g) <= total_var(plain_score)


def test_optimal_same_samples_is_refused_naming_loo():
    # b estimated from the same samples depends on x_n: biased (8-21 SE at N = 8), no cheaper than loo.
    with pytest.raises(ValueError, match=r"optimal_baseline\('loo'\)"):
        rg.optimal_baseline("same")


def test_moving_average_unbiased_and_reduces_variance(plain_score):
    fn = jax.jit(rg.score_grad(sin_f, normal, num_samples=N, baseline=rg.moving_average_baseline(0.9)))
    state = fn.init_state()
    # warm the average up, then replicate with the warmed (fixed) state
    for k in jax.random.split(jax.random.key(3), 20):
        _, state = fn(PARAMS, k, baseline_state=state)
    g = replicate(lambda k: fn(PARAMS, k, baseline_state=state)[0], jax.random.key(1), R)
    assert_unbiased(g, EXACT, name="moving average")
    assert total_var(g) <= total_var(plain_score)


def test_optimal_baseline_bernoulli_enumeration():
    logits = jnp.array([0.4, -1.2, 2.0])
    w = jnp.array([1.0, -2.0, 0.5])
    f = lambda b: jnp.sum(w * b) + 3.0 * b[0] * b[1] + 4.0
    dist = lambda lg: rg.Bernoulli(logits=lg)
    bits = jnp.array([[i >> j & 1 for j in range(3)] for i in range(8)], jnp.float32)
    exact = jax.grad(
        lambda lg: jnp.sum(jnp.exp(jax.vmap(dist(lg).log_prob)(bits).sum(-1)) * jax.vmap(f)(bits))
    )(logits)
    plain = replicate(lambda k: rg.score_grad(f, dist, num_samples=N)(logits, k), jax.random.key(4), R)
    g = replicate(
        lambda k: rg.score_grad(f, dist, num_samples=N, baseline="optimal")(logits, k), jax.random.key(4), R
    )
    assert_unbiased(g, exact, name="bernoulli optimal baseline")
    assert total_var(g) <= total_var(plain)


def test_optimal_baseline_categorical_enumeration():
    # The Categorical leaf is normalized: per-coordinate baselines need the mean-zero scores
    # 1{x = k} − p_k (through log_softmax), or they bias the estimate.
    logits = jnp.array([[0.1, 0.5, -0.3], [1.0, 0.0, -1.0]])
    vals = jnp.array([[1.0, -2.0, 0.5], [3.0, 0.0, 1.0]])
    f = lambda x: jnp.sum(vals[jnp.arange(2), x]) + vals[0, x[0]] * vals[1, x[1]] + 5.0

    def expected(lg):
        e = jnp.sum(jax.nn.softmax(lg, -1) * vals, axis=-1)
        return jnp.sum(e) + e[0] * e[1]

    dist = lambda lg: rg.Categorical(logits=lg)
    plain = replicate(lambda k: rg.score_grad(f, dist, num_samples=N)(logits, k), jax.random.key(11), R)
    g = replicate(
        lambda k: rg.score_grad(f, dist, num_samples=N, baseline="optimal")(logits, k), jax.random.key(11), R
    )
    assert_unbiased(g, jax.grad(expected)(logits), name="categorical optimal baseline")
    assert total_var(g) <= total_var(plain)


# ------------------------------------------------------------------ delta method


def test_delta_method_exact_for_quadratics():
    # f quadratic ⇒ h = f, the residual is 0 and both estimators return ∇E[h] exactly.
    a = jnp.array([[1.0, 0.3, 0.0], [0.3, 2.0, -0.5], [0.0, -0.5, 0.7]])
    f = lambda x: x @ a @ x + jnp.sum(x)
    exact = {"loc": 2.0 * a @ PARAMS["loc"] + 1.0, "scale": 2.0 * jnp.diag(a) * PARAMS["scale"]}
    for make in (rg.score_grad, rg.pathwise_grad):
        g = jax.jit(make(f, normal, num_samples=4, control_variate="delta"))(PARAMS, jax.random.key(0))
        for name in exact:
            np.testing.assert_allclose(g[name], exact[name], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("make", [rg.score_grad, rg.pathwise_grad], ids=["score", "pathwise"])
def test_delta_method_unbiased_and_reduces_variance(make, plain_score):
    # σ ≤ 0.8 keeps sin close to its quadratic expansion, where the CV is near-optimal.
    if make is rg.score_grad:
        plain = plain_score
    else:
        plain = replicate(lambda k: make(sin_f, normal, num_samples=N)(PARAMS, k), jax.random.key(1), R)
    fn = make(sin_f, normal, num_samples=N, control_variate=rg.delta_method())
    g = replicate(lambda k: fn(PARAMS, k), jax.random.key(1), R)
    assert_unbiased(g, EXACT, name="delta method")
    assert total_var(g) <= total_var(plain)


def test_estimated_optimal_coefficient_unbiased_and_reduces_variance(plain_score):
    fn = rg.score_grad(sin_f, normal, num_samples=N, control_variate=rg.delta_method(coefficient="optimal"))
    g = replicate(lambda k: fn(PARAMS, k), jax.random.key(1), R)
    assert_unbiased(g, EXACT, name="delta method, estimated coefficient")
    assert total_var(g) <= total_var(plain_score)


@pytest.mark.parametrize("base", ["pathwise", "measure_valued"])
def test_control_variates_compose_with_every_estimator(base):
    """Numeric and estimated coefficients on pathwise and measure-valued: unbiased, lower variance."""
    make = {"pathwise": rg.pathwise, "measure_valued": rg.measure_valued}[base]
    runs = {}
    for label, cv in [("plain", None), ("delta", rg.delta_method()), ("optimal", rg.delta_method(coefficient="optimal"))]:
        fn = rg.grad(sin_f, normal, rg.with_control_variate(make(), cv), num_samples=N)
        runs[label] = replicate(lambda k, fn=fn: fn(PARAMS, k), jax.random.key(2), R)
        assert_unbiased(runs[label], EXACT, name=f"{base} + {label}")
    assert total_var(runs["delta"]) < total_var(runs["plain"])
    assert total_var(runs["optimal"]) < total_var(runs["plain"])


def test_delta_method_expansion_points():
    """Differentiable point: zero-variance pathwise gradients for a cubic f (optax's form);
    stop-gradient point: lower variance for sin. Both unbiased."""
    cubic = lambda x: jnp.sum(x**3 - 2.0 * x)
    exact_cubic = {"loc": 3 * (PARAMS["loc"] ** 2 + PARAMS["scale"] ** 2) - 2.0, "scale": 6 * PARAMS["loc"] * PARAMS["scale"]}
    diff_point = rg.pathwise(control_variate=rg.delta_method(differentiable_point=True))
    g = replicate(lambda k: rg.grad(cubic, normal, diff_point, num_samples=N)(PARAMS, k), jax.random.key(3), R)
    # ∂/∂μ of the residual f(μ + σε) − h_μ(μ + σε) vanishes for cubic f: the mean-gradient is exact.
    np.testing.assert_allclose(g["loc"], np.broadcast_to(exact_cubic["loc"], g["loc"].shape), rtol=1e-4, atol=1e-4)
    assert_unbiased(g["scale"], exact_cubic["scale"], name="scale gradient, differentiable point")
    runs = {}
    for label, point in [("stop_gradient", False), ("differentiable", True)]:
        for est in (rg.pathwise, rg.score, rg.measure_valued):
            fn = rg.grad(sin_f, normal, est(control_variate=rg.delta_method(differentiable_point=point)), num_samples=N)
            runs[label, est.__name__] = replicate(lambda k, fn=fn: fn(PARAMS, k), jax.random.key(4), R)
            assert_unbiased(runs[label, est.__name__], EXACT, name=f"delta at the {label} point, {est.__name__}")
    # Measure-valued: the fixed point's h matches f on both sides of each weak derivative (2× here).
    assert total_var(runs["stop_gradient", "measure_valued"]) < total_var(runs["differentiable", "measure_valued"])


def test_moving_average_warmup_follows_f_early():
    fn = rg.score_grad(sin_f, normal, num_samples=N, baseline=rg.moving_average_baseline(0.99, warmup=True))
    state = fn.init_state()
    for i in range(3):
        _, state = fn(PARAMS, jax.random.key(i), baseline_state=state)
    # decay_t = min(0.99, (1+t)/(10+t)): after 3 calls the average holds ≥ 0.75 of recent f̄'s weight.
    assert abs(float(state.value) - (float(jnp.sum(jnp.sin(PARAMS["loc"]))) + OFFSET)) < 1.0
    assert int(state.count) == 3


E_EXP = 0.3  # f(x) = Σ exp(−t x): closed-form expectations for Gamma, Poisson, Bernoulli


def _exp_f(x):
    return jnp.sum(jnp.exp(-E_EXP * x))


@pytest.mark.parametrize(
    "dist,theta,closed",
    [
        (
            lambda p: rg.Gamma(p[0], p[1]),
            (np.array([2.0, 3.5]), np.array([1.5, 2.0])),
            lambda a, b: jnp.sum((b / (b + E_EXP)) ** a),
        ),
        (
            lambda p: rg.Poisson(p[0]),
            (np.array([0.7, 2.5]),),
            lambda lam: jnp.sum(jnp.exp(lam * (jnp.exp(-E_EXP) - 1.0))),
        ),
        (
            lambda p: rg.Bernoulli(probs=p[0]),
            (np.array([0.2, 0.7]),),
            lambda q: jnp.sum(1.0 - q + q * jnp.exp(-E_EXP)),
        ),
    ],
    ids=["gamma", "poisson", "bernoulli"],
)
def test_delta_method_score_other_families(dist, theta, closed):
    exact = exact_grad(closed, *theta)
    params = tuple(jnp.asarray(t, jnp.float32) for t in theta)
    fn = rg.score_grad(_exp_f, dist, num_samples=N, control_variate="delta", baseline="loo")
    g = replicate(lambda k: fn(params, k), jax.random.key(6), R)
    assert_unbiased(g, exact, name="delta method (score)")


# ------------------------------------------------------------- user-supplied CV


def test_user_control_variate_score_and_pathwise():
    f = lambda x: jnp.sum(2.0 * x + 0.3 * jnp.sin(x))
    closed = lambda loc, scale: jnp.sum(2.0 * loc + 0.3 * jnp.sin(loc) * jnp.exp(-0.5 * scale * scale))
    exact = dict(zip(("loc", "scale"), exact_grad(closed, LOC, SCALE), strict=True))
    cv = rg.control_variate(lambda x: jnp.sum(x), lambda d: jnp.sum(d.mean()), coefficient=2.0)
    plain = replicate(lambda k: rg.score_grad(f, normal, num_samples=N)(PARAMS, k), jax.random.key(7), R)
    g = replicate(
        lambda k: rg.score_grad(f, normal, num_samples=N, control_variate=cv)(PARAMS, k), jax.random.key(7), R
    )
    assert_unbiased(g, exact, name="user CV (score)")
    assert total_var(g) <= total_var(plain)
    # pathwise: h = Σ x² with E[h] = Σ μ² + σ².
    f2 = lambda x: jnp.sum(x * x + 0.3 * jnp.sin(x))
    closed2 = lambda loc, scale: jnp.sum(
        loc**2 + scale**2 + 0.3 * jnp.sin(loc) * jnp.exp(-0.5 * scale * scale)
    )
    exact2 = dict(zip(("loc", "scale"), exact_grad(closed2, LOC, SCALE), strict=True))
    cv2 = rg.control_variate(lambda x: jnp.sum(x * x), lambda d: jnp.sum(d.mean() ** 2 + d.variance()))
    plain2 = replicate(lambda k: rg.pathwise_grad(f2, normal, num_samples=N)(PARAMS, k), jax.random.key(8), R)
    g2 = replicate(
        lambda k: rg.pathwise_grad(f2, normal, num_samples=N, control_variate=cv2)(PARAMS, k),
        jax.random.key(8),
        R,
    )
    assert_unbiased(g2, exact2, name="user CV (pathwise)")
    assert total_var(g2) <= total_var(plain2)


def test_control_variate_keeps_value_and_arg_gradients():
    """The value is the estimator's value of f − c·h plus c·E[h] (unbiased for E[f] whatever
    points the estimator weights); f-argument gradients are those without the control variate."""
    f = lambda x, w: jnp.sum(w * jnp.sin(x))
    w = jnp.array([1.0, 2.0, -1.0])
    key = jax.random.key(9)
    exact = float(np.sum(np.asarray(w) * np.sin(LOC) * np.exp(-0.5 * SCALE**2)))  # E[sin x] = sin μ e^{−σ²/2}
    for est in ("score", "pathwise"):
        plain = rg.expectation(f, normal, estimator=est, num_samples=8)
        with_cv = rg.expectation(f, normal, estimator=est, num_samples=8, control_variate="delta")
        v_plain, gw_plain = jax.jit(jax.value_and_grad(plain, argnums=2))(PARAMS, key, w)
        v_cv, gw_cv = jax.jit(jax.value_and_grad(with_cv, argnums=2))(PARAMS, key, w)
        np.testing.assert_allclose(gw_cv, gw_plain, rtol=1e-6)
        values = replicate(lambda k, with_cv=with_cv: with_cv(PARAMS, k, w), jax.random.key(10), 300)
        assert_unbiased(values, exact, name=f"{est} + delta value")


def test_stateful_baseline_with_cv_in_scan_and_deterministic():
    fn = rg.score_grad(sin_f, normal, num_samples=8, baseline="moving_average", control_variate="delta")

    def step(state, k):
        g, state = fn(PARAMS, k, baseline_state=state)
        return state, g

    keys = jax.random.split(jax.random.key(10), 5)
    run = jax.jit(lambda s: jax.lax.scan(step, s, keys))
    state, g1 = run(fn.init_state())
    _, g2 = run(fn.init_state())
    assert int(state.count) == 5 and np.all(np.isfinite(g1["loc"]))
    assert np.array_equal(g1["loc"], g2["loc"]) and np.array_equal(g1["scale"], g2["scale"])


def test_errors_name_the_fix():
    with pytest.raises(TypeError, match="control_variate"):
        rg.score_grad(sin_f, normal, num_samples=8, control_variate="bogus")
    with pytest.raises(ValueError, match="estimate"):
        rg.optimal_baseline("median")
    with pytest.raises(ValueError, match="num_samples"):
        rg.score_grad(sin_f, normal, num_samples=1, baseline="optimal")
    with pytest.raises(TypeError, match="control_variate"):
        rg.control_variate(jnp.sum, 3.0)
    cat = lambda lg: rg.Categorical(logits=lg)
    with pytest.raises(TypeError, match="delta-method"):
        rg.score_grad(lambda x: jnp.sum(x).astype(jnp.float32), cat, num_samples=4, control_variate="delta")(
            jnp.zeros((2, 3)), jax.random.key(0)
        )
    tri = lambda p: rg.MultivariateNormalTri(p, jnp.eye(2))
    with pytest.raises(TypeError, match="elementwise"):
        rg.score_grad(jnp.sum, tri, num_samples=4, baseline="optimal")(jnp.zeros(2), jax.random.key(0))


@pytest.mark.slow
def test_benchmark_smoke():
    # benchmarks/control_variates.py as a script (as `make bench` runs it), under the suite's
    # strict promotion rules and with warnings as errors.
    import os
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "control_variates.py"
    env = dict(os.environ, XLA_FLAGS="", JAX_NUMPY_DTYPE_PROMOTION="strict", JAX_NUMPY_RANK_PROMOTION="raise")
    out = subprocess.run(
        [sys.executable, "-W", "error", str(script), "--small", "--replicates", "3"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in out.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    variances = [float(cells[2]) for cells in rows[1:]]  # rows[0] is the header
    assert len(variances) >= 10 and all(np.isfinite(v) for v in variances), out.stdout


def test_vmap_over_params():
    params = {"loc": jnp.ones((3, 2)), "scale": jnp.full((3, 2), 0.5)}
    fn = rg.score_grad(sin_f, normal, num_samples=4, baseline="optimal", control_variate=None)
    cv = rg.score_grad(sin_f, normal, num_samples=4, control_variate="delta")
    g = jax.jit(jax.vmap(lambda p: (fn(p, jax.random.key(0)), cv(p, jax.random.key(0)))))(params)
    assert g[0]["loc"].shape == (3, 2) and g[1]["scale"].shape == (3, 2)
    # each row equals its own un-vmapped call
    row = cv({"loc": params["loc"][1], "scale": params["scale"][1]}, jax.random.key(0))
    np.testing.assert_allclose(g[1]["loc"][1], row["loc"], rtol=1e-5, atol=1e-6)
