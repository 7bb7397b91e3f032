"""The decision list of docs/guides/choosing-an-estimator.md, checked against rg.select_estimator
(issue 19): each rule ends with "*Checked*: on <problem> the pilot picks `a` or `b`, never `c`";
this file holds each rule's problem, reads the estimators the rule names from the guide itself,
runs the pilot on exactly those candidates from three keys, and requires every choice to be among
the ones the rule says it picks. Editing a rule's claim without its problem, or adding a rule
without a problem here, fails.

Each rule's winner has a 2× or larger advantage in variance × time over the estimators the rule
says it beats (1.4× to 1000× in the guide's numbers), so it is expected on every key.
"""

import math
import pathlib
import re

import jax
import jax.numpy as jnp
import pytest

import repgrad as rg

GUIDE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "guides" / "choosing-an-estimator.md"
KEYS = [jax.random.key(300 + i) for i in range(3)]
normal = lambda p: rg.Normal(p["loc"], p["scale"])
mvn = lambda p: rg.MultivariateNormalDiag(p["loc"], p["scale"])


def _logistic():
    a = jax.random.normal(jax.random.key(7), (200, 20)) / 4.0
    y = (jax.random.uniform(jax.random.key(8), (200,)) < 0.5).astype(jnp.float32)
    return (lambda w: jnp.sum(jax.nn.softplus(a @ w) - y * (a @ w))), mvn, {"loc": jnp.zeros(20),
                                                                           "scale": 0.5 * jnp.ones(20)}


def _categorical():
    c = jax.random.normal(jax.random.key(11), (10, 10)) / 2.0

    def f(x):
        return (jnp.sum(jnp.take_along_axis(c, x[:, None], axis=1)) - 1.5) ** 2

    return f, lambda p: rg.Categorical(logits=p), jnp.zeros((10, 10), jnp.float32)


def _graph():
    def model(theta, key):  # the guide's model
        k0, k1 = jax.random.split(key)
        z0 = rg.sample(k0, rg.Normal(theta[0], 0.5), estimator="auto")
        z1 = rg.sample(k1, rg.Normal(theta[1], 1.0), estimator="auto")
        rg.cost(jnp.cos(6.0 * z0))
        return (z1 - 1.0) ** 2

    return rg.stochastic(model, num_samples=8, baseline="loo"), None, jnp.array([0.3, 0.2], jnp.float32)


def _scalar(loc, scale):
    return {"loc": jnp.float32(loc), "scale": jnp.float32(scale)}


PROBLEMS = {  # rule number -> (f, dist, params); dist None: an rg.stochastic objective
    1: _logistic,
    2: lambda: (lambda x: jnp.where(x > 0.5, 1.0, 0.0), normal, _scalar(0.3, 1.0)),
    3: lambda: (lambda x: jnp.cos(8.0 * x), normal, _scalar(0.3, 1.0)),
    4: lambda: (lambda x: jnp.exp(-jnp.square(x)), normal, _scalar(1.0, 1.0)),
    5: lambda: (lambda b: jnp.sin(3.0 * b[0] + 2.0 * b[1] * b[2]) + b[0] * b[2], lambda p: rg.Bernoulli(logits=p),
                jnp.array([0.3, -0.5, 0.8], jnp.float32)),
    6: _categorical,
    7: _graph,
}


def decision_list():
    """{rule number: (picks, never)} read from the guide's "A decision list" section."""
    text = GUIDE.read_text()
    section = text.split("## A decision list", 1)[1].split("\n## ", 1)[0]
    rules = {}
    for number, body in re.findall(r"^(\d+)\. (.*?)(?=^\d+\. |\Z)", section, re.S | re.M):
        checked = body.split("\n\n", 1)[0].split("*Checked*", 1)  # a rule ends at a blank line
        assert len(checked) == 2, f"rule {number} of the guide has no '*Checked*:' sentence"
        picks, _, never = checked[1].partition("never")
        rules[int(number)] = (re.findall(r"`([^`]+)`", picks.split("picks", 1)[1]), re.findall(r"`([^`]+)`", never))
    return rules


def test_every_rule_has_a_problem():
    rules = decision_list()
    assert sorted(rules) == sorted(PROBLEMS), "a rule of the guide's decision list needs its problem here (or vice versa)"
    for number, (picks, never) in rules.items():
        assert picks and never and not set(picks) & set(never), (number, picks, never)


@pytest.mark.parametrize("number", sorted(PROBLEMS))
def test_the_pilot_agrees_with_the_rule(number):
    picks, never = decision_list()[number]
    f, dist, params = PROBLEMS[number]()
    if dist is None:
        candidates = [tuple(label.split(",")) for label in picks + never]
        run = lambda key: rg.select_estimator(f, params, key, candidates=candidates, budget_s=120.0, num_replicates=100)
    else:
        run = lambda key: rg.select_estimator(f, dist, params, key, candidates=picks + never, budget_s=120.0,
                                              num_replicates=100)
    for key in KEYS:
        choice = run(key)
        assert choice.label in picks, (number, choice.label, str(choice))
        for label in never:  # measured and beaten, or excluded with a reason (no path derivative, biased, ...)
            excluded = dict(choice.excluded)
            assert label in excluded or choice.table.summary_of(label).ratio > 1.0, (number, label)
        assert math.isfinite(choice.table.summary_of(choice.label).var_x_time)
