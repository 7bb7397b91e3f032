"""The families of the estimator matrix: how to build each from a flat parameter vector θ, its
exact moments (``_matrix_exact``), and the facts the expectation rules read.

θ is one flat float vector (so Hessians are plain matrices); ``build(θ)`` returns the
distribution, in θ's dtype; ``moments(θ64)`` the float64 moments of ``_matrix_exact``. Every
f of the matrix is separable over the ``dim`` coordinates of a sample (Categorical: the index of
each batch element), plus a cross term x_0·x_1 where there are two coordinates.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import _matrix_exact as ex
import jax
import jax.numpy as jnp
import numpy as np

import repgrad as rg

SMOOTH_FS = ("smooth", "step", "heaviside", "partial", "int")
# Σ e^x + 5: a large offset, where a baseline or coefficient built from f_n itself shows (issue 16, #2)
NORMAL_FS = SMOOTH_FS + ("exp",)


class Family(NamedTuple):
    """One family of the matrix.

    Attributes:
      name: its id in test names.
      theta: the parameter vector θ at which everything is checked.
      build: θ -> distribution.
      moments: θ64 -> moments (``_matrix_exact``); None where only ``mean`` is known.
      dim: coordinates of one sample seen by f (Categorical: batch elements).
      thresholds: c_j of the step f's.
      kind: "continuous", "bernoulli", "categorical" or "count".
      lib: "repgrad", "numpyro", "distrax" or "tfp".
      fs: the f kinds it is run with.
      reparameterized, moving_support: as the family declares (or a peer's truth).
      kinked: θ indices in which the log-density is only once differentiable (Laplace's loc).
      measure_valued, delta, factorized: whether repgrad documents the measure-valued
        decomposition, the delta method (mean()/variance() in sample space) and the
        elementwise scores of the optimal baseline/coefficient for it.
      user_mean: d -> E[Σ_j x_j], the user control variate's expected value.
      categories: K for Categorical (f then gets an index, or a one-hot vector for relaxed
        estimators); masked: the category whose logit is −inf.
      marginal: θ64 -> (probs (dim, V), values (V,)) of each coordinate, for discrete families
        (K-sample bounds are checked by enumerating their joint support).
      orders: the operator classes it is run with (numpyro's TruncatedNormal: first order, its
        sampler's higher derivatives take minutes to compile).
      edge: θ indices at a support edge (Bernoulli probs 0 or 1): second derivatives there are
        documented as NaN, and only exact estimators can check first ones.
    """

    name: str
    theta: tuple
    build: Callable[[Any], Any]
    moments: Callable[[Any], dict] | None
    dim: int
    thresholds: tuple
    kind: str = "continuous"
    lib: str = "repgrad"
    fs: tuple = SMOOTH_FS
    reparameterized: bool = True
    moving_support: bool = False
    kinked: tuple = ()
    measure_valued: bool = False
    delta: bool = True
    factorized: bool = True
    user_mean: Callable[[Any], Any] = lambda d: jnp.sum(d.mean())
    categories: int = 0
    masked: int | None = None
    edge: tuple = ()
    marginal: Callable[[Any], tuple] | None = None
    orders: tuple = ("value", "first", "ww", "tw", "tt", "ttt")

    def c(self):
        return np.asarray(self.thresholds, np.float64)


@contextlib.contextmanager
def peer_context(family):
    """distrax, TFP and numpyro broadcast (N, d) against (d,) and mix dtypes internally, and TFP
    calls APIs jax 0.10 deprecates: as ``tests/test_interop.py`` does, relax the strict test
    configuration for peers' families only, and mute only TFP's own deprecation warnings."""
    if family.lib == "repgrad":
        yield
        return
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"tensorflow_probability\.")
        warnings.filterwarnings("ignore", message="Explicitly requested dtype float64", category=UserWarning)
        yield


def _halves(t):
    n = t.shape[0] // 2
    return t[:n], t[n:]


def _tril(t):
    """θ = (loc (3), the 6 lower-triangular entries row by row)."""
    rows, cols = np.tril_indices(3)
    return t[:3], jnp.zeros((3, 3), t.dtype).at[rows, cols].set(t[3:])


def _masked_logits(t):
    logits = jnp.reshape(t, (2, 2))
    return jnp.concatenate([logits, jnp.full((2, 1), -jnp.inf, t.dtype)], axis=1)


def _bernoulli_marginal(p):
    return jnp.stack([1.0 - p, p], axis=1), jnp.array([0.0, 1.0], p.dtype)


def _categorical_marginal(logits):
    probs = jax.nn.softmax(logits, axis=-1)
    return probs, jnp.arange(probs.shape[-1], dtype=probs.dtype)


def _categorical_mean(d, logits=False):
    probs = jax.nn.softmax(d.logits, axis=-1) if logits else d.probs
    k = jnp.arange(probs.shape[-1], dtype=probs.dtype)
    return jnp.sum(probs * jnp.reshape(k, (1,) * (probs.ndim - 1) + k.shape))


def _npd():
    import numpyro.distributions as npd

    return npd


def _tfd():
    from tensorflow_probability.substrates import jax as tfp

    return tfp.distributions


def _distrax():
    import distrax

    return distrax


C_NORMAL = (0.5, -0.2, 0.6)
NORMAL_THETA = (0.3, -0.5, 1.0, 0.7, 1.2, 0.9)
GAMMA_THETA = (2.5, 1.5, 4.0, 1.5, 0.8, 2.0)
C_GAMMA = (1.5, 1.8, 2.0)
BERNOULLI_THETA = (0.4, -0.8, 1.2)
C_HALF3 = (0.5, 0.5, 0.5)
CATEGORICAL_THETA = (0.2, -0.5, 0.9, 1.0, 0.3, -0.7)


def _families():
    t = _halves
    fams = [
        Family("normal", NORMAL_THETA, lambda th: rg.Normal(*t(th)), lambda th: ex.normal(*t(th), np.array(C_NORMAL)),
               3, C_NORMAL, fs=NORMAL_FS, measure_valued=True),
        Family("mvn_diag", NORMAL_THETA, lambda th: rg.MultivariateNormalDiag(*t(th)),
               lambda th: ex.normal(*t(th), np.array(C_NORMAL)), 3, C_NORMAL, measure_valued=True),
        Family("mvn_tri", (0.3, -0.5, 1.0, 0.8, 0.3, 1.1, -0.2, 0.4, 0.7), lambda th: rg.MultivariateNormalTri(*_tril(th)),
               lambda th: ex.mvn_tri(*_tril(th), np.array(C_NORMAL)), 3, C_NORMAL, delta=False, factorized=False),
        Family("lognormal", (0.1, -0.3, 0.2, 0.4, 0.3, 0.5), lambda th: rg.LogNormal(*t(th)),
               lambda th: ex.lognormal(*t(th), np.array((1.2, 0.7, 1.0))), 3, (1.2, 0.7, 1.0)),
        Family("laplace", (0.1, -0.5, 0.4, 0.8, 0.6, 1.0), lambda th: rg.Laplace(*t(th)),
               lambda th: ex.laplace(*t(th), np.array((0.5, -0.9, 0.2))), 3, (0.5, -0.9, 0.2), kinked=(0, 1, 2)),
        Family("logistic", (0.2, -0.4, 0.6, 0.5, 0.7, 0.4), lambda th: rg.Logistic(*t(th)),
               lambda th: ex.logistic(*t(th), np.array((0.4, -0.3, 0.5))), 3, (0.4, -0.3, 0.5)),
        Family("uniform", (-0.5, 0.2, 1.0, 0.5, 1.5, 1.6), lambda th: rg.Uniform(*t(th)),
               lambda th: ex.uniform(*t(th), np.array((0.1, 0.9, 1.2))), 3, (0.1, 0.9, 1.2), moving_support=True),
        Family("exponential", (0.8, 1.5, 2.5), lambda th: rg.Exponential(th),
               lambda th: ex.exponential(th, np.array((1.0, 0.4, 0.3))), 3, (1.0, 0.4, 0.3), measure_valued=True),
        Family("gamma", GAMMA_THETA, lambda th: rg.Gamma(*t(th)), lambda th: ex.gamma(*t(th), np.array(C_GAMMA)),
               3, C_GAMMA, measure_valued=True),
        Family("beta", (2.0, 3.5, 2.5, 3.0, 2.0, 4.5), lambda th: rg.Beta(*t(th)),
               lambda th: ex.beta(*t(th), np.array((0.4, 0.6, 0.35))), 3, (0.4, 0.6, 0.35)),
        Family("dirichlet", (2.0, 3.0, 2.5), lambda th: rg.Dirichlet(th),
               lambda th: ex.dirichlet(th, np.array((0.25, 0.4, 0.3))), 3, (0.25, 0.4, 0.3), delta=False),
        Family("bernoulli_logits", BERNOULLI_THETA, lambda th: rg.Bernoulli(logits=th),
               lambda th: ex.bernoulli(jax.nn.sigmoid(th), np.array(C_HALF3)), 3, C_HALF3, kind="bernoulli",
               reparameterized=False, measure_valued=True,
               marginal=lambda th: _bernoulli_marginal(jax.nn.sigmoid(th))),
        Family("bernoulli_probs", (0.3, 0.65, 0.1), lambda th: rg.Bernoulli(probs=th),
               lambda th: ex.bernoulli(th, np.array(C_HALF3)), 3, C_HALF3, kind="bernoulli",
               reparameterized=False, measure_valued=True, marginal=_bernoulli_marginal),
        Family("bernoulli_probs_edge", (0.0, 0.4, 1.0), lambda th: rg.Bernoulli(probs=th),
               lambda th: ex.bernoulli(th, np.array(C_HALF3)), 3, C_HALF3, kind="bernoulli",
               reparameterized=False, measure_valued=True, edge=(0, 2)),
        Family("categorical", CATEGORICAL_THETA, lambda th: rg.Categorical(logits=jnp.reshape(th, (2, 3))),
               lambda th: ex.categorical(jax.nn.softmax(jnp.reshape(th, (2, 3)), -1), np.array((0.5, 0.5))),
               2, (0.5, 0.5), kind="categorical", reparameterized=False, measure_valued=True, delta=False,
               user_mean=_categorical_mean, categories=3,
               marginal=lambda th: _categorical_marginal(jnp.reshape(th, (2, 3)))),
        Family("categorical_masked", (0.2, -0.5, 1.0, 0.3), lambda th: rg.Categorical(logits=_masked_logits(th)),
               lambda th: ex.categorical(jax.nn.softmax(_masked_logits(th), -1), np.array((0.5, 0.5))),
               2, (0.5, 0.5), kind="categorical", fs=SMOOTH_FS + ("masked",), reparameterized=False,
               measure_valued=True, delta=False, user_mean=_categorical_mean, categories=3, masked=2,
               marginal=lambda th: _categorical_marginal(_masked_logits(th))),
        Family("poisson", (1.5, 3.0, 0.7), lambda th: rg.Poisson(th),
               lambda th: ex.poisson(th, np.array((1.5, 2.5, 0.5))), 3, (1.5, 2.5, 0.5), kind="count",
               reparameterized=False, measure_valued=True),
        # one family of each peer library
        Family("numpyro_normal", NORMAL_THETA, lambda th: _npd().Normal(*t(th)),
               lambda th: ex.normal(*t(th), np.array(C_NORMAL)), 3, C_NORMAL, lib="numpyro", delta=False,
               factorized=False, user_mean=lambda d: jnp.sum(d.mean)),
        Family("distrax_bernoulli", BERNOULLI_THETA, lambda th: _distrax().Bernoulli(logits=th),
               lambda th: ex.bernoulli(jax.nn.sigmoid(th), np.array(C_HALF3)), 3, C_HALF3, kind="bernoulli",
               lib="distrax", reparameterized=False, delta=False, factorized=False, user_mean=lambda d: jnp.sum(d.probs),
               marginal=lambda th: _bernoulli_marginal(jax.nn.sigmoid(th))),
        Family("tfp_gamma", GAMMA_THETA, lambda th: _tfd().Gamma(*t(th)), lambda th: ex.gamma(*t(th), np.array(C_GAMMA)),
               3, C_GAMMA, lib="tfp", delta=False, factorized=False),
        # peers whose support moves with a parameter: score-function estimators must refuse them
        Family("numpyro_pareto", (1.2,), lambda th: _npd().Pareto(th, 3.0), lambda th: {"mean": 1.5 * th},
               1, (1.5,), lib="numpyro", fs=("linear",), moving_support=True, delta=False, factorized=False,
               user_mean=lambda d: jnp.sum(d.mean)),
        Family("numpyro_truncnormal", (0.1,), lambda th: _npd().TruncatedNormal(0.2, 1.0, low=th),
               lambda th: {"mean": _truncnormal_mean(0.2, 1.0, th)}, 1, (0.5,), lib="numpyro", fs=("linear",),
               moving_support=True, delta=False, factorized=False, user_mean=lambda d: jnp.sum(d.mean),
               orders=("value", "first", "ww")),
        Family("tfp_pareto", (1.2,), lambda th: _tfd().Pareto(3.0, th), lambda th: {"mean": 1.5 * th},
               1, (1.5,), lib="tfp", fs=("linear",), moving_support=True, delta=False, factorized=False),
    ]
    return {f.name: f for f in fams}


def _truncnormal_mean(loc, scale, low):
    from jax.scipy import special, stats

    a = (low - loc) / scale
    return loc + scale * stats.norm.pdf(a) / special.ndtr(-a)


FAMILIES = _families()
