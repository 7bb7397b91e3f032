"""Diagnostics, one concept per file: ``compare`` (estimators side by side, from values or
registry specs), ``table`` (the ``ComparisonTable`` it returns), ``count`` (evaluations of f
counted from the jaxpr), ``problems`` (Gaussian test problems with exact gradients) and
``variance`` (exact per-sample variances by quadrature). The public names are re-exported
by ``repgrad.diagnostics``."""
