"""The matrix's stochastic-computation-graph axis: ``rg.stochastic`` with one and two nodes
(pathwise or score, baseline None or "loo", ``rg.cost`` and the returned cost, float and integer
costs) and ``rg.dice`` (causal, elementwise, all; float and integer costs), against closed forms,
Gauss–Hermite quadrature and enumeration, to second order (third for a few).

Declared outcomes follow ``_matrix_rules``: a Laplace score node has no second derivative in its
loc (``DerivativeOrderError``); a pathwise node under a step cost raises ``ZeroGradientError``;
an integer cost is refused with a ``TypeError`` or estimated exactly — and the three ways of
writing one (``rg.cost``, the returned cost, ``rg.dice``) agree on which.

As in ``test_matrix.py``, ``make test`` runs the cells whose id hashes into one slice in
``GRAPH_EVERY`` (and the integer-cost policy test); ``REPGRAD_MATRIX=full`` runs all.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _matrix_cells import in_sample
from _matrix_exact import K, _hermite
from _matrix_ops import CORE, ORDER, estimate
from _matrix_rules import ORDER_ERR, ZERO, Either, Exact, Raises
from _matrix_run import Log, check, exact_all

import repgrad as rg

N = 8
R = 256
GRAPH_EVERY = 8  # make test runs one graph cell in 8 (26 cells; slices and full as in test_matrix.py)
TARGET = np.array([1.0, 0.0, 1.0])


def _smooth(z, w):
    return w * jnp.cos(K * z) + 0.5 * w * w * z * z


# --------------------------------------------------------------------------- models


def _one_node(family, estimator, cost):
    def model(theta, key, w):
        d = rg.Normal(theta[0], theta[1]) if family == "normal" else rg.Laplace(theta[0], theta[1])
        z = rg.sample(key, d, estimator=estimator)
        return cost(z, w)

    return model


def _bernoulli(cost_kind):
    def model(theta, key, w):
        b = rg.sample(key, rg.Bernoulli(logits=theta), estimator="score")
        if cost_kind == "float":
            return jnp.sum(w * (b - 0.3) ** 2 + 0.5 * w * w * b)
        wrong = jnp.sum(b != jnp.asarray(TARGET, b.dtype))
        if cost_kind == "int_cost":
            rg.cost(wrong.astype(jnp.int32))
            return None
        return wrong.astype(jnp.int32)  # "int_return"

    return model


def _two_nodes(first):
    def model(theta, key, w):
        k1, k2 = jax.random.split(key)
        z = rg.sample(k1, rg.Normal(theta[0], 1.0), estimator=first)
        b = rg.sample(k2, rg.Bernoulli(logits=theta[1] * z), estimator="score")
        rg.cost(w * (b - 0.3) ** 2)
        return _smooth(z, w)

    return model


# --------------------------------------------------------------------------- exact values


def _normal_exact(theta, w):
    loc, scale = theta[0], theta[1]
    s2 = scale * scale
    return w * jnp.cos(K * loc) * jnp.exp(-0.5 * K * K * s2) + 0.5 * w * w * (loc * loc + s2)


def _laplace_exact(theta, w):
    loc, scale = theta[0], theta[1]
    return w * jnp.cos(K * loc) / (1.0 + K * K * scale * scale) + 0.5 * w * w * (loc * loc + 2 * scale * scale)


def _step_exact(theta, w):
    return w * jax.scipy.special.ndtr((theta[0] - 0.5) / theta[1])


def _enumerate_bits(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def _bernoulli_exact(cost_kind):
    def exact(theta, w):
        bits = _enumerate_bits(3)
        p = jax.nn.sigmoid(theta)
        probs = jnp.prod(jnp.where(bits > 0.5, p, 1.0 - p), axis=1)
        if cost_kind == "float":
            cost = jnp.sum(w * (bits - 0.3) ** 2 + 0.5 * w * w * bits, axis=1)
        else:
            cost = jnp.sum(bits != TARGET, axis=1).astype(jnp.float64)
        return jnp.sum(probs * cost)

    return exact


def _two_nodes_exact(theta, w):
    eps, weights = _hermite(80)
    z = theta[0] + eps
    p = jax.nn.sigmoid(theta[1] * z)
    inner = w * (p * 0.49 + (1.0 - p) * 0.09)
    return jnp.sum(weights * (inner + _smooth(z, w)))


# --------------------------------------------------------------------------- rg.dice


def _dice_costs(dependence, b, w):
    if dependence == "causal":
        return w * jnp.cumsum(b) + 0.5 * w * w * b
    if dependence == "elementwise":
        return w * jnp.cos(K * b) + 0.5 * w * w * b
    return w * b[0] * b + 0.5 * w * w * b  # "all": every cost depends on the first flip


def _dice(dependence, integer=False, baselines=False):
    def objective(theta, key, w):
        def episode(k):
            b = jax.random.bernoulli(k, jax.nn.sigmoid(theta)).astype(theta.dtype)
            log_probs = rg.Bernoulli(logits=theta).log_prob(b)
            costs = jnp.cumsum(b).astype(jnp.int32) if integer else _dice_costs(dependence, b, w)
            base = jnp.full(theta.shape, 0.5, theta.dtype) if baselines else None
            return rg.dice(costs, log_probs, dependence=dependence, baselines=base)

        return jnp.mean(jax.vmap(episode)(jax.random.split(key, N)))

    return objective


def _dice_exact(dependence, integer=False):
    def exact(theta, w):
        bits = _enumerate_bits(3)
        p = jax.nn.sigmoid(theta)
        probs = jnp.prod(jnp.where(bits > 0.5, p, 1.0 - p), axis=1)
        if integer:
            totals = jnp.sum(jnp.cumsum(bits, axis=1), axis=1)
        else:
            totals = jax.vmap(lambda b: jnp.sum(_dice_costs(dependence, b, w)))(jnp.asarray(bits))
        return jnp.sum(probs * totals)

    return exact


# --------------------------------------------------------------------------- the cells

NORMAL_THETA = (0.3, 0.9)
LOGITS = (0.4, -0.8, 1.2)
INT = Either((TypeError,), "an integer cost: refused naming the cast, or exact")
STEP_COST = lambda z, w: w * (z > 0.5).astype(z.dtype)
SMOOTH_COST = _smooth
LAPLACE = {  # rule 4: no second derivative in the kinked loc; the mixed one is first order in it
    "hess_joint": Raises(ORDER_ERR, "a Laplace score node: its log-density has a kink in loc"),
    "jacrev_grad_w": Either(ORDER_ERR, "mixed derivative, first order in loc"),
}


def _orders(third=False):
    return CORE + (("third",) if third else ())


def _cells():
    cells = []
    for est in ("pathwise", "score"):
        for baseline in (None, "loo"):
            if est == "pathwise" and baseline:
                continue
            model = _one_node("normal", est, SMOOTH_COST)
            cells.append((f"one_{est}_{baseline}|normal|smooth", model, baseline, _normal_exact, NORMAL_THETA, _orders(True), {}))
    for baseline in (None, "loo"):
        cells.append((f"one_score_{baseline}|laplace|smooth", _one_node("laplace", "score", SMOOTH_COST), baseline,
                      _laplace_exact, (0.1, 0.8), _orders(), LAPLACE))
    zero = {op: Raises(ZERO, "a pathwise node under a step cost") for op in CORE if ORDER[op] not in ("value", "ww")}
    cells.append(("one_pathwise|normal|step", _one_node("normal", "pathwise", STEP_COST), None, _step_exact,
                  NORMAL_THETA, CORE, zero))
    cells.append(("one_score|normal|step", _one_node("normal", "score", STEP_COST), "loo", _step_exact, NORMAL_THETA, CORE, {}))
    for baseline in (None, "loo"):
        cells.append((f"bernoulli_score_{baseline}|float", _bernoulli("float"), baseline, _bernoulli_exact("float"),
                      LOGITS, _orders(baseline is None), {}))
        for kind in ("int_cost", "int_return"):
            cells.append((f"bernoulli_score_{baseline}|{kind}", _bernoulli(kind), baseline, _bernoulli_exact(kind), LOGITS,
                          ("value", "grad", "hess"), {op: INT for op in ("value", "grad", "hess")}))
    for first in ("pathwise", "score"):
        for baseline in (None, "loo"):
            cells.append((f"two_nodes_{first}_{baseline}", _two_nodes(first), baseline, _two_nodes_exact, (0.3, 0.7),
                          _orders(first == "pathwise" and baseline == "loo"), {}))
    for dependence in ("causal", "elementwise", "all"):
        for baselines in (False, True):
            cells.append((f"dice_{dependence}{'_baselines' if baselines else ''}|float", _dice(dependence, baselines=baselines),
                          "dice", _dice_exact(dependence), LOGITS, _orders(dependence == "causal" and not baselines), {}))
    cells.append(("dice_causal|int", _dice("causal", integer=True), "dice", _dice_exact("causal", integer=True), LOGITS,
                  ("value", "grad", "hess"), {op: INT for op in ("value", "grad", "hess")}))
    return cells


CELLS = _cells()


def _objective(model, baseline):
    if baseline == "dice":
        return model
    return rg.stochastic(model, num_samples=N, baseline=baseline)


@pytest.mark.parametrize("cell", CELLS, ids=[c[0] for c in CELLS])
def test_graph_cell(cell):
    cell_id, model, baseline, exact_fn, theta, ops, declared = cell
    if not in_sample(cell_id, GRAPH_EVERY):
        pytest.skip("outside the fixed sample: REPGRAD_MATRIX=full (make matrix) runs it")
    objective = _objective(model, baseline)
    op_fn = lambda op, key, t, w: estimate(op, lambda t_, w_: objective(t_, key, w_), None, None, t, w)
    outcomes = {op: declared.get(op, Exact()) for op in ops}
    exact = exact_all(exact_fn, theta, [op for op in ops])
    log = Log("graph:" + cell_id)
    check(log, op_fn, outcomes, lambda mode: exact, jnp.asarray(theta, jnp.float32), R)
    assert not log.problems, f"{cell_id}:\n  " + "\n  ".join(log.problems)


def _int_policy(objective, exact):
    """'refused' (TypeError at trace time) or 'exact' (the gradient within 5 SE), else a problem."""
    theta = jnp.asarray(LOGITS, jnp.float32)
    try:
        jax.eval_shape(lambda k: jax.grad(objective)(theta, k, jnp.float32(0.8)), jax.random.key(0))
    except TypeError:
        return "refused"
    g = jax.jit(jax.vmap(lambda k: jax.grad(objective)(theta, k, jnp.float32(0.8))))(jax.random.split(jax.random.key(1), R))
    with jax.enable_x64(True):
        want = np.asarray(jax.grad(exact)(jnp.asarray(LOGITS, jnp.float64), 0.8))
    g = np.asarray(g, np.float64)
    se = g.std(0, ddof=1) / math.sqrt(R)
    return "exact" if np.all(np.abs(g.mean(0) - want) <= 5 * se + 1e-6) else f"wrong: {g.mean(0)} vs {want}"


def test_integer_costs_one_policy():
    """rg.cost, the returned cost and rg.dice treat an integer cost alike: all refused, or all exact."""
    policies = {
        "rg.cost": _int_policy(rg.stochastic(_bernoulli("int_cost"), num_samples=N), _bernoulli_exact("int_cost")),
        "returned cost": _int_policy(rg.stochastic(_bernoulli("int_return"), num_samples=N), _bernoulli_exact("int_return")),
        "rg.dice": _int_policy(_dice("causal", integer=True), _dice_exact("causal", integer=True)),
    }
    assert len(set(policies.values())) == 1 and set(policies.values()) <= {"refused", "exact"}, policies
