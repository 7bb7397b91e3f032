"""Distribution summaries: entropy, mean, variance, stddev, mode, covariance, kl_divergence.

- every family's summaries against scipy.stats (float64) and against distrax (TFP's JAX substrate
  for LogNormal, Exponential and Poisson, which distrax lacks), same parameters;
- every closed-form KL against distrax/TFP (a float64 formula for Poisson, which neither has) and
  against a Monte Carlo estimate, (1/N) Σ log q(xₙ) − log p(xₙ) with xₙ ~ q, within 5 standard
  errors (tests/_stats.py: chance failure ≈ 5.7e-7 per scalar; keys are fixed); entropies likewise
  against −(1/N) Σ log q(xₙ) (the Poisson entropy has no closed form: this is its independent check);
- gradients (and some Hessians) of entropies and KLs against autodiff of independent textbook
  formulas in float64;
- float32 edge cases: probabilities 0 and 1, masked categories, tiny and large concentrations
  (where the textbook forms lose up to all of their digits), Uniform's +∞, LogNormal's overflow;
- jit/vmap/grad and batch broadcasting; errors that name the alternative; rg.elbo's analytic KL.

Float32 comparisons with closed forms allow float32 rounding: rtol 1e-5 (about 80 ε) for values
computed from a handful of operations; for the Gamma-family special functions an absolute 1e-5
more, which is the accuracy of jax's float32 log Γ and ψ themselves (their errors reach 1e-6 per
evaluation, e.g. gammaln(1.0) = 4.8e-7, and a Dirichlet formula evaluates ~2K of them).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sps
import scipy.stats as st
from _stats import assert_unbiased

import repgrad as rg

KEY = jax.random.key(0)
N_MC = 40_000  # draws per Monte Carlo check: one compile, SE ≈ 0.005 for a KL of order one

A, B = np.array([0.7, 2.5]), np.array([1.5, 0.8])
ALPHA = np.array([[0.6, 1.5, 3.0], [2.0, 0.9, 1.1]])
LOGITS = np.array([[0.1, -1.0, 0.7, 0.0], [1.5, 0.2, -0.3, -2.0]])
L = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]])
LOC3 = np.array([[0.5, -1.0, 0.2], [0.0, 1.0, 2.0]])


@contextlib.contextmanager
def _peer_promotion():
    # The peers use implicit dtype promotion internally, which tests/conftest.py forbids; TFP's JAX
    # backend still calls APIs that jax 0.10 deprecates (warnings from TFP's own code are muted).
    with warnings.catch_warnings(), jax.numpy_dtype_promotion("standard"):
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"tensorflow_probability\.")
        warnings.filterwarnings("ignore", message="Explicitly requested dtype float64", category=UserWarning)
        yield


def _peer(module):
    """distrax or TFP's JAX substrate; skips when absent, except on CI (the [interop] extra)."""
    with _peer_promotion():
        if os.environ.get("CI"):
            return importlib.import_module(module)
        return pytest.importorskip(module)


def _tfd():
    return _peer("tensorflow_probability.substrates.jax").distributions


def _f32(x):
    return jnp.asarray(x, jnp.float32)


def _rv_categorical(probs):
    return st.rv_discrete(values=(np.arange(len(probs)), probs))


# name: (repgrad distribution, scipy references per batch entry (or one frozen scipy object), peer)
def _families():
    probs = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
    return {
        "normal": (lambda: rg.Normal(A - 1.0, B), st.norm(A - 1.0, B), lambda dx, tfd: dx.Normal(_f32(A - 1.0), _f32(B))),
        "lognormal": (
            lambda: rg.LogNormal(A - 1.0, B),
            st.lognorm(B, scale=np.exp(A - 1.0)),
            lambda dx, tfd: tfd.LogNormal(_f32(A - 1.0), _f32(B)),
        ),
        "laplace": (lambda: rg.Laplace(A, B), st.laplace(A, B), lambda dx, tfd: dx.Laplace(_f32(A), _f32(B))),
        "logistic": (lambda: rg.Logistic(A, B), st.logistic(A, B), lambda dx, tfd: dx.Logistic(_f32(A), _f32(B))),
        "uniform": (
            lambda: rg.Uniform(A - 1.0, A + B),
            st.uniform(A - 1.0, B + 1.0),
            lambda dx, tfd: dx.Uniform(_f32(A - 1.0), _f32(A + B)),
        ),
        "exponential": (lambda: rg.Exponential(B), st.expon(scale=1.0 / B), lambda dx, tfd: tfd.Exponential(_f32(B))),
        "gamma": (lambda: rg.Gamma(A, B), st.gamma(A, scale=1.0 / B), lambda dx, tfd: dx.Gamma(_f32(A), _f32(B))),
        "beta": (lambda: rg.Beta(A, B), st.beta(A, B), lambda dx, tfd: dx.Beta(_f32(A), _f32(B))),
        "poisson": (lambda: rg.Poisson(B), st.poisson(B), lambda dx, tfd: tfd.Poisson(rate=_f32(B))),
        "bernoulli": (
            lambda: rg.Bernoulli(probs=A / 3.0),
            st.bernoulli(A / 3.0),
            lambda dx, tfd: dx.Bernoulli(probs=_f32(A / 3.0)),
        ),
        "categorical": (
            lambda: rg.Categorical(logits=LOGITS),
            [_rv_categorical(p) for p in probs],
            lambda dx, tfd: dx.Categorical(logits=_f32(LOGITS)),
        ),
        "dirichlet": (
            lambda: rg.Dirichlet(ALPHA),
            [st.dirichlet(a) for a in ALPHA],
            lambda dx, tfd: dx.Dirichlet(_f32(ALPHA)),
        ),
        "mvn_diag": (
            lambda: rg.MultivariateNormalDiag(LOC3, B[:, None] * np.array([1.0, 0.5, 2.0])),
            [st.multivariate_normal(m, np.diag((b * np.array([1.0, 0.5, 2.0])) ** 2)) for m, b in zip(LOC3, B, strict=True)],
            lambda dx, tfd: dx.MultivariateNormalDiag(_f32(LOC3), _f32(B[:, None] * np.array([1.0, 0.5, 2.0]))),
        ),
        "mvn_tri": (
            lambda: rg.MultivariateNormalTri(LOC3, L),
            [st.multivariate_normal(m, L @ L.T) for m in LOC3],
            lambda dx, tfd: dx.MultivariateNormalTri(_f32(LOC3), _f32(np.broadcast_to(L, (2, 3, 3)))),
        ),
    }


FAMILIES = _families()


def _scipy(ref, what):
    """A scipy summary per batch entry, stacked (``ref`` is one vectorized object or a list)."""
    if what == "std":
        return np.sqrt(_scipy(ref, "var"))
    if not isinstance(ref, list):
        return getattr(ref, what)()
    if what == "var" and isinstance(ref[0], st._multivariate.multivariate_normal_frozen):
        return np.stack([np.diag(r.cov) for r in ref])
    return np.stack([np.asarray(getattr(r, what)()) for r in ref])


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_summaries_match_scipy(name):
    make, ref, _ = FAMILIES[name]
    d = make()
    np.testing.assert_allclose(d.entropy(), _scipy(ref, "entropy"), rtol=1e-5, atol=1e-6)
    assert d.entropy().shape == d.batch_shape
    if name in ("mvn_diag", "mvn_tri"):
        np.testing.assert_allclose(d.mean(), LOC3, rtol=1e-6)
        np.testing.assert_allclose(d.covariance(), np.stack([r.cov for r in ref]), rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(d.mean(), _scipy(ref, "mean"), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(d.variance(), _scipy(ref, "var"), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(d.stddev(), _scipy(ref, "std"), rtol=1e-5, atol=1e-7)
    assert d.mean().shape == d.variance().shape == d.stddev().shape == d.batch_shape + d.event_shape


def test_dirichlet_covariance_matches_scipy():
    d = rg.Dirichlet(ALPHA)
    for b, a in enumerate(ALPHA):
        m = a / a.sum()
        expected = (np.diag(m) - np.outer(m, m)) / (a.sum() + 1.0)  # scipy.stats.dirichlet.cov's formula
        np.testing.assert_allclose(d.covariance()[b], expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(np.diag(d.covariance()[b]), st.dirichlet(a).var(), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_summaries_match_distrax_and_tfp(name):
    dx = _peer("distrax")
    tfd = _tfd()
    make, _, make_peer = FAMILIES[name]
    d = make()
    with _peer_promotion():
        peer = make_peer(dx, tfd)
        expected = {}
        if name != "categorical":  # distrax defines no Categorical mean/variance (repgrad: of the index)
            expected.update(mean=peer.mean(), variance=peer.variance(), stddev=peer.stddev())
        if name != "poisson":  # TFP's Poisson has no entropy (repgrad sums it exactly: see below)
            expected["entropy"] = peer.entropy()
        # Gamma below concentration 1 and Exponential: the peers' mode is NaN, repgrad's 0 (test_modes).
        if name not in ("uniform", "gamma", "exponential"):
            expected["mode"] = peer.mode()
    for what, value in expected.items():
        np.testing.assert_allclose(getattr(d, what)(), value, rtol=1e-5, atol=1e-6, err_msg=what)


def test_modes():
    # Gamma below concentration 1: the density is unbounded at 0, the mode is 0 (distrax: NaN).
    np.testing.assert_array_equal(rg.Gamma(jnp.array([0.5, 1.0, 3.0]), 2.0).mode(), [0.0, 0.0, 1.0])
    # Beta: interior, the edges where the density is monotone, NaN where there is no single mode.
    a = jnp.array([3.0, 0.5, 1.0, 3.0, 1.0, 0.5, 1.0])
    b = jnp.array([2.0, 2.0, 2.0, 1.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(rg.Beta(a, b).mode(), [2.0 / 3.0, 0.0, 0.0, 1.0, 1.0, np.nan, np.nan])
    # Dirichlet: interior only.
    mode = rg.Dirichlet(jnp.array([[2.0, 3.0, 5.0], [0.5, 3.0, 5.0]])).mode()
    np.testing.assert_allclose(mode[0], [1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0], rtol=1e-6)
    assert np.all(np.isnan(mode[1]))
    assert rg.Bernoulli(probs=jnp.array([0.3, 0.5, 0.7])).mode().tolist() == [0.0, 0.0, 1.0]
    assert rg.Categorical(logits=LOGITS).mode().tolist() == [2, 0]
    assert rg.Poisson(jnp.array([0.5, 3.7])).mode().tolist() == [0.0, 3.0]
    assert rg.Exponential(jnp.array([0.5, 3.7])).mode().tolist() == [0.0, 0.0]
    np.testing.assert_allclose(rg.LogNormal(0.3, 0.5).mode(), np.exp(0.3 - 0.25), rtol=1e-6)
    with pytest.raises(NotImplementedError, match="every point of"):
        rg.Uniform(0.0, 1.0).mode()
    # Gradients of Beta/Dirichlet modes are finite on every branch (no 0/0 from the unused one).
    g = jax.grad(lambda a: jnp.nansum(rg.Beta(a, b).mode()))(a)
    assert np.all(np.isfinite(g))


# ----------------------------------------------------------------------------------- KL


def _pairs():
    """name: (q, p, peer KL(q ‖ p) (or None), float64 reference formula (or None))."""
    dirichlet_p = np.array([[1.2, 0.4, 2.0], [0.7, 2.2, 1.0]])
    logits_p = np.array([[0.5, 0.3, -0.2, 0.1], [-1.0, 0.4, 0.9, 0.0]])
    tri_p = np.array([[1.3, 0.0, 0.0], [-0.2, 0.6, 0.0], [0.4, 0.1, 0.9]])
    return {
        "normal": (rg.Normal(A - 1.0, B), rg.Normal(B, A), lambda dx, tfd: dx.Normal(_f32(A - 1.0), _f32(B)).kl_divergence(dx.Normal(_f32(B), _f32(A)))),
        "lognormal": (
            rg.LogNormal(A - 1.0, B),
            rg.LogNormal(B, A),
            lambda dx, tfd: tfd.kl_divergence(tfd.LogNormal(_f32(A - 1.0), _f32(B)), tfd.LogNormal(_f32(B), _f32(A))),
        ),
        "laplace": (rg.Laplace(A, B), rg.Laplace(B, A), lambda dx, tfd: dx.Laplace(_f32(A), _f32(B)).kl_divergence(dx.Laplace(_f32(B), _f32(A)))),
        "exponential": (
            rg.Exponential(A),
            rg.Exponential(B),
            lambda dx, tfd: tfd.kl_divergence(tfd.Exponential(_f32(A)), tfd.Exponential(_f32(B))),
        ),
        "gamma": (rg.Gamma(A, B), rg.Gamma(B, A), lambda dx, tfd: dx.Gamma(_f32(A), _f32(B)).kl_divergence(dx.Gamma(_f32(B), _f32(A)))),
        "exponential_gamma": (
            rg.Exponential(A),
            rg.Gamma(B, A),
            lambda dx, tfd: tfd.kl_divergence(tfd.Exponential(_f32(A)), tfd.Gamma(_f32(B), _f32(A))),
        ),
        "gamma_exponential": (
            rg.Gamma(B, A),
            rg.Exponential(A),
            lambda dx, tfd: tfd.kl_divergence(tfd.Gamma(_f32(B), _f32(A)), tfd.Exponential(_f32(A))),
        ),
        "beta": (rg.Beta(A, B), rg.Beta(B, A), lambda dx, tfd: dx.Beta(_f32(A), _f32(B)).kl_divergence(dx.Beta(_f32(B), _f32(A)))),
        "dirichlet": (
            rg.Dirichlet(ALPHA),
            rg.Dirichlet(dirichlet_p),
            lambda dx, tfd: dx.Dirichlet(_f32(ALPHA)).kl_divergence(dx.Dirichlet(_f32(dirichlet_p))),
        ),
        "bernoulli": (
            rg.Bernoulli(probs=A / 3.0),
            rg.Bernoulli(probs=B / 2.0),
            lambda dx, tfd: dx.Bernoulli(probs=_f32(A / 3.0)).kl_divergence(dx.Bernoulli(probs=_f32(B / 2.0))),
        ),
        "categorical": (
            rg.Categorical(logits=LOGITS),
            rg.Categorical(logits=logits_p),
            lambda dx, tfd: dx.Categorical(logits=_f32(LOGITS)).kl_divergence(dx.Categorical(logits=_f32(logits_p))),
        ),
        "poisson": (rg.Poisson(A), rg.Poisson(B), None),  # neither peer has it: the float64 formula below
        "uniform": (
            rg.Uniform(A - 1.0, A),
            rg.Uniform(A - 1.5, A + B),
            lambda dx, tfd: dx.Uniform(_f32(A - 1.0), _f32(A)).kl_divergence(dx.Uniform(_f32(A - 1.5), _f32(A + B))),
        ),
        "mvn_diag": (
            rg.MultivariateNormalDiag(LOC3, B[:, None] * np.array([1.0, 0.5, 2.0])),
            rg.MultivariateNormalDiag(LOC3[::-1], A[:, None] * np.array([0.7, 1.0, 1.3])),
            lambda dx, tfd: dx.MultivariateNormalDiag(_f32(LOC3), _f32(B[:, None] * np.array([1.0, 0.5, 2.0]))).kl_divergence(
                dx.MultivariateNormalDiag(_f32(LOC3[::-1]), _f32(A[:, None] * np.array([0.7, 1.0, 1.3])))
            ),
        ),
        "mvn_tri": (
            rg.MultivariateNormalTri(LOC3, L),
            rg.MultivariateNormalTri(LOC3[::-1], tri_p),
            lambda dx, tfd: dx.MultivariateNormalTri(_f32(LOC3), _f32(np.broadcast_to(L, (2, 3, 3)))).kl_divergence(
                dx.MultivariateNormalTri(_f32(LOC3[::-1]), _f32(np.broadcast_to(tri_p, (2, 3, 3))))
            ),
        ),
        "mvn_diag_tri": (
            rg.MultivariateNormalDiag(LOC3, B[:, None] * np.array([1.0, 0.5, 2.0])),
            rg.MultivariateNormalTri(LOC3[::-1], tri_p),
            lambda dx, tfd: dx.MultivariateNormalDiag(_f32(LOC3), _f32(B[:, None] * np.array([1.0, 0.5, 2.0]))).kl_divergence(
                dx.MultivariateNormalTri(_f32(LOC3[::-1]), _f32(np.broadcast_to(tri_p, (2, 3, 3))))
            ),
        ),
        "mvn_tri_diag": (
            rg.MultivariateNormalTri(LOC3, L),
            rg.MultivariateNormalDiag(LOC3[::-1], A[:, None] * np.array([0.7, 1.0, 1.3])),
            lambda dx, tfd: dx.MultivariateNormalTri(_f32(LOC3), _f32(np.broadcast_to(L, (2, 3, 3)))).kl_divergence(
                dx.MultivariateNormalDiag(_f32(LOC3[::-1]), _f32(A[:, None] * np.array([0.7, 1.0, 1.3])))
            ),
        ),
    }


PAIRS = _pairs()


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_kl_matches_distrax_and_tfp(name):
    q, p, peer_kl = PAIRS[name]
    kl = q.kl_divergence(p)
    assert kl.shape == (2,)
    if peer_kl is None:  # Poisson: λq log(λq/λp) + λp − λq in float64
        expected = A * np.log(A / B) + B - A
    else:
        dx, tfd = _peer("distrax"), _tfd()
        with _peer_promotion():
            expected = peer_kl(dx, tfd)
    np.testing.assert_allclose(kl, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_kl_matches_monte_carlo(name):
    q, p, _ = PAIRS[name]

    @jax.jit
    def log_ratios(q, p):
        x = q.sample(KEY, (N_MC,))
        return q.log_prob(x) - p.log_prob(x)

    assert_unbiased(log_ratios(q, p), np.asarray(q.kl_divergence(p)), name=f"KL({name})")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_entropy_matches_monte_carlo(name):
    d = FAMILIES[name][0]()
    neg_log_q = jax.jit(lambda d: -d.log_prob(d.sample(KEY, (N_MC,))))(d)
    assert_unbiased(neg_log_q, np.asarray(d.entropy()), name=f"H({name})")
    # cross entropy H(q, q) = H(q) where a KL exists.
    if name not in ("logistic",):
        np.testing.assert_allclose(d.cross_entropy(d), d.entropy(), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------- gradients (float64)


def _textbook_kl(name):
    """Independent textbook KL formulas (arguments: q's then p's parameters, float64)."""
    g, ψ = jax.scipy.special.gammaln, jax.scipy.special.digamma

    def gamma(aq, bq, ap, bp):
        return (aq - ap) * ψ(aq) - g(aq) + g(ap) + ap * (jnp.log(bq) - jnp.log(bp)) + aq * (bp - bq) / bq

    def dirichlet(a, b):
        a0, b0 = jnp.sum(a, -1), jnp.sum(b, -1)
        log_b = lambda c, c0: jnp.sum(g(c), -1) - g(c0)
        return log_b(b, b0) - log_b(a, a0) + jnp.sum((a - b) * (ψ(a) - ψ(a0)[..., None]), -1)

    def mvn(mq, lq, mp, lp):
        lq, lp = jnp.tril(lq), jnp.tril(lp)  # scale_tri's upper triangle is never read
        sq, sp = lq @ jnp.swapaxes(lq, -1, -2), lp @ jnp.swapaxes(lp, -1, -2)
        sp_inv = jnp.linalg.inv(sp)
        d = mp - mq
        return 0.5 * (
            jnp.trace(sp_inv @ sq, axis1=-2, axis2=-1)
            + jnp.einsum("...i,...ij,...j->...", d, sp_inv, d)
            - mq.shape[-1]
            + jnp.linalg.slogdet(sp)[1]
            - jnp.linalg.slogdet(sq)[1]
        )

    def normal(mq, sq, mp, sp):
        return jnp.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5

    def categorical(lq, lp):
        pq = jax.nn.softmax(lq, -1)
        return jnp.sum(pq * (jax.nn.log_softmax(lq, -1) - jax.nn.log_softmax(lp, -1)), -1)

    return {
        "normal": (lambda d: (d.loc, d.scale), normal),
        "lognormal": (lambda d: (d.loc, d.scale), normal),
        "laplace": (
            lambda d: (d.loc, d.scale),
            lambda mq, bq, mp, bp: jnp.log(bp / bq) + jnp.abs(mq - mp) / bp + bq / bp * jnp.exp(-jnp.abs(mq - mp) / bq) - 1,
        ),
        "exponential": (lambda d: (d.rate,), lambda lq, lp: jnp.log(lq) - jnp.log(lp) + lp / lq - 1),
        "gamma": (lambda d: (d.concentration, d.rate), gamma),
        "beta": (
            lambda d: (d.concentration1, d.concentration0),
            lambda a1, b1, a2, b2: dirichlet(jnp.stack([a1, b1], -1), jnp.stack([a2, b2], -1)),
        ),
        "dirichlet": (lambda d: (d.concentration,), dirichlet),
        "bernoulli": (
            lambda d: (d.probs,),
            lambda pq, pp: pq * jnp.log(pq / pp) + (1 - pq) * jnp.log((1 - pq) / (1 - pp)),
        ),
        "categorical": (lambda d: (d.logits,), categorical),
        "poisson": (lambda d: (d.rate,), lambda lq, lp: lq * jnp.log(lq / lp) + lp - lq),
        "uniform": (lambda d: (d.low, d.high), lambda lq, hq, lp, hp: jnp.log(hp - lp) - jnp.log(hq - lq)),
        "mvn_tri": (lambda d: (d.loc, d.scale_tri), mvn),
    }[name]


def _cast64(d):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(np.asarray(x, np.float64)), d)


def _rebuild(template, leaves):
    """The distribution with these parameter leaves; a Categorical and a MultivariateNormalTri
    through their constructors, as a user's would be (the leaves hold normalized log-probabilities
    and a lower-triangular matrix: derivatives pass through log_softmax and tril)."""
    if isinstance(template, rg.Categorical):
        return rg.Categorical(logits=leaves[0])
    if isinstance(template, rg.MultivariateNormalTri):
        return rg.MultivariateNormalTri(*leaves)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


@pytest.mark.parametrize(
    "name",
    ["normal", "lognormal", "laplace", "exponential", "gamma", "beta", "dirichlet", "bernoulli", "categorical",
     "poisson", "uniform", "mvn_tri"],
)  # fmt: skip
def test_kl_gradients_match_textbook_autodiff(name):
    params, formula = _textbook_kl(name)
    with jax.enable_x64(True):
        q, p = (_cast64(d) for d in PAIRS[name][:2])
        leaves_q, leaves_p = jax.tree_util.tree_leaves(q), jax.tree_util.tree_leaves(p)

        def ours(lq, lp):
            return jnp.sum(_rebuild(q, lq).kl_divergence(_rebuild(p, lp)))

        def reference(lq, lp):
            return jnp.sum(formula(*params(_rebuild(q, lq)), *params(_rebuild(p, lp))))

        np.testing.assert_allclose(ours(leaves_q, leaves_p), reference(leaves_q, leaves_p), rtol=1e-12)
        got, expected = jax.grad(ours, argnums=(0, 1))(leaves_q, leaves_p), jax.grad(reference, argnums=(0, 1))(leaves_q, leaves_p)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_kl_and_entropy_hessians_match_textbook():
    g, ψ = jax.scipy.special.gammaln, jax.scipy.special.digamma
    hessians = lambda fn, points: jax.jit(jax.vmap(jax.hessian(fn)))(points)  # one compile per function
    with jax.enable_x64(True):
        # Gamma KL in all four parameters, incl. a large-concentration point (series branch).
        points = jnp.array([[2.3, 1.2, 0.5, 0.7], [40.0, 3.0, 55.0, 2.0]])
        ours = lambda v: rg.Gamma(v[0], v[1]).kl_divergence(rg.Gamma(v[2], v[3]))
        ref = lambda v: _textbook_kl("gamma")[1](*v)
        np.testing.assert_allclose(hessians(ours, points), hessians(ref, points), rtol=1e-9, atol=1e-11)
        # Beta entropy in both concentrations.
        ours = lambda v: rg.Beta(v[0], v[1]).entropy()
        ref = lambda v: g(v[0]) + g(v[1]) - g(v[0] + v[1]) - (v[0] - 1) * ψ(v[0]) - (v[1] - 1) * ψ(v[1]) + (v[0] + v[1] - 2) * ψ(v[0] + v[1])
        points = jnp.array([[0.3, 2.5], [30.0, 70.0]])
        np.testing.assert_allclose(hessians(ours, points), hessians(ref, points), rtol=1e-9, atol=1e-11)
    # Laplace KL at equal locations: KL = |d|/bp + (bq/bp) e^{−|d|/bq} + const in d = μq − μp, whose second
    # derivative at d = 0 is 1/(bq bp) (jnp.abs's sign(0) = 0 gave 0 there).
    h = jax.hessian(lambda m: rg.Laplace(m, 0.8).kl_divergence(rg.Laplace(0.0, 1.5)))(0.0)
    np.testing.assert_allclose(h, 1.0 / (0.8 * 1.5), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda m: rg.Laplace(m, 0.8).kl_divergence(rg.Laplace(0.0, 1.5)))(0.0), 0.0)


def _textbook_entropy(name):
    g, ψ = jax.scipy.special.gammaln, jax.scipy.special.digamma
    log_2pi_e = np.log(2 * np.pi * np.e)
    return {
        "normal": lambda d: 0.5 * jnp.log(d.scale**2) + 0.5 * log_2pi_e,
        "lognormal": lambda d: d.loc + 0.5 * jnp.log(d.scale**2) + 0.5 * log_2pi_e,
        "laplace": lambda d: 1 + jnp.log(2 * d.scale),
        "logistic": lambda d: jnp.log(d.scale) + 2,
        "uniform": lambda d: jnp.log(d.high - d.low),
        "exponential": lambda d: 1 - jnp.log(d.rate),
        "gamma": lambda d: d.concentration - jnp.log(d.rate) + g(d.concentration) + (1 - d.concentration) * ψ(d.concentration),
        "beta": lambda d: _textbook_entropy("dirichlet")(rg.Dirichlet(jnp.stack([d.concentration1, d.concentration0], -1))),
        "dirichlet": lambda d: (
            jnp.sum(g(d.concentration), -1) - g(jnp.sum(d.concentration, -1))
            + (jnp.sum(d.concentration, -1) - d.concentration.shape[-1]) * ψ(jnp.sum(d.concentration, -1))
            - jnp.sum((d.concentration - 1) * ψ(d.concentration), -1)
        ),
        "bernoulli": lambda d: -(d.probs * jnp.log(d.probs) + (1 - d.probs) * jnp.log1p(-d.probs)),
        "categorical": lambda d: -jnp.sum(jax.nn.softmax(d.logits) * jax.nn.log_softmax(d.logits), -1),
        "mvn_diag": lambda d: jnp.sum(jnp.log(d.scale_diag), -1) + 1.5 * log_2pi_e,
        "mvn_tri": lambda d: jnp.linalg.slogdet(jnp.tril(d.scale_tri))[1] + 1.5 * log_2pi_e,
    }[name]


@pytest.mark.parametrize("name", sorted(set(FAMILIES) - {"poisson"}))
def test_entropy_gradients_match_textbook_autodiff(name):
    formula = _textbook_entropy(name)
    with jax.enable_x64(True):
        d = _cast64(FAMILIES[name][0]())
        leaves = jax.tree_util.tree_leaves(d)
        ours = lambda leaves: jnp.sum(_rebuild(d, leaves).entropy())
        ref = lambda leaves: jnp.sum(formula(_rebuild(d, leaves)))
        np.testing.assert_allclose(ours(leaves), ref(leaves), rtol=1e-12, atol=1e-14)
        for a, b in zip(jax.grad(ours)(leaves), jax.grad(ref)(leaves), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# (λ, H, dH/dλ) at 40 digits (mpmath): H = −Σₖ pₖ log pₖ and dH/dλ = −log λ + E[log(k + 1)]
# (d/dλ E[g(k)] = E[g(k + 1) − g(k)]), summed over λ ± 40√λ ± 100. Across the switch from the
# exact sum to the asymptotic series (λ = 20 in float32, 50 in float64).
POISSON_ENTROPY = [
    (1e-6, 1.4815510904537816e-5, 13.815511251111311),
    (0.01, 0.05608631134259101, 4.6120873019580408),
    (0.5, 0.92763746749579737, 1.0070175690293758),
    (1, 1.3048422422562515, 0.57340280912262024),
    (3, 1.9314701981485689, 0.18243084825483434),
    (10, 2.5614099352749091, 0.050941426984693739),
    (19.9, 2.9099980238503744, 0.025347826129855266),
    (20.1, 2.9150420499472948, 0.025093291544813124),
    (35, 3.1941962846363562, 0.014355800295517042),
    (49.9, 3.3722618502538649, 0.010054204945080289),
    (50.1, 3.374268658327305, 0.010013929679061426),
    (200, 4.067679501476731, 0.0025020938503919965),
    (1e4, 6.0241003854427113, 5.0000833416682505e-5),
    (1e6, 8.3266937288534348, 5.0000008333341667e-7),
]
POISSON_D2_AT_3 = -0.06715932802135009774  # −1/λ + E[log(k + 2) − log(k + 1)] at λ = 3


@pytest.mark.parametrize("x64", [False, True])
def test_poisson_entropy_to_the_dtypes_precision(x64):
    rates, h_ref, dh_ref = (np.array(c) for c in zip(*POISSON_ENTROPY, strict=True))
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        rate = jnp.asarray(rates, dtype)
        entropy = lambda r: rg.Poisson(r).entropy()
        h, dh = entropy(rate), jax.jit(jax.vmap(jax.grad(entropy)))(rate)
        d2 = jax.jit(jax.grad(jax.grad(entropy)))(jnp.asarray(3.0, dtype))
        assert h.dtype == dtype
    eps = float(jnp.finfo(dtype).eps)
    # Measured: within 2.4ε relative (H) and 25ε (dH/dλ) in either precision (the rates' own float32
    # rounding moves H by under 10⁻⁸ relative).
    np.testing.assert_allclose(h, h_ref, rtol=16 * eps)
    np.testing.assert_allclose(dh, dh_ref, rtol=64 * eps)
    np.testing.assert_allclose(d2, POISSON_D2_AT_3, rtol=64 * eps)


# --------------------------------------------------------------------- float32 edge cases


def test_bernoulli_entropy_at_the_edges_float32():
    logits = jnp.array([-100.0, -30.0, -5.0, 0.0, 5.0, 16.0, 30.0, 100.0])
    d = rg.Bernoulli(logits=logits)
    h = d.entropy()
    lg = np.asarray(logits, np.float64)
    log_p, log_q = -np.logaddexp(0.0, -lg), -np.logaddexp(0.0, lg)  # log(1 − q) rounds in 1 − q
    p, q = np.exp(log_p), np.exp(log_q)
    expected = -(p * log_p + q * log_q)
    np.testing.assert_allclose(h, expected, rtol=1e-5, atol=1e-40)  # 3e-12 at ±30: no rounding to 0 or noise
    g = jax.vmap(jax.grad(lambda lg: rg.Bernoulli(logits=lg).entropy()))(logits)
    np.testing.assert_allclose(g, -lg * p * q, rtol=1e-5, atol=1e-40)
    # probs of exactly 0 and 1 (stored as logits −22 and 16.6): finite, non-negative, tiny.
    h_edge = rg.Bernoulli(probs=jnp.array([0.0, 1.0])).entropy()
    assert np.all(np.isfinite(h_edge)) and np.all(h_edge >= 0) and np.all(h_edge < 2e-6)
    assert np.all(np.isfinite(jax.grad(lambda p: jnp.sum(rg.Bernoulli(probs=p).entropy()))(jnp.array([0.0, 1.0]))))
    # KL at the edges: finite, and exact where q = p.
    kl = rg.Bernoulli(probs=jnp.array([0.0, 1.0, 0.0])).kl_divergence(rg.Bernoulli(probs=jnp.array([0.0, 1.0, 0.5])))
    np.testing.assert_allclose(kl, [0.0, 0.0, np.log(2.0)], rtol=1e-5, atol=1e-7)


def test_categorical_entropy_and_kl_with_masked_categories():
    logits = jnp.array([[0.0, -jnp.inf, 1.0], [0.0, -jnp.inf, -jnp.inf]])
    d = rg.Categorical(logits=logits)
    p0 = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    np.testing.assert_allclose(d.entropy(), [-np.sum(p0 * np.log(p0)), 0.0], rtol=1e-6, atol=1e-7)
    g = jax.grad(lambda lg: jnp.sum(rg.Categorical(logits=lg).entropy()))(logits)
    assert np.all(np.isfinite(g)) and g[0, 1] == 0.0
    # A one-hot distribution by probs: entropy exactly 0, finite gradient on its support.
    np.testing.assert_array_equal(rg.Categorical(probs=jnp.array([0.0, 1.0, 0.0])).entropy(), 0.0)
    # KL: q masks what p masks → finite; p masks where q has mass → +inf.
    p = rg.Categorical(logits=jnp.array([[0.3, -jnp.inf, 0.2], [0.0, 0.0, 0.0]]))
    kl = d.kl_divergence(p)
    pp = np.exp([0.3, 0.2]) / np.exp([0.3, 0.2]).sum()
    np.testing.assert_allclose(kl[0], np.sum(p0 * np.log(p0 / pp)), rtol=1e-5)
    np.testing.assert_allclose(kl[1], np.log(3.0), rtol=1e-6)
    assert np.isposinf(rg.Categorical(logits=jnp.zeros(3)).kl_divergence(rg.Categorical(logits=logits[0])))
    g = jax.grad(lambda lg: jnp.sum(rg.Categorical(logits=lg).kl_divergence(p)))(logits)
    assert np.all(np.isfinite(g))


# (q's parameters, p's parameters): concentrations from 1e-6 to 1e6. The textbook float32 forms are
# off by 3.7e-2 … 1 relative on the large ones (cancellation of terms of size α log α).
GAMMA_KL_CASES = [
    (2.3, 1.2, 0.5, 0.7),
    (1e-3, 1.0, 2e-3, 1.0),
    (1e-6, 2.0, 1.0, 1.0),
    (1e4, 1e4, 1.01e4, 1.01e4),
    (1e4, 1e4, 2e4, 2e4),
    (50.0, 2.0, 50.0, 2.0999999),
    (20.0, 1.0, 0.01, 5.0),
    (1e6, 1e6, 1.5e6, 1e6),
    (1.0, 2.0, 1.0, 3.0),
]
DIRICHLET_KL_CASES = [
    ([1e4, 1e4], [1.01e4, 1e4]),
    ([1e4, 2e4, 3e4], [2e4, 4e4, 6e4]),
    ([1e-3, 1e-3], [2e-3, 1e-3]),
    ([1e-3, 5e3], [1.0, 5e3]),
    ([1e3] * 5, [1e3, 1e3, 1e3, 1e3, 1.001e3]),
]


def _gamma_kl64(aq, bq, ap, bp):
    return (aq - ap) * sps.digamma(aq) - sps.gammaln(aq) + sps.gammaln(ap) + ap * np.log(bq / bp) + aq * (bp - bq) / bq


def _dirichlet_kl64(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    log_b = lambda c: np.sum(sps.gammaln(c)) - sps.gammaln(np.sum(c))
    return log_b(b) - log_b(a) + np.sum((a - b) * (sps.digamma(a) - sps.digamma(np.sum(a))))


def _close(got, expected, what):
    # float32 rounding (rtol) plus the accuracy of jax's float32 log Γ and ψ, which the formulas
    # evaluate a few times (atol; their errors reach 1e-6 each). The textbook forms miss by 6e-3
    # (Gamma, α = 10⁴) to 0.5 (α = 10⁶).
    np.testing.assert_allclose(float(got), expected, rtol=2e-5, atol=1e-5, err_msg=str(what))


@pytest.mark.parametrize("case", GAMMA_KL_CASES)
def test_gamma_kl_without_cancellation_float32(case):
    case32 = [float(np.float32(c)) for c in case]  # the reference at the float32 inputs
    got = rg.Gamma(*case32[:2]).kl_divergence(rg.Gamma(*case32[2:]))
    _close(got, _gamma_kl64(*case32), case)
    # Exponential is Gamma(1, λ): the same formula through either route.
    if case[0] == case[2] == 1.0:
        np.testing.assert_allclose(rg.Exponential(case32[1]).kl_divergence(rg.Exponential(case32[3])), got, rtol=1e-6)


@pytest.mark.parametrize("case", DIRICHLET_KL_CASES)
def test_dirichlet_and_beta_kl_without_cancellation_float32(case):
    a, b = (np.asarray(np.float32(c), np.float64) for c in case)
    expected = _dirichlet_kl64(a, b)
    _close(rg.Dirichlet(jnp.asarray(a, jnp.float32)).kl_divergence(rg.Dirichlet(jnp.asarray(b, jnp.float32))), expected, case)
    if len(a) == 2:
        _close(rg.Beta(*a).kl_divergence(rg.Beta(*b)), expected, case)


@pytest.mark.parametrize("concentration", [1e-6, 1e-3, 0.1, 0.5, 1.0, 2.9, 3.1, 11.9, 12.1, 1e3, 1e6])
def test_gamma_family_entropies_float32(concentration):
    c = float(np.float32(concentration))
    _close(rg.Gamma(c, 2.0).entropy(), st.gamma(c, scale=0.5).entropy(), ("gamma", c))
    _close(rg.Beta(c, 2.0 * c).entropy(), st.beta(c, 2.0 * c).entropy(), ("beta", c))
    alpha = np.array([c, 2.0 * c, 3.0 * c])
    _close(rg.Dirichlet(jnp.asarray(alpha, jnp.float32)).entropy(), st.dirichlet(alpha).entropy(), ("dirichlet", c))
    # Derivatives: finite and right (d/dα of the Gamma entropy is 1 + (1 − α) ψ'(α), which cancels for large α).
    dh = jax.grad(lambda a: rg.Gamma(a, 2.0).entropy())(jnp.float32(c))
    expected = 1.0 + (1.0 - c) * sps.polygamma(1, c) if c < 1e3 else 1 / (2 * c) + 1 / (3 * c**2)  # series above
    np.testing.assert_allclose(dh, expected, rtol=2e-5)


def test_float64_large_concentrations_exact():
    # float64 follows the float64 textbook value where that is accurate (moderate α) and the
    # series where it is not; checked against scipy at moderate α to 1e-13 relative.
    with jax.enable_x64(True):
        for c in (0.5, 7.0, 11.9, 12.1, 40.0):
            np.testing.assert_allclose(rg.Gamma(jnp.float64(c), 1.5).entropy(), st.gamma(c, scale=1 / 1.5).entropy(), rtol=1e-13)
            np.testing.assert_allclose(
                rg.Beta(jnp.float64(c), 2.0 * c).kl_divergence(rg.Beta(jnp.float64(c + 1), c)),
                _dirichlet_kl64([c, 2 * c], [c + 1, c]),
                rtol=1e-12,
            )


def test_uniform_kl_infinite_outside_and_zero_gradient_there():
    q = rg.Uniform(jnp.array([0.0, -1.0, 0.0]), jnp.array([1.0, 0.5, 1.0]))
    p = rg.Uniform(jnp.array([-0.5, -0.5, 0.0]), jnp.array([2.0, 0.5, 1.0]))
    kl = q.kl_divergence(p)
    np.testing.assert_allclose(kl[0], np.log(2.5), rtol=1e-6)
    assert np.isposinf(kl[1])  # q puts mass below p's low
    assert kl[2] == 0.0
    # d/dlow_q of log(width_p) − log(width_q) = 1/width_q inside; 0 (not NaN) where the KL is +∞.
    grad = lambda i: jax.grad(lambda lo: rg.Uniform(lo, q.high).kl_divergence(p)[i])(q.low)
    np.testing.assert_allclose(grad(0), [1.0, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(grad(1), [0.0, 0.0, 0.0])


def test_lognormal_variance_without_overflow_float32():
    # exp(2μ + σ²)(exp(σ²) − 1) with μ = −100, σ = 10: exp(σ²) overflows float32 but the variance is ~1.
    d = rg.LogNormal(jnp.array([-100.0, 0.3]), jnp.array([10.0, 0.5]))
    mu, s2 = np.array([-100.0, 0.3]), np.array([100.0, 0.25])
    expected = np.exp(2 * mu + s2) * np.expm1(s2)
    np.testing.assert_allclose(d.variance(), expected, rtol=1e-5)
    np.testing.assert_allclose(d.stddev(), np.sqrt(expected), rtol=1e-5)


def test_categorical_mean_and_variance_are_of_the_index():
    d = rg.Categorical(logits=LOGITS)
    assert d.mean().shape == d.variance().shape == (2,)  # not probs (2, 4)
    samples = np.asarray(d.sample(KEY, (N_MC,)), np.float64)
    assert_unbiased(samples, np.asarray(d.mean()), name="categorical index mean")
    assert_unbiased((samples - np.asarray(d.mean())) ** 2, np.asarray(d.variance()), name="categorical index variance")


# ------------------------------------------------------------------ composition and errors


def test_jit_vmap_grad_and_batch_broadcasting():
    # Batch shapes broadcast as in log_prob: q of batch (3, 1) against p of batch (4,).
    aq = jnp.array([[0.5], [1.0], [7.0]])
    ap = jnp.array([0.3, 2.0, 15.0, 40.0])
    q, p = rg.Gamma(aq, 2.0), rg.Gamma(ap, 1.5)
    kl = q.kl_divergence(p)
    assert kl.shape == (3, 4)
    single = jax.jit(lambda a, b: rg.Gamma(a, 2.0).kl_divergence(rg.Gamma(b, 1.5)))  # one entry at a time
    loop = np.array([[float(single(a, b)) for b in ap] for a in aq[:, 0]])
    np.testing.assert_allclose(kl, loop, rtol=1e-6)
    # Event families: a MultivariateNormalTri batch against one MultivariateNormalDiag.
    tri = rg.MultivariateNormalTri(LOC3, L)
    diag = rg.MultivariateNormalDiag(jnp.zeros(3), jnp.array([1.0, 2.0, 0.5]))
    assert tri.kl_divergence(diag).shape == (2,) and diag.kl_divergence(tri).shape == (2,)
    # jit and vmap over the parameters, grad inside: the same numbers as eager.
    fn = lambda a, b: (rg.Beta(a, b).entropy(), rg.Beta(a, b).kl_divergence(rg.Beta(b, a)))
    a, b = jnp.array([0.5, 2.0, 30.0]), jnp.array([1.5, 0.7, 20.0])
    eager = fn(a, b)
    for got in (jax.jit(fn)(a, b), jax.vmap(fn)(a, b)):
        for x, y in zip(got, eager, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-6)
    g = jax.jit(jax.vmap(jax.grad(lambda a, b: fn(a, b)[1], argnums=(0, 1))))(a, b)
    single = jax.jit(jax.grad(lambda a, b: fn(a, b)[1], argnums=(0, 1)))
    np.testing.assert_allclose(np.asarray(g), np.asarray([single(x, y) for x, y in zip(a, b, strict=True)]).T, rtol=1e-5)
    # Distributions as pytrees through jit; a Poisson entropy under vmap of grad.
    assert jax.jit(lambda d: d.entropy())(rg.Dirichlet(ALPHA)).shape == (2,)
    assert jax.vmap(jax.grad(lambda r: rg.Poisson(r).entropy()))(jnp.array([0.5, 30.0, 80.0])).shape == (3,)


def test_low_precision_parameters():
    # bfloat16 parameters: summaries in the parameters' dtype, computed in float32.
    d = rg.Gamma(jnp.array([0.5, 30.0], jnp.bfloat16), jnp.array([1.0, 2.0], jnp.bfloat16))
    assert d.entropy().dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(d.entropy(), np.float32), st.gamma([0.5, 30.0], scale=[1.0, 0.5]).entropy(), rtol=1e-2)
    kl = d.kl_divergence(rg.Gamma(jnp.array([1.0, 1.0], jnp.bfloat16), jnp.array([1.0, 1.0], jnp.bfloat16)))
    assert kl.dtype == jnp.bfloat16


def test_errors_name_the_alternative():
    with pytest.raises(NotImplementedError, match=r"KL\(Logistic ‖ Logistic\).*kl='monte_carlo'"):
        rg.Logistic(0.0, 1.0).kl_divergence(rg.Logistic(0.0, 2.0))
    with pytest.raises(NotImplementedError, match=r"closed forms from Normal: Normal‖Normal.*monte_carlo"):
        rg.Normal(0.0, 1.0).kl_divergence(rg.Laplace(0.0, 1.0))
    with pytest.raises(NotImplementedError, match="takes a repgrad distribution"):
        rg.Normal(0.0, 1.0).kl_divergence(object())
    with pytest.raises(ValueError, match="same dimension D"):
        rg.MultivariateNormalDiag(jnp.zeros(2), 1.0).kl_divergence(rg.MultivariateNormalDiag(jnp.zeros(3), 1.0))
    with pytest.raises(ValueError, match="same number of categories"):
        rg.Categorical(logits=jnp.zeros(2)).kl_divergence(rg.Categorical(logits=jnp.zeros(3)))
    with pytest.raises(ValueError, match="do not broadcast"):
        rg.Gamma(jnp.ones(2), 1.0).kl_divergence(rg.Gamma(jnp.ones(3), 1.0))
    with pytest.raises(NotImplementedError, match="no closed-form entropy.*log_prob"):
        rg.Distribution().entropy()


# ------------------------------------------------------------------------------ rg.elbo


def test_elbo_analytic_kl_uses_the_family_formulas():
    log_lik = lambda z, x: -0.5 * jnp.sum((x - z) ** 2)
    x = jnp.array([0.3, 1.2])
    key = jax.random.key(1)
    # Gamma ‖ Gamma, newly analytic: the bound is the mean log-likelihood of its own draws (returned
    # as aux) minus the exact KL (before, the Monte Carlo KL: a different, noisy number).
    q_fn = lambda p: rg.Gamma(p["a"], p["b"])
    params = {"a": jnp.array([2.0, 30.0]), "b": jnp.array([1.0, 4.0])}
    prior = rg.Gamma(jnp.array([1.5, 1.5]), 1.0)
    with_aux = lambda z, x: (log_lik(z, x), log_lik(z, x))
    bound = rg.elbo(with_aux, q_fn, num_samples=8, prior=prior, kl="analytic", has_aux=True)

    def parts(params):  # (bound, mean log-likelihood of its draws, exact KL)
        value, lik = bound(params, key, x)
        return jnp.stack([value, jnp.mean(lik), jnp.sum(q_fn(params).kl_divergence(prior))])

    value, lik, kl = jax.jit(parts)(params)
    np.testing.assert_allclose(value, lik - kl, rtol=1e-6)
    # Its gradient: the pathwise log-likelihood term minus the exact KL's gradient.
    g = jax.jit(jax.jacrev(parts))(params)
    for leaf in ("a", "b"):
        np.testing.assert_allclose(g[leaf][0], g[leaf][1] - g[leaf][2], rtol=1e-5, atol=1e-6)

    # The pairs rg.elbo already had keep their formula, bit for bit: the Normal KL as written before.
    def old_normal(q_loc, q_scale, p_loc, p_scale):
        ratio = q_scale / p_scale
        return -jnp.log(ratio) + 0.5 * (jnp.square(ratio) + jnp.square((q_loc - p_loc) / p_scale)) - 0.5

    q = rg.MultivariateNormalDiag(jnp.array([[0.3, -0.2], [1.0, 0.4]]), jnp.array([[0.5, 1.3], [0.9, 0.2]]))
    p = rg.MultivariateNormalDiag(jnp.zeros(2), jnp.array([1.0, 2.0]))
    from repgrad._src.distributions.kl import closed_form_kl

    old = jnp.sum(old_normal(q.loc, q.scale_diag, p.loc[None], p.scale_diag[None]))
    assert np.array_equal(closed_form_kl(q, p), old)
    np.testing.assert_allclose(q.kl_divergence(p), np.sum(old_normal(q.loc, q.scale_diag, p.loc[None], p.scale_diag[None]), -1), rtol=1e-6)
    # A pair without a closed form still falls back to the Monte Carlo KL (documented), no error.
    laplace_prior = rg.Laplace(jnp.zeros(2), 1.0)
    value = rg.elbo(log_lik, lambda p: rg.Normal(p, 1.0), num_samples=4, prior=laplace_prior, kl="analytic")(jnp.zeros(2), key, x)
    assert np.isfinite(value)
