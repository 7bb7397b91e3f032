"""What every cell of the matrix must do: the ONE place where expectations are declared.

The rules mirror README's estimator table ("for", "unbiased", "derivative orders") and its
common-mistakes table. For a cell (estimator variant, family, f) and a derivative operator
(``_matrix_ops.ORDER``), the outcome is one of

- ``Exact(mode)``: an unbiased estimate, checked at 5 standard errors against the float64 exact
  value of E[f] (``"plain"``), of the relaxed objective E[f(relaxed)] (``"relaxed"``), or of the
  K-sample bound E[log (1/K) Σ_k exp f(x_k)] (``"bound"``);
- ``Raises(errors)``: refused at trace time with one of ``errors`` — never a number;
- ``Either(errors, mode)``: refused with ``errors`` or exact (where the docs leave it open;
  ``mode=None``: or finite, where no exact value is written);
- ``Biased(why)``: biased by design and documented; checked to be finite.

The rules, in order:

1. **Which families.** pathwise: reparameterizable; score, VIMCO: any fixed support (a support
   that moves with a parameter — Uniform, Pareto(scale=θ), TruncatedNormal(low=θ) — is
   refused); measure-valued: repgrad's Normal, MVNDiag, Gamma, Exponential, Poisson,
   Bernoulli, Categorical; ARM/DisARM/multi-sample DisARM, double CV, RODEO: Bernoulli;
   Gumbel-softmax, straight-through, Gumbel-Rao, REBAR, RELAX, IndeCateR, unordered set,
   Rao-Blackwellized top-k, enumeration: Bernoulli or Categorical. Outside: ``TypeError``.
   ``enumeration(max_configurations=4)`` on more configurations: ``ValueError``.
2. **Variance reduction.** ``delta_method``: repgrad's factorized families with mean() and
   variance() (not Categorical, Dirichlet, MultivariateNormalTri, peers): ``TypeError``
   elsewhere. ``baseline="optimal"`` and ``rg.score``'s ``coefficient="optimal"``: repgrad's
   factorized families, ``TypeError`` elsewhere; the score's optimal coefficient with an optimal
   baseline: ``TypeError``. ``with_control_variate`` refuses enumeration and the log-weight
   estimators (VIMCO, multi-sample DisARM); its ``coefficient="optimal"`` runs the estimator one
   sample at a time and so refuses stateful estimators, learned control variates (REBAR, RELAX,
   double CV, RODEO) and estimators that need several samples per call (a score function with
   a leave-one-out or optimal baseline, double CV, RODEO): ``TypeError``.
3. **f.** An integer-valued f is refused with a ``TypeError`` naming the cast, or accepted
   with a correct estimate; pathwise-type estimators (pathwise, Gumbel-softmax,
   straight-through) refuse it. A step f (``>``, ``jnp.heaviside``, or a step in one
   coordinate) under a pathwise-type estimator raises ``rg.ZeroGradientError`` for every
   derivative involving θ — also with a control variate and in ``argnums=(0, 2)``, ``jvp``,
   ``value_and_grad``; ``allow_zero_gradient=True`` opts out (documented). Gumbel-Rao is a
   straight-through estimator: the same. Double CV and RODEO differentiate f at the binary
   points only for their control variate: with a step f they stay exact. REBAR, whose control
   variate η f(σ_λ(z)) needs f differentiable at relaxed points, refuses it the same way or is
   exact. A masked f (−inf
   only at a never-drawn category) is exact and finite.
4. **Orders.** The value, first derivatives and the Hessian in f's own arguments alone are
   estimated by every accepted cell. Mixed (θ, w) and θθ derivatives: estimators unbiased at
   every order (pathwise, score with no/loo/moving-average baseline and numeric control
   variates, Gumbel-softmax's relaxed objective, enumeration) estimate them; first-order
   estimators (measure-valued, ARM, DisARM, multi-sample DisARM, VIMCO, REBAR, RELAX,
   straight-through, Gumbel-Rao, IndeCateR, double CV, RODEO, unordered set, Rao-Blackwellized
   top-k, the optimal baseline and coefficient) raise ``rg.DerivativeOrderError``.
   The score function in a parameter its log-density is only once differentiable in
   (Laplace's loc: a kink at x = loc) raises ``DerivativeOrderError`` for θθ derivatives
   (mixed θ–w ones are first order in θ: refused or exact). A peer library's sampler under
   the pathwise estimator: higher derivatives exact or refused with a ``TypeError``.
5. **Biased by design.** Gumbel-softmax: exact for the relaxed objective (Bernoulli; checked
   by quadrature), unchecked for Categorical; straight-through and Gumbel-Rao (its conditional
   expectation, ``Estimator.biased``): value and w-derivatives exact, θ-gradient biased (only
   checked finite); a control variate added to a relaxation mixes discrete and relaxed
   expectations.
6. **Support edges.** Bernoulli(probs=0 or 1): only exact estimators (enumeration,
   measure-valued) can check a first derivative there — the other outcome has probability
   3e-10 — and second derivatives there are documented NaN.
"""

from __future__ import annotations

from typing import NamedTuple

from _matrix_ops import ORDER

import repgrad as rg


class Exact(NamedTuple):
    mode: str = "plain"


class Raises(NamedTuple):
    errors: tuple
    why: str
    exclude: tuple = ()  # subclasses of errors that do not count (a family refusal is no ZeroGradientError)


class Either(NamedTuple):
    errors: tuple
    why: str
    mode: str | None = "plain"  # None: no exact value, a number is only checked to be finite


class Biased(NamedTuple):
    why: str


ZERO = (rg.ZeroGradientError,)
ORDER_ERR = (rg.DerivativeOrderError,)
SPECIFIC = (rg.ZeroGradientError, rg.DerivativeOrderError)

PATHWISE_TYPE = ("pathwise", "gumbel_softmax", "straight_through", "gumbel_rao")
# Learned control parameters (``Estimator.control_init``): ψ is an input of every call.
LEARNED = ("rebar", "relax", "double_cv", "rodeo")
LOG_WEIGHT = ("vimco", "disarm_multisample")
FIRST_ORDER = ("measure_valued", "arm", "disarm", "disarm_multisample", "vimco", "rebar", "relax", "straight_through",
               "gumbel_rao", "indecater", "double_cv", "rodeo", "unordered_set", "rao_blackwell")
DISCRETE = ("bernoulli", "categorical")
ACCEPTS = {  # rule 1
    "pathwise": lambda fam: fam.reparameterized,
    "score": lambda fam: not fam.moving_support,
    "vimco": lambda fam: not fam.moving_support,
    "measure_valued": lambda fam: fam.measure_valued and fam.lib == "repgrad",
    "arm": lambda fam: fam.kind == "bernoulli",
    "disarm": lambda fam: fam.kind == "bernoulli",
    "disarm_multisample": lambda fam: fam.kind == "bernoulli",
    "gumbel_softmax": lambda fam: fam.kind in DISCRETE,
    "straight_through": lambda fam: fam.kind in DISCRETE,
    "rebar": lambda fam: fam.kind in DISCRETE,
    "relax": lambda fam: fam.kind in DISCRETE,
    "enumeration": lambda fam: fam.kind in DISCRETE,
    "indecater": lambda fam: fam.kind in DISCRETE,
    "double_cv": lambda fam: fam.kind == "bernoulli",
    "rodeo": lambda fam: fam.kind == "bernoulli",
    "unordered_set": lambda fam: fam.kind in DISCRETE,
    "rao_blackwell": lambda fam: fam.kind in DISCRETE,
    "gumbel_rao": lambda fam: fam.kind in DISCRETE,
}


def straight_through(v):
    """A straight-through gradient: hard sample forward, a relaxed sample's derivative backward
    (Gumbel-Rao is its conditional expectation given the hard sample: the same bias)."""
    return v.factory in ("straight_through", "gumbel_rao") or (v.factory == "gumbel_softmax" and v.opts.get("straight_through"))


def relaxed(v):
    return v.factory == "gumbel_softmax" and not v.opts.get("straight_through")


def optimal_coefficient(v):
    return (v.cv or "").endswith("_opt")


def optimal_baseline(v):
    return str(v.opts.get("baseline")).startswith("optimal")


def first_order(v):
    """Declared first-order (README: 'derivative orders' column is 'first')."""
    return v.factory in FIRST_ORDER or bool(straight_through(v)) or optimal_baseline(v) or optimal_coefficient(v)


def uses_score(v):
    """Differentiates log p to the order asked (DiCE)."""
    return v.factory in ("score", "vimco")


def refusal(v, fam):
    """Rules 1–2: the ``Raises`` of a refused (variant, family), else None."""
    plain = lambda why: Raises((TypeError,), why, exclude=SPECIFIC)
    if not ACCEPTS[v.factory](fam):
        return plain(f"{v.factory} does not take {fam.name}")
    if v.factory == "enumeration" and v.opts.get("max_configurations") == 4:
        return Raises((ValueError,), "more configurations than max_configurations")
    if optimal_baseline(v) and not (fam.factorized and fam.lib == "repgrad"):
        return plain("the optimal baseline needs elementwise scores")
    cv = v.cv
    if cv is None:
        return None
    if cv.startswith("delta") and not (fam.delta and fam.lib == "repgrad"):
        return plain("the delta method needs mean() and variance() in sample space")
    if v.wrap and (v.factory == "enumeration" or v.factory in LOG_WEIGHT):
        return plain("with_control_variate refuses enumeration and log-weight estimators")
    if optimal_coefficient(v):
        if v.factory == "score" and optimal_baseline(v) and not v.wrap:
            return plain("an optimal coefficient with an optimal baseline")
        if v.factory == "score" and not v.wrap and not (fam.factorized and fam.lib == "repgrad"):
            return plain("the score's optimal coefficient needs elementwise scores")
        if v.factory in LEARNED:
            return plain("the optimal coefficient runs the estimator per sample: no learned control variate")
        if v.wrap and v.factory == "score" and v.opts.get("baseline") not in (None, "optimal_fresh"):
            # moving_average: stateful; loo and optimal (= optimal_baseline("loo")): read the other samples
            return plain("with_control_variate's optimal coefficient runs the estimator one sample at a time")
    return None


def mode_of(v):
    return "bound" if v.factory in LOG_WEIGHT else "relaxed" if relaxed(v) else "plain"


def expected(v, fam, fkind, ops):
    """{op: outcome} for the cell (rules 1–6)."""
    refused = refusal(v, fam)
    mode = mode_of(v)
    if refused is not None:
        if fam.moving_support and uses_score(v):
            # rule 1: the score function refuses a moving support when θ is differentiated; the
            # value and f's own derivatives are plain Monte Carlo means (exact there, or refused)
            plain = Either((TypeError,), "no θ derivative of a moving support", None if mode == "bound" else mode)
            return {op: plain if ORDER[op] in ("value", "ww") else refused for op in ops}
        return {op: refused for op in ops}
    out = {}
    for op in ops:
        outcome = _expected_op(v, fam, fkind, ORDER[op], mode)
        if getattr(outcome, "mode", None) == "relaxed" and fam.kind == "categorical":
            # rule 5: no exact value of a Categorical's relaxed objective here
            outcome = Biased("Gumbel-softmax on a Categorical") if isinstance(outcome, Exact) else outcome._replace(mode=None)
        out[op] = outcome
    return out


def _expected_op(v, fam, fkind, order, mode):
    theta_derivative = order not in ("value", "ww")
    pathwise_type = v.factory in PATHWISE_TYPE
    # rule 3: f
    if fkind == "int":
        if pathwise_type and theta_derivative:
            return Raises((TypeError,), "an integer f has no path derivative")
        return Either((TypeError,), "an integer f: refused naming the cast, or exact", mode)
    if pathwise_type and fkind in ("step", "heaviside", "partial"):
        if not theta_derivative:  # an estimator that computes its gradient in the forward pass may refuse early
            return Either(ZERO, "no θ derivative taken, but the estimator may compute one", mode)
        if v.opts.get("allow_zero_gradient"):
            return Biased("allow_zero_gradient=True: the documented opt-out")
        if order in ("tw", "tt", "ttt") and first_order(v):
            return Raises(SPECIFIC, "a step f under a first-order relaxation")
        if order in ("tw", "tt", "ttt") and fam.lib == "tfp" and fam.name.startswith("tfp_gamma"):
            # two refusals apply (TFP's implicit sampler is first order; f has no path derivative)
            return Raises(ZERO + ORDER_ERR, "a step f, through a first-order peer sampler")
        return Raises(ZERO, "a step f has a structurally zero path derivative")
    if v.factory == "rebar" and fkind in ("step", "heaviside", "partial") and theta_derivative:
        if order in ("tw", "tt", "ttt"):
            return Raises(SPECIFIC, "first order, and f is not differentiable at relaxed points")
        return Either(ZERO, "REBAR's control η f(σ(z)) needs f differentiable at relaxed points", mode)
    # rule 2: an optimal coefficient estimated per sample (any estimator) on a family without
    # elementwise scores: documented for repgrad's factorized families only
    if optimal_coefficient(v) and not (fam.factorized and fam.lib == "repgrad"):
        if order in ("tw", "tt", "ttt"):
            return Raises((TypeError,), "first order, or a family the optimal coefficient does not document")
        return Either((TypeError,), "the optimal coefficient beyond repgrad's factorized families", mode)
    # rule 4: orders
    if order in ("tw", "tt", "ttt") and v.factory == "pathwise" and fam.lib != "repgrad" and not first_order(v):
        return Either((TypeError,), "a peer's sampler: higher derivatives exact, or refused (repgrad cannot see them)", mode)
    if order in ("tw", "tt", "ttt") and first_order(v):
        return Raises(ORDER_ERR, "a first-order estimator")
    if order in ("tt", "ttt") and uses_score(v) and fam.kinked:
        return Raises(ORDER_ERR, "the log-density has a kink in a parameter")
    if order == "tw" and uses_score(v) and fam.kinked:
        return Either(ORDER_ERR, "mixed derivative, first order in the kinked parameter", mode)
    # rule 5: biased by design (a Categorical's relaxed objective: see expected())
    if (relaxed(v) or straight_through(v)) and v.cv is not None and order in ("first", "tt", "ttt"):
        return Biased("a control variate on a relaxation")
    if straight_through(v) and order == "first":
        return Biased("straight-through: biased gradient")
    return Exact(mode)
