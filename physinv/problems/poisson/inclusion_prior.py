r"""An inclusion prior for the log-conductivity on the unit square: a catalogue of disks, as a Gaussian mixture.

One design or one unknown coefficient is a background :math:`\log\kappa = 0` with one disk
inclusion of centre :math:`c`, radius :math:`r` and log-contrast :math:`a`, its edge smoothed
over ``width``,

.. math::

    m(x) = a\, \mathrm{sigmoid}\big((r - |x - c|)/w\big)

(:func:`inclusion_field`, differentiable in :math:`c, r, a`).  The prior is the Gaussian
mixture :math:`\sum_k \tfrac1K N(m_k, s^2 I)` over the catalogue :math:`m_k` of
:func:`inclusion_catalogue` (centres on a regular ``centres x centres`` lattice of
``[0.2, 0.8]^2``, the given radii and contrasts) with a small within-component standard
deviation :math:`s`: :func:`inclusion_prior` returns it as a
:class:`~physinv.learn.diffusion.gaussian.GaussianMixturePrior` (exact denoiser).  The data set
``poisson-inclusions`` holds draws of it with their potentials (``-div(kappa grad u) = 1``,
``u = 0`` on the boundary), for training a network prior on the same distribution.

:class:`InclusionDesign` maps four unconstrained numbers to an inclusion
(:math:`c = 0.2 + 0.6\,\mathrm{sigmoid}(\theta_{1,2})`, :math:`r` between the smallest and the
largest catalogue radius, :math:`a = a_{max} \tanh\theta_4`): the design space of the
gradient and cross-entropy baselines of inverse design, the continuous version of the catalogue.
"""

from __future__ import annotations

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.learn.data import register_dataset
from physinv.learn.diffusion.gaussian import GaussianMixturePrior
from physinv.problems.poisson.simulator import PoissonSimulator

__all__ = ["CATALOGUE_DEFAULTS", "InclusionDesign", "inclusion_catalogue", "inclusion_field", "inclusion_prior"]

CATALOGUE_DEFAULTS = {
    "centres": 7,              # centres per axis on [0.2, 0.8]
    "radii": [0.1, 0.15, 0.2],
    "contrasts": [-1.0, 1.0],  # log-contrast a of the inclusion
    "width": 0.03,             # edge smoothing (unit-square lengths)
    "std": 0.05,               # within-component standard deviation s of log kappa
}


def inclusion_field(grid: UniformGrid, centre: torch.Tensor, radius: torch.Tensor, contrast: torch.Tensor,
                    width: float = CATALOGUE_DEFAULTS["width"]) -> torch.Tensor:
    """``a sigmoid((r - |x - c|)/w)`` on the grid's nodes for a batch: ``centre (B, 2)``, ``radius``, ``contrast`` ``(B,)``."""
    x, y = grid.coordinates(centre.dtype, centre.device)
    dist = torch.sqrt((x - centre[:, 0, None, None]) ** 2 + (y - centre[:, 1, None, None]) ** 2)
    return contrast[:, None, None] * torch.sigmoid((radius[:, None, None] - dist) / width)


def inclusion_catalogue(grid: UniformGrid, centres: int = CATALOGUE_DEFAULTS["centres"],
                        radii=CATALOGUE_DEFAULTS["radii"], contrasts=CATALOGUE_DEFAULTS["contrasts"],
                        width: float = CATALOGUE_DEFAULTS["width"], dtype=torch.float64) -> torch.Tensor:
    """The ``K = centres^2 len(radii) len(contrasts)`` fields ``(K, *grid.node_shape)`` of the module docstring."""
    if centres < 1 or not radii or not contrasts:
        raise InvalidParameterError("the catalogue needs centres >= 1 and at least one radius and one contrast")
    axis = torch.linspace(0.2, 0.8, centres, dtype=dtype) if centres > 1 else torch.tensor([0.5], dtype=dtype)
    rows = [(float(cx), float(cy), float(r), float(a)) for cx in axis for cy in axis for r in radii for a in contrasts]
    table = torch.tensor(rows, dtype=dtype)
    return inclusion_field(grid, table[:, :2], table[:, 2], table[:, 3], width)


def inclusion_prior(cells: int, std: float = CATALOGUE_DEFAULTS["std"], **catalogue) -> GaussianMixturePrior:
    """The mixture prior of the module docstring on the ``cells x cells`` grid (nodes ``(cells+1)^2``)."""
    return GaussianMixturePrior(inclusion_catalogue(UniformGrid((cells, cells)), **catalogue), std)


class InclusionDesign:
    """``theta (B, 4) -> log kappa (B, *node_shape)``: one inclusion from four unconstrained numbers (module docstring)."""

    def __init__(self, grid: UniformGrid, radii=CATALOGUE_DEFAULTS["radii"],
                 max_contrast: float = max(abs(a) for a in CATALOGUE_DEFAULTS["contrasts"]),
                 width: float = CATALOGUE_DEFAULTS["width"]):
        self.grid, self.width = grid, width
        self.r_min, self.r_max, self.max_contrast = min(radii), max(radii), max_contrast

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        centre = 0.2 + 0.6 * torch.sigmoid(theta[:, :2])
        radius = self.r_min + (self.r_max - self.r_min) * torch.sigmoid(theta[:, 2])
        return inclusion_field(self.grid, centre, radius, self.max_contrast * torch.tanh(theta[:, 3]), self.width)


# ---------------------------------------------------------------------------------------------
# the data set


def _draw(rng: np.random.Generator, params: dict) -> dict[str, np.ndarray]:
    """One draw of the mixture: a uniformly chosen catalogue field plus N(0, std^2) per node."""
    n_radii, n_contrasts = len(params["radii"]), len(params["contrasts"])
    index = rng.integers(params["centres"] ** 2 * n_radii * n_contrasts)
    centre_index, rest = divmod(int(index), n_radii * n_contrasts)
    radius, contrast = params["radii"][rest // n_contrasts], params["contrasts"][rest % n_contrasts]
    axis = np.linspace(0.2, 0.8, params["centres"]) if params["centres"] > 1 else np.array([0.5])
    centre = torch.tensor([[axis[centre_index // params["centres"]], axis[centre_index % params["centres"]]]],
                          dtype=torch.float64)
    grid = UniformGrid((params["cells"], params["cells"]))
    field = inclusion_field(grid, centre, torch.tensor([radius], dtype=torch.float64),
                            torch.tensor([contrast], dtype=torch.float64), params["width"])[0].numpy()
    field = field + params["std"] * rng.standard_normal(field.shape)
    return {"log_kappa": field.astype(params["dtype"])}


def _simulate(batch: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
    grid = UniformGrid((params["cells"], params["cells"]))
    sim = PoissonSimulator(FDPoissonOperator(grid), torch.ones(1, *grid.node_shape, dtype=torch.float64))
    with torch.no_grad():
        u = [sim(torch.exp(torch.from_numpy(np.asarray(m, dtype=np.float64))))[0].numpy() for m in batch["log_kappa"]]
    return {"u": np.stack(u).astype(params["dtype"])}


register_dataset(
    "poisson-inclusions",
    draw=_draw,
    simulate=_simulate,
    params={"cells": 15, **CATALOGUE_DEFAULTS, "dtype": "float32"},
    choices={"dtype": ("float32", "float64")},
    limits={"cells": (2, None), "centres": (1, None), "width": (1e-6, None), "std": (0.0, None)},
    inputs=("u",),
    targets=("log_kappa",),
    description="one disk inclusion (catalogue of centres, radii, contrasts) plus N(0, std^2) per node in log kappa; "
                "u solves -div(kappa grad u) = 1, u = 0 on the boundary of the unit square",
)
