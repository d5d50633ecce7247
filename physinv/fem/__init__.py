"""The FEM layer (DOLFINx, optional extra ``physinv[fem]``): the DOLFINx bridge, gmsh meshes, convergence fits.

* :mod:`physinv.fem.dolfinx`: :func:`import_dolfinx`, validated mesh arrays and
  PETSc options, on which the DOLFINx reference of each problem package is built;
* :class:`FormSimulator` (:mod:`physinv.fem.form_simulator`): any DOLFINx variational
  problem ``F(u, m; v) = 0`` written in UFL as a differentiable simulator (Newton forward,
  adjoint gradient, tangent jvp), with :class:`FormRegularizer` (``1/2 a(m, m)`` from a UFL form);
* :func:`fit_rate` (:mod:`physinv.fem.convergence`): log-log least-squares rate fits;
* :func:`unit_square_arrays` (:mod:`physinv.fem.gmsh_meshes`): unstructured gmsh meshes
  as point/cell arrays (``TriMesh.gmsh_unit_square`` wraps them).

Importing this package does not import DOLFINx or gmsh; they are imported on
first use and, when missing, raise :class:`~physinv.core.errors.MissingExtraError`
naming ``physinv[fem]``.
"""

from physinv.fem.convergence import ConvergenceStudy, fit_rate
from physinv.fem.dolfinx import DolfinxSolveError, cell_dofs, create_triangle_mesh, import_dolfinx, node_dofs
from physinv.fem.form_simulator import FormRegularizer, FormSimulator, NewtonError, point_evaluation_matrix
from physinv.fem.gmsh_meshes import unit_square_arrays

__all__ = [
    "ConvergenceStudy",
    "DolfinxSolveError",
    "FormRegularizer",
    "FormSimulator",
    "NewtonError",
    "cell_dofs",
    "create_triangle_mesh",
    "fit_rate",
    "import_dolfinx",
    "node_dofs",
    "point_evaluation_matrix",
    "unit_square_arrays",
]
