"""Variational bounds as surrogates: the ELBO (pathwise or sticking-the-landing, with an
analytic or Monte Carlo KL) and the importance-weighted bound (pathwise, STL, DReG)."""
