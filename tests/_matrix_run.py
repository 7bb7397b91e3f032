"""Running one cell of the matrix: refusals traced, estimates replicated and compared.

Operators expected to be refused are traced one by one (``jax.eval_shape``: the error must come
at trace time). The others are compiled together, once, as ``jax.jit(jax.vmap(...))`` over R
independent keys, and each is compared with its exact value at 5 standard errors of the
estimator itself (``_stats.mean_and_se``), plus a float32 rounding slack where the estimator
is exact (SE = 0). ``run`` returns the problems found; each is also appended as a JSON line to
``$REPGRAD_MATRIX_LOG`` when set.
"""

from __future__ import annotations

import json
import os
import time
import zlib

import _matrix_exact as ex
import _matrix_fs as fs
import jax
import jax.numpy as jnp
import numpy as np
from _matrix_cells import THIRD_FAMILIES
from _matrix_estimators import build, call_inputs
from _matrix_families import FAMILIES, peer_context
from _matrix_ops import ORDER, estimate, exact, nan_mask
from _matrix_rules import Biased, Either, Raises, expected, mode_of
from _stats import mean_and_se

import repgrad as rg

# The compiled replicates run in milliseconds; compiling them dominates. Unoptimized code halves
# the compile time (measured: 1.5 s instead of 3.5 s for a score Hessian cell).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
N_SE = 5.0
ROUNDING = 1e-4  # relative slack where the estimator is exact in float32 (SE = 0)
W = 0.8


def _exact_fn(cell, fam, mode):
    """E(θ64, w64) for the cell's f, in ``mode``."""
    if mode == "bound":
        kind = "smooth" if cell.f == "masked" else cell.f

        def bound(theta, w):
            pts, probs = fs.support(fam, theta)
            if kind == "noisy":  # f's own noise is part of each sample: enumerate it too
                pts, probs = fs.with_noise(pts, probs)
                return ex.k_sample_bound(pts, probs, lambda p: fs.noisy_log_weight(fam, p, w), cell.num_samples)
            return ex.k_sample_bound(pts, probs, lambda x: fs.body(kind, fam, x, w), cell.num_samples)

        return bound
    if mode == "relaxed":
        tau = cell.variant.opts.get("temperature", 1.0)

        def relaxed(theta, w):
            logits = jnp.log(theta) - jnp.log1p(-theta) if fam.name.startswith("bernoulli_probs") else theta
            return fs.from_moments(cell.f, ex.relaxed_bernoulli(logits, tau, fam.c()), w)

        return relaxed
    return lambda theta, w: fs.from_moments(cell.f, fam.moments(theta), w)


def _strip(out, est):
    """The result of a transform or objective without the new state / control gradients."""
    if est.stateful:
        out = out[0]
    if est.control_init is not None:
        out = out[0]
    return out


def _objectives(cell, fam, est, kw):
    f = fs.make_f(cell.f, fam, cell.variant.onehot)
    n, f_key = cell.num_samples, cell.f == "noisy"
    loss = rg.expectation(f, fam.build, est, num_samples=n, f_key=f_key)
    grad = rg.grad(f, fam.build, est, num_samples=n, f_key=f_key)
    vgrad = rg.value_and_grad(f, fam.build, est, num_samples=n, f_key=f_key)
    extra = lambda out: _strip(out, est) if kw else out
    L = lambda key: lambda t, w: extra(loss(t, key, w, **kw))
    G = lambda key: lambda t, w: extra(grad(t, key, w, **kw))
    VG = lambda key: lambda t, w: extra(vgrad(t, key, w, **kw))
    return lambda op, key, t, w: estimate(op, L(key), G(key), VG(key), t, w)


def _matches(err, outcome):
    return isinstance(err, outcome.errors) and not isinstance(err, getattr(outcome, "exclude", ()))


def _describe(err):
    return f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"


class Log:
    """Collects a cell's problems; appends every check to ``$REPGRAD_MATRIX_LOG`` when set."""

    def __init__(self, cell_id):
        self.cell_id, self.problems = cell_id, []

    def __call__(self, op, status, detail="", z=None):
        path = os.environ.get("REPGRAD_MATRIX_LOG")
        if status != "ok":
            self.problems.append(f"{op}: {status}: {detail}")
        if path:
            rec = {"cell": self.cell_id, "op": op, "status": status, "detail": detail, "z": z}
            with open(path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")


def run(cell, statistical=True):
    """Checks ``cell``; the list of problems (empty when it keeps its contract)."""
    fam = FAMILIES[cell.family]
    start = time.process_time()
    with peer_context(fam):
        problems = _run(cell, fam, statistical)
    Log(cell.id)("_cpu_seconds", "ok", "", time.process_time() - start)
    return problems


def _run(cell, fam, statistical):
    log = Log(cell.id)
    outcomes = expected(cell.variant, fam, cell.f, cell.ops)
    try:
        est = build(cell.variant, fam)
    except Exception as err:  # a construction-time refusal
        for op, outcome in outcomes.items():
            if isinstance(outcome, (Raises, Either)) and _matches(err, outcome):
                log(op, "ok")
            else:
                log(op, "raised at construction", _describe(err))
        return log.problems
    op_fn = _objectives(cell, fam, est, call_inputs(est, cell.variant))
    theta = jnp.asarray(fam.theta, jnp.float32)
    check(log, op_fn, outcomes, lambda mode: _exact_values(cell, fam, mode), theta, cell.replicates,
          statistical, lambda op: nan_mask(op, fam.edge, theta.shape[0]), _comparable_mode(cell.variant, fam))
    return log.problems


def _comparable_mode(variant, fam):
    """The mode exact values exist for (none for a Categorical's relaxed objective)."""
    mode = mode_of(variant)
    return None if mode == "relaxed" and fam.kind == "categorical" else mode


def check(log, op_fn, outcomes, exact_values, theta, replicates, statistical=True, mask=lambda op: None,
          mode="plain"):
    """Refusals traced one by one; the other operators replicated over independent keys in one
    compiled function and compared with ``exact_values(mode)[op]``. An operator that should
    have been refused but returns a number is replicated too, to report how wrong it is."""
    w = jnp.float32(W)
    key = jax.random.key(zlib.crc32(log.cell_id.encode()))
    run_ops, wrong = [], {}
    for op, outcome in outcomes.items():
        if isinstance(outcome, (Raises, Either)):
            try:
                jax.eval_shape(lambda k, op=op: op_fn(op, k, theta, w), key)
            except Exception as err:
                if _matches(err, outcome):
                    log(op, "ok")
                else:
                    log(op, "wrong error", f"expected {[e.__name__ for e in outcome.errors]} ({outcome.why}), got {_describe(err)}")
                continue
            if isinstance(outcome, Raises):
                wrong[op] = f"expected {[e.__name__ for e in outcome.errors]} ({outcome.why})"
                run_ops.append(op)
                continue
        run_ops.append(op)
    if not statistical:
        for op, why in wrong.items():
            log(op, "returned a number", why)
        return
    if not run_ops:
        return
    keys = jax.random.split(key, replicates)
    try:
        samples = _replicate(run_ops, op_fn, keys, theta, w)
    except Exception:  # some operator raised unexpectedly: find which, run the others
        run_ops = _traceable(run_ops, op_fn, key, theta, w, log)
        if not run_ops:
            return
        samples = _replicate(run_ops, op_fn, keys, theta, w)
    for op in run_ops:
        outcome = outcomes[op]
        if op in wrong:
            if mode is None:
                log(op, "returned a number", wrong[op])
                continue
            bad, worst = _compare(samples[op], exact_values(mode)[op], mask(op))
            log(op, "returned a number", wrong[op] + "; it returned " + ("; ".join(bad[:2]) or "the exact value"), worst)
            continue
        if isinstance(outcome, Biased) or getattr(outcome, "mode", "") is None:
            finite = all(np.all(np.isfinite(a)) for a in jax.tree_util.tree_leaves(samples[op]))
            log(op, "ok" if finite else "not finite", outcome.why)
            continue
        bad, worst = _compare(samples[op], exact_values(outcome.mode)[op], mask(op))
        log(op, "biased" if bad else "ok", "; ".join(bad[:3]), worst)


def exact_all(E, theta, ops):
    """{op: exact value} of the float64 expectation ``E(θ, w)``, compiled once."""
    with jax.enable_x64(True):
        values = jax.jit(lambda t, w: {op: exact(op, E, t, w) for op in ops}, compiler_options=FAST_COMPILE)(
            jnp.asarray(theta, jnp.float64), jnp.float64(W))
        return jax.tree_util.tree_map(np.asarray, values)


_EXACT_CACHE: dict = {}


def _exact_values(cell, fam, mode):
    """{op: exact value} for every operator, computed once per (family, f, mode, N, τ)."""
    tau = cell.variant.opts.get("temperature", 1.0) if mode == "relaxed" else None
    same = {"heaviside": "step", "masked": "smooth"}  # equal in expectation
    if mode != "bound":
        same["noisy"] = "smooth"  # (not E log mean exp: the noise is inside the log)
    key = (fam.name, same.get(cell.f, cell.f), mode, cell.num_samples if mode == "bound" else None, tau)
    if key not in _EXACT_CACHE:
        ops = [op for op in ORDER if op != "third" or fam.name in THIRD_FAMILIES]
        _EXACT_CACHE[key] = exact_all(_exact_fn(cell, fam, mode), fam.theta, ops)
    return _EXACT_CACHE[key]


def _replicate(ops, op_fn, keys, theta, w):
    """Every operator over the R keys: one compiled function."""
    replicated = jax.vmap(lambda k: {op: op_fn(op, k, theta, w) for op in ops})
    samples = jax.jit(replicated, compiler_options=FAST_COMPILE)(keys)
    return jax.tree_util.tree_map(np.asarray, samples)


def _traceable(run_ops, op_fn, key, theta, w, log):
    """The operators that trace; the others are problems (an unexpected error)."""
    ok = []
    for op in run_ops:
        try:
            jax.eval_shape(lambda k, op=op: op_fn(op, k, theta, w), key)
            ok.append(op)
        except Exception as err:
            log(op, "raised", _describe(err))
    return ok


def _compare(samples, target, mask):
    """(problems, worst z) of replicates against the exact value, leaf by leaf."""
    s_leaves, treedef = jax.tree_util.tree_flatten(samples)
    t_leaves = treedef.flatten_up_to(target)
    m_leaves = treedef.flatten_up_to(mask) if mask is not None else [None] * len(s_leaves)
    worst, bad = 0.0, []
    for j, (s, t, m) in enumerate(zip(s_leaves, t_leaves, m_leaves, strict=True)):
        s = np.asarray(s, np.float64)
        t = np.broadcast_to(np.asarray(t, np.float64), s.shape[1:])
        m = np.zeros(t.shape, bool) if m is None else np.broadcast_to(m, t.shape)
        # where documented NaN (a support edge), NaN or the exact value
        m = m & np.any(np.isnan(s), axis=0)
        finite = np.all(np.isfinite(s), axis=0)
        if np.any(~m & ~finite):
            i = tuple(int(k) for k in np.argwhere(~m & ~finite)[0])
            bad.append(f"leaf {j} at {i}: non-finite estimate {s[(slice(None),) + i][:3]} (exact {t[i]:.6g})")
            continue
        mean, se = mean_and_se(np.where(m, 0.0, s))
        diff = np.where(m, 0.0, mean - t)
        bound = N_SE * se + ROUNDING * (1.0 + np.abs(np.where(m, 0.0, t)))
        z = np.abs(diff) / np.where(se > 0, se, np.nan)
        if np.any(np.isfinite(z)):
            worst = max(worst, float(np.nanmax(z)))
        if np.any(np.abs(diff) > bound):
            i = tuple(int(k) for k in np.argwhere(np.abs(diff) > bound)[0])
            zi = z[i] if np.isfinite(z[i]) else float("inf")
            bad.append(f"leaf {j} at {i}: mean {mean[i]:.6g} vs exact {t[i]:.6g} (SE {se[i]:.3g}, z = {zi:.1f})")
    return bad, worst
