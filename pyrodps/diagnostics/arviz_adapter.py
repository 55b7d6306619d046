"""The one place that knows which ArviZ is installed.

Everything else in pyrodps builds plain ``xarray.Dataset`` groups (dimensions ``chain`` and ``draw``
first) and calls the functions below; only they branch on ``arviz.__version__``:

* **ArviZ 0.x** (what installs on Python 3.11): an ``arviz.InferenceData`` whose groups are
  ``Dataset`` attributes; ``az.rhat(ds, method=...)`` etc.; ``az.from_netcdf``.
* **ArviZ 1.x** (Python >= 3.12; arviz-base/-stats/-plots behind the ``arviz`` namespace): an
  ``xarray.DataTree`` whose children are the groups (``tree["posterior"].to_dataset()``);
  ``az.rhat(ds, sample_dims=..., method=...)`` etc. from arviz-stats; read with
  ``xarray.open_datatree`` (arviz-base has no ``from_netcdf``).

Both write the same file: one NetCDF-4 group per ArviZ group, through the h5netcdf engine
(netCDF4 is not a dependency). The 1.x branch is exercised in ``tests/test_arviz_adapter.py``
against a fake ``arviz`` module whose functions follow the 1.x signatures.
"""

from __future__ import annotations

from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

from pyrodps.errors import ValidationError

SAMPLE_DIMS = ("chain", "draw")
NETCDF_ENGINE = "h5netcdf"


def arviz_major(version: str | None = None) -> int:
    """Major version of ArviZ (of ``version``, or of the installed ``arviz``)."""
    text = az.__version__ if version is None else version
    try:
        return int(str(text).split(".")[0])
    except ValueError:
        raise ValidationError("arviz", f"cannot read a version number from {text!r}") from None


def make_inference_data(groups: dict[str, xr.Dataset]) -> object:
    """The ArviZ container of ``groups`` (name -> Dataset with leading ``chain``, ``draw`` dims):
    ``InferenceData`` under ArviZ 0.x, ``DataTree`` under 1.x."""
    for name, ds in groups.items():
        if not isinstance(ds, xr.Dataset):
            raise ValidationError("groups", f"group {name!r} must be an xarray.Dataset, got {type(ds).__name__}")
    if arviz_major() >= 1:
        return xr.DataTree.from_dict(dict(groups))
    return az.InferenceData(**groups)


def group_names(data: object) -> list[str]:
    """Names of the groups held by ``data``."""
    if isinstance(data, xr.DataTree):
        return list(data.children)
    return list(data.groups())


def group(data: object, name: str) -> xr.Dataset:
    """Group ``name`` of ``data`` (either container) as a Dataset."""
    if name not in group_names(data):
        raise ValidationError("group", f"no group {name!r}; the data holds {', '.join(group_names(data)) or 'none'}")
    if isinstance(data, xr.DataTree):
        return data[name].to_dataset()
    return getattr(data, name)


def write_netcdf(data: object, path: str | Path) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename."""
    from pyrodps.io import atomic_write

    # the same call for InferenceData and DataTree
    return atomic_write(path, lambda tmp: data.to_netcdf(tmp, engine=NETCDF_ENGINE))


def read_netcdf(path: str | Path) -> object:
    """Read a file written by :func:`write_netcdf` fully into memory (the file is closed after)."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError("posterior", f"{path} does not exist")
    if arviz_major() >= 1:
        with xr.open_datatree(path, engine=NETCDF_ENGINE) as tree:
            return tree.load().copy(deep=True)
    with az.rc_context({"data.load": "eager"}):
        return az.from_netcdf(str(path), engine=NETCDF_ENGINE)


STATISTICS = ("rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd")


def convergence_statistics(posterior: xr.Dataset, rhat_posterior: xr.Dataset | None = None,
                           statistics: tuple[str, ...] = STATISTICS) -> dict[str, xr.Dataset]:
    """ArviZ's convergence statistics of every variable of ``posterior``, reduced over
    ``(chain, draw)``, following Vehtari et al. (2021, Bayesian Analysis 16(2)):

    * ``rhat``: rank-normalised split R-hat, ``max(R̂(z(r(x))), R̂(z(r(|x - median|))))`` with ``r`` the
      pooled ranks and ``z`` the normal scores; ``R̂ = sqrt(V̂ / W)`` on chains split in halves;
    * ``ess_bulk``: ESS of the rank-normalised split chains (Geyer's initial monotone sequence);
    * ``ess_tail``: ``min`` of the ESS of the indicators ``x <= q_0.05`` and ``x <= q_0.95``;
    * ``mcse_mean`` (``sd / sqrt(ESS_mean)``) and ``mcse_sd``: Monte Carlo standard errors.

    ``rhat_posterior``: compute R-hat on these draws instead (e.g. one chain cut in two);
    ``statistics``: which of the above to compute.
    """
    unknown = set(statistics) - set(STATISTICS)
    if unknown:
        raise ValidationError("statistics", f"unknown {sorted(unknown)}; choose from {', '.join(STATISTICS)}")
    if arviz_major() >= 1:
        kw = {"sample_dims": list(SAMPLE_DIMS)}
    else:
        kw = {}
    with np.errstate(divide="ignore", invalid="ignore"):  # constant draws: NaN, reported as such
        calls = {
            "rhat": lambda: az.rhat(posterior if rhat_posterior is None else rhat_posterior, method="rank", **kw),
            "ess_bulk": lambda: az.ess(posterior, method="bulk", **kw),
            "ess_tail": lambda: az.ess(posterior, method="tail", **kw),
            "mcse_mean": lambda: az.mcse(posterior, method="mean", **kw),
            "mcse_sd": lambda: az.mcse(posterior, method="sd", **kw),
        }
        return {name: calls[name]() for name in statistics}
