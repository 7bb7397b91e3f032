"""Bayesian neural-network layers (functional, pure): filled in by the nn work."""
