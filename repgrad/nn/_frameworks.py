"""What the Flax NNX and Equinox modules share: the functional layer behind each class, the
posterior-mean (inference) forward pass, and the KL over the layers found in a model.

Imports neither framework: ``repgrad.nn.flax`` and ``repgrad.nn.equinox`` do, when used.
"""

from __future__ import annotations

from . import _ops, _validation
from ._flipout import conv2d_flipout, dense_flipout
from ._init import Conv2DParams, DenseParams, init_conv2d, init_dense
from ._kl import kl_divergence
from ._local_reparameterization import conv2d_local_reparameterization, dense_local_reparameterization
from ._reparameterization import conv2d_reparameterization, dense_reparameterization

__all__ = ["DENSE", "CONV2D", "init_dense", "init_conv2d", "forward", "posterior_mean", "kl_of_layers"]

# How a module's weights are sampled -> the functional layer that does it.
DENSE = {
    "flipout": dense_flipout,
    "reparameterization": dense_reparameterization,
    "local_reparameterization": dense_local_reparameterization,
}
CONV2D = {
    "flipout": conv2d_flipout,
    "reparameterization": conv2d_reparameterization,
    "local_reparameterization": conv2d_local_reparameterization,
}


def forward(posterior: DenseParams | Conv2DParams, sampling: str, x, key, conv=None):
    """The functional layer for ``sampling`` applied with weight noise from ``key``.

    ``conv`` is ``(strides, padding, dilation)`` for a convolution (``None``: 1, "SAME", 1).
    """
    if isinstance(posterior, DenseParams):
        return DENSE[sampling](posterior, x, key)
    strides, padding, dilation = conv if conv is not None else (1, "SAME", 1)
    return CONV2D[sampling](posterior, x, key, strides=strides, padding=padding, dilation=dilation)


def posterior_mean(posterior: DenseParams | Conv2DParams, x, layer: str, conv=None):
    """The layer at its posterior-mean weights (no noise): ``x W̄ + b̄`` or ``x ⋆ K̄ + b̄``."""
    if isinstance(posterior, DenseParams):
        _validation.check_params(posterior, DenseParams, layer)
        x, unbatched = _validation.prepare_input(x, posterior, 1, layer)
        y = _ops.dense(posterior.kernel_loc, posterior.bias_loc, x)
    else:
        _validation.check_params(posterior, Conv2DParams, layer)
        x, unbatched = _validation.prepare_input(x, posterior, 3, layer)
        strides, padding, dilation = conv if conv is not None else (1, "SAME", 1)
        opts = _validation.conv_options(strides, padding, dilation)
        y = _ops.conv2d(posterior.kernel_loc, posterior.bias_loc, x, *opts)
    return y[0] if unbatched else y


def kl_of_layers(posteriors, framework: str, prior, key, num_samples: int):
    """:func:`repgrad.nn.kl_divergence` over the posteriors collected from a model."""
    if not posteriors:
        raise TypeError(
            f"found no repgrad.nn.{framework} Bayesian layers in the model; build it from "
            f"repgrad.nn.{framework}.DenseFlipout, DenseReparameterization, ... (or pass the functional "
            "layers' DenseParams/Conv2DParams to repgrad.nn.kl_divergence)."
        )
    return kl_divergence(list(posteriors), prior, key=key, num_samples=num_samples)
