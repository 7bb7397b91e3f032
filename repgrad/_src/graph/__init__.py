"""Stochastic computation graphs: several stochastic nodes, each with its own estimator,
nested expectations, and score terms weighted only by the costs downstream of them."""
