r"""The control ``m`` of a UFL residual: a ``Function`` on a DOLFINx space, or ``k`` real constants.

Shared by :class:`~physinv.fem.form_simulator.FormSimulator` and
:class:`~physinv.fem.time_stepping.TimeSteppingFormSimulator`:

* :func:`make_control`: the symbol ``m`` the user's residual receives;
* :func:`control_derivative`: ``dF/dm`` compiled once: the bilinear form
  ``ufl.derivative(F, m, TrialFunction(M))`` (rows: the test space of ``F``, columns:
  ``M``), or for constants the ``k`` linear forms ``ufl.diff(F, m)[i]``;
* :func:`assemble_control_derivative`: that derivative at the loaded ``(u, m)`` as a
  sparse ``(n_u, n_m)`` matrix (dense columns for constants).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from physinv.core.errors import InvalidParameterError, PhysinvError
from physinv.fem.form_solve import assemble_vector

__all__ = ["Control", "assemble_control_derivative", "control_derivative", "diff_constant", "make_control"]


@dataclass
class Control:
    """``M`` (``None`` for constants), the ``Constant`` holding constants, the symbol ``m``, ``n_m``."""

    M: Any
    constant: Any
    symbol: Any
    size: int

    def set(self, values: np.ndarray) -> None:
        """Load the control values ``(n_m,)`` into the ``Function`` or ``Constant``."""
        if self.M is None:
            self.constant.value[:] = values
        else:
            self.symbol.x.array[: self.size] = values
            self.symbol.x.scatter_forward()


def make_control(msh, control) -> Control:
    """``control`` is a DOLFINx function space (``m`` a ``Function`` on it) or an ``int`` ``k`` (``k`` constants)."""
    import ufl
    from dolfinx import fem

    if isinstance(control, (int, np.integer)) and not isinstance(control, bool):
        if control < 1:
            raise InvalidParameterError(
                f"control must be a function space or a number k >= 1 of constants; got {control}")
        constant = fem.Constant(msh, np.zeros(int(control)))
        return Control(None, constant, ufl.variable(constant), int(control))
    if hasattr(control, "dofmap") and hasattr(control, "mesh"):
        if control.mesh.comm.size != 1:
            raise PhysinvError("the control space must live on a serial mesh")
        size = control.dofmap.index_map.size_local * control.dofmap.index_map_bs
        return Control(control, None, fem.Function(control, name="m"), size)
    raise InvalidParameterError(
        "control must be a DOLFINx function space (e.g. functionspace(mesh, ('DG', 0))) or an int k "
        f"(k real constants); got {type(control).__name__}")


def diff_constant(form, symbol, i: int):
    """``d form / d m_i`` for a constant control (``ufl.diff`` on the integrands); ``None`` if empty."""
    import ufl
    from ufl.algorithms import expand_derivatives
    from ufl.algorithms.map_integrands import map_integrands

    d = expand_derivatives(map_integrands(lambda e: ufl.diff(e, symbol)[i], form))
    return None if d.empty() else d


def control_derivative(F, control: Control):
    """``(compiled dF/dm, ufl forms, empty)``: a compiled bilinear form (``None`` if empty) for a space,
    a list of compiled linear forms (``None`` entries where empty) for constants."""
    import ufl
    from dolfinx import fem
    from ufl.algorithms import expand_derivatives

    if control.M is not None:
        dFdm = expand_derivatives(ufl.derivative(F, control.symbol, ufl.TrialFunction(control.M)))
        empty = dFdm.empty()
        return (None if empty else fem.form(dFdm)), ([] if empty else [dFdm]), empty
    parts = [diff_constant(F, control.symbol, i) for i in range(control.size)]
    return [None if p is None else fem.form(p) for p in parts], [p for p in parts if p is not None], \
        all(p is None for p in parts)


def assemble_control_derivative(compiled, control: Control, n_u: int):
    """``dF/dm`` at the loaded state and control: scipy CSR ``(n_u, n_m)``, or a dense array for constants."""
    from dolfinx import fem

    if control.M is not None:
        spaces = compiled.function_spaces
        if spaces[0].dofmap.index_map_bs != spaces[1].dofmap.index_map_bs:
            return _assemble_through_petsc(compiled)[:n_u, : control.size]
        return fem.assemble_matrix(compiled).to_scipy().tocsr()[:n_u, : control.size]
    cols = [np.zeros(n_u) if f is None else assemble_vector(f, n_u) for f in compiled]
    return np.stack(cols, axis=1)


def _assemble_through_petsc(compiled):
    """A bilinear form whose spaces have different block sizes (a vector state, a scalar control), which
    DOLFINx's own CSR matrix refuses: assembled as a PETSc matrix, returned as scipy CSR (unrolled dofs)."""
    import scipy.sparse as sp
    from dolfinx.fem.petsc import assemble_matrix

    A = assemble_matrix(compiled)
    A.assemble()
    try:
        indptr, indices, data = A.getValuesCSR()
        return sp.csr_matrix((data.copy(), indices.copy(), indptr.copy()), shape=A.getSize())
    finally:
        A.destroy()
