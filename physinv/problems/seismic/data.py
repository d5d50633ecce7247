"""OpenFWI-style data sets: random velocity maps and their acoustic shot gathers.

One data set per velocity family of :mod:`physinv.problems.seismic.velocity_families`,
registered with :func:`physinv.learn.data.register_dataset` when this module is
imported: ``openfwi-flatvel-a``, ``openfwi-flatvel-b``, ``openfwi-curvevel-a``,
``openfwi-curvevel-b``, ``openfwi-flatfault-a``, ``openfwi-flatfault-b``,
``openfwi-curvefault-a``, ``openfwi-curvefault-b``.  Sample ``i`` draws a map
with :func:`~physinv.problems.seismic.velocity_families.velocity_map` from
``default_rng([seed, i])`` and simulates it with
:class:`~physinv.problems.seismic.simulator.AcousticSimulator` (Deepwave's
compiled kernels, float32, velocity range [1500, 4500] m/s), all rows of a
chunk in one call.

Fields: ``velocity`` ``(N, nz, nx)`` m/s (target) and ``gathers``
``(N, n_shots, n_receivers, nt)`` (input).

Parameters (stored with the data; defaults = OpenFWI's acquisition,
``dataset_config.json`` of github.com/lanl/OpenFWI): ``nz = nx = 70`` cells
of ``dx = 10`` m, ``nt = 1000`` steps of ``dt = 1`` ms, a 15 Hz Ricker
wavelet, ``n_shots = 5`` sources and ``n_receivers = 70`` receivers spread
evenly along the row one cell (10 m) below the surface, 4th-order finite
differences.  Difference from OpenFWI: the absorbing layer is a 20-cell PML
(``pml_width``) where OpenFWI padded 120 cells of absorbing boundary
(``nbc``); reflections from the sides are therefore not identical, and
gathers are not comparable sample by sample with OpenFWI's files.  Neither
is the amplitude scale, which depends on the solver's source term: with the
defaults our gathers span about [-40, 21] (the direct wave is negative),
OpenFWI's about [-27, 53]; so take :func:`network_inputs`' ``data_min`` /
``data_max`` from our own training set (:func:`data_range`), not from
OpenFWI's ``dataset_config.json``.

Cost: one default sample (5 shots, 110 x 110 cells with the PML, 1000 steps)
takes about 0.5 s on one CPU core; Deepwave's first call for a new grid size
in a process takes several seconds more (30 s for 70 x 70 here), once per
worker.

:func:`network_inputs` is OpenFWI's preprocessing of the gathers,
:func:`normalize_velocity` / :func:`denormalize_velocity` that of the maps.
"""

from __future__ import annotations

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.learn.data import register_dataset
from physinv.problems.seismic.simulator import AcousticSimulator
from physinv.problems.seismic.metrics import denormalize_velocity, normalize_velocity
from physinv.problems.seismic.survey import openfwi_survey
from physinv.problems.seismic.velocity_families import FAMILIES, V_MAX, V_MIN, velocity_map

__all__ = ["DATASET_DEFAULTS", "DATASET_NAMES", "data_range", "denormalize_velocity", "network_inputs",
           "normalize_velocity", "simulator_for"]

DATASET_DEFAULTS = {
    "nz": 70,                # cells in depth
    "nx": 70,                # cells laterally
    "dx": 10.0,              # grid spacing (m)
    "nt": 1000,              # time samples
    "dt": 1e-3,              # time step (s)
    "peak_frequency": 15.0,  # Ricker peak frequency (Hz)
    "n_shots": 5,            # sources, evenly along the row 1 cell below the surface
    "n_receivers": 70,       # receivers, likewise (OpenFWI: one per cell)
    "pml_width": 20,         # PML cells per side (OpenFWI: 120 cells of absorbing boundary)
    "accuracy": 4,           # spatial order of the finite differences
    "dtype": "float32",      # storage type of the fields
}

#: Registered data-set names, one per velocity family.
DATASET_NAMES: tuple[str, ...] = tuple(f"openfwi-{family}" for family in FAMILIES)


# ---------------------------------------------------------------- preprocessing
def _log(x):
    return torch.sign(x) * torch.log1p(torch.abs(x))


def data_range(gathers: torch.Tensor | np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of raw gathers: compute once on the training set, pass to :func:`network_inputs`.

    (OpenFWI's ``data_min`` / ``data_max`` of ``dataset_config.json`` are these numbers for its files.)
    """
    g = torch.as_tensor(gathers)
    return float(g.min()), float(g.max())


def network_inputs(gathers: torch.Tensor | np.ndarray, data_min: float, data_max: float):
    """OpenFWI's input transform: ``y = sign(x) log(1 + |x|)``, then min-max to ``[-1, 1]``.

    ``2 (y - l(data_min)) / (l(data_max) - l(data_min)) - 1`` with ``l`` the same log map.
    ``data_min`` and ``data_max`` are the raw extremes of the **whole training set**
    (:func:`data_range`), fixed per data set as in OpenFWI, not per sample: a per-sample
    scaling would remove the amplitude information, which carries the impedance contrasts.
    Values beyond the training range map slightly outside ``[-1, 1]`` (not clipped).
    Any shape; returns the same shape and type (torch in, torch out; numpy in, numpy out).
    """
    lo, hi = float(data_min), float(data_max)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InvalidParameterError(f"need finite data_min < data_max; got {data_min!r}, {data_max!r}")
    is_numpy = isinstance(gathers, np.ndarray)
    x = torch.as_tensor(gathers)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    l_lo, l_hi = (float(_log(torch.tensor(v, dtype=torch.float64))) for v in (lo, hi))
    y = 2 * (_log(x) - l_lo) / (l_hi - l_lo) - 1
    return y.numpy() if is_numpy else y


# ---------------------------------------------------------------- generator
_SIM_CACHE: dict[tuple, AcousticSimulator] = {}
_SURVEY_KEYS = ("nz", "nx", "dx", "nt", "dt", "peak_frequency", "n_shots", "n_receivers", "pml_width", "accuracy")


def _check(params: dict) -> None:
    for name in ("n_shots", "n_receivers"):
        if params[name] > params["nx"]:
            raise InvalidParameterError(
                f"{name} = {params[name]} exceeds nx = {params['nx']}: at most one per lateral cell")


def simulator_for(params: dict) -> AcousticSimulator:
    """The (cached) compiled simulator of a data set's parameters (velocity range [1500, 4500] m/s)."""
    _check(params)
    key = tuple(params[k] for k in _SURVEY_KEYS)
    if key not in _SIM_CACHE:
        survey = openfwi_survey(params["nz"], params["nx"], params["dx"], params["nt"], params["dt"],
                                params["peak_frequency"], params["n_shots"], params["n_receivers"])
        _SIM_CACHE[key] = AcousticSimulator(survey, (V_MIN, V_MAX), accuracy=params["accuracy"],
                                            pml_width=params["pml_width"], backend="compiled")
    return _SIM_CACHE[key]


def _draw(family: str, rng: np.random.Generator, params: dict) -> dict[str, np.ndarray]:
    _check(params)
    return {"velocity": velocity_map(family, rng, params["nz"], params["nx"]).astype(params["dtype"])}


def _simulate(batch: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
    sim = simulator_for(params)
    v = torch.from_numpy(np.asarray(batch["velocity"], dtype=np.float32))
    with torch.no_grad():
        gathers = sim(v).numpy()  # (b, n_shots, n_receivers, nt): every shot of every row in one call
    return {"gathers": gathers.astype(params["dtype"])}


# module-level draw functions: worker processes receive them by reference
def _draw_flatvel_a(rng, params):
    return _draw("flatvel-a", rng, params)


def _draw_flatvel_b(rng, params):
    return _draw("flatvel-b", rng, params)


def _draw_curvevel_a(rng, params):
    return _draw("curvevel-a", rng, params)


def _draw_curvevel_b(rng, params):
    return _draw("curvevel-b", rng, params)


def _draw_flatfault_a(rng, params):
    return _draw("flatfault-a", rng, params)


def _draw_flatfault_b(rng, params):
    return _draw("flatfault-b", rng, params)


def _draw_curvefault_a(rng, params):
    return _draw("curvefault-a", rng, params)


def _draw_curvefault_b(rng, params):
    return _draw("curvefault-b", rng, params)


_DRAWS = {"flatvel-a": _draw_flatvel_a, "flatvel-b": _draw_flatvel_b, "curvevel-a": _draw_curvevel_a,
          "curvevel-b": _draw_curvevel_b, "flatfault-a": _draw_flatfault_a, "flatfault-b": _draw_flatfault_b,
          "curvefault-a": _draw_curvefault_a, "curvefault-b": _draw_curvefault_b}
assert tuple(_DRAWS) == FAMILIES

_LIMITS = {"nz": (8, None), "nx": (8, None), "dx": (1e-9, None), "nt": (2, None), "dt": (1e-12, None),
           "peak_frequency": (1e-9, None), "n_shots": (1, None), "n_receivers": (1, None), "pml_width": (0, None)}
_SHAPES = {
    "flatvel": ("FlatVel", "flat layers"), "curvevel": ("CurveVel", "curved layers"),
    "flatfault": ("FlatFault", "flat layers cut by 1-2 faults"),
    "curvefault": ("CurveFault", "curved layers cut by 1-2 faults"),
}

for _family, _draw_fn in _DRAWS.items():
    _kind, _version = _family.split("-")
    register_dataset(
        f"openfwi-{_family}",
        draw=_draw_fn,
        simulate=_simulate,
        params=dict(DATASET_DEFAULTS),
        choices={"dtype": ("float32", "float64"), "accuracy": (2, 4, 6, 8)},
        limits=_LIMITS,
        inputs=("gathers",),
        targets=("velocity",),
        description=f"OpenFWI-style {_SHAPES[_kind][0]}-{_version.upper()}: {_SHAPES[_kind][1]}, "
                    f"{'simple, velocity increasing with depth' if _version == 'a' else 'more layers, any order'}"
                    "; 2D acoustic shot gathers (n_shots, n_receivers, nt) -> velocity (nz, nx) m/s in "
                    "[1500, 4500]",
    )
del _family, _draw_fn, _kind, _version
