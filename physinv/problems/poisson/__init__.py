"""Poisson: ``-div(kappa grad u) = f`` with Dirichlet/Neumann sides, on grids (FD) and triangle meshes (P1).

Modules: :mod:`.simulator` (:class:`PoissonSimulator`, registered as
``poisson-fd-2d``, ``poisson-fd-3d``, ``poisson-p1``), :mod:`.data` (data set
``poisson-2d-kappa``), :mod:`.inclusion_prior` (a disk-inclusion prior as an exact Gaussian
mixture, data set ``poisson-inclusions``, the inclusion design space), :mod:`.reference` (DOLFINx P1 solve, lazy),
:mod:`.validate` (``physinv validate poisson``).  The operators themselves are
the generic diffusion operators of :mod:`physinv.discretize`.
"""

from physinv.core.registry import register_docs_figures, register_validation
from physinv.problems.poisson import data, inclusion_prior  # noqa: F401  (register the data sets)
from physinv.problems.poisson.simulator import PoissonSimulator

register_validation("poisson", "physinv.problems.poisson.validate",
                    "FD and P1 convergence rates; torch P1 vs DOLFINx on the same mesh")
register_docs_figures("poisson", "physinv.problems.poisson.plots:draw_docs_figures", ["poisson_convergence.png"],
                      "FD and P1 convergence study of physinv validate poisson")

__all__ = ["PoissonSimulator"]
