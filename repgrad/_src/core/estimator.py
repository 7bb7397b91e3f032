"""The estimator protocol: an estimator is a value that supplies only its own math.

The core resolves ``d = dist(params)``, checks the key and builds a :class:`Problem`; the
estimator's ``surrogate(problem, d, key, state, control)`` draws, evaluates f through
``problem.evaluate`` (which shards the samples and checks f's output) and assembles its
surrogate from the kernels in ``kernels.py``. Everything else — argument checks, state and
control-parameter plumbing, the ``jax.grad``-style transforms — is written once, in
``transforms.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import evaluate, sharding


class Problem(NamedTuple):
    """What is being estimated at one call: E_{x∼dist(params)}[f(x, *args)].

    Attributes:
      f: ``f(x, key, *args)``, a scalar per sample (``(scalar, aux)`` with ``has_aux``). The
        core passes every f this way: ``key`` is sample x's own key with ``f_key=True``, and
        ``None`` (ignored) otherwise.
      args: f's extra arguments (differentiable by ordinary autodiff).
      has_aux: whether f returns ``(value, aux)``.
      num_samples: N, static.
      sample_sharding: ``None`` or a ``jax.sharding.Sharding`` for the sample axis.
      dist: the user's ``dist`` callable (for estimators that rebuild it, e.g. at ⊥params).
      params: the user's params.
      user_f: the user's f (value only, ``(x, key, *args)``) when ``f`` was rewritten (e.g. into
        f − c·h by a control variate), so that checks of f's own path derivative read the user's f.
      keys: with ``f_key=True``, the (N,) keys of f's own randomness, one per sample; ``None``
        otherwise. Every point an estimator evaluates *for sample n* (a coupled pair, a
        substituted coordinate, an antithetic twin) uses sample n's key: common random numbers.
      fixed_key: with ``f_key=True``, a key independent of the samples' for evaluations that
        belong to no sample (the delta method's expansion point); ``None`` otherwise.
    """

    f: Callable[..., Any]
    args: tuple
    has_aux: bool
    num_samples: int
    sample_sharding: jax.sharding.Sharding | None
    dist: Callable[[Any], Any]
    params: Any
    user_f: Callable[..., Any] | None = None
    keys: Any = None
    fixed_key: Any = None

    def evaluate(self, x, num: int | None = None, keys=None):
        """``(values (num,), aux)`` of f over the stacked points ``x`` (sharded first).

        ``keys``: f's key for each point, when the points are not the N samples themselves in
        order (e.g. ``self.tile_keys(2)`` for antithetic pairs stacked after the samples).
        """
        num = self.num_samples if num is None else num
        if keys is None and self.keys is not None:
            if num != self.num_samples:
                raise AssertionError(
                    "repgrad internal error: an estimator evaluated f at points that are not the samples "
                    "without giving each point its sample's key (Problem.evaluate(x, num, keys=...))."
                )
            keys = self.keys
        x = sharding.shard_samples(x, self.sample_sharding)
        if keys is not None:
            keys = sharding.shard_samples(keys, self.sample_sharding)
        return evaluate.eval_f(self.f, x, self.args, self.has_aux, num, keys)

    def shard(self, x):
        return sharding.shard_samples(x, self.sample_sharding)

    @property
    def f_value(self) -> Callable[..., Any]:
        """f without its aux output: ``f_value(x, key, *args)`` is a scalar."""
        f = self.f
        return (lambda x, k, *a: f(x, k, *a)[0]) if self.has_aux else f

    @property
    def source_f(self) -> Callable[..., Any]:
        """The user's f, value only: ``source_f(x, key, *args)`` is a scalar."""
        return self.user_f if self.user_f is not None else self.f_value

    def replace_f(self, f, has_aux: bool | None = None) -> Problem:
        """This problem for another ``f(x, key, *args)`` (a residual, a control variate)."""
        return self._replace(f=f, has_aux=self.has_aux if has_aux is None else has_aux, user_f=self.source_f)

    def tile_keys(self, times: int):
        """The samples' keys repeated ``times`` over (for ``times`` stacked copies of the samples)."""
        return None if self.keys is None else jnp.concatenate([self.keys] * times)

    def take_keys(self, index):
        """The keys of the samples at ``index`` (an int array), or ``None`` without ``f_key``."""
        return None if self.keys is None else self.keys[index]

    def new_keys(self, key):
        """Fresh per-sample keys for a second set of N samples drawn with ``key``, or ``None``."""
        return None if self.keys is None else jax.random.split(jax.random.fold_in(key, F_KEY_STREAM), self.num_samples)


# fold_in constants that separate f's own randomness from the estimator's draws: the
# estimator's use of the call's key is unchanged by f_key, so results without it stay bit-identical.
F_KEY_STREAM = 0x66
FIXED_KEY_STREAM = 0x67


def f_keys(key, num_samples: int):
    """``(keys, fixed_key)`` of f's own randomness for a call with ``key``."""
    keys = jax.random.split(jax.random.fold_in(key, F_KEY_STREAM), num_samples)
    return keys, jax.random.fold_in(key, FIXED_KEY_STREAM)


class Out(NamedTuple):
    """What a surrogate returns.

    Attributes:
      loss: the surrogate: equal to ``value``; its derivatives are the estimator's.
      value: the Monte Carlo estimate of E[f].
      aux: f's aux output stacked over samples (``None`` without ``has_aux``).
      state: the estimator's new state (stateful estimators; ``()`` otherwise).
      control_grads: for learned control variates (REBAR, RELAX), ∇ψ of the estimator's
        variance, in the structure of the control parameters ψ; ``None`` otherwise.
    """

    loss: jax.Array
    value: jax.Array
    aux: Any = None
    state: Any = ()
    control_grads: Any = None


def no_state():
    """The state of a stateless estimator: an empty tuple."""
    return ()


class Estimator(NamedTuple):
    """A gradient estimator, as a value (built by ``rg.pathwise()``, ``rg.score(...)``, ...).

    Attributes:
      name: a short label for tables, errors and the registry.
      surrogate: ``surrogate(problem, d, key, state, control) -> Out``.
      init: ``init() -> state``; ``()`` for stateless estimators.
      stateful: whether calls take ``baseline_state=`` and return the new state.
      control_init: for learned control variates, ``control_init() -> ψ`` (calls then take
        ``control_params=`` and return ∇ψ Var[ĝ]); ``None`` otherwise.
      min_samples: the smallest ``num_samples`` it works with.
      max_order: the highest derivative order it estimates without bias (``None``: every
        order); past it, differentiating raises ``repgrad.DerivativeOrderError``.
      family: the distributions it accepts: ``"any"``, ``"reparameterized"``,
        ``"measure_valued"``, ``"bernoulli"`` or ``"discrete"`` (Bernoulli or Categorical).
      log_weight: whether f is a per-sample log-weight inside a K-sample bound (VIMCO).
      biased: whether its gradient is biased for ∇θ E[f] (a relaxation: Gumbel-softmax,
        straight-through, Gumbel-Rao). ``rg.select_estimator`` makes a biased estimator a
        candidate only with ``allow_biased=True``, and then ranks it by mean squared error
        against an unbiased reference, never by variance alone. An estimator built on a
        biased one (``rg.with_control_variate``) stays biased.
    """

    name: str
    surrogate: Callable[..., Out]
    init: Callable[[], Any] = no_state
    stateful: bool = False
    control_init: Callable[[], Any] | None = None
    min_samples: int = 1
    max_order: int | None = None
    family: str = "any"
    log_weight: bool = False
    biased: bool = False
