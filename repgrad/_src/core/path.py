"""What the estimators that differentiate f along its samples (pathwise, Gumbel-softmax, the
pathwise nodes of ``rg.stochastic``) check before trusting that derivative: f read from its
jaxpr (``dependence``) and the samples' own derivative (``kernels.require_path_derivative``).
"""

from __future__ import annotations

from . import dependence, kernels


def path_message(state, what: str = "pathwise", instead: str = "") -> str:
    """Why a pathwise-style gradient is refused, for f's dependence ``state`` on the samples."""
    instead = instead or (
        "Use repgrad.score_grad (any f) or repgrad.measure_valued_grad instead, or for a "
        "discrete decision inside f an unbiased discrete estimator."
    )
    if state == dependence.NONE:
        why = "f does not depend on x at all, so the estimate is exactly 0"
        hint = " (If that is intended, its gradient is 0: pass rg.pathwise(allow_zero_gradient=True).)"
    elif state == dependence.JUMP:
        why = (
            "f has a jump in x: a piecewise-constant term (a comparison, floor, round, astype(int), "
            "argmax, ...) is added to the rest, e.g. x ** 2 + (x > 0), or x wraps around (x % c, "
            "jnp.mod); the pathwise derivative "
            "misses the jump's contribution to ∇E[f], so the estimate would be biased"
        )
        hint = (
            " (If f is in fact continuous there — the check reads jnp.interp's table lookup plus "
            "its slope, and jnp.piecewise's branches, as jumps — pass "
            "rg.pathwise(allow_zero_gradient=True), which skips these checks.)"
        )
    elif state == dependence.PIECEWISE:
        why = (
            "f is piecewise constant in x (e.g. a comparison, jnp.heaviside or .astype(int)), so "
            "the pathwise estimate would be exactly 0 whatever the true gradient is"
        )
        hint = ""
    else:
        why = (
            "nothing on the path from the parameters to f carries a derivative (the distribution's "
            "sampler carries no gradient, or f is piecewise constant in x), so the estimate would "
            "be exactly 0 whatever the true gradient is"
        )
        hint = " (If f truly does not depend on x, its gradient is 0: pass rg.pathwise(allow_zero_gradient=True).)"
    return f"{what}: {why}. {instead}{hint}"


REFUSED = (dependence.NONE, dependence.PIECEWISE, dependence.JUMP)


def checked_values(problem, d, x, values, what: str = "pathwise", instead: str = ""):
    """``values`` with the pathwise checks: raising when differentiated in the distribution's
    parameters if f (the user's) is constant, piecewise constant or has a jump in x, or if the
    samples carry no derivative."""
    state = dependence.in_samples(problem.source_f, x, problem.args, problem.take_keys(0))
    message = path_message(state, what, instead)
    params = kernels.dist_params(d, problem.params)
    return kernels.require_path_derivative(values, x, params, message, refused=state in REFUSED)
