"""repgrad's implementation. Nothing here is public API: import names from ``repgrad``.

Layout (one concept per file):

- ``core/``: what every estimator shares — checks, the distribution protocol, drawing and
  sharding samples, evaluating f, the surrogate kernels, the ``Estimator`` protocol, the
  transforms built on it and the registry of estimator names.
- ``estimators/``: one file per estimator, each only its own math.
- ``variance_reduction/``: baselines and control variates, usable with every estimator.
- ``objectives/``: variational bounds (ELBO, IWAE) with their dedicated estimators.
- ``distributions/``: built-in families.
- ``diagnostics/``: side-by-side comparison of estimators.
"""
