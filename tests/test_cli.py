"""The ``repgrad`` command line: help, compare on built-in and user problems, errors."""

import json
import subprocess
import sys
import textwrap

import pytest

from repgrad import cli


def test_help_is_helpful(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("compare", "demo", "--function MODULE:NAME", "score:loo", "Gauss-Hermite"):
        assert word in out
    with pytest.raises(SystemExit):
        cli.main(["compare", "--help"])
    out = capsys.readouterr().out
    assert "--num-samples" in out and "--plot" in out and "--estimators" in out and "--equal-cost" in out


def test_compare_builtin_problem_writes_table_plot_and_json(tmp_path, capsys):
    png, js = tmp_path / "out.png", tmp_path / "out.json"
    code = cli.main([
        "compare", "--problem", "quadratic", "--k", "-1", "--num-samples", "4", "--replicates", "50",
        "--estimators", "pathwise,score:loo", "--plot", str(png), "--json", str(js),
    ])
    assert code == 0
    captured = capsys.readouterr()
    assert "E[(x − -1)²]" in captured.out and "score:loo" in captured.out and "var×time" in captured.out
    assert "100%" in captured.err  # the progress bar went to stderr
    assert png.stat().st_size > 1000
    data = json.loads(js.read_text())
    assert data["estimators"]["pathwise"]["loc"]["exact"] == pytest.approx(4.0)  # 2(μ − k) = 2(1 + 1)
    assert data["estimators"]["score:loo"]["scale"]["f_evals"] == 4


def test_compare_user_function_and_problem_factory(tmp_path, capsys, monkeypatch):
    (tmp_path / "userprob.py").write_text(textwrap.dedent("""
        import jax.numpy as jnp
        import repgrad as rg

        def f(x):
            return x ** 2

        def make():
            return (f, lambda p: rg.Normal(p, 1.0), jnp.float32(0.5), jnp.float32(1.0))
    """))
    monkeypatch.chdir(tmp_path)
    js = tmp_path / "f.json"
    argv = ["compare", "--function", "userprob:f", "--loc", "0.5", "--scale", "2", "--num-samples", "4",
            "--replicates", "20", "--estimators", "score", "--json", str(js), "--quiet"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "Gauss-Hermite" in out
    rows = json.loads(js.read_text())["estimators"]["score"]
    # E[x²] = μ² + σ²: ∂μ = 2μ = 1, ∂σ = 2σ = 4; quadrature is exact for polynomials.
    assert rows["loc"]["exact"] == pytest.approx(1.0, rel=1e-6)
    assert rows["scale"]["exact"] == pytest.approx(4.0, rel=1e-6)
    assert cli.main(["compare", "--problem", "userprob.py:make", "--replicates", "10", "--num-samples", "2",
                     "--estimators", "pathwise", "--quiet"]) == 0
    assert "params" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--problem", "sine"], "built-in problems"),
        (["compare", "--function", "nocolon"], "MODULE:NAME"),
        (["compare", "--function", "json:nope"], "has no attribute"),
        (["compare", "--problem", "cos", "--estimators", "nope"], "Unknown estimator"),
        (["compare", "--problem", "cos", "--scale", "0"], "--scale must be > 0"),
    ],
)
def test_errors_name_the_fix(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_list_and_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "repgrad", "list"], capture_output=True, text=True, check=True).stdout
    assert "pathwise" in out and "quadratic" in out


@pytest.mark.slow
def test_demo_runs_small(capsys, monkeypatch):
    assert [c for c, _ in cli.DEMO_PROBLEMS] == ["quadratic", "cos", "exp"]
    monkeypatch.setattr(cli, "DEMO_PROBLEMS", (("cos", 2.0),))  # one problem keeps the test short
    assert cli.main(["demo", "--num-samples", "2", "--replicates", "5"]) == 0
    out = capsys.readouterr().out
    for text in ("E[cos(2·x)]", "pathwise", "score:loo", "measure_valued", "time/grad", "Total"):
        assert text in out
