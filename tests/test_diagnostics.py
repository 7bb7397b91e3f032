"""repgrad.diagnostics: compare tables, f-evaluation counting, estimator specs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import repgrad as rg
from repgrad import diagnostics as dg

PROBLEM = dg.gaussian_problem("quadratic", 2.0)


def test_compare_table_statistics_and_counts():
    f = dg.counted(PROBLEM.f)
    table = dg.compare(
        {
            "pathwise": rg.pathwise_grad(f, PROBLEM.dist, num_samples=8),
            "score+loo": rg.score_grad(f, PROBLEM.dist, num_samples=8, baseline="loo"),
            "mvd": rg.measure_valued_grad(f, PROBLEM.dist, num_samples=8),
        },
        PROBLEM.params, jax.random.key(0), num_replicates=400, exact=PROBLEM.exact, vectorize=False,
    )
    assert table.estimators == ["pathwise", "score+loo", "mvd"]
    assert [r.param for r in table.rows[:2]] == ["loc", "scale"]
    counts = {r.estimator: (r.f_evals, r.grad_evals) for r in table.rows}
    assert counts == {"pathwise": (8, 8), "score+loo": (8, 0), "mvd": (8 * 5, 0)}  # MVD: 4|x| + 1 per sample
    for r in table.rows:
        # Unbiased estimators: |bias| < 5 SE fails by chance with prob. ~5.7e-7 per row.
        assert abs(r.bias) < 5 * r.bias_se, r
        assert r.exact == pytest.approx(PROBLEM.exact[r.param])
        assert r.snr == pytest.approx(abs(r.mean) / math.sqrt(r.variance))
        assert r.var_x_time == pytest.approx(r.variance * r.time_per_grad)
        assert r.var_x_evals == pytest.approx(r.variance * (r.f_evals + r.grad_evals))
        assert r.time_per_grad > 0 and r.replicates == 400
    # Pathwise d/dmu of (x-2)^2 averages 2(x_n - 2): per-sample variance 4, so 4/8 for N = 8;
    # sample-variance SE from the chi-square law, sqrt(2/(R-1)) relative (5 SE).
    r = table.row("pathwise", "loc")
    assert abs(r.variance - 0.5) < 5 * 0.5 * math.sqrt(2 / 399)
    text = str(table)
    assert "estimator" in text and "var×time" in text and "score+loo" in text
    assert len(table.records()) == 6
    assert table.to_dict()["estimators"]["mvd"]["scale"]["f_evals"] == 40
    with pytest.raises(KeyError, match="the table has"):
        table.row("nope", "loc")


def test_compare_is_deterministic_and_vectorize_agrees():
    kw = dict(estimators=["score"], num_samples=4, num_replicates=50, timing_repeats=2)
    a = dg.compare_estimators(PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(3), vectorize=False, **kw)
    b = dg.compare_estimators(PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(3), vectorize=False, **kw)
    c = dg.compare_estimators(PROBLEM.f, PROBLEM.dist, PROBLEM.params, jax.random.key(3), vectorize=True, **kw)
    assert [(r.mean, r.variance) for r in a.rows] == [(r.mean, r.variance) for r in b.rows]
    # Same keys, vmapped vs one call per key: equal up to float32 rounding.
    np.testing.assert_allclose([r.mean for r in a.rows], [r.mean for r in c.rows], rtol=1e-5)
    np.testing.assert_allclose([r.variance for r in a.rows], [r.variance for r in c.rows], rtol=1e-4)


def test_compare_estimators_specs_all_and_skip():
    dist = lambda p: rg.Laplace(p["loc"], p["scale"])
    table = dg.compare_estimators(
        PROBLEM.f, dist, PROBLEM.params, jax.random.key(1), estimators="all", num_samples=4,
        num_replicates=20, vectorize=False,
    )
    assert "pathwise" in table.estimators and "score" in table.estimators
    assert "measure_valued" not in table.estimators
    assert any("skipped measure_valued" in n for n in table.notes)
    with pytest.raises(TypeError, match="decomposition"):
        dg.compare_estimators(PROBLEM.f, dist, PROBLEM.params, jax.random.key(1),
                              estimators=["measure_valued"], num_replicates=5)


def test_stateful_baseline_and_extra_args():
    f = lambda x, k: jnp.square(x - k)
    table = dg.compare_estimators(
        f, PROBLEM.dist, PROBLEM.params, jax.random.key(2), jnp.float32(2.0),
        estimators=["score:moving_average"], num_samples=4, num_replicates=20, vectorize=False,
    )
    assert table.estimators == ["score:moving_average"]
    assert table.rows[0].f_evals == 4


def test_vector_params_rows_and_norm_rows():
    f = lambda x: jnp.sum(jnp.square(x))
    dist = lambda p: rg.MultivariateNormalDiag(p["loc"], p["scale"])
    params = {"loc": jnp.zeros(3), "scale": jnp.ones(3)}
    kw = dict(estimators=["pathwise"], num_samples=4, num_replicates=20, vectorize=False)
    t = dg.compare_estimators(f, dist, params, jax.random.key(0), exact={"loc": jnp.zeros(3), "scale": 2 * jnp.ones(3)}, **kw)
    assert [r.param for r in t.rows] == ["loc[0]", "loc[1]", "loc[2]", "scale[0]", "scale[1]", "scale[2]"]
    assert t.row("pathwise", "loc[0]").exact == 0.0
    t2 = dg.compare_estimators(f, dist, params, jax.random.key(0), max_elements=2, **kw)
    assert [r.param for r in t2.rows[:2]] == ["loc (norm)", "scale (norm)"]
    assert math.isnan(t2.rows[0].exact)


def test_count_calls_shapes_loops_and_higher_order():
    f = dg.counted(lambda x: jnp.sum(jnp.cos(x)))
    dist = lambda p: rg.Normal(p, 1.0)
    key = jax.random.key(0)
    assert dg.count_calls(rg.pathwise_grad(f, dist, num_samples=5), jnp.ones(3), key) == dg.CallCount(5, 5, True)
    assert dg.count_calls(rg.measure_valued_grad(f, lambda p: rg.Normal(p, jnp.ones(3)), num_samples=5), jnp.ones(3), key).f_evals == 65
    vm = jax.vmap(rg.score_grad(f, dist, num_samples=5), (None, 0))
    assert dg.count_calls(vm, jnp.ones(3), jax.random.split(key, 7)) == dg.CallCount(35, 0, True)
    scanned = lambda x: jax.lax.scan(lambda c, _: (c + f(c), None), x, None, length=4)[0]
    assert dg.count_calls(scanned, jnp.ones(2)).f_evals == 4
    looped = lambda x: jax.lax.while_loop(lambda c: jnp.sum(c) < 10.0, lambda c: c + f(c), x)
    assert dg.count_calls(looped, jnp.ones(2)).exact is False
    g = dg.counted(jnp.cos)
    assert dg.count_calls(jax.hessian(g), 1.0) == dg.CallCount(1, 2, True)
    assert float(jax.hessian(g)(1.0)) == pytest.approx(-math.cos(1.0), rel=1e-6)
    assert dg.count_calls(jax.grad(jnp.cos), 1.0) == dg.CallCount(0, 0, True)  # unmarked f


def test_parse_estimator():
    assert dg.parse_estimator("score:loo") == ("score:loo", "score", {"baseline": "loo"})
    assert dg.parse_estimator("measure_valued:uncoupled")[2] == {"coupled": False}
    assert dg.parse_estimator("measure_valued:coupled=False")[2] == {"coupled": False}
    assert dg.parse_estimator(("score", {"baseline": "loo"}))[1:] == ("score", {"baseline": "loo"})
    with pytest.raises(ValueError, match="Unknown estimator"):
        dg.parse_estimator("nope")
    with pytest.raises(ValueError, match="key=value"):
        dg.parse_estimator("pathwise:fast")
    with pytest.raises(TypeError, match="spec"):
        dg.parse_estimator(3)


def test_compare_errors_name_the_fix():
    grad = rg.pathwise_grad(PROBLEM.f, PROBLEM.dist, num_samples=2)
    with pytest.raises(TypeError, match="compare_estimators"):
        dg.compare([grad], PROBLEM.params, jax.random.key(0))
    with pytest.raises(ValueError, match="num_replicates"):
        dg.compare({"p": grad}, PROBLEM.params, jax.random.key(0), num_replicates=1)
    with pytest.raises(TypeError, match="structure of params"):
        dg.compare({"p": grad}, PROBLEM.params, jax.random.key(0), num_replicates=2, exact=[1.0])
    with pytest.raises(ValueError, match="Unknown cost"):
        dg.gaussian_problem("sin")


def test_exact_gradients_match_autodiff_of_closed_forms():
    # The closed-form expectations, differentiated by jax, against the hand-written gradients.
    def value(cost, k, mu, s):
        if cost == "quadratic":
            return (mu - k) ** 2 + s**2
        if cost == "cos":
            return jnp.cos(k * mu) * jnp.exp(-0.5 * k * k * s * s)
        t = 1 + 2 * k * s * s
        return jnp.exp(-k * mu * mu / t) / jnp.sqrt(t)

    for cost, k in [("quadratic", -1.5), ("cos", 2.5), ("exp", 0.7)]:
        g = jax.grad(value, argnums=(2, 3))(cost, k, 0.8, 1.3)
        ex = dg.exact_gaussian_gradient(cost, k, 0.8, 1.3)
        assert ex["loc"] == pytest.approx(float(g[0]), rel=1e-5, abs=1e-7)
        assert ex["scale"] == pytest.approx(float(g[1]), rel=1e-5, abs=1e-7)


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = tuple(
        dg.Row(e, p, 1.0, 1.0, 0.0, 0.1, v, 3.0, 1e-5, 8, 0, v * 1e-5, v * 8, 100)
        for e, v in (("a", 0.5), ("b", 2.0)) for p in ("loc", "scale")
    )
    table = dg.ComparisonTable(rows, title="t")
    assert "10.0 µs" in table.to_text()
    out = tmp_path / "t.png"
    fig = table.plot(out)
    assert out.stat().st_size > 1000
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_public_names_documented():
    for name in dg.__all__:
        obj = getattr(dg, name)
        if callable(obj) and not isinstance(obj, type(dg)):
            assert obj.__doc__, name
    assert rg.diagnostics is dg
