"""repgrad: Monte Carlo gradient estimators as JAX function transforms.

An estimator is a value (``rg.pathwise()``, ``rg.score(baseline="loo")``,
``rg.measure_valued()``, ``rg.disarm()``, ...) taken by one family of transforms:
``rg.grad``, ``rg.value_and_grad`` and the surrogate ``rg.expectation``. The named
transforms ``pathwise_grad``, ``score_grad``, ... are aliases of those. The public surface
is listed in ``__all__``; the implementation lives in ``repgrad._src``.
"""

from . import diagnostics as diagnostics
from . import nn as nn
from ._src.aliases import arm_grad as arm_grad
from ._src.aliases import arm_value_and_grad as arm_value_and_grad
from ._src.aliases import disarm_grad as disarm_grad
from ._src.aliases import disarm_multisample_grad as disarm_multisample_grad
from ._src.aliases import disarm_multisample_value_and_grad as disarm_multisample_value_and_grad
from ._src.aliases import disarm_value_and_grad as disarm_value_and_grad
from ._src.aliases import double_cv_grad as double_cv_grad
from ._src.aliases import double_cv_value_and_grad as double_cv_value_and_grad
from ._src.aliases import enumeration_grad as enumeration_grad
from ._src.aliases import enumeration_value_and_grad as enumeration_value_and_grad
from ._src.aliases import gumbel_rao_grad as gumbel_rao_grad
from ._src.aliases import gumbel_rao_value_and_grad as gumbel_rao_value_and_grad
from ._src.aliases import gumbel_softmax_grad as gumbel_softmax_grad
from ._src.aliases import gumbel_softmax_value_and_grad as gumbel_softmax_value_and_grad
from ._src.aliases import indecater_grad as indecater_grad
from ._src.aliases import indecater_value_and_grad as indecater_value_and_grad
from ._src.aliases import measure_valued_grad as measure_valued_grad
from ._src.aliases import measure_valued_value_and_grad as measure_valued_value_and_grad
from ._src.aliases import pathwise_grad as pathwise_grad
from ._src.aliases import pathwise_value_and_grad as pathwise_value_and_grad
from ._src.aliases import rao_blackwell_grad as rao_blackwell_grad
from ._src.aliases import rao_blackwell_value_and_grad as rao_blackwell_value_and_grad
from ._src.aliases import rebar_grad as rebar_grad
from ._src.aliases import rebar_value_and_grad as rebar_value_and_grad
from ._src.aliases import relax_grad as relax_grad
from ._src.aliases import relax_value_and_grad as relax_value_and_grad
from ._src.aliases import rodeo_grad as rodeo_grad
from ._src.aliases import rodeo_value_and_grad as rodeo_value_and_grad
from ._src.aliases import score_grad as score_grad
from ._src.aliases import score_value_and_grad as score_value_and_grad
from ._src.aliases import unordered_set_grad as unordered_set_grad
from ._src.aliases import unordered_set_value_and_grad as unordered_set_value_and_grad
from ._src.aliases import vimco_grad as vimco_grad
from ._src.aliases import vimco_value_and_grad as vimco_value_and_grad
from ._src.api import expectation as expectation
from ._src.api import grad as grad
from ._src.api import value_and_grad as value_and_grad
from ._src.core.estimator import Estimator as Estimator
from ._src.core.kernels import DerivativeOrderError as DerivativeOrderError
from ._src.core.kernels import ZeroGradientError as ZeroGradientError
from ._src.core.kernels import magic_box as magic_box
from ._src.distributions.base import Distribution as Distribution
from ._src.distributions.continuous import Exponential as Exponential
from ._src.distributions.continuous import Laplace as Laplace
from ._src.distributions.continuous import Logistic as Logistic
from ._src.distributions.continuous import Uniform as Uniform
from ._src.distributions.discrete import Bernoulli as Bernoulli
from ._src.distributions.discrete import Categorical as Categorical
from ._src.distributions.discrete import Poisson as Poisson
from ._src.distributions.gamma import Beta as Beta
from ._src.distributions.gamma import Dirichlet as Dirichlet
from ._src.distributions.gamma import Gamma as Gamma
from ._src.distributions.normal import LogNormal as LogNormal
from ._src.distributions.normal import MultivariateNormalDiag as MultivariateNormalDiag
from ._src.distributions.normal import MultivariateNormalTri as MultivariateNormalTri
from ._src.distributions.normal import Normal as Normal
from ._src.estimators.arm import arm as arm
from ._src.estimators.disarm import disarm as disarm
from ._src.estimators.disarm_multisample import disarm_multisample as disarm_multisample
from ._src.estimators.double_cv import double_cv as double_cv
from ._src.estimators.double_cv import double_cv_init as double_cv_init
from ._src.estimators.enumeration import enumeration as enumeration
from ._src.estimators.gumbel_rao import gumbel_rao as gumbel_rao
from ._src.estimators.gumbel_softmax import gumbel_softmax as gumbel_softmax
from ._src.estimators.gumbel_softmax import straight_through as straight_through
from ._src.estimators.indecater import indecater as indecater
from ._src.estimators.measure_valued import measure_valued as measure_valued
from ._src.estimators.pathwise import pathwise as pathwise
from ._src.estimators.rao_blackwell import rao_blackwell as rao_blackwell
from ._src.estimators.rebar import rebar as rebar
from ._src.estimators.rebar import rebar_control as rebar_control
from ._src.estimators.rebar import rebar_init as rebar_init
from ._src.estimators.relax import relax as relax
from ._src.estimators.rodeo import rodeo as rodeo
from ._src.estimators.rodeo import rodeo_init as rodeo_init
from ._src.estimators.score import score as score
from ._src.estimators.unordered_set import unordered_set as unordered_set
from ._src.estimators.vimco import vimco as vimco
from ._src.graph.dice import dice as dice
from ._src.graph.stochastic import cost as cost
from ._src.graph.stochastic import sample as sample
from ._src.graph.stochastic import stochastic as stochastic
from ._src.objectives.elbo import elbo as elbo
from ._src.objectives.iwae import iwae_bound as iwae_bound
from ._src.registry import ESTIMATORS as ESTIMATORS
from ._src.selection.select import Selection as Selection
from ._src.selection.select import select_estimator as select_estimator
from ._src.variance_reduction.baselines import Baseline as Baseline
from ._src.variance_reduction.baselines import MovingAverageState as MovingAverageState
from ._src.variance_reduction.baselines import OptimalBaseline as OptimalBaseline
from ._src.variance_reduction.baselines import leave_one_out_baseline as leave_one_out_baseline
from ._src.variance_reduction.baselines import moving_average_baseline as moving_average_baseline
from ._src.variance_reduction.baselines import no_baseline as no_baseline
from ._src.variance_reduction.baselines import optimal_baseline as optimal_baseline
from ._src.variance_reduction.compose import with_control_variate as with_control_variate
from ._src.variance_reduction.control_variates import ControlVariate as ControlVariate
from ._src.variance_reduction.control_variates import control_variate as control_variate
from ._src.variance_reduction.delta import delta_method as delta_method

__version__ = "0.1.0"


def __getattr__(name):
    # repgrad.numpyro (the SVI adapter) imports numpyro, so it loads on first use only.
    if name == "numpyro":
        import importlib

        return importlib.import_module(f"{__name__}.numpyro")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Baseline",
    "Bernoulli",
    "Beta",
    "Categorical",
    "ControlVariate",
    "DerivativeOrderError",
    "Dirichlet",
    "Distribution",
    "ESTIMATORS",
    "Estimator",
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
    "Selection",
    "ZeroGradientError",
    "arm",
    "arm_grad",
    "arm_value_and_grad",
    "control_variate",
    "cost",
    "delta_method",
    "diagnostics",
    "dice",
    "disarm",
    "disarm_grad",
    "disarm_multisample",
    "disarm_multisample_grad",
    "disarm_multisample_value_and_grad",
    "disarm_value_and_grad",
    "double_cv",
    "double_cv_grad",
    "double_cv_init",
    "double_cv_value_and_grad",
    "elbo",
    "enumeration",
    "enumeration_grad",
    "enumeration_value_and_grad",
    "expectation",
    "grad",
    "gumbel_rao",
    "gumbel_rao_grad",
    "gumbel_rao_value_and_grad",
    "gumbel_softmax",
    "gumbel_softmax_grad",
    "gumbel_softmax_value_and_grad",
    "indecater",
    "indecater_grad",
    "indecater_value_and_grad",
    "iwae_bound",
    "leave_one_out_baseline",
    "magic_box",
    "measure_valued",
    "measure_valued_grad",
    "measure_valued_value_and_grad",
    "moving_average_baseline",
    "nn",
    "no_baseline",
    "optimal_baseline",
    "pathwise",
    "pathwise_grad",
    "pathwise_value_and_grad",
    "rao_blackwell",
    "rao_blackwell_grad",
    "rao_blackwell_value_and_grad",
    "rebar",
    "rebar_control",
    "rebar_grad",
    "rebar_init",
    "rebar_value_and_grad",
    "relax",
    "relax_grad",
    "relax_value_and_grad",
    "rodeo",
    "rodeo_grad",
    "rodeo_init",
    "rodeo_value_and_grad",
    "sample",
    "score",
    "score_grad",
    "score_value_and_grad",
    "select_estimator",
    "stochastic",
    "straight_through",
    "unordered_set",
    "unordered_set_grad",
    "unordered_set_value_and_grad",
    "value_and_grad",
    "vimco",
    "vimco_grad",
    "vimco_value_and_grad",
    "with_control_variate",
]
