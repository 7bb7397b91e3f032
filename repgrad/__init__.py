"""repgrad: Monte Carlo gradient estimators as JAX function transforms."""

from ._control_variates import Baseline as Baseline
from ._control_variates import MovingAverageState as MovingAverageState
from ._control_variates import leave_one_out_baseline as leave_one_out_baseline
from ._control_variates import moving_average_baseline as moving_average_baseline
from ._control_variates import no_baseline as no_baseline
from ._distributions import Bernoulli as Bernoulli
from ._distributions import Beta as Beta
from ._distributions import Categorical as Categorical
from ._distributions import Dirichlet as Dirichlet
from ._distributions import Distribution as Distribution
from ._distributions import Exponential as Exponential
from ._distributions import Gamma as Gamma
from ._distributions import Laplace as Laplace
from ._distributions import Logistic as Logistic
from ._distributions import LogNormal as LogNormal
from ._distributions import MultivariateNormalDiag as MultivariateNormalDiag
from ._distributions import MultivariateNormalTri as MultivariateNormalTri
from ._distributions import Normal as Normal
from ._distributions import Poisson as Poisson
from ._distributions import Uniform as Uniform
from ._expectation import ESTIMATORS as ESTIMATORS
from ._expectation import expectation as expectation
from ._measure_valued import measure_valued_grad as measure_valued_grad
from ._measure_valued import measure_valued_value_and_grad as measure_valued_value_and_grad
from ._pathwise import pathwise_grad as pathwise_grad
from ._pathwise import pathwise_value_and_grad as pathwise_value_and_grad
from ._score import score_grad as score_grad
from ._score import score_value_and_grad as score_value_and_grad

# --- control variates, diagnostics (issue 4): add imports below this line
# --- end issue 4
# --- discrete estimators (issue 5): add imports below this line
# --- end issue 5
from . import nn as nn

__version__ = "0.1.0"

__all__ = [
    "Baseline",
    "Bernoulli",
    "Beta",
    "Categorical",
    "Dirichlet",
    "Distribution",
    "ESTIMATORS",
    "Exponential",
    "Gamma",
    "Laplace",
    "LogNormal",
    "Logistic",
    "MovingAverageState",
    "MultivariateNormalDiag",
    "MultivariateNormalTri",
    "Normal",
    "Poisson",
    "Uniform",
    "expectation",
    "leave_one_out_baseline",
    "measure_valued_grad",
    "measure_valued_value_and_grad",
    "moving_average_baseline",
    "no_baseline",
    "pathwise_grad",
    "pathwise_value_and_grad",
    "score_grad",
    "score_value_and_grad",
    # --- issue 4 names below this line
    # --- end issue 4
    # --- issue 5 names below this line
    # --- end issue 5
    "nn",
]
