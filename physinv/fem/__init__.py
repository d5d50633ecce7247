"""The FEM layer (DOLFINx, optional extra ``physinv[fem]``): the DOLFINx bridge, gmsh meshes, convergence fits.

* :mod:`physinv.fem.dolfinx`: :func:`import_dolfinx`, validated mesh arrays and
  PETSc options, on which the DOLFINx reference of each problem package is built;
* :class:`FormSimulator` (:mod:`physinv.fem.form_simulator`): any DOLFINx variational
  problem ``F(u, m; v) = 0`` written in UFL as a differentiable simulator (Newton forward,
  adjoint gradient, tangent jvp);
* :class:`TimeSteppingFormSimulator` (:mod:`physinv.fem.time_stepping`): the same for an
  evolution problem given by the residual of one time step ``F(u_k, u_{k-1}, m; v) = 0``
  (one adjoint sweep backward for the gradient, one tangent sweep forward for jvp), with
  :func:`theta_scheme` (implicit Euler, Crank-Nicolson) to build that residual;
* :class:`FormRegularizer` (:mod:`physinv.fem.form_regularizer`): ``1/2 a(m, m)`` from a UFL form;
* :func:`point_evaluation_matrix` (:mod:`physinv.fem.point_evaluation`): sensors as a sparse matrix;
* :mod:`physinv.fem.form_solve` and :mod:`physinv.fem.form_control`: the Dirichlet conditions,
  PETSc factorizations, Newton's method and control derivatives both simulators share;
* :func:`fit_rate` (:mod:`physinv.fem.convergence`): log-log least-squares rate fits;
* :func:`unit_square_arrays` (:mod:`physinv.fem.gmsh_meshes`): unstructured gmsh meshes
  as point/cell arrays (``TriMesh.gmsh_unit_square`` wraps them).

Importing this package does not import DOLFINx or gmsh; they are imported on
first use and, when missing, raise :class:`~physinv.core.errors.MissingExtraError`
naming ``physinv[fem]``.
"""

from physinv.fem.convergence import ConvergenceStudy, fit_rate
from physinv.fem.dolfinx import DolfinxSolveError, cell_dofs, create_triangle_mesh, import_dolfinx, node_dofs
from physinv.fem.form_regularizer import FormRegularizer
from physinv.fem.form_simulator import FormSimulator
from physinv.fem.form_solve import NewtonError
from physinv.fem.gmsh_meshes import unit_square_arrays
from physinv.fem.point_evaluation import point_evaluation_matrix
from physinv.fem.time_stepping import TimeSteppingFormSimulator, theta_scheme

__all__ = [
    "ConvergenceStudy",
    "DolfinxSolveError",
    "FormRegularizer",
    "FormSimulator",
    "NewtonError",
    "TimeSteppingFormSimulator",
    "cell_dofs",
    "create_triangle_mesh",
    "fit_rate",
    "import_dolfinx",
    "node_dofs",
    "point_evaluation_matrix",
    "theta_scheme",
    "unit_square_arrays",
]
