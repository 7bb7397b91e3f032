"""The transforms, written once for every estimator: ``value_and_grad``, ``grad`` and
``expectation`` over an :class:`~.estimator.Estimator` value.

They follow ``jax.grad``'s contract: options are checked when the transform is built,
the key and state when it is called (at trace time), and the returned function has its
own signature ``(params, key, *args)`` — plus ``baseline_state=`` for stateful estimators
and ``control_params=`` for learned control variates — and a name and docstring that
mention f. It never carries f's signature (``__wrapped__``), so ``jax.jit``'s
``static_argnums``/``static_argnames``/``donate_argnames`` and ``eqx.filter_jit`` bind to
the transform's own parameters.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax

from . import checks, protocol, sharding
from . import estimator as estimator_module
from .estimator import Estimator, Out, Problem

STATE = "baseline_state"
CONTROL = "control_params"


class Spec:
    """The checked, static part of a transform: f, dist, estimator and options."""

    def __init__(self, f, dist, estimator: Estimator, *, num_samples, has_aux, sample_sharding, f_key=False):
        if not isinstance(estimator, Estimator):
            raise TypeError(
                f"estimator must be a repgrad estimator value (e.g. rg.pathwise(), rg.score(baseline='loo')) "
                f"or a name such as 'score'; got {estimator!r}."
            )
        self.f = checks.check_callable(f, "f", "f=lambda x: jnp.sum(x ** 2)")
        self.dist = dist
        self.estimator = estimator
        self.num_samples = checks.check_num_samples(num_samples)
        checks.check_num_samples(self.num_samples, estimator.min_samples, f" for the {estimator.name} estimator")
        self.has_aux = checks.check_has_aux(has_aux)
        self.f_key = checks.check_flag(f_key, "f_key")
        self.sample_sharding = sharding.check_sharding(sample_sharding)

    def run(self, params, key, args, state, control) -> Out:
        d = protocol.resolve_dist(self.dist, params)
        user_f = self.f
        if self.f_key:  # f(x, key, *args): each sample its own key, split from the call's
            f, (keys, fixed_key) = user_f, estimator_module.f_keys(key, self.num_samples)
        else:  # the core passes every f a key; f without f_key ignores it
            f, keys, fixed_key = (lambda x, k, *a: user_f(x, *a)), None, None
        problem = Problem(
            f, tuple(args), self.has_aux, self.num_samples, self.sample_sharding, self.dist, params,
            keys=keys, fixed_key=fixed_key,
        )
        return self.estimator.surrogate(problem, d, key, state, control)

    def call_inputs(self, key, kwargs):
        """Checks the key; (state, control) from the call's keyword arguments. Errors name the fix."""
        checks.check_key(key)
        est = self.estimator
        state = _pop(kwargs, STATE, "state", "fn.init_state()") if est.stateful else ()
        control = _pop(kwargs, CONTROL, "psi", "fn.init_control_params()") if est.control_init else None
        for name in (STATE, CONTROL):
            if name in kwargs:
                raise TypeError(f"{name}= was given but the {est.name} estimator takes none; drop it.")
        if kwargs:
            raise TypeError(
                f"unexpected keyword arguments {sorted(kwargs)}; extra arguments of f are passed "
                "positionally: fn(params, key, *args)."
            )
        return state, control

    def wrap(self, result, out: Out):
        """Appends the control-variate gradients, then the new state, as documented."""
        if self.estimator.control_init is not None:
            result = (result, out.control_grads)
        if self.estimator.stateful:
            result = (result, out.state)
        return result

    def finish(self, fn, kind: str, doc: str):
        """Gives ``fn`` its own signature, name and docstring, and the init helpers."""
        est = self.estimator
        fname = getattr(self.f, "__name__", type(self.f).__name__)
        params = [
            inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("key", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
        ]
        if est.stateful:
            params.append(inspect.Parameter(STATE, inspect.Parameter.KEYWORD_ONLY))
        if est.control_init is not None:
            params.append(inspect.Parameter(CONTROL, inspect.Parameter.KEYWORD_ONLY))
        fn.__signature__ = inspect.Signature(params)
        fn.__name__ = fn.__qualname__ = f"{kind}_{fname}"
        call = f"{fname}(x, key_n, *args)" if self.f_key else f"{fname}(x, *args)"
        fn.__doc__ = (
            f"{doc} of E_{{x ~ dist(params)}}[{call}], by the {est.name} estimator "
            f"with num_samples={self.num_samples}. Call as fn(params, key, *args"
            + (f", {STATE}=state" if est.stateful else "")
            + (f", {CONTROL}=psi" if est.control_init is not None else "")
            + ")."
        )
        fn.init_state = est.init
        fn.estimator = est
        if est.control_init is not None:
            fn.init_control_params = est.control_init
        return fn


def _pop(kwargs, name, value, init):
    if name not in kwargs or kwargs[name] is None:
        raise TypeError(
            f"This estimator takes {name}=: call it as fn(params, key, *args, {name}={value}), starting "
            f"from {value} = {init}, and feed back the {value} each call returns (or updates)."
        )
    return kwargs.pop(name)


def _transform(kind, doc, arrange):
    """A ``jax.grad``-style transform: differentiates the surrogate once, then ``arrange``s."""

    def build(f, dist, estimator: Estimator, *, num_samples=1, has_aux=False, sample_sharding=None, f_key=False):
        spec = Spec(
            f, dist, estimator, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key
        )

        def fn(params, key, *args, **kwargs):
            state, control = spec.call_inputs(key, kwargs)
            diff, static = checks.partition_params(params)
            surrogate = lambda p: _loss_and_out(spec.run(checks.combine_params(p, static), key, args, state, control))
            grads, out = jax.grad(surrogate, has_aux=True)(diff)
            return spec.wrap(arrange(grads, out, spec.has_aux), out)

        return spec.finish(fn, kind, doc)

    build.__doc__ = f"``fn(params, key, *args)`` -> {kind} for an estimator value; see ``rg.{kind}``."
    return build


value_and_grad = _transform(
    "value_and_grad",
    "Monte Carlo value and gradient",
    lambda grads, out, has_aux: (((out.value, out.aux) if has_aux else out.value), grads),
)
grad = _transform("grad", "Monte Carlo gradient", lambda grads, out, has_aux: (grads, out.aux) if has_aux else grads)


def expectation(f, dist, estimator: Estimator, *, num_samples=1, has_aux=False, sample_sharding=None, f_key=False):
    """``loss(params, key, *args)``: a surrogate whose derivatives are the estimator's."""
    spec = Spec(
        f, dist, estimator, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key
    )

    def loss_fn(params, key, *args, **kwargs):
        state, control = spec.call_inputs(key, kwargs)
        out = spec.run(params, key, args, state, control)
        extras: list[Any] = []
        if spec.has_aux:
            extras.append(out.aux)
        if estimator.control_init is not None:
            extras.append(out.control_grads)
        if estimator.stateful:
            extras.append(out.state)
        if not extras:
            return out.loss
        return (out.loss, extras[0]) if len(extras) == 1 else (out.loss, tuple(extras))

    return spec.finish(loss_fn, "expectation", "Monte Carlo surrogate")


def _loss_and_out(out: Out):
    return out.loss, out
