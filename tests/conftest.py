"""Strict test configuration (as equinox/lineax): rank promotion raises, dtype
promotion is strict, warnings are errors (pyproject), 8 host CPU devices."""

import os

# Must be set before jax initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("REPGRAD_SMALL", "1")  # notebooks and scripts run small settings

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(0)
