"""Bayesian neural-network layers, functional and pure.

Parameters are NamedTuple pytrees (:class:`DenseParams`, :class:`Conv2DParams`) holding a
mean-field Normal posterior; every layer is ``layer(params, x, key)``. Three ways to
sample the weights: one sample shared by the batch (reparameterization), sampled
pre-activations (local reparameterization) and Flipout's pseudo-independent
per-example perturbations; :func:`flipout` builds the latter for any layer linear in
its weights (channel signs where they are exact, one sign per example elsewhere). :func:`kl_divergence` and :func:`elbo_loss` give the variational objective.
"""

from ._elbo import elbo_loss as elbo_loss
from ._elbo import make_elbo_loss as make_elbo_loss
from ._flipout import conv2d_flipout as conv2d_flipout
from ._flipout import dense_flipout as dense_flipout
from ._flipout import flipout as flipout
from ._init import Conv2DParams as Conv2DParams
from ._init import DenseParams as DenseParams
from ._init import init_conv2d as init_conv2d
from ._init import init_dense as init_dense
from ._init import softplus_inverse as softplus_inverse
from ._kl import kl_divergence as kl_divergence
from ._kl import kl_normal as kl_normal
from ._local_reparameterization import conv2d_local_reparameterization as conv2d_local_reparameterization
from ._local_reparameterization import dense_local_reparameterization as dense_local_reparameterization
from ._reparameterization import conv2d_reparameterization as conv2d_reparameterization
from ._reparameterization import dense_reparameterization as dense_reparameterization
from ._reparameterization import sample_weights as sample_weights

__all__ = [
    "Conv2DParams",
    "DenseParams",
    "conv2d_flipout",
    "conv2d_local_reparameterization",
    "conv2d_reparameterization",
    "dense_flipout",
    "dense_local_reparameterization",
    "dense_reparameterization",
    "elbo_loss",
    "flipout",
    "init_conv2d",
    "init_dense",
    "kl_divergence",
    "kl_normal",
    "make_elbo_loss",
    "sample_weights",
    "softplus_inverse",
]


def __getattr__(name):
    # repgrad.nn.flax / repgrad.nn.equinox import their framework, so they load on first use only.
    if name in ("flax", "equinox"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
