"""``rg.dice``: the DiCE objective over explicit costs and log-probabilities."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core.kernels import magic_box

DEPENDENCE = ("causal", "elementwise", "all")


def dice(costs, log_probs, *, dependence: str = "causal", baselines=None):
    r"""The DiCE objective: a scalar whose value is Σ costs and whose derivatives of every
    order are unbiased estimates of those of E[Σ costs], each score term weighted only by
    the costs that depend on it.

    .. math::

      L = \sum_i c_i\, ⊡\Big(\sum_{w \preceq i} \log p(x_w)\Big)
          + \sum_w \big(1 - ⊡(\log p(x_w))\big)\, b_w,
      \qquad ⊡(\tau) = \exp(\tau - \bot\tau),

    where w ⪯ i ranges over the stochastic nodes that cost i depends on:

    - ``"causal"`` (sequential decisions): cost t depends on nodes 0..t (reward-to-go; the
      first derivative is Σ_t ∇log π(a_t) Σ_{s≥t} c_s);
    - ``"elementwise"`` (a plate): cost i depends on node i only;
    - ``"all"``: every cost depends on every node (whole-return REINFORCE).

    ``costs`` (floating, or integer/boolean: counts and success flags are summed in the
    log-probabilities' floating dtype) and ``log_probs`` have the same leading axis (time steps or plate elements;
    trailing axes are summed for the log-probabilities). The log-probabilities are of the
    *sampled* values (stop-gradient samples) as differentiable functions of the parameters;
    costs may depend on other parameters too (their pathwise derivatives are kept, and mixed
    derivatives are right). ``baselines`` b_w (optional, same leading axis) must not depend
    on node w or anything downstream of it in the same sample (e.g. a leave-one-out mean
    over other trajectories, or a learned value function of the state before w, held
    stop-gradient); they keep every derivative order unbiased and reduce the variance of the
    first (Farquhar et al., 2019).

    Args:
      costs: (T, ...) costs; the value of ``dice`` is their sum.
      log_probs: (T, ...) log-probabilities of the T stochastic nodes' samples.
      dependence: ``"causal"``, ``"elementwise"`` or ``"all"`` (see above).
      baselines: ``None`` or (T,) baselines, one per node.

    Returns:
      A scalar: Σ costs in value; ``jax.grad``/``jax.hessian`` of it estimate the gradient and
      Hessian of E[Σ costs] with respect to whatever the log-probabilities and costs depend on.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> def episode(theta, key):  # 5 coin flips, reward = flip count so far
      ...     flips = jax.random.bernoulli(key, jax.nn.sigmoid(theta), (5,)).astype(jnp.float32)
      ...     log_probs = rg.Bernoulli(logits=theta).log_prob(flips)
      ...     return rg.dice(jnp.cumsum(flips), log_probs, dependence="causal")
      >>> g = jax.grad(episode)(jnp.float32(0.0), jax.random.key(0))

    References:
      Foerster, Farquhar, Al-Shedivat, Rocktäschel, Xing & Whiteson, "DiCE: The Infinitely
      Differentiable Monte Carlo Estimator", ICML 2018 (arXiv:1802.05098).
      Farquhar, Whiteson & Foerster, "Loaded DiCE", NeurIPS 2019 (arXiv:1909.10549).
      Schulman, Heess, Weber & Abbeel, "Gradient Estimation Using Stochastic Computation
      Graphs", NeurIPS 2015 (arXiv:1506.05254).
    """
    if dependence not in DEPENDENCE:
        raise ValueError(f"dependence must be one of {DEPENDENCE}, got {dependence!r}.")
    costs, log_probs = jnp.asarray(costs), jnp.asarray(log_probs)
    if costs.ndim == 0 or log_probs.ndim == 0 or costs.shape[0] != log_probs.shape[0]:
        raise ValueError(
            f"costs and log_probs need the same leading axis (one entry per step or plate element); "
            f"got shapes {costs.shape} and {log_probs.shape}."
        )
    lp = jnp.sum(jnp.reshape(log_probs, (log_probs.shape[0], -1)), axis=1)
    cost = jnp.sum(jnp.reshape(costs, (costs.shape[0], -1)), axis=1)
    if dependence == "causal":
        upstream = jnp.cumsum(lp)
    elif dependence == "elementwise":
        upstream = lp
    else:
        upstream = jnp.broadcast_to(jnp.sum(lp), lp.shape)
    if not jnp.issubdtype(cost.dtype, jnp.floating):  # integer or boolean costs: in float, as the score needs
        cost = cost.astype(lp.dtype)
    w = cost.astype(lp.dtype)
    # value Σ c exactly, plus terms that are 0 in value and carry the derivatives
    total = jnp.sum(cost) + jnp.sum(w * (magic_box(upstream) - 1.0)).astype(cost.dtype)
    if baselines is not None:
        b = jax.lax.stop_gradient(jnp.asarray(baselines)).astype(lp.dtype)
        if b.shape != lp.shape:
            raise ValueError(f"baselines need shape {lp.shape} (one per node), got {b.shape}.")
        total = total + jnp.sum(b * (1.0 - magic_box(lp))).astype(cost.dtype)
    return total
