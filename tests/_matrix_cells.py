"""The cells of the matrix: (estimator variant, family, f, operators, N, R).

- every registered factory with its defaults: every family (those it must refuse included),
  every f, every operator (``_matrix_ops.FULL``);
- each value of each option on its own: baselines and control variates on every family the
  factory takes (plus the moving-support ones a score-function path must refuse), the other
  options on the core families; a smooth f, a step f for pathwise-type estimators, a masked f
  where there is one; the core operators;
- ``rg.with_control_variate`` on every factory without a control_variate option (core
  families), and the score function's optimal coefficient through it (every family);
- the score function's baseline × control variate products on the core families;
- third derivatives for a few every-order cells.

Left out by rule: Bernoulli(probs=0 or 1) except for the exact estimators (rule 6), and
K-sample bounds over families whose joint support is not enumerated here.
"""

from __future__ import annotations

import os
import zlib
from typing import NamedTuple

from _matrix_estimators import BASELINES, CVS, OPTION_VALUES, Variant, factories
from _matrix_families import FAMILIES
from _matrix_ops import CORE, FULL, INT_OPS, ORDER
from _matrix_rules import ACCEPTS, LOG_WEIGHT, PATHWISE_TYPE, optimal_coefficient, refusal

CORE_FAMILIES = ("normal", "gamma", "laplace", "bernoulli_logits", "categorical", "categorical_masked", "poisson", "numpyro_pareto")
THIRD = (("pathwise", ()), ("score", ()), ("score", (("baseline", "loo"),)), ("enumeration", ()), ("gumbel_softmax", ()))
THIRD_FAMILIES = ("normal", "gamma", "laplace", "bernoulli_logits", "categorical")
REFUSAL_OPS = ("value", "grad_joint", "hess_args")
# make test runs one statistical cell in SAMPLE_EVERY and one refusal-only cell (traced, never
# compiled: ~20 ms) in REFUSAL_EVERY, by a stable hash of the id; a statistical cell costs 1-10 s
# of CPU, mostly compiling (measured: 2.5 s on average), so the sample stays near a minute on 2 cores
# (measured with the graph, edge and log_prob files: 157 CPU-s at SAMPLE_EVERY = 64).
SAMPLE_EVERY = 96
REFUSAL_EVERY = 4


class Cell(NamedTuple):
    variant: Variant
    family: str
    f: str
    ops: tuple
    num_samples: int = 8
    replicates: int = 256

    @property
    def id(self):
        third = "|third" if self.ops == ("third",) else ""
        return f"{self.variant.id}|{self.family}|{self.f}{third}"

    def in_sample(self, refusal_only=False):
        return in_sample(self.id, REFUSAL_EVERY if refusal_only else SAMPLE_EVERY)


def in_sample(cell_id, every=SAMPLE_EVERY):
    """Whether this run checks the cell: ``REPGRAD_MATRIX`` = ``full`` (every cell), ``sample``
    (the default, ``make test``: the cells whose id hashes into slice 0 of ``every``) or
    ``slice:k`` (slice k of ``SAMPLE_EVERY``; slices 0..SAMPLE_EVERY-1 together are the full matrix)."""
    mode = os.environ.get("REPGRAD_MATRIX", "sample")
    if mode == "full":
        return True
    if mode.startswith("slice:"):
        return zlib.crc32(cell_id.encode()) % SAMPLE_EVERY == int(mode.removeprefix("slice:"))
    return zlib.crc32(cell_id.encode()) % every == 0


def _families_for(v, default):
    out = []
    for fam in FAMILIES.values():
        if fam.edge and v.factory not in ("enumeration", "measure_valued"):
            continue  # rule 6
        if v.factory in LOG_WEIGHT and fam.marginal is None and not fam.moving_support:
            continue  # no exact K-sample bound written for it
        if "softmax" in str(v.cv) and fam.kind != "categorical":
            continue
        if not default and not ACCEPTS[v.factory](fam) and not (fam.moving_support and v.factory in ("score", "vimco")):
            continue  # the family refusal is checked by the default variant
        out.append(fam)
    return out


def _fs(v, fam, default):
    # Beyond the defaults a step f matters where the estimator differentiates f (pathwise type, and
    # double CV / RODEO's control variates); a separable f (partial) for the measure-valued
    # estimator, whose gradient is then deterministic.
    extra = ("step",) if v.factory in PATHWISE_TYPE + ("double_cv", "rodeo") else ("partial",) if v.factory == "measure_valued" else ()
    extra = extra if fam.name in CORE_FAMILIES else ()
    # f with a key of its own (f_key=True): every default variant; the optimal coefficient (it
    # reruns the estimator per sample, with that sample's f key) on the core families.
    noisy = ("noisy",) if "smooth" in fam.fs and (default or (optimal_coefficient(v) and fam.name in CORE_FAMILIES)) else ()
    fs = fam.fs + noisy if default else tuple(k for k in fam.fs if k in ("smooth", "masked", "linear", "exp") + extra) + noisy
    if v.factory in LOG_WEIGHT:
        fs = tuple(k for k in fs if k in ("smooth", "step", "masked", "noisy"))
    if v.factory != "score" and not v.cv:
        fs = tuple(k for k in fs if k != "exp")  # the offset matters for baselines and coefficients
    return fs


def _num_samples(v):
    if v.factory in LOG_WEIGHT:
        return 4
    if v.factory == "score" and v.opts.get("baseline") == "loo" and str(v.cv).endswith("_opt"):
        return 4  # the leave-one-out coefficient's bias is largest at small N
    return 8


def _replicates(v, ops):
    """R: the score function's higher derivatives are heavy-tailed (products of scores), and 256
    replicates underestimate their standard error (z = 6 to 9 seen, gone at R = 4096)."""
    if ops == ("third",):
        return 2048
    return 1024 if v.factory in ("score", "vimco") else 512


def _cells_of(v, default, families=None):
    out = []
    for fam in _families_for(v, default):
        if families is not None and fam.name not in families:
            continue
        for fkind in _fs(v, fam, default):
            if refusal(v, fam) is not None:
                ops = REFUSAL_OPS
            elif fkind == "int":
                ops = INT_OPS
            else:
                ops = tuple(op for op in (FULL if default else CORE) if ORDER[op] in fam.orders)
            out.append(Cell(v, fam.name, fkind, ops, _num_samples(v), _replicates(v, ops)))
    return out


def variants():
    """(variant, is_default, families or None) for every variant of the matrix.

    Options that change how a factory reads the family (baselines, control variates) run on
    every family it takes; the others (temperatures, coupling, chunking, ...), and control
    variates wrapped around the estimators without a control_variate option, on the core
    families; the score's baseline × control variate products on the core families.
    """
    out = []
    for name in factories():
        out.append((Variant(name), True, None))
        for option, values in OPTION_VALUES[name].items():
            families = None if option in ("baseline", "control_variate") else CORE_FAMILIES
            for value in values[1:]:
                out.append((Variant(name, ((option, value),)), False, families))
        for cv in CVS:
            if "control_variate" in OPTION_VALUES[name] and not (name == "score" and cv.endswith("_opt")):
                continue  # the option is with_control_variate itself (the score's optimal coefficient is not)
            out.append((Variant(name, (), wrap=cv), False, None if name == "score" else CORE_FAMILIES))
    for b in BASELINES[1:]:
        for cv in CVS:
            out.append((Variant("score", (("baseline", b), ("control_variate", cv))), False, CORE_FAMILIES))
        for cv in ("delta_opt", "user_opt"):  # the wrapped form: refused where the baseline reads other samples
            out.append((Variant("score", (("baseline", b),), wrap=cv), False, CORE_FAMILIES))
    return out


def all_cells():
    cells = []
    for v, default, families in variants():
        cells += _cells_of(v, default, families)
    for name, options in THIRD:
        for fam in THIRD_FAMILIES:
            v = Variant(name, options)
            if ACCEPTS[name](FAMILIES[fam]):
                cells.append(Cell(v, fam, "smooth", ("third",), 8, _replicates(v, ("third",))))
    return cells


CELLS = all_cells()
