"""The candidate set of select_estimator (issue 19, point 2; the discrete estimators of issue 18):
only unbiased combinations by default (``Estimator.biased`` declares the relaxations), every
registered estimator with the variance reduction that applies, learned control variates at
their default ψ (``control_init()``) unless ``control_params`` gives one, RELAX with the user's ψ.

Statistical check: on a Categorical problem every candidate the pilot measures is within 5
standard errors of the exact gradient (enumeration), per coordinate (P(fail) ≈ 5.7e-7 each).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import repgrad as rg
from repgrad._src.selection import candidates as cand
from repgrad._src.selection import select as sel

NEW_UNBIASED = {"indecater", "double_cv", "rodeo", "unordered_set", "rao_blackwell"}
RELAXATIONS = {"gumbel_softmax", "straight_through", "gumbel_rao"}
BERNOULLI = lambda p: rg.Bernoulli(logits=p)
LOGITS = jnp.array([0.3, -0.5, 0.8], jnp.float32)


def f3(b):
    return jnp.sin(3.0 * b[0] + 2.0 * b[1] * b[2]) + b[0] * b[2]


def test_relaxations_declare_their_bias():
    assert rg.gumbel_softmax().biased and rg.straight_through().biased and rg.gumbel_rao().biased
    assert rg.with_control_variate(rg.gumbel_softmax(), rg.delta_method()).biased  # stays biased
    for name in NEW_UNBIASED | {"pathwise", "score", "measure_valued", "arm", "disarm", "rebar", "enumeration"}:
        assert not rg.ESTIMATORS[name]().biased, name


def test_default_candidates_are_the_unbiased_contract():
    pool = {c.label: c for c in cand.default_candidates()}
    for c in pool.values():
        assert c.biased == (c.estimator is not None and c.estimator.biased)
        if c.excluded is None:  # a default candidate: unbiased, an estimator of ∇E[f], no argument of yours
            assert not c.estimator.biased and not c.estimator.log_weight, c
    assert NEW_UNBIASED <= {label for label, c in pool.items() if c.excluded is None}
    for name in RELAXATIONS:
        assert pool[name].biased and pool[name].excluded.startswith("biased"), pool[name]
    allowed = {c.label: c for c in cand.default_candidates(allow_biased=True)}
    assert all(allowed[name].excluded is None and allowed[name].biased for name in RELAXATIONS)
    # No optimal coefficient or moving-average baseline among the default variants (see candidates.py).
    for variants in cand.VARIANTS.values():
        for _, options in variants:
            assert options.get("baseline") != "moving_average" and "coefficient" not in options
    assert [c.label for c in cand.parse_candidates([rg.score(), rg.score()])] == ["score", "score #2"]


@pytest.mark.parametrize("name", ["double_cv", "rodeo", "rebar"])
def test_learned_control_variates_run_at_their_default_psi(name):
    est = rg.ESTIMATORS[name]()
    candidate = cand.parse_candidates([est])[0]
    g = jax.jit(sel._build(f3, BERNOULLI, candidate, 8, False, None))(LOGITS, jax.random.key(1))
    fn = rg.grad(f3, BERNOULLI, est, num_samples=8)
    ref, _ = fn(LOGITS, jax.random.key(1), control_params=fn.init_control_params())
    np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-7)


def test_control_params_give_a_learned_control_variate_its_psi_and_relax_its_own():
    psi = {"alpha": jnp.float32(1.0)}
    g = sel._build(f3, BERNOULLI, cand.parse_candidates(["double_cv"])[0], 8, False, psi)(LOGITS, jax.random.key(1))
    ref, _ = rg.grad(f3, BERNOULLI, rg.double_cv(), num_samples=8)(LOGITS, jax.random.key(1), control_params=psi)
    np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-7)

    control = lambda z, psi: psi * jnp.sum(jax.nn.sigmoid(z))
    relax = rg.relax(control)
    choice = sel.select_estimator(f3, BERNOULLI, LOGITS, jax.random.key(2), candidates=[relax, "score:loo"],
                                  control_params={"relax": jnp.float32(0.5)}, budget_s=120.0, num_replicates=40)
    assert set(choice.table.estimators) == {"relax", "score:loo"}
    choice = sel.select_estimator(f3, BERNOULLI, LOGITS, jax.random.key(2), candidates=[relax, "score:loo"],
                                  budget_s=120.0, num_replicates=40)
    assert "control_params" in dict(choice.excluded)["relax"] and choice.table.estimators == ["score:loo"]
    with pytest.raises(ValueError, match="control_params names"):
        sel.select_estimator(f3, BERNOULLI, LOGITS, jax.random.key(2), candidates=["score:loo"],
                             control_params={"rebar": {}})


@pytest.mark.slow
def test_categorical_default_set_is_unbiased_and_small_supports_enumerate():
    w = jnp.array([[1.0, -2.0, 0.5, 3.0], [0.3, 0.2, -1.0, 2.0]], jnp.float32)

    def f(y):  # y: a category index per row
        s = jnp.sum(jnp.take_along_axis(w, y[:, None], axis=1))
        return jnp.sin(s) + s**2 / 10.0

    dist = lambda p: rg.Categorical(logits=p)
    params = jnp.array([[0.1, -0.3, 0.5, 0.0], [0.2, 0.0, -0.4, 0.3]], jnp.float32)
    exact = rg.grad(f, dist, rg.enumeration())(params, jax.random.key(0))
    choice = sel.select_estimator(f, dist, params, jax.random.key(3), budget_s=200.0, num_replicates=100, exact=exact)
    assert choice.label == "enumeration"
    measured = set(choice.table.estimators)
    assert {"measure_valued", "indecater", "unordered_set", "rao_blackwell", "score:loo"} <= measured
    assert not measured & RELAXATIONS
    for r in choice.table.rows:  # "(norm)" rows: ‖mean − exact‖ against √(Σ variance / R)
        assert math.isnan(r.exact) or abs(r.bias) <= 5 * r.bias_se + 1e-6 * abs(r.exact), r
    why = dict(choice.excluded)
    assert "Bernoulli" in why["disarm"] and "Bernoulli" in why["double_cv"] and "Bernoulli" in why["rodeo"]
