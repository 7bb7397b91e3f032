"""Variance reduction without bias: each combination of a baseline, a control variate's
coefficient, and the measure-valued and enumeration estimators at the edges of their
families, against closed forms or exact enumeration.

Each defect pinned here gave a plausible wrong number before (issue 16, items 2, 3, 4, 8, 9):
a leave-one-out coefficient built from baselines that contain f_n; a coefficient that divides
by rounding noise; a Categorical tangent that was not projected; f evaluated at a masked
category; p(1 − p) rounded to 0 at probs = 1. Statistical checks are |mean − exact| < 5 SE over
R replicates (tests/_stats.py: a correct estimator fails one scalar check with probability
≈ 5.7e-7); keys are fixed. Where an estimate has no randomness left, the bound is float32
rounding (``atol``).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

import repgrad as rg

OFFSET = 5.0
ROUNDING = 1e-5  # float32 rounding of a gradient estimate that has no randomness left


def _custom_loo(values, state):
    """A user's leave-one-out baseline (reads the batch; repgrad cannot tell it is one)."""
    return (jnp.sum(values) - values) / (values.shape[0] - 1), state


BASELINES = {
    "none": (None, None),
    "loo": ("loo", None),
    "moving_average": ("moving_average", rg.MovingAverageState(jnp.asarray(3.0), jnp.asarray(5, jnp.int32))),
    "custom": (rg.Baseline(apply=_custom_loo, min_samples=2, name="custom_loo"), None),
}


# ----------------------------------------------------- 2: the optimal coefficient's baseline


@pytest.mark.parametrize("baseline", sorted(BASELINES))
def test_optimal_coefficient_unbiased_with_every_baseline(baseline):
    """The leave-one-out coefficient c_n must not depend on x_n: with baseline='loo' it was
    regressed on a_m = (f_m − b_m) s_m whose b_m contain f_n (mean 2.57 against 1.974,
    z = 6 at R = 1000, N = 4; z = 12 at this R)."""
    loc, scale = 0.5, 0.6
    f = lambda x: jnp.exp(x) + OFFSET
    exact = np.exp(loc + 0.5 * scale**2)  # ∂/∂μ E[eˣ]
    bl, state = BASELINES[baseline]
    est = rg.score(baseline=bl, control_variate=rg.delta_method(coefficient="optimal"))
    fn = rg.grad(f, lambda m: rg.Normal(m, scale), est, num_samples=4)
    call = (lambda k: fn(jnp.float32(loc), k, baseline_state=state)[0]) if est.stateful else (lambda k: fn(jnp.float32(loc), k))
    assert_unbiased(replicate(call, jax.random.key(0), 4000), exact, name=f"score({baseline}) + optimal coefficient")


def test_optimal_coefficient_loo_baseline_several_coordinates():
    """N = 16, three coordinates, both parameters (z = 5.8 before at R = 2000)."""
    loc, scale = np.array([0.3, 1.0, -0.6]), np.array([0.5, 0.8, 0.3])
    mean = np.exp(loc + 0.5 * scale**2)
    est = rg.score(baseline="loo", control_variate=rg.delta_method(coefficient="optimal"))
    fn = rg.grad(lambda x: jnp.sum(jnp.exp(x)) + OFFSET, lambda p: rg.Normal(p[0], p[1]), est, num_samples=16)
    params = (jnp.asarray(loc, jnp.float32), jnp.asarray(scale, jnp.float32))
    g = replicate(lambda k: fn(params, k), jax.random.key(1), 4000)
    assert_unbiased(g, (mean, scale * mean), name="score(loo) + optimal coefficient")


def test_optimal_coefficient_with_loo_baseline_reduces_variance():
    """With a baseline, the control variate's h is centred by E[h] so it matches (f − b) s."""
    params = (jnp.array([0.3, 1.0, -0.6]), jnp.array([0.5, 0.8, 0.3]))
    f, dist = (lambda x: jnp.sum(jnp.exp(x)) + OFFSET), (lambda p: rg.Normal(p[0], p[1]))
    var = {}
    for label, cv in [("plain", None), ("optimal", rg.delta_method(coefficient="optimal"))]:
        fn = rg.grad(f, dist, rg.score(baseline="loo", control_variate=cv), num_samples=16)
        g = replicate(lambda k, fn=fn: fn(params, k), jax.random.key(2), 400)
        var[label] = sum(float(np.sum(np.var(v, axis=0))) for v in g)
    assert var["optimal"] < 0.5 * var["plain"]


def test_per_sample_coefficient_refuses_estimators_that_need_several_samples():
    """On single-sample problems a leave-one-out baseline is 0/0: the gradient was NaN."""
    with pytest.raises(TypeError, match=r"rg\.score\(baseline=\.\.\., control_variate=cv\)"):
        rg.with_control_variate(rg.score(baseline="loo"), rg.delta_method(coefficient="optimal"))


def test_optimal_coefficient_needs_three_samples():
    for est in (
        rg.score(control_variate=rg.delta_method(coefficient="optimal")),
        rg.with_control_variate(rg.measure_valued(), rg.delta_method(coefficient="optimal")),
    ):
        with pytest.raises(ValueError, match="num_samples must be >= 3"):
            rg.grad(jnp.sum, lambda m: rg.Normal(m, 1.0), est, num_samples=2)


def test_optimal_baseline_rare_outcome():
    """b_{n,j} = Σ_{m≠n} f s² / Σ_{m≠n} s² was computed as (total − own term): when sample n's
    score dominates (a Bernoulli outcome of probability 3e-4: s² = 1 against 1e-7) the
    difference is rounding noise that depends on x_n (mean 0.018 against 3.4e-4, z = 8.9).
    The sums over the other samples are now prefix plus suffix sums."""
    logits = jnp.array([-8.0, 0.5])
    p = jax.nn.sigmoid(logits)
    fn = rg.grad(lambda b: 1000.0 + b[0] + b[1], lambda lg: rg.Bernoulli(logits=lg), rg.score(baseline="optimal"), num_samples=16)
    g = replicate(lambda k: fn(logits, k), jax.random.key(0), 20000)
    assert_unbiased(g, p * (1.0 - p), name="optimal baseline, rare outcome")


# ------------------------------------------- 3: a coefficient on a deterministic estimate

BERNOULLI_LOGITS = jnp.array([0.3, -1.0, 1.5])
W = jnp.array([1.0, 2.0, -0.5])


def _bernoulli_exact(f, logits):
    bits = jnp.array(list(itertools.product([0.0, 1.0], repeat=logits.shape[0])), jnp.float32)

    def expected(lg):
        lp = jnp.sum(jax.nn.log_sigmoid(lg)[None] * bits + jax.nn.log_sigmoid(-lg)[None] * (1.0 - bits), axis=1)
        return jnp.sum(jnp.exp(lp) * jax.vmap(f)(bits))

    return jax.grad(expected)(logits)


@pytest.mark.parametrize(
    "cv",
    [rg.delta_method(coefficient="optimal"), rg.control_variate(jnp.sum, lambda d: jnp.sum(d.probs), coefficient="optimal")],
    ids=["delta", "user-linear"],
)
def test_optimal_coefficient_on_deterministic_measure_valued_estimate(cv):
    """For separable f the measure-valued estimate of ∂E[h] has no randomness, so v = u − ∂E[h]
    is rounding noise; the coefficient divided by it and cancelled the gradient (0.33 against
    0.45, 0 against 0.42). It is now 0 there, leaving the (exact) measure-valued estimate."""
    f = lambda b: jnp.sum(W * b + jnp.sin(b)) + OFFSET
    fn = rg.grad(f, lambda lg: rg.Bernoulli(logits=lg), rg.with_control_variate(rg.measure_valued(), cv), num_samples=16)
    g = replicate(lambda k: fn(BERNOULLI_LOGITS, k), jax.random.key(3), 50)
    assert_unbiased(g, _bernoulli_exact(f, BERNOULLI_LOGITS), atol=ROUNDING, name="measure-valued + optimal coefficient")


def test_optimal_coefficient_on_deterministic_pathwise_estimate():
    """A linear h: its pathwise estimate for the loc is the constant 1 (rounding noise after
    subtracting ∂E[h]); for the scale it is random. Both stay unbiased."""
    loc, scale = np.array([0.3, -0.2]), np.array([0.7, 0.4])
    cv = rg.control_variate(jnp.sum, lambda d: jnp.sum(d.mean()), coefficient="optimal")
    est = rg.with_control_variate(rg.pathwise(), cv)
    fn = rg.grad(lambda x: jnp.sum(x + 0.2 * jnp.sin(3.0 * x)) + OFFSET, lambda p: rg.Normal(p[0], p[1]), est, num_samples=8)
    g = replicate(lambda k: fn((jnp.asarray(loc, jnp.float32), jnp.asarray(scale, jnp.float32)), k), jax.random.key(4), 400)
    damp = np.exp(-4.5 * scale**2)  # E[sin 3x] = sin(3μ) e^{−9σ²/2}
    exact = (1.0 + 0.6 * np.cos(3 * loc) * damp, -0.2 * np.sin(3 * loc) * damp * 9.0 * scale)
    assert_unbiased(g, exact, name="pathwise + optimal coefficient")


def test_optimal_coefficient_score_degenerate_scores():
    """A Categorical with one category left (the others masked): its scores are exactly 0 and
    v is constant; the coefficient is 0 and the gradient finite (and 0, the exact one)."""
    logits = jnp.array([0.4, -jnp.inf, -jnp.inf])
    cv = rg.control_variate(lambda x: x.astype(jnp.float32), lambda d: jnp.sum(d.probs * jnp.arange(3.0)), coefficient="optimal")
    for est in (rg.score(control_variate=cv), rg.score(baseline="loo", control_variate=cv)):
        g = rg.grad(lambda x: 2.0 * x.astype(jnp.float32) + OFFSET, lambda lg: rg.Categorical(logits=lg), est, num_samples=8)(logits, jax.random.key(0))
        np.testing.assert_array_equal(np.asarray(g)[0], 0.0)
        assert np.all(np.isfinite(np.asarray(g)[0]))


# ----------------------------------------------- 4: a Categorical's constrained leaf

VALS = jnp.array([1.0, 3.0, -2.0, 0.5])
CAT_LOGITS = jnp.array([[0.3, -1.0, 1.5, 0.2], [0.0, 0.5, -0.5, 1.0]])


def _cat_f(x):
    return jnp.sum(VALS[x] + 0.3 * VALS[x] ** 2) + VALS[x[0]] * VALS[x[1]] + OFFSET


def _cat_exact(f, logits):
    return jax.grad(lambda lg: rg.expectation(f, lambda a: rg.Categorical(logits=a), rg.enumeration())(lg, jax.random.key(0)))(logits)


EXPECTED_H = {
    "probs": lambda d: jnp.sum(d.probs * VALS[None]),
    "softmax": lambda d: jnp.sum(jax.nn.softmax(d.logits) * VALS[None]),
}
CAT_ESTIMATORS = {
    "score": lambda cv: rg.score(control_variate=cv),
    "score_loo": lambda cv: rg.score(baseline="loo", control_variate=cv),
    "with_cv_score": lambda cv: rg.with_control_variate(rg.score(), cv),
    "with_cv_measure_valued": lambda cv: rg.with_control_variate(rg.measure_valued(), cv),
}


@pytest.mark.parametrize("estimator", sorted(CAT_ESTIMATORS))
@pytest.mark.parametrize("written_with", sorted(EXPECTED_H))
def test_categorical_user_control_variate_any_form_of_expectation(written_with, estimator):
    """∂E[h] must live in the tangent space the scores and estimates live in: with E[h] written
    with d.probs it did not (score: z = 45), with softmax(d.logits) the per-sample path was off
    (z = 5.7), and measure-valued returned exactly 0 in both."""
    cv = rg.control_variate(lambda x: jnp.sum(VALS[x]), EXPECTED_H[written_with], coefficient="optimal")
    fn = rg.grad(_cat_f, lambda lg: rg.Categorical(logits=lg), CAT_ESTIMATORS[estimator](cv), num_samples=16)
    g = replicate(lambda k: fn(CAT_LOGITS, k), jax.random.key(5), 400)
    assert_unbiased(g, _cat_exact(_cat_f, CAT_LOGITS), atol=ROUNDING, name=f"{estimator}, E[h] with {written_with}")


# ------------------------------------------------------------- 8: masked categories

MASKED_LOGITS = jnp.array([[0.3, -jnp.inf, 1.5, 0.2], [0.0, 0.5, -jnp.inf, 1.0]])
MASKED = jnp.array([1, 2])  # the masked category of each coordinate


def _masked_f(x, a):
    """Finite wherever x can be drawn, −inf exactly where it cannot."""
    inside = a * VALS[x] ** 2 + VALS[x[0]] * VALS[x[1]] + OFFSET
    return jnp.sum(jnp.where(x == MASKED, -jnp.inf, inside))


def _masked_closed_form(logits, a):
    p = jax.nn.softmax(logits)  # 0 at the masked categories
    mean = jnp.sum(p * VALS[None], axis=-1)
    return a * jnp.sum(p * VALS[None] ** 2) + 2.0 * (mean[0] * mean[1] + OFFSET)


def test_enumeration_masked_categories_every_order():
    """f = −inf only at categories of probability 0: value, gradient (params and f's own
    argument) and Hessian were NaN; they are exact."""
    a = jnp.float32(0.7)
    loss = rg.expectation(_masked_f, lambda lg: rg.Categorical(logits=lg), rg.enumeration())
    key = jax.random.key(0)
    np.testing.assert_allclose(loss(MASKED_LOGITS, key, a), _masked_closed_form(MASKED_LOGITS, a), rtol=1e-5)
    grads = jax.grad(loss, argnums=(0, 2))(MASKED_LOGITS, key, a)
    exact = jax.grad(_masked_closed_form, argnums=(0, 1))(MASKED_LOGITS, a)
    for g, e in zip(grads, exact, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    hess = jax.hessian(loss)(MASKED_LOGITS, key, a)
    np.testing.assert_allclose(hess, jax.hessian(_masked_closed_form)(MASKED_LOGITS, a), rtol=1e-4, atol=1e-5)
    mixed = jax.jacfwd(jax.grad(loss), argnums=2)(MASKED_LOGITS, key, a)
    np.testing.assert_allclose(mixed, jax.jacfwd(jax.grad(_masked_closed_form), argnums=1)(MASKED_LOGITS, a), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cv", [None, "user-optimal"])
def test_measure_valued_masked_categories(cv):
    """Measure-valued replaced each coordinate by every category, masked ones included: NaN."""
    a = jnp.float32(0.7)
    if cv is not None:
        cv = rg.control_variate(lambda x, a: jnp.sum(VALS[x]), lambda d, a: jnp.sum(d.probs * VALS[None]), coefficient="optimal")
    est = rg.with_control_variate(rg.measure_valued(), cv)
    fn = rg.value_and_grad(_masked_f, lambda lg: rg.Categorical(logits=lg), est, num_samples=16)
    v, g = replicate(lambda k: fn(MASKED_LOGITS, k, a), jax.random.key(6), 300)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    assert_unbiased(v, _masked_closed_form(MASKED_LOGITS, a), name="value")
    assert_unbiased(g, jax.grad(_masked_closed_form)(MASKED_LOGITS, a), atol=ROUNDING, name="gradient")


@pytest.mark.parametrize(
    "make",
    [
        lambda: rg.score(baseline="optimal"),
        lambda: rg.score(control_variate=rg.control_variate(lambda x, a: jnp.sum(VALS[x]), lambda d, a: jnp.sum(d.probs * VALS[None]), coefficient="optimal")),
    ],
    ids=["optimal-baseline", "optimal-coefficient"],
)
def test_score_variance_reduction_masked_categories(make):
    a = jnp.float32(0.7)
    fn = rg.grad(_masked_f, lambda lg: rg.Categorical(logits=lg), make(), num_samples=16)
    g = replicate(lambda k: fn(MASKED_LOGITS, k, a), jax.random.key(7), 400)
    assert np.all(np.isfinite(g))
    assert_unbiased(g, jax.grad(_masked_closed_form)(MASKED_LOGITS, a), atol=ROUNDING, name="gradient")


# ----------------------------------------------- 9: Bernoulli probabilities of 0 and 1


def _bern_f(b):
    return jnp.sum(3.0 * b) + 2.0 * b[0] * b[1] - jnp.sin(b[1]) + OFFSET


def _bern_exact(probs):
    corners = [jnp.array(c) for c in ([0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0])]

    def expected(p):
        weights = [(1 - p[0]) * (1 - p[1]), p[0] * (1 - p[1]), (1 - p[0]) * p[1], p[0] * p[1]]
        return sum(w * _bern_f(c) for w, c in zip(weights, corners, strict=True))

    return jax.grad(expected)(probs)


EDGE_ESTIMATORS = {
    "measure_valued": rg.measure_valued,
    "uncoupled": lambda: rg.measure_valued(coupled=False),
    "delta": lambda: rg.measure_valued(control_variate=rg.delta_method()),
    "delta_optimal": lambda: rg.with_control_variate(rg.measure_valued(), rg.delta_method(coefficient="optimal")),
    # σ'(θ) as p(1 − p): 1 − p rounded to 0 (float32) or to twice its value (float64) at the
    # clipped logits of probs = 1, so the gradient was 0 or 2× the truth (z = −52)
    "indecater": rg.indecater,
}


@pytest.mark.parametrize("estimator", sorted(EDGE_ESTIMATORS))
@pytest.mark.parametrize("edge", [0.0, 1.0])
def test_measure_valued_bernoulli_probs_at_0_and_1(edge, estimator):
    """c = p(1 − p) rounded to 0 at probs = 1: the gradient was 0 against f(1) − f(0). The
    delta method's E[h] lost its derivative there too (σ'(ℓ) = σ(1 − σ) rounds to 0): −0.0
    with coefficient 1, 0.105 with the optimal one, against 3.8."""
    probs = jnp.array([edge, 0.4])
    exact = _bern_exact(probs)
    fn = rg.grad(_bern_f, lambda p: rg.Bernoulli(probs=p), EDGE_ESTIMATORS[estimator](), num_samples=8)
    g = replicate(lambda k: fn(probs, k), jax.random.key(8), 300)
    assert_unbiased(g, exact, atol=1e-5 * float(np.max(np.abs(exact))), name=f"{estimator} at probs={edge}")


@pytest.mark.parametrize("edge", [0.0, 1.0])
def test_enumeration_bernoulli_probs_at_0_and_1(edge):
    probs = jnp.array([edge, 0.4])
    g = rg.grad(_bern_f, lambda p: rg.Bernoulli(probs=p), rg.enumeration())(probs, jax.random.key(0))
    np.testing.assert_allclose(g, _bern_exact(probs), rtol=1e-5)
