"""log_prob inside, on the edge of and outside every family's support, against scipy.stats
(issue 16, item 13), and Poisson/Gamma accuracy in float32 where the textbook form cancels.

- Outside the support log_prob is −inf (never a finite number or NaN) and its derivatives with
  respect to the parameters are 0; inside they equal those of the textbook density.
- Against scipy (float64, at the float32-rounded points and parameters): the tolerance is
  8·ε·(1 + Σ|terms|), with ε the dtype's machine epsilon and the terms the summands of the
  textbook log-density (x log λ, log Γ(x + 1), ...): the rounding a float evaluation of those
  terms can accumulate, and a bound on scipy's own float64 error. Poisson (every rate) and
  Gamma (concentration ≥ 16) are held to 8·ε·max(1, |log p|) plus the conditioning of their
  rounded inputs, since Loader's form does not cancel.

Deterministic: no sampling except the ELBO check (fixed key).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st

import repgrad as rg

INF, NAN = math.inf, math.nan


def _f64(x):
    return np.asarray(x, np.float64)


# Each case: params (array), make(params) -> distribution, reference(params, x) -> scipy log-density
# (float64), terms(params, x) -> the textbook summands' magnitudes, and points: inside, edge (on the
# boundary, compared with scipy) and outside (−inf whatever scipy says: it gives NaN at +inf for the
# Gamma and Poisson and raises off the Dirichlet simplex). Scalar families take x of shape (n,).
CASES = {
    "normal": dict(
        params=[0.3, 1.7],
        make=lambda p: rg.Normal(p[0], p[1]),
        ref=lambda p, x: st.norm(p[0], p[1]).logpdf(x),
        terms=lambda p, x: [0.5 * ((x - p[0]) / p[1]) ** 2, np.log(p[1]), 0.92],
        inside=[-3.0, 0.3, 12.0],
        edge=[],
        outside=[INF, -INF],
    ),
    "lognormal": dict(
        params=[0.3, 0.8],
        make=lambda p: rg.LogNormal(p[0], p[1]),
        ref=lambda p, x: st.lognorm(p[1], scale=np.exp(p[0])).logpdf(x),
        terms=lambda p, x: [0.5 * ((np.log(x) - p[0]) / p[1]) ** 2, np.abs(np.log(x)), np.log(p[1]), 0.92],
        inside=[1e-3, 1.2, 40.0],
        edge=[],
        outside=[0.0, -1.0, -INF, INF],
    ),
    "laplace": dict(
        params=[0.3, 1.7],
        make=lambda p: rg.Laplace(p[0], p[1]),
        ref=lambda p, x: st.laplace(p[0], p[1]).logpdf(x),
        terms=lambda p, x: [np.abs(x - p[0]) / p[1], np.log(2 * p[1])],
        inside=[-3.0, 0.3, 12.0],
        edge=[],
        outside=[INF, -INF],
    ),
    "logistic": dict(
        params=[0.3, 1.7],
        make=lambda p: rg.Logistic(p[0], p[1]),
        ref=lambda p, x: st.logistic(p[0], p[1]).logpdf(x),
        terms=lambda p, x: [3 * np.abs((x - p[0]) / p[1]), np.log(p[1])],
        inside=[-30.0, 0.3, 12.0],
        edge=[],
        outside=[INF, -INF],
    ),
    "uniform": dict(
        params=[-0.5, 2.0],
        make=lambda p: rg.Uniform(p[0], p[1]),
        ref=lambda p, x: st.uniform(p[0], p[1] - p[0]).logpdf(x),
        terms=lambda p, x: [np.log(p[1] - p[0])],
        inside=[0.0, 1.9],
        edge=[-0.5, 2.0],  # closed, as scipy
        outside=[-0.5001, 2.0001, INF, -INF],
    ),
    "exponential": dict(
        params=[1.7],
        make=lambda p: rg.Exponential(p[0]),
        ref=lambda p, x: st.expon(scale=1 / p[0]).logpdf(x),
        terms=lambda p, x: [np.log(p[0]), p[0] * x],
        inside=[1e-6, 0.3, 40.0],
        edge=[0.0],
        outside=[-1e-30, -1.0, INF, -INF],
    ),
    "gamma": dict(
        params=[2.5, 1.7],
        make=lambda p: rg.Gamma(p[0], p[1]),
        ref=lambda p, x: st.gamma(p[0], scale=1 / p[1]).logpdf(x),
        terms=lambda p, x: [np.abs((p[0] - 1) * np.log(x)), p[1] * x, np.abs(p[0] * np.log(p[1])), np.abs(sp.gammaln(p[0]))],
        inside=[1e-4, 0.3, 40.0],
        edge=[0.0],  # −inf for concentration > 1
        outside=[-1e-30, -1.0, INF, -INF],
    ),
    "gamma-concentration-1": dict(  # the Gamma(1, 2): log_prob(-1) was +2.69
        params=[1.0, 2.0],
        make=lambda p: rg.Gamma(p[0], p[1]),
        ref=lambda p, x: st.gamma(p[0], scale=1 / p[1]).logpdf(x),
        terms=lambda p, x: [p[1] * x, np.abs(np.log(p[1]))],
        inside=[1e-4, 0.3],
        edge=[0.0],  # log rate
        outside=[-1.0, INF],
    ),
    "gamma-concentration-below-1": dict(
        params=[0.4, 2.0],
        make=lambda p: rg.Gamma(p[0], p[1]),
        ref=lambda p, x: st.gamma(p[0], scale=1 / p[1]).logpdf(x),
        terms=lambda p, x: [np.abs((p[0] - 1) * np.log(x)), p[1] * x, np.abs(p[0] * np.log(p[1])), np.abs(sp.gammaln(p[0]))],
        inside=[1e-4, 0.3],
        edge=[0.0],  # +inf
        outside=[-1.0, INF],
    ),
    "gamma-large-concentration": dict(  # Loader's form (concentration ≥ 16)
        params=[40.0, 3.0],
        make=lambda p: rg.Gamma(p[0], p[1]),
        ref=lambda p, x: st.gamma(p[0], scale=1 / p[1]).logpdf(x),
        terms=lambda p, x: [np.abs((p[0] - 1) * np.log(x)), p[1] * x, np.abs(p[0] * np.log(p[1])), np.abs(sp.gammaln(p[0]))],
        inside=[1e-3, 13.0, 60.0],
        edge=[0.0],
        outside=[-1.0, INF],
    ),
    "beta": dict(
        params=[2.5, 1.5],
        make=lambda p: rg.Beta(p[0], p[1]),
        ref=lambda p, x: st.beta(p[0], p[1]).logpdf(x),
        terms=lambda p, x: [np.abs((p[0] - 1) * np.log(x)), np.abs((p[1] - 1) * np.log1p(-x)), 3 * np.abs(sp.betaln(p[0], p[1]))],
        inside=[1e-4, 0.3, 0.9999],
        edge=[0.0, 1.0],
        outside=[-0.5, 1.5, -1e-30, INF, -INF],
    ),
    "beta-1-3": dict(  # the Beta(1, 3): log_prob(-0.5) was 1.91
        params=[1.0, 3.0],
        make=lambda p: rg.Beta(p[0], p[1]),
        ref=lambda p, x: st.beta(p[0], p[1]).logpdf(x),
        terms=lambda p, x: [np.abs((p[1] - 1) * np.log1p(-x)), 3 * np.abs(sp.betaln(p[0], p[1]))],
        inside=[0.3],
        edge=[0.0, 1.0],  # log 3 and −inf
        outside=[-0.5, 1.5],
    ),
    "beta-below-1": dict(
        params=[0.5, 0.7],
        make=lambda p: rg.Beta(p[0], p[1]),
        ref=lambda p, x: st.beta(p[0], p[1]).logpdf(x),
        terms=lambda p, x: [np.abs((p[0] - 1) * np.log(x)), np.abs((p[1] - 1) * np.log1p(-x)), 3 * np.abs(sp.betaln(p[0], p[1]))],
        inside=[0.3],
        edge=[0.0, 1.0],  # +inf at both
        outside=[-0.5, 1.5],
    ),
    "poisson": dict(
        params=[3.0],
        make=lambda p: rg.Poisson(p[0]),
        ref=lambda p, x: st.poisson(p[0]).logpmf(x),
        terms=lambda p, x: [np.abs(x * np.log(p[0])), p[0], sp.gammaln(x + 1)],
        inside=[1.0, 3.0, 40.0],
        edge=[0.0],
        outside=[2.5, -1.0, 0.5, INF, -INF],  # Poisson(3).log_prob(2.5) was −1.45
    ),
    "bernoulli": dict(
        params=[0.4],
        make=lambda p: rg.Bernoulli(logits=p[0]),
        ref=lambda p, x: st.bernoulli(sp.expit(p[0])).logpmf(x),
        terms=lambda p, x: [np.logaddexp(0, np.abs(p[0])) + np.abs(p[0])],
        inside=[0.0, 1.0],
        edge=[],
        outside=[0.5, 2.0, -1.0, INF],
    ),
    "categorical": dict(
        params=[0.4, -1.0, 2.0],
        make=lambda p: rg.Categorical(logits=p),
        ref=lambda p, x: np.where((x >= 0) & (x < len(p)) & (np.floor(x) == x), (p - sp.logsumexp(p))[np.clip(x, 0, len(p) - 1).astype(int)], -np.inf),
        terms=lambda p, x: [np.abs(p).max() + sp.logsumexp(p)],
        inside=[0.0, 2.0],
        edge=[],
        outside=[-1.0, 3.0, 1.5],
    ),
}


def _points(case, which):
    return np.asarray(case[which], np.float64)


def _tolerance(case, p, x, dtype):
    eps = float(jnp.finfo(dtype).eps)
    terms = sum(np.abs(np.broadcast_to(_f64(t), np.shape(x))) for t in case["terms"](p, x))
    return 8.0 * eps * (1.0 + terms)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_log_prob_inside_edge_outside_against_scipy(name, dtype):
    case = CASES[name]
    with jax.enable_x64(dtype == jnp.float64):
        p = jnp.asarray(case["params"], dtype)
        p64 = _f64(p)
        d = case["make"](p)
        inside = np.concatenate([_points(case, "inside"), _points(case, "edge")])
        x = jnp.asarray(inside, dtype)
        x64 = _f64(x)
        lp = _f64(d.log_prob(x))
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = _f64(case["ref"](p64, x64))
            tol = _tolerance(case, p64, x64, dtype)
        assert lp.dtype == np.float64 and d.log_prob(x).dtype == dtype
        infinite = ~np.isfinite(expected)
        np.testing.assert_array_equal(lp[infinite], expected[infinite], err_msg=f"{name}: edge values")
        finite = ~infinite
        np.testing.assert_array_less(np.abs(lp[finite] - expected[finite]), tol[finite], err_msg=f"{name} vs scipy")
        # Outside: −inf, never a finite number or NaN.
        out = d.log_prob(jnp.asarray(_points(case, "outside"), dtype))
        assert np.all(np.isneginf(_f64(out))), f"{name}: log_prob outside the support = {out}"
        # NaN in, NaN out.
        assert np.isnan(_f64(d.log_prob(jnp.asarray(NAN, dtype)))).all()


def _textbook(name):
    """The textbook log-densities, as jax functions of (params, x), for the derivative checks."""
    gammaln = jax.scipy.special.gammaln
    return {
        "normal": lambda p, x: -0.5 * ((x - p[0]) / p[1]) ** 2 - jnp.log(p[1]) - 0.5 * jnp.log(2 * jnp.pi),
        "lognormal": lambda p, x: -0.5 * ((jnp.log(x) - p[0]) / p[1]) ** 2 - jnp.log(p[1] * x) - 0.5 * jnp.log(2 * jnp.pi),
        "laplace": lambda p, x: -jnp.abs(x - p[0]) / p[1] - jnp.log(2 * p[1]),
        "logistic": lambda p, x: -(x - p[0]) / p[1] - 2 * jax.nn.softplus(-(x - p[0]) / p[1]) - jnp.log(p[1]),
        "exponential": lambda p, x: jnp.log(p[0]) - p[0] * x,
        "gamma": lambda p, x: (p[0] - 1) * jnp.log(x) - p[1] * x + p[0] * jnp.log(p[1]) - gammaln(p[0]),
        "beta": lambda p, x: (p[0] - 1) * jnp.log(x) + (p[1] - 1) * jnp.log1p(-x) - jax.scipy.special.betaln(p[0], p[1]),
        "poisson": lambda p, x: x * jnp.log(p[0]) - p[0] - gammaln(x + 1),
        "bernoulli": lambda p, x: x * p[0] - jax.nn.softplus(p[0]),
        "categorical": lambda p, x: jax.nn.log_softmax(p)[x.astype(jnp.int32)],
    }.get(name.split("-")[0])


@pytest.mark.parametrize("name", sorted(CASES))
def test_derivatives_zero_outside_unchanged_inside(name):
    """Derivatives in the parameters: 0 outside the support (a single where leaked 0·∞ = NaN
    through the VJP), the textbook density's at interior points, also second order."""
    case = CASES[name]
    with jax.enable_x64(True):
        p = jnp.asarray(case["params"], jnp.float64)
        d_lp = lambda p, x: case["make"](p).log_prob(x)
        grad, hessian = jax.jit(jax.grad(d_lp)), jax.jit(jax.hessian(d_lp))  # one compile per test
        for x in _points(case, "outside"):
            g = grad(p, jnp.float64(x))
            assert np.all(_f64(g) == 0.0), f"{name}: gradient at {x} outside the support = {g}"
            h = hessian(p, jnp.float64(x))
            assert np.all(_f64(h) == 0.0), f"{name}: Hessian at {x} outside the support"
        textbook = _textbook(name)
        if textbook is None:
            return
        t_grad, t_hessian = jax.jit(jax.grad(textbook)), jax.jit(jax.hessian(textbook))
        for x in _points(case, "inside"):
            x = jnp.float64(x)
            np.testing.assert_allclose(grad(p, x), t_grad(p, x), rtol=1e-10, atol=1e-12)
            if name != "laplace":  # its loc-Hessian is a point mass (log_prob_smoothness)
                np.testing.assert_allclose(hessian(p, x), t_hessian(p, x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["normal", "gamma", "beta", "poisson", "bernoulli"])
def test_gradient_of_a_batch_with_outside_points_is_finite(name):
    """A batch mixing points inside and outside: the sum is −inf and its gradient is that of the
    inside points (the outside ones contribute 0, not NaN)."""
    case = CASES[name]
    p = jnp.asarray(case["params"], jnp.float32)
    inside = jnp.asarray(case["inside"], jnp.float32)
    mixed = jnp.concatenate([inside, jnp.asarray(case["outside"], jnp.float32)])
    total = lambda p, x: jnp.sum(case["make"](p).log_prob(x))
    assert np.isneginf(total(p, mixed))
    g_in, g_mixed = jax.grad(total)(p, inside), jax.grad(total)(p, mixed)
    assert np.all(np.isfinite(g_mixed))
    np.testing.assert_allclose(g_mixed, g_in, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_prob_of_draws_is_log_prob_at_draws(name):
    """The unmasked form score-function estimators may evaluate at a family's own draws
    (``_log_prob_of_draws``) equals log_prob there, values and gradients."""
    case = CASES[name]
    p = jnp.asarray(case["params"], jnp.float32)
    x = jax.lax.stop_gradient(case["make"](p).sample(jax.random.key(1), (64,)))
    for fn in (lambda p: case["make"](p).log_prob(x), lambda p: case["make"](p)._log_prob_of_draws(x)):
        assert np.all(np.isfinite(_f64(fn(p))))
    np.testing.assert_array_equal(case["make"](p)._log_prob_of_draws(x), case["make"](p).log_prob(x))
    g = [jax.grad(lambda p, fn=fn: jnp.sum(getattr(case["make"](p), fn)(x)))(p) for fn in ("log_prob", "_log_prob_of_draws")]
    np.testing.assert_allclose(g[0], g[1], rtol=1e-6)


# ------------------------------------------------------------------ multivariate families


def test_multivariate_normals_at_infinite_coordinates():
    """−inf where any coordinate is ±inf (MultivariateNormalTri's triangular solve gave NaN for
    [inf, inf]), zero gradients there, scipy's values elsewhere."""
    loc, scale = jnp.array([0.3, -0.2]), jnp.array([0.8, 1.5])
    tri = jnp.array([[0.8, 0.0], [0.5, 1.5]])
    x = jnp.array([[INF, INF], [0.2, -INF], [-INF, 0.0], [0.1, 0.2]])
    makers = {
        "diag": (lambda p: rg.MultivariateNormalDiag(p[0], p[1]), (loc, scale), np.diag(_f64(scale) ** 2)),
        "tri": (lambda p: rg.MultivariateNormalTri(p[0], p[1]), (loc, tri), _f64(tri) @ _f64(tri).T),
    }
    for name, (make, p, cov) in makers.items():
        lp = _f64(make(p).log_prob(x))
        assert np.all(np.isneginf(lp[:3])), name
        np.testing.assert_allclose(lp[3], st.multivariate_normal(_f64(loc), cov).logpdf(_f64(x[3])), rtol=1e-5)
        for row in range(3):
            g = jax.grad(lambda p, row=row: make(p).log_prob(x[row]))(p)
            assert all(np.all(_f64(leaf) == 0.0) for leaf in jax.tree_util.tree_leaves(g)), name


def test_dirichlet_support_and_simplex_tolerance():
    """Dirichlet(ones(3)) was finite at a negative coordinate and off the simplex. Off it means
    |Σx − 1| > (2K + 2)·ε (K = 3: 8ε); a vector normalized in float32 is on it."""
    alpha = jnp.array([1.0, 1.0, 1.0])
    d = rg.Dirichlet(alpha)
    eps = float(jnp.finfo(jnp.float32).eps)
    expected = st.dirichlet(_f64(alpha)).logpdf([0.2, 0.3, 0.5])
    x = jnp.array([[-0.1, 0.6, 0.5], [0.2, 0.3, 0.51], [0.2, 0.3, 0.5 + 20 * eps], [0.2, 0.3, 0.5 + 4 * eps], [0.2, 0.3, 0.5]])
    lp = _f64(d.log_prob(x))
    assert np.all(np.isneginf(lp[:3])) and np.allclose(lp[3:], expected, rtol=1e-5)
    # Normalized in float32 (K = 7 coordinates, rounding in the sum and the division): on the simplex.
    raw = jax.random.uniform(jax.random.key(0), (1000, 7))
    assert np.all(np.isfinite(_f64(rg.Dirichlet(jnp.ones(7)).log_prob(raw / jnp.sum(raw, -1, keepdims=True)))))
    # Its own float32 draws, and its edges as Beta: a zero coordinate is finite, +inf or −inf as
    # its concentration is 1, below or above it.
    draws = rg.Dirichlet(jnp.array([0.05, 2.0, 30.0])).sample(jax.random.key(1), (4000,))
    assert np.all(np.isfinite(_f64(rg.Dirichlet(jnp.array([0.05, 2.0, 30.0])).log_prob(draws))))
    edge = jnp.array([0.0, 0.5, 0.5])
    assert np.isfinite(_f64(d.log_prob(edge)))
    assert np.isposinf(_f64(rg.Dirichlet(jnp.array([0.5, 1.0, 1.0])).log_prob(edge)))
    assert np.isneginf(_f64(rg.Dirichlet(jnp.array([2.0, 1.0, 1.0])).log_prob(edge)))
    # Zero gradient off the simplex, NaN in → NaN out.
    g = jax.grad(lambda a: rg.Dirichlet(a).log_prob(x[0]))(alpha)
    assert np.all(_f64(g) == 0.0)
    assert np.isnan(_f64(d.log_prob(jnp.array([NAN, 0.5, 0.5]))))


# ------------------------------------------------------------------ float32 accuracy


def _poisson_grid():
    for rate in np.logspace(-3, 7, 41):
        rate = float(np.float32(rate))
        mode, sd = math.floor(rate), math.sqrt(rate)
        counts = np.concatenate([np.arange(0, 30), mode + np.round(np.linspace(-8, 8, 17) * sd), np.round(np.logspace(0, 7, 15))])
        yield rate, np.unique(np.clip(counts, 0, 2**24))


def test_poisson_float32_accurate_at_every_rate():
    """Poisson(1e6).log_prob(1e6) was 0.83 nats off in float32 (x log λ − log Γ(x + 1) cancels);
    Loader's form is within 8ε·max(1, |log p|) of scipy over rates 1e-3..1e7 (3.5ε measured)."""
    eps = float(jnp.finfo(jnp.float32).eps)
    grid = list(_poisson_grid())
    rates = np.concatenate([np.full(c.shape, r) for r, c in grid])
    counts = np.concatenate([c for _, c in grid])
    lp = _f64(rg.Poisson(jnp.asarray(rates, jnp.float32)).log_prob(jnp.asarray(counts, jnp.float32)))
    expected = st.poisson(rates).logpmf(counts)
    # scipy's own float64 error (it cancels the same terms): ε₆₄ times their size.
    scipy_err = 4 * np.finfo(np.float64).eps * (np.abs(counts * np.log(rates)) + rates + sp.gammaln(counts + 1))
    err = (np.abs(lp - expected) - scipy_err) / (eps * np.maximum(1.0, np.abs(expected)))
    assert err.max() < 8.0, err.max()
    lp = rg.Poisson(jnp.float32(1e6)).log_prob(jnp.float32(1e6))
    np.testing.assert_allclose(lp, st.poisson(1e6).logpmf(1e6), atol=8 * eps * 8.0)


def test_poisson_rate_derivatives_exact_at_every_order():
    """∂/∂λ log p = x/λ − 1 and its derivatives −x/λ², 2x/λ³ (score estimators differentiate
    log_prob to any order), in float32 at large counts too; also under jax.hessian (forward
    over reverse)."""
    lp = lambda rate, x: rg.Poisson(rate).log_prob(x)
    for rate, x in [(3.0, 0.0), (3.0, 5.0), (0.01, 2.0), (1e6, 1e6 + 7.0), (1e6, 0.0)]:
        rate, x = jnp.float32(rate), jnp.float32(x)
        r, c = float(rate), float(x)
        np.testing.assert_allclose(jax.grad(lp)(rate, x), (c - r) / r, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(jax.grad(jax.grad(lp))(rate, x), -c / r**2, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(jax.hessian(lp)(rate, x), -c / r**2, rtol=1e-6, atol=1e-7 / r)
        np.testing.assert_allclose(jax.grad(jax.grad(jax.grad(lp)))(rate, x), 2 * c / r**3, rtol=1e-5, atol=1e-12)
    # Integer counts are accepted.
    np.testing.assert_allclose(lp(jnp.float32(3.0), jnp.array([0, 2], jnp.int32)), st.poisson(3.0).logpmf([0, 2]), rtol=1e-6)


def test_gamma_float32_accurate_at_large_concentration():
    """a log b − log Γ(a) + (a − 1) log x − b x cancels at large a (0.04 nats off at a = b = 1e6
    in float32); Loader's form (a ≥ 16) is within 8ε·max(1, |log p|) plus the rounding of b·x
    (|x ∂ log p/∂x|·ε), both through log_prob and through the score estimators' exact-log draws."""
    eps = float(jnp.finfo(jnp.float32).eps)
    for a in (16.0, 1e2, 1e4, 1e6, 1e7):
        a32, b32 = np.float32(a), np.float32(a / 3.0)
        ref = st.gamma(float(a32), scale=1 / float(b32))
        x = np.float32(ref.ppf(np.linspace(1e-4, 1 - 1e-4, 13)))
        x64, a64, b64 = _f64(x), float(a32), float(b32)
        expected = ref.logpdf(x64)
        tol = 8 * eps * (np.maximum(1.0, np.abs(expected)) + np.abs(x64 * ((a64 - 1) / x64 - b64)))
        d = rg.Gamma(jnp.float32(a32), jnp.float32(b32))
        assert np.all(np.abs(_f64(d.log_prob(jnp.asarray(x))) - expected) < tol), a
    draws, lp = rg.Gamma(jnp.float32(1e6), jnp.float32(1e6))._scored_draw(jax.random.key(0), (1000,))
    expected = st.gamma(1e6, scale=1e-6).logpdf(_f64(draws))
    tol = 8 * eps * (np.maximum(1.0, np.abs(expected)) + np.abs(_f64(draws) * ((1e6 - 1) / _f64(draws) - 1e6)))
    assert np.all(np.abs(_f64(lp) - expected) < tol)


# ------------------------------------------------------------------ consequences


@pytest.mark.parametrize("prior", [rg.Gamma(1.0, 2.0), rg.Exponential(2.0)], ids=["gamma", "exponential"])
def test_elbo_with_a_prior_on_the_half_line_is_minus_inf(prior):
    """A Normal q puts mass on z < 0, where the prior is 0: the ELBO is −inf. With the Gamma(1, 2)
    prior it was a finite 1.12 (log_prob(-z) finite); as Exponential(2) it was right."""
    bound = rg.elbo(
        lambda z, x: -0.5 * (x - z) ** 2, lambda p: rg.Normal(p[0], p[1]), num_samples=64, prior=prior, kl="monte_carlo"
    )
    params, key = jnp.array([0.5, 1.0]), jax.random.key(0)
    assert np.isneginf(bound(params, key, jnp.float32(1.0)))
    value, grad = jax.value_and_grad(bound)(params, key, jnp.float32(1.0))
    assert np.isneginf(value) and np.all(np.isfinite(grad))


def test_log_prob_smoothness_declared():
    """Each family declares the derivative order to which its density is smooth in a parameter
    (absent: every order): Laplace is first order in loc (its kink at x = loc), Uniform order 0
    in both bounds (its support moves); every key names a parameter."""
    families = [
        rg.Normal, rg.MultivariateNormalDiag, rg.MultivariateNormalTri, rg.LogNormal, rg.Laplace, rg.Logistic,
        rg.Uniform, rg.Exponential, rg.Gamma, rg.Beta, rg.Dirichlet, rg.Bernoulli, rg.Categorical, rg.Poisson,
    ]  # fmt: skip
    assert rg.Distribution.log_prob_smoothness == {}
    for family in families:
        smooth = family.log_prob_smoothness
        assert set(smooth) <= set(family._params), family.__name__
        assert all(isinstance(k, int) and k >= 0 for k in smooth.values()), family.__name__
    assert dict(rg.Laplace.log_prob_smoothness) == {"loc": 1}
    assert dict(rg.Uniform.log_prob_smoothness) == {"low": 0, "high": 0}
    assert all(not f.log_prob_smoothness for f in families if f not in (rg.Laplace, rg.Uniform))
