"""RODEO: control variates from a discrete Stein operator, with a learned function, on top of
a double-control-variate leave-one-out baseline."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..core import kernels
from ..core.estimator import Estimator, Out
from . import _discrete
from .double_cv import bernoulli_draw, leave_one_out_mean, values_and_input_grads

_sg = jax.lax.stop_gradient


def rodeo_init(hidden: int = 100, seed: int = 0):
    """RODEO's initial control parameters: α = β = 0 and the control network h's weights.

    h(a, c) = W₂ LeakyReLU₀.₃(a w_a + c w_c + b₁) + b₂ ∈ R², Glorot-uniform weights and zero
    biases (the authors' initialization), drawn from ``jax.random.key(seed)``.
    """
    ka, kc, k2 = jax.random.split(jax.random.key(seed), 3)
    lim1, lim2 = math.sqrt(6.0 / (1 + hidden)), math.sqrt(6.0 / (hidden + 2))
    uni = lambda k, shape, lim: jax.random.uniform(k, shape, jnp.float32, -lim, lim)
    net = {
        "w_a": uni(ka, (hidden,), lim1),
        "w_c": uni(kc, (hidden,), lim1),
        "b1": jnp.zeros((hidden,), jnp.float32),
        "w2": uni(k2, (hidden, 2), lim2),
        "b2": jnp.zeros((2,), jnp.float32),
    }
    return {"alpha": jnp.float32(0.0), "beta": jnp.float32(0.0), "net": net}


def _net(net, a, c, dtype):
    lead = (1,) * a.ndim  # explicit broadcasting over a's axes
    w = {k: jnp.asarray(v).astype(dtype) for k, v in net.items()}
    row = lambda v: v.reshape(lead + v.shape)
    h = jax.nn.leaky_relu(a[..., None] * row(w["w_a"]) + c[..., None] * row(w["w_c"]) + row(w["b1"]), 0.3)
    return h @ w["w2"] + row(w["b2"])


def rodeo(*, hidden: int = 100, seed: int = 0) -> Estimator:
    r"""The RODEO estimator of ∇θ E_{b∼Bern(σ(θ))}[f(b)]: discrete Stein control variates.

    **Unbiased** for every value of its learned parameters. Let A be the Stein operator of the
    Gibbs sampler of q = Bern(σ(θ)), averaged over the D coordinates,

    .. math:: (A h)(b) = \frac1D \sum_{d=1}^D q(\bar b_d)\,\big(h(b^{(d)}) - h(b)\big),

    with b^(d) the neighbour of b with coordinate d flipped and q(b̄_d) that flip's probability;
    E_q[(A h)(b)] = 0 for any h. With N ≥ 2 samples b_n, s_n = b_n − p (p = σ(θ)) the score of
    the logits and a function h_n = (h_n⁰, h_n¹) that does not depend on b_n,

    .. math::

      \hat g = \frac1N \sum_n \Big[\Big(f(b_n) - \frac{1}{N-1}\sum_{m\ne n}\big(f(b_m) + \alpha\,
        (A h_m^0)(b_m)\big)\Big)\, s_n + \beta\, \big(A [h_n^1 s]\big)(b_n)\Big].

    The baseline is leave-one-out, corrected by a Stein control variate; the second term is a
    zero-mean control variate for the score term itself. h_n averages a small network over the
    other samples' first-order expansions of f: h_n(y) = mean_{m≠n} NN(∇f(b_m)·(y − b_m),
    f(b_m)) (the authors' "avg" construction), NN: R² → R² with ``hidden`` LeakyReLU(0.3)
    units. ψ = {"alpha", "beta", "net"} is learned: calls take ``control_params=psi`` (start
    from ``fn.init_control_params()``: α = β = 0, i.e. REINFORCE with the leave-one-out
    baseline) and return ``(result, control_grads)`` = ∇ψ E[‖ĝ‖²], to be fed to an optimizer
    (the authors use Adam at 10⁻³) as for ``rg.relax``. The value is the plain mean of f.

    **Cost:** N evaluations of f and N of its input gradient (one vjp), plus the network on
    N·(N − 1)·(D + 1) inputs. f must take binary b as floats and is differentiated there; where
    it is not differentiable the estimate stays unbiased. Bernoulli only. First derivatives
    only: a second derivative that moves θ raises ``repgrad.DerivativeOrderError``.

    Args:
      hidden: the control network's width.
      seed: the seed of its initial weights in ``init_control_params()``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p), rg.rodeo(),
      ...              num_samples=4)
      >>> g, psi_grad = fn(jnp.zeros(3), jax.random.key(0), control_params=fn.init_control_params())

    References:
      Shi, Zhou, Hwang, Titsias & Mackey, "Gradient Estimation with Discrete Stein Operators",
      NeurIPS 2022 (arXiv:2202.09497); the authors' code (thjashin/rodeo).
    """
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden must be a positive int, got {hidden!r}; e.g. rg.rodeo(hidden=100).")

    def surrogate(problem, d, key, state, psi):
        n = problem.num_samples
        logits, theta, p, b = bernoulli_draw(d, key, n, "rodeo")
        values, grads, aux = values_and_input_grads(problem, b)
        dtype = theta.dtype
        f = _sg(values).astype(dtype)
        bf, gb = b.reshape(n, -1), _sg(grads).astype(dtype).reshape(n, -1)  # (N, D)
        size = bf.shape[1]
        s = _discrete.bernoulli_score(bf, jnp.broadcast_to(theta, b.shape).reshape(n, -1))
        flip = jnp.abs(s)  # the probability of flipping each coordinate: σ(−θ) where b = 1, σ(θ) where 0
        # h_n's inputs: a[n, m] = ∇f(b_m)·(b_n − b_m), and for the neighbour flipping d,
        # a[n, m] + ∇f(b_m)_d (1 − 2 b_nd).
        cross = bf @ gb.T
        a = cross - jnp.diag(cross)[None, :]
        a_nb = a[:, :, None] + gb[None, :, :] * (1.0 - 2.0 * bf)[:, None, :]
        others = (1.0 - jnp.eye(n, dtype=dtype)) / (n - 1)  # mean over m ≠ n
        f_other = jnp.broadcast_to(f[None, :], (n, n))

        def estimate(psi):
            _check_psi(psi)
            net = psi["net"]
            h_x = jnp.einsum("nm,nmo->no", others, _net(net, a, f_other, dtype))  # (N, 2)
            h_nb = jnp.einsum("nm,nmdo->ndo", others, _net(net, a_nb, f_other[:, :, None], dtype))  # (N, D, 2)
            stein0 = jnp.mean(flip * (h_nb[..., 0] - h_x[:, :1]), axis=1)
            # A[h¹ s](b_n): s at the neighbour differs from s_n in coordinate d only
            mass = jnp.sum(flip * h_nb[..., 1], axis=1, keepdims=True) - h_x[:, 1:] * jnp.sum(flip, axis=1, keepdims=True)
            stein1 = (s * mass + flip * h_nb[..., 1] * (1.0 - 2.0 * bf)) / size
            alpha, beta = (jnp.asarray(psi[k]).astype(dtype) for k in ("alpha", "beta"))
            baseline = leave_one_out_mean(f + alpha * stein0)
            g = jnp.mean((f - baseline)[:, None] * s + beta * stein1, axis=0)
            return g.reshape(theta.shape)

        g, psi_grad = _discrete.estimate_and_variance_grad(estimate, psi)
        value = jnp.mean(values)
        # f's values and gradients enter ĝ stop-gradient: watching them refuses mixed derivatives.
        pull = kernels.pullback([(logits, g)], "rodeo", value.dtype, watch=(values, grads))
        return Out(value + pull, value, aux, (), psi_grad)

    return Estimator(
        "rodeo", surrogate, control_init=lambda: rodeo_init(hidden, seed), min_samples=2, max_order=1, family="bernoulli"
    )


def _check_psi(psi):
    if not (isinstance(psi, dict) and set(psi) == {"alpha", "beta", "net"} and isinstance(psi["net"], dict)):
        raise TypeError(
            "rodeo's control_params must be {'alpha': α, 'beta': β, 'net': {...}}, got "
            f"{type(psi).__name__}; start from fn.init_control_params() (or rg.rodeo_init())."
        )

