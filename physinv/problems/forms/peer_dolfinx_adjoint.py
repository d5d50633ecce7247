r"""The reference peer of :class:`~physinv.fem.FormSimulator`: the same objective taped by dolfinx-adjoint.

dolfinx-adjoint (pyadjoint for DOLFINx) differentiates a DOLFINx program by
recording it on a tape and replaying the tape backwards.  This module builds,
with dolfinx-adjoint's own objects, the objective that a physinv
:class:`~physinv.invert.InverseProblem` minimizes for a point-observed UFL
residual ``F(u, m; v) = 0`` with a DG0 control and cell total variation,

.. math::

    J(m) = \frac12 \sum_s \Big\| \frac{B u_s(m) - d_s}{\sigma_s} \Big\|^2
           + \beta \int_{\mathcal F_{int}} \sqrt{[\![m]\!]^2 + \varepsilon^2}\, dS,

one experiment ``s`` per source, ``B`` the point evaluation at the sensors.
For a DG0 ``m`` the facet integral is exactly
``sum_e |e| sqrt((m_i - m_j)^2 + eps^2)`` over the interior edges: physinv's
:class:`~physinv.invert.CellTotalVariation` with ``gamma = 0``.  Each
experiment is one ``dolfinx_adjoint.NonlinearProblem`` (PETSc SNES Newton, LU);
the point misfit is a small custom pyadjoint ``Block`` (dolfinx-adjoint 0.4
does not annotate ``Function.eval``) whose matrix ``B`` is built here from
``Function.eval`` of basis functions, independently of physinv's
:func:`~physinv.fem.point_evaluation_matrix`.

Installing the peer: ``dolfinx-adjoint`` and ``fenicsx-compat`` declare a
dependency on the distribution ``fenics-dolfinx``, which the PyPI wheel
``dolfinx-solver-real`` does not provide, so they are installed without their
dependencies (:data:`INSTALL`).  Importing ``dolfinx_adjoint`` starts a tape
and turns annotation on for the whole process: it is imported only inside
:class:`DolfinxAdjointObjective`, which pauses annotation once its tape is
recorded.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable, Sequence

import numpy as np

from physinv.core.errors import MissingExtraError, ShapeMismatchError
from physinv.fem import import_dolfinx

__all__ = ["INSTALL", "DolfinxAdjointObjective", "peer_missing_reason"]

#: How to install the peer into a physinv environment (the ``peers`` extra, then the two packages).
INSTALL = ("pip install 'physinv[peers]' && "
           "pip install --no-deps dolfinx-adjoint==0.4.0 fenicsx-compat==0.4.0")


def peer_missing_reason() -> str | None:
    """``None`` when dolfinx-adjoint is installed, else why not and :data:`INSTALL` (nothing is imported)."""
    missing = [name for name in ("pyadjoint", "dolfinx_adjoint", "fenicsx_compat")
               if importlib.util.find_spec(name) is None]
    if missing:
        return (f"dolfinx-adjoint is not installed (missing module(s): {', '.join(missing)}); install it with: "
                f"{INSTALL}")
    return None


def _point_matrix(V, points: np.ndarray) -> np.ndarray:
    """Dense ``(n_points, n_dofs)`` ``B`` with ``(B u)_i = u(x_i)``, from ``Function.eval`` of basis functions."""
    from dolfinx import fem, geometry

    msh = V.mesh
    p3 = np.zeros((len(points), 3))
    p3[:, : points.shape[1]] = points
    tree = geometry.bb_tree(msh, msh.topology.dim)
    colliding = geometry.compute_colliding_cells(msh, geometry.compute_collisions_points(tree, p3), p3)
    n = V.dofmap.index_map.size_local
    B = np.zeros((len(points), n))
    basis = fem.Function(V)
    for i in range(len(points)):
        cells = colliding.links(i)
        if len(cells) == 0:
            raise ShapeMismatchError(f"sensor {i} at {points[i]} lies outside the mesh")
        cell = np.array([cells[0]], dtype=np.int32)
        for j in V.dofmap.cell_dofs(cells[0]):
            basis.x.array[:] = 0.0
            basis.x.array[j] = 1.0
            B[i, j] = basis.eval(p3[i], cell)[0]
    return B


class DolfinxAdjointObjective:
    r"""``J(m)`` (module doc) recorded on a pyadjoint tape by dolfinx-adjoint; value and gradient by replay.

    Parameters
    ----------
    V, M
        The state's and the control's DOLFINx function spaces (``M`` DG0, so the TV term is the
        cell-graph one); the same spaces as the physinv simulator, so dofs line up.
    residual
        ``residual(u, m, v, s) -> ufl.Form``, the same callable the physinv simulator was given.
    sources
        The experiments ``s`` (one nonlinear solve each).
    bc_dofs, bc_value
        Dirichlet dofs of ``V`` (homogeneous conditions are the usual case) and their value.
    points
        ``(n_points, 2)`` sensor coordinates.
    data, sigma
        ``(n_experiments, n_points)`` observations and noise standard deviations (broadcastable).
    beta, tv_eps
        Regularization weight (``beta = 0``: the misfit alone) and the TV smoothing ``eps``.
    m
        Control values at which the tape is recorded (``(n_m,)``).
    newton_rtol, newton_atol
        SNES stops at ``||F|| <= max(atol, rtol ||F_0||)`` (the linear solves are LU).  A replay
        starts from the previous solution, where ``||F_0||`` is small: ``atol`` must lie above the
        residual's round-off floor (about 1e-14 for the case's meshes).
    """

    def __init__(self, V, M, residual: Callable[..., Any], sources: Sequence[Any], bc_dofs: np.ndarray,
                 points: np.ndarray, data: np.ndarray, sigma, beta: float, tv_eps: float, m: np.ndarray,
                 bc_value: float = 0.0, newton_rtol: float = 1e-12, newton_atol: float = 1e-12):
        reason = peer_missing_reason()
        if reason is not None:
            raise MissingExtraError(reason)
        import_dolfinx("the dolfinx-adjoint peer")  # dolfinx_solver first, then dolfinx
        import dolfinx
        import pyadjoint
        import ufl

        import dolfinx_adjoint as dxa  # starts a tape and turns annotation on (paused below)
        from dolfinx_adjoint.blocks._vector import _vector

        self._pyadjoint = pyadjoint
        data = np.asarray(data, dtype=np.float64)
        sources = list(sources)
        if data.shape[0] != len(sources) or data.shape[1] != len(points):
            raise ShapeMismatchError(f"data must be (n_experiments, n_points) = ({len(sources)}, {len(points)}); "
                                     f"got {data.shape}")
        weights = np.broadcast_to(1.0 / np.asarray(sigma, dtype=np.float64), data.shape).copy()
        B = _point_matrix(V, np.asarray(points, dtype=np.float64))
        self.B = B

        class PointMisfitBlock(pyadjoint.Block):
            """``0.5 ||w (B u - d)||^2`` as a pyadjoint block on a dolfinx-adjoint Function ``u``."""

            def __init__(self, u, d, w):
                super().__init__()
                self.d, self.w = d, w
                self.add_dependency(u)

            def _residual(self, u):
                return self.w * (B @ u.x.array[: B.shape[1]] - self.d)

            def recompute_component(self, inputs, block_variable, idx, prepared):
                r = self._residual(inputs[0])
                return pyadjoint.AdjFloat(0.5 * float(r @ r))

            def evaluate_adj_component(self, inputs, adj_inputs, block_variable, idx, prepared=None):
                u = inputs[0]
                space = u.function_space
                vec = _vector(space.dofmap.index_map, space.dofmap.index_map_bs, function_space=space)
                vec.array[:] = 0.0
                vec.array[: B.shape[1]] = float(adj_inputs[0]) * (B.T @ (self.w * self._residual(u)))
                return vec

            def evaluate_tlm_component(self, inputs, tlm_inputs, block_variable, idx, prepared=None):
                if tlm_inputs[0] is None:
                    return None
                du = tlm_inputs[0].x.array[: B.shape[1]]
                return pyadjoint.AdjFloat(float(self._residual(inputs[0]) @ (self.w * (B @ du))))

        def point_misfit(u, d, w):
            with pyadjoint.stop_annotating():
                r = w * (B @ u.x.array[: B.shape[1]] - d)
                out = pyadjoint.AdjFloat(0.5 * float(r @ r))
            if pyadjoint.annotate_tape():
                block = PointMisfitBlock(u, d, w)
                pyadjoint.get_working_tape().add_block(block)
                block.add_output(out.block_variable)
            return out

        self.tape = pyadjoint.Tape()
        pyadjoint.set_working_tape(self.tape)
        pyadjoint.continue_annotation()
        try:
            self.M = M
            self.control = dxa.Function(M, name="m")
            self.control.x.array[: len(m)] = np.asarray(m, dtype=np.float64)
            bc = dolfinx.fem.dirichletbc(dolfinx.default_scalar_type(bc_value), np.asarray(bc_dofs, np.int32), V)
            self.problems, self.states = [], []
            J = None
            for k, s in enumerate(sources):
                u = dxa.Function(V, name=f"u{k}")
                F = residual(u, self.control, ufl.TestFunction(V), s)
                problem = dxa.NonlinearProblem(
                    F, u, bcs=[bc],
                    petsc_options={"snes_type": "newtonls", "snes_linesearch_type": "basic",
                                   "snes_rtol": newton_rtol, "snes_atol": newton_atol, "snes_stol": 0.0,
                                   "snes_max_it": 50, "snes_error_if_not_converged": True,
                                   "ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"},
                    adjoint_petsc_options={"ksp_type": "preonly", "pc_type": "lu",
                                           "pc_factor_mat_solver_type": "mumps"},
                    petsc_options_prefix=f"physinv_peer_{id(self)}_{k}_")
                problem.solve()
                self.problems.append(problem)  # the tape replays through these objects: keep them alive
                self.states.append(u)
                term = point_misfit(u, data[k], weights[k])
                J = term if J is None else J + term
            if beta > 0:
                m_ = self.control
                J = J + beta * dxa.assemble_scalar(ufl.sqrt(ufl.jump(m_) ** 2 + tv_eps**2) * ufl.dS)
            self.J = J
            self.reduced = pyadjoint.ReducedFunctional(J, pyadjoint.Control(self.control))
        finally:
            pyadjoint.pause_annotation()
        self._dxa = dxa
        self.n = len(m)

    def newton_iterations(self) -> list[int]:
        """SNES iterations of the last forward solve of each experiment."""
        return [int(p.solver.getIterationNumber()) for p in self.problems]

    def _function(self, m: np.ndarray):
        f = self._dxa.Function(self.M)
        f.x.array[: self.n] = np.asarray(m, dtype=np.float64)
        return f

    def _cold_start(self) -> None:
        """Zero the states the next replay warm-starts Newton from (pyadjoint starts from the last solution)."""
        for u in self.states:
            u.block_variable.saved_output.x.array[:] = 0.0

    def value(self, m: np.ndarray, cold: bool = False) -> float:
        """``J(m)``: the tape replayed at ``m``, one Newton solve per experiment, warm-started from the
        last replay's states as pyadjoint does (``cold=True``: from ``u = 0``)."""
        if cold:
            self._cold_start()
        with self._pyadjoint.stop_annotating():
            return float(self.reduced(self._function(m)))

    def value_and_gradient(self, m: np.ndarray, cold: bool = False) -> tuple[float, np.ndarray]:
        """``J(m)`` and ``dJ/dm`` per control dof (replay as :meth:`value`, then one adjoint sweep)."""
        if cold:
            self._cold_start()
        with self._pyadjoint.stop_annotating():
            value = float(self.reduced(self._function(m)))
            g = self.reduced.derivative()  # apply_riesz=False: the dual vector dJ/dm_k
        return value, np.asarray(g.x.array[: self.n]).copy()

    def close(self) -> None:
        """Drop the tape (annotation stays paused)."""
        self.tape.clear_tape()
        self._pyadjoint.pause_annotation()
