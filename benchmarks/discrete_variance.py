"""Discrete gradient estimators at an equal number of f-evaluations per gradient.

For each problem every estimator gets the same budget E of evaluations of f per gradient
(its ``num_samples`` is set from its cost per sample: 1 for score + LOO, double CV, RODEO,
Gumbel-Rao and straight-through; 2 for ARM and DisARM; 3 for REBAR and RELAX (f at b and at
two relaxed points); D·(K − 1) + 1 for IndeCateR; k for the unordered set; k + N for
Rao-Blackwellized top-k). Estimators with learned control parameters (REBAR, RELAX, double
CV, RODEO) first adapt them online at the fixed θ with Adam, as in training, then are frozen.

Reported per problem: the per-coordinate variance of the gradient estimate (mean over
coordinates of Var[ĝ_d], R replicates) for the unbiased estimators, the per-coordinate MSE
against the exact gradient for the biased ones (Gumbel-Rao, straight-through), both relative
to DisARM's variance (Bernoulli) or score + LOO's (Categorical), and the estimator's largest
|z| against the exact gradient.

Problems (exact gradients in closed form):
- ``bernoulli20_toy``: the DisARM toy f(b) = Σ_d (b_d − 0.45)², 20 Bernoulli variables, logits
  evenly spaced in [−1.5, 1.5] (separable: IndeCateR's sum over each variable is then exact);
- ``bernoulli20_product``: f(b) = exp(Σ_d w_d b_d), the same logits (not separable);
- ``categorical10x10``: 10 Categorical variables of 10 values, f(x) = (Σ_b c_b[x_b] − 1.5)².

Usage: ``python benchmarks/discrete_variance.py [--small] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import repgrad as rg

TEMPERATURE = 0.5


# ----------------------------------------------------------------------------- problems


def bernoulli_problem(kind: str, d: int = 20):
    theta = jnp.linspace(-1.5, 1.5, d)
    p = np.asarray(jax.nn.sigmoid(theta), np.float64)
    if kind == "toy":
        f = lambda b: jnp.sum((b - 0.45) ** 2)
        exact = p * (1 - p) * (0.55**2 - 0.45**2)
    else:
        w = 0.3 * jnp.cos(jnp.arange(d, dtype=jnp.float32))
        f = lambda b: jnp.exp(jnp.sum(w * b))
        e = np.exp(np.asarray(w, np.float64))
        factors = 1 - p + p * e
        exact = p * (1 - p) * (e - 1) * np.prod(factors) / factors
    return {"f": f, "f_relaxed": f, "dist": lambda t: rg.Bernoulli(logits=t), "theta": theta, "exact": exact,
            "kind": "bernoulli", "D": d, "K": 2}


def categorical_problem(b: int = 10, k: int = 10):
    theta = 0.5 * jax.random.normal(jax.random.key(1), (b, k))
    c = jax.random.uniform(jax.random.key(2), (b, k), minval=-0.5, maxval=0.5)
    f_hot = lambda y: (jnp.sum(y * c) - 1.5) ** 2  # y one-hot (b, k), or relaxed
    f_idx = lambda x: f_hot(jax.nn.one_hot(x, k, dtype=c.dtype))

    def expected(t):  # E[(S − 1.5)²] = Σ_b Var(s_b) + (Σ_b E s_b − 1.5)², s_b = c_b[x_b] independent
        q = jax.nn.softmax(t, axis=-1)
        m = jnp.sum(q * c, axis=-1)
        return jnp.sum(jnp.sum(q * c * c, axis=-1) - m * m) + (jnp.sum(m) - 1.5) ** 2

    with jax.enable_x64(True):
        exact = np.asarray(jax.grad(expected)(jnp.asarray(theta, jnp.float64).astype(jnp.float64)))
    return {"f": f_idx, "f_relaxed": f_hot, "dist": lambda t: rg.Categorical(logits=t), "theta": theta, "exact": exact,
            "kind": "categorical", "D": b, "K": k}


PROBLEMS = {
    "bernoulli20_toy": lambda: bernoulli_problem("toy"),
    "bernoulli20_product": lambda: bernoulli_problem("product"),
    "categorical10x10": categorical_problem,
}


# --------------------------------------------------------------------------- estimators


def _mlp_init(key, n_in, hidden=16):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (n_in, hidden)) / math.sqrt(n_in), "b1": jnp.zeros(hidden),
            "w2": jax.random.normal(k2, (hidden,)) * 0.01}


def relax_control(f_relaxed, kind):
    """c_ψ(z) = η f(σ_λ(z)) + r_ψ(z): the RELAX paper's discrete control (f at the relaxation plus a net)."""

    def control(z, psi):
        tau = jnp.exp(psi["log_t"])
        y = jax.nn.softmax(z / tau, axis=-1) if kind == "categorical" else jax.nn.sigmoid(z / tau)
        h = jnp.tanh(z.reshape(-1) @ psi["net"]["w1"] + psi["net"]["b1"])
        return psi["eta"] * f_relaxed(y) + h @ psi["net"]["w2"]

    return control


def rows(problem, budget):
    """label -> (estimator, f to use, num_samples, f-evaluations, ∇f evaluations, initial ψ or None, biased);
    estimators whose cheapest gradient costs more than ``budget`` are left out."""
    kind, d, k = problem["kind"], problem["D"], problem["K"]
    f, fr = problem["f"], problem["f_relaxed"]
    size = int(np.prod(problem["theta"].shape))
    out = {}
    out["score + LOO"] = (rg.score(baseline="loo"), f, budget, budget, 0, None, False)
    if kind == "bernoulli":
        out["ARM"] = (rg.arm(), f, budget // 2, 2 * (budget // 2), 0, None, False)
        out["DisARM"] = (rg.disarm(), f, budget // 2, 2 * (budget // 2), 0, None, False)
    n3 = budget // 3
    if n3:
        out["REBAR"] = (rg.rebar(temperature=TEMPERATURE), fr, n3, 3 * n3, 2 * n3, rg.rebar_init(temperature=TEMPERATURE), False)
        psi = {"eta": jnp.float32(1.0), "log_t": jnp.float32(math.log(TEMPERATURE)), "net": _mlp_init(jax.random.key(3), size)}
        out["RELAX"] = (rg.relax(relax_control(fr, kind)), fr, n3, 3 * n3, 2 * n3, psi, False)
    per = d * (k - 1) + 1
    n_ind = budget // per
    if n_ind:
        out["IndeCateR"] = (rg.indecater(), f, n_ind, n_ind * per, 0, None, False)
    if kind == "bernoulli":
        out["double CV"] = (rg.double_cv(), f, budget, budget, budget, rg.double_cv_init(), False)
        out["RODEO"] = (rg.rodeo(), f, budget, budget, budget, rg.rodeo_init(), False)
    set_k = next(c for c in (6, 7, 2) if budget % c == 0)
    out["unordered set"] = (rg.unordered_set(set_k), f, budget // set_k, set_k * (budget // set_k), 0, None, False)
    rb_k = max(1, budget // 2)
    out["Rao-Blackwell top-k"] = (rg.rao_blackwell(rb_k), f, budget - rb_k, budget, 0, None, False)
    out["Gumbel-Rao (τ=0.5, K=10)"] = (rg.gumbel_rao(temperature=TEMPERATURE, num_gumbels=10), fr, budget, budget, budget, None, True)
    out["straight-through (τ=0.5)"] = (rg.straight_through(temperature=TEMPERATURE), fr, budget, budget, budget, None, True)
    return out


def _adapt(fn, theta, psi, key, steps, lr):
    """Adam on ψ at the fixed θ, from the returned ∇ψ E‖ĝ‖² (online adaptation, as in training)."""
    opt = optax.adam(lr)

    def step(carry, k):
        psi, state = carry
        _, g = fn(theta, k, control_params=psi)
        upd, state = opt.update(g, state, psi)
        return (optax.apply_updates(psi, upd), state), None

    # optax's bias correction mixes int and float scalars, which strict dtype promotion refuses
    with jax.numpy_dtype_promotion("standard"):
        (psi, _), _ = jax.jit(lambda p, ks: jax.lax.scan(step, (p, opt.init(p)), ks))(psi, jax.random.split(key, steps))
    return psi


def measure(problem, budget, replicates, adapt_steps, key):
    theta, exact = problem["theta"], np.asarray(problem["exact"], np.float64)
    results = {}
    for label, (est, f, n, evals, grad_evals, psi, biased) in rows(problem, budget).items():
        fn = rg.grad(f, problem["dist"], est, num_samples=n)
        t0 = time.perf_counter()
        if psi is not None:
            psi = _adapt(fn, theta, psi, jax.random.fold_in(key, 1), adapt_steps, 1e-2)
            one = lambda k, fn=fn, psi=psi: fn(theta, k, control_params=psi)[0]
        else:
            one = lambda k, fn=fn: fn(theta, k)
        keys = jax.random.split(jax.random.fold_in(key, 2), replicates)
        g = np.asarray(jax.jit(lambda ks, one=one: jax.lax.map(one, ks, batch_size=25))(keys), np.float64)
        g = g.reshape(replicates, -1)
        ex = exact.reshape(-1)
        mean = g.mean(0)
        # an SE floor: float32 rounding of an estimator with (almost) no variance is not bias
        se = np.maximum(g.std(0, ddof=1) / math.sqrt(replicates), 1e-5 * np.max(np.abs(ex)))
        z = np.abs(mean - ex) / se
        results[label] = {
            "num_samples": n, "f_evals": evals, "grad_f_evals": grad_evals, "biased": biased,
            "variance": float(np.mean(g.var(0, ddof=1))),
            "mse": float(np.mean((g - ex) ** 2)),
            "max_z": float(np.max(z)),
            "seconds": time.perf_counter() - t0,
        }
    return results


def table(results, reference):
    """One markdown table per problem: rows = estimators, columns = budgets."""
    out = []
    for problem, by_budget in results.items():
        budgets = list(by_budget)
        labels = list(dict.fromkeys(label for r in by_budget.values() for label in r))
        ref = reference[problem]
        head = "| estimator | " + " | ".join(f"E={b}: n, f-evals (∇f) | var (MSE) | × {ref} | max \\|z\\|" for b in budgets) + " |"
        lines = [f"**{problem}**", "", head, "|---|" + "---|---|---|---|" * len(budgets)]
        for label in labels:
            cells = [label]
            for b in budgets:
                r = by_budget[b].get(label)
                if r is None:
                    cells += ["–", "costs more than E", "–", "–"]
                    continue
                base = by_budget[b][ref]["variance"]
                metric = r["mse"] if r["biased"] else r["variance"]
                tag = " (MSE)" if r["biased"] else ""
                cells += [f"{r['num_samples']}, {r['f_evals']} ({r['grad_f_evals']})", f"{metric:.3g}{tag}",
                          f"{metric / base:.3g}", f"{r['max_z']:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def why_not_on_the_toy(steps=500, replicates=2000):
    """Double CV and RODEO build their control variates from ∇f at the binary points. On the DisARM
    toy, f = Σ (b − t)² is linear on {0, 1}^D (slope 1 − 2t = 0.1) while its derivative there is
    2(b − t) = ±1: the expansions are ~10× off, so the learned coefficients stay near 0 (leave-one-out).
    The same function on the vertices written linearly, Σ (1 − 2t) b + t², has the right derivative."""
    t, theta = 0.45, jnp.linspace(-1.5, 1.5, 20)
    bern = lambda p: rg.Bernoulli(logits=p)
    fs = {"toy Σ(b − t)²": lambda b: jnp.sum((b - t) ** 2), "same on {0,1}: Σ(1 − 2t)b + t²": lambda b: jnp.sum((1 - 2 * t) * b + t * t)}
    keys = jax.random.split(jax.random.key(5), replicates)
    out = {}
    for name, f in fs.items():
        dis = rg.disarm_grad(f, bern, num_samples=1)
        v_dis = float(np.asarray(jax.jit(jax.vmap(lambda k, dis=dis: dis(theta, k)))(keys)).var(0).mean())
        for label, est, psi in (("double CV", rg.double_cv(), rg.double_cv_init()), ("RODEO", rg.rodeo(), rg.rodeo_init())):
            fn = rg.grad(f, bern, est, num_samples=2)
            psi = _adapt(fn, theta, psi, jax.random.key(1), steps, 1e-2)
            g = np.asarray(jax.jit(jax.vmap(lambda k, fn=fn, psi=psi: fn(theta, k, control_params=psi)[0]))(keys))
            out[(name, label)] = (float(g.var(0).mean()) / v_dis, float(psi["alpha"]))
            print(f"{name:32s} {label:9s} E=2  variance / DisARM's = {out[(name, label)][0]:.3g}  (learned α = {float(psi['alpha']):.3f})")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--json", default=None)
    parser.add_argument("--why", action="store_true", help="only the check of why double CV / RODEO do not beat DisARM on the toy")
    args = parser.parse_args(argv)
    if args.why:
        return why_not_on_the_toy(*((20, 50) if args.small else ()))
    small = args.small or os.environ.get("REPGRAD_SMALL") == "1"
    replicates, adapt_steps = (50, 10) if small else (2000, 500)
    budgets = {"bernoulli20_toy": (2, 42), "bernoulli20_product": (2, 42), "categorical10x10": (91,)}
    if small:
        budgets = {"bernoulli20_toy": (42,), "bernoulli20_product": (42,), "categorical10x10": (91,)}
    key = jax.random.key(0)
    results, reference = {}, {}
    for name in args.problems.split(","):
        problem = PROBLEMS[name]()
        reference[name] = "DisARM" if problem["kind"] == "bernoulli" else "score + LOO"
        results[name] = {}
        for budget in budgets[name]:
            res = measure(problem, budget, replicates, adapt_steps, jax.random.fold_in(key, 100 * len(results) + budget))
            results[name][budget] = res
            for label, r in res.items():
                print(f"{name:20s} E={budget:3d} {label:26s} n {r['num_samples']:3d} var {r['variance']:.4g}  "
                      f"mse {r['mse']:.4g}  max|z| {r['max_z']:.2f}  ({r['seconds']:.1f}s)", flush=True)
    print(table(results, reference))
    if args.json:
        meta = {"replicates": replicates, "adapt_steps": adapt_steps, "budgets": budgets, "jax": jax.__version__,
                "python": sys.version.split()[0], "cpus": os.cpu_count()}
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
