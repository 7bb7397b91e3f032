"""Built-in families: log_prob against scipy, shapes and broadcasting, pytree behaviour,
sample moments against mean()/variance().

Moment checks are |sample mean − exact| < 5 SE (tests/_stats.py): chance failure
≈ 5.7e-7 per scalar; keys are fixed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from _stats import assert_unbiased

import repgrad as rg

KEY = jax.random.key(0)

# name: (constructor, scipy frozen reference, a point array x (2 entries, batch (2,)))
A, B = np.array([0.7, 2.5]), np.array([1.5, 0.8])
CASES = {
    "normal": (lambda: rg.Normal(A - 1.0, B), st.norm(A - 1.0, B), np.array([0.3, -0.4])),
    "lognormal": (
        lambda: rg.LogNormal(A - 1.0, B),
        st.lognorm(B, scale=np.exp(A - 1.0)),
        np.array([0.3, 2.4]),
    ),
    "laplace": (lambda: rg.Laplace(A, B), st.laplace(A, B), np.array([0.3, -0.4])),
    "logistic": (lambda: rg.Logistic(A, B), st.logistic(A, B), np.array([0.3, -0.4])),
    "uniform": (lambda: rg.Uniform(A - 1.0, A + B), st.uniform(A - 1.0, B + 1.0), np.array([0.3, 2.0])),
    "exponential": (lambda: rg.Exponential(B), st.expon(scale=1.0 / B), np.array([0.3, 2.0])),
    "gamma": (lambda: rg.Gamma(A, B), st.gamma(A, scale=1.0 / B), np.array([0.3, 2.0])),
    "beta": (lambda: rg.Beta(A, B), st.beta(A, B), np.array([0.3, 0.9])),
    "poisson": (lambda: rg.Poisson(B), st.poisson(B), np.array([0.0, 3.0])),
    "bernoulli": (lambda: rg.Bernoulli(probs=A / 3.0), st.bernoulli(A / 3.0), np.array([1.0, 0.0])),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_prob_matches_scipy(name):
    make, ref, x = CASES[name]
    d = make()
    lp = d.log_prob(jnp.asarray(x, jnp.float32))
    expected = ref.logpmf(x) if hasattr(ref.dist, "pmf") else ref.logpdf(x)
    np.testing.assert_allclose(lp, expected, rtol=2e-5, atol=2e-5)
    # Batched x of shape (3, 2) against batch shape (2,): broadcasting is explicit.
    xs = np.stack([x, x, x])
    assert d.log_prob(jnp.asarray(xs, jnp.float32)).shape == (3, 2)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample_shapes_moments_and_pytree(name):
    make, ref, _ = CASES[name]
    d = make()
    assert d.batch_shape == (2,) and d.event_shape == ()
    x = d.sample(KEY, (4000,))
    assert x.shape == (4000, 2) and x.dtype == jnp.float32
    # distrax/TFP keywords and an int shape; same key → identical samples (one shape: one compile).
    assert jnp.array_equal(d.sample(seed=KEY, sample_shape=4000), x)
    # Sample mean within 5 SE of the closed-form mean, and mean() matches scipy.
    assert_unbiased(np.asarray(x), ref.mean(), name=f"{name} sample mean")
    np.testing.assert_allclose(d.mean(), ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(d.variance(), ref.var(), rtol=1e-5)
    # Pytree round trip and jit boundary.
    leaves, treedef = jax.tree_util.tree_flatten(d)
    d2 = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(d2) is type(d) and jnp.array_equal(jax.jit(lambda e: e.mean())(d2), d.mean())
    assert d.has_rsample == d.reparameterized


def test_float64_samples_follow_params():
    with jax.enable_x64(True):
        for d in (rg.Normal(jnp.zeros(2, jnp.float64), 1.0), rg.Bernoulli(logits=jnp.zeros(2, jnp.float64))):
            x = d.sample(KEY, (3,))
            assert x.dtype == jnp.float64 and d.log_prob(x).dtype == jnp.float64
        d = rg.Normal(jnp.zeros(2, jnp.float32), 1.0)  # Python floats stay weak: float32
        assert d.sample(KEY, (3,)).dtype == jnp.float32


def test_mvn_diag():
    d = rg.MultivariateNormalDiag(jnp.array([0.5, -1.0]), jnp.array([0.8, 1.5]))
    assert d.batch_shape == () and d.event_shape == (2,)
    x = np.array([[0.1, 0.2], [1.0, -3.0]])
    expected = st.multivariate_normal([0.5, -1.0], np.diag([0.64, 2.25])).logpdf(x)
    np.testing.assert_allclose(d.log_prob(jnp.asarray(x, jnp.float32)), expected, rtol=1e-5)


def test_mvn_tri_log_prob_broadcasting_and_samples():
    L = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]])
    locs = np.array([[0.5, -1.0, 0.2], [0.0, 1.0, 2.0]])  # batch of two, shared L
    d = rg.MultivariateNormalTri(jnp.asarray(locs, jnp.float32), jnp.asarray(L, jnp.float32))
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    x = np.random.default_rng(0).normal(size=(4, 2, 3))
    lp = d.log_prob(jnp.asarray(x, jnp.float32))
    assert lp.shape == (4, 2)
    for b in range(2):
        expected = st.multivariate_normal(locs[b], L @ L.T).logpdf(x[:, b])
        np.testing.assert_allclose(lp[:, b], expected, rtol=1e-5, atol=1e-5)
    # A single event x broadcasts against the batch.
    single = [st.multivariate_normal(locs[b], L @ L.T).logpdf(x[0, 0]) for b in range(2)]
    np.testing.assert_allclose(d.log_prob(jnp.asarray(x[0, 0], jnp.float32)), single, rtol=1e-5, atol=1e-5)
    # Upper triangle is ignored.
    d_upper = rg.MultivariateNormalTri(
        jnp.asarray(locs, jnp.float32), jnp.asarray(L + np.triu(np.ones((3, 3)), 1))
    )
    assert jnp.array_equal(d_upper.log_prob(jnp.asarray(x, jnp.float32)), lp)
    # Sample covariance: E[(x−μ)(x−μ)ᵀ] = L Lᵀ, within 5 SE.
    s = np.asarray(d.sample(KEY, (4000,)))  # (4000, 2, 3)
    assert s.shape == (4000, 2, 3)
    c = s[:, 0] - locs[0]
    assert_unbiased(c[:, :, None] * c[:, None, :], L @ L.T, name="mvn-tri sample covariance")
    np.testing.assert_allclose(d.covariance()[0], L @ L.T, rtol=1e-6)
    np.testing.assert_allclose(d.variance()[1], np.diag(L @ L.T), rtol=1e-6)


def test_dirichlet_batched_log_prob_and_mean():
    alpha = np.array([[0.6, 1.5, 3.0], [2.0, 0.9, 1.1]])
    d = rg.Dirichlet(jnp.asarray(alpha, jnp.float32))
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    x = np.asarray(d.sample(KEY, (4000,)), np.float64)
    assert x.shape == (4000, 2, 3)
    np.testing.assert_allclose(x.sum(-1), 1.0, rtol=1e-5)
    lp = d.log_prob(jnp.asarray(x[:3], jnp.float32))
    assert lp.shape == (3, 2)
    for b in range(2):
        expected = [st.dirichlet(alpha[b]).logpdf(xi / xi.sum()) for xi in x[:3, b]]
        np.testing.assert_allclose(lp[:, b], expected, rtol=1e-4, atol=1e-4)
    assert_unbiased(x, alpha / alpha.sum(-1, keepdims=True), name="dirichlet sample mean")
    np.testing.assert_allclose(d.variance(), [st.dirichlet(a).var() for a in alpha], rtol=1e-5)


def test_categorical():
    logits = np.array([[0.1, -1.0, 0.7, 0.0], [1.5, 0.2, -0.3, -2.0]])
    d = rg.Categorical(logits=jnp.asarray(logits, jnp.float32))
    assert d.batch_shape == (2,) and d.event_shape == () and d.num_categories == 4
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(d.probs, probs, rtol=1e-6)
    # log_prob: x of shape (5, 2) and a scalar x broadcast against the batch.
    x = jnp.array([[0, 3], [1, 1], [2, 0], [3, 2], [0, 0]], jnp.int32)
    lp = d.log_prob(x)
    np.testing.assert_allclose(lp, np.log(probs[np.arange(2), np.asarray(x)]), rtol=1e-5)
    np.testing.assert_allclose(d.log_prob(jnp.int32(2)), np.log(probs[:, 2]), rtol=1e-5)
    # Outside {0, …, K−1}: probability zero (no wrap-around of −1 to the last class).
    assert np.all(np.isneginf(d.log_prob(jnp.array([-1, 4], jnp.int32))))
    # Samples: int32, frequencies within 5 SE of probs.
    s = d.sample(KEY, (4000,))
    assert s.shape == (4000, 2) and s.dtype == jnp.int32
    onehot = np.asarray(jax.nn.one_hot(s, 4))
    assert_unbiased(onehot, probs, name="categorical frequencies")
    # probs= parameterization normalizes.
    d2 = rg.Categorical(probs=jnp.array([0.2, 0.3, 0.5]))
    np.testing.assert_allclose(d2.logits, np.log([0.2, 0.3, 0.5]), rtol=1e-6)


def test_bernoulli_logits_probs_consistent():
    p = jnp.array([0.1, 0.5, 0.8])
    d1, d2 = rg.Bernoulli(probs=p), rg.Bernoulli(logits=jnp.log(p) - jnp.log1p(-p))
    np.testing.assert_allclose(d1.logits, d2.logits, rtol=1e-6)
    np.testing.assert_allclose(d1.probs, p, rtol=1e-6)
    x = d1.sample(KEY, (10,))
    assert set(np.unique(np.asarray(x))) <= {0.0, 1.0}


def test_discrete_families_refuse_rsample():
    for d in (rg.Bernoulli(logits=0.0), rg.Categorical(logits=jnp.zeros(3)), rg.Poisson(1.0)):
        assert d.reparameterized is False and d.has_rsample is False
        with pytest.raises(TypeError, match="reparameterized"):
            d.rsample(KEY, (2,))


def test_family_class_as_dist():
    # A family class works as dist, reading params as keywords or positionally.
    g1 = rg.pathwise_grad(lambda x: jnp.sum(x), rg.Normal, num_samples=4)(
        {"loc": jnp.zeros(2), "scale": jnp.ones(2)}, KEY
    )
    g2 = rg.pathwise_grad(lambda x: jnp.sum(x), rg.Normal, num_samples=4)((jnp.zeros(2), jnp.ones(2)), KEY)
    assert jnp.array_equal(g1["loc"], g2[0])
