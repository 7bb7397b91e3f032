"""Placing the sample axis across devices: one ``with_sharding_constraint``, checked at trace time."""

from __future__ import annotations

import jax


def shard_samples(x, sharding):
    """Places the leading (sample) axis of ``x`` with ``sharding``, if one is given.

    Checked at trace time, because XLA would otherwise quietly replicate the samples
    (indivisible count) or refuse the constraint deep inside (Explicit mesh axes).
    """
    if sharding is None:
        return x
    check_sharding(sharding)

    def place(a):
        try:
            sharding.shard_shape(a.shape)
        except ValueError as e:
            raise ValueError(
                f"num_samples={a.shape[0]} cannot be split evenly by sample_sharding ({e}). Use a "
                "multiple of the number of devices on the sample axis."
            ) from None
        return jax.lax.with_sharding_constraint(a, sharding)

    return jax.tree_util.tree_map(place, x)


def check_sharding(sharding):
    """``None`` or a ``jax.sharding.Sharding`` whose mesh axes ``with_sharding_constraint`` can use."""
    if sharding is None:
        return None
    if not isinstance(sharding, jax.sharding.Sharding):
        raise TypeError(
            f"sample_sharding must be a jax.sharding.Sharding, got {type(sharding).__name__}; e.g. "
            "NamedSharding(mesh, PartitionSpec('samples'))."
        )
    mesh = getattr(sharding, "mesh", None)
    axis_types = getattr(mesh, "axis_types", ())
    if any(str(t).endswith("Explicit") for t in axis_types):
        raise ValueError(
            "sample_sharding uses a mesh with Explicit axes, which with_sharding_constraint cannot "
            "use; build the mesh with Auto axes: jax.make_mesh(shape, names, "
            "axis_types=(jax.sharding.AxisType.Auto,) * len(names))."
        )
    return sharding
