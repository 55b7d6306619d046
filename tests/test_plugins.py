"""Pluggable priors and likelihoods: a registry name, ``module.path:Class`` or ``file.py:Class`` outside
the package, options as a dict, JSON or ``key=value``, and an error that names the argument for every
mistake."""

import textwrap

import pytest

from pyrodps.errors import ValidationError
from pyrodps.models.likelihoods import (
    LIKELIHOODS,
    Categorical,
    Gaussian,
    Likelihood,
    make_likelihood,
)
from pyrodps.models.priors import (
    THETA_PRIORS,
    WEIGHT_PRIORS,
    BetaWeight,
    CalibratedGaussian,
    FanInGaussian,
    IsotropicGaussian,
    ThetaPrior,
    TruncatedGaussianWeight,
    UniformWeight,
    WeightPrior,
    calibrated_scale,
    make_theta_prior,
    make_weight_prior,
)
from pyrodps.plugins import build, load_class, parse_kwargs

PLUGIN = textwrap.dedent(
    '''
    import pyro.distributions as dist
    from pyrodps.models.priors import WeightPrior

    class KumaraswamyWeight(WeightPrior):
        """p(w) = Kumaraswamy(a, b), only distribution() given."""
        def __init__(self, a=2.0, b=2.0):
            if a <= 0:
                raise ValueError("a must be > 0")
            self.a, self.b = a, b
        def distribution(self):
            return dist.Kumaraswamy(self.a, self.b)

    class NotAPrior:
        pass

    CONSTANT = 3
    '''
)


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "my_priors.py"
    path.write_text(PLUGIN)
    return path


def error(fn, *args, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as e:
        fn(*args, **kwargs)
    return e.value


# ----------------------------------------------------------------------------- resolving a spec
def test_registry_names():
    assert load_class("beta", WEIGHT_PRIORS, WeightPrior, "weight_prior") is BetaWeight
    assert isinstance(make_weight_prior("uniform"), UniformWeight)
    prior = make_weight_prior("truncated-gaussian", beta=0.2, sigma=0.1)
    assert isinstance(prior, TruncatedGaussianWeight) and (prior.beta, prior.sigma) == (0.2, 0.1)
    assert isinstance(make_theta_prior("fan-in", rho_theta=1.0, num_train=10, gain=2.0), FanInGaussian)
    assert set(LIKELIHOODS) == {"categorical", "gaussian", "token-sequence"}
    assert isinstance(make_likelihood("gaussian", scale=0.5), Gaussian)


def test_module_path():
    prior = make_weight_prior("pyrodps.models.priors:BetaWeight", a=2.0, b=3.0)
    assert isinstance(prior, BetaWeight) and (prior.a, prior.b) == (2.0, 3.0)
    assert load_class("pyrodps.models.likelihoods:Gaussian", LIKELIHOODS, Likelihood, "likelihood") is Gaussian
    assert isinstance(make_theta_prior("pyrodps.models.priors:IsotropicGaussian", rho_theta=1.0, num_train=1,
                                       scale=0.3), IsotropicGaussian)


def test_file_outside_the_package(plugin_file, tmp_path, monkeypatch):
    prior = make_weight_prior(f"{plugin_file}:KumaraswamyWeight", a=3.0)
    assert type(prior).__name__ == "KumaraswamyWeight" and isinstance(prior, WeightPrior)
    assert (prior.a, prior.b) == (3.0, 2.0)
    # a relative path is resolved from the current directory; the module is imported once
    monkeypatch.chdir(tmp_path)
    cls = load_class("my_priors.py:KumaraswamyWeight", WEIGHT_PRIORS, WeightPrior, "weight_prior")
    assert cls is type(prior)
    assert "my_priors" not in __import__("sys").modules  # imported under a unique name, not as my_priors


def test_file_reloads_when_changed(plugin_file):
    first = load_class(f"{plugin_file}:KumaraswamyWeight", WEIGHT_PRIORS, WeightPrior, "weight_prior")
    import os

    plugin_file.write_text(PLUGIN + "\nEXTRA = 1\n")
    st = plugin_file.stat()
    os.utime(plugin_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = load_class(f"{plugin_file}:KumaraswamyWeight", WEIGHT_PRIORS, WeightPrior, "weight_prior")
    assert second is not first and __import__("sys").modules[second.__module__].EXTRA == 1


def test_a_class_passes_through():
    assert isinstance(make_weight_prior(BetaWeight, a=2.0), BetaWeight)


def test_calibrated_prior_receives_rho_theta_and_num_train():
    prior = make_theta_prior("calibrated", rho_theta=80.0, num_train=1000, weight_decay=5e-4)
    assert isinstance(prior, CalibratedGaussian) and isinstance(prior, IsotropicGaussian)
    assert prior.scale == pytest.approx(calibrated_scale(5e-4, 80.0, 1000))
    assert THETA_PRIORS["calibrated"] is CalibratedGaussian
    # the injected values go only to a constructor that names them
    assert isinstance(make_theta_prior("isotropic", rho_theta=80.0, num_train=1000), IsotropicGaussian)
    e = error(make_theta_prior, "calibrated", rho_theta=1.0, num_train=1, num_train_=3)
    assert e.argument == "theta_prior_kwargs" and "weight_decay" in str(e) and "rho_theta" not in str(e)


def test_build_injects_only_accepted_keywords():
    class Plain(ThetaPrior):
        def __init__(self, scale=1.0):
            self.scale = scale

        def distribution(self, layout):
            raise NotImplementedError

    class Wants(Plain):
        def __init__(self, scale=1.0, *, num_train):
            super().__init__(scale)
            self.num_train = num_train

    assert build(Plain, {"scale": 2.0}, {}, ThetaPrior, "theta_prior", num_train=7).scale == 2.0
    assert build(Wants, None, {}, ThetaPrior, "theta_prior", num_train=7).num_train == 7
    e = error(build, Wants, {"num_train": 3}, {}, ThetaPrior, "theta_prior", num_train=7)
    assert e.argument == "theta_prior_kwargs" and "set by pyrodps" in str(e)


def test_likelihood_gets_num_classes_from_the_data():
    lik = make_likelihood("categorical", num_classes=4)
    assert isinstance(lik, Categorical) and lik.num_classes == 4
    assert isinstance(make_likelihood("gaussian", num_classes=4), Gaussian)  # ignored where not named
    e = error(make_likelihood, "categorical")
    assert e.argument == "likelihood_kwargs" and "num_classes" in str(e)
    assert error(make_likelihood, "categorical", num_classes=1).argument == "num_classes"  # the class's own check


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    "text,expected",
    [
        (None, {}),
        ("", {}),
        ({"a": 2}, {"a": 2}),
        ('{"a": 2, "b": [1, 2], "c": "x"}', {"a": 2, "b": [1, 2], "c": "x"}),
        ("a=2,b=0.5", {"a": 2, "b": 0.5}),
        ("a=2 b=5e-4, c=true d=null", {"a": 2, "b": 5e-4, "c": True, "d": None}),
        ("sizes=[1, 2, 3], name=abc", {"sizes": [1, 2, 3], "name": "abc"}),
        ("a = 2 , b= .5 path=/tmp/x.py", {"a": 2, "b": 0.5, "path": "/tmp/x.py"}),
        ("flag=True, s='hello world'", {"flag": True, "s": "hello world"}),
    ],
)
def test_parse_kwargs(text, expected):
    assert parse_kwargs(text, "weight_prior_kwargs") == expected


@pytest.mark.parametrize(
    "text,needle",
    [
        ("a", "no '='"),
        ("a=1,b", "no '='"),
        ("1a=2", "not a valid keyword"),
        ("a=", "has no value"),
        ("a=1 a=2", "given twice"),
        ('{"a": 2', "not a valid JSON object"),
        ([("a", 1)], "must be a dict"),
        (3, "must be a dict"),
        ({1: 2}, "keys must be strings"),
    ],
)
def test_parse_kwargs_errors(text, needle):
    e = error(parse_kwargs, text, "weight_prior_kwargs")
    assert e.argument == "weight_prior_kwargs" and needle in str(e)


def test_kwargs_as_json_and_key_value_reach_the_constructor(plugin_file):
    spec = f"{plugin_file}:KumaraswamyWeight"
    a = build(spec, '{"a": 3, "b": 0.5}', WEIGHT_PRIORS, WeightPrior, "weight_prior")
    b = build(spec, "a=3, b=0.5", WEIGHT_PRIORS, WeightPrior, "weight_prior")
    assert (a.a, a.b) == (b.a, b.b) == (3, 0.5)
    assert build("beta", "a=2 b=3", WEIGHT_PRIORS, WeightPrior, "weight_prior").b == 3.0


# ----------------------------------------------------------------------------- errors
def test_unknown_name_lists_the_known_ones():
    e = error(make_weight_prior, "laplace")
    assert e.argument == "weight_prior"
    assert all(name in str(e) for name in WEIGHT_PRIORS) and "module.path:ClassName" in str(e)
    e = error(make_theta_prior, "laplace", rho_theta=1.0, num_train=1)
    assert e.argument == "theta_prior" and "fan-in" in str(e)
    assert error(make_likelihood, "poisson").argument == "likelihood"


def test_missing_module():
    e = error(make_weight_prior, "no_such_package.priors:Thing")
    assert e.argument == "weight_prior" and "cannot import module 'no_such_package.priors'" in str(e)
    assert "No module named 'no_such_package'" in str(e)  # the ImportError's text


def test_missing_file(tmp_path):
    e = error(make_weight_prior, f"{tmp_path / 'nope.py'}:Thing")
    assert e.argument == "weight_prior" and "no such file" in str(e)


def test_file_that_fails_to_import(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import no_such_module_xyz\n")
    e = error(make_weight_prior, f"{path}:Thing")
    assert e.argument == "weight_prior" and "no_such_module_xyz" in str(e)


def test_missing_class(plugin_file):
    e = error(make_weight_prior, f"{plugin_file}:Kumaraswamy")
    assert e.argument == "weight_prior" and "has no class 'Kumaraswamy'" in str(e)
    assert "it defines KumaraswamyWeight" in str(e)
    e = error(make_weight_prior, "pyrodps.models.priors:NoSuchPrior")
    assert e.argument == "weight_prior" and "has no class 'NoSuchPrior'" in str(e)


def test_wrong_base(plugin_file):
    e = error(make_weight_prior, f"{plugin_file}:NotAPrior")
    assert e.argument == "weight_prior" and "not a subclass of pyrodps.models.priors.WeightPrior" in str(e)
    e = error(make_theta_prior, "pyrodps.models.priors:BetaWeight", rho_theta=1.0, num_train=1)
    assert e.argument == "theta_prior" and "not a subclass" in str(e)
    e = error(make_weight_prior, f"{plugin_file}:CONSTANT")
    assert e.argument == "weight_prior" and "not a class" in str(e)
    e = error(make_weight_prior, "pyrodps.models.priors:WeightPrior")
    assert e.argument == "weight_prior" and "abstract" in str(e) and "distribution" in str(e)


def test_bad_kwargs(plugin_file):
    e = error(make_weight_prior, "beta", alpha=2.0)
    assert e.argument == "weight_prior_kwargs" and "takes a, b" in str(e) and "'alpha'" in str(e)
    e = error(make_theta_prior, "fan-in", rho_theta=1.0, num_train=1, scale=1.0)
    assert e.argument == "theta_prior_kwargs" and "takes gain" in str(e)
    e = error(make_weight_prior, "uniform", a=1.0)
    assert e.argument == "weight_prior_kwargs" and "no options" in str(e)
    # a constructor's ValueError becomes a ValidationError naming the options and the class
    e = error(make_weight_prior, f"{plugin_file}:KumaraswamyWeight", a=-1.0)
    assert e.argument == "weight_prior_kwargs" and "KumaraswamyWeight" in str(e) and "a must be > 0" in str(e)
    # a constructor's own ValidationError passes through with its argument
    assert error(make_weight_prior, "truncated-gaussian", beta=1.5).argument == "beta"
    assert error(make_weight_prior, "beta", a=-1.0).argument == "beta_a"


def test_bad_spec_values():
    assert error(make_weight_prior, "").argument == "weight_prior"
    assert error(make_weight_prior, 3).argument == "weight_prior"
    assert "must read" in str(error(make_weight_prior, "pyrodps.models.priors:"))
