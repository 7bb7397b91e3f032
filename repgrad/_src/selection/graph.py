"""``select_estimator`` on an ``rg.stochastic`` objective: pathwise or score for each
``rg.sample(..., estimator="auto")`` node, by a pilot run of the whole graph's gradient.

Each candidate is an assignment of the auto nodes (program order), the gradient
``jax.grad(objective.with_estimators(assignment))``: the variance × time of the graph's gradient
decides, so interactions between nodes (a score node's variance grows with the costs downstream
of it, which a pathwise node upstream changes) are measured, not modelled. A node whose family
allows one estimator only (a Bernoulli: score; a support that moves with the parameters:
pathwise) gets it. Refusals are ``rg.stochastic``'s own: a pathwise node whose cost is
discontinuous raises ``rg.ZeroGradientError`` at trace time, and that assignment is excluded
with the message, which names the auto node.

Search: all 2^k assignments for k ≤ ``EXHAUSTIVE_MAX`` nodes with a choice. Beyond, a greedy
search in two rounds: (1) all-pathwise, all-score and every single-node change of each
(2k + 2 assignments); (2) the best of round 1 against the better of all-pathwise / all-score
with every change that lowered its variance × time applied together.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax

from ..graph import stochastic as _stochastic
from . import pilot

EXHAUSTIVE_MAX = 4
ROUND_ONE_SHARE = 0.65  # of budget_s, for the greedy search's first round


class NodeChoice(NamedTuple):
    """The estimator chosen for one auto node of a graph.

    Attributes:
      index: the node's place among the auto nodes, in program order.
      dist: its distribution's class name.
      estimator: ``"pathwise"`` or ``"score"``.
      options: the estimators that apply to its family.
      note: why an estimator did not apply (its family, or a refusal at trace time), or ``""``.
    """

    index: int
    dist: str
    estimator: str
    options: tuple
    note: str = ""

    def __str__(self) -> str:
        text = f"auto node #{self.index} ({self.dist}): {self.estimator}"
        return text + (f" ({self.note})" if self.note else "")

    def short(self) -> str:
        """``#i Dist: estimator``, with why the other did not apply in a few words."""
        text = f"#{self.index} {self.dist}: {self.estimator}"
        if len(self.options) == 1:
            return text + " (the only one that applies)"
        if self.note:
            return text + f" ({self.note.split(':')[0]})"
        return text


def is_objective(f) -> bool:
    """Whether ``f`` is an objective returned by ``rg.stochastic``."""
    return callable(f) and callable(getattr(f, "with_estimators", None)) and callable(getattr(f, "auto_nodes", None))


def label(assignment) -> str:
    return ",".join(assignment)


def _trial(objective, assignment) -> pilot.Trial:
    obj = objective.with_estimators(assignment)
    return pilot.Trial(label(assignment), False, ("graph", obj), lambda: jax.grad(obj))


def _all(nodes, free, estimator):
    return tuple(estimator if n.index in free else n.options[0] for n in nodes)


def _flip(assignment, i):
    return tuple(("score" if e == "pathwise" else "pathwise") if j == i else e for j, e in enumerate(assignment))


def _exhaustive(nodes, free):
    first = [_all(nodes, free, "pathwise"), _all(nodes, free, "score")]
    rest = []
    for combo in itertools.product(("pathwise", "score"), repeat=len(free)):
        chosen = dict(zip(free, combo, strict=True))
        rest.append(tuple(chosen.get(n.index, n.options[0]) for n in nodes))
    return list(dict.fromkeys(first + rest))


def _given(objective, candidates, nodes):
    out = []
    for c in candidates:
        a = _stochastic._assignment(c)
        if len(a) != len(nodes) or any(e is None for e in a):
            raise ValueError(f"each candidate assigns one estimator to each of the {len(nodes)} auto nodes "
                             f"({', '.join(n.dist for n in nodes)}); got {c!r}.")
        out.append(a)
    return list(dict.fromkeys(out))


def select(objective, params, key, args, *, candidates, budget_s, num_samples, num_replicates, min_replicates, exact,
           progress, clock) -> pilot.Selection:
    """``select_estimator`` for an ``rg.stochastic`` objective (see the module docstring)."""
    start = clock()
    n_obj = objective.num_samples
    if num_samples is not None and num_samples != n_obj:
        raise ValueError(f"an rg.stochastic objective is compared at its own num_samples ({n_obj}); got "
                         f"num_samples={num_samples}. Build it with rg.stochastic(fn, num_samples={num_samples}).")
    nodes = objective.auto_nodes(params, key, *args)
    if not nodes:
        raise ValueError("this rg.stochastic objective has no rg.sample(..., estimator='auto') node, so there is "
                         "nothing to choose; mark the nodes whose estimator you want chosen with estimator='auto'.")
    free = [n.index for n in nodes if len(n.options) == 2]
    common = dict(num_replicates=num_replicates, min_replicates=min_replicates, clock=clock, progress=progress,
                  exact=exact, num_samples=n_obj)
    title = f"select_estimator: rg.stochastic graph, N = {n_obj}, auto nodes " + ", ".join(
        f"#{n.index} {n.dist}" for n in nodes)
    tried, notes = [], []
    if candidates is not None or len(free) <= EXHAUSTIVE_MAX:
        assignments = _given(objective, candidates, nodes) if candidates is not None else _exhaustive(nodes, free)
        tried += assignments
        result = pilot.run([_trial(objective, a) for a in assignments], params, key, args, budget_s=budget_s,
                           start=start, title=title, **common)
        compile_s = result.compile_s
    else:
        all_p, all_s = _all(nodes, free, "pathwise"), _all(nodes, free, "score")
        first = list(dict.fromkeys([all_p, all_s] + [_flip(b, i) for b in (all_p, all_s) for i in free]))
        tried += first
        one = pilot.run([_trial(objective, a) for a in first], params, key, args,
                        budget_s=ROUND_ONE_SHARE * budget_s, start=start, title=title, **common)
        measured = {s.estimator: s for s in one.table.summary if s.finite}
        bases = [b for b in (all_p, all_s) if label(b) in measured]
        base = min(bases, key=lambda b: measured[label(b)].var_x_time) if bases else None
        combined = base
        if base is not None:
            for i in free:
                flipped = measured.get(label(_flip(base, i)))
                if flipped is not None and flipped.var_x_time < measured[label(base)].var_x_time:
                    combined = _flip(combined, i)
        best = next(a for a in first if label(a) == one.label)
        notes.append(f"greedy search over {len(free)} nodes: round 1 measured {len(measured)} of {len(first)} "
                     f"assignments (best: {one.label})")
        result, compile_s = one, one.compile_s
        if combined is not None and label(combined) not in measured:
            tried.append(combined)
            two = pilot.run([_trial(objective, a) for a in (best, combined)], params, key, args,
                            budget_s=max(budget_s - (clock() - start), 0.0), start=clock(), title=title,
                            note_excluded=one.excluded, **common)
            notes.append(f"round 2: {one.label} against every improving change applied ({label(combined)})")
            result, compile_s = two, one.compile_s + two.compile_s
    chosen = next(a for a in tried if label(a) == result.label)
    choices = _node_choices(nodes, chosen, tried, result)
    pilot_s = clock() - start
    table = result.table
    table = table._replace(title=f"{table.title}; {table.summary[0].replicates} gradients per assignment",
                           notes=table.notes + tuple(notes) + (pilot.cost_note(result, pilot_s, compile_s),))
    reason = result.reason + " Per node: " + "; ".join(c.short() for c in choices) + "."
    return pilot.Selection(chosen, result.label, n_obj, table, reason, tuple(result.excluded), pilot_s, compile_s,
                           objective.with_estimators(chosen), tuple(choices))


def _node_choices(nodes, chosen, tried, result):
    """Per auto node: its estimator, and why the other one did not apply."""
    measured = {s.estimator for s in result.table.summary}
    refused = dict(result.excluded)
    out = []
    for n in nodes:
        note = ""
        if len(n.options) == 1:
            note = ("only pathwise applies: its support moves with its parameters" if n.options[0] == "pathwise"
                    else "only score applies: not reparameterizable")
        else:
            for e in n.options:
                with_e = [label(a) for a in tried if a[n.index] == e]
                reasons = [refused[lb] for lb in with_e
                           if lb in refused and not refused[lb].startswith(("not compiled", "too costly"))]
                if with_e and not any(lb in measured for lb in with_e) and len(reasons) == len(with_e):
                    own = [r for r in reasons if f"auto node #{n.index} " in r]
                    note = f"{e} does not apply: {(own or reasons)[0]}"
        out.append(NodeChoice(n.index, n.dist, chosen[n.index], n.options, note))
    return out
