"""Stochastic computation graphs: ``rg.dice`` (explicit costs and log-probabilities) and
``rg.stochastic`` with ``rg.sample``/``rg.cost`` (several nodes, each its own estimator,
nested; plates; causality), against closed forms and quadrature, at first and second order.

Statistical checks are |mean − exact| < 5 SE over R replicates (tests/_stats.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, mean_and_se, replicate

import repgrad as rg

T = 5


def _episode(dependence):
    def episode(theta, key):  # T coin flips; the reward at t is the count of heads so far
        flips = jax.random.bernoulli(key, jax.nn.sigmoid(theta), (T,)).astype(jnp.float32)
        log_probs = rg.Bernoulli(logits=jnp.broadcast_to(theta, (T,))).log_prob(flips)
        return rg.dice(jnp.cumsum(flips), log_probs, dependence=dependence)

    return episode


def test_dice_reward_to_go_is_unbiased_at_two_orders_and_lowers_variance():
    theta = jnp.float32(0.3)
    p = jax.nn.sigmoid(theta)
    s = T * (T + 1) / 2  # E[Σ_t cumsum_t] = s·p
    exact_g, exact_h = s * p * (1 - p), s * p * (1 - p) * (1 - 2 * p)
    est = {}
    for dep in ("causal", "all"):
        ep = _episode(dep)
        est[dep] = replicate(lambda k, ep=ep: (jax.grad(ep)(theta, k), jax.grad(jax.grad(ep))(theta, k)), jax.random.key(0), 4000)
        assert_unbiased(est[dep][0], exact_g, name=f"gradient ({dep})")
        assert_unbiased(est[dep][1], exact_h, name=f"second derivative ({dep})")
    # Each flip's score is weighted by the rewards from its own step on only: less variance.
    assert np.std(est["causal"][0]) < 0.8 * np.std(est["all"][0])
    value = _episode("causal")(theta, jax.random.key(1))
    flips = jax.random.bernoulli(jax.random.key(1), p, (T,)).astype(jnp.float32)
    np.testing.assert_allclose(value, jnp.sum(jnp.cumsum(flips)), rtol=1e-6)  # the value is Σ costs


def test_dice_checks_its_inputs():
    with pytest.raises(ValueError, match="dependence"):
        rg.dice(jnp.ones(3), jnp.zeros(3), dependence="future")
    with pytest.raises(ValueError, match="same leading axis"):
        rg.dice(jnp.ones(3), jnp.zeros(4))
    with pytest.raises(ValueError, match="one per node"):
        rg.dice(jnp.ones(3), jnp.zeros(3), baselines=jnp.zeros(2))


def _quadrature(fn, theta, n=80):
    """E over z ~ N(theta, 1) of fn(z) by Gauss–Hermite quadrature (float64 numpy)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return float(np.sum(w / w.sum() * fn(theta + x)))


def _nested_model(theta, key):
    k1, k2 = jax.random.split(key)
    z = rg.sample(k1, rg.Normal(theta, 1.0))  # pathwise
    b = rg.sample(k2, rg.Bernoulli(logits=z), estimator="score")  # its distribution depends on z
    return 2.0 * b + z**2


@pytest.mark.parametrize("baseline", [None, "loo"])
def test_pathwise_and_score_nodes_nested(baseline):
    with jax.enable_x64(True):
        theta, eps = 0.3, 1e-3
        expected = lambda t: _quadrature(lambda z: 2.0 / (1.0 + np.exp(-z)) + z**2, t)
        exact_g = (expected(theta + eps) - expected(theta - eps)) / (2 * eps)
        exact_h = (expected(theta + eps) - 2 * expected(theta) + expected(theta - eps)) / eps**2
        obj = rg.stochastic(_nested_model, num_samples=32, baseline=baseline)
        est = replicate(lambda k: (jax.grad(obj)(theta, k), jax.hessian(obj)(theta, k)), jax.random.key(2), 400)
        assert_unbiased(est[0], exact_g, name="nested gradient")
        assert_unbiased(est[1], exact_h, atol=1e-4, name="nested second derivative")  # atol: finite differences


def test_rg_cost_causality_matches_dice():
    theta = jnp.float32(0.3)

    def model(theta, key):
        total = jnp.zeros(())
        for k in jax.random.split(key, T):
            total = total + rg.sample(k, rg.Bernoulli(logits=theta), estimator="score")
            rg.cost(total)  # the reward at step t: heads so far

    obj = rg.stochastic(model)
    p = jax.nn.sigmoid(theta)
    s = T * (T + 1) / 2
    est = replicate(lambda k: jax.grad(obj)(theta, k), jax.random.key(3), 4000)
    assert_unbiased(est, s * p * (1 - p), name="rg.cost reward-to-go gradient")
    whole = rg.stochastic(lambda th, key: _sum_of_counts(th, key))
    est_whole = replicate(lambda k: jax.grad(whole)(theta, k), jax.random.key(3), 4000)
    assert_unbiased(est_whole, s * p * (1 - p), name="whole-return gradient")
    assert np.std(est) < 0.8 * np.std(est_whole)


def _sum_of_counts(theta, key):
    total, counts = jnp.zeros(()), jnp.zeros(())
    for k in jax.random.split(key, T):
        total = total + rg.sample(k, rg.Bernoulli(logits=theta), estimator="score")
        counts = counts + total
    return counts  # returned: depends on every node


def _plate_model(plate):
    targets = jnp.array([0.0, 1.0, -1.0, 2.0, 0.5, -0.5])

    def elementwise(phi, key):  # cost recorded per element
        z = rg.sample(key, rg.Normal(phi, 1.0), estimator="score", plate=plate)
        rg.cost((z - targets) ** 2)

    return elementwise, targets


def test_plates_weight_each_element_by_its_own_cost():
    phi = jnp.array([0.2, 0.4, -0.3, 1.0, 0.0, 0.1])
    out = {}
    for plate in (True, False):
        model, targets = _plate_model(plate)
        obj = rg.stochastic(model, num_samples=4)
        out[plate] = replicate(lambda k, obj=obj: jax.grad(obj)(phi, k), jax.random.key(4), 2000)
        assert_unbiased(out[plate], 2.0 * (phi - targets), name=f"plate={plate}")
    _, se_plate = mean_and_se(out[True])
    _, se_whole = mean_and_se(out[False])
    assert np.all(se_plate < 0.7 * se_whole), (se_plate, se_whole)


def test_matches_numpyro_tracegraph_on_a_plate_model():
    numpyro = pytest.importorskip("numpyro")
    nd = pytest.importorskip("numpyro.distributions")
    from numpyro.infer import TraceGraph_ELBO

    x = jnp.array([0.8, -0.2, 1.5, 0.1, -1.0, 0.6, 2.0, -0.4])
    n = x.shape[0]

    def model(x):
        with numpyro.plate("data", n):
            z = numpyro.sample("z", nd.Bernoulli(probs=0.5))
            numpyro.sample("x", nd.Normal(z, 1.0), obs=x)

    def guide(x):
        phi = numpyro.param("phi", jnp.zeros(n))
        with numpyro.plate("data", n):
            numpyro.sample("z", nd.Bernoulli(logits=phi))

    phi = jnp.linspace(-1.0, 1.0, n)
    with jax.numpy_dtype_promotion("standard"):  # numpyro's internals mix dtypes
        numpyro_loss = lambda p, k: TraceGraph_ELBO().loss(k, {"phi": p}, model, guide, x)
        g_numpyro = replicate(lambda k: jax.grad(numpyro_loss)(phi, k), jax.random.key(5), 1500)

    def negative_elbo(plate):
        def fn(p, key):
            q = rg.Bernoulli(logits=p)
            z = rg.sample(key, q, estimator="score", plate=plate)
            log_lik = -0.5 * (x - z) ** 2 - 0.5 * jnp.log(2 * jnp.pi)
            # As TraceGraph_ELBO does, log q enters the cost stop-gradient: its own derivative
            # E[∇ log q] = 0 is dropped (first order only: E[∇² log q] ≠ 0).
            rg.cost(-(log_lik + jnp.log(0.5) - jax.lax.stop_gradient(q.log_prob(z))))  # per element

        return rg.stochastic(fn)

    g = {plate: replicate(lambda k, plate=plate: jax.grad(negative_elbo(plate))(phi, k), jax.random.key(6), 1500) for plate in (True, False)}
    exact = jax.grad(lambda p: -jnp.sum(_exact_elbo(p, x)))(phi)
    for name, est in [("numpyro", g_numpyro), ("plate", g[True]), ("whole", g[False])]:
        assert_unbiased(est, exact, name=name)
    sd = {name: np.std(est, axis=0) for name, est in [("numpyro", g_numpyro), ("plate", g[True]), ("whole", g[False])]}
    assert np.all(sd["plate"] < 1.15 * sd["numpyro"]), sd  # plates: numpyro's variance
    assert np.mean(sd["whole"] / sd["numpyro"]) > 1.5, sd  # the whole-cost estimator: much more


def _exact_elbo(phi, x):
    """Per element: E_q[log p(x, z) − log q(z)] for z ∈ {0, 1}, q = Bern(σ(φ))."""
    q1 = jax.nn.sigmoid(phi)
    log_lik = lambda z: -0.5 * (x - z) ** 2 - 0.5 * jnp.log(2 * jnp.pi)
    term = lambda z, qz: qz * (log_lik(z) + jnp.log(0.5) - jnp.log(qz))
    return term(1.0, q1) + term(0.0, 1.0 - q1)


def test_graph_errors_name_the_fix():
    with pytest.raises(RuntimeError, match="rg.stochastic"):
        rg.sample(jax.random.key(0), rg.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match="pathwise"):
        rg.stochastic(lambda p, k: rg.sample(k, rg.Normal(p, 1.0), estimator="measure_valued"))(0.0, jax.random.key(0))
    with pytest.raises(TypeError, match="score_grad"):
        rg.stochastic(lambda p, k: rg.sample(k, rg.Bernoulli(logits=p)))(0.0, jax.random.key(0))
    with pytest.raises(TypeError, match="scalar cost"):
        rg.stochastic(lambda p, k: rg.sample(k, rg.Normal(p, 1.0)) * jnp.ones(2))(0.0, jax.random.key(0))
    with pytest.raises(ValueError, match="num_samples"):
        rg.stochastic(_nested_model, num_samples=1, baseline="loo")
