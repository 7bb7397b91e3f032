"""The built-in distribution families, one concept per file.

- ``base``: the ``Distribution`` pytree base class (sampling in at least float32, support
  clipping, the scored draws of score-function estimators) and shared helpers;
- ``validation``: ``validate_args`` — parameter checks at construction, or at run time
  (a host callback that raises) when traced;
- ``normal``: Normal, MultivariateNormalDiag, MultivariateNormalTri, LogNormal;
- ``continuous``: Laplace, Logistic, Uniform, Exponential;
- ``gamma``: Gamma, Beta, Dirichlet (log-space draws, implicit reparameterization);
- ``discrete``: Bernoulli, Categorical, Poisson;
- ``saddle_point``: Poisson and large-concentration Gamma log-densities in Loader's form,
  accurate in float32;
- ``special``: Stirling's error, the digamma remainder and Loader's deviance for entropies and
  KL divergences without cancellation; the Poisson entropy;
- ``kl``: closed-form KL divergences, registered per pair (imported here so that
  ``Distribution.kl_divergence`` finds them), and ``rg.elbo``'s ``closed_form_kl``.

The families are re-exported here for repgrad's own modules; users import them from
``repgrad``.
"""

from . import kl as kl  # registers the closed-form KL divergences (Distribution.kl_divergence)
from .base import Distribution as Distribution
from .base import to_positive_support as to_positive_support
from .continuous import Exponential as Exponential
from .continuous import Laplace as Laplace
from .continuous import Logistic as Logistic
from .continuous import Uniform as Uniform
from .discrete import Bernoulli as Bernoulli
from .discrete import Categorical as Categorical
from .discrete import Poisson as Poisson
from .gamma import Beta as Beta
from .gamma import Dirichlet as Dirichlet
from .gamma import Gamma as Gamma
from .normal import LogNormal as LogNormal
from .normal import MultivariateNormalDiag as MultivariateNormalDiag
from .normal import MultivariateNormalTri as MultivariateNormalTri
from .normal import Normal as Normal
