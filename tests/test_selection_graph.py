"""select_estimator on an rg.stochastic graph (issue 19, point 4): rg.sample(estimator="auto")
nodes, their assignment (estimators=, with_estimators), the pilot's choice per node by the
variance × time of the whole graph's gradient, refusals of a discontinuous pathwise node, and the
greedy search beyond EXHAUSTIVE_MAX nodes.

Statistical checks: each pilot table's unbiased rows are within 5 standard errors of the exact
gradient (P(fail) ≈ 5.7e-7 per check, fixed keys). The per-node winner has a 9× (node 0) and
5.5× (node 1) advantage in variance per sample at equal cost, so it is expected on every key.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import repgrad as rg
from repgrad._src.selection import graph as sel_graph
from repgrad._src.selection.select import select_estimator

KEYS = [jax.random.key(200 + i) for i in range(3)]
K, SIGMA = 6.0, 0.5  # node 0: cos(K z), z ~ N(θ0, SIGMA²); fast oscillation: score wins
THETA = jnp.array([0.3, 0.2], jnp.float32)


def two_nodes(theta, key):
    """Node 0 with cost cos(6 z) (score: ~9× lower variance), node 1 with (z - 1)² (pathwise: ~5.5×)."""
    k0, k1 = jax.random.split(key)
    z0 = rg.sample(k0, rg.Normal(theta[0], SIGMA), estimator="auto")
    z1 = rg.sample(k1, rg.Normal(theta[1], 1.0), estimator="auto")
    rg.cost(jnp.cos(K * z0))  # each cost reads one node: a score node is credited its own cost only
    return (z1 - 1.0) ** 2


def exact_two_nodes(theta):
    t0, t1 = float(theta[0]), float(theta[1])
    return np.array([-K * math.sin(K * t0) * math.exp(-0.5 * K**2 * SIGMA**2), 2.0 * (t1 - 1.0)])


def _unbiased_at_5se(table):
    rows = [r for r in table.rows if not math.isnan(r.exact)]
    assert rows
    for r in rows:
        assert abs(r.bias) <= 5 * r.bias_se + 1e-6 * abs(r.exact), r


def test_auto_nodes_are_listed_and_must_be_assigned():
    def model(theta, key):
        k0, k1, k2 = jax.random.split(key, 3)
        z = rg.sample(k0, rg.Normal(theta, 1.0), estimator="auto")
        b = rg.sample(k1, rg.Bernoulli(logits=z), estimator="auto")
        u = rg.sample(k2, rg.Uniform(theta - 1.0, theta + 1.0), estimator="auto")
        return z**2 + b + u

    objective = rg.stochastic(model, num_samples=4)
    nodes = objective.auto_nodes(jnp.float32(0.3), KEYS[0])
    assert [(n.index, n.dist, n.options) for n in nodes] == [
        (0, "Normal", ("pathwise", "score")), (1, "Bernoulli", ("score",)), (2, "Uniform", ("pathwise",))]
    with pytest.raises(ValueError, match=r"rg\.select_estimator\(objective, params, key"):
        jax.grad(objective)(jnp.float32(0.3), KEYS[0])
    with pytest.raises(ValueError, match="no estimator to auto node #2"):
        jax.grad(objective.with_estimators(["score", "score"]))(jnp.float32(0.3), KEYS[0])
    with pytest.raises(ValueError, match="gives 4 estimators"):
        jax.grad(objective.with_estimators(["score", "score", "pathwise", "score"]))(jnp.float32(0.3), KEYS[0])
    with pytest.raises(ValueError, match="'pathwise' or 'score'"):
        objective.with_estimators(["score", "auto", "pathwise"])
    with pytest.raises(TypeError, match="one estimator per auto node"):
        rg.stochastic(model, estimators="score")
    a = objective.with_estimators(("pathwise", "score", "pathwise"))
    assert a is objective.with_estimators({0: "pathwise", 1: "score", 2: "pathwise"}) and a.estimators == (
        "pathwise", "score", "pathwise")
    assert jnp.isfinite(jax.grad(a)(jnp.float32(0.3), KEYS[0]))
    with pytest.raises(TypeError, match="not reparameterizable|reparameterizable distribution"):
        jax.grad(objective.with_estimators(("pathwise", "pathwise", "pathwise")))(jnp.float32(0.3), KEYS[0])


def test_an_assigned_auto_node_is_the_explicit_node():
    """Same draws, same surrogate: bit-identical gradients and Hessians to estimator='pathwise'/'score'."""

    def explicit(theta, key):
        k0, k1 = jax.random.split(key)
        z0 = rg.sample(k0, rg.Normal(theta[0], SIGMA), estimator="score")
        z1 = rg.sample(k1, rg.Normal(theta[1], 1.0), estimator="pathwise")
        rg.cost(jnp.cos(K * z0))
        return (z1 - 1.0) ** 2

    auto = rg.stochastic(two_nodes, num_samples=8, baseline="loo", estimators=("score", "pathwise"))
    ref = rg.stochastic(explicit, num_samples=8, baseline="loo")
    np.testing.assert_array_equal(jax.grad(auto)(THETA, KEYS[0]), jax.grad(ref)(THETA, KEYS[0]))
    np.testing.assert_array_equal(jax.hessian(auto)(THETA, KEYS[0]), jax.hessian(ref)(THETA, KEYS[0]))


def test_each_node_gets_its_own_estimator():
    objective = rg.stochastic(two_nodes, num_samples=8, baseline="loo")
    exact = exact_two_nodes(THETA)
    for key in KEYS:
        choice = select_estimator(objective, THETA, key, budget_s=120.0, num_replicates=200, exact=exact)
        assert choice.estimator == ("score", "pathwise"), choice
        assert choice.label == "score,pathwise" and choice.num_samples == 8
        assert set(choice.table.estimators) == {"pathwise,pathwise", "score,score", "pathwise,score", "score,pathwise"}
        _unbiased_at_5se(choice.table)
        assert choice.objective is objective.with_estimators(("score", "pathwise"))
        assert [(n.index, n.estimator, n.note) for n in choice.nodes] == [(0, "score", ""), (1, "pathwise", "")]
        assert "Per node: #0 Normal: score; #1 Normal: pathwise." in choice.reason
    # The chosen objective is the one the pilot compiled: a re-selection compiles nothing.
    again = select_estimator(objective, THETA, KEYS[0], budget_s=120.0, num_replicates=50)
    assert again.compile_s == 0.0 and again.objective is choice.objective
    g = jax.jit(jax.grad(choice.objective))(THETA, KEYS[0])
    assert g.shape == (2,) and bool(jnp.all(jnp.isfinite(g)))


def test_a_discontinuous_pathwise_node_is_refused_with_the_reason():
    def model(theta, key):
        k0, k1 = jax.random.split(key)
        z0 = rg.sample(k0, rg.Normal(theta[0], 1.0), estimator="auto")
        z1 = rg.sample(k1, rg.Normal(theta[1], 1.0), estimator="auto")
        rg.cost(jnp.where(z0 > 0.5, 1.0, 0.0))  # a step in z0: no path derivative
        return (z1 - 1.0) ** 2

    objective = rg.stochastic(model, num_samples=8, baseline="loo")
    choice = select_estimator(objective, THETA, KEYS[0], budget_s=120.0, num_replicates=100)
    assert choice.estimator[0] == "score"
    node = choice.nodes[0]
    assert node.note.startswith("pathwise does not apply: no path derivative") and "auto node #0" in node.note
    why = dict(choice.excluded)
    assert "no path derivative" in why["pathwise,pathwise"] and "no path derivative" in why["pathwise,score"]
    assert "#0 Normal: score (pathwise does not apply)" in choice.reason


def test_greedy_search_and_given_assignments(monkeypatch):
    objective = rg.stochastic(two_nodes, num_samples=8, baseline="loo")
    monkeypatch.setattr(sel_graph, "EXHAUSTIVE_MAX", 1)  # two nodes with a choice: greedy
    choice = select_estimator(objective, THETA, KEYS[1], budget_s=120.0, num_replicates=200)
    assert choice.estimator == ("score", "pathwise")
    assert any(n.startswith("greedy search over 2 nodes") for n in choice.table.notes)
    given = select_estimator(objective, THETA, key=KEYS[1], budget_s=120.0, num_replicates=50,
                             candidates=[("pathwise", "pathwise"), ["score", "pathwise"]])
    assert set(given.table.estimators) == {"pathwise,pathwise", "score,pathwise"} and given.compile_s == 0.0
    with pytest.raises(ValueError, match="one estimator to each of the 2 auto nodes"):
        select_estimator(objective, THETA, KEYS[1], candidates=[("score",)])
    with pytest.raises(ValueError, match="its own num_samples"):
        select_estimator(objective, THETA, KEYS[1], num_samples=16)
    with pytest.raises(ValueError, match="no rg.sample"):
        select_estimator(rg.stochastic(lambda t, k: rg.sample(k, rg.Normal(t, 1.0)) ** 2), jnp.float32(0.0), KEYS[0])
