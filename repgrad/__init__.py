"""repgrad: Monte Carlo gradient estimators as JAX function transforms.

The public surface is listed in ``__all__``; implementation lives in private modules.
"""

from . import _discrete_registry as _discrete_registry  # registers expectation(estimator=...) names
from . import diagnostics as diagnostics
from . import nn as nn
from ._arm import arm_grad as arm_grad
from ._arm import arm_value_and_grad as arm_value_and_grad
from ._arm import disarm_grad as disarm_grad
from ._arm import disarm_value_and_grad as disarm_value_and_grad
from ._control_variates import Baseline as Baseline
from ._control_variates import ControlVariate as ControlVariate
from ._control_variates import MovingAverageState as MovingAverageState
from ._control_variates import OptimalBaseline as OptimalBaseline
from ._control_variates import control_variate as control_variate
from ._control_variates import leave_one_out_baseline as leave_one_out_baseline
from ._control_variates import moving_average_baseline as moving_average_baseline
from ._control_variates import no_baseline as no_baseline
from ._control_variates import optimal_baseline as optimal_baseline
from ._delta import delta_method as delta_method
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
from ._elbo_estimators import elbo as elbo
from ._elbo_estimators import iwae_bound as iwae_bound
from ._enumeration import enumeration_grad as enumeration_grad
from ._enumeration import enumeration_value_and_grad as enumeration_value_and_grad
from ._expectation import ESTIMATORS as ESTIMATORS
from ._expectation import expectation as expectation
from ._measure_valued import measure_valued_grad as measure_valued_grad
from ._measure_valued import measure_valued_value_and_grad as measure_valued_value_and_grad
from ._multisample import disarm_multisample_grad as disarm_multisample_grad
from ._multisample import disarm_multisample_value_and_grad as disarm_multisample_value_and_grad
from ._multisample import vimco_grad as vimco_grad
from ._multisample import vimco_value_and_grad as vimco_value_and_grad
from ._pathwise import pathwise_grad as pathwise_grad
from ._pathwise import pathwise_value_and_grad as pathwise_value_and_grad
from ._rebar import rebar_control as rebar_control
from ._rebar import rebar_grad as rebar_grad
from ._rebar import rebar_init as rebar_init
from ._rebar import rebar_value_and_grad as rebar_value_and_grad
from ._rebar import relax_grad as relax_grad
from ._rebar import relax_value_and_grad as relax_value_and_grad
from ._relaxed import gumbel_softmax_grad as gumbel_softmax_grad
from ._relaxed import gumbel_softmax_value_and_grad as gumbel_softmax_value_and_grad
from ._score import score_grad as score_grad
from ._score import score_value_and_grad as score_value_and_grad

__version__ = "0.1.0"

__all__ = [
    "Baseline",
    "Bernoulli",
    "Beta",
    "Categorical",
    "ControlVariate",
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
    "OptimalBaseline",
    "Poisson",
    "Uniform",
    "arm_grad",
    "arm_value_and_grad",
    "control_variate",
    "delta_method",
    "diagnostics",
    "disarm_grad",
    "disarm_multisample_grad",
    "disarm_multisample_value_and_grad",
    "disarm_value_and_grad",
    "elbo",
    "enumeration_grad",
    "enumeration_value_and_grad",
    "expectation",
    "gumbel_softmax_grad",
    "gumbel_softmax_value_and_grad",
    "iwae_bound",
    "leave_one_out_baseline",
    "measure_valued_grad",
    "measure_valued_value_and_grad",
    "moving_average_baseline",
    "nn",
    "no_baseline",
    "optimal_baseline",
    "pathwise_grad",
    "pathwise_value_and_grad",
    "rebar_control",
    "rebar_grad",
    "rebar_init",
    "rebar_value_and_grad",
    "relax_grad",
    "relax_value_and_grad",
    "score_grad",
    "score_value_and_grad",
    "vimco_grad",
    "vimco_value_and_grad",
]
