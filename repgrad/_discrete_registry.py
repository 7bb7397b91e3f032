"""Registers the discrete estimators with ``repgrad.expectation``.

Names: "gumbel_softmax"/"concrete" (option ``temperature``, ``straight_through``),
"straight_through" (ST Gumbel-softmax), "arm", "disarm", "rebar" and "relax" (their
control-variate parameters go in as ``control_params=psi``; the loss then returns
``(loss, psi_grads)``; RELAX needs ``control=c``), "vimco" and "disarm_multisample"
(f is then the per-sample log-weight and the value the K-sample bound), and
"enumeration"/"exact" (``num_samples`` ignored). Leave-one-out REINFORCE is
``estimator="score", baseline="loo"``.
"""

from __future__ import annotations

from . import _arm, _enumeration, _multisample, _rebar, _relaxed
from ._expectation import register_estimator

for _name, _builder in {
    "gumbel_softmax": _relaxed._gumbel_softmax_surrogate,
    "concrete": _relaxed._gumbel_softmax_surrogate,
    "straight_through": _relaxed._straight_through_surrogate,
    "straight_through_gumbel_softmax": _relaxed._straight_through_surrogate,
    "arm": _arm._arm_surrogate,
    "disarm": _arm._disarm_surrogate,
    "rebar": _rebar._rebar_surrogate,
    "relax": _rebar._relax_surrogate,
    "vimco": _multisample._vimco_surrogate,
    "disarm_multisample": _multisample._disarm_multisample_surrogate,
    "enumeration": _enumeration._enumeration_surrogate,
    "exact": _enumeration._enumeration_surrogate,
}.items():
    register_estimator(_name, _builder)
