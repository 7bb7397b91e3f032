"""The estimator core, written once: every estimator in ``estimators/`` is built on it."""
