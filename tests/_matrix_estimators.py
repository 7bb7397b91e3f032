"""The estimator variants of the matrix, derived from ``rg.ESTIMATORS``.

``OPTION_VALUES`` declares, for every registered factory, the values each keyword option is
run with (the first is the default). A factory or option missing here fails
``test_matrix.py::test_every_registered_option_is_declared``. Symbolic values (``"user"``,
``"optimal_fresh"``, ...) are resolved per family by ``build``.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import jax
import jax.numpy as jnp

import repgrad as rg
from repgrad._src import registry


def relax_control(z, psi, w):
    """RELAX's c_ψ(z): differentiable in z and ψ (a scalar)."""
    return psi * jnp.sum(jax.nn.sigmoid(z)) * w


CVS = ("delta", "delta_dp", "user", "user_softmax", "delta_opt", "user_opt", "user_softmax_opt")
# optimal_baseline("same") was removed from the library (biased); "optimal" is optimal_baseline("loo").
BASELINES = (None, "loo", "moving_average", "optimal", "optimal_fresh")

OPTION_VALUES = {
    "pathwise": {"allow_zero_gradient": (False, True), "control_variate": (None,) + CVS},
    "score": {"baseline": BASELINES, "control_variate": (None,) + CVS},
    "measure_valued": {"coupled": (True, False), "chunk_size": (None, 3), "control_variate": (None,) + CVS},
    "gumbel_softmax": {"temperature": (1.0, 0.5), "straight_through": (False, True)},
    "straight_through": {"temperature": (1.0, 0.5)},
    "arm": {},
    "disarm": {},
    "disarm_multisample": {},
    "vimco": {},
    "rebar": {"eta": (1.0, 0.5), "temperature": (0.5, 0.3)},
    "relax": {"control": ("relax_control",)},
    "enumeration": {"max_configurations": (4096, 4)},
    "indecater": {"chunk_size": (None, 3)},
    "double_cv": {"alpha": (0.0, 0.7)},  # the initial α of control_init(), which the cells are called with
    "rodeo": {"hidden": (100, 8), "seed": (0, 1)},
    "unordered_set": {"k": (4, 2)},
    "rao_blackwell": {"k": (4, 1)},
    "gumbel_rao": {"temperature": (1.0, 0.5), "num_gumbels": (10, 1)},
}

# Factories whose samples reach f as one-hot vectors for a Categorical (relaxations).
ONEHOT = ("gumbel_softmax", "straight_through", "rebar", "relax", "gumbel_rao")


def factories():
    """The distinct factories of ``rg.ESTIMATORS``, by their first registered name."""
    return registry.distinct_names()


def keyword_options(name):
    sig = inspect.signature(rg.ESTIMATORS[name])
    return [n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


class Variant(NamedTuple):
    """An estimator with options: ``factory(**options)``, optionally wrapped by
    ``rg.with_control_variate(·, wrap)``. Values are symbolic (see ``build``)."""

    factory: str
    options: tuple = ()  # ((name, value), ...) non-default options only
    wrap: str | None = None

    @property
    def opts(self):
        return dict(self.options)

    @property
    def id(self):
        inner = self.factory + ("(" + ",".join(f"{k}={v}" for k, v in self.options) + ")" if self.options else "")
        return f"with_cv({inner},{self.wrap})" if self.wrap else inner

    @property
    def cv(self):
        """The control variate, wherever it is given."""
        return self.wrap or self.opts.get("control_variate")

    @property
    def onehot(self):
        return self.factory in ONEHOT


def control_variate(symbol, family, onehot):
    """A ``rg.ControlVariate`` for a symbolic value."""
    if symbol is None:
        return None
    coefficient = "optimal" if symbol.endswith("_opt") else 1.0
    base = symbol.removesuffix("_opt")
    if base == "delta":
        return rg.delta_method(coefficient=coefficient)
    if base == "delta_dp":
        return rg.delta_method(differentiable_point=True)
    from _matrix_fs import coordinates

    def h(x, w):
        return jnp.sum(coordinates(x, family, onehot, w.dtype))

    if base == "user_softmax":  # Categorical: E[h] written with softmax(d.logits), not d.probs
        expected = lambda d, w: family.user_mean(d, logits=True)
    else:
        expected = lambda d, w: family.user_mean(d)
    return rg.control_variate(h, expected, coefficient=coefficient)


def _option(name, value, family, onehot):
    if name == "control_variate":
        return control_variate(value, family, onehot)
    if name == "baseline" and value is not None and value.startswith("optimal_"):
        return rg.optimal_baseline(value.removeprefix("optimal_"))
    if name == "control" and value == "relax_control":
        return relax_control
    return value


def build(variant, family):
    """The ``rg.Estimator`` of ``variant`` for ``family`` (may raise: a construction-time refusal)."""
    opts = {n: _option(n, v, family, variant.onehot) for n, v in variant.options}
    if variant.factory == "relax" and "control" not in opts:
        opts["control"] = relax_control
    est = rg.ESTIMATORS[variant.factory](**opts)
    if variant.wrap:
        est = rg.with_control_variate(est, control_variate(variant.wrap, family, variant.onehot))
    return est


# Learned control parameters away from their trivial start (RODEO's α = β = 0 is REINFORCE with a
# leave-one-out baseline): the estimators are unbiased for every value, which is what is checked.
CONTROL_PARAMS = {
    "rodeo": lambda psi: dict(psi, alpha=jnp.float32(0.4), beta=jnp.float32(0.8)),
}


def call_inputs(est, variant):
    """Keyword inputs of a call: a moving-average state that has seen earlier calls, ψ."""
    kw = {}
    if est.stateful:
        state = est.init()
        kw["baseline_state"] = state._replace(value=jnp.asarray(0.5, state.value.dtype), count=jnp.asarray(3, state.count.dtype))
    if est.control_init is not None:
        if variant.factory == "relax":  # ψ belongs to the user (control_init() raises, naming the fix)
            kw["control_params"] = jnp.float32(0.5)
        else:
            kw["control_params"] = CONTROL_PARAMS.get(variant.factory, lambda psi: psi)(est.control_init())
    return kw
