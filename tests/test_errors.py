"""Bad input raises TypeError/ValueError whose message names the fix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import repgrad as rg

KEY = jax.random.key(0)
F = lambda x: jnp.sum(x * x)
NORMAL = lambda p: rg.Normal(p["loc"], p["scale"])
PARAMS = {"loc": jnp.zeros(2), "scale": jnp.ones(2)}


@pytest.mark.parametrize(
    "dist, params",
    [
        (lambda p: rg.Bernoulli(logits=p), jnp.zeros(3)),
        (lambda p: rg.Categorical(logits=p), jnp.zeros(3)),
        (rg.Poisson, jnp.ones(3)),
    ],
    ids=["bernoulli", "categorical", "poisson"],
)
def test_pathwise_on_discrete(dist, params):
    f = lambda x: jnp.sum(x.astype(jnp.float32))
    with pytest.raises(TypeError, match="score_grad"):
        rg.pathwise_grad(f, dist, num_samples=4)(params, KEY)
    with pytest.raises(TypeError, match="score_grad"):
        jax.jit(rg.pathwise_grad(f, dist, num_samples=4))(params, KEY)  # at trace time
    with pytest.raises(TypeError, match="score_grad"):
        jax.grad(rg.expectation(f, dist, estimator="pathwise", num_samples=4))(params, KEY)


@pytest.mark.parametrize("transform", [rg.pathwise_grad, rg.score_grad, rg.measure_valued_grad])
def test_num_samples(transform):
    with pytest.raises(ValueError, match="num_samples=16"):
        transform(F, NORMAL, num_samples=0)
    with pytest.raises(TypeError, match="static value"):
        transform(F, NORMAL, num_samples=4.0)
    with pytest.raises(TypeError, match="static value"):
        transform(F, NORMAL, num_samples=True)
    with pytest.raises(TypeError, match="static value"):
        transform(F, NORMAL, num_samples=jnp.float32(3))
    transform(F, NORMAL, num_samples=np.int64(3))  # integer-likes are fine
    with pytest.raises(ValueError, match="num_samples"):
        rg.expectation(F, NORMAL, num_samples=-1)


def test_loo_needs_two_samples():
    with pytest.raises(ValueError, match="loo baseline"):
        rg.score_grad(F, NORMAL, num_samples=1, baseline="loo")
    with pytest.raises(ValueError, match="loo baseline"):
        rg.expectation(F, NORMAL, estimator="score", num_samples=1, baseline="loo")


@pytest.mark.parametrize(
    "bad_key",
    [0, 1.5, jnp.zeros(2), jnp.zeros(2, jnp.int32), jnp.zeros(3, jnp.uint32), jax.random.split(KEY, 2)],
    ids=["int", "float", "float-array", "int-array", "uint32-bad-shape", "batch-of-keys"],
)
@pytest.mark.parametrize("transform", [rg.pathwise_grad, rg.score_grad, rg.measure_valued_grad])
def test_bad_key(transform, bad_key):
    with pytest.raises(TypeError, match=r"jax\.random\.key"):
        transform(F, NORMAL, num_samples=4)(PARAMS, bad_key)


def test_swapped_params_and_key():
    with pytest.raises(TypeError, match=r"jax\.random\.key.*\(params, key, \*args\)"):
        rg.pathwise_grad(F, NORMAL, num_samples=4)(KEY, PARAMS)
    with pytest.raises(TypeError, match=r"jax\.random\.key"):
        rg.expectation(F, NORMAL, num_samples=4)(KEY, PARAMS)
    with pytest.raises(TypeError, match=r"jax\.random\.key"):
        jax.jit(rg.score_grad(F, NORMAL, num_samples=4))(KEY, PARAMS)


def test_legacy_raw_keys_accepted():
    g = rg.pathwise_grad(F, NORMAL, num_samples=4)(PARAMS, jax.random.PRNGKey(0))
    assert g["loc"].shape == (2,)


@pytest.mark.parametrize("transform", [rg.pathwise_grad, rg.score_grad, rg.measure_valued_grad])
def test_non_scalar_f(transform):
    with pytest.raises(TypeError, match=r"jnp\.sum"):
        transform(lambda x: x * x, NORMAL, num_samples=4)(PARAMS, KEY)


def test_integer_f():
    with pytest.raises(TypeError, match="astype"):
        rg.score_grad(lambda x: jnp.sum(x), lambda p: rg.Categorical(logits=p), num_samples=4)(
            jnp.zeros(3), KEY
        )


@pytest.mark.parametrize(
    "params",
    [{"mean": jnp.zeros(2), "scale": jnp.ones(2)}, (jnp.zeros(2), jnp.ones(2)), jnp.zeros(2)],
    ids=["wrong-key", "tuple", "array"],
)
def test_params_structure(params):
    with pytest.raises(TypeError, match="structure"):
        rg.pathwise_grad(F, NORMAL, num_samples=4)(params, KEY)


def test_family_class_as_dist_with_wrong_params():
    with pytest.raises(TypeError, match="structure"):
        rg.pathwise_grad(F, rg.Normal, num_samples=4)({"mean": 0.0, "scale": 1.0}, KEY)


def test_tracing_errors_inside_dist_are_not_relabelled():
    # A ConcretizationTypeError is a bug in dist, not a params-structure problem.
    def dist(p):
        if p["loc"][0] > 0:  # Python control flow on a traced value
            return rg.Normal(p["loc"], p["scale"])
        return rg.Normal(p["loc"], 2.0 * p["scale"])

    with pytest.raises(jax.errors.ConcretizationTypeError):
        jax.jit(rg.pathwise_grad(F, dist, num_samples=4))(PARAMS, KEY)


def test_dist_not_callable_or_not_a_distribution():
    with pytest.raises(TypeError, match="callable"):
        rg.pathwise_grad(F, rg.Normal(0.0, 1.0), num_samples=4)(PARAMS, KEY)
    with pytest.raises(TypeError, match="sample/log_prob"):
        rg.score_grad(F, lambda p: p["loc"], num_samples=4)(PARAMS, KEY)


def test_has_aux_mismatch():
    with pytest.raises(TypeError, match="has_aux=True"):
        rg.pathwise_grad(lambda x: (jnp.sum(x), x), NORMAL, num_samples=4)(PARAMS, KEY)
    with pytest.raises(TypeError, match=r"value, aux"):
        rg.score_grad(F, NORMAL, num_samples=4, has_aux=True)(PARAMS, KEY)
    with pytest.raises(TypeError, match="True or False"):
        rg.pathwise_grad(F, NORMAL, num_samples=4, has_aux=1)


def test_stateful_baseline_state():
    fn = rg.score_grad(F, NORMAL, num_samples=4, baseline="moving_average")
    with pytest.raises(TypeError, match=r"baseline_state=state.*init_state\(\)"):
        fn(PARAMS, KEY)
    loss = rg.expectation(F, NORMAL, estimator="score", num_samples=4, baseline="moving_average")
    with pytest.raises(TypeError, match="baseline_state"):
        loss(PARAMS, KEY)
    with pytest.raises(TypeError, match=r"init_state\(\)"):
        fn(PARAMS, KEY, baseline_state=None)
    with pytest.raises(TypeError, match="drop it"):
        rg.score_grad(F, NORMAL, num_samples=4)(PARAMS, KEY, baseline_state=fn.init_state())
    with pytest.raises(TypeError, match="positionally"):
        rg.pathwise_grad(F, NORMAL, num_samples=4)(PARAMS, KEY, c=1.0)


def test_expectation_option_of_another_estimator():
    with pytest.raises(TypeError, match=r"'pathwise' accepts \[.*control_variate"):
        rg.expectation(F, NORMAL, estimator="pathwise", num_samples=4, baseline="loo")
    with pytest.raises(TypeError, match="'measure_valued' accepts"):
        rg.expectation(F, NORMAL, estimator="measure_valued", num_samples=4, baseline="loo")


def test_unknown_baseline_and_estimator():
    with pytest.raises(ValueError, match="'loo'"):
        rg.score_grad(F, NORMAL, num_samples=4, baseline="mean")
    with pytest.raises(ValueError, match="choose one of"):
        rg.expectation(F, NORMAL, estimator="magic", num_samples=4)
    with pytest.raises(ValueError, match="decay"):
        rg.moving_average_baseline(1.5)


class _ProtocolNormal:
    """A third-party (distrax-protocol) distribution: no weak-derivative decomposition."""

    def __init__(self, loc):
        self.loc = loc

    def sample(self, *, seed, sample_shape=()):
        shape = tuple(sample_shape) + self.loc.shape
        return jax.random.normal(seed, shape) + jnp.broadcast_to(self.loc, shape)

    def log_prob(self, x):
        x, loc = jnp.broadcast_arrays(x, self.loc)
        return -0.5 * (x - loc) ** 2


def test_measure_valued_unsupported_family():
    for dist in (_ProtocolNormal, lambda p: rg.Laplace(p, 1.0)):
        with pytest.raises(TypeError, match="pathwise_grad or repgrad.score_grad"):
            rg.measure_valued_grad(lambda x: jnp.sum(x), dist, num_samples=4)(jnp.ones(2), KEY)


def test_distribution_constructor_errors():
    with pytest.raises(ValueError, match="exactly one of logits= or probs="):
        rg.Bernoulli()
    with pytest.raises(ValueError, match="exactly one of logits= or probs="):
        rg.Categorical(logits=jnp.zeros(2), probs=jnp.ones(2) / 2)
    with pytest.raises(ValueError, match="at least one axis"):
        rg.Dirichlet(1.0)
    with pytest.raises(ValueError, match="at least one axis"):
        rg.Categorical(logits=0.0)
    with pytest.raises(ValueError, match="scale_tri of shape"):
        rg.MultivariateNormalTri(jnp.zeros(3), jnp.eye(2))
    with pytest.raises(AttributeError, match="immutable"):
        rg.Normal(0.0, 1.0).loc = 2.0


def test_sample_sharding_errors_name_the_fix():
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    explicit = jax.make_mesh((8,), ("s",), axis_types=(AxisType.Explicit,))
    with pytest.raises(ValueError, match=r"AxisType\.Auto"):
        rg.pathwise_grad(F, NORMAL, num_samples=8, sample_sharding=NamedSharding(explicit, P("s")))(PARAMS, KEY)
    auto = jax.make_mesh((8,), ("s",), axis_types=(AxisType.Auto,))
    with pytest.raises(ValueError, match="multiple of the number of devices"):
        rg.score_grad(F, NORMAL, num_samples=12, sample_sharding=NamedSharding(auto, P("s")))(PARAMS, KEY)
    with pytest.raises(TypeError, match="jax.sharding.Sharding"):
        rg.pathwise_grad(F, NORMAL, num_samples=8, sample_sharding="s")(PARAMS, KEY)


def test_structurally_zero_pathwise_gradient_raises():
    step = lambda x: jnp.sum((x > 0).astype(jnp.float32))
    with pytest.raises(rg.ZeroGradientError, match="score_grad"):
        rg.pathwise_grad(step, NORMAL, num_samples=16)(PARAMS, KEY)
    with pytest.raises(rg.ZeroGradientError, match="measure_valued_grad"):
        jax.jit(jax.grad(rg.expectation(step, NORMAL, num_samples=16)))(PARAMS, KEY)
    with pytest.raises(rg.ZeroGradientError):
        jax.jacfwd(rg.expectation(step, NORMAL, num_samples=16))(PARAMS, KEY)

    class Frozen:  # a duck-typed distribution whose sampler carries no gradient
        def __init__(self, loc):
            self.loc = loc

        def sample(self, seed, sample_shape=()):
            shape = sample_shape + jnp.shape(self.loc)
            return jax.lax.stop_gradient(jnp.broadcast_to(self.loc, shape) + jax.random.normal(seed, shape))

        def log_prob(self, x):
            return -0.5 * (x - self.loc) ** 2

    with pytest.raises(rg.ZeroGradientError, match="sampler carries no"):
        rg.pathwise_grad(F, Frozen, num_samples=4)(jnp.zeros(2), KEY)
    # The right estimators for a step function work, and an f that truly ignores x can opt out.
    g = rg.score_grad(step, NORMAL, num_samples=64, baseline="loo")(PARAMS, KEY)
    assert np.all(np.isfinite(g["loc"]))
    const = rg.grad(lambda x: jnp.float32(1.0), NORMAL, rg.pathwise(allow_zero_gradient=True), num_samples=4)
    assert np.all(const(PARAMS, KEY)["loc"] == 0.0)
    # A gradient w.r.t. f's own arguments alone is not a pathwise gradient: no error.
    loss = rg.expectation(lambda x, w: w * step(x), NORMAL, num_samples=4)
    assert np.isfinite(jax.grad(loss, argnums=2)(PARAMS, KEY, jnp.float32(1.0)))


@pytest.mark.parametrize(
    "f, match",
    [
        (lambda x: {"loss": jnp.sum(x)}, "dict with keys"),
        (lambda x: None, "forget a return"),
        (lambda x: [jnp.sum(x)], "list of length 1"),
    ],
    ids=["dict", "none", "list"],
)
def test_f_returning_a_non_scalar_object(f, match):
    with pytest.raises(TypeError, match=match):
        rg.pathwise_grad(f, NORMAL, num_samples=4)(PARAMS, KEY)


def test_dist_returning_a_class_or_an_array():
    with pytest.raises(TypeError, match=r"class Normal itself.*repgrad\.Normal\("):
        rg.pathwise_grad(F, lambda p: rg.Normal, num_samples=4)(PARAMS, KEY)
    with pytest.raises(TypeError, match="returned an array of shape"):
        rg.pathwise_grad(F, lambda p: p["loc"] + p["scale"], num_samples=4)(PARAMS, KEY)
    with pytest.raises(TypeError, match="returned an array of shape"):
        jax.jit(rg.score_grad(F, lambda p: p["loc"], num_samples=4))(PARAMS, KEY)


def test_measure_valued_on_another_librarys_family_says_so():
    numpyro_dist = pytest.importorskip("numpyro.distributions")
    with pytest.raises(TypeError, match=r"another library's object.*repgrad\.Normal\(loc, scale\)"):
        rg.measure_valued_grad(F, lambda p: numpyro_dist.Normal(p["loc"], p["scale"]), num_samples=4)(PARAMS, KEY)
