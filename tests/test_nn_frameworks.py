"""repgrad.nn.flax (Flax NNX) and repgrad.nn.equinox (Equinox): thin modules over the functional
Bayesian layers. For the same posterior and key a module gives the functional layer's outputs and
gradients exactly; inference mode is the posterior-mean layer; the KL helper sums every Bayesian
layer of a model; neither framework is imported by ``import repgrad``. The Bayesian-MLP training
examples (docs/guides/flax.md, equinox.md) run in tests/test_docs.py.

Deterministic: fixed keys, exact equalities (the module calls the same function on the same inputs).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import repgrad as rg

SAMPLINGS = ["flipout", "reparameterization", "local_reparameterization"]
FUNCTIONAL = {
    ("Dense", "flipout"): rg.nn.dense_flipout,
    ("Dense", "reparameterization"): rg.nn.dense_reparameterization,
    ("Dense", "local_reparameterization"): rg.nn.dense_local_reparameterization,
    ("Conv2D", "flipout"): rg.nn.conv2d_flipout,
    ("Conv2D", "reparameterization"): rg.nn.conv2d_reparameterization,
    ("Conv2D", "local_reparameterization"): rg.nn.conv2d_local_reparameterization,
}
CLASS = {"flipout": "Flipout", "reparameterization": "Reparameterization",
         "local_reparameterization": "LocalReparameterization"}
CONV = {"strides": 1, "padding": "VALID", "dilation": 1}


def _framework(module):
    """The framework module; skipped if absent, except on CI where the [interop] extra installs it."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def _input(kind):
    if kind == "Dense":
        return jax.random.normal(jax.random.key(3), (5, 4)), (5, 3)
    return jax.random.normal(jax.random.key(3), (2, 6, 6, 2)), (2, 4, 4, 3)


def _mean_layer(posterior, x, kind):
    if kind == "Dense":
        y = x @ posterior.kernel_loc
    else:
        y = jax.lax.conv_general_dilated(x, posterior.kernel_loc, (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + jnp.broadcast_to(posterior.bias_loc, y.shape)


def _options(kind):
    return CONV if kind == "Conv2D" else {}


def _check_gradients(loss_functional, posterior_grads_module, posterior):
    """The module's gradients (a dict by field name) equal jax.grad of the functional layer's loss."""
    g_ref = jax.grad(loss_functional)(posterior)
    for name in g_ref._fields:
        np.testing.assert_array_equal(posterior_grads_module[name], getattr(g_ref, name), err_msg=name)


# ------------------------------------------------------------------------------------ Flax NNX


@pytest.mark.parametrize("kind", ["Dense", "Conv2D"])
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_flax_module_is_the_functional_layer(kind, sampling):
    nnx = _framework("flax.nnx")
    from repgrad.nn import flax as rnf

    cls = getattr(rnf, f"{kind}{CLASS[sampling]}")
    layer = cls(4, 3, rngs=nnx.Rngs(params=0, noise=1)) if kind == "Dense" else \
        cls(3, 2, 3, rngs=nnx.Rngs(params=0, noise=1), **CONV)
    x, out_shape = _input(kind)
    posterior = layer.posterior
    init = rg.nn.init_dense(nnx.Rngs(0).params(), 4, 3) if kind == "Dense" else \
        rg.nn.init_conv2d(nnx.Rngs(0).params(), 3, 2, 3)
    for name in posterior._fields:  # initialized from the 'params' stream, as the functional init
        np.testing.assert_array_equal(getattr(posterior, name), getattr(init, name))
    assert {type(getattr(layer, n)) for n in posterior._fields} == {nnx.Param}

    key = jax.random.key(7)
    fn = FUNCTIONAL[kind, sampling]
    y = layer(x, rngs=key)
    assert y.shape == out_shape
    np.testing.assert_array_equal(y, fn(posterior, x, key, **_options(kind)))

    # The 'noise' stream: fresh noise per call, reproducible from the same seed.
    y1, y2 = layer(x), layer(x)
    assert not np.allclose(y1, y2)
    twin = cls(4, 3, rngs=nnx.Rngs(params=0, noise=1)) if kind == "Dense" else \
        cls(3, 2, 3, rngs=nnx.Rngs(params=0, noise=1), **CONV)
    np.testing.assert_array_equal(twin(x), y1)

    # Gradients through the module equal the functional layer's.
    grads = nnx.grad(lambda m: jnp.sum(m(x, rngs=key) ** 2))(layer)
    _check_gradients(
        lambda p: jnp.sum(fn(p, x, key, **_options(kind)) ** 2),
        {n: grads[n][...] for n in posterior._fields},
        posterior,
    )

    layer.eval()
    np.testing.assert_allclose(layer(x), _mean_layer(posterior, x, kind), rtol=1e-6, atol=1e-6)
    layer.train()
    assert not np.allclose(layer(x), _mean_layer(posterior, x, kind))
    np.testing.assert_allclose(layer(x, deterministic=True), _mean_layer(posterior, x, kind), rtol=1e-6, atol=1e-6)


def test_flax_kl_sums_every_bayesian_layer():
    nnx = _framework("flax.nnx")
    from repgrad.nn.flax import Conv2DReparameterization, DenseFlipout, kl_divergence

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = Conv2DReparameterization(3, 2, 4, rngs=rngs)
            self.dense = DenseFlipout(4, 3, rngs=rngs)
            self.plain = nnx.Linear(3, 2, rngs=rngs)  # not Bayesian: no KL

    net = Net(nnx.Rngs(0))
    expected = rg.nn.kl_divergence([net.conv.posterior, net.dense.posterior])
    np.testing.assert_allclose(kl_divergence(net), expected, rtol=1e-6)
    prior = rg.Normal(0.0, 2.0)
    np.testing.assert_allclose(
        kl_divergence(net, prior), rg.nn.kl_divergence([net.conv.posterior, net.dense.posterior], prior), rtol=1e-6
    )
    with pytest.raises(TypeError, match="found no repgrad.nn.flax Bayesian layers"):
        kl_divergence(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
    with pytest.raises(TypeError, match="rngs=nnx.Rngs"):
        DenseFlipout(4, 3, rngs=jax.random.key(0))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ Equinox


@pytest.mark.parametrize("kind", ["Dense", "Conv2D"])
@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_equinox_module_is_the_functional_layer(kind, sampling):
    eqx = _framework("equinox")
    from repgrad.nn import equinox as rne

    cls = getattr(rne, f"{kind}{CLASS[sampling]}")
    k_init = jax.random.key(0)
    layer = cls(4, 3, key=k_init) if kind == "Dense" else cls(3, 2, 3, key=k_init, **CONV)
    init = rg.nn.init_dense(k_init, 4, 3) if kind == "Dense" else rg.nn.init_conv2d(k_init, 3, 2, 3)
    for name in init._fields:
        np.testing.assert_array_equal(getattr(layer.posterior, name), getattr(init, name))

    x, out_shape = _input(kind)
    key = jax.random.key(7)
    fn = FUNCTIONAL[kind, sampling]
    y = eqx.filter_jit(lambda m, x, k: m(x, key=k))(layer, x, key)
    assert y.shape == out_shape
    np.testing.assert_allclose(y, fn(layer.posterior, x, key, **_options(kind)), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(layer(x, key=key), fn(layer.posterior, x, key, **_options(kind)))

    grads = eqx.filter_grad(lambda m: jnp.sum(m(x, key=key) ** 2))(layer)
    _check_gradients(
        lambda p: jnp.sum(fn(p, x, key, **_options(kind)) ** 2),
        {n: getattr(grads.posterior, n) for n in init._fields},
        layer.posterior,
    )

    mean_layer = eqx.nn.inference_mode(layer)
    np.testing.assert_allclose(mean_layer(x), _mean_layer(layer.posterior, x, kind), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer(x, inference=True), mean_layer(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="key=jax.random.key"):
        layer(x)


def test_equinox_kl_sums_every_bayesian_layer():
    eqx = _framework("equinox")
    from repgrad.nn.equinox import Conv2DLocalReparameterization, DenseFlipout, kl_divergence

    model = [Conv2DLocalReparameterization(3, 2, 4, key=jax.random.key(0)), DenseFlipout(4, 3, key=jax.random.key(1)),
             eqx.nn.Linear(3, 2, key=jax.random.key(2))]
    expected = rg.nn.kl_divergence([model[0].posterior, model[1].posterior])
    np.testing.assert_allclose(kl_divergence(model), expected, rtol=1e-6)
    np.testing.assert_allclose(rg.nn.kl_divergence(model), expected, rtol=1e-6)  # the plain helper finds them too
    g = eqx.filter_grad(kl_divergence)(model[1])
    assert g.posterior.kernel_rho.shape == (4, 3)
    with pytest.raises(TypeError, match="found no repgrad.nn.equinox Bayesian layers"):
        kl_divergence(eqx.nn.Linear(3, 2, key=jax.random.key(0)))


# ------------------------------------------------------------------------------------ bfloat16


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_bf16_modules_are_the_functional_layers(sampling):
    """bfloat16 modules run the functional layers, which draw their noise in float32 and cast
    (their output moments: tests/test_nn_low_precision.py)."""
    nnx = _framework("flax.nnx")
    _framework("equinox")
    from repgrad.nn import equinox as rne
    from repgrad.nn import flax as rnf

    key = jax.random.key(7)
    for kind in ("Dense", "Conv2D"):
        x = _input(kind)[0].astype(jnp.bfloat16)
        fn = FUNCTIONAL[kind, sampling]
        args = (4, 3) if kind == "Dense" else (3, 2, 3)
        flax_layer = getattr(rnf, f"{kind}{CLASS[sampling]}")(*args, rngs=nnx.Rngs(0), dtype=jnp.bfloat16,
                                                               **_options(kind))
        eqx_layer = getattr(rne, f"{kind}{CLASS[sampling]}")(*args, key=jax.random.key(0), dtype=jnp.bfloat16,
                                                              **_options(kind))
        for y, posterior in ((flax_layer(x, rngs=key), flax_layer.posterior), (eqx_layer(x, key=key), eqx_layer.posterior)):
            assert y.dtype == jnp.bfloat16
            np.testing.assert_array_equal(y, fn(posterior, x, key, **_options(kind)))


# ------------------------------------------------------------------------------- lazy imports


def test_frameworks_are_imported_only_when_used():
    code = textwrap.dedent(
        """
        import sys
        import repgrad as rg
        assert "flax" not in sys.modules and "equinox" not in sys.modules, "import repgrad imported a framework"
        rg.nn.equinox.DenseFlipout  # the lazy attribute imports repgrad.nn.equinox, and Equinox with it
        assert "equinox" in sys.modules and "flax" not in sys.modules
        try:
            rg.nn.no_such_module
        except AttributeError:
            pass
        else:
            raise AssertionError("rg.nn.no_such_module should raise AttributeError")
        """
    )
    _framework("equinox")
    subprocess.run([sys.executable, "-c", code], check=True)
