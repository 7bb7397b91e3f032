"""First-order estimators and derivatives in f's own arguments (issue 16, cases 11 and 14).

A first-order estimator's surrogate has the value of the plain Monte Carlo mean of f, so a
Hessian taken only in f's own arguments w is exact (and unbiased) for every estimator; a
second derivative that moves the distribution's parameters θ — θ twice, or θ and w in either
order — differentiates the biased-beyond-first-order gradient and raises
``rg.DerivativeOrderError`` at trace time. Straight-through Gumbel-softmax included.
"""

import jax
import jax.numpy as jnp
import pytest
from _stats import assert_unbiased, replicate

import repgrad as rg

KEY = jax.random.key(0)
W = jnp.float32(1.3)
P = jnp.array([0.7, 1.3])  # Normal (μ, σ)
THETA = jnp.array([0.4, -0.8, 1.2])  # Bernoulli logits
NORMAL = lambda p: rg.Normal(p[0], p[1])
BERN = lambda t: rg.Bernoulli(logits=t)
WEIGHTS = jnp.array([1.0, 2.0, 3.0])

cube = lambda x: x**3
e_cube = lambda p: p[0] ** 3 + 3 * p[0] * p[1] ** 2
bern_cost = lambda b: jnp.sum(WEIGHTS * (b - 0.45) ** 2)


def e_bern_cost(t):
    p = jax.nn.sigmoid(t)
    return jnp.sum(WEIGHTS * (p * 0.55**2 + (1 - p) * 0.45**2))


def _relax_control(z, psi, *args):
    return psi * jnp.sum(jax.nn.sigmoid(z))


# name -> (estimator, f of one sample, dist, params, E[f] as a function of params, sign, kwargs)
CASES = {
    "measure_valued": (rg.measure_valued(), cube, NORMAL, P, e_cube, 1.0, {}),
    "optimal_baseline": (rg.score(baseline="optimal"), cube, NORMAL, P, e_cube, 1.0, {}),
    "optimal_coefficient": (rg.score(control_variate=rg.delta_method(coefficient="optimal")), cube, NORMAL, P, e_cube, 1.0, {}),
    "measure_valued_optimal_coefficient": (
        rg.with_control_variate(rg.measure_valued(), rg.delta_method(coefficient="optimal")), cube, NORMAL, P, e_cube, 1.0, {},
    ),
    "arm": (rg.arm(), bern_cost, BERN, THETA, e_bern_cost, 1.0, {}),
    "disarm": (rg.disarm(), bern_cost, BERN, THETA, e_bern_cost, 1.0, {}),
    "rebar": (rg.rebar(), bern_cost, BERN, THETA, e_bern_cost, 1.0, {"control_params": rg.rebar_init()}),
    "relax": (rg.relax(_relax_control), bern_cost, BERN, THETA, e_bern_cost, 1.0, {"control_params": jnp.float32(0.3)}),
    "straight_through": (rg.straight_through(temperature=0.5), bern_cost, BERN, THETA, e_bern_cost, 1.0, {}),
}


# Every first-order estimator x every derivative operator is in the statistical contract
# (tests/test_matrix.py, run whole by `make matrix`); here, one of each kind.
SUBSET = ("measure_valued", "optimal_coefficient", "disarm", "rebar", "straight_through")


def _loss(name, num_samples=16):
    est, base, dist, params, _, _, kw = CASES[name]
    f = lambda x, w: w**2 * base(x)  # d²/dw² E[f] = 2 E[base]
    loss = rg.expectation(f, dist, est, num_samples=num_samples)
    scalar = (lambda p, k, w: loss(p, k, w, **kw)[0]) if kw else loss
    return scalar, params


@pytest.mark.parametrize("name", SUBSET)
def test_hessian_in_f_args_alone_is_unbiased(name):
    scalar, params = _loss(name)
    exact = 2.0 * CASES[name][4](params)
    est = replicate(lambda k: jax.hessian(scalar, argnums=2)(params, k, W), KEY, 200)
    assert_unbiased(est, exact, name=f"d²/dw² by {name}")
    third = jax.jacfwd(jax.hessian(scalar, argnums=2), argnums=2)(params, KEY, W)  # every order in w
    assert jnp.isfinite(third)


@pytest.mark.parametrize("name", SUBSET)
@pytest.mark.parametrize(
    "run",
    [
        lambda s, p: jax.hessian(s)(p, KEY, W),
        lambda s, p: jax.hessian(s, argnums=(0, 2))(p, KEY, W),
        lambda s, p: jax.jacfwd(jax.grad(s, argnums=2), argnums=0)(p, KEY, W),  # w first, then θ
        lambda s, p: jax.jacfwd(jax.grad(s, argnums=0), argnums=2)(p, KEY, W),  # θ first, then w
        lambda s, p: jax.jacrev(jax.grad(s, argnums=2), argnums=0)(p, KEY, W),
        lambda s, p: jax.grad(lambda w: jnp.sum(jax.grad(s)(p, KEY, w)))(W),
    ],
    ids=["hessian-theta", "hessian-theta-w", "fwd-w-then-theta", "fwd-theta-then-w", "rev-w-then-theta", "grad-of-grad"],
)
def test_second_derivatives_moving_theta_raise(name, run):
    scalar, params = _loss(name, num_samples=4)
    with pytest.raises(rg.DerivativeOrderError):
        run(scalar, params)


def test_grad_transforms_in_f_args():
    # The *_grad transforms' outputs are first-order gradients in θ: differentiating them in w
    # is a mixed derivative, refused; their value_and_grad's value is differentiable in w.
    grad_fn = rg.measure_valued_grad(lambda x, w: w * x**3, NORMAL, num_samples=8)
    with pytest.raises(rg.DerivativeOrderError, match="measure_valued"):
        jax.jacfwd(grad_fn, argnums=2)(P, KEY, W)


LOG_WEIGHT = {
    "vimco": lambda: rg.expectation(lambda b, w: -(w**2) * bern_cost(b), BERN, rg.vimco(), num_samples=4),
    "disarm_multisample": lambda: rg.expectation(
        lambda b, w: -(w**2) * bern_cost(b), BERN, rg.disarm_multisample(), num_samples=4
    ),
    "elbo_stl": lambda: rg.elbo(lambda z, w: -0.5 * w**2 * jnp.sum(z**2), lambda p: rg.Normal(p, 1.0), num_samples=4, estimator="stl"),
    "iwae_dreg": lambda: rg.iwae_bound(
        lambda z, w: -0.5 * w**2 * jnp.sum(z**2), lambda p: rg.Normal(p, 1.0), num_samples=4, estimator="dreg"
    ),
}


@pytest.mark.parametrize("name", list(LOG_WEIGHT))
def test_bounds_refuse_mixed_and_allow_f_args_hessians(name):
    loss = LOG_WEIGHT[name]()
    params = THETA if name in ("vimco", "disarm_multisample") else jnp.ones(2)
    h = jax.hessian(loss, argnums=2)(params, KEY, W)  # in f's (log-weight's) arguments alone: autodiff
    assert jnp.isfinite(h)
    for run in (
        lambda: jax.jacfwd(jax.grad(loss, argnums=2), argnums=0)(params, KEY, W),
        lambda: jax.jacfwd(jax.grad(loss, argnums=0), argnums=2)(params, KEY, W),
    ):
        with pytest.raises(rg.DerivativeOrderError):
            run()
