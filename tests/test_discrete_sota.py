"""IndeCateR, double CV, RODEO, the unordered set and Rao-Blackwellized top-k estimators against
exact gradients (enumeration, and a product-form closed form in 20 dimensions), and Gumbel-Rao
against straight-through Gumbel-softmax (same expectation, lower MSE).

Every statistical check is |mean − exact| < 5 SE over R replicates (tests/_stats.py): a correct
estimator fails one such scalar check with probability ≈ 5.7e-7; keys are fixed, so the tests
are deterministic.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_agree, assert_unbiased, replicate

import repgrad as rg

KEY = jax.random.key(0)
THETA3 = jnp.array([-1.0, 0.3, 2.0])
W3 = jnp.array([0.5, -0.8, 0.3])


def bern(p):
    return rg.Bernoulli(logits=p)


def cat(p):
    return rg.Categorical(logits=p)


def f3(b):  # not separable: a product over coordinates plus the DisARM toy
    return jnp.exp(jnp.sum(W3 * b)) + jnp.sum((b - 0.45) ** 2)


# Learned control parameters away from their (trivial) start, to test unbiasedness for any ψ.
RODEO_PSI = dict(rg.rodeo_init(), alpha=jnp.float32(0.4), beta=jnp.float32(0.8))
DOUBLE_PSI = {"alpha": jnp.float32(0.7)}


def unbiased_bernoulli(n):
    """name -> estimator value, call kwargs; each at num_samples n (k = 3 configurations)."""
    return {
        "indecater": (rg.indecater(), {}),
        "double_cv": (rg.double_cv(), {"control_params": DOUBLE_PSI}),
        "rodeo": (rg.rodeo(), {"control_params": RODEO_PSI}),
        "unordered_set": (rg.unordered_set(3), {}),
        "rao_blackwell": (rg.rao_blackwell(3), {}),
    }


def _grad_fn(f, dist, est, kw, n):
    fn = rg.value_and_grad(f, dist, est, num_samples=n)
    if kw:
        return lambda p, k: fn(p, k, **kw)[0]
    return fn


def test_bernoulli_3d_gradient_and_value_unbiased():
    exact_v, exact_g = rg.enumeration_value_and_grad(f3, bern)(THETA3, KEY)
    fns = {name: _grad_fn(f3, bern, est, kw, 2) for name, (est, kw) in unbiased_bernoulli(2).items()}
    out = replicate(lambda k: {name: fn(THETA3, k) for name, fn in fns.items()}, jax.random.key(1), 1000)
    for name, (v, g) in out.items():
        assert_unbiased(g, exact_g, name=f"{name} gradient")
        assert_unbiased(v, exact_v, name=f"{name} value")


@pytest.mark.slow
def test_bernoulli_20d_product_form():
    """f(b) = exp(Σ w_d b_d): E = Π_d (1 − p_d + p_d e^{w_d}), ∂/∂θ_d = p_d(1 − p_d)(e^{w_d} − 1) Π_{e≠d}(…)."""
    d = 20
    theta = jnp.linspace(-1.5, 1.5, d)
    w = 0.3 * jnp.cos(jnp.arange(d, dtype=jnp.float32))
    f = lambda b: jnp.exp(jnp.sum(w * b))
    p = np.asarray(jax.nn.sigmoid(theta), np.float64)
    e = np.exp(np.asarray(w, np.float64))
    factors = 1 - p + p * e
    exact = p * (1 - p) * (e - 1) * np.prod(factors) / factors
    fns = {name: _grad_fn(f, bern, est, kw, 4) for name, (est, kw) in unbiased_bernoulli(4).items()}
    out = replicate(lambda k: {name: fn(theta, k)[1] for name, fn in fns.items()}, jax.random.key(2), 400)
    for name, g in out.items():
        assert_unbiased(g, exact, name=f"{name} (20-dim Bernoulli)")


@pytest.mark.slow
def test_categorical_3x4_unbiased():
    theta = jnp.array([[0.2, -0.5, 0.1, 0.4], [1.0, 0.0, -1.0, 0.3], [0.0, 0.0, 0.5, -2.0]])
    weights = jnp.arange(12.0).reshape(3, 4) / 10.0
    f = lambda k: jnp.exp(jnp.sum(weights[jnp.arange(3), k])) - 2.0 * (k[0] == k[1]).astype(jnp.float32)
    exact_v, exact_g = rg.enumeration_value_and_grad(f, cat)(theta, KEY)
    fns = {
        "indecater": rg.indecater_value_and_grad(f, cat, num_samples=2),
        "unordered_set": rg.unordered_set_value_and_grad(f, cat, k=4, num_samples=2),
        "rao_blackwell": rg.rao_blackwell_value_and_grad(f, cat, k=4, num_samples=2),
    }
    out = replicate(lambda k: {name: fn(theta, k) for name, fn in fns.items()}, jax.random.key(3), 1000)
    for name, (v, g) in out.items():
        assert_unbiased(g, exact_g, name=f"categorical {name}")
        assert_unbiased(v, exact_v, name=f"categorical {name} value")


def test_single_categorical_small_and_exhaustive_sets():
    """A set as large as the support (k = K) is exact; k = 2 of 3 and one remainder are unbiased."""
    theta = jnp.array([0.5, -0.3, 1.2])
    f = lambda k: jnp.array([1.0, -2.0, 4.0])[k] ** 2
    exact = rg.enumeration_grad(f, cat)(theta, KEY)
    g_full = rg.unordered_set_grad(f, cat, k=3, num_samples=1)(theta, KEY)
    np.testing.assert_allclose(g_full, exact, rtol=1e-4, atol=1e-5)
    fns = {
        "unordered_set k=2": rg.unordered_set_grad(f, cat, k=2, num_samples=1),
        "rao_blackwell k=2, N=1": rg.rao_blackwell_grad(f, cat, k=2, num_samples=1),
        "rao_blackwell k=1, N=3": rg.rao_blackwell_grad(f, cat, k=1, num_samples=3),
    }
    out = replicate(lambda k: {n: fn(theta, k) for n, fn in fns.items()}, jax.random.key(4), 2000)
    for name, g in out.items():
        assert_unbiased(g, exact, atol=1e-5, name=name)  # a single remainder left: exact


def test_masked_categories_never_enter():
    """A −inf logit is never drawn; f may be −inf or NaN there (issue 16, case 8)."""
    theta = jnp.array([[0.3, -jnp.inf, 0.5, 0.0], [1.0, 0.2, -jnp.inf, -0.4]])
    f = lambda k: jnp.where(jnp.any(k == jnp.array([1, 2])), -jnp.inf, jnp.sum(k.astype(jnp.float32)) ** 2)
    f_safe = lambda k: jnp.sum(k.astype(jnp.float32)) ** 2
    exact = rg.enumeration_grad(f_safe, cat)(theta, KEY)
    fns = {
        "indecater": rg.indecater_grad(f, cat, num_samples=2),
        "unordered_set": rg.unordered_set_grad(f, cat, k=4, num_samples=2),
        "rao_blackwell": rg.rao_blackwell_grad(f, cat, k=3, num_samples=2),
    }
    out = replicate(lambda k: {n: fn(theta, k) for n, fn in fns.items()}, jax.random.key(5), 500)
    for name, g in out.items():
        g = np.where(np.isneginf(np.asarray(theta))[None], 0.0, g)
        assert np.all(np.isfinite(g)), name
        assert_unbiased(g, np.where(np.isneginf(np.asarray(theta)), 0.0, exact), name=f"masked {name}")


def test_any_params_map_and_f_args():
    """Gradients reach arbitrary params through logits = W x + c, and f's args by autodiff."""
    params = {"w": jnp.array([[0.5, -1.0], [0.3, 0.8], [-0.6, 0.1]]), "c": jnp.array([0.1, -0.2, 0.4])}
    x = jnp.array([1.0, -0.5])
    dist = lambda p: rg.Bernoulli(logits=p["w"] @ x + p["c"])
    f = lambda b, a: jnp.sum((b - a) ** 2 * jnp.arange(1.0, 4.0)) + jnp.exp(jnp.sum(b) * a)
    a = jnp.float32(0.3)
    exact = jax.grad(rg.expectation(f, dist, estimator="exact"), argnums=(0, 2))(params, KEY, a)
    cases = {name: c for name, c in unbiased_bernoulli(2).items() if name in ("rodeo", "unordered_set")}
    grads = {}
    for name, (est, kw) in cases.items():
        loss = rg.expectation(f, dist, est, num_samples=2)
        scalar = (lambda p, k, a, loss=loss, kw=kw: loss(p, k, a, **kw)[0]) if kw else loss
        grads[name] = lambda k, s=scalar: jax.grad(s, argnums=(0, 2))(params, k, a)
    out = replicate(lambda k: {name: g(k) for name, g in grads.items()}, jax.random.key(6), 1000)
    for name, g in out.items():
        assert_unbiased(g, exact, name=f"{name} params and f-args")


# ------------------------------------------------------------------- derivative orders


def _orders_cases():
    base = lambda b: jnp.sum(jnp.array([1.0, 2.0, 3.0]) * (b - 0.45) ** 2)
    cases = {name: (est, kw) for name, (est, kw) in unbiased_bernoulli(4).items()}
    cases["gumbel_rao"] = (rg.gumbel_rao(temperature=0.5), {})
    return base, cases


# The others (RODEO, the set estimators, Gumbel-Rao) are in the statistical contract, every
# derivative operator each (tests/test_matrix.py; `make matrix` runs it whole).
@pytest.mark.parametrize("name", ["indecater", "double_cv"])
def test_hessian_in_f_args_alone_and_mixed_refused(name):
    base, cases = _orders_cases()
    est, kw = cases[name]
    f = lambda x, w: w**2 * base(x)  # d²/dw² E[f] = 2 E[base]
    loss = rg.expectation(f, bern, est, num_samples=4)
    scalar = (lambda p, k, w: loss(p, k, w, **kw)[0]) if kw else loss
    theta, w = jnp.array([0.4, -0.8, 1.2]), jnp.float32(1.3)
    exact = 2.0 * rg.expectation(base, bern, rg.enumeration())(theta, KEY)
    h = replicate(lambda k: jax.hessian(scalar, argnums=2)(theta, k, w), jax.random.key(7), 300)
    assert_unbiased(h, exact, name=f"d²/dw² by {name}")
    for run in (  # θ twice; w, then θ (tests/test_order_in_f_args.py runs every order for the others)
        lambda: jax.hessian(scalar)(theta, KEY, w),
        lambda: jax.jacfwd(jax.grad(scalar, argnums=2), argnums=0)(theta, KEY, w),
    ):
        with pytest.raises(rg.DerivativeOrderError, match=name):
            run()


# ------------------------------------------------------------------------- Gumbel-Rao


@pytest.mark.parametrize("kind", ["bernoulli", "categorical"])
def test_gumbel_rao_is_straight_through_in_expectation_with_lower_mse(kind):
    """E[ĝ_GR] = E[ĝ_ST] (a conditional expectation of it): same bias, less variance, lower MSE."""
    if kind == "bernoulli":
        theta, dist = THETA3, bern
        f = f3
        exact = rg.enumeration_grad(f3, bern)(theta, KEY)
    else:
        theta, dist = jnp.array([[0.2, -0.5, 0.1], [1.0, 0.0, -1.0]]), cat
        costs = jnp.array([0.0, 1.0, 3.0])
        f = lambda y: jnp.sum(y @ costs) ** 2  # y one-hot (2, 3)
        exact = rg.enumeration_grad(lambda k: jnp.sum(costs[k]) ** 2, cat)(theta, KEY)
    st = rg.gumbel_softmax_grad(f, dist, temperature=0.5, straight_through=True, num_samples=1)
    gr = rg.gumbel_rao_grad(f, dist, temperature=0.5, num_gumbels=32, num_samples=1)
    out = replicate(lambda k: (st(theta, k), gr(theta, k)), jax.random.key(8), 4000)
    assert_agree(out[0], out[1], name=f"{kind}: E[straight-through] vs E[Gumbel-Rao]")
    mse = [float(np.mean(np.sum((np.asarray(g) - np.asarray(exact)) ** 2, axis=tuple(range(1, g.ndim))))) for g in out]
    assert mse[1] < 0.8 * mse[0], f"Gumbel-Rao MSE {mse[1]:.4g} not below straight-through's {mse[0]:.4g}"
    with pytest.raises(AssertionError):  # it is biased: the gap to the exact gradient shows
        assert_unbiased(out[1], exact)


def test_gumbel_rao_refuses_piecewise_constant_f():
    f = lambda b: jnp.sum((b > 0.5).astype(jnp.float32))
    with pytest.raises(rg.ZeroGradientError):
        rg.gumbel_rao_grad(f, bern, num_samples=2)(THETA3, KEY)


# ------------------------------------------------------------------ options and errors


def test_learned_control_gradients_match_finite_differences():
    """control_grads = ∇ψ ‖ĝ‖² at a fixed key (the same noise on both sides)."""
    fn = rg.grad(f3, bern, rg.double_cv(), num_samples=3)
    _, dpsi = fn(THETA3, KEY, control_params=DOUBLE_PSI)
    sq = lambda a: float(jnp.sum(fn(THETA3, KEY, control_params={"alpha": jnp.float32(a)})[0] ** 2))
    eps = 1e-2
    fd = (sq(0.7 + eps) - sq(0.7 - eps)) / (2 * eps)
    np.testing.assert_allclose(dpsi["alpha"], fd, rtol=2e-2, atol=1e-4)
    fn = rg.grad(f3, bern, rg.rodeo(), num_samples=3)
    _, dpsi = fn(THETA3, KEY, control_params=RODEO_PSI)
    for leaf in ("alpha", "beta"):
        up = dict(RODEO_PSI, **{leaf: RODEO_PSI[leaf] + eps})
        down = dict(RODEO_PSI, **{leaf: RODEO_PSI[leaf] - eps})
        fd = (jnp.sum(fn(THETA3, KEY, control_params=up)[0] ** 2) - jnp.sum(fn(THETA3, KEY, control_params=down)[0] ** 2)) / (2 * eps)
        np.testing.assert_allclose(dpsi[leaf], fd, rtol=2e-2, atol=1e-4)
    assert jax.tree_util.tree_structure(dpsi) == jax.tree_util.tree_structure(RODEO_PSI)


def test_indecater_chunking_changes_nothing():
    theta = jnp.linspace(-1.0, 1.0, 6)
    f = lambda b: jnp.exp(jnp.sum(0.3 * b))
    ref = rg.indecater_grad(f, bern, num_samples=5)(theta, KEY)
    for chunk in (1, 7, 30):
        np.testing.assert_allclose(rg.indecater_grad(f, bern, num_samples=5, chunk_size=chunk)(theta, KEY), ref, rtol=1e-6)


def test_errors_name_the_fix():
    f = lambda b: jnp.sum(b)
    with pytest.raises(ValueError, match="enumeration"):
        rg.unordered_set_grad(f, bern, k=16, num_samples=1)(THETA3, KEY)  # 2³ = 8 < 16 configurations
    with pytest.raises(ValueError, match="enumeration"):
        rg.rao_blackwell_grad(f, bern, k=8, num_samples=1)(THETA3, KEY)  # no remainder left
    with pytest.raises(ValueError, match="k must be"):
        rg.unordered_set(k=1)
    with pytest.raises(ValueError, match="k must be"):
        rg.rao_blackwell(k=0)
    with pytest.raises(ValueError, match="num_samples"):
        rg.double_cv_grad(f, bern, num_samples=1)
    with pytest.raises(ValueError, match="num_gumbels"):
        rg.gumbel_rao(num_gumbels=0)
    with pytest.raises(TypeError, match="Bernoulli"):
        rg.rodeo_grad(lambda k: jnp.sum(k), cat, num_samples=2)(jnp.zeros(3), KEY, control_params=rg.rodeo_init())
    with pytest.raises(TypeError, match="init_control_params"):
        rg.double_cv_grad(f, bern, num_samples=2)(THETA3, KEY, control_params=jnp.float32(1.0))
    with pytest.raises(TypeError, match="Bernoulli"):
        rg.indecater_grad(f, lambda p: rg.Normal(p, 1.0), num_samples=2)(THETA3, KEY)


def test_registered_names_and_specs():
    for name in ("indecater", "double_cv", "rodeo", "unordered_set", "rao_blackwell", "gumbel_rao"):
        assert name in rg.ESTIMATORS
    loss = rg.expectation(f3, bern, estimator="unordered_set:k=3", num_samples=2)
    assert loss.estimator.name == "unordered_set"
    loss = rg.expectation(f3, bern, estimator="gumbel_rao", temperature=0.3, num_gumbels=4, num_samples=2)
    assert jnp.isfinite(jax.grad(loss)(THETA3, KEY)).all()
