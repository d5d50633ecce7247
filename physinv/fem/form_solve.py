r"""Solving the discrete systems of UFL forms: Dirichlet dofs, PETSc factorizations, Newton's method.

The pieces :class:`~physinv.fem.form_simulator.FormSimulator` and
:class:`~physinv.fem.time_stepping.TimeSteppingFormSimulator` share:

* :func:`dirichlet_bcs`: ``(where, value)`` pairs to ``dolfinx.fem.DirichletBC`` objects;
* :func:`factorize` / :func:`solve`: ``J`` assembled with its Dirichlet rows and columns
  replaced by the identity, factorized once by PETSc (MUMPS LU by default), then solved
  with or transposed (``KSPSolveTranspose``: the adjoint solves) as often as needed;
* :func:`newton`: Newton's method on ``F(u) = 0`` over the free dofs, with the residual
  history in :class:`NewtonError` when it fails.

DOLFINx and petsc4py are imported inside the functions: importing this module does not.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from physinv.core.errors import ConvergenceError, InvalidParameterError, ShapeMismatchError
from physinv.fem.dolfinx import DolfinxSolveError, petsc_prefix

__all__ = ["DEFAULT_PETSC_OPTIONS", "NewtonError", "assemble_vector", "dirichlet_bcs", "dirichlet_dofs",
           "factorize", "newton", "same_form", "solve"]

#: PETSc options of the linear solves: MUMPS LU (user options are laid over these).
DEFAULT_PETSC_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}


class NewtonError(ConvergenceError):
    """Newton's method on ``F(u, m) = 0`` diverged or did not converge in ``max_it`` iterations.

    ``history`` holds the residual norms ``||F(u_k)||`` (free dofs), one per iterate.
    """

    def __init__(self, message: str, history: Sequence[float]):
        super().__init__(message)
        self.history = list(history)


def _history(norms: Sequence[float]) -> str:
    return ", ".join(f"{r:.3e}" for r in norms)


def same_form(a, b) -> bool:
    """Whether two UFL forms assemble to the same tensor: the same structure (signature, which
    renumbers indices and coefficients) on the very same coefficients, constants and subdomain data."""
    def data_ids(form):
        return [(domain, kind, [id(d) for d in data]) for domain, kinds in form.subdomain_data().items()
                for kind, data in sorted(kinds.items())]

    return (a.signature() == b.signature()
            and [id(c) for c in a.coefficients()] == [id(c) for c in b.coefficients()]
            and [id(c) for c in a.constants()] == [id(c) for c in b.constants()]
            and data_ids(a) == data_ids(b))


def dirichlet_bcs(V, entries) -> list:
    """Dirichlet conditions on ``V`` from ``DirichletBC`` objects or ``(where, value)`` pairs.

    ``where`` is ``"boundary"`` (the whole exterior boundary), an array of dof
    (node) indices of ``V``, or a marker ``x -> bool array`` (facets whose vertices
    all satisfy it); ``value`` is a number, a function ``x -> values`` (interpolated)
    or a ``Function`` on ``V``.  A single pair or object is accepted as a list of one.
    """
    from dolfinx import fem, mesh

    msh = V.mesh
    tdim = msh.topology.dim
    out = []
    if entries is None:
        return out
    if isinstance(entries, fem.DirichletBC) or (isinstance(entries, tuple) and len(entries) == 2
                                                and not isinstance(entries[0], (fem.DirichletBC, tuple))):
        entries = [entries]
    for entry in entries:
        if isinstance(entry, fem.DirichletBC):
            out.append(entry)
            continue
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise InvalidParameterError(
                "each Dirichlet condition must be a dolfinx.fem.DirichletBC or a pair (where, value) with where "
                f"'boundary', a dof array or a marker x -> bool; got {entry!r}")
        where, value = entry
        msh.topology.create_connectivity(tdim - 1, tdim)
        if isinstance(where, str):
            if where != "boundary":
                raise InvalidParameterError(
                    f"unknown Dirichlet location {where!r}; allowed: 'boundary', dofs, marker")
            facets = mesh.exterior_facet_indices(msh.topology)
            dofs = fem.locate_dofs_topological(V, tdim - 1, facets)
        elif callable(where):
            facets = mesh.locate_entities(msh, tdim - 1, where)
            dofs = fem.locate_dofs_topological(V, tdim - 1, facets)
        else:
            dofs = np.asarray(where)
            if dofs.ndim != 1 or not np.issubdtype(dofs.dtype, np.integer):
                raise ShapeMismatchError(
                    f"Dirichlet dofs must be a 1D integer array; got {dofs.dtype} {dofs.shape}")
            n_nodes = V.dofmap.index_map.size_local
            if dofs.size and (dofs.min() < 0 or dofs.max() >= n_nodes):
                raise ShapeMismatchError(f"Dirichlet dofs must lie in 0..{n_nodes - 1}")
            dofs = dofs.astype(np.int32)
        if len(dofs) == 0:
            raise InvalidParameterError(f"the Dirichlet condition at {where!r} selects no dofs")
        if isinstance(value, fem.Function):
            g = value
        else:
            g = fem.Function(V)
            if callable(value):
                g.interpolate(value)
            else:
                g.x.array[:] = float(value)
        out.append(fem.dirichletbc(g, dofs))
    return out


def dirichlet_dofs(bcs) -> np.ndarray:
    """The sorted (unrolled) dof indices the conditions ``bcs`` fix."""
    if not bcs:
        return np.zeros(0, dtype=np.int32)
    return np.unique(np.concatenate([bc.dof_indices()[0] for bc in bcs])).astype(np.int32)


def assemble_vector(form, n: int) -> np.ndarray:
    """The owned entries ``(n,)`` of the assembled rank-1 ``form`` (a compiled ``dolfinx.fem.Form``)."""
    from dolfinx import fem, la

    vec = fem.assemble_vector(form)
    vec.scatter_reverse(la.InsertMode.add)
    return vec.array[:n].copy()


def factorize(form, bcs, comm, petsc_options: dict, name: str = "form"):
    """Assemble the bilinear ``form`` (Dirichlet rows and columns identity) and set up its PETSc solver.

    Returns ``(A, ksp)``; destroy both when done (:func:`destroy`).  With the default
    options ``ksp.setUp()`` computes the LU factorization, which every :func:`solve` reuses.
    """
    from dolfinx.fem.petsc import assemble_matrix
    from petsc4py import PETSc

    A = assemble_matrix(form, bcs=bcs)
    A.assemble()
    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(A)
    prefix = petsc_prefix(name)
    opts = PETSc.Options()
    for key, value in petsc_options.items():
        opts[prefix + key] = value
    try:
        ksp.setOptionsPrefix(prefix)
        ksp.setFromOptions()
        ksp.setUp()
    except PETSc.Error as exc:
        ksp.destroy()
        A.destroy()
        raise DolfinxSolveError(
            f"the factorization of the Jacobian dF/du failed (PETSc error {exc}); is the problem well posed "
            "(Dirichlet conditions given, coefficients nonzero)?") from exc
    finally:
        for key in petsc_options:
            del opts[prefix + key]
    return A, ksp


def destroy(solver) -> None:
    """Free the PETSc objects of a :func:`factorize` result."""
    A, ksp = solver
    ksp.destroy()
    A.destroy()


def solve(solver, rhs: np.ndarray, petsc_options: dict, transpose: bool = False) -> np.ndarray:
    """``A^{-1} rhs`` (or ``A^{-T} rhs``) with a :func:`factorize` result; a failed solve raises."""
    from petsc4py import PETSc

    A, ksp = solver
    b, x = A.createVecLeft(), A.createVecRight()
    b.array[:] = rhs
    try:
        (ksp.solveTranspose if transpose else ksp.solve)(b, x)
        reason = ksp.getConvergedReason()
        out = x.array.copy()
    except PETSc.Error as exc:
        raise DolfinxSolveError(f"the PETSc linear solve failed ({exc}); is the problem well posed?") from exc
    finally:
        b.destroy()
        x.destroy()
    if reason < 0 or not np.all(np.isfinite(out)):
        names = {v: k for k, v in vars(PETSc.KSP.ConvergedReason).items() if isinstance(v, int)}
        raise DolfinxSolveError(
            f"the PETSc linear solve did not converge (KSP reason {reason} = {names.get(reason, '?')} after "
            f"{ksp.getIterationNumber()} "
            f"iterations, options {petsc_options}); for a singular Jacobian check the Dirichlet conditions")
    return out


def newton(
    u,
    n: int,
    residual: Callable[[], np.ndarray],
    jacobian_solve: Callable[[np.ndarray], np.ndarray],
    free: np.ndarray,
    *,
    linear: bool,
    rtol: float,
    atol: float,
    max_it: int,
    divergence_factor: float,
) -> list[float]:
    r"""Newton's method on ``F(u) = 0``, in place on the ``Function`` ``u`` (its start, Dirichlet values set).

    ``residual()`` assembles ``F`` at the current ``u`` (``(n,)``); ``jacobian_solve(r)``
    returns ``J_u^{-1} r`` at the current ``u``.  Updates are zero on the Dirichlet dofs
    (``free`` is ``False`` there).  Stops when ``||F|| <= max(atol, rtol ||F_0||)`` over the free
    dofs, or after one step for an affine ``F`` (``linear``).  Returns the residual history;
    raises :class:`NewtonError` on a non-finite or growing residual and after ``max_it`` steps.
    """
    history: list[float] = []
    r0 = None
    for it in range(max_it + 1):
        r = residual()
        r[~free] = 0.0
        norm = float(np.linalg.norm(r))
        history.append(norm)
        if not np.isfinite(norm):
            raise NewtonError(
                f"Newton diverged: the residual is not finite at iteration {it} (||F|| history: "
                f"{_history(history)}); try a better initial_guess, smaller steps in m, or check the residual",
                history)
        r0 = norm if r0 is None else r0
        if norm <= max(atol, rtol * r0) or (linear and it == 1):
            break
        if it > 0 and norm > divergence_factor * max(r0, atol):
            raise NewtonError(
                f"Newton diverged: ||F|| grew from {r0:.3e} to {norm:.3e} in {it} iterations (history: "
                f"{_history(history)}); try a better initial_guess or check the residual", history)
        if it == max_it:
            raise NewtonError(
                f"Newton did not converge in max_it={max_it} iterations: ||F|| history {_history(history)} "
                f"(target max(atol={atol:g}, rtol={rtol:g} * ||F_0||)); raise max_it or check the "
                "residual", history)
        du = jacobian_solve(-r)
        du[~free] = 0.0
        u.x.array[:n] += du
        u.x.scatter_forward()
    return history
