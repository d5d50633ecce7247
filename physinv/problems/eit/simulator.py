"""Electrical impedance tomography: conductivity -> boundary voltages (P1 FEM, torch).

Two forward models on a triangle mesh (equations in
:mod:`physinv.problems.eit.operators`):

* :class:`EITSimulator`, the complete electrode model (CEM): ``L`` electrodes
  with contact impedances ``z_l`` (Ohm m^2) inject currents ``I`` (A, each
  pattern sums to zero); the data are linear combinations of the electrode
  voltages ``U`` (V, grounded: ``sum_l U_l = 0``);
* :class:`ContinuumEITSimulator`, the continuum model: a boundary current
  density ``g`` (A/m, ``int g ds = 0``) gives the boundary voltage ``u|_dOmega``
  (V, grounded: ``int u ds = 0``) -- the Neumann-to-Dirichlet map.

Electrodes and protocols
------------------------
Electrode ``k = 1..L`` (index ``k - 1`` in arrays) is the ``k``-th electrode of
the :class:`~physinv.problems.eit.electrodes.ElectrodeMesh`; on the shipped disks
(``meshes/eit_disk.geo``) electrode 1 sits at angle 0 (the point ``(1, 0)``)
and the numbering runs counter-clockwise.  :func:`injection_pattern` and
:func:`measurement_pattern` build the standard protocols:

* ``"adjacent"`` injection: pattern ``k`` drives ``+I`` into electrode ``k`` and
  ``-I`` out of ``k + 1`` (mod ``L``): ``L`` patterns;
* ``"opposite"`` injection: ``+I`` into ``k``, ``-I`` out of ``k + L/2``,
  ``k = 1..L/2``: ``L/2`` patterns;
* ``"adjacent"`` measurement: ``U_k - U_{k+1}`` for ``k = 1..L`` (all pairs,
  current-carrying electrodes included: the CEM models their contact voltage
  drop); ``"opposite"``: ``U_k - U_{k+L/2}``, ``k = 1..L/2``; ``"electrodes"``:
  the grounded voltages ``U`` themselves.

``docs/problems/eit.md`` draws the numbering (:func:`physinv.problems.eit.plots.plot_protocol`).

Differentiation
---------------
Both models are :class:`~physinv.linalg.linear_pde.LinearPDESimulator`
subclasses: the solve is implicitly differentiated (reverse mode = one adjoint
solve, forward mode = one tangent solve, one LU of the system for all
patterns, cached while ``sigma`` does not change).  :meth:`EITSimulator.jacobian`
returns the full sensitivity matrix by the adjoint method (reciprocity): with forward fields ``x_i`` and
adjoint fields ``w_m = A^{-1} q_m`` of the measurement functionals,

    d y_{im} / d sigma_e = - x_i^T (dA/dsigma_e) w_m = - |e| grad u_i . grad w_m   on cell e,

``n_patterns + n_measurements`` solves with the same factors, whatever the
number of cells.
"""

from __future__ import annotations

import numpy as np
import torch

from physinv.core.checks import check_finite
from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.core.simulator import LinearOperatorPair, SimulatorExample, register_simulator
from physinv.problems.eit.operators import CompleteElectrodeOperator, NeumannOperator, GroundedP1Operator
from physinv.problems.eit.electrodes import ElectrodeMesh, square_electrode_mesh
from physinv.discretize.mesh import TriMesh
from physinv.linalg.linear_pde import LinearPDESimulator

__all__ = [
    "ContinuumEITSimulator",
    "EITSimulator",
    "INJECTIONS",
    "MEASUREMENTS",
    "check_currents",
    "driven_measurements",
    "injection_pattern",
    "measurement_pattern",
    "square_electrode_mesh",
]

INJECTIONS = ("adjacent", "opposite")
MEASUREMENTS = ("adjacent", "opposite", "electrodes")


def _check_even(name: str, n_electrodes: int) -> None:
    if n_electrodes % 2:
        raise InvalidParameterError(f"the {name!r} protocol needs an even number of electrodes; got {n_electrodes}")


def injection_pattern(name: str, n_electrodes: int, amplitude: float = 1.0) -> np.ndarray:
    """Current patterns ``(n_patterns, L)`` (A) of a named protocol (see the module doc)."""
    L = int(n_electrodes)
    if L < 2:
        raise InvalidParameterError(f"EIT needs at least 2 electrodes; got {n_electrodes}")
    if name not in INJECTIONS:
        raise UnknownNameError(f"unknown injection protocol {name!r}; allowed: {', '.join(INJECTIONS)}")
    if name == "opposite":
        _check_even(name, L)
    shift, count = (1, L) if name == "adjacent" else (L // 2, L // 2)
    patterns = np.zeros((count, L))
    k = np.arange(count)
    patterns[k, k] = amplitude
    patterns[k, (k + shift) % L] = -amplitude
    return patterns


def measurement_pattern(name: str, n_electrodes: int) -> np.ndarray:
    """Measurement matrix ``(n_measurements, L)``: data = ``pattern @ U`` (see the module doc)."""
    L = int(n_electrodes)
    if name not in MEASUREMENTS:
        raise UnknownNameError(f"unknown measurement protocol {name!r}; allowed: {', '.join(MEASUREMENTS)}")
    if name == "electrodes":
        return np.eye(L)
    return injection_pattern(name, L)


def check_currents(currents: np.ndarray, n_electrodes: int, what: str = "current pattern") -> np.ndarray:
    """Validate ``(n_patterns, n_electrodes)`` currents: finite, each row summing to zero (Kirchhoff)."""
    currents = np.asarray(currents, dtype=np.float64)
    if currents.ndim == 1:
        currents = currents[None]
    if currents.ndim != 2 or currents.shape[1] != n_electrodes:
        raise ShapeMismatchError(
            f"{what}s have shape {currents.shape}; the mesh has {n_electrodes} electrodes, so expected "
            f"(n_patterns, {n_electrodes})"
        )
    if not np.all(np.isfinite(currents)):
        raise InvalidParameterError(f"{what}s contain NaN/Inf")
    totals = np.abs(currents.sum(axis=1))
    scale = np.abs(currents).sum(axis=1)
    bad = np.flatnonzero(totals > 1e-10 * np.maximum(scale, 1e-300))
    if bad.size or np.any(scale == 0):
        which = bad if bad.size else np.flatnonzero(scale == 0)
        raise InvalidParameterError(
            f"{what} {int(which[0])} sums to {currents[which[0]].sum():.3g} A; every injected current pattern "
            "must sum to zero (what enters the body leaves it) and be nonzero"
        )
    return currents


def driven_measurements(currents, measurement_matrix) -> torch.Tensor:
    """Boolean ``(n_patterns, n_measurements)``: the measurement involves an electrode that carries current
    in that pattern (3 of 16 per pattern for adjacent/adjacent).  Those voltages include the contact
    voltage drop, so they depend on the poorly known contact impedance; EIT systems usually skip them."""
    driven = torch.as_tensor(np.abs(np.asarray(currents)) > 0, dtype=torch.float64)
    used = torch.as_tensor(np.abs(np.asarray(measurement_matrix)) > 0, dtype=torch.float64)
    return (driven @ used.T) > 0


class _EITBase(LinearPDESimulator):
    """Shared by both models: grounded P1 operator, fixed loads, measurement functionals, adjoint Jacobian."""

    def __init__(self, operator: GroundedP1Operator, rhs: torch.Tensor, functionals: torch.Tensor,
                 conductivity_on: str, solver=None):
        if conductivity_on not in ("cell", "node"):
            raise UnknownNameError(f"conductivity_on must be 'cell' or 'node'; got {conductivity_on!r}")
        super().__init__(operator, solver)
        self.conductivity_on = conductivity_on
        mesh = operator.mesh
        self.parameter_shape = (mesh.num_cells if conductivity_on == "cell" else mesh.num_nodes,)
        self.register_buffer("rhs", rhs)  # (n_patterns, n_state)
        self.register_buffer("functionals", functionals)  # (n_measurements, n_state)

    @property
    def num_patterns(self) -> int:
        return self.rhs.shape[0]

    @property
    def num_measurements(self) -> int:
        return self.functionals.shape[0]

    def check_parameters(self, sigma: torch.Tensor) -> None:
        if tuple(sigma.shape) != self.parameter_shape:
            raise ShapeMismatchError(
                f"conductivity has shape {tuple(sigma.shape)}; this simulator expects {self.parameter_shape} "
                f"({'one value per cell' if self.conductivity_on == 'cell' else 'one value per node'}; "
                f"conductivity_on={self.conductivity_on!r})"
            )
        self.operator.check_sigma(sigma)

    def right_hand_side(self, sigma: torch.Tensor) -> torch.Tensor:
        """The loads of the injected currents, ``(n_patterns, n_state)`` (independent of ``sigma``)."""
        return self.rhs.to(sigma.dtype)

    def observation(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Data ``(n_patterns, n_measurements)``: the measurement functionals applied to the states."""
        return x @ self.functionals.to(sigma.dtype).T

    def fields(self, sigma: torch.Tensor) -> torch.Tensor:
        """Discrete states ``(n_patterns, n_state)`` (nodal potentials, then any extra unknowns)."""
        return self.state(sigma)

    def jacobian(self, sigma: torch.Tensor) -> torch.Tensor:
        """``d data / d sigma`` as ``(n_patterns * n_measurements, n_parameters)`` (adjoint method, module doc)."""
        self.check_parameters(sigma)
        with torch.no_grad():
            solve = self.prepared_solve(sigma)
            dtype = sigma.dtype
            n = self.operator.mesh.num_nodes
            x = solve(self.rhs.to(dtype))[:, :n]
            w = solve(self.functionals.to(dtype))[:, :n]
            cells = self.operator.cells
            stiff = self.operator.ref_stiffness.to(dtype)
            # J[i, m, e] = - x_i[cell e]^T K_e^ref w_m[cell e]
            kx = torch.einsum("eab,ieb->iea", stiff, x[:, cells])
            jac = -torch.einsum("iea,mea->ime", kx, w[:, cells]).reshape(-1, cells.shape[0])
            if self.conductivity_on == "node":
                jac = self.operator._scatter(jac[..., None].expand(-1, -1, 3) / 3.0)
        return jac


class EITSimulator(_EITBase):
    """Complete electrode model: conductivity -> measured voltages ``(n_patterns, n_measurements)`` (V).

    Parameters
    ----------
    electrode_mesh
        Mesh with ``L`` marked electrodes.
    currents
        A protocol name (``"adjacent"``, ``"opposite"``) or an array
        ``(n_patterns, L)`` of injected currents (A); each pattern sums to zero.
    measurements
        A protocol name (``"adjacent"``, ``"opposite"``, ``"electrodes"``) or a
        measurement matrix ``(n_measurements, L)``.
    contact_impedance
        ``z > 0`` (Ohm m^2), a scalar or one value per electrode.
    conductivity_on
        ``"cell"`` (piecewise constant, ``(n_cells,)``) or ``"node"`` (P1, ``(n_nodes,)``), S/m.
    n_electrodes
        If given, the number of electrodes the caller expects; a mesh with another count is refused.
    solver
        Linear solver of :mod:`physinv.linalg.solvers` (default: sparse direct).
    """

    def __init__(self, electrode_mesh: ElectrodeMesh, currents="adjacent", measurements="adjacent",
                 contact_impedance=0.01, conductivity_on: str = "cell", n_electrodes: int | None = None,
                 dtype=torch.float64, device=None, solver=None):
        if not isinstance(electrode_mesh, ElectrodeMesh):
            raise InvalidParameterError(
                "EITSimulator needs an ElectrodeMesh (a mesh with electrode markers); got "
                f"{type(electrode_mesh).__name__}. "
                "Load one with ElectrodeMesh.from_file / ElectrodeMesh.shipped / ElectrodeMesh.eit_disk"
            )
        L = electrode_mesh.num_electrodes
        if n_electrodes is not None and int(n_electrodes) != L:
            raise ShapeMismatchError(f"expected {n_electrodes} electrodes but the mesh has {L}")
        pattern = injection_pattern(currents, L) if isinstance(currents, str) else currents
        self.currents = check_currents(pattern, L)
        meas = measurement_pattern(measurements, L) if isinstance(measurements, str) else np.asarray(measurements,
                                                                                                      dtype=np.float64)
        if meas.ndim != 2 or meas.shape[1] != L:
            raise ShapeMismatchError(f"measurement matrix has shape {meas.shape}; expected (n_measurements, {L})")
        if not np.all(np.isfinite(meas)):
            raise InvalidParameterError("measurement matrix contains NaN/Inf")
        operator = CompleteElectrodeOperator(electrode_mesh, contact_impedance, dtype=dtype, device=device)
        rhs = operator.rhs(torch.as_tensor(self.currents, dtype=dtype, device=device))
        n = electrode_mesh.mesh.num_nodes
        functionals = torch.zeros(meas.shape[0], n + L, dtype=dtype, device=device)
        functionals[:, n:] = torch.as_tensor(meas, dtype=dtype)
        super().__init__(operator, rhs, functionals, conductivity_on, solver)
        self.electrode_mesh = electrode_mesh
        self.measurement_matrix = meas

    @property
    def num_electrodes(self) -> int:
        return self.electrode_mesh.num_electrodes

    def electrode_voltages(self, sigma: torch.Tensor) -> torch.Tensor:
        """Grounded electrode voltages ``U`` ``(n_patterns, L)`` (V)."""
        return self.fields(sigma)[:, self.electrode_mesh.mesh.num_nodes:]


class ContinuumEITSimulator(_EITBase):
    """Continuum model: conductivity -> boundary voltages ``(n_patterns, n_boundary)`` (the NtD map).

    ``current_density`` is ``(n_patterns, n_boundary)`` (A/m) at the nodes
    ``mesh.boundary_nodes()`` (ascending index, see :attr:`boundary_nodes`),
    P1-interpolated along the boundary; each pattern must integrate to zero.
    ``conductivity_on``, ``dtype``, ``device`` and ``solver`` as for :class:`EITSimulator`.
    """

    def __init__(self, mesh: TriMesh, current_density, conductivity_on: str = "cell", dtype=torch.float64,
                 device=None, solver=None):
        operator = NeumannOperator(mesh, dtype=dtype, device=device)
        nb = operator.boundary_nodes.size
        g = torch.as_tensor(np.asarray(current_density, dtype=np.float64), dtype=dtype, device=device)
        if g.ndim == 1:
            g = g[None]
        if g.ndim != 2 or g.shape[1] != nb:
            raise ShapeMismatchError(f"current_density has shape {tuple(g.shape)}; expected (n_patterns, {nb}) "
                                     "(one value per boundary node)")
        check_finite("current_density", g)
        net = (g * operator.boundary_weights).sum(-1)
        gross = (g.abs() * operator.boundary_weights).sum(-1)
        if torch.any(net.abs() > 1e-8 * gross) or torch.any(gross == 0):
            k = int(torch.argmax(net.abs() / gross.clamp_min(1e-300)))
            raise InvalidParameterError(
                f"current density {k} integrates to {float(net[k]):.3g} A over the boundary; it must integrate "
                "to zero (and be nonzero)"
            )
        functionals = torch.zeros(nb, mesh.num_nodes, dtype=dtype, device=device)
        functionals[torch.arange(nb), torch.from_numpy(operator.boundary_nodes)] = 1.0
        super().__init__(operator, operator.rhs(g), functionals, conductivity_on, solver)
        self.boundary_nodes = operator.boundary_nodes


def _example_with_jacobian(sim: _EITBase, dtype, device) -> SimulatorExample:
    """The example at a random conductivity in [1, 1.5) S/m, with the adjoint-method Jacobian checked
    against autograd's reverse mode through the implicit solve."""
    rng = np.random.default_rng(0)
    sigma = torch.as_tensor(1.0 + 0.5 * rng.random(sim.parameter_shape), dtype=dtype, device=device)
    jac = sim.jacobian(sigma)

    def reverse_mode(w: torch.Tensor) -> torch.Tensor:
        s = sigma.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(sim(s).reshape(-1), s, grad_outputs=w)
        return g

    pair = LinearOperatorPair("Jacobian (reciprocity) vs autograd adjoint", lambda v: jac @ v, reverse_mode,
                              sim.parameter_shape, (jac.shape[0],))
    return SimulatorExample(sim, sigma, [pair])


@register_simulator("eit-cem", "EIT complete electrode model: conductivity -> electrode voltages (P1, any mesh)")
def _example(dtype, device) -> SimulatorExample:
    sim = EITSimulator(square_electrode_mesh(4), "adjacent", "adjacent", contact_impedance=0.1,
                       dtype=dtype, device=device)
    return _example_with_jacobian(sim, dtype, device)


@register_simulator("eit-continuum", "EIT continuum model: conductivity -> boundary voltages (NtD map, P1)")
def _example_continuum(dtype, device) -> SimulatorExample:
    mesh = TriMesh.unit_square(4)
    angle = np.arctan2(*(mesh.points[mesh.boundary_nodes()] - 0.5).T[::-1])
    sim = ContinuumEITSimulator(mesh, np.stack([np.cos(angle), np.sin(2 * angle)]), dtype=dtype, device=device)
    return _example_with_jacobian(sim, dtype, device)
