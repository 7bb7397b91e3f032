"""Estimator selection, above ``diagnostics`` and built on it (never the other way round):
``candidates`` (the candidate set, from the registry of estimators) and ``select``
(``select_estimator``: a pilot run that picks the lowest variance × time)."""
