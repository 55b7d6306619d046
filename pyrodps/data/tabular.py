"""Small real tabular data sets, with label noise: where a practitioner would try cleanlab first.

* ``iris``: scikit-learn's bundled iris (150 flowers, 4 measurements in cm, 3 species).
* ``cars``: the vega ``cars`` table (``vega_datasets``, optional extra ``tabular``; 392 cars with
  complete rows: miles per gallon, cylinders, displacement, horsepower, weight in lbs, acceleration and
  model year; label: the origin, USA / Europe / Japan). Raw features on very different scales (a weight
  in the thousands next to a cylinder count), standardised per feature with the training part's
  moments like any user's vector data.

Both run through the scenario pipeline (:mod:`pyrodps.data.scenarios`): a stratified clean test set,
a clean meta set of ``meta_per_class`` per class, then uniform label noise on the remaining training
points. Their defaults keep the meta set small (5 per class) and the test set at a quarter.
"""

from __future__ import annotations

import numpy as np

from pyrodps.data.scenarios import Source, label_noise
from pyrodps.errors import ValidationError
from pyrodps.models.problem import SelectionProblem

CARS_FEATURES = ("Miles_per_Gallon", "Cylinders", "Displacement", "Horsepower", "Weight_in_lbs", "Acceleration")
CARS_ORIGINS = ("USA", "Europe", "Japan")


def load_iris_xy() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


def load_cars_xy() -> tuple[np.ndarray, np.ndarray]:
    """The complete rows of the vega ``cars`` table: 7 numeric features (the model year as a number)
    and the origin as the label."""
    try:
        from vega_datasets import local_data
    except ImportError:
        raise ValidationError("scenario", "the cars scenarios need the vega_datasets package: "
                              "pip install 'pyrodps[tabular]'") from None
    df = local_data.cars().dropna(subset=list(CARS_FEATURES))
    x = np.column_stack([df[c].to_numpy(np.float64) for c in CARS_FEATURES] +
                        [df["Year"].dt.year.to_numpy(np.float64)])
    y = np.array([CARS_ORIGINS.index(o) for o in df["Origin"]], dtype=np.int64)
    return x.astype(np.float32), y


IRIS = Source("iris", load_iris_xy, num_classes=3, standardise="feature")
CARS = Source("cars", load_cars_xy, num_classes=3, standardise="feature")


def iris_label_noise(noise_rate: float = 0.3, noise_kind: str = "uniform", meta_per_class: int = 5,
                     test_fraction: float = 0.25, seed: int = 0) -> SelectionProblem:
    """Iris with a ``noise_rate`` fraction of the remaining training labels flipped (uniformly to
    another class by default)."""
    return label_noise(IRIS, noise_rate, noise_kind, meta_per_class, test_fraction, seed)


def cars_label_noise(noise_rate: float = 0.3, noise_kind: str = "uniform", meta_per_class: int = 5,
                     test_fraction: float = 0.25, seed: int = 0) -> SelectionProblem:
    """The vega cars table (origin from the car's specifications) with a ``noise_rate`` fraction of the
    remaining training labels flipped."""
    return label_noise(CARS, noise_rate, noise_kind, meta_per_class, test_fraction, seed)
