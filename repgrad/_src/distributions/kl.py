r"""Closed-form KL divergences KL(q ‖ p) = E_q[log q(x) − log p(x)], the one place for them.

``q.kl_divergence(p)`` (``Distribution.kl_divergence``) and ``rg.elbo(..., kl="analytic")``
(through :func:`closed_form_kl`) both read the formulas registered here with
``base.register_kl``. The pairs, with q's parameters first (subscript q) and p's second:

- Normal ‖ Normal, LogNormal ‖ LogNormal (the KL of the logs), and MultivariateNormalDiag ‖
  MultivariateNormalDiag (summed over the event): with r = σ_q/σ_p,
  −log r + ½(r² + ((μ_q − μ_p)/σ_p)²) − ½.
- MultivariateNormalTri/Diag in any combination:
  ½[tr(Σ_p⁻¹Σ_q) + ‖L_p⁻¹(μ_p − μ_q)‖² − D] + log|det L_p| − log|det L_q|.
- Laplace ‖ Laplace: log(b_p/b_q) + |μ_q − μ_p|/b_p + (b_q/b_p) e^{−|μ_q − μ_p|/b_q} − 1.
- Exponential ‖ Exponential: log(λ_q/λ_p) + λ_p/λ_q − 1.
- Gamma ‖ Gamma (and Exponential as Gamma(1, λ) on either side):
  (α_q − α_p) ψ(α_q) − log Γ(α_q) + log Γ(α_p) + α_p log(β_q/β_p) + α_q (β_p − β_q)/β_q.
- Beta ‖ Beta, Dirichlet ‖ Dirichlet: log B(β) − log B(α) + Σⱼ (αⱼ − βⱼ)(ψ(αⱼ) − ψ(α₀)) for
  q = Dir(α), p = Dir(β).
- Bernoulli ‖ Bernoulli: p_q log(p_q/p_p) + (1 − p_q) log((1 − p_q)/(1 − p_p)).
- Categorical ‖ Categorical: Σₖ p_q,k (log p_q,k − log p_p,k), with 0 log 0 = 0, and +∞ where p
  masks a category q does not.
- Poisson ‖ Poisson: λ_q log(λ_q/λ_p) + λ_p − λ_q.
- Uniform ‖ Uniform: log((high_p − low_p)/(high_q − low_q)) when [low_q, high_q] ⊆
  [low_p, high_p], +∞ otherwise (q puts mass where p has none), with zero derivatives there.

Any other pair raises ``NotImplementedError`` naming the Monte Carlo estimate
(``rg.elbo(..., kl="monte_carlo")``). Batch shapes broadcast; event shapes (D, K) must match.

**Precision.** Near q = p a KL is a difference of terms much larger than itself, and for the
Gamma family those terms are of size α log α. Exponential, Gamma, Beta, Dirichlet and Poisson
are written as sums of non-negative terms (Loader's deviance bd0(x, y) = x log(x/y) + y − x ≥ 0
and the Bregman divergence of Stirling's error δ; ``special.py``): Gamma ‖ Gamma with
m = α/β,

.. math::

   \mathrm{KL} = \beta_p\,\mathrm{bd0}(m_p, m_q) + \tfrac{1}{2\alpha_q}\mathrm{bd0}(\alpha_q, \alpha_p)
     + \delta(\alpha_p) - \delta(\alpha_q) - (\alpha_p - \alpha_q)\,\varepsilon(\alpha_q),

and Dirichlet ‖ Dirichlet with π = β/β₀, ρ = α/α₀,

.. math::

   \mathrm{KL} = \beta_0 \sum_j \mathrm{bd0}(\pi_j, \rho_j)
     + \tfrac12\Big[\sum_j \tfrac{\mathrm{bd0}(\alpha_j, \beta_j)}{\alpha_j}
       - \tfrac{\mathrm{bd0}(\alpha_0, \beta_0)}{\alpha_0}\Big]
     + \sum_j D(\beta_j, \alpha_j) - D(\beta_0, \alpha_0),

D(x, y) = δ(x) − δ(y) − (x − y) ε(y). In float32 the textbook forms lose 10⁻²–10⁻³ nats at
concentrations near 10⁴ (a KL of 0.05 comes out 0.06 or negative); these keep a few ε relative.
The Normal formulas are kept exactly as ``rg.elbo`` has always computed them.

**Derivatives.** Every formula is differentiable to every order in both distributions'
parameters, except where the KL itself is not: the Laplace KL at μ_q = μ_p is twice
differentiable (its third derivative in the locations jumps; autodiff returns the one-sided
value of the μ_q ≥ μ_p side), and the Uniform KL jumps to +∞ when q's interval leaves p's
(the derivative at the boundary is the one-sided one from inside).

References:
  Penny, W. D. (2001). KL-divergences of Normal, Gamma, Dirichlet and Wishart densities.
  Loader, C. (2000). Fast and accurate computation of binomial probabilities.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as sl

from .base import Distribution, _float_dtype, _working_dtype, kl_terms, register_kl
from .continuous import Exponential, Laplace, Uniform
from .discrete import Bernoulli, Categorical, Poisson
from .gamma import Beta, Dirichlet, Gamma
from .normal import LogNormal, MultivariateNormalDiag, MultivariateNormalTri, Normal, _diagonal_matrix
from .special import bd0, digamma_remainder, stirlerr

__all__ = ["closed_form_kl"]

def _shape(q, p, *shapes):
    """The broadcast shape, or a ``ValueError`` naming q's and p's batch shapes."""
    try:
        return jnp.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"KL({type(q).__name__} ‖ {type(p).__name__}): batch shapes {q.batch_shape} and "
            f"{p.batch_shape} do not broadcast together. Give them shapes that do (size-1 axes "
            "where they differ)."
        ) from None


def _broadcast(q, p, *arrays):
    """The parameters of q and p broadcast to one shape."""
    shape = _shape(q, p, *(jnp.shape(a) for a in arrays))
    return tuple(jnp.broadcast_to(a, shape) for a in arrays)


def _same_rank(q, p, *arrays):
    """The parameters of q and p at one rank (leading size-1 axes), left to broadcast in the
    formula: what jax's implicit rank promotion did to ``rg.elbo``'s Normal KL before, so its
    values and gradients keep their bits (broadcasting a scalar prior's parameters to q's shape
    changes the last bit of eager gradients). Scalars stay scalars, as in jax."""
    shapes = [jnp.shape(a) for a in arrays]
    _shape(q, p, *shapes)
    ranks = {len(s) for s in shapes if s}
    if len(ranks) < 2:
        return arrays
    return tuple(jax.lax.broadcast_to_rank(a, max(ranks)) for a in arrays)


def _same_event(q, p, what):
    if q.event_shape != p.event_shape:
        raise ValueError(
            f"KL({type(q).__name__} ‖ {type(p).__name__}) needs the same {what}: got event shapes "
            f"{q.event_shape} and {p.event_shape}."
        )


def _working(*arrays):
    """The arrays in at least float32 (the special functions are coarse in bfloat16)."""
    dtype = _working_dtype(_float_dtype(*arrays))
    return tuple(a.astype(dtype) for a in arrays)


def _out(kl, *params):
    return kl.astype(_float_dtype(*params))


# ----------------------------------------------------------------------------- Gaussian


def _normal(q_loc, q_scale, p_loc, p_scale):
    ratio = q_scale / p_scale
    return -jnp.log(ratio) + 0.5 * (jnp.square(ratio) + jnp.square((q_loc - p_loc) / p_scale)) - 0.5


@register_kl(Normal, Normal)
def _normal_normal(q, p):
    return _normal(*_same_rank(q, p, q.loc, q.scale, p.loc, p.scale))


@register_kl(LogNormal, LogNormal)
def _lognormal_lognormal(q, p):
    return _normal(*_same_rank(q, p, q.loc, q.scale, p.loc, p.scale))


# Terms per coordinate: rg.elbo sums them over batch and event at once, as it always has.
@register_kl(MultivariateNormalDiag, MultivariateNormalDiag, event_axes=1)
def _diag_diag(q, p):
    _same_event(q, p, "dimension D")
    return _normal(*_same_rank(q, p, q.loc, q.scale_diag, p.loc, p.scale_diag))


def _tri(d):
    if isinstance(d, MultivariateNormalTri):
        return d.loc, d.scale_tri
    return d.loc, _diagonal_matrix(d.scale_diag)  # the same products as before, at one rank


@register_kl(MultivariateNormalTri, MultivariateNormalTri)
@register_kl(MultivariateNormalTri, MultivariateNormalDiag)
@register_kl(MultivariateNormalDiag, MultivariateNormalTri)
def _mvn(q, p):
    """½[tr(Σp⁻¹Σq) + ‖Lp⁻¹(μp − μq)‖² − D] + log|Lp| − log|Lq|."""
    _same_event(q, p, "dimension D")
    mq, lq = _tri(q)
    mp, lp = _tri(p)
    batch = _shape(q, p, lq.shape[:-2], lp.shape[:-2], mq.shape[:-1], mp.shape[:-1])
    dim = mq.shape[-1]
    lq, lp = jnp.broadcast_to(lq, batch + (dim, dim)), jnp.broadcast_to(lp, batch + (dim, dim))
    diff = jnp.broadcast_to(mp, batch + (dim,)) - jnp.broadcast_to(mq, batch + (dim,))
    m = sl.solve_triangular(lp, lq, lower=True)
    z = sl.solve_triangular(lp, diff[..., None], lower=True)[..., 0]
    log_det = lambda tri: jnp.sum(jnp.log(jnp.abs(jnp.diagonal(tri, axis1=-2, axis2=-1))), axis=-1)
    return 0.5 * (jnp.sum(m * m, axis=(-2, -1)) + jnp.sum(z * z, axis=-1) - dim) + log_det(lp) - log_det(lq)


# ------------------------------------------------------------------ other real families


@register_kl(Laplace, Laplace)
def _laplace_laplace(q, p):
    """With u = (μq − μp)/bq and r = bq/bp: bd0(bp, bq)/bp + r(|u| + e^{−|u|} − 1), the first
    term log(bp/bq) + r − 1 ≥ 0 without cancellation. |u| + e^{−|u|} is evaluated per side
    (u + e^{−u} for u ≥ 0, −u + e^{u} below) so that autodiff's second derivative at u = 0 is the
    true 1, not the 0 of jnp.abs's derivative sign(0) = 0."""
    q_loc, q_scale, p_loc, p_scale = _broadcast(q, p, q.loc, q.scale, p.loc, p.scale)
    u = (q_loc - p_loc) / q_scale
    right = u >= 0
    u_right, u_left = jnp.where(right, u, 0.0), jnp.where(right, 0.0, u)  # no overflow in either side
    excess = jnp.where(right, u_right + jnp.expm1(-u_right), jnp.expm1(u_left) - u_left)
    return bd0(p_scale, q_scale) / p_scale + q_scale / p_scale * excess


@register_kl(Exponential, Exponential)
def _exponential_exponential(q, p):
    """bd0(λq, λp)/λq = log(λq/λp) + λp/λq − 1."""
    q_rate, p_rate = _working(*_broadcast(q, p, q.rate, p.rate))
    return _out(bd0(q_rate, p_rate) / q_rate, q.rate, p.rate)


@register_kl(Uniform, Uniform)
def _uniform_uniform(q, p):
    q_low, q_high, p_low, p_high = _broadcast(q, p, q.low, q.high, p.low, p.high)
    inside = (q_low >= p_low) & (q_high <= p_high)
    kl = jnp.log(p_high - p_low) - jnp.log(q_high - q_low)  # finite for every valid pair
    return jnp.where(inside, kl, jnp.asarray(jnp.inf, kl.dtype))


# ------------------------------------------------------------------------- Gamma family


def _delta_bregman(x, y):
    """D(x, y) = δ(x) − δ(y) − (x − y) ε(y) ≥ 0 (δ is convex): small, of size (x − y)²/(12 x y²)."""
    return stirlerr(x) - stirlerr(y) - (x - y) * digamma_remainder(y)


def _gamma_kl(q_conc, q_rate, p_conc, p_rate):
    q_mean, p_mean = q_conc / q_rate, p_conc / p_rate
    return (
        p_rate * bd0(p_mean, q_mean)
        + 0.5 * bd0(q_conc, p_conc) / q_conc
        + _delta_bregman(p_conc, q_conc)
    )


def _gamma_params(d):
    if isinstance(d, Exponential):
        return jnp.ones_like(d.rate), d.rate
    return d.concentration, d.rate


@register_kl(Gamma, Gamma)
@register_kl(Exponential, Gamma)
@register_kl(Gamma, Exponential)
def _gamma_gamma(q, p):
    params = (*_gamma_params(q), *_gamma_params(p))
    return _out(_gamma_kl(*_working(*_broadcast(q, p, *params))), *params)


def _dirichlet_kl(alpha, beta):
    """KL(Dir(α) ‖ Dir(β)) over the last axis (see the module docstring)."""
    alpha0, beta0 = jnp.sum(alpha, axis=-1), jnp.sum(beta, axis=-1)
    rho, pi = alpha / alpha0[..., None], beta / beta0[..., None]
    categorical = beta0 * jnp.sum(bd0(pi, rho), axis=-1)
    scale = 0.5 * (jnp.sum(bd0(alpha, beta) / alpha, axis=-1) - bd0(alpha0, beta0) / alpha0)
    stirling = jnp.sum(_delta_bregman(beta, alpha), axis=-1) - _delta_bregman(beta0, alpha0)
    return categorical + scale + stirling


@register_kl(Beta, Beta)
def _beta_beta(q, p):
    params = (q.concentration1, q.concentration0, p.concentration1, p.concentration0)
    a1, b1, a2, b2 = _working(*_broadcast(q, p, *params))
    return _out(_dirichlet_kl(jnp.stack([a1, b1], axis=-1), jnp.stack([a2, b2], axis=-1)), *params)


@register_kl(Dirichlet, Dirichlet)
def _dirichlet_dirichlet(q, p):
    _same_event(q, p, "number of categories K")
    alpha, beta = _working(*_broadcast(q, p, q.concentration, p.concentration))
    return _out(_dirichlet_kl(alpha, beta), q.concentration, p.concentration)


# ----------------------------------------------------------------------------- discrete


@register_kl(Bernoulli, Bernoulli)
def _bernoulli_bernoulli(q, p):
    """p_q (log σ(ℓq) − log σ(ℓp)) + (1 − p_q)(log σ(−ℓq) − log σ(−ℓp)), from the logits: finite
    and exact at probabilities 0 and 1 (stored as finite logits)."""
    q_logits, p_logits = _broadcast(q, p, q.logits, p.logits)
    log_q1, log_q0 = jax.nn.log_sigmoid(q_logits), jax.nn.log_sigmoid(-q_logits)
    log_p1, log_p0 = jax.nn.log_sigmoid(p_logits), jax.nn.log_sigmoid(-p_logits)
    return jnp.exp(log_q1) * (log_q1 - log_p1) + jnp.exp(log_q0) * (log_q0 - log_p0)


@register_kl(Categorical, Categorical)
def _categorical_categorical(q, p):
    if q.num_categories != p.num_categories:
        raise ValueError(
            f"KL(Categorical ‖ Categorical) needs the same number of categories: got {q.num_categories} "
            f"and {p.num_categories}."
        )
    q_logits, p_logits = _broadcast(q, p, q.logits, p.logits)
    masked = jnp.isneginf(q_logits)  # 0 log 0 = 0, also where p masks it too (−inf − −inf)
    diff = jnp.where(masked, 0.0, q_logits - jnp.where(masked, 0.0, p_logits))
    return jnp.sum(jnp.exp(q_logits) * diff, axis=-1)


@register_kl(Poisson, Poisson)
def _poisson_poisson(q, p):
    """bd0(λq, λp) = λq log(λq/λp) + λp − λq."""
    q_rate, p_rate = _working(*_broadcast(q, p, q.rate, p.rate))
    return _out(bd0(q_rate, p_rate), q.rate, p.rate)


# ------------------------------------------------------------------------------ rg.elbo


def closed_form_kl(q, p):
    """KL(q ‖ p) summed over the batch, or ``None`` when no closed form is known here.

    repgrad pairs: the formulas above (their terms summed at once: the Normal and
    MultivariateNormalDiag/Tri values are the same bits as before they moved here); peers'
    (distrax, TFP) ``q.kl_divergence(p)`` when they define one.
    """
    if isinstance(q, Distribution):
        try:
            terms, _ = kl_terms(q, p)
        except NotImplementedError:
            return None
        return jnp.sum(terms)
    if hasattr(q, "kl_divergence"):
        try:
            return jnp.sum(q.kl_divergence(p))
        except NotImplementedError:
            return None
    return None
