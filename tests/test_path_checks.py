"""The pathwise checks read f from its jaxpr: a piecewise-constant f, or one with a jump, is
refused whatever else is differentiated with the parameters (issue 16, case 6); continuous f
with kinks are not; derivatives in f's own arguments alone are exact for any f."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate
from jax.scipy.stats import norm

import repgrad as rg
from repgrad._src.core import dependence

KEY = jax.random.key(0)
MU = jnp.array([0.3, -0.2])
W = jnp.float32(1.5)
NORMAL = lambda p: rg.Normal(p, 1.0)

STEP = lambda x, w: w * jnp.sum((x > 0).astype(jnp.float32))
HEAVISIDE = lambda x, w: w * jnp.sum(jnp.heaviside(x, 0.5))
PARTLY = lambda x, w: x[0] ** 2 + w * (x[1] > 0).astype(jnp.float32)  # smooth in x[0], a step in x[1]: a jump
# a sawtooth: slope 1 between jumps, so pathwise said 1.0 (SE 0) where d/dμ E[x mod 1] ≈ 0
MOD = lambda x, w: w * jnp.sum(jnp.mod(x, 1.0))


@pytest.mark.parametrize("f", [STEP, HEAVISIDE, PARTLY, MOD], ids=["step", "heaviside", "partly-piecewise", "mod"])
@pytest.mark.parametrize(
    "run",
    [
        lambda loss: jax.grad(loss)(MU, KEY, W),
        lambda loss: jax.grad(loss, argnums=(0, 2))(MU, KEY, W),  # the README's own pattern
        lambda loss: jax.value_and_grad(loss, argnums=(0, 2))(MU, KEY, W),
        lambda loss: jax.jacrev(loss, argnums=(0, 2))(MU, KEY, W),
        lambda loss: jax.jvp(lambda m, w: loss(m, KEY, w), (MU, W), (jnp.ones(2), jnp.float32(1.0))),
        lambda loss: jax.jit(jax.grad(loss, argnums=(0, 2)))(MU, KEY, W),
    ],
    ids=["grad", "grad-argnums-0-2", "value_and_grad-0-2", "jacrev-0-2", "jvp-joint", "jit"],
)
def test_pathwise_refuses_piecewise_and_jumps(f, run):
    loss = rg.expectation(f, NORMAL, "pathwise", num_samples=8)
    with pytest.raises(rg.ZeroGradientError, match="score_grad"):
        run(loss)


@pytest.mark.parametrize("f", [STEP, PARTLY], ids=["step", "partly-piecewise"])
def test_pathwise_transforms_and_control_variate_refuse(f):
    with pytest.raises(rg.ZeroGradientError):
        rg.pathwise_grad(f, NORMAL, num_samples=8)(MU, KEY, W)
    with pytest.raises(rg.ZeroGradientError):  # f − c·h moves with x through h: f itself is read
        rg.pathwise_grad(f, NORMAL, num_samples=8, control_variate="delta")(MU, KEY, W)
    cv = rg.control_variate(lambda x, w: jnp.sum(x), lambda d, w: jnp.sum(d.mean()))
    with pytest.raises(rg.ZeroGradientError):
        rg.grad(f, NORMAL, rg.pathwise(control_variate=cv), num_samples=8)(MU, KEY, W)


def test_derivatives_in_f_arguments_alone_are_exact_for_any_f():
    # d/dw E[w Σ 1(x > 0)] = Σ Φ(μ): the pathwise estimator's derivative in w is its plain average.
    loss = rg.expectation(STEP, NORMAL, "pathwise", num_samples=64)
    g = replicate(lambda k: jax.grad(loss, argnums=2)(MU, k, W), KEY, 200)
    assert_unbiased(g, float(np.sum(norm.cdf(np.asarray(MU)))))


CONTINUOUS = {
    "relu": lambda x: jnp.sum(jax.nn.relu(x)),
    "mask-relu": lambda x: jnp.sum(x * (x > 0).astype(x.dtype)),
    "where-relu": lambda x: jnp.sum(jnp.where(x > 0, x, 0.0)),
    "abs": lambda x: jnp.sum(jnp.abs(x)),
    "isnan-guard": lambda x: jnp.sum(jnp.where(jnp.isnan(x), 0.0, x ** 2)),
    "zero-guard": lambda x: jnp.sum(jnp.log(jnp.abs(x) + (x == 0).astype(x.dtype))),
    "straight-through": lambda x: jnp.sum(x + jax.lax.stop_gradient(jnp.round(x) - x)),
    "max": lambda x: jnp.max(x),
    "sort": lambda x: jnp.sort(x)[0],
    "clip": lambda x: jnp.sum(jnp.clip(x, -0.5, 0.5)),
    "argmax-pick": lambda x: x[jnp.argmax(x)],
    "cond": lambda x: jax.lax.cond(x[0] > 0, lambda: x[0], lambda: -x[0]),
    "scan": lambda x: jax.lax.scan(lambda c, xi: (c + jnp.sin(xi), None), 0.0, x)[0],
    "checkpoint": lambda x: jnp.sum(jax.checkpoint(jnp.sin)(x)),
    # numpyro's Bernoulli(logits).log_prob: the non-finite branch holds a comparison
    "isfinite-guard": lambda x: jnp.sum(jnp.where(jnp.isfinite(x), x ** 2, jnp.inf * (x > 0).astype(x.dtype))),
}


@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_no_false_alarm_on_continuous_f(name):
    f = CONTINUOUS[name]
    g = rg.pathwise_grad(f, NORMAL, num_samples=4)(MU, KEY)
    assert np.all(np.isfinite(np.asarray(g)))
    state = dependence.in_samples(lambda x, key: f(x), jnp.zeros((4, 2)), ())  # f as Problem.f calls it
    assert state == dependence.SMOOTH, dependence.NAMES[state]


def test_relu_pathwise_unbiased():
    # E[relu(x)] = μΦ(μ) + φ(μ) for σ = 1: d/dμ = Φ(μ).
    g = replicate(lambda k: rg.pathwise_grad(CONTINUOUS["relu"], NORMAL, num_samples=16)(MU, k), KEY, 300)
    assert_unbiased(g, norm.cdf(np.asarray(MU)))


def test_constant_f_and_allow_zero_gradient():
    with pytest.raises(rg.ZeroGradientError, match="allow_zero_gradient"):
        rg.pathwise_grad(lambda x: jnp.float32(1.0), NORMAL, num_samples=4)(MU, KEY)
    g = rg.grad(lambda x: jnp.float32(1.0), NORMAL, rg.pathwise(allow_zero_gradient=True), num_samples=4)(MU, KEY)
    np.testing.assert_array_equal(g, 0.0)


def test_gumbel_softmax_refuses_thresholding_f():
    f = lambda y: jnp.sum((y > 0.5).astype(jnp.float32))
    loss = rg.expectation(f, lambda p: rg.Bernoulli(logits=p), rg.gumbel_softmax(), num_samples=8)
    with pytest.raises(rg.ZeroGradientError, match="disarm"):
        jax.grad(loss)(MU, KEY)


def _node_model(cost):
    def model(theta, key):
        z = rg.sample(key, rg.Normal(theta, 1.0))
        return cost(z)

    return model


@pytest.mark.parametrize(
    "cost",
    [lambda z: (z > 0).astype(jnp.float32), lambda z: z ** 2 + (z > 0).astype(z.dtype), lambda z: jnp.floor(z)],
    ids=["step", "jump", "floor"],
)
def test_stochastic_pathwise_nodes_are_checked(cost):
    objective = rg.stochastic(_node_model(cost), num_samples=4)
    with pytest.raises(rg.ZeroGradientError, match="estimator='score'"):
        jax.grad(objective)(jnp.float32(0.2), KEY)
    objective(jnp.float32(0.2), KEY)  # the value alone is fine


def test_stochastic_pathwise_nodes_continuous_and_nested_are_fine():
    def nested(theta, key):
        k1, k2 = jax.random.split(key)
        z1 = rg.sample(k1, rg.Normal(theta, 1.0))
        z2 = rg.sample(k2, rg.Normal(z1, 0.5))  # z1 reaches the cost through z2's reparameterization
        return jax.nn.relu(z2) + z2 ** 2

    g = replicate(lambda k: jax.grad(rg.stochastic(nested, num_samples=16))(jnp.float32(0.3), k), KEY, 300)
    # z2 ~ N(θ, 1.25): d/dθ E[relu(z2) + z2²] = Φ(θ/s) + 2θ with s = √1.25.
    assert_unbiased(g, float(norm.cdf(0.3 / np.sqrt(1.25)) + 0.6))


def test_tfp_joint_distribution_named():
    tfd = pytest.importorskip("tensorflow_probability.substrates.jax").distributions

    def dist(p):
        return tfd.JointDistributionNamed({"a": tfd.Normal(p, 1.0), "b": tfd.Normal(2.0 * p, 1.0)})

    f = lambda x: x["a"] ** 2 + x["b"]
    g = replicate(lambda k: rg.pathwise_grad(f, dist, num_samples=16)(jnp.float32(0.5), k), KEY, 200)
    assert_unbiased(g, 2 * 0.5 + 2.0)  # d/dθ (θ² + 1 + 2θ)


def test_false_alarm_on_interp_names_the_opt_out():
    """jnp.interp is continuous, but its table lookup plus slope reads as a jump: a refusal that
    names the opt-out, never a wrong number; with it, the pathwise estimate is unbiased."""
    xp = jnp.linspace(-3.0, 3.0, 7)
    f = lambda x: jnp.sum(jnp.interp(x, xp, xp**2))
    with pytest.raises(rg.ZeroGradientError, match=r"allow_zero_gradient=True"):
        rg.pathwise_grad(f, NORMAL, num_samples=4)(MU, KEY)
    fn = rg.grad(f, NORMAL, rg.pathwise(allow_zero_gradient=True), num_samples=16)
    g = replicate(lambda k: fn(MU, k), KEY, 300)
    # E[interp(x)] by quadrature on a fine grid (x ~ N(μ, 1)), differentiated in μ
    grid = jnp.linspace(-9.0, 9.0, 20001)
    expect = lambda m: jnp.sum(jnp.interp(grid, xp, xp**2) * jax.scipy.stats.norm.pdf(grid, m, 1.0)) * (grid[1] - grid[0])
    assert_unbiased(g, np.array([jax.grad(expect)(m) for m in MU]))
