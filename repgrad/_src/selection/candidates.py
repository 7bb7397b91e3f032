"""The candidates of ``select_estimator``: every registered estimator, with and without the
variance reduction that applies, minus what its contract does not cover.

Built from ``repgrad.ESTIMATORS`` at call time, so an estimator registered later joins with its
default options (IndeCateR, double CV, RODEO, unordered set, Rao-Blackwellized top-k and
Gumbel-Rao joined that way). Whether a candidate applies to a given f and dist is not decided
here but by tracing it (``select.py``): an estimator refuses what it cannot do at trace time,
with a message, and that message becomes the reason it is excluded.

Learned control variates with a default initialisation (REBAR, double CV, RODEO) are run with
``estimator.control_init()``, the ψ that ``fn.init_control_params()`` returns: the pilot
measures the estimator you would get on the first step, before ψ is trained (double CV's α = 0
and RODEO's α = β = 0 make them leave-one-out score functions that cost more). To compare at a
trained ψ, pass ``control_params={label: psi}`` to ``select_estimator``.

What is never a default candidate, and why:

- a biased estimator (``Estimator.biased``: Gumbel-softmax, straight-through, Gumbel-Rao, and
  anything built on them): a relaxation; with ``allow_biased=True`` they are candidates, ranked
  by MSE against an unbiased reference;
- an estimator whose f is a per-sample log-weight inside a K-sample bound (``log_weight``:
  VIMCO, multi-sample DisARM): it estimates the gradient of another objective than E[f];
- an estimator that needs arguments of the user's (RELAX's control network and its ψ): pass
  it as a value in ``candidates=`` and its ψ in ``control_params=``;
- variance reduction outside the tested contract of issue 16, or costly for what it buys: the
  optimal control-variate coefficient (``coefficient="optimal"``, unbiased with every baseline
  since its leave-one-out coefficient was fixed, but a per-sample regression that costs a
  second pass; pass it as a value, e.g. ``rg.score(baseline="loo",
  control_variate=rg.delta_method(coefficient="optimal"))``) and the moving-average baseline
  (its state carries over calls: a pilot of independent gradients from the initial state would
  measure its first call only).
"""

from __future__ import annotations

from typing import NamedTuple

from .. import registry
from ..core.estimator import Estimator

# The variance reduction that applies, per registered name: (label, options). Only combinations
# covered by the statistical contract (every one unbiased); see the module docstring.
VARIANTS = {
    "pathwise": (("pathwise", {}), ("pathwise+delta", {"control_variate": "delta"})),
    "score": (
        ("score:loo", {"baseline": "loo"}),
        ("score:optimal", {"baseline": "optimal"}),  # optimal_baseline("loo"): unbiased
        ("score:loo+delta", {"baseline": "loo", "control_variate": "delta"}),  # coefficient 1
        ("score", {}),
    ),
    "measure_valued": (("measure_valued", {}), ("measure_valued+delta", {"control_variate": "delta"})),
}

# Compilation order (the pilot may run out of budget before the last): exact and usually strong
# estimators first (pathwise+delta is exact for quadratic f and strong for smooth f), then the
# rest in registry order; names not listed here come in between. Those that do not apply fail
# at trace time, which is cheap, so one order serves continuous and discrete problems.
_FIRST = ("enumeration", "pathwise", "pathwise+delta", "disarm", "score:loo", "measure_valued", "score:optimal", "arm")
_LAST = ("score:loo+delta", "measure_valued+delta", "rebar", "score")

_RESOLVED: dict = {}  # (name, options) -> Estimator: one value per candidate, stable across calls


class Candidate(NamedTuple):
    """One candidate estimator, or one excluded with the reason.

    Attributes:
      label: its name in tables (``"score:loo"``, ``"pathwise+delta"``).
      estimator: the ``Estimator`` value (None when it could not be built).
      biased: whether it is biased (ranked by MSE, a candidate only with ``allow_biased``).
      excluded: why it is not a candidate, or None.
    """

    label: str
    estimator: Estimator | None
    biased: bool
    excluded: str | None = None


def _resolve(name, options):
    key = (name, tuple(sorted(options.items())))
    if key not in _RESOLVED:
        _RESOLVED[key] = registry.resolve(name, options)
    return _RESOLVED[key]


def _classify(label, estimator, allow_biased) -> Candidate:
    biased = estimator.biased
    if estimator.log_weight:
        return Candidate(label, estimator, biased, "f is a log-weight inside a K-sample bound: it estimates another "
                                                   "objective's gradient, not that of E[f]")
    if biased and not allow_biased:
        return Candidate(label, estimator, biased, "biased (a relaxation): a candidate only with allow_biased=True, "
                                                   "then ranked by MSE")
    return Candidate(label, estimator, biased)


def _order(label):
    if label in _FIRST:
        return (0, _FIRST.index(label))
    if label in _LAST:
        return (2, _LAST.index(label))
    return (1, 0)


def default_candidates(*, allow_biased: bool = False) -> list[Candidate]:
    """Every registered estimator with each variant of ``VARIANTS`` (or its defaults), classified."""
    out = []
    for name in registry.distinct_names():
        for label, options in VARIANTS.get(name, ((name, {}),)):
            try:
                estimator = _resolve(name, options)
            except (TypeError, ValueError) as e:
                out.append(Candidate(label, None, False,
                                     f"needs arguments of yours ({_first_line(e)}): pass it as a value in candidates="))
                continue
            out.append(_classify(label, estimator, allow_biased))
    return sorted(out, key=lambda c: _order(c.label))


def parse_candidates(specs, *, allow_biased: bool = False) -> list[Candidate]:
    """Candidates given by the user: estimator values, registry spec strings (``"score:loo"``) or
    the labels of ``VARIANTS`` (``"pathwise+delta"``)."""
    labels = {label: (name, options) for name, variants in VARIANTS.items() for label, options in variants}
    out: list[Candidate] = []
    for spec in [specs] if isinstance(specs, (str, Estimator)) else list(specs):
        if isinstance(spec, Estimator):
            out.append(_classify(spec.name, spec, allow_biased))
            continue
        if not isinstance(spec, str):
            raise TypeError(f"candidates must be estimator values or spec strings like 'score:loo'; got {spec!r}.")
        name, options = labels[spec] if spec in labels else registry.parse_spec(spec)
        estimator = _resolve(name, options)  # a bad spec or option raises, naming the fix
        out.append(_classify(spec, estimator, allow_biased))
    return _unique(out)


def _unique(candidates):
    """Candidates with distinct labels: a repeated label (two values of one estimator) gets " #2"."""
    seen, out = set(), []
    for c in candidates:
        label, k = c.label, 2
        while label in seen:
            label, k = f"{c.label} #{k}", k + 1
        seen.add(label)
        out.append(c._replace(label=label))
    return out


def _first_line(error) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."
