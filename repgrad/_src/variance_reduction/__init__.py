"""Variance reduction that composes with the estimators: baselines (score function) and
control variates (every estimator, through ``with_control_variate``)."""
