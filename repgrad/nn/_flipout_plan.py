"""Which sign flips keep :func:`repgrad.nn.flipout` exact for each weight leaf of a user's layer.

``layer_fn`` is pure and every shape is static, so at trace time it can be run on random concrete
probes (under ``jax.ensure_compile_time_eval``): first to check that it is linear in its weights,
then, leaf by leaf, whether Flipout's channel-sign identity holds (see :func:`plan`). All probes
run as one compiled program, once per trace.
"""

from __future__ import annotations

import itertools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CHANNELS", "EXAMPLE", "NUM_PROBES", "plan"]

CHANNELS = "channels"  # ΔW_n = ΔŴ ∘ M(s_n, r_n): Flipout's signs on input and output channels
EXAMPLE = "example"  # ΔW_n = t_n ΔŴ: one sign per example, exact for any linear layer
NUM_PROBES = 32  # sign probes per leaf and candidate mask: a failing leaf passes all with p < 1e-8
_LINEARITY_PROBES = 1
_LINEARITY_CHECKS = ("layer(-2 w, x) = -2 layer(w, x)", "layer(w / 2, x) = layer(w, x) / 2",
                     "layer(w1 + w2, x) = layer(w1, x) + layer(w2, x)")
_PROBE_ELEMENTS = 1 << 22  # weight elements held at once by one leaf's probes (memory bound)


def plan(layer_fn, loc_leaves, treedef, x_example, out, signs: str):
    """Per-leaf schemes (``CHANNELS``/``EXAMPLE``) for ``flipout(layer_fn, signs=signs)``.

    Probes (numpy's generator with a fixed seed, so the decision is deterministic):

    1. Linearity: ``layer(c·w, x) = c·layer(w, x)`` for c = −2, ½ (exact in floating point for
       a linear map) and ``layer(w∘m, x) + layer(w∘(1−m), x) = layer(w, x)`` for a random 0/1
       mask m, on Gaussian w and x. A failure raises: neither sign scheme (nor the split
       ``layer(W̄) + layer(ΔW)`` both rely on) is right for a layer not linear in its weights.
    2. For each leaf, with the other leaves zero, candidate masks M are tried (a kernel: s on an
       axis of x's channel size times r on an axis of the output's channel size; a bias: r; a
       per-channel scale: s∘r): the leaf takes channel signs if for one of them
       ``layer(Δ∘M(s, r), x) = r ∘ layer(Δ, s∘x)`` on ``NUM_PROBES`` probes with Gaussian Δ and
       x, s ∈ {±1}ⁿ and r_j = ±2^k, k ∈ {−2, …, 2}. Powers of two make both sides round
       identically, so the comparison is exact. The discrepancy is linear in r, so this is the
       identity for sign vectors r as well; for a layer linear in x it is linear in s, hence
       nonzero for at least half the sign vectors s, and then for at least 9/10 of the r's: a
       failing leaf passes one probe with probability ≤ 0.55, all 32 with probability < 1e-8.

    Returns ``(schemes, checked)``. A ``layer_fn`` that closes over traced values cannot run on
    concrete probes (``checked`` is False): ``"auto"`` then warns and gives every leaf
    ``EXAMPLE``; ``"channels"`` and ``"example"`` are taken as stated.
    """
    structs = [jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)) for a in loc_leaves]
    consts = jax.make_jaxpr(layer_fn)(treedef.unflatten(structs), x_example).consts
    if any(isinstance(c, jax.core.Tracer) for c in consts):
        return _unchecked(signs, len(structs)), False

    can_flip = signs != EXAMPLE and _is_float(x_example.dtype) and len(out.shape) >= 1
    n_in, n_out = x_example.shape[-1], (out.shape[-1] if can_flip else 0)
    candidates = [_candidate_masks(a.shape, n_in, n_out) if can_flip else [] for a in structs]
    rng = np.random.default_rng(0)
    probes = {
        "linear": [_linearity_probe(rng, structs, x_example) for _ in range(_LINEARITY_PROBES)],
        "identity": [_identity_probe(rng, a, x_example, n_out) if c else None for a, c in zip(structs, candidates, strict=True)],
    }
    with jax.ensure_compile_time_eval():
        found = jax.jit(lambda p: _run(layer_fn, treedef, structs, candidates, p))(probes)

    eps = float(jnp.finfo(_float_or(out.dtype)).eps)
    exact, additive = 16 * eps, (1e-3 if eps < 1e-6 else 5e-2)
    for j, disc in enumerate(found["linear"]):
        what = _LINEARITY_CHECKS[j % len(_LINEARITY_CHECKS)]
        if not _small(disc, additive if what.startswith("layer(w1") else exact):
            raise ValueError(
                f"flipout: layer_fn is not linear in its weights ({what} fails on random weights and inputs). "
                "Flipout, like any scheme that samples y = layer(W̄, x) + layer(ΔW, x), needs y linear in the "
                "weights: apply activations, constants and products of weights outside layer_fn, or sample the "
                "weights explicitly (repgrad.nn.sample_weights, dense_reparameterization)."
            )
    schemes = tuple(CHANNELS if any(_small(d, exact) for d in discs) else EXAMPLE for discs in found["identity"])
    if signs == CHANNELS and EXAMPLE in schemes:
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(treedef.unflatten(structs))[0]]
        bad = [paths[i] or "<the weights>" for i, s in enumerate(schemes) if s == EXAMPLE]
        raise ValueError(
            f"flipout(..., signs='channels'): the weight leaves {bad} are not channel contractions: no sign mask M "
            "makes layer(ΔW∘M(s, r), x) = r ∘ layer(ΔW, s∘x) for sign vectors s on x's last axis and r on the "
            "output's last axis (e.g. a scalar weight, or a weight mixing tokens along another axis), so "
            "Flipout's signs would give the wrong joint distribution. Use signs='auto' (one random sign per "
            "example for those leaves: still exact), a per-example weight sample (dense_reparameterization "
            "vmapped over examples, or dense_local_reparameterization for a dense map), or restructure layer_fn "
            "so that the weight contracts x's last axis into the output's last axis."
        )
    return schemes, True


def _unchecked(signs, num_leaves):
    if signs == "auto":
        warnings.warn(
            "repgrad.nn.flipout: layer_fn closes over traced values (arguments of an enclosing jit, grad, vmap "
            "or scan), so its structure cannot be checked on concrete probes. Every weight leaf gets one random "
            "sign per example (ΔW_n = t_n ΔŴ): each example's outputs are still an exact sample, but examples' "
            "perturbations are less decorrelated than with Flipout's channel signs. Pass those values in x or "
            "as constants, or say what the layer is: flipout(..., signs='channels') for a channel contraction "
            "(then taken on trust) or signs='example' (silences this warning).",
            stacklevel=5,
        )
        return (EXAMPLE,) * num_leaves
    return (signs,) * num_leaves


def _is_float(dtype):
    return jnp.issubdtype(dtype, jnp.floating)


def _float_or(dtype):
    return dtype if _is_float(dtype) else jnp.float32


def _small(pair, tol):
    """Both finite and, per probe (axis 0), max|a − b| ≤ tol · max(|a|, |b|)."""
    a, b = (np.asarray(v, np.float64) for v in pair)
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    scale = np.maximum(np.abs(a).max(axis=1, initial=0.0), np.abs(b).max(axis=1, initial=0.0))
    return bool(np.isfinite(a).all() and np.isfinite(b).all() and np.all(np.abs(a - b).max(axis=1, initial=0.0) <= tol * scale))


# ---------------------------------------------------------------------------------- probes


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape, np.float32).astype(dtype)


def _signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, 1.0, -1.0).astype(np.float32)


def _x_probe(rng, x_example, batch):
    shape = (batch, *x_example.shape)
    if _is_float(x_example.dtype):
        return _normal(rng, shape, x_example.dtype)
    return np.zeros(shape, x_example.dtype)  # e.g. token ids: index 0 is valid wherever any index is


def _linearity_probe(rng, structs, x_example):
    w = [_normal(rng, a.shape, a.dtype) for a in structs]
    return {"w": w, "m": [rng.random(a.shape, np.float32) < 0.5 for a in structs], "x": _x_probe(rng, x_example, 1)[0]}


def _identity_probe(rng, struct, x_example, n_out):
    """One generic Δ for the leaf; x, s and r drawn per probe."""
    return {
        "delta": _normal(rng, struct.shape, struct.dtype),
        "x": _x_probe(rng, x_example, NUM_PROBES),
        "s": _signs(rng, (NUM_PROBES, x_example.shape[-1])),
        "r": _signs(rng, (NUM_PROBES, n_out)) * np.exp2(rng.integers(-2, 3, (NUM_PROBES, n_out))).astype(np.float32),
    }


def _candidate_masks(shape, n_in, n_out):
    """(s_axis, r_axis, sr_axis) triples, most common layouts first: x @ W's kernel (…, in, out),
    a transposed kernel (…, out, in), any other (in, out) axis pair, a bias (…, out), a
    per-channel scale (…, c) with c = in = out."""
    nd = len(shape)
    pairs = [(a, b) for a, b in itertools.permutations(range(nd), 2) if shape[a] == n_in and shape[b] == n_out]
    pairs.sort(key=lambda ab: (ab != (nd - 2, nd - 1), ab != (nd - 1, nd - 2)))
    singles = sorted((b for b in range(nd) if shape[b] == n_out), key=lambda b: b != nd - 1)
    diagonals = [c for c in reversed(range(nd)) if shape[c] == n_in == n_out]
    return [(a, b, None) for a, b in pairs] + [(None, b, None) for b in singles] + [(None, None, c) for c in diagonals]


# ------------------------------------------------------------------- the compiled program


def _along(v, axis, nd):
    """A vector placed on ``axis`` of an ``nd``-axis array (size 1 elsewhere)."""
    return v.reshape(tuple(v.shape[0] if d == axis else 1 for d in range(nd)))


def _run(layer_fn, treedef, structs, candidates, probes):
    layer = lambda leaves, x: layer_fn(treedef.unflatten(leaves), x)
    linear = []
    for p in probes["linear"]:
        w, m, x = p["w"], p["m"], p["x"]
        fw = layer(w, x)
        split = layer([jnp.where(mi, wi, 0) for wi, mi in zip(w, m, strict=True)], x) + layer(
            [jnp.where(mi, 0, wi) for wi, mi in zip(w, m, strict=True)], x)
        linear += [  # in the order of _LINEARITY_CHECKS; a leading probe axis of 1
            (layer([-2 * a for a in w], x)[None], -2 * fw[None]),
            (layer([a / 2 for a in w], x)[None], fw[None] / 2),
            (split[None], fw[None]),
        ]
    identity = []
    for i, (struct, masks, p) in enumerate(zip(structs, candidates, probes["identity"], strict=True)):
        identity.append([_identity(layer, structs, i, struct, mask, p) for mask in masks])
    return {"linear": linear, "identity": identity}


def _identity(layer, structs, i, struct, mask, p):
    """Per probe: layer(Δ∘M(s, r), x) against r ∘ layer(Δ, s∘x), leaf i alone."""
    nd, delta = len(struct.shape), p["delta"]
    s_axis, r_axis, sr_axis = mask

    def alone(leaf, x):
        return layer([leaf if j == i else jnp.zeros(a.shape, a.dtype) for j, a in enumerate(structs)], x)

    def one(probe):
        x, s, r = probe
        w = delta
        for axis, v in ((s_axis, s), (r_axis, r), (sr_axis, None if sr_axis is None else s * r)):
            if axis is not None:
                w = w * _along(v, axis, nd).astype(struct.dtype)
        lhs = alone(w, x)
        rhs = alone(delta, x * _along(s, x.ndim - 1, x.ndim).astype(x.dtype))
        return lhs, rhs * _along(r, lhs.ndim - 1, lhs.ndim).astype(lhs.dtype)

    probes = (p["x"], p["s"], p["r"])
    chunk = _PROBE_ELEMENTS // max(1, math.prod(struct.shape))
    return jax.vmap(one)(probes) if chunk >= NUM_PROBES else jax.lax.map(one, probes, batch_size=max(1, chunk))
