r"""The ELBO of a numpyro model and guide as a stochastic computation graph, an estimator per
guide site (``repgrad.numpyro.ELBO``). Importing this module imports numpyro.

One particle, keyed k, runs the guide and the model replayed against it. Its costs are the
model's log-densities log p and the guide's −log q, each an array over its plates. Each guide
latent gets one estimator:

- **pathwise** (sites with ``rsample``): gradients flow through the sample;
- **score** (optionally leave-one-out across particles): DiCE, every order. A cost is weighted
  by the magic box of the log q of every score site it depends on — its value reads the
  site's sample, or the sample of a site whose distribution reads it (provenance, traced
  once from the program's jaxpr, ``provenance.py``) — elementwise along the plates the cost
  and the site share, summed over the others, as numpyro's ``TraceGraph_ELBO`` credits
  downstream costs;
- **multi-evaluation** (DisARM, enumeration, measure-valued, and any other first-order
  estimator): the site's downstream cost is re-evaluated by re-running guide and model with
  the site's value substituted (same keys for every other site: common random numbers),
  ``jax.vmap``-ed over the estimator's points, and the estimate ĝ is pulled back onto the
  site's parameters. When every downstream cost lies in all of the site's plates, each plate
  element is its own problem, so all elements are substituted at once (one run per point).
  First order: a second derivative that moves the site's parameters raises
  ``repgrad.DerivativeOrderError``.

References:
  Schulman, Heess, Weber & Abbeel, "Gradient Estimation Using Stochastic Computation Graphs",
  NeurIPS 2015. Foerster et al., "DiCE", ICML 2018. Farquhar et al., "Loaded DiCE", NeurIPS 2019.
  Dong, Mnih & Tucker, "DisARM", NeurIPS 2020. Mohamed et al., "Monte Carlo Gradient
  Estimation in Machine Learning", JMLR 2020.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpyro
from numpyro import handlers

from .. import distributions as _d
from ..core import kernels, protocol
from ..core.estimator import Estimator, Problem
from ..core.kernels import magic_box
from ..estimators import _discrete
from ..estimators.enumeration import MAX_CONFIGURATIONS
from ..estimators.weak_derivatives import DECOMPOSITIONS, EnumeratedPart, ScorePart, same
from ..registry import resolve
from . import provenance
from .stochastic import _leave_one_out

_sg = jax.lax.stop_gradient


# --------------------------------------------------------------------------- estimators per site


class _Site(NamedTuple):
    kind: str  # "pathwise" | "score" | "multi"
    estimator: Estimator | None
    loo: bool = False


def _resolve_site(name, spec, fn, num_particles) -> _Site:
    rsample = bool(getattr(fn, "has_rsample", False))
    if spec is None:
        if rsample:
            return _Site("pathwise", None)
        return _Site("score", None, loo=num_particles >= 2)
    est = resolve(spec)
    where = f"rg.numpyro.ELBO(estimators={{{name!r}: ...}})"
    if est.name == "pathwise":
        if not rsample:
            raise TypeError(
                f"{where}: site {name!r} ({type(fn).__name__}) has no reparameterized sampler, so "
                "the pathwise estimator cannot differentiate it. Use 'score:loo' (the default for "
                "such sites), rg.disarm() for a Bernoulli, rg.enumeration() for a small discrete "
                "support, or rg.measure_valued()."
            )
        return _Site("pathwise", None)
    if est.name in ("score", "score (loo baseline)"):
        loo = est.name != "score"
        if loo and num_particles < 2:
            raise ValueError(
                f"{where}: the leave-one-out baseline of site {name!r} averages over the other "
                f"particles, so it needs num_particles >= 2 (got {num_particles}); raise "
                "num_particles, or use 'score' (no baseline)."
            )
        return _Site("score", est, loo)
    if est.name == "enumeration" or (
        est.max_order == 1 and not est.stateful and est.control_init is None and est.min_samples <= 1 and not est.log_weight
    ):
        return _Site("multi", est)
    raise TypeError(
        f"{where}: the {est.name} estimator cannot be used for a guide site: "
        + (
            "it is a relaxation (biased), which would feed non-discrete values to the model. "
            if est.name.startswith(("gumbel", "straight"))
            else "it carries state, learned control parameters or several samples per particle. "
        )
        + "Per-site estimators are 'pathwise', 'score', 'score:loo' (leave-one-out across "
        "particles), rg.disarm(), rg.arm(), rg.enumeration() and rg.measure_valued()."
    )


# --------------------------------------------------------------------------- running the program


class _Values(numpyro.primitives.Messenger):
    """Sets the values of named guide sites, and draws the other ``stopped`` (non-pathwise)
    sites stop-gradient, with the key ``seed`` gave them (it runs first)."""

    def __init__(self, fn, values, stopped):
        self.values, self.stopped = values, stopped
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None:
            return
        name = msg["name"]
        if name in self.values:
            msg["value"] = self.values[name]
        elif name in self.stopped:
            # here, not in postprocess_message: trace records a copy of the site before that
            shape = msg["kwargs"].get("sample_shape", ())
            msg["value"] = _sg(msg["fn"].sample(msg["kwargs"]["rng_key"], shape))


class _Cost(NamedTuple):
    name: str  # "model:x" or "guide:z"
    value: jax.Array
    frames: frozenset  # the negative dims of its plates


def _frames(site) -> frozenset:
    return frozenset(f.dim for f in site["cond_indep_stack"] if f.dim is not None)


def _log_prob(site):
    fn, value = site["fn"], site["value"]
    lp = fn.log_prob(value, site["intermediates"]) if site["intermediates"] else fn.log_prob(value)
    scale = site["scale"]
    return lp if scale is None else scale * lp


class _Program(NamedTuple):
    """The model, the guide and this particle's keys and arguments."""

    model: Any
    guide: Any
    args: tuple
    kwargs: dict
    params: Mapping
    guide_key: jax.Array
    model_key: jax.Array

    def run(self, values, stopped):
        """(guide trace, model trace) with ``values`` substituted at guide sites."""
        with _as_numpyro():  # numpyro's internals mix dtypes and ranks
            guide = handlers.seed(handlers.substitute(self.guide, data=self.params), self.guide_key)
            guide_trace = handlers.trace(_Values(guide, values, stopped)).get_trace(*self.args, **self.kwargs)
            model = handlers.seed(handlers.substitute(self.model, data=self.params), self.model_key)
            model_trace = handlers.trace(handlers.replay(model, guide_trace)).get_trace(*self.args, **self.kwargs)
        return guide_trace, model_trace

    def costs(self, values, stopped, no_direct=()):
        """The costs of one run: log p per model site, −log q per guide site (``no_direct``:
        guide sites whose −log q is held stop-gradient in its parameters)."""
        guide_trace, model_trace = self.run(values, stopped)
        out = []
        with _as_numpyro():
            for name, site in model_trace.items():
                if site["type"] == "sample":
                    out.append(_Cost(f"model:{name}", jnp.asarray(_log_prob(site)), _frames(site)))
            for name, site in guide_trace.items():
                if site["type"] == "sample":
                    lp = jnp.asarray(_log_prob(site))
                    out.append(_Cost(f"guide:{name}", -(_sg(lp) if name in no_direct else lp), _frames(site)))
        return out, guide_trace


@contextlib.contextmanager
def _as_numpyro():
    """numpyro's code runs under JAX's default promotion rules (a user's may be strict)."""
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


def _latents(guide_trace):
    return {n: s for n, s in guide_trace.items() if s["type"] == "sample" and not s["is_observed"]}


# --------------------------------------------------------------------------- plates


def _align(x, rank):
    x = jnp.asarray(x)
    return jnp.reshape(x, (1,) * (rank - x.ndim) + x.shape)


def _keep(x, dims, rank):
    """``x`` right-aligned to ``rank`` axes, summed over every axis but the plate dims ``dims``."""
    x = _align(x, rank)
    axes = tuple(a for a in range(rank) if a - rank not in dims)
    return jnp.sum(x, axis=axes, keepdims=True) if axes else x


# --------------------------------------------------------------------------- families


_WRAPPERS = ("ExpandedDistribution", "Independent")


def _family(fn, shape):
    """A repgrad family equal to numpyro's ``fn`` with parameters broadcast to the value's
    ``shape`` (batch and event), or ``None`` when there is none."""
    while type(fn).__name__ in _WRAPPERS:
        fn = fn.base_dist
    name = type(fn).__name__
    b = lambda a, s=shape: jnp.broadcast_to(jnp.asarray(a), s)
    if name in ("BernoulliLogits", "BernoulliProbs"):
        return _d.Bernoulli(logits=b(fn.logits))
    if name in ("CategoricalLogits", "CategoricalProbs"):
        logits = jnp.asarray(fn.logits)
        return _d.Categorical(logits=b(logits, shape + logits.shape[-1:]))
    if name == "Normal":
        return _d.Normal(b(fn.loc), b(fn.scale))
    if name == "Poisson" and not getattr(fn, "is_sparse", False):
        return _d.Poisson(b(fn.rate))
    if name == "Gamma":
        return _d.Gamma(b(fn.concentration), b(fn.rate))
    if name == "Exponential":
        return _d.Exponential(b(fn.rate))
    return None


# --------------------------------------------------------------------------- multi-evaluation sites


def _enumeration_points(d, shape, batch_ndim, per_element):
    """Every configuration of one element (per plate element) or of the whole value: (M, *shape)."""
    kind = _discrete.kind_of(d, "enumeration")
    base = 2 if kind == "bernoulli" else d.logits.shape[-1]
    unit = shape[batch_ndim:] if per_element else shape
    size = math.prod(unit)
    count = base**size
    if count > MAX_CONFIGURATIONS:
        raise ValueError(
            f"enumeration of a guide site would evaluate the model on {base}^{size} = {count} "
            f"configurations{' per plate element' if per_element else ''}, more than {MAX_CONFIGURATIONS}. "
            "Put the site's independent elements in a numpyro.plate, or use rg.disarm() / 'score:loo'."
        )
    idx = jnp.arange(count, dtype=jnp.int32)[:, None]
    digits = (idx // (base ** jnp.arange(size, dtype=jnp.int32))[None, :]) % base
    points = jnp.reshape(digits, (count,) + unit)
    return jnp.broadcast_to(jnp.reshape(points, (count,) + (1,) * (len(shape) - len(unit)) + unit), (count,) + shape)


def _multi_term(site: _Site, name, fn, value, f, f_at_sample, batch_ndim, per_element, key):
    """The pull-back of site ``name``'s estimate ĝ onto its parameters: value 0, first order.

    ``f(points)`` gives the downstream cost at each point, per plate element (``per_element``:
    shape (M, *batch)) or in total ((M,)); ``f_at_sample`` is it at the particle's own sample.
    """
    est, shape = site.estimator, value.shape
    label = f"rg.numpyro.ELBO's {est.name} estimator at site {name!r}"
    d = _family(fn, shape)
    to_value = lambda g: jnp.reshape(g, g.shape + (1,) * (len(shape) - g.ndim))  # per element -> value
    if est.name == "enumeration":
        d = d if d is not None else fn
        points = _enumeration_points(d, shape, batch_ndim, per_element).astype(value.dtype)
        values = f(points)
        log_q = jax.vmap(d.log_prob)(points)  # (M, *shape) or (M, *batch)
        log_q = jnp.sum(jnp.reshape(log_q, log_q.shape[:1] + (-1,)), 1) if not per_element else _per_element(log_q, batch_ndim)
        total = jnp.sum(jnp.exp(log_q) * _sg(values).astype(log_q.dtype))
        return kernels.first_order(total - _sg(total), label, watch=(values,))
    if not per_element:
        return _joint(est, d if d is not None else fn, f, key)
    if est.name == "disarm":
        logits = _discrete.bernoulli_logits(d if d is not None else fn, label)
        theta = _sg(logits)
        b, b_tilde = _discrete.antithetic_pair(theta, _discrete.uniform(key, shape, theta.dtype))
        values = f(jnp.stack([b, b_tilde]).astype(value.dtype))
        coef = _discrete.disarm_coefficient(theta, b, b_tilde)
        g = 0.5 * to_value(values[0] - values[1]).astype(coef.dtype) * coef
        return kernels.pullback([(logits, g)], label)
    if est.name == "measure_valued" and d is not None and type(d) in DECOMPOSITIONS and shape[batch_ndim:] == ():
        x = value.astype(d.sample(key, ()).dtype)[None]
        pairs = []
        for leaf, part in DECOMPOSITIONS[type(d)](_sg(d), key, (1,) + shape, True).items():
            pairs.append((getattr(d, leaf), _measure_valued_part(part, f, x, f_at_sample, value.dtype)))
        return kernels.pullback(pairs, label)
    return _joint(est, d if d is not None else fn, lambda pts: jnp.sum(jnp.reshape(f(pts), (pts.shape[0], -1)), 1), key)


def _per_element(log_q, batch_ndim):
    """(M, *batch, *event) log-densities summed over the event: (M, *batch)."""
    return jnp.sum(log_q, axis=tuple(range(1 + batch_ndim, log_q.ndim))) if log_q.ndim > 1 + batch_ndim else log_q


def _measure_valued_part(part, f, x, f_at_sample, dtype):
    """One leaf's per-element measure-valued estimate, every element replaced at once."""
    if isinstance(part, ScorePart):
        scores = part.scores(x)[0]
        return f_at_sample.astype(scores.dtype) * scores
    if isinstance(part, EnumeratedPart):
        alts = jnp.moveaxis(part.alternatives[0], -1, 0).astype(dtype)  # (K, *shape)
        plus = jnp.moveaxis(f(alts), 0, -1).astype(part.probs.dtype)  # (*shape, K)
        return part.probs * (plus - jnp.sum(part.probs * plus, axis=-1, keepdims=True))
    c, x_plus, x_minus = part

    def side(points):
        if points is same:
            return f_at_sample
        points = points(x) if callable(points) else points
        points = jnp.asarray(points)
        if points.ndim == x.ndim + 1:  # alternatives on a trailing axis
            return jnp.moveaxis(f(jnp.moveaxis(points[0], -1, 0).astype(dtype)), 0, -1)
        return f(points.astype(dtype))[0]

    plus, minus = side(x_plus), side(x_minus)
    if plus.ndim > minus.ndim:
        minus = minus[..., None]
    elif minus.ndim > plus.ndim:
        plus = plus[..., None]
    return c * (plus - minus).astype(c.dtype)


def _joint(est: Estimator, d, f_total, key):
    """A repgrad estimator on the whole site (one scalar downstream cost per point): the
    estimator's surrogate less its value is the pull-back of its gradient estimate."""
    problem = Problem(lambda x, _key: f_total(x[None])[0], (), False, 1, None, lambda _: d, None)
    out = est.surrogate(problem, d, key, (), None)
    return out.loss - out.value


# --------------------------------------------------------------------------- the loss


def particle(estimators, num_particles, program: _Program, est_key, loo: dict):
    """One particle: (ELBO value, DiCE and estimator terms (value 0), per score site its
    elementwise log q and downstream cost for the baselines); fills ``loo`` with each score
    site's baseline choice."""
    sample_trace, _ = program.run({}, ())
    latents = _latents(sample_trace)
    sites = {n: _resolve_site(n, estimators.get(n), s["fn"], num_particles) for n, s in latents.items()}
    loo.update({n: s.loo for n, s in sites.items() if s.kind == "score"})
    unknown = sorted(set(estimators) - set(latents))
    if unknown:
        raise ValueError(
            f"rg.numpyro.ELBO(estimators=...) names {unknown}, which are not latent sample sites of "
            f"the guide; its latent sites are {sorted(latents)}."
        )
    stochastic = [n for n, s in sites.items() if s.kind != "pathwise"]
    multi = [n for n in stochastic if sites[n].kind == "multi"]
    costs, guide_trace = program.costs({}, frozenset(stochastic), no_direct=frozenset(multi))
    values = {n: guide_trace[n]["value"] for n in stochastic}
    credit = _credit(program, costs, stochastic, values)
    rank = max([c.value.ndim for c in costs] + [-min(c.frames, default=0) for c in costs] + [0])
    lq = {n: jnp.asarray(_log_prob(guide_trace[n])) for n in stochastic}
    frames = {n: _frames(guide_trace[n]) for n in stochastic}
    for n in stochastic:
        if sites[n].kind == "score":
            lq[n] = lq[n] + protocol.score_guards(guide_trace[n]["fn"]).astype(lq[n].dtype)
            protocol.check_fixed_support(guide_trace[n]["fn"])

    dtype = jnp.result_type(*[c.value for c in costs])
    value = sum((jnp.sum(c.value) for c in costs), jnp.zeros((), dtype))
    surrogate = jnp.zeros((), dtype)
    score = [n for n in stochastic if sites[n].kind == "score"]
    for c, ups in zip(costs, credit, strict=True):
        ups = [n for n in score if n in ups]
        if ups:
            seen = [_keep(lq[n], frames[n] & c.frames, rank) for n in ups]
            shape = jnp.broadcast_shapes(jnp.shape(_align(c.value, rank)), *[jnp.shape(u) for u in seen])
            cost = jnp.broadcast_to(_align(c.value, rank), shape)
            upstream = sum(jnp.broadcast_to(u, shape) for u in seen)
            surrogate = surrogate + jnp.sum(cost * (magic_box(upstream) - 1.0).astype(cost.dtype))
    elementwise = {n: _keep(lq[n], frames[n], rank) for n in score}
    downstream = {n: _downstream(costs, credit, n, frames[n], rank, elementwise[n].shape) for n in score}
    for i, n in enumerate(multi):
        surrogate = surrogate + _multi_site(
            program, costs, credit, sites[n], n, guide_trace[n], frames[n], rank, frozenset(stochastic),
            jax.random.fold_in(est_key, i),
        ).astype(dtype)
    return value, surrogate, elementwise, downstream


def _downstream(costs, credit, name, frames, rank, shape):
    """The downstream cost of a site per plate element (numpyro's ``sum_to`` of its frames)."""
    total = jnp.zeros(shape, costs[0].value.dtype)
    for c, ups in zip(costs, credit, strict=True):
        if name in ups:
            total = total + jnp.broadcast_to(_keep(c.value, frames & c.frames, rank), shape)
    return total


def _multi_site(program, costs, credit, site, name, guide_site, frames, rank, stopped, key):
    value, fn = guide_site["value"], guide_site["fn"]
    batch_ndim = value.ndim - len(fn.event_shape)
    lq_shape = jnp.shape(_log_prob(guide_site))
    below = [c for c, ups in zip(costs, credit, strict=True) if name in ups]
    per_element = bool(frames) and all(frames <= c.frames for c in below) and math.prod(
        _keep(jnp.zeros(lq_shape), frames, rank).shape
    ) == math.prod(lq_shape)
    keep = frames if per_element else frozenset()
    batch = value.shape[:batch_ndim]

    def downstream(run_costs):
        total = sum(_keep(c.value, keep, rank) for c, ups in zip(run_costs, credit, strict=True) if name in ups)
        return jnp.reshape(total, batch) if per_element else jnp.reshape(total, ())

    def f(points):  # the downstream cost with the site set to each point, vmapped
        points = jnp.asarray(points).astype(value.dtype)
        return jax.vmap(lambda v: downstream(program.costs({name: v}, stopped)[0]))(points)

    return _multi_term(site, name, fn, value, f, downstream(costs), batch_ndim, per_element, key)


def _credit(program, costs, stochastic, values) -> list[frozenset]:
    """For each cost, the names of the non-pathwise guide sites it depends on (provenance)."""
    if not stochastic:
        return [frozenset() for _ in costs]
    shapes = [jax.ShapeDtypeStruct(jnp.shape(values[n]), jnp.result_type(values[n])) for n in stochastic]

    def run(*xs):
        out, _ = program.costs(dict(zip(stochastic, xs, strict=True)), frozenset())
        return [c.value for c in out]

    deps = provenance.provenance(run, shapes)
    names = [c.name for c in costs]
    parents = [deps[names.index(f"guide:{n}")] - {i} for i, n in enumerate(stochastic)]
    closure = provenance.ancestors(parents)
    return [frozenset(stochastic[i] for i in provenance.downstream_of(d, closure)) for d in deps]


def loss(estimators, num, rng_key, param_map, model, guide, args, kwargs):
    """−ELBO surrogate averaged over ``num`` vmapped particles."""
    loo: dict = {}

    def one(key):
        k_guide, k_model, k_est = jax.random.split(key, 3)
        return particle(estimators, num, _Program(model, guide, args, kwargs, param_map, k_guide, k_model), k_est, loo)

    value, surrogate, elementwise, downstream = jax.vmap(one)(jax.random.split(rng_key, num))
    total = jnp.mean(value + surrogate)
    for n, lq in elementwise.items():
        # −1: cancels the first derivative of the site's own −log q (zero in expectation, as
        # TraceGraph_ELBO drops it) at every order: E[∇ᵏ ⊡(log q)] = 0.
        b = _sg(_leave_one_out(downstream[n])) if loo[n] else jnp.zeros_like(downstream[n])
        b = b.astype(lq.dtype) - 1.0
        total = total + jnp.mean(jnp.sum(jnp.reshape(b * (1.0 - magic_box(lq)), (num, -1)), 1)).astype(total.dtype)
    return -total

