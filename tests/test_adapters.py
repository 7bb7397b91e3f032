"""Third-party distribution protocols: numpyro (real), distrax and TFP (faithful stand-ins,
since neither imports under this jax), and that repgrad itself imports none of them.

Statistical checks are |mean − exact| < 5 SE over R replicates (tests/_stats.py):
chance failure ≈ 5.7e-7 per scalar; keys are fixed.
"""

import contextlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

import repgrad as rg

R = 300
N = 16
MU, SIGMA = np.array([0.5, -1.0]), np.array([0.8, 1.2])
PARAMS = {"loc": jnp.asarray(MU, jnp.float32), "scale": jnp.asarray(SIGMA, jnp.float32)}
SQUARE = lambda x: jnp.sum(x * x)  # E = Σ μ² + σ²  ⇒  ∂μ = 2μ, ∂σ = 2σ
EXACT_SQUARE = {"loc": 2 * MU, "scale": 2 * SIGMA}
LOGITS = np.array([-0.4, 0.9])
BERN_F = lambda b: jnp.sum(b * jnp.array([1.5, -2.0], b.dtype))  # E = Σ c σ(l) ⇒ ∂l = c σ(l)(1 − σ(l))
EXACT_BERN = np.array([1.5, -2.0]) / (np.exp(LOGITS / 2) + np.exp(-LOGITS / 2)) ** 2


@contextlib.contextmanager
def lenient_promotion():
    # numpyro's internals use implicit dtype/rank promotion, which tests/conftest.py forbids.
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


# ------------------------------------------------------------------------------- numpyro


def test_numpyro_normal_pathwise_and_score():
    nd = pytest.importorskip("numpyro.distributions")
    dist = lambda p: nd.Normal(p["loc"], p["scale"])
    with lenient_promotion():
        for name, transform in [
            ("pathwise", rg.pathwise_grad(SQUARE, dist, num_samples=N)),
            ("score", rg.score_grad(SQUARE, dist, num_samples=N, baseline="loo")),
        ]:
            g = replicate(lambda k, t=transform: t(PARAMS, k), jax.random.key(51), R)
            assert_unbiased(g, EXACT_SQUARE, name=f"numpyro Normal {name}")


def test_numpyro_bernoulli_pathwise_raises_score_works():
    nd = pytest.importorskip("numpyro.distributions")
    dist = lambda lg: nd.Bernoulli(logits=lg)
    logits = jnp.asarray(LOGITS, jnp.float32)
    f = lambda b: BERN_F(b.astype(jnp.float32))
    with lenient_promotion():
        with pytest.raises(TypeError, match="score_grad"):
            rg.pathwise_grad(f, dist, num_samples=N)(logits, jax.random.key(0))
        fn = rg.score_grad(f, dist, num_samples=N, baseline="loo")
        g = replicate(lambda k: fn(logits, k), jax.random.key(52), R)
    assert_unbiased(g, EXACT_BERN, name="numpyro Bernoulli score")


# ----------------------------------------------------- distrax / TFP protocol stand-ins


class _ReparameterizationType:
    """Like tfp.distributions.ReparameterizationType: str is 'FULLY_REPARAMETERIZED' etc."""

    def __init__(self, rep_type):
        self._rep_type = rep_type

    def __repr__(self):
        return f"<Reparameteriation Type: {self._rep_type}>"

    def __str__(self):
        return self._rep_type


FULLY_REPARAMETERIZED = _ReparameterizationType("FULLY_REPARAMETERIZED")
NOT_REPARAMETERIZED = _ReparameterizationType("NOT_REPARAMETERIZED")


class DistraxLikeNormal:
    """distrax protocol: keyword-only ``sample(*, seed, sample_shape)``, ``log_prob``."""

    def __init__(self, loc, scale):
        self.loc, self.scale = loc, scale

    def sample(self, *, seed, sample_shape=()):
        shape = tuple(sample_shape) + jnp.shape(self.loc)
        loc, scale = jnp.broadcast_to(self.loc, shape), jnp.broadcast_to(self.scale, shape)
        return loc + scale * jax.random.normal(seed, shape)

    def log_prob(self, value):
        value, loc, scale = jnp.broadcast_arrays(value, self.loc, self.scale)
        z = (value - loc) / scale
        return -0.5 * z * z - jnp.log(scale) - 0.5 * np.log(2 * np.pi)


class DistraxLikeBernoulli:
    """distrax's Bernoulli samples int32 and says nothing about reparameterization."""

    def __init__(self, logits):
        self.logits = logits

    def sample(self, *, seed, sample_shape=()):
        shape = tuple(sample_shape) + jnp.shape(self.logits)
        probs = jnp.broadcast_to(jax.nn.sigmoid(self.logits), shape)
        return (jax.random.uniform(seed, shape) < probs).astype(jnp.int32)

    def log_prob(self, value):
        v, logits = jnp.broadcast_arrays(value.astype(self.logits.dtype), self.logits)
        return v * jax.nn.log_sigmoid(logits) + (1.0 - v) * jax.nn.log_sigmoid(-logits)


class TFPLikeNormal(DistraxLikeNormal):
    """TFP protocol: ``sample(sample_shape=(), seed=None)`` and ``reparameterization_type``."""

    reparameterization_type = FULLY_REPARAMETERIZED

    def sample(self, sample_shape=(), seed=None, name="sample"):
        return super().sample(seed=seed, sample_shape=sample_shape)


class TFPLikeBernoulliFloat(DistraxLikeBernoulli):
    """Float samples, but TFP says NOT_REPARAMETERIZED: pathwise must refuse."""

    reparameterization_type = NOT_REPARAMETERIZED

    def sample(self, sample_shape=(), seed=None, name="sample"):
        return super().sample(seed=seed, sample_shape=sample_shape).astype(self.logits.dtype)


@pytest.mark.parametrize("cls", [DistraxLikeNormal, TFPLikeNormal], ids=["distrax", "tfp"])
def test_protocol_normal_pathwise_and_score(cls):
    dist = lambda p: cls(p["loc"], p["scale"])
    for name, transform in [
        ("pathwise", rg.pathwise_grad(SQUARE, dist, num_samples=N)),
        ("score", rg.score_grad(SQUARE, dist, num_samples=N, baseline="loo")),
    ]:
        g = replicate(lambda k, t=transform: t(PARAMS, k), jax.random.key(53), R)
        assert_unbiased(g, EXACT_SQUARE, name=f"{cls.__name__} {name}")
    # And through expectation.
    loss = rg.expectation(SQUARE, dist, estimator="pathwise", num_samples=N)
    assert jax.grad(loss)(PARAMS, jax.random.key(0))["loc"].shape == (2,)


@pytest.mark.parametrize("cls", [DistraxLikeBernoulli, TFPLikeBernoulliFloat], ids=["distrax", "tfp"])
def test_protocol_bernoulli_pathwise_raises_score_works(cls):
    dist = lambda lg: cls(lg)
    f = lambda b: BERN_F(b.astype(jnp.float32))
    logits = jnp.asarray(LOGITS, jnp.float32)
    with pytest.raises(TypeError, match="score_grad"):
        rg.pathwise_grad(f, dist, num_samples=N)(logits, jax.random.key(0))
    fn = rg.score_grad(f, dist, num_samples=N, baseline="loo")
    g = replicate(lambda k: fn(logits, k), jax.random.key(54), R)
    assert_unbiased(g, EXACT_BERN, name=f"{cls.__name__} score")


def test_core_does_not_import_peer_libraries():
    code = textwrap.dedent(
        """
        import sys
        import repgrad
        peers = ("distrax", "tensorflow_probability", "tensorflow", "numpyro", "torch", "pyro")
        print(",".join(m for m in peers if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing repgrad imported {out.stdout.strip()}"
