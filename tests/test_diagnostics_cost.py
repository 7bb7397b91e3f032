"""compare_estimators at equal cost (issue 17, item 7): N per estimator, equal_cost=True, interleaved
timing, variance × time with an uncertainty on each ratio, never a NaN/inf "best", the (norm) rows."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import repgrad as rg
from repgrad import cli
from repgrad import diagnostics as dg
from repgrad._src.diagnostics import summary, timing

PROBLEM = dg.gaussian_problem("quadratic", 2.0)  # x ~ N(1, 1), f = (x − 2)²


def _var_se(v, r):
    """Standard error of a sample variance of Gaussian estimates (chi-square law)."""
    return v * math.sqrt(2.0 / (r - 1))


def test_num_samples_per_estimator():
    table = dg.compare_estimators(
        PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(0), estimators=["pathwise", "score:loo"],
        num_samples={"pathwise": 8, "score:loo": 32}, num_replicates=400, vectorize=False,
    )
    assert table.summary_of("pathwise").num_samples == 8 and table.summary_of("score:loo").num_samples == 32
    assert (table.row("pathwise", "loc").f_evals, table.row("pathwise", "loc").grad_evals) == (8, 8)
    assert table.row("score:loo", "loc").f_evals == 32 and table.row("score:loo", "loc").num_samples == 32
    # Pathwise ∂μ of (x − 2)² averages 2(x_n − 2): per-sample variance 4, so 4/8 at N = 8 (5 SE).
    v = table.row("pathwise", "loc").variance
    assert abs(v - 0.5) < 5 * _var_se(0.5, 400)
    # Keys may be the specs or the names of estimator values.
    t2 = dg.compare_estimators(PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(0),
                               estimators=[rg.pathwise(), "score"], num_samples={"pathwise": 2, "score": 3},
                               num_replicates=5, vectorize=False)
    assert [s.num_samples for s in t2.summary] == [2, 3]


def test_num_samples_errors_name_the_fix():
    kw = dict(estimators=["pathwise", "score"], num_replicates=5)
    with pytest.raises(ValueError, match="no entry for 'score'"):
        dg.compare_estimators(PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(0), num_samples={"pathwise": 4}, **kw)
    with pytest.raises(ValueError, match="not among the estimators"):
        dg.compare_estimators(PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(0),
                              num_samples={"pathwise": 4, "score": 4, "scor": 4}, **kw)
    with pytest.raises(ValueError, match="equal_cost=True"):
        dg.compare_estimators(PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(0),
                              num_samples={"pathwise": 4, "score": 4}, equal_cost=True, **kw)
    with pytest.raises(ValueError, match="int >= 1"):
        dg.compare_estimators(PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(0),
                              num_samples={"pathwise": 0, "score": 4}, **kw)


def test_equal_cost_equalizes_evaluations_and_the_variances_follow():
    table = dg.compare_estimators(
        PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(1),
        estimators=["pathwise", "score:loo", "measure_valued", "enumeration"], skip_unsupported=True,
        num_samples=8, equal_cost=True, num_replicates=400, exact=PROBLEM.exact, vectorize=False,
    )
    # Measure-valued costs 5 f per sample for (loc, scale) (4|θ| + 1): 40 evaluations at N = 8,
    # the costliest; pathwise (f and ∇f: 2 per sample) gets N = 20, the score function N = 40.
    got = {s.estimator: (s.num_samples, s.f_evals + s.grad_evals) for s in table.summary}
    assert got == {"pathwise": (20, 40), "score:loo": (40, 40), "measure_valued": (8, 40)}
    assert any("skipped enumeration" in n for n in table.notes)
    assert any(n.startswith("equal cost") and "40" in n for n in table.notes)
    r = table.row("pathwise", "loc")
    assert abs(r.variance - 4 / 20) < 5 * _var_se(4 / 20, 400)
    for row in table.rows:
        assert abs(row.bias) < 5 * row.bias_se, row


def test_summary_variance_time_and_best():
    table = dg.compare_estimators(
        PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(2), estimators=["pathwise", "score"],
        num_samples=16, num_replicates=400, exact=PROBLEM.exact, vectorize=True, timing_repeats=10,
    )
    for s in table.summary:
        rows = [r for r in table.rows if r.estimator == s.estimator]
        assert s.variance == pytest.approx(sum(r.variance for r in rows), rel=1e-9)
        assert s.var_x_time == pytest.approx(s.variance * s.time_per_grad)
        assert s.rounds == 10 and s.replicates == 400 and s.time_per_grad == rows[0].time_per_grad
        assert s.mse == pytest.approx(s.variance + sum(r.bias ** 2 for r in rows), rel=1e-6)
        assert s.ratio_lo <= s.ratio <= s.ratio_hi and s.compile_s > 0
    best = table.summary_of(table.best)
    assert best.ratio == 1.0 and best.best
    # Per sample, pathwise has Σ variance 4 + 12 = 16 and the score function about 200 here: pathwise
    # is ~12× less noisy, so var×time could only go the other way if score were 12× faster.
    assert table.best == "pathwise"
    text = str(table)
    assert "× best" in text and "95% interval" in text
    d = table.to_dict()
    assert d["best"] == "pathwise" and d["summary"]["score"]["ratio"] > 1
    json.dumps(d)


def _with_fake_cost(grad_fn, log, name):
    """grad_fn whose every run appends ``name`` to ``log`` (a host callback, so it runs each call)."""

    def fn(params, key):
        jax.debug.callback(lambda: log.append(name))
        return grad_fn(params, key)

    return fn


def test_timing_is_interleaved_and_uses_the_given_clock():
    log = []
    fast = _with_fake_cost(rg.pathwise_grad(PROBLEM.f, PROBLEM.dist, num_samples=4), log, "a")
    slow = _with_fake_cost(rg.score_grad(PROBLEM.f, PROBLEM.dist, num_samples=4), log, "b")
    cost = {"a": 1e-3, "b": 3e-3}
    now = [0.0]

    def clock():  # advances by the cost of every call that ran since the last reading
        while log:
            now[0] += cost[log.pop(0)]
        return now[0]

    table = dg.compare({"a": fast, "b": slow}, PROBLEM.params, jax.random.key(0), num_replicates=6,
                       vectorize=False, clock=clock)
    assert table.summary_of("a").time_per_grad == pytest.approx(1e-3)
    assert table.summary_of("b").time_per_grad == pytest.approx(3e-3)
    assert table.summary_of("b").var_x_time == pytest.approx(table.summary_of("b").variance * 3e-3)
    assert table.summary_of("a").rounds == 6


def test_round_robin_order_and_grouped_calls():
    order, now = [], [0.0]
    cost = [2e-4, 5e-3, 1e-3]

    def make(i):
        def call(r):
            order.append((r, i))
            now[0] += cost[i]
        return call

    seconds, inner = timing.time_round_robin([make(i) for i in range(3)], 4, clock=lambda: now[0])
    np.testing.assert_allclose(seconds, np.tile(cost, (4, 1)))
    assert inner == [5, 1, 1]  # calls under 1 ms are timed 5 at a time (≥ 1 ms per sample)
    timed = [i for r, i in order[2 * 3:]]  # after two warm-up calls each
    firsts = [timed[r * sum(inner)] for r in range(4)]
    assert firsts == [0, 0, 2, 2]  # rotated by the round, reversed every other round
    assert timing.round_robin_order(3, 1) == [0, 2, 1] and timing.round_robin_order(3, 2) == [2, 0, 1]


def test_summarize_ratio_interval_covers_the_truth():
    rng = np.random.default_rng(0)
    r = 4000
    a = rng.normal(0.0, 1.0, size=(r, 2))  # Σ variance 2
    b = rng.normal(0.0, 0.5, size=(r, 2))  # Σ variance 0.5
    seconds = np.column_stack([np.full(50, 1e-3), np.full(50, 2e-3)]) * rng.uniform(0.95, 1.05, size=(50, 2))
    sa, sb = summary.summarize(["a", "b"], [a, b], seconds)
    assert sb.best and not sa.best and sb.ratio == 1.0
    # True ratio of var×time: (2 · 1 ms) / (0.5 · 2 ms) = 2.
    assert sa.ratio_lo < 2.0 < sa.ratio_hi and sa.ratio_hi - sa.ratio_lo < 0.4
    assert sa.variance == pytest.approx(2.0, rel=5 * math.sqrt(2 / r)) and sa.variance_se == pytest.approx(
        math.sqrt(2 * 2 / r), rel=0.2)  # two coordinates, each sample variance with SE sqrt(2/R)


def test_nan_or_inf_is_never_best():
    rng = np.random.default_rng(1)
    good = rng.normal(size=(100, 2))
    nan = good * 1e-3
    nan[5, 0] = np.nan
    inf = good * 1e-3
    inf[7, 1] = np.inf
    seconds = np.full((10, 3), 1e-3)
    s = summary.summarize(["nan", "inf", "good"], [nan, inf, good], seconds)
    assert [x.best for x in s] == [False, False, True]
    assert not s[0].finite and not s[1].finite and math.isnan(s[0].ratio) and math.isnan(s[1].ratio)
    # Nothing finite: no best at all.
    s = summary.summarize(["nan"], [nan], seconds[:, :1])
    assert not s[0].best
    # End to end: a transform that returns NaN on some keys.
    grad = rg.score_grad(PROBLEM.f, PROBLEM.dist, num_samples=4)

    def sometimes_nan(params, key):
        g = grad(params, key)
        bad = jax.random.uniform(jax.random.fold_in(key, 7)) < 0.2
        return jax.tree_util.tree_map(lambda x: jnp.where(bad, jnp.nan, x) * 1e-6, g)

    table = dg.compare({"score": grad, "tiny but NaN": sometimes_nan}, PROBLEM.params, jax.random.key(0),
                       num_replicates=50, vectorize=False)
    assert table.best == "score"
    assert "not finite" in str(table)


def test_exact_estimators_tie_on_rounding_and_the_faster_wins():
    g = np.tile([1.0, 2.0], (50, 1)) + np.random.default_rng(2).normal(scale=1e-9, size=(50, 2))
    seconds = np.column_stack([np.full(8, 3e-3), np.full(8, 1e-3)])
    s = summary.summarize(["slow exact", "fast exact"], [g, g.copy()], seconds)
    assert s[0].rounding and s[1].rounding and s[1].best
    assert s[0].ratio == pytest.approx(3.0)


def test_norm_rows_are_explained():
    f = lambda x: jnp.sum(jnp.square(x))
    dist = lambda p: rg.MultivariateNormalDiag(p["loc"], p["scale"])
    params = {"loc": jnp.zeros(6), "scale": jnp.ones(6)}
    t = dg.compare_estimators(f, dist, params, jax.random.key(0), estimators=["pathwise"], num_samples=4,
                              num_replicates=300, vectorize=False, exact={"loc": jnp.zeros(6), "scale": 2 * jnp.ones(6)})
    assert [r.param for r in t.rows] == ["loc (norm)", "scale (norm)"]
    note = next(n for n in t.notes if n.startswith("(norm) rows"))
    assert "loc: 6" in note and "trace of their covariance" in note and "bias/SE near 1" in note
    assert note in str(t)
    # The documented reading: unbiased ⇒ R‖ḡ − ∇‖²/variance has mean 1 (a χ²-like ratio, not 0).
    r = t.row("pathwise", "scale (norm)")
    assert 0.1 < r.bias / r.bias_se < 3.0
    assert "trace of their covariance" in dg.Row.__doc__ and "(norm)" in dg.compare.__doc__


def test_cli_num_samples_per_spec_and_equal_cost(tmp_path, capsys):
    js = tmp_path / "out.json"
    assert cli.main(["compare", "--problem", "quadratic", "--replicates", "20", "--estimators", "pathwise", "score:loo",
                     "--num-samples", "pathwise=4", "score:loo=12", "--json", str(js), "--quiet"]) == 0
    data = json.loads(js.read_text())
    assert data["summary"]["pathwise"]["num_samples"] == 4 and data["summary"]["score:loo"]["num_samples"] == 12
    assert cli.main(["compare", "--problem", "quadratic", "--replicates", "20", "--estimators", "pathwise,score:loo",
                     "--num-samples", "4", "--equal-cost", "--json", str(js), "--quiet"]) == 0
    data = json.loads(js.read_text())
    assert data["summary"]["score:loo"]["num_samples"] == 8 and data["summary"]["pathwise"]["num_samples"] == 4
    out = capsys.readouterr().out
    assert "equal cost" in out and "× best" in out
    for bad in (["--num-samples", "pathwise=x"], ["--num-samples", "many"]):
        with pytest.raises(SystemExit):
            cli.main(["compare", "--problem", "quadratic", "--estimators", "pathwise", *bad])
        assert "SPEC=N" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["compare", "--problem", "quadratic", "--estimators", "pathwise", "--num-samples", "score=3"])
    assert "not among the estimators" in capsys.readouterr().err
