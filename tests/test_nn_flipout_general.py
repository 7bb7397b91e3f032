"""rg.nn.flipout(layer_fn) on layers linear in their weights that are not channel contractions.

Each example's outputs must be, jointly, an exact sample of the layer under its own weight draw
from the mean-field posterior: y_n = layer(W, x_n) with W ~ N(W̄, diag σ²), so
Cov(y_n) = J_n diag(σ²) J_nᵀ with J_n = ∂y_n/∂W, the covariance of an explicit per-example
weight sample. Checked per example for the full output covariance (every pair of output units)
and Var(Σ_j y_nj), at 5 standard errors of the replicates themselves (tests/_stats.py: chance
failure ≈ 5.7e-7 per scalar, a few thousand scalars here, fixed keys). Before the fix, Flipout's
channel signs on a scalar weight gave Var(Σ_j y_nj) = 3.85 against 16 (z ≈ −180).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _stats import assert_unbiased, replicate

from repgrad import nn
from repgrad.nn import _flipout_plan

R = 4000


def _exact_moments(layer_fn, loc, scale, x):
    """Mean and per-example covariance (B, D, D) of the flattened outputs under an explicit
    per-example weight sample (layer_fn is linear in the weights)."""
    means, covs = [], []
    for xn in np.asarray(x):
        jac = jax.jacfwd(lambda w, xn=xn: jnp.ravel(layer_fn(w, jnp.asarray(xn))))(loc)
        j_leaves = [np.asarray(j, np.float64).reshape(j.shape[0], -1) for j in jax.tree_util.tree_leaves(jac)]
        s2 = [np.ravel(np.asarray(s, np.float64)) ** 2 for s in jax.tree_util.tree_leaves(scale)]
        covs.append(sum((j * v) @ j.T for j, v in zip(j_leaves, s2, strict=True)))
        means.append(np.ravel(np.asarray(layer_fn(loc, jnp.asarray(xn)), np.float64)))
    return np.stack(means), np.stack(covs)


def _check_joint(layer, layer_fn, loc, scale, x, key):
    """Per-example mean, full covariance and Var(Σ_j y_nj) of ``layer`` against the exact ones."""
    mean, cov = _exact_moments(layer_fn, loc, scale, x)
    y = replicate(lambda k: layer(loc, scale, x, k), key, R)
    c = y.reshape(R, x.shape[0], -1).astype(np.float64) - mean
    assert_unbiased(c, np.zeros_like(mean), name="mean")
    assert_unbiased(np.sum(c, axis=-1) ** 2, cov.sum(axis=(1, 2)), name="Var(sum_j y_nj)")
    assert_unbiased(c[:, :, :, None] * c[:, :, None, :], cov, name="covariance of output units")


def _scheme(layer_fn, loc, x_example, signs="auto"):
    leaves, treedef = jax.tree_util.tree_flatten(loc)
    xs = jax.ShapeDtypeStruct(x_example.shape, x_example.dtype)
    return _flipout_plan.plan(layer_fn, leaves, treedef, xs, jax.eval_shape(layer_fn, loc, xs), signs)[0]


def _normal(i, shape):
    return jax.random.normal(jax.random.key(i), shape)


# ---------------------------------------------------------------- the joint distribution


def test_scalar_weight():
    """y = w·x with one scalar w: channel signs would flip each channel's share of the same Δw."""
    layer_fn = lambda w, x: w * x
    loc, scale = jnp.asarray(0.3), jnp.asarray(1.0)
    x = jnp.ones((3, 4)).at[1].set(jnp.asarray([1.0, -2.0, 0.5, 1.5]))
    assert _scheme(layer_fn, loc, x[0]) == ("example",)
    _check_joint(nn.flipout(layer_fn), layer_fn, loc, scale, x, jax.random.key(1))


def test_token_mixing():
    """example_ndim=2: a (T, T) weight mixes the tokens of a (T, C) example (here T = C, so the
    weight's shape alone would pass for a kernel)."""
    layer_fn = lambda w, x: w @ x
    loc, scale = 0.3 * _normal(0, (3, 3)), 0.2 + jax.nn.softplus(_normal(1, (3, 3)))
    x = _normal(2, (2, 3, 3))
    assert _scheme(layer_fn, loc, x[0]) == ("example",)
    _check_joint(nn.flipout(layer_fn, example_ndim=2), layer_fn, loc, scale, x, jax.random.key(2))


def test_several_weight_leaves():
    """Token mixing plus a channel kernel, a bias and a per-channel scale: the mixing leaf takes
    one sign per example, the others Flipout's channel signs (three layer applications)."""
    def layer_fn(w, x):
        return w["mix"] @ x + x @ w["kernel"] + w["bias"][None] + w["gain"][None] * x

    loc = {"mix": 0.3 * _normal(0, (3, 3)), "kernel": 0.3 * _normal(1, (2, 2)), "bias": _normal(2, (2,)),
           "gain": _normal(3, (2,))}
    scale = jax.tree_util.tree_map(lambda a: 0.3 + 0.5 * jnp.abs(a), loc)
    x = _normal(4, (2, 3, 2))
    assert _scheme(layer_fn, loc, x[0]) == ("channels", "channels", "channels", "example")  # bias gain kernel mix
    _check_joint(nn.flipout(layer_fn, example_ndim=2), layer_fn, loc, scale, x, jax.random.key(3))


def test_dense_is_exact_and_is_dense_flipout():
    """A dense map gets channel signs: the same draws and outputs as dense_flipout."""
    layer_fn = lambda w, x: x @ w[0] + w[1]
    p = nn.init_dense(jax.random.key(0), 3, 4, init_scale=0.5)
    loc, scale = (p.kernel_loc, p.bias_loc), (p.kernel_scale, p.bias_scale)
    x = _normal(1, (3, 3))
    assert _scheme(layer_fn, loc, x[0]) == ("channels", "channels")
    layer = nn.flipout(layer_fn)
    np.testing.assert_array_equal(jax.jit(layer)(loc, scale, x, jax.random.key(5)),
                                  jax.jit(nn.dense_flipout)(p, x, jax.random.key(5)))
    _check_joint(layer, layer_fn, loc, scale, x, jax.random.key(4))


def test_conv_is_exact_and_is_conv2d_flipout():
    def layer_fn(w, x):
        y = jax.lax.conv_general_dilated(x[None], w[0], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]
        return y + w[1][None, None]

    p = nn.init_conv2d(jax.random.key(0), 2, 2, 3, init_scale=0.5)
    loc, scale = (p.kernel_loc, p.bias_loc), (p.kernel_scale, p.bias_scale)
    x = _normal(1, (2, 3, 3, 2))
    assert _scheme(layer_fn, loc, x[0]) == ("channels", "channels")
    layer = nn.flipout(layer_fn, example_ndim=3)
    np.testing.assert_array_equal(jax.jit(layer)(loc, scale, x, jax.random.key(5)),
                                  jax.jit(nn.conv2d_flipout)(p, x, jax.random.key(5)))
    # the 2x2 window at (1, 1)-(1, 2): neighbouring outputs share the example's kernel sample
    window = lambda w, xx: layer_fn(w, xx)[1, 1:3]
    _check_joint(lambda *a: layer(*a)[:, 1, 1:3], window, loc, scale, x, jax.random.key(6))


def test_other_layouts_take_channel_signs():
    """Transposed kernels, depthwise convs, per-head projections and odd functions of x."""
    depthwise = lambda w, x: jax.lax.conv_general_dilated(
        x[None], w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=4)[0]
    cases = [
        (lambda w, x: x @ w.T, jnp.ones((3, 4)), jnp.ones(4)),  # PyTorch's (out, in) kernel
        (depthwise, jnp.ones((3, 3, 1, 4)), jnp.ones((5, 5, 4))),
        (lambda w, x: jnp.einsum("ti,ihd->thd", x, w), jnp.ones((4, 2, 3)), jnp.ones((5, 4))),
        (lambda w, x: jnp.tanh(x) @ w, jnp.ones((4, 3)), jnp.ones(4)),  # tanh(s∘x) = s∘tanh(x)
    ]
    for layer_fn, loc, x in cases:
        assert _scheme(layer_fn, loc, x) == ("channels",)
    assert _scheme(lambda w, x: w[x], jnp.ones((10, 3)), jnp.zeros(5, jnp.int32)) == ("example",)  # embedding


def test_one_sign_per_example_shares_the_perturbation_up_to_sign():
    """The fallback's per-example weight is t_n ΔŴ: exact, but examples differ only in sign."""
    layer = nn.flipout(lambda w, x: w * x)
    y = layer(jnp.asarray(0.0), jnp.asarray(1.0), jnp.ones((16, 2)), jax.random.key(0))
    assert np.allclose(np.abs(y), np.abs(y[0, 0]))
    assert {1.0, -1.0} == set(np.sign(np.asarray(y[:, 0])).tolist())


# ------------------------------------------------------------ traced closures and refusals


def test_traced_closure_warns_and_stays_exact():
    """A layer_fn closing over a traced value cannot be probed: one sign per example for every
    leaf (exact), with a warning; signs='channels' is then taken on trust, 'example' is silent."""
    x = jnp.ones((3, 4))

    def run(c, key, signs="auto"):
        return nn.flipout(lambda w, xx: c * w * xx, signs=signs)(jnp.asarray(0.0), jnp.asarray(1.0), x, key)

    with pytest.warns(UserWarning, match="closes over traced values"):
        y = replicate(lambda k: run(jnp.asarray(2.0), k), jax.random.key(7), R)
    assert_unbiased(np.sum(y.astype(np.float64), axis=-1) ** 2, 64.0, name="Var(sum_j y_nj)")  # (2·4)²
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jax.jit(lambda c, k: run(c, k, "example"))(2.0, jax.random.key(0))
        jax.jit(lambda c, k: run(c, k, "channels"))(2.0, jax.random.key(0))
        nn.flipout(lambda w, xx: 2.0 * w * xx)(jnp.asarray(0.0), jnp.asarray(1.0), x, jax.random.key(0))  # constants


def test_signs_channels_refuses_a_layer_it_would_get_wrong():
    with pytest.raises(ValueError, match=r"not channel contractions.*dense_reparameterization"):
        nn.flipout(lambda w, x: w * x, signs="channels")(jnp.asarray(0.0), jnp.asarray(1.0), jnp.ones((2, 3)),
                                                         jax.random.key(0))
    layer_fn = lambda w, x: w["mix"] @ x + x @ w["kernel"]
    loc = {"mix": jnp.ones((3, 3)), "kernel": jnp.ones((2, 2))}
    with pytest.raises(ValueError, match=r"\['mix'\]"):
        _scheme(layer_fn, loc, jnp.ones((3, 2)), signs="channels")


@pytest.mark.parametrize("layer_fn", [
    lambda w, x: jax.nn.relu(x @ w),
    lambda w, x: x @ w + 1.0,
    lambda w, x: x @ (w * w),
], ids=["activation", "constant", "product of weights"])
def test_layers_not_linear_in_their_weights_raise(layer_fn):
    with pytest.raises(ValueError, match="not linear in its weights"):
        nn.flipout(layer_fn)(jnp.ones((3, 2)), jnp.ones((3, 2)), jnp.ones((4, 3)), jax.random.key(0))


def test_bad_signs_option():
    with pytest.raises(ValueError, match="signs must be"):
        nn.flipout(lambda w, x: x @ w, signs="rows")
