"""One file per estimator: each supplies only its own math (how it samples, its gradient
term) and its docstring (formula, bias, reference), as an ``Estimator`` value."""
