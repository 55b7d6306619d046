"""Data sets, corruptions and scenarios."""

from pyrodps.data.corruptions import uniform_label_noise
from pyrodps.data.dataset import SelectionProblem, validate_problem
from pyrodps.data.digits import digits_label_noise
from pyrodps.errors import ValidationError

SCENARIOS = {"digits-label-noise": digits_label_noise}


def make_scenario(name: str, **kwargs) -> SelectionProblem:
    """Build the scenario called ``name`` with its keyword options."""
    if name not in SCENARIOS:
        raise ValidationError("scenario", f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    return SCENARIOS[name](**kwargs)


__all__ = ["SCENARIOS", "SelectionProblem", "digits_label_noise", "make_scenario", "uniform_label_noise", "validate_problem"]
