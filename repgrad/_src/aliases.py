"""The named transforms the project has always promised — ``pathwise_grad``, ``score_grad``,
``measure_valued_grad``, their ``*_value_and_grad`` and the discrete ``*_grad`` — each a
one-line alias of ``rg.grad``/``rg.value_and_grad`` with one estimator value. The math,
bias and references of each live in the estimator's own docstring (``rg.pathwise`` etc.).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax

from .core import transforms
from .estimators.arm import arm
from .estimators.disarm import disarm
from .estimators.disarm_multisample import disarm_multisample
from .estimators.double_cv import double_cv
from .estimators.enumeration import MAX_CONFIGURATIONS, enumeration
from .estimators.gumbel_rao import gumbel_rao
from .estimators.gumbel_softmax import gumbel_softmax
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
from .variance_reduction.baselines import Baseline, OptimalBaseline
from .variance_reduction.control_variates import ControlVariate

Fn = Callable[..., Any]
Sharding = jax.sharding.Sharding | None
CV = ControlVariate | str | None
BaselineLike = Baseline | OptimalBaseline | str | None
vg, gr = transforms.value_and_grad, transforms.grad


def pathwise_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, control_variate: CV = None, allow_zero_gradient: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and pathwise (reparameterization) gradient of E_{p_θ}[f]: ``rg.value_and_grad(f, dist, rg.pathwise(control_variate=...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.pathwise_value_and_grad(lambda x: jnp.sum(x ** 2), lambda p: rg.Normal(p, 1.0), num_samples=1000)
      >>> value, g = fn(jnp.ones(2), jax.random.key(0))  # exact: 4 and (2, 2)

    References:
      Kingma & Welling 2014; Figurnov et al. 2018; see ``rg.pathwise``.
    """
    return vg(f, dist, pathwise(control_variate=control_variate, allow_zero_gradient=allow_zero_gradient), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def pathwise_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, control_variate: CV = None, allow_zero_gradient: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Pathwise (reparameterization) gradient of E_{p_θ}[f]: ``rg.grad(f, dist, rg.pathwise(control_variate=...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.pathwise_grad(lambda x: x ** 2, lambda p: rg.Normal(p, 1.0), num_samples=4096)(jnp.float32(1.5), jax.random.key(0))  # exact: 3

    References:
      Kingma & Welling 2014; Figurnov et al. 2018; see ``rg.pathwise``.
    """
    return gr(f, dist, pathwise(control_variate=control_variate, allow_zero_gradient=allow_zero_gradient), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def score_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, baseline: BaselineLike = None, control_variate: CV = None, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and score-function (REINFORCE) gradient of E_{p_θ}[f]: ``rg.value_and_grad(f, dist, rg.score(baseline=..., control_variate=...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.score_value_and_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p),
      ...                            num_samples=64, baseline="loo")
      >>> value, g = fn(jnp.zeros(3), jax.random.key(0))

    References:
      Williams 1992; Kool et al. 2019 (RLOO); Foerster et al. 2018 (DiCE); see ``rg.score``.
    """
    est = score(baseline=baseline, control_variate=control_variate)
    return vg(f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def score_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, baseline: BaselineLike = None, control_variate: CV = None, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Score-function (REINFORCE) gradient of E_{p_θ}[f]: ``rg.grad(f, dist, rg.score(baseline=..., control_variate=...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.score_grad(lambda x: x ** 2, lambda p: rg.Normal(p, 1.0), num_samples=4096,
      ...                  baseline="loo")(jnp.float32(1.5), jax.random.key(0))  # exact: 3

    References:
      Williams 1992; Kool et al. 2019 (RLOO); Foerster et al. 2018 (DiCE); see ``rg.score``.
    """
    est = score(baseline=baseline, control_variate=control_variate)
    return gr(f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def measure_valued_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, coupled: bool = True, chunk_size: int | None = None, control_variate: CV = None, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and measure-valued gradient of E_{p_θ}[f]: ``rg.value_and_grad(f, dist, rg.measure_valued(...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.measure_valued_value_and_grad(jnp.cos, lambda p: rg.Normal(p[0], p[1]), num_samples=256)
      >>> value, g = fn((jnp.float32(1.0), jnp.float32(1.0)), jax.random.key(0))

    References:
      Pflug 1989; Mohamed et al. 2020 (arXiv:1906.10652), §6; see ``rg.measure_valued``.
    """
    est = measure_valued(coupled=coupled, chunk_size=chunk_size, control_variate=control_variate)
    return vg(f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def measure_valued_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, coupled: bool = True, chunk_size: int | None = None, control_variate: CV = None, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Measure-valued gradient of E_{p_θ}[f]: ``rg.grad(f, dist, rg.measure_valued(...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.measure_valued_grad(lambda x: x ** 2, lambda p: rg.Normal(p, 1.0),
      ...                           num_samples=1024)(jnp.float32(1.5), jax.random.key(0))  # exact: 3

    References:
      Pflug 1989; Mohamed et al. 2020 (arXiv:1906.10652), §6; see ``rg.measure_valued``.
    """
    est = measure_valued(coupled=coupled, chunk_size=chunk_size, control_variate=control_variate)
    return gr(f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def arm_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and ARM gradient of E_{b∼Bern(σ(φ))}[f(b)] (unbiased): ``rg.value_and_grad(f, dist, rg.arm())``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> v, g = rg.arm_value_and_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p),
      ...                           num_samples=16)(jnp.zeros(3), jax.random.key(0))

    References:
      Yin & Zhou, ICLR 2019 (arXiv:1807.11143); see ``rg.arm``.
    """
    return vg(f, dist, arm(), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def arm_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """ARM gradient of E_{b∼Bern(σ(φ))}[f(b)] (unbiased): ``rg.grad(f, dist, rg.arm())``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.arm_grad(lambda b: jnp.sum(b), lambda p: rg.Bernoulli(logits=p),
      ...                 num_samples=64)(jnp.zeros(2), jax.random.key(0))  # exact: 0.25 each

    References:
      Yin & Zhou, ICLR 2019 (arXiv:1807.11143); see ``rg.arm``.
    """
    return gr(f, dist, arm(), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def disarm_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and DisARM gradient of E_{b∼Bern(σ(φ))}[f(b)] (unbiased): ``rg.value_and_grad(f, dist, rg.disarm())``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> v, g = rg.disarm_value_and_grad(lambda b: jnp.sum((b - 0.499) ** 2), lambda p: rg.Bernoulli(logits=p),
      ...                              num_samples=16)(jnp.zeros(3), jax.random.key(0))

    References:
      Dong, Mnih & Tucker, NeurIPS 2020 (arXiv:2006.10680); see ``rg.disarm``.
    """
    return vg(f, dist, disarm(), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def disarm_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """DisARM gradient of E_{b∼Bern(σ(φ))}[f(b)] (unbiased): ``rg.grad(f, dist, rg.disarm())``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.disarm_grad(lambda b: jnp.sum(b), lambda p: rg.Bernoulli(logits=p),
      ...                    num_samples=64)(jnp.zeros(2), jax.random.key(0))  # exact: 0.25 each

    References:
      Dong, Mnih & Tucker, NeurIPS 2020 (arXiv:2006.10680); see ``rg.disarm``.
    """
    return gr(f, dist, disarm(), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def disarm_multisample_value_and_grad(log_weight: Fn, dist: Fn, *, num_samples: int = 2, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and multi-sample DisARM gradient (unbiased) of E[log (1/K) Σ_k w(b_k)]: ``rg.value_and_grad(log_weight, dist, rg.disarm_multisample())``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> v, g = rg.disarm_multisample_value_and_grad(lambda b: -jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p),
      ...                                          num_samples=4)(jnp.zeros(3), jax.random.key(0))

    References:
      Dong, Mnih & Tucker, NeurIPS 2020 (arXiv:2006.10680); see ``rg.disarm_multisample``.
    """
    return vg(log_weight, dist, disarm_multisample(), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def disarm_multisample_grad(log_weight: Fn, dist: Fn, *, num_samples: int = 2, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Multi-sample DisARM gradient (unbiased) of E[log (1/K) Σ_k w(b_k)]: ``rg.grad(log_weight, dist, rg.disarm_multisample())``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.disarm_multisample_grad(lambda b: -jnp.sum(b), lambda p: rg.Bernoulli(logits=p),
      ...                                num_samples=4)(jnp.zeros(2), jax.random.key(0))

    References:
      Dong, Mnih & Tucker, NeurIPS 2020 (arXiv:2006.10680); see ``rg.disarm_multisample``.
    """
    return gr(log_weight, dist, disarm_multisample(), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def vimco_value_and_grad(log_weight: Fn, dist: Fn, *, num_samples: int = 2, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and VIMCO gradient (unbiased) of E[log (1/K) Σ_k w(b_k)]: ``rg.value_and_grad(log_weight, dist, rg.vimco())``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> bound, g = rg.vimco_value_and_grad(lambda b: -jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p),
      ...                                 num_samples=4)(jnp.zeros(3), jax.random.key(0))

    References:
      Mnih & Rezende, ICML 2016 (arXiv:1602.06725); see ``rg.vimco``.
    """
    return vg(log_weight, dist, vimco(), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def vimco_grad(log_weight: Fn, dist: Fn, *, num_samples: int = 2, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """VIMCO gradient (unbiased) of E[log (1/K) Σ_k w(b_k)]: ``rg.grad(log_weight, dist, rg.vimco())``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.vimco_grad(lambda b: -jnp.sum(b), lambda p: rg.Bernoulli(logits=p),
      ...                   num_samples=4)(jnp.zeros(2), jax.random.key(0))

    References:
      Mnih & Rezende, ICML 2016 (arXiv:1602.06725); see ``rg.vimco``.
    """
    return gr(log_weight, dist, vimco(), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def rebar_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, eta: float = 1.0, temperature: float = 0.5, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and REBAR gradient (unbiased): ``rg.value_and_grad(f, dist, rg.rebar(eta=..., temperature=...))``; calls take ``control_params=`` and return ``((value, grads), control_grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.rebar_value_and_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p), num_samples=8)
      >>> (value, g), psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params=fn.init_control_params())

    References:
      Tucker et al., NeurIPS 2017 (arXiv:1703.07370); see ``rg.rebar``.
    """
    est = rebar(eta=eta, temperature=temperature)
    return vg(f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def rebar_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, eta: float = 1.0, temperature: float = 0.5, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """REBAR gradient (unbiased): ``rg.grad(f, dist, rg.rebar(eta=..., temperature=...))``; calls take ``control_params=`` and return ``(grads, control_grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.rebar_grad(lambda b: jnp.sum(b), lambda p: rg.Bernoulli(logits=p), num_samples=8)
      >>> g, psi_grad = fn(jnp.zeros(2), jax.random.key(0), control_params=fn.init_control_params())

    References:
      Tucker et al., NeurIPS 2017 (arXiv:1703.07370); see ``rg.rebar``.
    """
    est = rebar(eta=eta, temperature=temperature)
    return gr(f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def _relax_control(args, control):
    if args:
        warnings.warn(
            "passing RELAX's control positionally is deprecated; write relax_grad(f, dist, control=c, ...).",
            DeprecationWarning,
            stacklevel=3,
        )
        if len(args) > 1 or control is not None:
            raise TypeError("relax_grad takes f, dist and control= (keyword); options are keyword-only.")
        return args[0]
    return control


def relax_value_and_grad(f: Fn, dist: Fn, *args, control: Fn | None = None, num_samples: int = 1, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and RELAX gradient (unbiased): ``rg.value_and_grad(f, dist, rg.relax(control))``; calls take ``control_params=psi`` and return ``((value, grads), control_grads)``. ``control`` is keyword-only (positional is deprecated).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> control = lambda z, psi: psi["a"] * jnp.sum(jax.nn.sigmoid(z)) + psi["c"]
      >>> fn = rg.relax_value_and_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p),
      ...                              control=control, num_samples=8)
      >>> (value, g), psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params={"a": jnp.float32(0.0), "c": jnp.float32(0.5)})

    References:
      Grathwohl et al., ICLR 2018 (arXiv:1711.00123); see ``rg.relax``.
    """
    est = relax(_relax_control(args, control))
    return vg(f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def relax_grad(f: Fn, dist: Fn, *args, control: Fn | None = None, num_samples: int = 1, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """RELAX gradient (unbiased): ``rg.grad(f, dist, rg.relax(control))``; calls take ``control_params=psi`` and return ``(grads, control_grads)``. ``control`` is keyword-only (positional is deprecated).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.relax_grad(lambda b: jnp.sum(b), lambda p: rg.Bernoulli(logits=p),
      ...                 control=lambda z, psi: psi * jnp.sum(jax.nn.sigmoid(z)), num_samples=8)
      >>> g, psi_grad = fn(jnp.zeros(2), jax.random.key(0), control_params=jnp.float32(1.0))

    References:
      Grathwohl et al., ICLR 2018 (arXiv:1711.00123); see ``rg.relax``.
    """
    est = relax(_relax_control(args, control))
    return gr(f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def gumbel_softmax_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, temperature: float | jax.Array = 1.0, straight_through: bool = False, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and Gumbel-softmax / Concrete gradient (biased): ``rg.value_and_grad(f, dist, rg.gumbel_softmax(temperature=..., straight_through=...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> v, g = rg.gumbel_softmax_value_and_grad(lambda y: jnp.sum(y * jnp.arange(3.0)), lambda p: rg.Categorical(logits=p),
      ...                                      num_samples=64, temperature=0.5)(jnp.zeros(3), jax.random.key(0))

    References:
      Jang et al. 2017 (arXiv:1611.01144); Maddison et al. 2017 (arXiv:1611.00712); see ``rg.gumbel_softmax``.
    """
    est = gumbel_softmax(temperature=temperature, straight_through=straight_through)
    return vg(f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def gumbel_softmax_grad(f: Fn, dist: Fn, *, num_samples: int = 1, temperature: float | jax.Array = 1.0, straight_through: bool = False, has_aux: bool = False, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Gumbel-softmax / Concrete gradient (biased): ``rg.grad(f, dist, rg.gumbel_softmax(temperature=..., straight_through=...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.gumbel_softmax_grad(lambda y: jnp.sum(y), lambda p: rg.Bernoulli(logits=p),
      ...                           num_samples=256, temperature=0.1)(jnp.zeros(2), jax.random.key(0))  # ≈ 0.25

    References:
      Jang et al. 2017 (arXiv:1611.01144); Maddison et al. 2017 (arXiv:1611.00712); see ``rg.gumbel_softmax``.
    """
    est = gumbel_softmax(temperature=temperature, straight_through=straight_through)
    return gr(f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def enumeration_value_and_grad(f: Fn, dist: Fn, *, has_aux: bool = False, max_configurations: int = MAX_CONFIGURATIONS, f_key: bool = False, num_samples: int = 1) -> Fn:
    """Exact E_{p_θ}[f] and gradient by enumerating the support: ``rg.value_and_grad(f, dist, rg.enumeration())``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> v, g = rg.enumeration_value_and_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p))(
      ...     jnp.zeros(3), jax.random.key(0))  # g = σ'(0)·(1 − 2·0.45) = 0.025 each

    References:
      Mohamed et al. 2020 (arXiv:1906.10652), §2; see ``rg.enumeration``.
    """
    return vg(f, dist, enumeration(max_configurations=max_configurations), has_aux=has_aux, f_key=f_key, num_samples=num_samples)


def enumeration_grad(f: Fn, dist: Fn, *, has_aux: bool = False, max_configurations: int = MAX_CONFIGURATIONS, f_key: bool = False, num_samples: int = 1) -> Fn:
    """Exact gradient ∇θ Σ_x p_θ(x) f(x) by enumeration: ``rg.grad(f, dist, rg.enumeration())``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.enumeration_grad(lambda k: (k == 2).astype(jnp.float32),
      ...                     lambda p: rg.Categorical(logits=p))(jnp.zeros(3), jax.random.key(0))

    References:
      Mohamed et al. 2020 (arXiv:1906.10652), §2; see ``rg.enumeration``.
    """
    return gr(f, dist, enumeration(max_configurations=max_configurations), has_aux=has_aux, f_key=f_key, num_samples=num_samples)


def indecater_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, chunk_size: int | None = None, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and IndeCateR gradient (unbiased): ``rg.value_and_grad(f, dist, rg.indecater(chunk_size=...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> v, g = rg.indecater_value_and_grad(lambda k: jnp.sum(k == 1).astype(jnp.float32), lambda p: rg.Categorical(logits=p),
      ... num_samples=8)(jnp.zeros((2, 3)), jax.random.key(0))

    References:
      De Smet et al., NeurIPS 2023 (arXiv:2311.12569); see ``rg.indecater``.
    """
    return vg(f, dist, indecater(chunk_size=chunk_size), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def indecater_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, chunk_size: int | None = None, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """IndeCateR gradient (unbiased): ``rg.grad(f, dist, rg.indecater(chunk_size=...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.indecater_grad(lambda b: jnp.prod(1.0 + b), lambda p: rg.Bernoulli(logits=p), num_samples=8)(jnp.zeros(3), jax.random.key(0))

    References:
      De Smet et al., NeurIPS 2023 (arXiv:2311.12569); see ``rg.indecater``.
    """
    return gr(f, dist, indecater(chunk_size=chunk_size), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def double_cv_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, alpha: float = 0.0, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and double control variate gradient (unbiased): ``rg.value_and_grad(f, dist, rg.double_cv(alpha=...))``; calls take ``control_params=`` and return ``(result, control_grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.double_cv_value_and_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p), num_samples=4)
      >>> (value, g), psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params=fn.init_control_params())

    References:
      Titsias & Shi, AISTATS 2022 (arXiv:2111.05300); see ``rg.double_cv``.
    """
    return vg(f, dist, double_cv(alpha=alpha), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def double_cv_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, alpha: float = 0.0, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Double control variate gradient (unbiased): ``rg.grad(f, dist, rg.double_cv(alpha=...))``; calls take ``control_params=`` and return ``(result, control_grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.double_cv_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p), num_samples=4)
      >>> g, psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params=fn.init_control_params())

    References:
      Titsias & Shi, AISTATS 2022 (arXiv:2111.05300); see ``rg.double_cv``.
    """
    return gr(f, dist, double_cv(alpha=alpha), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def rodeo_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, hidden: int = 100, seed: int = 0, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and RODEO gradient (unbiased): ``rg.value_and_grad(f, dist, rg.rodeo(hidden=..., seed=...))``; calls take ``control_params=`` and return ``(result, control_grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.rodeo_value_and_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p), num_samples=4)
      >>> (value, g), psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params=fn.init_control_params())

    References:
      Shi et al., NeurIPS 2022 (arXiv:2202.09497); see ``rg.rodeo``.
    """
    return vg(f, dist, rodeo(hidden=hidden, seed=seed), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def rodeo_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, hidden: int = 100, seed: int = 0, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """RODEO gradient (unbiased): ``rg.grad(f, dist, rg.rodeo(hidden=..., seed=...))``; calls take ``control_params=`` and return ``(result, control_grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.rodeo_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p), num_samples=4)
      >>> g, psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params=fn.init_control_params())

    References:
      Shi et al., NeurIPS 2022 (arXiv:2202.09497); see ``rg.rodeo``.
    """
    return gr(f, dist, rodeo(hidden=hidden, seed=seed), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def unordered_set_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, k: int = 4, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and unordered set gradient (unbiased): ``rg.value_and_grad(f, dist, rg.unordered_set(k))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> v, g = rg.unordered_set_value_and_grad(lambda b: jnp.sum(b), lambda p: rg.Bernoulli(logits=p), k=3,
      ... num_samples=8)(jnp.zeros(2), jax.random.key(0))

    References:
      Kool et al., ICLR 2020 (arXiv:2002.06043); see ``rg.unordered_set``.
    """
    return vg(f, dist, unordered_set(k), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def unordered_set_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, k: int = 4, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Unordered set gradient (unbiased): ``rg.grad(f, dist, rg.unordered_set(k))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.unordered_set_grad(lambda k: (k == 2).astype(jnp.float32), lambda p: rg.Categorical(logits=p), k=2,
      ... num_samples=8)(jnp.zeros(3), jax.random.key(0))

    References:
      Kool et al., ICLR 2020 (arXiv:2002.06043); see ``rg.unordered_set``.
    """
    return gr(f, dist, unordered_set(k), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def rao_blackwell_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, k: int = 4, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and Rao-Blackwellized top-k gradient (unbiased): ``rg.value_and_grad(f, dist, rg.rao_blackwell(k))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> v, g = rg.rao_blackwell_value_and_grad(lambda b: jnp.sum(b), lambda p: rg.Bernoulli(logits=p), k=2,
      ... num_samples=4)(jnp.zeros(2), jax.random.key(0))

    References:
      Liu et al., ICML 2019 (arXiv:1810.04777); see ``rg.rao_blackwell``.
    """
    return vg(f, dist, rao_blackwell(k), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def rao_blackwell_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, k: int = 4, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Rao-Blackwellized top-k gradient (unbiased): ``rg.grad(f, dist, rg.rao_blackwell(k))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.rao_blackwell_grad(lambda k: (k == 2).astype(jnp.float32), lambda p: rg.Categorical(logits=p), k=2,
      ... num_samples=4)(jnp.array([1.0, 0.5, -1.0, -2.0]), jax.random.key(0))

    References:
      Liu et al., ICML 2019 (arXiv:1810.04777); see ``rg.rao_blackwell``.
    """
    return gr(f, dist, rao_blackwell(k), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def gumbel_rao_value_and_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, temperature: float | jax.Array = 1.0, num_gumbels: int = 10, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Value and Gumbel-Rao gradient (biased: a relaxation): ``rg.value_and_grad(f, dist, rg.gumbel_rao(temperature=..., num_gumbels=...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> v, g = rg.gumbel_rao_value_and_grad(lambda b: jnp.sum(b ** 2), lambda p: rg.Bernoulli(logits=p),
      ... temperature=0.5, num_samples=8)(jnp.zeros(2), jax.random.key(0))

    References:
      Paulus et al., ICLR 2021 (arXiv:2010.04838); see ``rg.gumbel_rao``.
    """
    return vg(f, dist, gumbel_rao(temperature=temperature, num_gumbels=num_gumbels), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)


def gumbel_rao_grad(f: Fn, dist: Fn, *, num_samples: int = 1, has_aux: bool = False, temperature: float | jax.Array = 1.0, num_gumbels: int = 10, sample_sharding: Sharding = None, f_key: bool = False) -> Fn:
    """Gumbel-Rao gradient (biased: a relaxation): ``rg.grad(f, dist, rg.gumbel_rao(temperature=..., num_gumbels=...))``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.gumbel_rao_grad(lambda y: jnp.sum(y * jnp.arange(3.0)) ** 2, lambda p: rg.Categorical(logits=p),
      ... temperature=0.5, num_samples=8)(jnp.zeros(3), jax.random.key(0))

    References:
      Paulus et al., ICLR 2021 (arXiv:2010.04838); see ``rg.gumbel_rao``.
    """
    return gr(f, dist, gumbel_rao(temperature=temperature, num_gumbels=num_gumbels), num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key)
