"""repgrad.nn: output moments of the Bayesian layers, KL, ELBO, composition and errors.

Statistical checks use fixed keys and 5-standard-error bounds from the replicates
themselves (tests/_stats.py): a correct layer fails one such scalar check by chance with
probability ≈ 5.7e-7, so the few hundred scalars checked here fail together < 1e-3.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import FAIL_PROB_5SE, assert_agree, assert_unbiased, mean_and_se, replicate
from jax.scipy.special import ndtr

import repgrad as rg
from repgrad import nn
from repgrad.nn._flipout import draw_signs

assert FAIL_PROB_5SE < 1e-6

R = 4000  # replicates for moment checks (one vmapped jit each)


def _dense_params(dtype=jnp.float32):
    p = nn.init_dense(jax.random.key(1), 3, 2, dtype=dtype)
    rho = nn.softplus_inverse(jnp.asarray([[0.3, 0.8], [0.5, 0.2], [1.0, 0.4]], dtype))
    return p._replace(kernel_rho=rho, bias_rho=nn.softplus_inverse(jnp.asarray([0.1, 0.6], dtype)))


X = jnp.asarray([[1.0, -2.0, 0.5], [0.3, 0.7, -1.5], [2.0, 0.0, 1.0], [-1.0, 1.0, 1.0]], jnp.float32)


def _explicit_per_example(params, x, key):
    """Reference: an independent weight sample for every example (materialized)."""
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(lambda xn, k: nn.dense_reparameterization(params, xn, k))(x, keys)


def _exact_moments(params, x):
    x, mu, s, mu_b, s_b = (np.asarray(a, np.float64) for a in (x, params.kernel_loc, params.kernel_scale,
                                                               params.bias_loc, params.bias_scale))
    return x @ mu + mu_b, x**2 @ s**2 + s_b**2


# ------------------------------------------------------------------------------ signs


def test_signs_are_rademacher():
    s_in, s_out = draw_signs(jax.random.key(3), 2000, 7, 5, jnp.float32)
    for s in (np.asarray(s_in), np.asarray(s_out)):
        assert set(np.unique(s).tolist()) == {-1.0, 1.0}
        # fraction of +1: Bernoulli(1/2) mean, SE = 0.5/sqrt(n); 5-SE bound
        frac = (s > 0).mean()
        assert abs(frac - 0.5) < 5 * 0.5 / math.sqrt(s.size)
        # independent across examples: per-channel fraction too (each n = 2000)
        assert np.all(np.abs((s > 0).mean(axis=0) - 0.5) < 5 * 0.5 / math.sqrt(s.shape[0]))


# ------------------------------------------------------------------- output moments


DENSE = {
    "flipout": nn.dense_flipout,
    "local": nn.dense_local_reparameterization,
    "explicit": _explicit_per_example,
    "shared": nn.dense_reparameterization,
}


@pytest.fixture(scope="module")
def dense_runs():
    """R replicated outputs (R, 4, 2) of every dense estimator (one vmapped jit each)."""
    params = _dense_params()
    return {name: replicate(lambda k, f=f: f(params, X, k), jax.random.key(10 + i), R) for i, (name, f) in enumerate(DENSE.items())}


@pytest.mark.parametrize("name", list(DENSE))
def test_dense_per_example_moments(name, dense_runs):
    """Every estimator gives each example the exact marginal N(xμ + b, x²σ² + σ_b²)."""
    mean, var = _exact_moments(_dense_params(), X)
    y = dense_runs[name]
    assert_unbiased(y, mean, name="mean")
    assert_unbiased((y - mean) ** 2, var, name="variance")
    # Gaussian marginal: fourth central moment 3 var²
    assert_unbiased((y - mean) ** 4, 3 * var**2, name="4th moment")


def test_flipout_moments_match_explicit_and_local(dense_runs):
    mean, _ = _exact_moments(_dense_params(), X)
    for other in ("local", "explicit"):
        assert_agree(dense_runs["flipout"], dense_runs[other], name=f"mean vs {other}")
        assert_agree((dense_runs["flipout"] - mean) ** 2, (dense_runs[other] - mean) ** 2, name=f"var vs {other}")


def test_flipout_decorrelates_examples_shared_does_not(dense_runs):
    """Cov(y_n, y_m) = 0 for n ≠ m under Flipout; a shared sample gives Σ_i x_ni x_mi σ_i² + σ_b²."""
    params = _dense_params()
    mean, _ = _exact_moments(params, X)
    pairs = [(0, 1), (0, 2), (1, 3), (2, 3)]

    def cross(y):
        c = y - mean
        return np.stack([c[:, n] * c[:, m] for n, m in pairs], axis=1)  # (R, pairs, out)

    flip, shared = dense_runs["flipout"], dense_runs["shared"]
    s2 = np.asarray(jnp.square(params.kernel_scale))
    exact_shared = np.stack([(np.asarray(X[n]) * np.asarray(X[m])) @ s2 for n, m in pairs]) + np.asarray(
        jnp.square(params.bias_scale)
    )
    assert_unbiased(cross(flip), np.zeros_like(exact_shared), name="flipout cross-covariance")
    assert_unbiased(cross(shared), exact_shared, name="shared cross-covariance")


def test_conv_flipout_moments_and_spatial_correlation():
    """Conv Flipout: exact per-example marginals, and signs shared over space, so two output
    positions of one example covary exactly as under one per-example kernel sample."""
    p = nn.init_conv2d(jax.random.key(2), 2, 2, 3, init_scale=0.5)
    x = jax.random.normal(jax.random.key(3), (2, 4, 4, 2))
    def conv(k, b, xx):
        y = jax.lax.conv_general_dilated(xx, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + jnp.broadcast_to(b, y.shape)

    mean = np.asarray(conv(p.kernel_loc, p.bias_loc, x))
    var = np.asarray(conv(jnp.square(p.kernel_scale), jnp.square(p.bias_scale), jnp.square(x)))
    # covariance of positions (1,1) and (1,2): weights shared, inputs shifted by one column
    s2 = np.asarray(jnp.square(p.kernel_scale))  # (2, 2, 2, 3)
    xp = np.pad(np.asarray(x), ((0, 0), (0, 1), (0, 1), (0, 0)))  # SAME padding for a 2x2 kernel
    patch = lambda i, j: xp[:, i : i + 2, j : j + 2, :]  # (B, 2, 2, C)
    cov = np.einsum("bhwc,bhwc,hwco->bo", patch(1, 1), patch(1, 2), s2) + np.asarray(
        jnp.square(p.bias_scale)
    )

    def check(y, spatial_cov):
        assert_unbiased(y, mean, name="mean")
        assert_unbiased((y - mean) ** 2, var, name="variance")
        c = (y - mean)[:, :, 1, 1] * (y - mean)[:, :, 1, 2]
        assert_unbiased(c, spatial_cov, name="spatial covariance")

    check(replicate(lambda k: nn.conv2d_flipout(p, x, k), jax.random.key(30), R), cov)
    check(replicate(lambda k: nn.conv2d_reparameterization(p, x, k), jax.random.key(31), R), cov)
    check(replicate(lambda k: nn.conv2d_local_reparameterization(p, x, k), jax.random.key(32), R), 0.0 * cov)


def test_generic_flipout_on_a_custom_linear_layer():
    """flipout(layer_fn) for y = x (A + B) + c: per-example moments are exact."""
    layer = nn.flipout(lambda w, x: x @ (w["a"] + w["b"]) + w["c"])
    loc = {"a": jnp.ones((3, 2)), "b": -0.5 * jnp.ones((3, 2)), "c": jnp.asarray([0.1, -0.2])}
    scale = {"a": jnp.full((3, 2), 0.4), "b": jnp.full((3, 2), 0.3), "c": jnp.asarray([0.2, 0.1])}
    y = replicate(lambda k: layer(loc, scale, X, k), jax.random.key(40), R)
    x = np.asarray(X, np.float64)
    mean = x @ np.asarray(loc["a"] + loc["b"]) + np.asarray(loc["c"])
    var = x**2 @ np.asarray(scale["a"] ** 2 + scale["b"] ** 2) + np.asarray(scale["c"] ** 2)
    assert_unbiased(y, mean, name="mean")
    assert_unbiased((y - mean) ** 2, var, name="variance")
    assert layer(loc, scale, X[0], jax.random.key(0)).shape == (2,)


# --------------------------------------------------------------------------------- KL


def test_kl_normal_closed_form():
    p = _dense_params()
    kl = nn.kl_divergence(p, rg.Normal(0.5, 2.0))
    q_loc = np.concatenate([np.ravel(p.kernel_loc), np.ravel(p.bias_loc)]).astype(np.float64)
    q_s = np.concatenate([np.ravel(p.kernel_scale), np.ravel(p.bias_scale)]).astype(np.float64)
    exact = np.sum(np.log(2.0 / q_s) + (q_s**2 + (q_loc - 0.5) ** 2) / 8.0 - 0.5)
    np.testing.assert_allclose(float(kl), exact, rtol=1e-5)  # float32 rounding, not statistics
    assert float(nn.kl_divergence([p, p])) == pytest.approx(2 * float(nn.kl_divergence(p)), rel=1e-6)


def test_kl_monte_carlo_is_unbiased():
    """MC fallback vs closed forms: a Normal prior (method='mc') and a Laplace prior."""
    p = _dense_params()
    mc = replicate(lambda k: nn.kl_divergence(p, rg.Normal(0.0, 1.0), key=k, method="mc"), jax.random.key(50), 2000)
    assert_unbiased(mc, float(nn.kl_divergence(p)), name="MC KL, Normal prior")

    b = 1.5  # Laplace(0, b): KL = −H(q) + log 2b + E|w|/b,  E|w| folded-normal mean
    mu = np.concatenate([np.ravel(p.kernel_loc), np.ravel(p.bias_loc)]).astype(np.float64)
    s = np.concatenate([np.ravel(p.kernel_scale), np.ravel(p.bias_scale)]).astype(np.float64)
    e_abs = s * np.sqrt(2 / np.pi) * np.exp(-(mu**2) / (2 * s**2)) + mu * (1 - 2 * np.asarray(ndtr(-mu / s)))
    exact = np.sum(-0.5 * np.log(2 * np.pi * np.e * s**2) + np.log(2 * b) + e_abs / b)
    mc = replicate(lambda k: nn.kl_divergence(p, rg.Laplace(0.0, b), key=k, num_samples=4), jax.random.key(51), 2000)
    assert_unbiased(mc, exact, name="MC KL, Laplace prior")


def _kl_closed_form(q_loc, q_scale, p_loc, p_scale):
    q_loc, q_scale, p_loc, p_scale = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (q_loc, q_scale, p_loc, p_scale)))
    return np.sum(np.log(p_scale / q_scale) + (q_scale**2 + (q_loc - p_loc) ** 2) / (2 * p_scale**2) - 0.5)


def test_kl_per_leaf_priors():
    """A Normal prior with the kernel's shape (e.g. centred on pretrained weights) is the kernel's
    prior and the bias keeps N(0, 1); a dict gives one prior per leaf; an (out,) prior is both."""
    p = _dense_params()
    mu = jax.random.normal(jax.random.key(60), (3, 2))
    s = 0.5 + jax.random.uniform(jax.random.key(61), (3, 2))
    kernel_kl = _kl_closed_form(p.kernel_loc, p.kernel_scale, mu, s)
    exact = kernel_kl + _kl_closed_form(p.bias_loc, p.bias_scale, 0.0, 1.0)
    np.testing.assert_allclose(float(nn.kl_divergence(p, rg.Normal(mu, s))), exact, rtol=1e-5)  # float32 rounding
    exact_dict = kernel_kl + _kl_closed_form(p.bias_loc, p.bias_scale, 0.3, 2.0)
    np.testing.assert_allclose(float(nn.kl_divergence(p, {"kernel": rg.Normal(mu, s), "bias": rg.Normal(0.3, 2.0)})),
                               exact_dict, rtol=1e-5)
    np.testing.assert_allclose(float(nn.kl_divergence(p, {"kernel": rg.Normal(mu, s)})), exact, rtol=1e-5)
    per_out = rg.Normal(jnp.asarray([0.1, -0.2]), jnp.asarray([1.5, 0.7]))
    exact_out = _kl_closed_form(p.kernel_loc, p.kernel_scale, [0.1, -0.2], [1.5, 0.7]) + _kl_closed_form(
        p.bias_loc, p.bias_scale, [0.1, -0.2], [1.5, 0.7])
    np.testing.assert_allclose(float(nn.kl_divergence(p, per_out)), exact_out, rtol=1e-5)
    conv = nn.init_conv2d(jax.random.key(62), 2, 2, 3)
    exact_conv = _kl_closed_form(conv.kernel_loc, conv.kernel_scale, 0.2, 0.5) + _kl_closed_form(
        conv.bias_loc, conv.bias_scale, 0.0, 1.0)
    np.testing.assert_allclose(float(nn.kl_divergence(conv, rg.Normal(jnp.full((2, 2, 2, 3), 0.2), 0.5))), exact_conv,
                               rtol=1e-5)

    # Monte Carlo with the same per-leaf priors: unbiased for the closed forms (5 SE)
    mc = replicate(lambda k: nn.kl_divergence(p, rg.Normal(mu, s), key=k, method="mc"), jax.random.key(63), 2000)
    assert_unbiased(mc, exact, name="MC KL, kernel-shaped Normal prior")
    b = 0.5 + jax.random.uniform(jax.random.key(64), (3, 2))  # Laplace(mu, b) on the kernel, Normal on the bias
    m, sd = (np.asarray(a, np.float64) for a in (p.kernel_loc - mu, p.kernel_scale))
    e_abs = sd * np.sqrt(2 / np.pi) * np.exp(-(m**2) / (2 * sd**2)) + m * (1 - 2 * np.asarray(ndtr(-m / sd)))
    laplace_kl = np.sum(-0.5 * np.log(2 * np.pi * np.e * sd**2) + np.log(2 * np.asarray(b, np.float64))
                        + e_abs / np.asarray(b, np.float64))
    mc = replicate(lambda k: nn.kl_divergence(p, {"kernel": rg.Laplace(mu, b), "bias": rg.Normal(0.3, 2.0)}, key=k),
                   jax.random.key(65), 2000)
    assert_unbiased(mc, laplace_kl + _kl_closed_form(p.bias_loc, p.bias_scale, 0.3, 2.0), name="MC KL, per-leaf")


def test_kl_prior_shape_errors():
    p = _dense_params()  # kernel (3, 2), bias (2,)
    with pytest.raises(ValueError, match=r"broadcasts to neither the kernel \(3, 2\) nor the bias \(2,\).*'kernel'"):
        nn.kl_divergence(p, rg.Normal(jnp.zeros(3), 1.0))  # one per input feature is (3, 1)
    with pytest.raises(ValueError, match="broadcasts to neither"):
        nn.kl_divergence([p, nn.init_dense(jax.random.key(0), 4, 2)], rg.Normal(jnp.zeros((3, 2)), 1.0))
    with pytest.raises(ValueError, match=r"prior\['bias'\].*does not broadcast to the bias"):
        nn.kl_divergence(p, {"bias": rg.Normal(jnp.zeros((3, 2)), 1.0)})
    with pytest.raises(ValueError, match="keys 'kernel' and/or 'bias'"):
        nn.kl_divergence(p, {"weights": rg.Normal(0.0, 1.0)})
    with pytest.raises(TypeError, match="log_prob"):
        nn.kl_divergence(p, {"kernel": 1.0})
    np.testing.assert_allclose(float(nn.kl_divergence(p, rg.Normal(jnp.zeros((3, 1)), 1.0))), float(nn.kl_divergence(p)),
                               rtol=1e-6)


def test_elbo_scales_kl_per_training_example():
    p = _dense_params()
    y = jnp.asarray([0, 1, 1, 0])

    def log_lik(logits, labels):
        return jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)[:, 0]

    loss = nn.make_elbo_loss(nn.dense_flipout, log_lik, num_train=1000, has_aux=True)
    key = jax.random.key(5)
    value, aux = loss(p, key, X, y)
    k_fwd, _ = jax.random.split(key)
    ll = log_lik(nn.dense_flipout(p, X, k_fwd), y)
    expected = -jnp.mean(ll) + nn.kl_divergence(p) / 1000.0
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(aux["kl"], nn.kl_divergence(p), rtol=1e-6)
    g = jax.grad(lambda q: loss(q, key, X, y)[0])(p)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in g)


# ------------------------------------------------------------------------ composition

LAYERS = [nn.dense_flipout, nn.dense_reparameterization, nn.dense_local_reparameterization]
IDS = ["flipout", "shared", "local"]


@pytest.mark.parametrize("layer", LAYERS, ids=IDS)
def test_jit_determinism_and_single_example(layer):
    p = _dense_params()
    key = jax.random.key(7)
    f = jax.jit(layer)
    y = f(p, X, key)
    np.testing.assert_allclose(layer(p, X, key), y, rtol=1e-6, atol=1e-6)  # eager == jit
    np.testing.assert_array_equal(f(p, X, key), y)  # same key, same bits
    assert not np.array_equal(f(p, X, jax.random.key(8)), y)
    np.testing.assert_array_equal(f(p, X[0], key), f(p, X[:1], key)[0])  # one example == batch of one


def test_flipout_vmap_grad_scan():
    layer, p, key = nn.dense_flipout, _dense_params(), jax.random.key(7)
    y = jax.jit(layer)(p, X, key)
    keys = jax.random.split(key, 3)
    ys = jax.jit(jax.vmap(layer, in_axes=(None, None, 0)))(p, X, keys)  # over keys
    np.testing.assert_allclose(ys[1], layer(p, X, keys[1]), rtol=1e-6, atol=1e-6)
    ps = jax.tree_util.tree_map(lambda a: jnp.stack([a, a + 0.1]), p)
    ys = jax.jit(jax.vmap(layer, in_axes=(0, None, None)))(ps, X, key)  # over params
    np.testing.assert_allclose(ys[0], y, rtol=1e-6, atol=1e-6)
    g = jax.jit(jax.grad(lambda q, xx: jnp.sum(layer(q, xx, key) ** 2), argnums=(0, 1)))(p, X)
    assert isinstance(g[0], nn.DenseParams) and g[1].shape == X.shape

    def step(q, k):
        return jax.tree_util.tree_map(lambda a, b: a - 0.01 * b, q, jax.grad(lambda r: jnp.sum(layer(r, X, k)))(q)), None

    q, _ = jax.jit(lambda q0: jax.lax.scan(step, q0, jax.random.split(key, 3)))(p)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in q)


def test_float64_and_conv_shapes():
    """Shapes/dtypes by tracing (jax.eval_shape: no compile); one real float64 run with grad."""
    conv_layers = [nn.conv2d_flipout, nn.conv2d_reparameterization, nn.conv2d_local_reparameterization]
    k = jax.random.key(1)
    with jax.enable_x64(True):
        pc = nn.init_conv2d(jax.random.key(0), (3, 2), 2, 4, dtype=jnp.float64)
        pd = nn.init_dense(jax.random.key(0), 3, 2, dtype=jnp.float64)
        xc, xd = jnp.ones((3, 8, 8, 2), jnp.float64), jnp.ones((4, 3), jnp.float64)
        for layer in LAYERS:
            out = jax.eval_shape(jax.grad(lambda q, layer=layer: jnp.sum(layer(q, xd, k))), pd)
            assert out.kernel_rho.dtype == jnp.float64
            assert jax.eval_shape(layer, pd, xd[0], k).shape == (2,)
        for layer in conv_layers:
            out = jax.eval_shape(lambda q, layer=layer: layer(q, xc, k, strides=2, padding="VALID"), pc)
            assert out.shape == (3, 3, 4, 4) and out.dtype == jnp.float64
            assert jax.eval_shape(layer, pc, xc[0], k).shape == (8, 8, 4)
        g = jax.jit(jax.grad(lambda q: jnp.sum(nn.dense_flipout(q, xd, k))))(pd)
        assert g.kernel_rho.dtype == jnp.float64 and bool(jnp.all(jnp.isfinite(g.kernel_rho)))
        assert nn.kl_divergence(pd).dtype == jnp.float64
        assert jax.eval_shape(lambda q: nn.kl_divergence(q, rg.Laplace(0.0, 1.0), key=k), pc).dtype == jnp.float64


def test_conv_flipout_single_example_equals_batch_of_one():
    p = nn.init_conv2d(jax.random.key(0), 3, 2, 4)
    x = jnp.ones((1, 6, 6, 2))
    f = jax.jit(nn.conv2d_flipout)
    np.testing.assert_array_equal(f(p, x[0], jax.random.key(1)), f(p, x, jax.random.key(1))[0])


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("layer", LAYERS, ids=IDS)
def test_clear_errors(layer):
    p = _dense_params()
    with pytest.raises(ValueError, match="in_features=5"):
        layer(p, jnp.ones((4, 5)), jax.random.key(0))
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        layer(p, jnp.ones((2, 4, 3)), jax.random.key(0))
    with pytest.raises(TypeError, match="init_dense"):
        layer({"kernel": p.kernel_loc}, X, jax.random.key(0))
    with pytest.raises(TypeError, match="astype"):
        with jax.enable_x64(True):
            layer(p, jnp.ones((4, 3), jnp.float64), jax.random.key(0))
    with pytest.raises(ValueError, match="inconsistent parameter shapes"):
        layer(p._replace(bias_rho=jnp.zeros(3)), X, jax.random.key(0))
    with pytest.raises(TypeError, match="init_conv2d"):
        nn.conv2d_flipout(p, jnp.ones((1, 4, 4, 3)), jax.random.key(0))


def test_kl_elbo_init_errors():
    p = _dense_params()
    with pytest.raises(ValueError, match="key="):
        nn.kl_divergence(p, rg.Laplace(0.0, 1.0))
    with pytest.raises(ValueError, match="closed-form"):
        nn.kl_divergence(p, rg.Laplace(0.0, 1.0), method="analytic")
    with pytest.raises(TypeError, match="DenseParams"):
        nn.kl_divergence({"w": jnp.ones(3)})
    with pytest.raises(ValueError, match="one value per example"):
        nn.elbo_loss(jnp.ones((4, 2)), 1.0, num_train=10)
    with pytest.raises(ValueError, match="num_train"):
        nn.elbo_loss(jnp.ones(4), 1.0, num_train=0)
    with pytest.raises(ValueError, match="in_features"):
        nn.init_dense(jax.random.key(0), 0, 3)
    with pytest.raises(ValueError, match="init_scale"):
        nn.init_dense(jax.random.key(0), 2, 3, init_scale=-1.0)
    with pytest.raises(ValueError, match="same structure"):
        nn.flipout(lambda w, x: x @ w)({"a": jnp.ones((3, 2))}, jnp.ones((3, 2)), X, jax.random.key(0))


def test_init_and_public_surface():
    p = nn.init_dense(jax.random.key(0), 64, 32, init_scale=0.05)
    np.testing.assert_allclose(p.kernel_scale, 0.05, rtol=1e-5)
    np.testing.assert_array_equal(p.bias_loc, 0.0)
    m, se = mean_and_se(np.ravel(p.kernel_loc)[:, None] ** 2)  # Var(loc) = 1/in_features
    assert abs(m[0] - 1 / 64) < 5 * se[0]
    for name in nn.__all__:
        obj = getattr(nn, name)
        assert obj.__doc__, f"{name} has no docstring"
