"""repgrad against peer libraries on two variational-inference gradient steps.

Problems (identical model, data batch, initial parameters, MC sample count, float32 and
optimizer, Adam(1e-3) from optax or the peer's own Adam):

* ``lr``: Bayesian logistic regression on scikit-learn breast_cancer (569 x 30,
  standardized, plus a bias: 31 weights), prior N(0, I), diagonal Gaussian posterior
  q(w) = N(loc, diag(exp(log_scale))^2); negative ELBO summed over the data, with
  log q estimated by Monte Carlo (what numpyro/Pyro ``Trace_ELBO`` do).
* ``vae``: Gaussian-posterior VAE on binarized scikit-learn digits (8x8), a fixed batch
  of 128 images; MLP encoder 64-128-(8+8) and decoder 8-128-64 (ReLU), Bernoulli
  likelihood, standard normal prior, N samples of z per image; negative ELBO summed over
  the batch.

The model side is written once (``_jax_models``) and shared by the repgrad, TFP and
hand-written rows; its Bernoulli log-likelihood uses numpyro's own formulation (see
``bernoulli_log_lik``), so repgrad and numpyro differ only in the variational machinery.

Rows: repgrad ``rg.expectation(..., estimator="pathwise")`` (and ``"score"`` with a
leave-one-out baseline and with ``rg.optimal_baseline("loo")``, for the variance column), numpyro SVI with ``Trace_ELBO`` and
``TraceGraph_ELBO`` (vectorized particles), TFP-on-JAX ``tfp.vi.monte_carlo_variational_loss``
(tfp-nightly; the TFP 0.25 release does not import with jax 0.10), Pyro ``Trace_ELBO`` on PyTorch CPU (eager,
vectorized particles, as Pyro users run it) and Pyro ``JitTrace_ELBO``.

Columns: median wall time of one optimizer step after compilation (``jax.block_until_ready``
for JAX, the JAX rows timed round-robin in one loop so that load from other processes falls
on all of them alike; Pyro's in its own subprocess afterwards; torch is synchronous on CPU), compile time (XLA ``lower().compile()``; the first
eager step for Pyro), peak memory (JAX: XLA ``memory_analysis()`` of the compiled step,
arguments + outputs + temporaries - aliased; Pyro: growth of the peak RSS (Linux VmHWM, reset
through /proc/self/clear_refs) over the first three steps, above the RSS before them, in a fresh
subprocess, and in brackets the same over three later steps; the two methods are not identical, see RESULTS.md),
XLA's static cost analysis of the compiled step (flops and bytes accessed: deterministic, so it
shows whether two JAX rows run the same program whatever the timings say), and the total variance (sum over coordinates)
of the gradient w.r.t. the posterior / encoder parameters at the initial parameters, over R
independent keys, at the same sample count. Ratios are relative to repgrad (pathwise),
measured in the same run.

Peers are optional benchmark dependencies (``pip install -e .[bench]``); a missing peer is
reported as such, never an error.

Usage::

    python benchmarks/peers.py            # full settings (a few minutes on 2 cores)
    python benchmarks/peers.py --small    # seconds (smoke test; one ELBO variant per peer)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

LR = 1e-3
HIDDEN, LATENT = 128, 8


# ------------------------------------------------------------------------ data & init


def lr_data():
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    x = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    return x.astype(np.float32), y.astype(np.float32)


def lr_init():
    return {"loc": np.zeros(31, np.float32), "log_scale": np.full(31, -1.0, np.float32)}


def vae_data(batch=128):
    from sklearn.datasets import load_digits

    x = load_digits().data[:batch] / 16.0
    return (x > 0.5).astype(np.float32)


def vae_init(seed=0):
    rng = np.random.default_rng(seed)

    def dense(n_in, n_out):
        w = rng.normal(size=(n_in, n_out)) * np.sqrt(2.0 / n_in)
        return w.astype(np.float32), np.zeros(n_out, np.float32)

    p = {}
    for name, (a, b) in {"e1": (64, HIDDEN), "e2": (HIDDEN, 2 * LATENT), "d1": (LATENT, HIDDEN), "d2": (HIDDEN, 64)}.items():
        p[name + "_w"], p[name + "_b"] = dense(a, b)
    return p


ENC = ("e1_w", "e1_b", "e2_w", "e2_b")
DEC = ("d1_w", "d1_b", "d2_w", "d2_b")


def _time_interleaved(rows, reps):
    """Median time of each row's compiled step, timed round-robin so that load from other
    processes (a shared machine) falls on every row alike; fills ``median_ms``."""
    steps = {name: r.pop("_step") for name, r in rows.items() if "_step" in r}
    times = {name: [] for name in steps}
    for i in range(reps):
        for name, one in steps.items():
            t0 = time.perf_counter()
            one(i)
            times[name].append(time.perf_counter() - t0)
    for name, t in times.items():
        rows[name]["median_ms"] = 1e3 * float(np.median(t))


def _grad_stats(g, keep):
    """Total variance (sum over coordinates) and per-coordinate means/variances of replicated grads."""
    names = sorted(k for k in g if keep(k))
    var = {k: np.var(np.asarray(g[k], np.float64), axis=0, ddof=1).ravel().tolist() for k in names}
    mean = {k: np.asarray(g[k], np.float64).mean(0).ravel().tolist() for k in names}
    return {"grad_var": float(sum(np.sum(v) for v in var.values())), "grad_var_se": _total_var_se([g[k] for k in names]),
            "grad_mean": mean, "grad_var_coords": var}


def _total_var_se(leaves):
    """Standard error of the total variance: it is the mean of d_r = R/(R-1)·||g_r - ḡ||² over replicates."""
    flat = np.concatenate([np.asarray(a, np.float64).reshape(a.shape[0], -1) for a in leaves], axis=1)
    r = flat.shape[0]
    d = np.sum((flat - flat.mean(0)) ** 2, axis=1) * r / (r - 1)
    return float(np.std(d, ddof=1) / np.sqrt(r))


def _xla_cost(compiled):
    """XLA's static cost analysis of the compiled step: (flops, bytes accessed), or Nones."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return {}
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return {"flops": cost.get("flops"), "bytes_accessed": cost.get("bytes accessed")}


def _xla_peak(compiled):
    m = compiled.memory_analysis()
    if m is None:
        return None
    return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes


# ------------------------------------------------------------------------------- JAX models


def _jax_models():
    import jax
    import jax.numpy as jnp

    def bernoulli_log_lik(logits, y):
        """log Bernoulli(y | logits), formulated as numpyro 0.22's ``Bernoulli(logits=).log_prob``
        (numpyro/distributions/util.py, ``binary_cross_entropy_with_logits``):
        −(max(l, 0) + log1p(e^{−|l|}) − l·y) on finite logits, and for ±inf logits a second
        ``where`` (0 or −inf), so that the repgrad rows and numpyro run the same likelihood ops."""
        finite = jnp.isfinite(logits)
        safe = jnp.where(finite, logits, 0.0)
        nll = jnp.maximum(safe, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(safe))) - safe * y
        return -jnp.where(finite, nll, jnp.inf * jnp.logical_xor(y, logits > 0).astype(logits.dtype))

    def lr_neg_log_joint(w, x, y):
        ll = jnp.sum(bernoulli_log_lik(x @ w, y))
        return -(ll - 0.5 * jnp.sum(w * w) - 0.5 * w.shape[0] * jnp.log(2.0 * jnp.pi))

    def encode(p, x):
        h = jax.nn.relu(x @ p["e1_w"] + p["e1_b"])
        out = h @ p["e2_w"] + p["e2_b"]
        return out[..., :LATENT], out[..., LATENT:]

    def decode(p, z):
        h = jax.nn.relu(z @ p["d1_w"] + p["d1_b"])
        return h @ p["d2_w"] + p["d2_b"]

    def vae_neg_log_joint(z, p, x):
        ll = jnp.sum(bernoulli_log_lik(decode(p, z), x))
        return -(ll - 0.5 * jnp.sum(z * z) - 0.5 * z.size * jnp.log(2.0 * jnp.pi))  # z: (latent,) or (batch, latent)

    return lr_neg_log_joint, encode, decode, vae_neg_log_joint


# ----------------------------------------------------------------------------------- repgrad


def repgrad_losses(n):
    """Per-problem loss(params, key, data...) built with rg.expectation, per estimator."""
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import repgrad as rg

    lr_nlj, encode, _, vae_nlj = _jax_models()
    q = lambda p: rg.MultivariateNormalDiag(p["loc"], jnp.exp(p["log_scale"]))

    def lr_f(w, p, x, y):  # -log p(y, w) + log q(w): p enters both the sampler and f
        return lr_nlj(w, x, y) + q(p).log_prob(w)

    def vae_f(z, qp, dec, x):
        return vae_nlj(z, dec, x) + q(qp).log_prob(z)

    def batch_f(z, qp, dec, x):  # z: (batch, latent), one joint sample for the whole batch
        return vae_nlj(z, dec, x) + jnp.sum(q(qp).log_prob(z))

    out = {}
    variants = {
        "pathwise": ("pathwise", {}),
        "score": ("score", {"baseline": "loo"}),
        "score_optimal": ("score", {"baseline": rg.optimal_baseline("loo")}),
    }
    for name, (estimator, opts) in variants.items():
        lr_e = rg.expectation(lr_f, q, estimator=estimator, num_samples=n, **opts)
        vae_e = rg.expectation(vae_f, q, estimator=estimator, num_samples=n, **opts)
        batch_e = rg.expectation(batch_f, q, estimator=estimator, num_samples=n, **opts)

        def lr_loss(p, key, x, y, lr_e=lr_e):
            return lr_e(p, key, p, x, y)

        def vae_loss(p, key, x, vae_e=vae_e, batch_e=batch_e, per_example=estimator == "score"):
            loc, log_scale = encode(p, x)
            qp = {"loc": loc, "log_scale": log_scale}
            dec = {k: p[k] for k in DEC}
            if not per_example:  # one expectation over the batch posterior, as numpyro/Pyro do
                return batch_e(qp, key, qp, dec, x)
            # score function: one expectation per image, so each image's LOO baseline is its own
            keys = jax.random.split(key, x.shape[0])
            return jnp.sum(jax.vmap(vae_e, in_axes=(0, 0, 0, None, 0))(qp, keys, qp, dec, x))

        out[name] = {"lr": lr_loss, "vae": vae_loss}
    return out


def _compiled_row(step, state, data, loss, params, var_reps, var_keys_filter):
    """Compiles step(state, *data) -> (state, value), returns its timing closure, compile time,
    XLA peak memory, and the variance of jax.grad(loss) over var_reps keys at params."""
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(step).lower(state, *data).compile()
    compile_s = time.perf_counter() - t0
    holder = [compiled(state, *data)[0]]

    def one(i):
        holder[0], v = compiled(holder[0], *data)
        jax.block_until_ready(v)

    grad_fn = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0) + (None,) * len(data)))
    g = grad_fn(params, jax.random.split(jax.random.key(1), var_reps), *data)
    return {"_step": one, "compile_s": compile_s, "peak_bytes": _xla_peak(compiled), **_xla_cost(compiled),
            **_grad_stats(g, var_keys_filter)}


def run_jax_row(problem, loss, params, data, reps, var_reps, var_keys_filter):
    """Times an optax Adam step on loss(params, key, *data) and the gradient variance."""
    import jax
    import optax

    opt = optax.adam(LR)

    def step(state, *data):  # like numpyro's SVI.update: the key travels in the state
        params, opt_state, key = state
        key, sub = jax.random.split(key)
        value, grads = jax.value_and_grad(loss)(params, sub, *data)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), value

    state = (params, opt.init(params), jax.random.key(0))
    return _compiled_row(step, state, data, loss, params, var_reps, var_keys_filter)


# ----------------------------------------------------------------------------------- numpyro


def numpyro_problem(problem, n, elbo_name, init):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO

    _, encode, decode, _ = _jax_models()

    if problem == "lr":

        def model(x, y):
            w = numpyro.sample("w", dist.Normal(jnp.zeros(31), 1.0).to_event(1))
            with numpyro.plate("data", x.shape[0]):
                numpyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)

        def guide(x, y):
            loc = numpyro.param("loc", init["loc"])
            log_scale = numpyro.param("log_scale", init["log_scale"])
            numpyro.sample("w", dist.Normal(loc, jnp.exp(log_scale)).to_event(1))

    else:

        def model(x):
            dec = {k: numpyro.param(k, init[k]) for k in DEC}
            with numpyro.plate("data", x.shape[0]):
                z = numpyro.sample("z", dist.Normal(jnp.zeros(LATENT), 1.0).to_event(1))
                numpyro.sample("x", dist.Bernoulli(logits=decode(dec, z)).to_event(1), obs=x)

        def guide(x):
            enc = {k: numpyro.param(k, init[k]) for k in ENC}
            loc, log_scale = encode(enc, x)
            with numpyro.plate("data", x.shape[0]):
                numpyro.sample("z", dist.Normal(loc, jnp.exp(log_scale)).to_event(1))

    elbo = {"Trace_ELBO": Trace_ELBO, "TraceGraph_ELBO": TraceGraph_ELBO}[elbo_name](num_particles=n)

    def loss(params, key, *data):
        return elbo.loss(key, params, model, guide, *data)

    def make_svi():
        import optax

        return SVI(model, guide, numpyro.optim.optax_to_numpyro(optax.adam(LR)), elbo)

    del jax
    return loss, make_svi


def run_numpyro_row(problem, n, elbo_name, params, data, reps, var_reps, var_keys_filter):
    import jax
    loss, make_svi = numpyro_problem(problem, n, elbo_name, params)
    svi = make_svi()
    key = jax.random.key(0)
    state = svi.init(key, *data)  # params start at the shared initial values (the guide's init)
    return _compiled_row(svi.update, state, data, loss, params, var_reps, var_keys_filter)


# ----------------------------------------------------------------------------------- TFP


def run_tfp_row(problem, n, params, data, reps, var_reps, var_keys_filter):
    """tfp.vi.monte_carlo_variational_loss; runs where TFP-on-JAX imports (tfp-nightly with
    jax 0.10; the 0.25 release does not). TFP calls the target on the whole (n, ...) batch of
    samples, so the per-sample log joint is vmapped."""
    import jax
    import jax.numpy as jnp
    from tensorflow_probability.substrates import jax as tfp

    tfd = tfp.distributions
    lr_nlj, encode, _, vae_nlj = _jax_models()

    if problem == "lr":

        def loss(p, key, x, y):
            q = tfd.Independent(tfd.Normal(p["loc"], jnp.exp(p["log_scale"])), 1)
            target = lambda w: -jax.vmap(lambda ww: lr_nlj(ww, x, y))(w) if w.ndim == 2 else -lr_nlj(w, x, y)
            return tfp.vi.monte_carlo_variational_loss(
                target, q, sample_size=n, seed=key, discrepancy_fn=tfp.vi.kl_reverse
            )
    else:

        def loss(p, key, x):
            loc, log_scale = encode(p, x)
            q = tfd.Independent(tfd.Normal(loc, jnp.exp(log_scale)), 2)
            dec = {k: p[k] for k in DEC}
            target = lambda z: -jax.vmap(lambda zz: vae_nlj(zz, dec, x))(z) if z.ndim == 3 else -vae_nlj(z, dec, x)
            return tfp.vi.monte_carlo_variational_loss(target, q, sample_size=n, seed=key)

    return run_jax_row(problem, loss, params, data, reps, var_reps, var_keys_filter)


# ------------------------------------------------------------------------------------ Pyro


PYRO_CHILD = r"""
import json, sys, time
import numpy as np, torch, pyro, pyro.distributions as dist
from pyro.infer import SVI, Trace_ELBO, JitTrace_ELBO
cfg = json.loads(sys.stdin.read())
torch.manual_seed(0)
data = [torch.tensor(np.asarray(a, np.float32)) for a in cfg["data"]]
params0 = {k: torch.tensor(np.asarray(v, np.float32)) for k, v in cfg["params"].items()}
n, L, problem = cfg["n"], cfg["latent"], cfg["problem"]

def relu(a): return torch.relu(a)
def encode(p, x):
    out = relu(x @ p["e1_w"] + p["e1_b"]) @ p["e2_w"] + p["e2_b"]
    return out[..., :L], out[..., L:]
def decode(p, z): return relu(z @ p["d1_w"] + p["d1_b"]) @ p["d2_w"] + p["d2_b"]

def P(name): return pyro.param(name, params0[name].clone())

if problem == "lr":
    def model(x, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(31), 1.0).to_event(1))
        logits = torch.matmul(w, x.T)
        if logits.dim() == 3: logits = logits.squeeze(-2)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)
    def guide(x, y):
        pyro.sample("w", dist.Normal(P("loc"), torch.exp(P("log_scale"))).to_event(1))
    var_names = ["loc", "log_scale"]
else:
    DEC, ENC = ["d1_w", "d1_b", "d2_w", "d2_b"], ["e1_w", "e1_b", "e2_w", "e2_b"]
    def model(x):
        dec = {k: P(k) for k in DEC}
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(L), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decode(dec, z), validate_args=False).to_event(1), obs=x)
    def guide(x):
        enc = {k: P(k) for k in ENC}
        loc, log_scale = encode(enc, x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, torch.exp(log_scale)).to_event(1))
    var_names = ["e1_w", "e1_b", "e2_w", "e2_b"]

Elbo = {"Trace_ELBO": Trace_ELBO, "JitTrace_ELBO": JitTrace_ELBO}[cfg["elbo"]]
elbo = Elbo(num_particles=n, vectorize_particles=True, max_plate_nesting=1, ignore_jit_warnings=True)
pyro.clear_param_store()
svi = SVI(model, guide, pyro.optim.Adam({"lr": cfg["lr"]}), elbo)
def status_kib(field):
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith(field + ":"))
def reset_peak():
    with open("/proc/self/clear_refs", "w") as fh:  # resets VmHWM (peak RSS) to the current RSS
        fh.write("5")
    return status_kib("VmRSS")
rss0 = reset_peak()
t0 = time.perf_counter(); svi.step(*data); first = time.perf_counter() - t0
for _ in range(2): svi.step(*data)
first_peak = status_kib("VmHWM") - rss0
rss0 = reset_peak()
for _ in range(3): svi.step(*data)
steady_peak = status_kib("VmHWM") - rss0
times = []
for _ in range(cfg["reps"]):
    t0 = time.perf_counter(); svi.step(*data); times.append(time.perf_counter() - t0)
# gradient variance at the initial parameters, fresh param store, Trace_ELBO estimator
pyro.clear_param_store()
velbo = Trace_ELBO(num_particles=n, vectorize_particles=True, max_plate_nesting=1)
grads = {k: [] for k in var_names}
for _ in range(cfg["var_reps"]):
    loss = velbo.differentiable_loss(model, guide, *data)
    ps = [pyro.param(k).unconstrained() for k in var_names]
    gs = torch.autograd.grad(loss, ps)
    for k, g in zip(var_names, gs): grads[k].append(g.detach().numpy().astype(np.float64))
var = {k: np.var(np.stack(v), axis=0, ddof=1).ravel().tolist() for k, v in grads.items()}
flat = np.concatenate([np.stack(v).reshape(len(v), -1) for v in grads.values()], axis=1)
R = flat.shape[0]
d = np.sum((flat - flat.mean(0)) ** 2, axis=1) * R / (R - 1)
var_se = float(np.std(d, ddof=1) / np.sqrt(R))
mean = {k: np.stack(v).mean(0).ravel().tolist() for k, v in grads.items()}
print(json.dumps({"median_ms": 1e3 * float(np.median(times)), "compile_s": first, "peak_bytes": 1024 * first_peak,
                  "peak_steady_bytes": 1024 * steady_peak,
                  "grad_var": float(sum(np.sum(v) for v in var.values())), "grad_var_se": var_se, "grad_mean": mean,
                  "grad_var_coords": var, "threads": torch.get_num_threads()}))
"""


def run_pyro_row(problem, n, elbo_name, params, data, reps, var_reps):
    cfg = {"problem": problem, "n": n, "elbo": elbo_name, "lr": LR, "latent": LATENT, "reps": reps,
           "var_reps": var_reps, "params": {k: np.asarray(v).tolist() for k, v in params.items()},
           "data": [np.asarray(d).tolist() for d in data]}
    out = subprocess.run([sys.executable, "-c", PYRO_CHILD], input=json.dumps(cfg), capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "pyro child failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ driver


def _fmt_bytes(b):
    if b is None:
        return "n/a"
    return f"{b / 2**20:.2f} MiB" if b >= 2**20 else f"{b / 2**10:.0f} KiB"


def _mean_check(row, ref, var_reps):
    """Max |mean_a - mean_b| / combined SE over coordinates: both estimate the same gradient."""
    if "grad_mean" not in row or "grad_mean" not in ref:
        return None
    cat = lambda r, field: np.concatenate([np.ravel(r[field][k]) for k in sorted(ref[field])])
    se = np.sqrt((cat(row, "grad_var_coords") + cat(ref, "grad_var_coords")) / var_reps)
    diff = np.abs(cat(row, "grad_mean") - cat(ref, "grad_mean"))
    return float(np.max(np.where(se > 0, diff / np.where(se > 0, se, 1.0), 0.0)))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="tiny settings (smoke test)")
    ap.add_argument("--problems", default="lr,vae")
    ap.add_argument("--peers", default="repgrad,numpyro,tfp,pyro", help="comma-separated subset")
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this path")
    args = ap.parse_args(argv)
    reps, var_reps = (3, 8) if args.small else (200, 200)
    n_samples = {"lr": 16, "vae": 4}
    peers = set(args.peers.split(","))

    import jax
    import jax.numpy as jnp

    results = {}
    for problem in args.problems.split(","):
        n = 2 if args.small else n_samples[problem]
        if problem == "lr":
            params_np, data_np = lr_init(), lr_data()
            is_var = lambda k: True
        else:
            params_np, data_np = vae_init(), (vae_data(16 if args.small else 128),)
            is_var = lambda k: k in ENC
        params = {k: jnp.asarray(v) for k, v in params_np.items()}
        data = tuple(jnp.asarray(d) for d in data_np)
        rows = {}

        def attempt(name, fn):
            # optax's Adam and numpyro promote int/bool with floats internally: run the rows under
            # JAX's default promotion even when the caller (the test suite) made it strict.
            try:
                with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
                    rows[name] = fn()
            except ImportError as e:
                rows[name] = {"error": f"not installed / not importable: {type(e).__name__}: {e}"}
            except Exception as e:  # noqa: BLE001 - a failing peer is a result, not a crash
                rows[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}

        if "repgrad" in peers:
            losses = repgrad_losses(n)
            attempt("repgrad pathwise", lambda: run_jax_row(problem, losses["pathwise"][problem], params, data, reps, var_reps, is_var))
            attempt("repgrad score+LOO", lambda: run_jax_row(problem, losses["score"][problem], params, data, reps, var_reps, is_var))
            if not args.small:
                attempt("repgrad score+optimal baseline (LOO-estimated)",
                        lambda: run_jax_row(problem, losses["score_optimal"][problem], params, data, reps, var_reps, is_var))
        if "numpyro" in peers:
            for elbo in ("Trace_ELBO",) if args.small else ("Trace_ELBO", "TraceGraph_ELBO"):
                attempt(f"numpyro {elbo}", lambda elbo=elbo: run_numpyro_row(problem, n, elbo, params, data, reps, var_reps, is_var))
        if "tfp" in peers:
            attempt("TFP-on-JAX monte_carlo_variational_loss", lambda: run_tfp_row(problem, n, params, data, reps, var_reps, is_var))
        _time_interleaved(rows, reps)  # the JAX rows, round-robin
        if "pyro" in peers:
            for elbo in ("Trace_ELBO",) if args.small else ("Trace_ELBO", "JitTrace_ELBO"):
                attempt(f"Pyro {elbo} (torch CPU)", lambda elbo=elbo: run_pyro_row(problem, n, elbo, params_np, data_np, reps, var_reps))
        results[problem] = {"num_samples": n, "rows": rows}
        _print_table(problem, n, rows, var_reps)

    print(f"\n# jax {jax.__version__}, {os.cpu_count()} CPUs visible; reps={reps}, variance replicates={var_reps}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


def _print_table(problem, n, rows, var_reps):
    title = {"lr": "Bayesian logistic regression (breast_cancer, 31 weights)",
             "vae": "Gaussian VAE (digits, batch of images)"}[problem]
    print(f"\n## {title}, N={n} samples")
    print("| library / estimator | ms/step (median) | x repgrad | compile s | peak memory | XLA Mflop / MB accessed "
          "| grad variance ± SE | x repgrad | mean vs repgrad (max z) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ref = rows.get("repgrad pathwise", {})
    for name, r in rows.items():
        if "error" in r:
            print(f"| {name} | {r['error']} | | | | | | | |")
            continue
        t_ratio = r["median_ms"] / ref["median_ms"] if "median_ms" in ref else float("nan")
        v_ratio = r["grad_var"] / ref["grad_var"] if ref.get("grad_var") else float("nan")
        z = _mean_check(r, ref, var_reps) if ref else None
        z_s = "-" if (z is None or r is ref) else f"{z:.1f}"
        print(f"| {name} | {r['median_ms']:.3f} | {t_ratio:.2f} | {r['compile_s']:.2f} | {_fmt_bytes(r['peak_bytes'])} "
              f"{' (' + _fmt_bytes(r['peak_steady_bytes']) + ' steady)' if 'peak_steady_bytes' in r else ''} "
              f"| {_fmt_cost(r)} | {r['grad_var']:.4g} ± {r['grad_var_se']:.2g} | {v_ratio:.3g} | {z_s} |")


def _fmt_cost(r):
    if r.get("flops") is None or r.get("bytes_accessed") is None:
        return "n/a"
    return f"{r['flops'] / 1e6:.2f} / {r['bytes_accessed'] / 1e6:.2f}"


if __name__ == "__main__":
    main()
