"""The matrix's ``log_prob`` axis: every family against scipy, inside, on the edge of and outside
its support (issue 16, defect 13).

- inside: float64 equal to scipy (1e-9 relative), float32 within 2e-5·(1 + |log p|) — the
  rounding of a stable form (a form that cancels terms of size x log λ, as Poisson(1e6) at
  1e6 does, is not);
- on the edge: scipy's value (infinities included) or −inf (an open support), never NaN;
- outside: exactly −inf, never NaN or a finite number.

Documented exceptions: Bernoulli(probs=0 or 1) has finite logits (log-density −22 for the
impossible outcome in float32; see the Bernoulli docstring).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import repgrad as rg

F32_RTOL = 2e-5


def _tri():
    return np.array([[0.8, 0.0, 0.0], [0.3, 1.1, 0.0], [-0.2, 0.4, 0.7]])


# name: (build(dtype), scipy logpdf(x), inside, edge, outside); points are one sample each
CASES = {
    "normal": (lambda dt: rg.Normal(jnp.asarray(0.3, dt), jnp.asarray(1.2, dt)), stats.norm(0.3, 1.2).logpdf,
               [-3.0, 0.0, 0.3, 2.5, 9.0], [], []),
    "mvn_diag": (lambda dt: rg.MultivariateNormalDiag(jnp.array([0.3, -0.5], dt), jnp.array([0.7, 1.2], dt)),
                 lambda x: np.sum(stats.norm([0.3, -0.5], [0.7, 1.2]).logpdf(x), -1),
                 [[0.0, 0.0], [1.5, -2.0], [-3.0, 4.0]], [], []),
    "mvn_tri": (lambda dt: rg.MultivariateNormalTri(jnp.array([0.3, -0.5, 1.0], dt), jnp.asarray(_tri(), dt)),
                stats.multivariate_normal([0.3, -0.5, 1.0], _tri() @ _tri().T).logpdf,
                [[0.0, 0.0, 0.0], [1.0, -2.0, 3.0]], [], []),
    "lognormal": (lambda dt: rg.LogNormal(jnp.asarray(0.1, dt), jnp.asarray(0.4, dt)),
                  stats.lognorm(0.4, scale=np.exp(0.1)).logpdf, [0.05, 0.9, 1.1, 4.0], [0.0], [-1.0, -1e-3]),
    "laplace": (lambda dt: rg.Laplace(jnp.asarray(0.1, dt), jnp.asarray(0.8, dt)), stats.laplace(0.1, 0.8).logpdf,
                [-4.0, 0.1, 0.5, 6.0], [], []),
    "logistic": (lambda dt: rg.Logistic(jnp.asarray(0.2, dt), jnp.asarray(0.5, dt)), stats.logistic(0.2, 0.5).logpdf,
                 [-8.0, 0.2, 1.0, 12.0], [], []),
    "uniform": (lambda dt: rg.Uniform(jnp.asarray(-0.5, dt), jnp.asarray(1.5, dt)), stats.uniform(-0.5, 2.0).logpdf,
                [-0.4, 0.0, 1.4], [-0.5, 1.5], [-0.6, 1.6, 10.0]),
    "exponential": (lambda dt: rg.Exponential(jnp.asarray(2.0, dt)), stats.expon(scale=0.5).logpdf,
                    [1e-3, 0.5, 7.0], [0.0], [-1.0, -1e-4]),
    "gamma": (lambda dt: rg.Gamma(jnp.asarray(2.5, dt), jnp.asarray(1.5, dt)), stats.gamma(2.5, scale=1 / 1.5).logpdf,
              [1e-3, 0.7, 5.0], [0.0], [-1.0, -1e-4]),
    "gamma_alpha1": (lambda dt: rg.Gamma(jnp.asarray(1.0, dt), jnp.asarray(2.0, dt)), stats.gamma(1.0, scale=0.5).logpdf,
                     [1e-3, 0.7], [0.0], [-1.0, -0.5]),
    "gamma_small": (lambda dt: rg.Gamma(jnp.asarray(0.5, dt), jnp.asarray(2.0, dt)), stats.gamma(0.5, scale=0.5).logpdf,
                    [1e-3, 0.7], [0.0], [-1.0]),
    "beta": (lambda dt: rg.Beta(jnp.asarray(2.0, dt), jnp.asarray(3.5, dt)), stats.beta(2.0, 3.5).logpdf,
             [1e-3, 0.3, 0.999], [0.0, 1.0], [-0.5, 1.5]),
    "beta_alpha1": (lambda dt: rg.Beta(jnp.asarray(1.0, dt), jnp.asarray(3.0, dt)), stats.beta(1.0, 3.0).logpdf,
                    [0.2, 0.9], [0.0, 1.0], [-0.5, 1.5]),
    "dirichlet": (lambda dt: rg.Dirichlet(jnp.array([2.0, 3.0, 2.5], dt)), stats.dirichlet([2.0, 3.0, 2.5]).logpdf,
                  [[0.2, 0.3, 0.5], [0.05, 0.9, 0.05]], [[0.0, 0.5, 0.5]], [[-0.1, 0.6, 0.5], [0.3, 0.3, 0.3], [0.5, 0.6, 0.7]]),
    "dirichlet_ones": (lambda dt: rg.Dirichlet(jnp.ones(3, dt)), stats.dirichlet([1.0, 1.0, 1.0]).logpdf,
                       [[0.2, 0.3, 0.5]], [[0.0, 0.5, 0.5]], [[-0.1, 0.6, 0.5], [0.3, 0.3, 0.3], [0.5, 0.6, 0.7]]),
    "bernoulli_logits": (lambda dt: rg.Bernoulli(logits=jnp.asarray(0.4, dt)), stats.bernoulli(1 / (1 + np.exp(-0.4))).logpmf,
                         [0.0, 1.0], [], [0.5, 2.0, -1.0]),
    "bernoulli_probs": (lambda dt: rg.Bernoulli(probs=jnp.asarray(0.3, dt)), stats.bernoulli(0.3).logpmf,
                        [0.0, 1.0], [], [0.5, 2.0, -1.0]),
    "categorical": (lambda dt: rg.Categorical(logits=jnp.array([0.2, -0.5, 0.9], dt)),
                    lambda k: np.log(np.exp([0.2, -0.5, 0.9]) / np.exp([0.2, -0.5, 0.9]).sum())[int(k)],
                    [0, 1, 2], [], [-1, 3]),
    "categorical_masked": (lambda dt: rg.Categorical(logits=jnp.array([0.2, -jnp.inf, 0.9], dt)),
                           lambda k: np.log(np.array([np.exp(0.2), 0.0, np.exp(0.9)]) / (np.exp(0.2) + np.exp(0.9)))[int(k)],
                           [0, 2], [1], [-1, 3]),
    "poisson": (lambda dt: rg.Poisson(jnp.asarray(3.0, dt)), stats.poisson(3.0).logpmf, [0.0, 2.0, 11.0], [], [2.5, -1.0, 0.5]),
    "poisson_large": (lambda dt: rg.Poisson(jnp.asarray(1e6, dt)), stats.poisson(1e6).logpmf, [1e6, 999000.0], [], [1e6 + 0.5]),
}


def _log_prob(name, x, dtype):
    d = CASES[name][0](dtype)
    xdt = jnp.int32 if name.startswith("categorical") else dtype
    return float(d.log_prob(jnp.asarray(x, xdt)))


def _scipy(name, x):
    with np.errstate(divide="ignore"):
        try:
            return float(CASES[name][1](np.asarray(x, np.float64)))
        except ValueError:  # scipy's Dirichlet refuses a zero coordinate: density 0 there (α > 1)
            return -np.inf


@pytest.mark.parametrize("name", CASES)
def test_inside_support_matches_scipy(name):
    bad = []
    for x in CASES[name][2]:
        want = _scipy(name, x)
        with jax.enable_x64(True):
            got64 = _log_prob(name, x, jnp.float64)
        if not abs(got64 - want) <= 1e-9 * (1.0 + abs(want)):
            bad.append(f"float64 at {x}: {got64} vs scipy {want}")
        got32 = _log_prob(name, x, jnp.float32)
        if not abs(got32 - want) <= F32_RTOL * (1.0 + abs(want)):
            bad.append(f"float32 at {x}: {got32} vs scipy {want} (off by {got32 - want:.3g})")
    assert not bad, f"{name}: " + "; ".join(bad)


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n][3]])
def test_edge_of_support_is_scipys_or_minus_inf(name):
    bad = []
    for x in CASES[name][3]:
        want = _scipy(name, x)
        for dtype in (jnp.float32, jnp.float64):
            with jax.enable_x64(dtype == jnp.float64):
                got = _log_prob(name, x, dtype)
            ok = got == -np.inf or got == want or (np.isfinite(want) and abs(got - want) <= F32_RTOL * (1 + abs(want)))
            if not ok:
                bad.append(f"at {x} ({np.dtype(dtype).name}): {got}, scipy {want}")
    assert not bad, f"{name} on the edge of its support: " + "; ".join(bad)


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n][4]])
def test_outside_support_is_minus_inf(name):
    bad = []
    for x in CASES[name][4]:
        for dtype in (jnp.float32, jnp.float64):
            with jax.enable_x64(dtype == jnp.float64):
                got = _log_prob(name, x, dtype)
            if got != -np.inf:
                bad.append(f"log_prob({x}) = {got} ({np.dtype(dtype).name})")
    assert not bad, f"{name} outside its support (must be -inf): " + "; ".join(bad)
