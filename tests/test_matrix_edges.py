"""Cells of the contract outside the estimator × family × f grid (issue 16, defects 7, 12–14):
Bayesian layers' joint distributions and noise precision, ``validate_args=True`` under
``jax.jit``, Monte Carlo KL with a prior whose support is smaller than q's, TFP's joint
distributions, graph nodes inside JAX transforms, integer parameters and kernel-shaped priors.

Each is checked against its exact value at 5 standard errors, or for a refusal that names the
fix; never a plausible wrong number.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

import repgrad as rg

KEY = jax.random.key(0)
R = 4000


# ------------------------------------------------------------------ flipout's joint distribution


def _sum_moments(layer, loc, scale, x, mean):
    """Replicates of (Σ y − E[Σ y])² for one example: their mean is Var(Σ y)."""
    return replicate(lambda k: (jnp.sum(layer(loc, scale, x, k)) - mean) ** 2, KEY, R)


def test_flipout_scalar_weight_joint_variance():
    """y = a x with one scalar weight a ~ N(1, 1): every output shares a, Var(Σ y) = (Σ x)² = 16."""
    layer = rg.nn.flipout(lambda w, x: w["a"] * x)
    loc, scale, x = {"a": jnp.float32(1.0)}, {"a": jnp.float32(1.0)}, jnp.ones((1, 4), jnp.float32)
    assert_unbiased(_sum_moments(layer, loc, scale, x, 4.0), 16.0, name="Var(sum y), scalar weight")


def test_flipout_token_mixing_joint_variance():
    """y = M x over tokens (example_ndim=2), M_tj ~ N(0, 1): Var(Σ y) = T Σ_j (Σ_c x_jc)²."""
    layer = rg.nn.flipout(lambda w, x: w["m"] @ x, example_ndim=2)
    x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (1, 4, 3)), jnp.float32)
    loc, scale = {"m": jnp.zeros((4, 4))}, {"m": jnp.ones((4, 4))}
    exact = 4 * float(np.sum(np.sum(np.asarray(x[0]), axis=1) ** 2))
    assert_unbiased(_sum_moments(layer, loc, scale, x, 0.0), exact, name="Var(sum y), token mixing")


# ------------------------------------------------------------------ noise precision of the layers


LAYERS = {
    "reparameterization": rg.nn.dense_reparameterization,
    "flipout": rg.nn.dense_flipout,
    "local_reparameterization": rg.nn.dense_local_reparameterization,
}


@pytest.mark.parametrize("name", LAYERS)
def test_bfloat16_layer_noise_has_normal_tails(name):
    """One input, 2¹⁶ outputs y_j = w_j with w_j ~ N(0, 1): P(|y| > 3) = 2Φ(−3) also with bfloat16
    params (bfloat16 standard-normal draws stop at 2.52: the tail would be empty)."""
    out = 2**16
    params = rg.nn.DenseParams(
        kernel_loc=jnp.zeros((1, out), jnp.bfloat16),
        kernel_rho=jnp.full((1, out), rg.nn.softplus_inverse(1.0), jnp.bfloat16),
        bias_loc=jnp.zeros((out,), jnp.bfloat16),
        bias_rho=jnp.full((out,), -30.0, jnp.bfloat16),
    )
    y = np.asarray(LAYERS[name](params, jnp.ones((1, 1), jnp.bfloat16), KEY), np.float64)[0]
    assert_unbiased((np.abs(y) > 3.0).astype(np.float64), math.erfc(3 / math.sqrt(2)), name=f"{name}: P(|y| > 3)")


# ------------------------------------------------------------------ validate_args under jit


def test_validate_args_true_under_jit_is_not_silent():
    fn = jax.jit(rg.grad(lambda x: jnp.sum(x**2), lambda p: rg.Normal(p[0], p[1], validate_args=True),
                         rg.pathwise(), num_samples=4))
    with pytest.raises(Exception) as err:  # a run-time error, or a trace-time refusal naming checkify
        jax.block_until_ready(fn(jnp.array([0.0, -1.0]), KEY))
    assert "scale" in str(err.value) or "checkify" in str(err.value), str(err.value)[:300]


# ------------------------------------------------------------------ Monte Carlo KL with a narrower prior


@pytest.mark.parametrize("prior", ["gamma", "exponential"])
def test_elbo_monte_carlo_kl_outside_the_priors_support(prior):
    """q = N(0.5, 1) puts mass on z < 0, where Gamma(1, 2) = Exponential(2) has density 0: ELBO = −inf."""
    p = rg.Gamma(1.0, 2.0) if prior == "gamma" else rg.Exponential(2.0)
    bound = rg.elbo(lambda z: jnp.sum(-0.5 * (1.0 - z) ** 2), lambda t: rg.Normal(t[0], t[1]), num_samples=64,
                    prior=p, kl="monte_carlo")
    try:
        value = float(bound(jnp.array([0.5, 1.0]), KEY))
    except (ValueError, TypeError):
        return  # a refusal is fine
    assert value == -np.inf, f"ELBO with a {prior} prior = {value}, exact -inf"


# ------------------------------------------------------------------ TFP's joint distributions


def test_tfp_joint_distribution_named_pathwise():
    tfd = pytest.importorskip("tensorflow_probability.substrates.jax").distributions
    dist = lambda p: tfd.JointDistributionNamed(dict(a=tfd.Normal(p[0], 1.0), b=tfd.Normal(p[1], 2.0)))
    fn = rg.grad(lambda x: x["a"] ** 2 + x["b"], dist, rg.pathwise(), num_samples=8)
    theta = jnp.array([0.3, -0.5])
    assert_unbiased(replicate(lambda k: fn(theta, k), KEY, 256), np.array([0.6, 1.0]), name="JointDistributionNamed")


# ------------------------------------------------------------------ graph nodes inside JAX transforms


def _inside(kind):
    def model(theta, key):
        keys = jax.random.split(key, 3)
        draw = lambda k: rg.sample(k, rg.Normal(theta, 1.0), estimator="score")
        if kind == "vmap":
            z = jax.vmap(draw)(keys)
        elif kind == "scan":
            z = jax.lax.scan(lambda c, k: (c, draw(k)), 0.0, keys)[1]
        elif kind == "cond":
            z = jax.lax.cond(True, lambda: jnp.stack([draw(k) for k in keys]), lambda: jnp.zeros(3))
        elif kind == "jit":
            z = jax.jit(lambda ks: jnp.stack([draw(k) for k in ks]))(keys)
        elif kind == "checkpoint":
            z = jax.checkpoint(lambda ks: jnp.stack([draw(k) for k in ks]))(keys)
        else:  # rg.cost inside vmap
            z = jnp.stack([draw(k) for k in keys])
            jax.vmap(lambda v: rg.cost(v**2))(z)
            return None
        return jnp.sum(z**2)

    return model


@pytest.mark.parametrize("kind", ["vmap", "scan", "cond", "jit", "checkpoint", "cost_in_vmap"])
def test_graph_nodes_inside_transforms(kind):
    """Refused with a message pointing to rg.dice, or right: ∂/∂θ E[Σ_k z_k²] = 6θ."""
    objective = rg.stochastic(_inside(kind), num_samples=8)
    theta = jnp.float32(0.4)
    try:
        grads = replicate(lambda k: jax.grad(objective)(theta, k), KEY, 512)
    except Exception as err:
        ok = not isinstance(err, jax.errors.UnexpectedTracerError) and "dice" in str(err)
        assert ok, f"{type(err).__name__}: {err}"[:300]
        return
    assert_unbiased(grads, 6 * 0.4, name=kind)


# ------------------------------------------------------------------ integer parameters, kernel-shaped priors


def test_integer_params_error_names_the_fix():
    fn = rg.grad(lambda x: jnp.sum(x**2), lambda p: rg.Normal(p, 1.0), rg.pathwise(), num_samples=4)
    with pytest.raises(TypeError) as err:
        fn(jnp.array([1, 2]), KEY)
    assert "allow_int" not in str(err.value) and "float" in str(err.value), str(err.value)[:300]


def test_kl_divergence_with_a_kernel_shaped_prior():
    """A prior shaped like the kernel: refused naming the prior, or a finite KL; never a raw broadcast error."""
    params = rg.nn.init_dense(KEY, 4, 3)
    try:
        kl = rg.nn.kl_divergence(params, rg.Normal(jnp.zeros((4, 3)), 1.0))
    except (ValueError, TypeError) as err:
        assert "prior" in str(err), str(err)[:300]
        return
    assert np.isfinite(float(kl))


# ------------------------------------------------------------------ REBAR with a step f


@pytest.mark.parametrize("f", [lambda b, w: jnp.sum(w * (b > 0.5).astype(b.dtype)),
                               lambda b, w: jnp.sum(w * jnp.heaviside(b - 0.5, jnp.asarray(0.5, b.dtype))),
                               lambda b, w: w * (b[0] > 0.5).astype(b.dtype) + jnp.sum(w * b[1:] ** 2)],
                         ids=["step", "heaviside", "jump"])
def test_rebar_refuses_f_not_differentiable_at_relaxed_points(f):
    """REBAR's control η f(σ_λ(z)) has no derivative through a step in f: the estimate was exactly 0
    (a step at ½, where f(b) = f(σ_λ(z̃))) against ∂E/∂θ_j = w p_j(1 − p_j). θ derivatives are
    refused; the value and its derivative in f's own argument stay exact."""
    dist = lambda t: rg.Bernoulli(logits=t)
    theta, w = jnp.array([0.4, -0.8, 1.2]), jnp.float32(0.8)
    loss = rg.expectation(f, dist, rg.rebar(), num_samples=8)
    psi = rg.rebar_init()
    with pytest.raises(rg.ZeroGradientError, match="rebar"):
        jax.grad(lambda t: loss(t, KEY, w, control_params=psi)[0])(theta)
    exact = jax.grad(rg.expectation(f, dist, rg.enumeration()), argnums=2)(theta, KEY, w)
    dw = replicate(lambda k: jax.grad(lambda w_: loss(theta, k, w_, control_params=psi)[0])(w), KEY, 512)
    assert_unbiased(dw, exact, name="d/dw by REBAR")


# ------------------------------------------------------------------ Gumbel-Rao with a masked category


def test_gumbel_rao_masked_category_is_finite():
    """A −inf logit (never drawn) made Gumbel-Rao's value and gradient NaN (its conditional noise
    −inf − (−inf)); the value is the plain mean of f at the hard samples, the masked logit's
    gradient 0."""
    theta = jnp.array([[0.2, -0.5, -jnp.inf], [1.0, 0.3, -jnp.inf]])
    dist = lambda p: rg.Categorical(logits=p)
    f = lambda y: jnp.sum((y @ jnp.arange(3.0)) ** 2)
    fn = rg.value_and_grad(f, dist, rg.gumbel_rao(), num_samples=8)
    v, g = replicate(lambda k: fn(theta, k), KEY, 512)
    assert np.all(np.isfinite(np.asarray(g))) and np.all(np.asarray(g)[:, :, 2] == 0.0)
    exact = rg.expectation(lambda k: jnp.sum(k.astype(jnp.float32) ** 2), dist, rg.enumeration())(theta, KEY)
    assert_unbiased(v, exact, name="Gumbel-Rao value, masked category")
