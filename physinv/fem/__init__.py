"""The FEM layer (DOLFINx, optional extra ``physinv[fem]``): the DOLFINx bridge, gmsh meshes, convergence fits.

* :mod:`physinv.fem.dolfinx`: :func:`import_dolfinx`, validated mesh arrays and
  PETSc options, on which the DOLFINx reference of each problem package is built;
* :func:`fit_rate` (:mod:`physinv.fem.convergence`): log-log least-squares rate fits;
* :func:`unit_square_arrays` (:mod:`physinv.fem.gmsh_meshes`): unstructured gmsh meshes
  as point/cell arrays (``TriMesh.gmsh_unit_square`` wraps them).

Importing this package does not import DOLFINx or gmsh; they are imported on
first use and, when missing, raise :class:`~physinv.core.errors.MissingExtraError`
naming ``physinv[fem]``.
"""

from physinv.fem.convergence import ConvergenceStudy, fit_rate
from physinv.fem.dolfinx import DolfinxSolveError, import_dolfinx
from physinv.fem.gmsh_meshes import unit_square_arrays

__all__ = [
    "ConvergenceStudy",
    "DolfinxSolveError",
    "fit_rate",
    "import_dolfinx",
    "unit_square_arrays",
]
