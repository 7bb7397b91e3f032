"""No silent wrong answers from the families (issue 10): samples inside the support with finite,
unbiased gradients at tiny concentrations in float32; noise drawn in float32 for bfloat16 and
float16 parameters; invalid parameters raise (under jit at run time, with validate_args=True)
with a message naming the fix; score-function estimators refuse a support that moves with the
parameters.

Statistical checks are |mean − exact| < 5 SE of the estimator's own replicates, computed in
float64 NumPy (tests/_stats.py): chance failure ≈ 5.7e-7 per scalar; the keys are fixed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, exact_grad, replicate
from jax.experimental import checkify

import repgrad as rg

KEY = jax.random.key(0)
R = 400  # replicates per statistical check (one jit(vmap) each)


def _score(f, dist, n):
    return rg.score_grad(f, dist, num_samples=n, baseline="loo")


def _pathwise(f, dist, n):
    return rg.pathwise_grad(f, dist, num_samples=n)


# ------------------------------------------------------- the edge of the support, float32


def _beta_x2(a):  # d/da E[x²] under Beta(a, a): E[x²] = (a + 1)/(4a + 2)
    return -2.0 / (4.0 * a + 2.0) ** 2


def test_beta_tiny_concentration_inside_support_and_unbiased():
    """Beta(0.1, 0.1) rounded 10% of its float32 draws to exactly 1.0, where log(1 − x) = −inf:
    score_grad returned −inf (issue 10). Samples now lie in (0, 1) and both estimators are
    finite and unbiased."""
    x = rg.Beta(0.1, 0.1).sample(KEY, (20000,))
    assert x.dtype == jnp.float32 and bool(jnp.all((x > 0) & (x < 1)))
    # The call, verbatim.
    assert np.isfinite(rg.score_grad(lambda x: x**2, lambda a: rg.Beta(a, a), num_samples=1000)(0.1, KEY))
    dist = lambda a: rg.Beta(a, a)
    a = jnp.float32(0.1)
    for estimator in (_score, _pathwise):
        fn = estimator(lambda x: x * x, dist, 256)
        g = replicate(lambda k, fn=fn: fn(a, k), jax.random.key(1), R)
        assert np.all(np.isfinite(g)), estimator.__name__
        assert_unbiased(g, _beta_x2(0.1), name=estimator.__name__)


def test_beta_pathwise_where_both_gammas_underflow():
    """Beta(0.01, 0.01): both log-gammas fall below float32's smallest number for 18% of draws.
    jax's own derivative there (the implicit one evaluated at G = tiny) biased the pathwise
    gradient by 8 SE; the small-G limit of ∂ log G/∂α is exact."""
    dist = lambda a: rg.Beta(a, a)
    fn = _pathwise(lambda x: x * x, dist, 256)
    g = replicate(lambda k: fn(jnp.float32(0.01), k), jax.random.key(2), R)
    assert_unbiased(g, _beta_x2(0.01))


def test_gamma_tiny_concentration_finite_and_unbiased():
    """Gamma(0.01): 42% of float32 draws were exactly 0 and score_grad was NaN (issue 10)."""
    x = rg.Gamma(0.01, 1.0).sample(KEY, (20000,))
    assert bool(jnp.all((x > 0) & jnp.isfinite(x)))
    dist = lambda p: rg.Gamma(p[0], p[1])
    p = jnp.array([0.01, 1.0], jnp.float32)
    exact = np.array([1.0, -0.01])  # E[x] = a/b
    for estimator in (_score, _pathwise, lambda f, d, n: rg.measure_valued_grad(f, d, num_samples=n)):
        fn = estimator(lambda x: x, dist, 256)
        g = replicate(lambda k, fn=fn: fn(p, k), jax.random.key(3), R)
        assert np.all(np.isfinite(g))
        assert_unbiased(g, exact)


def test_dirichlet_tiny_concentration_finite_and_unbiased():
    c = np.array([1.0, -2.0, 3.0])
    f = lambda x: jnp.sum(jnp.asarray(c, jnp.float32) * x * x)

    def closed_form(alpha):  # E[x_i²] = α_i(α_i + 1)/(α₀(α₀ + 1))
        total = jnp.sum(alpha)
        return jnp.sum(jnp.asarray(c) * alpha * (alpha + 1.0)) / (total * (total + 1.0))

    alpha = np.full(3, 0.05)
    (exact,) = exact_grad(closed_form, alpha)
    x = rg.Dirichlet(jnp.asarray(alpha, jnp.float32)).sample(KEY, (20000,))
    assert bool(jnp.all((x > 0) & (x < 1)))
    for estimator in (_score, _pathwise):
        fn = estimator(f, rg.Dirichlet, 256)
        g = replicate(lambda k, fn=fn: fn(jnp.asarray(alpha, jnp.float32), k), jax.random.key(4), R)
        assert np.all(np.isfinite(g))
        assert_unbiased(g, exact, name=estimator.__name__)


def test_lognormal_exponential_uniform_stay_inside():
    # exp of N(0, 60²) overflows and underflows float32; the score takes log x from the normal draw.
    x = rg.LogNormal(0.0, 60.0).sample(KEY, (20000,))
    assert bool(jnp.all((x > 0) & jnp.isfinite(x)))
    g = rg.score_grad(lambda x: jnp.tanh(x), lambda p: rg.LogNormal(p[0], p[1]), num_samples=64)(
        jnp.array([0.0, 60.0]), KEY
    )
    assert bool(jnp.all(jnp.isfinite(g)))
    # A tiny rate overflows E/rate; samples stay finite, the log-density too.
    x = rg.Exponential(1e-38).sample(KEY, (20000,))
    assert bool(jnp.all((x >= 0) & jnp.isfinite(x)))
    # Uniform on [1, 1 + 1e-6): float32 has 8 values there and low + (high − low)·u rounds onto high.
    low, high = jnp.float32(1.0), jnp.float32(1.0) + jnp.float32(1e-6)
    d = rg.Uniform(low, high)
    x = d.sample(KEY, (20000,))
    assert bool(jnp.all((x >= low) & (x < high))) and bool(jnp.all(jnp.isfinite(d.log_prob(x))))
    # ... with unclipped pathwise derivatives: ∂E[x]/∂low = ∂E[x]/∂high = 1/2.
    g = rg.pathwise_grad(lambda x: x, lambda p: rg.Uniform(p[0], p[1]), num_samples=20000)(jnp.stack([low, high]), KEY)
    np.testing.assert_allclose(g, [0.5, 0.5], atol=0.02)


# ------------------------------------------------------------------ low-precision noise


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_low_precision_noise_is_drawn_in_float32(dtype):
    """bfloat16 noise had 128 distinct standard-normal values, the largest 2.52."""
    x = rg.Normal(jnp.asarray(0.0, dtype), jnp.asarray(1.0, dtype)).sample(KEY, (100000,))
    assert x.dtype == dtype
    x = np.asarray(x, np.float64)
    assert len(np.unique(x)) > 1000 and x.max() > 3.5


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("estimator", [_score, _pathwise], ids=["score_loo", "pathwise"])
def test_low_precision_unbiased(dtype, estimator):
    """bfloat16 noise biased score+loo by 12 SE (issue 10); Gamma's rate by 9 SE."""
    problems = {
        # f = x², E = μ² + σ²; f = x under Gamma(a, b), E = a/b
        "normal": (lambda p: rg.Normal(p[0], p[1]), lambda x: x * x, [0.5, 1.3], [1.0, 2.6]),
        "gamma": (lambda p: rg.Gamma(p[0], p[1]), lambda x: x, [2.0, 1.5], [1 / 1.5, -2.0 / 1.5**2]),
    }
    for name, (dist, f, params, exact) in problems.items():
        fn = estimator(f, dist, 64)
        p = jnp.asarray(params, dtype)
        g = replicate(lambda k, fn=fn, p=p: fn(p, k), jax.random.key(5), 2000)
        assert g.dtype == dtype
        assert_unbiased(g, np.asarray(exact), name=f"{name} {jnp.dtype(dtype)}")


def test_low_precision_measure_valued_unbiased():
    """The measure-valued estimator's own noise (Rayleigh, Maxwell) too: bfloat16 biased the
    Normal's loc gradient by 27 SE."""
    fn = rg.measure_valued_grad(lambda x: x * x, lambda p: rg.Normal(p[0], p[1]), num_samples=64)
    p = jnp.asarray([0.5, 1.3], jnp.bfloat16)
    g = replicate(lambda k: fn(p, k), jax.random.key(6), 2000)
    assert_unbiased(g, np.array([1.0, 2.6]))


# ------------------------------------------------------------------ validate_args


F = lambda x: jnp.sum(x * x)


@pytest.mark.parametrize(
    "transform, dist, params, match",
    [
        (rg.score_grad, lambda s: rg.Normal(0.0, s), -1.0, "scale must be positive.*softplus"),
        (rg.pathwise_grad, lambda s: rg.Normal(0.0, s), -1.0, "scale must be positive.*softplus"),
        (rg.score_grad, lambda s: rg.Normal(0.0, s), 0.0, "scale must be positive.*softplus"),
        (rg.measure_valued_grad, lambda s: rg.Normal(0.0, s), 0.0, "scale must be positive.*softplus"),
        (rg.score_grad, lambda a: rg.Gamma(a, 1.0), -1.0, "concentration must be positive.*softplus"),
        (rg.score_grad, lambda p: rg.Bernoulli(probs=p), 1.5, r"probs must lie in \[0, 1\].*logits="),
    ],
    ids=["normal-scale-negative-score", "normal-scale-negative-pathwise", "normal-scale-zero-score",
         "normal-scale-zero-measure-valued", "gamma-negative", "bernoulli-probs-above-one"],
)  # fmt: skip
def test_invalid_params_raise_naming_the_fix(transform, dist, params, match):
    """Each case of issue 10 that returned finite gradients or NaN now raises, also inside the
    transforms' (un-jitted) jax.grad, where the values are known."""
    with pytest.raises(ValueError, match=match):
        transform(F, dist, num_samples=4)(jnp.float32(params), KEY)
    with pytest.raises(ValueError, match="validate_args=False"):
        dist(jnp.float32(params))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: rg.Normal(jnp.nan, 1.0), "loc must be finite"),
        (lambda: rg.Laplace(0.0, jnp.inf), "scale must be positive and finite"),
        (lambda: rg.Beta(jnp.array([1.0, -2.0]), 1.0), r"concentration0?1? must be positive.*index \(1,\)"),
        (lambda: rg.Dirichlet(jnp.array([1.0, 0.0])), "concentration must be positive"),
        (lambda: rg.Uniform(1.0, 1.0), "low must be below high"),
        (lambda: rg.Categorical(probs=jnp.array([0.5, -0.1])), r"probs must lie in \[0, 1\]"),
        (lambda: rg.MultivariateNormalTri(jnp.zeros(2), jnp.array([[1.0, 0.0], [1.0, 0.0]])), "nonzero diagonal"),
        (lambda: rg.Poisson(-1.0), "rate must be positive"),
    ],
    ids=["nan-loc", "inf-scale", "beta", "dirichlet", "uniform", "categorical", "tri", "poisson"],
)
def test_each_family_validates(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_shapes_that_do_not_broadcast_name_the_fix():
    """Wrong shapes surfaced as jnp's "Incompatible shapes for broadcasting" (issue 10)."""
    with pytest.raises(ValueError, match=r"Normal: loc of shape \(3,\), scale of shape \(4,\) do not broadcast.*scale\[:, None\]"):
        rg.Normal(jnp.zeros(3), jnp.ones(4))
    with pytest.raises(ValueError, match="do not broadcast"):  # shapes are static: also under jit, and always
        jax.jit(lambda s: rg.Gamma(jnp.ones(3), s, validate_args=False).sample(KEY))(jnp.ones(2))


def test_validate_args_under_jit_vmap_raises_at_run_time():
    """Traced values: validate_args=True raises when the call runs (it was a checkify.debug_check,
    silent without checkify: issue 16); the default adds nothing. More in tests/test_validate_args.py."""
    runtime = (jax.errors.JaxRuntimeError, ValueError)
    silent = jax.jit(rg.score_grad(F, lambda s: rg.Normal(0.0, s), num_samples=4))
    silent(jnp.float32(-1.0), KEY)  # the default checks only values known at construction
    fn = jax.jit(rg.score_grad(F, lambda s: rg.Normal(0.0, s, validate_args=True), num_samples=4))
    with pytest.raises(runtime, match="scale must be positive.*softplus"):
        jax.block_until_ready(fn(jnp.float32(-1.0), KEY))
    err, _ = checkify.checkify(fn)(jnp.float32(1.0), KEY)
    assert err.get() is None
    batched = jax.jit(jax.vmap(rg.pathwise_grad(F, lambda s: rg.Normal(0.0, s, validate_args=True), num_samples=4), in_axes=(0, None)))
    with pytest.raises(runtime, match="scale must be positive"):
        jax.block_until_ready(batched(jnp.array([1.0, -1.0]), KEY))
    with pytest.raises(runtime, match="logits="):
        jax.block_until_ready(jax.jit(lambda p: rg.Bernoulli(probs=p, validate_args=True).sample(KEY))(jnp.float32(1.5)))


def test_validate_args_default_off_switch_and_pytree():
    d = rg.Normal(0.0, 1.0)
    assert d.validate_args is None  # the documented default: concrete values only
    assert rg.Normal(0.0, -1.0, validate_args=False).validate_args is False
    # Unflattening never re-validates (leaves may be zeros, tracers, cotangents) and keeps the flag.
    zeros = jax.tree_util.tree_map(jnp.zeros_like, d)
    assert float(zeros.scale) == 0.0 and zeros.validate_args is None
    off = jax.tree_util.tree_map(lambda v: v, rg.Gamma(1.0, 1.0, validate_args=False))
    assert off.validate_args is False
    assert jax.tree_util.tree_structure(d) != jax.tree_util.tree_structure(rg.Normal(0.0, 1.0, validate_args=False))


def test_probs_of_zero_and_one_stay_finite():
    for p in (0.0, 1.0):
        d = rg.Bernoulli(probs=p)
        assert bool(jnp.isfinite(d.logits)) and bool(jnp.all(jnp.isfinite(d.log_prob(d.sample(KEY, (8,))))))


# ------------------------------------------------------- supports that move with θ


UNIFORM = lambda p: rg.Uniform(p[0], p[1])
LOW_HIGH = jnp.array([0.0, 1.0])


@pytest.mark.parametrize(
    "run",
    [
        lambda: rg.score_grad(F, UNIFORM, num_samples=4)(LOW_HIGH, KEY),
        lambda: jax.grad(rg.expectation(F, UNIFORM, estimator="score", num_samples=4))(LOW_HIGH, KEY),
        lambda: rg.score_grad(F, UNIFORM, num_samples=4, baseline="optimal")(LOW_HIGH, KEY),
        lambda: rg.vimco_grad(lambda x: jnp.log(jnp.mean(jnp.exp(-x))), UNIFORM, num_samples=4)(LOW_HIGH, KEY),
        lambda: jax.grad(rg.stochastic(lambda p, k: rg.sample(k, UNIFORM(p), estimator="score") ** 2, num_samples=4))(
            LOW_HIGH, KEY
        ),
    ],
    ids=["score_grad", "expectation", "optimal-baseline", "vimco", "graph-node"],
)
def test_score_refuses_uniform_naming_pathwise(run):
    """Uniform's support moves with low/high, so score-function gradients miss the boundary
    terms and were silently biased; every score-function path refuses it at trace time."""
    with pytest.raises(TypeError, match="support moves with its parameters.*pathwise_grad"):
        run()
    assert np.all(np.isfinite(rg.pathwise_grad(F, UNIFORM, num_samples=4)(LOW_HIGH, KEY)))


# ------------------------------------------------------- second order at tiny draws; edges of probs


def test_gamma_beta_pathwise_hessian_finite_and_unbiased_float32():
    """Draws of G ≈ 1e-20 made the implicit derivative's own derivative overflow float32:
    one such draw turned the whole Hessian NaN (Gamma(0.1): ~37 in 20 000 draws)."""
    gamma = rg.expectation(lambda x: x**2, lambda a: rg.Gamma(a, 1.0), estimator="pathwise", num_samples=4000)
    h = replicate(lambda k: jax.hessian(gamma)(jnp.float32(0.1), k), jax.random.key(3), 40)
    assert np.all(np.isfinite(h))
    assert_unbiased(h, 2.0, name="d²/da² E[x²], Gamma(0.1, 1)")  # E[x²] = a(a + 1)
    beta = rg.expectation(lambda x: x, lambda p: rg.Beta(p[0], p[1]), estimator="pathwise", num_samples=4000)
    hb = replicate(lambda k: jax.hessian(beta)(jnp.array([0.05, 0.05]), k), jax.random.key(4), 40)
    # E[x] = a/(a + b): Hessian at a = b = 0.05 is [[-100, 0], [0, 100]]
    assert np.all(np.isfinite(hb))
    assert_unbiased(hb, np.array([[-100.0, 0.0], [0.0, 100.0]]), name="Hessian of E[x], Beta(0.05, 0.05)")


def test_uncoupled_measure_valued_gamma_rate_stays_inside_support():
    """The uncoupled weak derivative's Gamma draws rounded to 0 in float32: log x was −inf."""
    g = rg.grad(jnp.log, lambda p: rg.Gamma(p[0], p[1]), rg.measure_valued(coupled=False), num_samples=500)
    est = replicate(lambda k: g(jnp.array([0.1, 2.0], jnp.float32), k), jax.random.key(5), 100)
    assert np.all(np.isfinite(est))
    assert_unbiased(est[:, 1], -0.5, name="d/d rate E[log x] = -1/rate")


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_bernoulli_probs_at_the_edge_first_derivative_right_second_nan(p):
    """jnp.clip made the gradient at probs = 0 or 1 exactly 0 (exact: f(1) − f(0) = 3); float
    logits cannot carry second derivatives there, which come back NaN, never a plausible number."""
    loss = rg.expectation(lambda x: 3.0 * x**2 + 1.0, lambda q: rg.Bernoulli(probs=q), estimator="enumeration")
    np.testing.assert_allclose(jax.grad(loss)(jnp.float32(p), KEY), 3.0, rtol=1e-5)
    assert np.isnan(jax.hessian(loss)(jnp.float32(p), KEY))
    assert float(jax.hessian(loss)(jnp.float32(0.3), KEY)) == 0.0  # inside (0, 1): exact (E[f] is linear in p)


def test_poisson_rate_beyond_int32_draws_names_x64():
    """Without 64-bit mode the draws are int32: rate 3e9 came back as 2147483647 every time."""
    if jax.config.read("jax_enable_x64"):
        pytest.skip("64-bit mode draws int64")
    with pytest.raises(ValueError, match="jax_enable_x64"):
        rg.Poisson(jnp.float32(3e9))


def test_categorical_all_zero_probs_raise():
    """All-zero probs passed the [0, 1] check and normalized to NaN."""
    with pytest.raises(ValueError, match="positive entry along the last axis"):
        rg.Categorical(probs=jnp.zeros(3))
    with pytest.raises(ValueError, match=r"index \(1,\)"):
        rg.Categorical(probs=jnp.array([[0.5, 0.5], [0.0, 0.0]]))


def test_gamma_family_reverse_over_reverse_equals_hessian():
    """jax.grad(jax.grad(...)) reached random_gamma_grad's while_loop, which has no reverse
    mode, and raised; it now gives jax.hessian's numbers (and a third derivative exists)."""
    gamma = rg.expectation(lambda x: x**2, lambda a: rg.Gamma(a, 1.0), estimator="pathwise", num_samples=500)
    a = jnp.float32(0.7)
    np.testing.assert_allclose(jax.grad(jax.grad(gamma))(a, KEY), jax.hessian(gamma)(a, KEY), rtol=1e-5)
    assert np.isfinite(jax.grad(jax.grad(jax.grad(gamma)))(a, KEY))
    beta = rg.expectation(lambda x: x, lambda p: rg.Beta(p[0], p[1]), estimator="pathwise", num_samples=500)
    p = jnp.array([0.5, 0.7])
    np.testing.assert_allclose(jax.jacrev(jax.grad(beta))(p, KEY), jax.hessian(beta)(p, KEY), rtol=1e-5, atol=1e-6)
