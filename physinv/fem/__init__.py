"""FEM references (DOLFINx, optional extra ``physinv[fem]``) and convergence studies.

* :func:`solve_p1_poisson` (:mod:`physinv.fem.dolfinx_poisson`): DOLFINx P1 solve of
  ``-div(kappa grad u) = f`` on a given triangle mesh, returned in the input point order;
* :func:`fit_rate` (:mod:`physinv.fem.convergence`): log-log least-squares rate fits;
* :func:`unit_square_arrays` (:mod:`physinv.fem.gmsh_meshes`): unstructured gmsh meshes
  as point/cell arrays (``TriMesh.gmsh_unit_square`` wraps them).

Importing this package does not import DOLFINx or gmsh; they are imported on
first use and, when missing, raise :class:`~physinv.core.errors.MissingExtraError`
naming ``physinv[fem]``.
"""

from physinv.fem.convergence import ConvergenceStudy, fit_rate
from physinv.fem.dolfinx_poisson import DolfinxSolveError, import_dolfinx, solve_p1_poisson
from physinv.fem.gmsh_meshes import unit_square_arrays

__all__ = [
    "ConvergenceStudy",
    "DolfinxSolveError",
    "fit_rate",
    "import_dolfinx",
    "solve_p1_poisson",
    "unit_square_arrays",
]
