r"""repgrad inside numpyro: an ELBO for ``numpyro.infer.SVI`` with an estimator per guide site.

Importing this module imports numpyro (``import repgrad`` does not); ``rg.numpyro.ELBO``
imports it on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from numpyro.infer.elbo import ELBO as _NumpyroELBO

from ._src.graph import numpyro_elbo as _impl
from ._src.registry import resolve as _resolve

__all__ = ["ELBO"]


class ELBO(_NumpyroELBO):
    r"""The ELBO of a numpyro model and guide, each guide site with its own gradient estimator.

    A drop-in ``loss=`` for ``numpyro.infer.SVI``: ``loss(rng_key, params, model, guide, *args)``
    is −ELBO averaged over ``num_particles`` particles (``jax.vmap``-ed), and ``jax.grad`` of it
    estimates −∇ELBO without bias. Per guide latent site:

    - ``"pathwise"`` (default where the site's distribution has ``rsample``): through the sample;
    - ``"score"`` or ``"score:loo"`` (default otherwise: leave-one-out across particles when
      ``num_particles >= 2``, none for one particle): the score function in DiCE form,
      each site weighted by the costs that depend on it, per plate element, as numpyro's
      ``TraceGraph_ELBO`` does (provenance read from the program, not program order). Its
      −log q term's own zero-mean derivative is cancelled, so with no baseline the gradient
      is ``TraceGraph_ELBO``'s, and with leave-one-out

      .. math::

        \hat g = \frac1P \sum_{p} \sum_{w} \nabla \log q(z^p_w)\,
          \big(C^p_w - \tfrac{1}{P-1} \textstyle\sum_{p' \ne p} C^{p'}_w\big) + \text{pathwise terms},

      with C_w the downstream cost of site w (its plate elements separately);
    - multi-evaluation estimators, e.g. ``rg.disarm()`` (Bernoulli), ``rg.enumeration()``
      (Bernoulli, Categorical), ``rg.measure_valued()``, ``rg.arm()``: model and guide are
      re-run with the site's value substituted at each of the estimator's points (every other
      site keeps its key: common random numbers), ``jax.vmap``-ed, and the estimate is pulled
      back onto the site's parameters. When all of the site's downstream costs lie in its
      plates, every plate element is substituted at once (DisARM: 2 runs per particle,
      enumeration: K, measure-valued: a few per parameter); otherwise the estimator sees the
      whole site with its total downstream cost.

    **Derivatives of every order.** With pathwise and score sites only, ``jax.hessian`` (and
    any higher derivative) of the loss is an unbiased estimate of the ELBO's (DiCE; Loaded
    DiCE with leave-one-out). A multi-evaluation site estimates first derivatives only:
    differentiating twice in its parameters raises ``repgrad.DerivativeOrderError`` at trace
    time. Second derivatives in other parameters alone (e.g. the model's) stay exact.

    Args:
      num_particles: P particles, vmapped (static).
      estimators: ``{site name: estimator}``, each a spec string (``"pathwise"``, ``"score"``,
        ``"score:loo"``, ``"disarm"``, ``"enumeration"``, ``"measure_valued"``, ...) or a value
        (``rg.disarm()``); sites not named get the default above.

    Example:
      >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist, optax
      >>> import repgrad as rg
      >>> from numpyro.infer import SVI
      >>> data = jnp.array([0.9, 1.1, -1.0, 1.2])
      >>> def model(data):
      ...     with numpyro.plate("data", data.shape[0]):
      ...         z = numpyro.sample("z", dist.Bernoulli(0.5))
      ...         numpyro.sample("x", dist.Normal(2.0 * z - 1.0, 1.0), obs=data)
      >>> def guide(data):
      ...     logits = numpyro.param("logits", jnp.zeros(data.shape[0]))
      ...     with numpyro.plate("data", data.shape[0]):
      ...         numpyro.sample("z", dist.Bernoulli(logits=logits))
      >>> elbo = rg.numpyro.ELBO(num_particles=8, estimators={"z": rg.disarm()})
      >>> with jax.numpy_dtype_promotion("standard"):  # numpyro's own dtype rules
      ...     svi = SVI(model, guide, optax.adam(0.1), loss=elbo)
      ...     result = svi.run(jax.random.key(0), 200, data, progress_bar=False)
      >>> bool(result.params["logits"][0] > 1.0)
      True

    References:
      Schulman, Heess, Weber & Abbeel, "Gradient Estimation Using Stochastic Computation
      Graphs", NeurIPS 2015 (arXiv:1506.05254).
      Foerster et al., "DiCE: The Infinitely Differentiable Monte Carlo Estimator", ICML 2018.
      Kool, van Hoof & Welling, "Buy 4 REINFORCE Samples, Get a Baseline for Free!", 2019.
      Dong, Mnih & Tucker, "DisARM: An Antithetic Gradient Estimator for Binary Latent
      Variables", NeurIPS 2020 (arXiv:2006.10680).
      Wingate, Goodman, Stuhlmüller & Siskind, "Nonstandard Interpretations of Probabilistic
      Programs for Efficient Inference", NeurIPS 2011 (provenance).
    """

    can_infer_discrete = True

    def __init__(self, num_particles: int = 1, *, estimators: Mapping[str, Any] | None = None):
        if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 1:
            raise ValueError(f"num_particles must be a positive int, got {num_particles!r}.")
        if estimators is not None and not isinstance(estimators, Mapping):
            raise TypeError(
                f"estimators must map guide site names to estimators, e.g. {{'z': rg.disarm(), "
                f"'c': 'score:loo'}}; got {type(estimators).__name__}."
            )
        self.estimators = {name: _resolve(spec) for name, spec in (estimators or {}).items()}
        super().__init__(num_particles=num_particles, vectorize_particles=True)

    def loss(self, rng_key, param_map, model, guide, *args, **kwargs):
        """−ELBO surrogate: its value is the Monte Carlo −ELBO, its derivatives the estimators'."""
        return _impl.loss(self.estimators, self.num_particles, rng_key, param_map, model, guide, args, kwargs)
