"""The base of the built-in families, and the helpers they share.

Each family is an immutable pytree whose leaves are its (broadcast) parameters, so a
distribution can cross ``jit``/``vmap`` boundaries and estimators can pull gradients
with respect to its parameters back to the user's params with one ``jax.vjp``.

Constructors follow distrax (``Normal(loc, scale)``, ``Gamma(concentration, rate)``,
``Bernoulli(logits=...)``). ``sample(seed, sample_shape=())`` accepts the key by
position (numpyro style) or as ``seed=`` (distrax/TFP style).

All arithmetic broadcasts explicitly, so the code runs under
``jax_numpy_rank_promotion="raise"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import ClassVar

import jax
import jax.numpy as jnp

from . import validation
from .validation import VALIDATE_ARGS

__all__ = ["Distribution", "register_kl"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_sg = jax.lax.stop_gradient


def _float_dtype(*xs):
    dtype = jnp.result_type(*xs)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jax.dtypes.canonicalize_dtype(float)
    return dtype


def _as_float(*xs):
    dtype = _float_dtype(*xs)
    return tuple(jnp.asarray(x, dtype) for x in xs)


def _broadcast_params(family: str, **params):
    """The parameters as floating arrays broadcast to one shape, or a ``ValueError`` naming
    the fix when their shapes do not broadcast (checked whatever ``validate_args`` says)."""
    arrays = _as_float(*params.values())
    try:
        jnp.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(f"{n} of shape {a.shape}" for n, a in zip(params, arrays, strict=True))
        raise ValueError(
            f"{family}: {shapes} do not broadcast together. Give the parameters the same shape, "
            "or shapes that broadcast (a scalar, or size-1 axes where they differ: e.g. "
            "scale[:, None], or jnp.full_like(loc, 1.0))."
        ) from None
    return jnp.broadcast_arrays(*arrays)


def _to(shape, *xs):
    """Broadcasts each array to ``shape`` explicitly (rank promotion may be 'raise')."""
    out = tuple(jnp.broadcast_to(x, shape) for x in xs)
    return out if len(out) > 1 else out[0]


def _with_x(x, *params):
    """Broadcasts a value and parameters to their common shape."""
    return jnp.broadcast_arrays(jnp.asarray(x), *params)


def _at_rank(x, *params):
    """A value and parameters at one rank, with leading size-1 axes: reshaped, not broadcast.

    ``log_prob`` computes parameter-only terms (log-normalizers) at the parameter shape
    and combines them with ``x`` by size-1 broadcasting (allowed under
    ``jax_numpy_rank_promotion="raise"``), as hand-written ``(x - loc[None]) / scale[None]``
    does. A parameter broadcast to the samples' shape first makes the derivatives with
    respect to it (1/scale², 1/rate, ...) per sample: N·D divides instead of D
    (benchmarks/overhead.py --families compares score_grad with hand-written densities).
    """
    x = jnp.asarray(x)
    ndim = max([x.ndim] + [jnp.ndim(a) for a in params])
    return tuple(jnp.reshape(a, (1,) * (ndim - jnp.ndim(a)) + jnp.shape(a)) for a in (x, *params))


def _safe(x, outside, value):
    """``x`` with the points ``outside`` the support replaced by ``value``, a point inside it.

    The first half of the double ``where``: the density's formula is evaluated at ``value``
    there, so its derivatives with respect to the parameters are finite, and
    :func:`_off_support`'s zero cotangent yields 0 instead of 0 · ∞ = NaN (a single ``where``
    leaks the NaN of the unselected branch through the VJP).
    """
    return jnp.where(outside, jnp.asarray(value, x.dtype), x)


def _off_support(outside, log_prob):
    """``log_prob`` with −inf where ``outside`` (broadcast against it): the second half of the
    double ``where``. A NaN point is not outside (its comparisons are False): NaN in, NaN out,
    as scipy."""
    return jnp.where(outside, jnp.asarray(-jnp.inf, log_prob.dtype), log_prob)


def _as_value(x, dtype):
    """A point as an array; integer and boolean points (counts, categories) in ``dtype``."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(dtype)


def _working_dtype(dtype):
    """The precision noise is drawn in: at least float32 (bfloat16 has 128 distinct
    standard-normal values, the largest 2.52, which biases score-function estimates)."""
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return jnp.dtype(jnp.float32)
    return dtype


def _clip(x, low, high, *, may_overflow=False):
    """``x`` clipped into [low, high] in value, with ``x``'s own derivatives at every order.

    A straight-through clip: samples that rounded onto the edge of the support (or past it)
    move back inside, and their pathwise derivatives stay those of the draw instead of the
    zeros of ``jnp.clip``. ``low``/``high`` broadcast against ``x``. ``may_overflow``: x may
    be ±inf (e.g. exp of a large draw), whose derivative is dropped rather than made NaN.
    """
    x0 = _sg(x)
    inside = jnp.clip(x0, _sg(low), _sg(high))  # no derivative: those are delta's
    delta = x - x0  # value 0, derivatives of x
    if may_overflow:
        delta = jnp.where(jnp.isfinite(x0), delta, jnp.zeros_like(delta))
    return inside + delta


# (type of q, type of p) -> (formula, event axes): ``formula(q, p)`` returns terms whose sum over
# their last ``event axes`` axes is KL(q ‖ p) per batch entry (``kl.py`` registers them).
_KL_FORMULAS: dict[tuple[type, type], tuple[Callable, int]] = {}

_MONTE_CARLO_KL = (
    "Estimate it by Monte Carlo instead: rg.elbo(..., kl='monte_carlo') in a bound, or "
    "jnp.mean(q.log_prob(z) - p.log_prob(z), axis=0) with z = q.sample(key, (n,))."
)


def register_kl(q_type: type, p_type: type, *, event_axes: int = 0):
    """Registers ``formula(q, p)`` as the closed-form KL(q ‖ p) for ``q_type`` and ``p_type``
    (and their subclasses): it returns terms whose sum over their last ``event_axes`` axes is
    the KL per batch entry (``event_axes=1`` lets ``rg.elbo`` sum a factorized family's terms
    at once, as it did before the formulas moved here)."""

    def register(formula):
        _KL_FORMULAS[(q_type, p_type)] = (formula, event_axes)
        return formula

    return register


def kl_terms(q, p):
    """``(terms, event_axes)`` of the registered closed form for (q, p) (see :func:`register_kl`),
    or ``NotImplementedError`` naming the Monte Carlo estimate when there is none."""
    for q_type in type(q).__mro__:
        for p_type in type(p).__mro__:
            if (q_type, p_type) in _KL_FORMULAS:
                formula, event_axes = _KL_FORMULAS[(q_type, p_type)]
                return formula(q, p), event_axes
    q_name, p_name = type(q).__name__, type(p).__name__
    if not isinstance(p, Distribution):
        raise NotImplementedError(
            f"{q_name}.kl_divergence takes a repgrad distribution, got a {p_name} "
            f"({type(p).__module__}); closed forms are known here between repgrad's own families. "
            + _MONTE_CARLO_KL
        )
    known = sorted({f"{a.__name__}‖{b.__name__}" for a, b in _KL_FORMULAS if issubclass(type(q), a)})
    raise NotImplementedError(
        f"No closed-form KL({q_name} ‖ {p_name}) in repgrad"
        + (f" (closed forms from {q_name}: {', '.join(known)})" if known else "")
        + ". "
        + _MONTE_CARLO_KL
    )


def to_positive_support(x):
    """``x`` kept in [tiny, max] — the floats strictly inside (0, ∞) — with ``x``'s own
    derivatives: draws that rounded to 0 (a small Gamma concentration, a very negative
    log-normal draw) or overflowed to inf move back inside, where log x is finite."""
    info = jnp.finfo(x.dtype)
    return _clip(x, float(info.tiny), float(info.max), may_overflow=True)


class Distribution:
    """Base class: a pytree over the parameters named in ``_params``.

    Subclasses set ``_params`` (leaf attribute names), ``reparameterized`` (whether
    ``sample`` is differentiable with respect to the parameters) and implement
    ``_sample(key, shape)`` and ``log_prob(x)``; optionally ``_to_support(x)`` (keep draws
    that rounded onto the edge of the support inside it) and, for draws whose log-density
    is best computed from exact log-coordinates, ``_draw_with_log_prob(key, shape)`` with
    ``_exact_log_prob = True``; ``_log_prob_of_draws(x)``, ``log_prob`` without its support
    mask for the family's own draws (score-function estimators' hot path).

    **Precision.** Noise is drawn in float32 when the parameters are bfloat16 or float16
    (in their own dtype when it is float32 or wider) and the sample is cast to the
    parameters' dtype: low-precision noise (bfloat16 has 128 distinct standard-normal
    values) biases estimators by many standard errors.

    **validate_args** (keyword of every family): invalid parameters — a non-positive scale,
    rate or concentration, probabilities outside [0, 1], NaN or infinite values — raise
    ``ValueError`` at construction with a message naming the fix.

    - ``None`` (the default): values known at construction are checked — Python numbers,
      NumPy and JAX arrays, also inside an un-jitted ``jax.grad`` (such as the transforms'
      own) — at the cost of reading them on the host; traced values (under ``jax.jit``,
      ``jax.vmap``) are not, and nothing is added to traced programs.
    - ``True``: traced values too, at run time: the compiled program evaluates the rules and,
      only where they fail, calls back to Python, which raises the same message (as
      ``equinox.error_if`` does). It works under ``jax.jit``, ``jax.vmap``, ``jax.grad`` and
      higher derivatives, ``lax.scan`` and with parameters sharded over several devices; jax
      reports the error when the call runs, as a ``jax.errors.JaxRuntimeError`` carrying the
      message (or the ``ValueError`` itself), also inside ``checkify.checkify``. The callback
      is an effect, so a jitted function containing it leaves jax's fast dispatch path: about
      0.3 ms more per call (``repgrad/_src/distributions/validation.py``).
    - ``False``: no checks.

    Parameter shapes that do not broadcast always raise ``ValueError``.

    **Support.** ``log_prob`` is −inf at every point outside a family's support (a negative
    Gamma or Poisson value, a non-integer count, a Bernoulli value other than 0 or 1, a point
    off the Dirichlet simplex, ±inf for families on the real line), never a finite number or
    NaN; on the support's edge it follows scipy.stats (e.g. Gamma at x = 0: finite for
    concentration 1, +inf below 1, −inf above); NaN in gives NaN out, as scipy. Derivatives
    with respect to the parameters are 0 outside the support (the formula is evaluated at a
    point inside it, then masked: a double ``where``) and unchanged inside.

    **Summaries** (as distrax/TFP): ``mean()``, ``variance()``, ``stddev()``, ``mode()``,
    ``entropy()`` (in nats) of shape ``batch_shape + event_shape`` (entropy: ``batch_shape``),
    ``kl_divergence(other)`` and ``cross_entropy(other)`` for the pairs with a closed form
    (``repgrad/_src/distributions/kl.py``), batch shapes broadcasting as in ``log_prob``. Each
    is a closed form, differentiable in the parameters to every order and usable under
    ``jax.jit``/``jax.vmap``; written without cancellation in float32 (Gamma-family entropies
    and KLs at large concentrations, Bernoulli/Categorical entropies at probabilities 0 and 1:
    ``special.py``). Where none exists they raise ``NotImplementedError`` naming the Monte
    Carlo alternative (a pair without a closed-form KL: ``rg.elbo(..., kl="monte_carlo")``).

    ``support_depends_on_params`` is True for families whose support moves with their
    parameters (Uniform): score-function estimators refuse them (their gradient misses the
    boundary terms) and name ``pathwise_grad``.

    **Smoothness.** ``log_prob_smoothness`` maps a parameter name (one of ``_params``) to the
    highest order k of derivatives *in that parameter* for which the score-function (DiCE)
    estimates E[f · ∇ᵏp/p] are unbiased, i.e. for which ∂ᵏ/∂θᵏ ∫ f p = ∫ f ∂ᵏp/∂θᵏ with ∂ᵏp
    an ordinary function; a name that is absent means every order. Laplace declares
    ``{"loc": 1}``: its density exp(−|x − loc|/scale) has a kink at x = loc, so ∂p/∂loc jumps
    there and ∂²p/∂loc² has a point mass that samples never see (the score Hessian of E[cos x]
    under Laplace(0.1, 0.8) estimates 0.948 against the exact −0.607). Mixed derivatives count
    each parameter's order separately (∂²/∂loc∂scale of a Laplace is fine). Uniform declares 0
    for both bounds (its support moves with them). Score-function estimators read it and raise
    ``DerivativeOrderError`` past it.
    """

    _params: ClassVar[tuple[str, ...]] = ()
    reparameterized: ClassVar[bool] = True
    event_ndims: ClassVar[int] = 0
    support_depends_on_params: ClassVar[bool] = False
    log_prob_smoothness: ClassVar[Mapping[str, int]] = {}
    _exact_log_prob: ClassVar[bool] = False
    _validate_args: bool | None = VALIDATE_ARGS

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node(cls, cls._tree_flatten, cls._tree_unflatten)

    def _tree_flatten(self):
        return tuple(getattr(self, name) for name in self._params), self._validate_args

    @classmethod
    def _tree_unflatten(cls, validate_args, children):
        obj = object.__new__(cls)  # no re-validation: the leaves may be tracers, zeros, ...
        for name, value in zip(cls._params, children, strict=True):
            object.__setattr__(obj, name, value)
        object.__setattr__(obj, "_validate_args", validate_args)
        return obj

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable; build a new one instead.")

    def _set(self, **params):
        for name, value in params.items():
            object.__setattr__(self, name, value)

    def _init(self, validate_args, rules, **params):
        """Sets the parameters and checks them against ``rules`` (see ``validation``)."""
        if validate_args not in (None, True, False):
            raise TypeError(f"validate_args must be None, True or False, got {validate_args!r}.")
        self._set(**params, _validate_args=None if validate_args is None else bool(validate_args))
        validation.check(type(self).__name__, validate_args, rules, params)

    @property
    def validate_args(self) -> bool | None:
        """How this distribution checks its parameters: ``None``, ``True`` or ``False`` (see
        :class:`repgrad.Distribution`)."""
        return self._validate_args

    @property
    def _first(self):
        return getattr(self, self._params[0])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        shape = jnp.shape(self._first)
        return shape[: len(shape) - self.event_ndims]

    @property
    def event_shape(self) -> tuple[int, ...]:
        shape = jnp.shape(self._first)
        return shape[len(shape) - self.event_ndims :]

    @property
    def has_rsample(self) -> bool:
        """numpyro's name for ``reparameterized``."""
        return self.reparameterized

    def _shape(self, sample_shape):
        if isinstance(sample_shape, int):
            sample_shape = (sample_shape,)
        return tuple(sample_shape) + self.batch_shape + self.event_shape

    def _working(self):
        """This distribution with its parameters in the working precision (at least float32)."""
        dtype = jnp.result_type(self._first)
        if _working_dtype(dtype) == dtype:
            return self
        return jax.tree_util.tree_map(lambda p: p.astype(_working_dtype(p.dtype)), self)

    def _finish(self, x):
        """A working-precision draw, in the parameters' dtype and inside the support."""
        dtype = jnp.result_type(self._first)
        if x.dtype == dtype or not jnp.issubdtype(x.dtype, jnp.floating):
            return x
        return self._to_support(x.astype(dtype))

    def sample(self, seed, sample_shape=()):
        """Draws ``sample_shape + batch_shape + event_shape`` samples with key ``seed``."""
        work = self._working()
        return self._finish(work._to_support(work._sample(seed, self._shape(sample_shape))))

    def rsample(self, seed, sample_shape=()):
        """Reparameterized sample (numpyro's name); same as ``sample`` for these families."""
        if not self.reparameterized:
            raise TypeError(f"{type(self).__name__} has no reparameterized sampler.")
        return self.sample(seed, sample_shape)

    @property
    def _sample_and_log_prob(self):
        """``(key, sample_shape) -> (x, log_prob)`` for score-function estimators
        (``core.protocol.draw_scored``), where it beats evaluating ``log_prob`` at the draw:
        families with exact log-coordinates (Gamma, Beta, Dirichlet, LogNormal), and
        low-precision parameters (the log-density of the float32 draw, computed in float32 and
        returned in the parameters' dtype). ``None``
        otherwise, so the estimators evaluate ``log_prob`` at the (sharded) draw as before.
        """
        if not self._exact_log_prob and self._working() is self:
            return None
        return self._scored_draw

    def _scored_draw(self, key, sample_shape):
        work = self._working()
        x, log_prob = work._draw_with_log_prob(key, self._shape(sample_shape))
        return self._finish(x), log_prob.astype(_float_dtype(self._first))

    def _draw_with_log_prob(self, key, shape):
        """A draw inside the support and its log-density, differentiable in the parameters
        with the draw held fixed; families with exact log-coordinates override it."""
        x = self._to_support(self._sample(key, shape))
        return x, self._log_prob_of_draws(_sg(x))

    def _log_prob_of_draws(self, x):
        """``log_prob`` at this distribution's own draws, which lie inside its support: what
        score-function estimators evaluate (``core.protocol.draw_scored``).

        Families whose support mask costs there override it with the bare formula: masking
        ±inf on the real line (or values off {0, 1}) adds a use of the draw that makes XLA
        recompute the sampler in a second fusion, 7–9% of a Normal ``score_grad``
        (benchmarks/overhead.py --families).
        """
        return self.log_prob(x)

    def _to_support(self, x):
        """Moves draws that rounded onto (or past) the edge of the support back inside."""
        return x

    def _sample(self, key, shape):  # pragma: no cover - abstract
        raise NotImplementedError

    def log_prob(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ summaries

    def _no_closed_form(self, what, instead):
        return NotImplementedError(f"{type(self).__name__} has no closed-form {what}; {instead}")

    def mean(self):
        """E[x], of shape ``batch_shape + event_shape``."""
        raise self._no_closed_form("mean", "estimate it as jnp.mean(d.sample(key, (n,)), axis=0).")

    def variance(self):
        """Var[x] (elementwise), of shape ``batch_shape + event_shape``."""
        raise self._no_closed_form("variance", "estimate it as jnp.var(d.sample(key, (n,)), axis=0).")

    def stddev(self):
        """√Var[x] (elementwise), of shape ``batch_shape + event_shape``."""
        return jnp.sqrt(self.variance())

    def mode(self):
        """The point of highest density (probability), of shape ``batch_shape + event_shape``."""
        raise self._no_closed_form("mode", "use mean() or a sample.")

    def entropy(self):
        """H[p] = −E[log p(x)] in nats, of shape ``batch_shape``."""
        raise self._no_closed_form(
            "entropy", "estimate it as -jnp.mean(d.log_prob(d.sample(key, (n,))), axis=0)."
        )

    def kl_divergence(self, other):
        """KL(self ‖ other) = E_self[log self(x) − log other(x)] in nats, of shape the broadcast
        ``batch_shape``, for the pairs with a closed form (``repgrad/_src/distributions/kl.py``
        lists them with their formulas); ``NotImplementedError`` naming the Monte Carlo
        estimate otherwise (``kl="monte_carlo"`` in ``rg.elbo``). ``ValueError`` when the event
        shapes differ."""
        terms, event_axes = kl_terms(self, other)
        return jnp.sum(terms, axis=tuple(range(-event_axes, 0))) if event_axes else terms

    def cross_entropy(self, other):
        """H(self, other) = −E_self[log other(x)] = H[self] + KL(self ‖ other), in nats."""
        entropy, kl = jnp.broadcast_arrays(self.entropy(), self.kl_divergence(other))
        return entropy + kl

    def __repr__(self):
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._params)
        return f"{type(self).__name__}({fields})"
