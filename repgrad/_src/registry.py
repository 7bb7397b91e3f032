"""The one registry of estimator names, shared by ``rg.expectation``, ``rg.grad`` & co. and
the command-line tool: a name (with options) resolves to an ``Estimator`` value.

Spec strings, as the CLI takes them: ``"name[:option,key=value,...]"``; ``"score:loo"`` is
``rg.score(baseline="loo")``, ``"measure_valued:uncoupled"`` is
``rg.measure_valued(coupled=False)``, and ``key=value`` pairs are options (values read as
Python literals, else strings).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType

from .core.estimator import Estimator
from .estimators.arm import arm
from .estimators.disarm import disarm
from .estimators.disarm_multisample import disarm_multisample
from .estimators.double_cv import double_cv
from .estimators.enumeration import enumeration
from .estimators.gumbel_rao import gumbel_rao
from .estimators.gumbel_softmax import gumbel_softmax, straight_through
from .estimators.indecater import indecater
from .estimators.measure_valued import measure_valued
from .estimators.pathwise import pathwise
from .estimators.rao_blackwell import rao_blackwell
from .estimators.rebar import rebar
from .estimators.relax import relax
from .estimators.rodeo import rodeo
from .estimators.score import score
from .estimators.unordered_set import unordered_set
from .estimators.vimco import vimco

ESTIMATORS: Mapping[str, Callable[..., Estimator]] = MappingProxyType(
    {
        "pathwise": pathwise,
        "reparameterization": pathwise,
        "score": score,
        "score_function": score,
        "reinforce": score,
        "measure_valued": measure_valued,
        "gumbel_softmax": gumbel_softmax,
        "concrete": gumbel_softmax,
        "straight_through": straight_through,
        "straight_through_gumbel_softmax": straight_through,
        "arm": arm,
        "disarm": disarm,
        "disarm_multisample": disarm_multisample,
        "vimco": vimco,
        "rebar": rebar,
        "relax": relax,
        "enumeration": enumeration,
        "exact": enumeration,
        "indecater": indecater,
        "double_cv": double_cv,
        "rodeo": rodeo,
        "unordered_set": unordered_set,
        "rao_blackwell": rao_blackwell,
        "gumbel_rao": gumbel_rao,
    }
)


def distinct_names() -> list[str]:
    """Each distinct registered estimator once, under its first name (aliases dropped)."""
    seen, names = set(), []
    for name, factory in ESTIMATORS.items():
        if factory not in seen:
            seen.add(factory)
            names.append(name)
    return names


# Short options after a colon: "score:loo" means baseline="loo".
_SHORTHAND = {"score": "baseline", "score_function": "baseline", "reinforce": "baseline"}
_FLAGS = {"measure_valued": {"coupled": {"coupled": True}, "uncoupled": {"coupled": False}}}


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"name[:option,key=value,...]"`` → ``(name, options)``; a ``ValueError`` naming the fix."""
    if not isinstance(spec, str):
        raise TypeError(f"estimator spec must be a string like 'score:loo', got {spec!r}.")
    name, _, rest = spec.partition(":")
    options: dict = {}
    for part in filter(None, rest.split(",")):
        if "=" in part:
            key, value = part.split("=", 1)
            try:
                options[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                options[key] = value
        elif name in _FLAGS and part in _FLAGS[name]:
            options.update(_FLAGS[name][part])
        elif name in _SHORTHAND:
            options[_SHORTHAND[name]] = part
        else:
            raise ValueError(f"Cannot read option {part!r} of {spec!r}; write it as key=value, e.g. '{name}:coupled=False'.")
    if name not in ESTIMATORS:
        raise ValueError(f"Unknown estimator {name!r} in {spec!r}; choose one of {sorted(ESTIMATORS)}.")
    return name, options


def resolve(estimator, options: Mapping | None = None) -> Estimator:
    """An ``Estimator`` from a value, or from a name/spec string and its options."""
    options = dict(options or {})
    if isinstance(estimator, Estimator):
        if options:
            raise TypeError(
                f"options {sorted(options)} were given with an estimator value; pass them to its "
                f"factory instead, e.g. rg.score(baseline='loo'), or name it: estimator='score'."
            )
        return estimator
    if not isinstance(estimator, str):
        raise TypeError(
            f"estimator must be a name such as 'score' or a value such as rg.score(baseline='loo'), "
            f"got {estimator!r}."
        )
    name, spec_options = parse_spec(estimator)
    factory = ESTIMATORS[name]
    options = {**spec_options, **options}
    valid = [n for n, p in inspect.signature(factory).parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"estimator {name!r} got unknown option(s) {unknown}; {name!r} accepts "
            f"{sorted(valid) or 'no options'}. Options of other estimators (e.g. baseline= for "
            "'score') do not apply to it."
        )
    return factory(**options)
