"""One base for linear-PDE simulators: ``m -> y = Q(m, u)`` with ``A(m) u = b(m)``.

The parameter ``m`` (a conductivity in S/m, a diffusivity...) is the
coefficient of a discretized operator ``A`` (:class:`physinv.core.operator.Operator`);
the states ``u`` of all right-hand sides (a batch, ``(..., *state_shape)``)
are solved with one preparation of the solver (a sparse LU factorization, an
AMG hierarchy...) and observed.  A subclass supplies only

* :meth:`LinearPDESimulator.right_hand_side`: ``b(m)``;
* :meth:`LinearPDESimulator.observation`: ``y = Q(m, u)`` (default: ``u`` itself);
* :meth:`LinearPDESimulator.check_parameters`: the admissible ``m``.

What the base does once for all of them:

* the solve is :func:`physinv.linalg.implicit.implicit_solve`: reverse mode
  is one adjoint solve ``A^T lam = dJ/du`` and ``dJ/dm = -lam^T (dA/dm) u``,
  forward mode one tangent solve; no solver iteration is unrolled;
* one cache of the prepared solver, keyed on the values (and dtype, device)
  of ``m``: the forward solve, its adjoint solve and every later call with an
  equal ``m`` (a Gauss-Newton Jacobian, a line search returning to the same
  point) reuse it; a new ``m``, also an in-place change of the caller's
  tensor, prepares anew;
* ``.to(device)``, ``.cpu()``, ``.double()``, ``.float()`` convert the
  operator's precomputed tensors (element data, masks, sparse parts) with the
  module's buffers, and drop the cache.
"""

from __future__ import annotations

import torch

from physinv.core.simulator import Simulator
from physinv.linalg.implicit import implicit_solve
from physinv.linalg.solvers import DirectSolver, PreparedSolve


def convert_tensors(holder: object, fn) -> None:
    """Replace every tensor attribute of ``holder`` (also inside list/tuple attributes) by ``fn(tensor)``,
    in place: what :meth:`torch.nn.Module._apply` does to a module's own tensors."""
    for name, value in list(vars(holder).items()):
        if isinstance(value, torch.Tensor):
            setattr(holder, name, fn(value))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
            setattr(holder, name, type(value)(fn(v) for v in value))


class LinearPDESimulator(Simulator):
    """``m -> Q(m, u)`` with ``A(m) u = b(m)``, implicitly differentiated, one cached factorization.

    Parameters
    ----------
    operator
        The discretized operator ``A`` (:class:`~physinv.core.operator.Operator`);
        its coefficient is the simulator's parameter ``m``.  It is converted in
        place by ``.to()``/``.double()``/..., like the module's buffers.
    solver
        A solver of :mod:`physinv.linalg.solvers` (default: sparse direct, one
        LU for all right-hand sides and the adjoint solves).
    """

    def __init__(self, operator, solver=None):
        super().__init__()
        self.operator = operator
        self.solver = solver if solver is not None else DirectSolver()
        self._prepared: tuple[torch.Tensor, PreparedSolve] | None = None

    # ------------------------------------------------------------------ what a subclass supplies
    def right_hand_side(self, m: torch.Tensor) -> torch.Tensor:
        """``b(m)``, shape ``(..., *operator.state_shape)``."""
        raise NotImplementedError(f"{type(self).__name__} must define right_hand_side(m)")

    def observation(self, m: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``y = Q(m, u)`` from the states ``u`` (default: the states themselves)."""
        return u

    # ------------------------------------------------------------------ what the base provides
    def prepared_solve(self, m: torch.Tensor) -> PreparedSolve:
        """The solver prepared for ``A(m)`` (factorization, AMG hierarchy...), reused while ``m`` keeps
        its values, dtype and device."""
        key = m.detach()
        cached = self._prepared
        if cached is None or not _same(cached[0], key):
            key = key.clone()  # neither the cache key nor the solver may alias the caller's tensor
            self._prepared = (key, self.solver.prepare(self.operator, key))
        return self._prepared[1]

    def solve(self, m: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``u = A(m)^{-1} b`` for ``b`` of shape ``(..., *state_shape)``, differentiable in ``m`` and ``b``."""
        self.check_parameters(m)
        return self._solve(m, b)

    def state(self, m: torch.Tensor) -> torch.Tensor:
        """The states ``u(m) = A(m)^{-1} b(m)``, shape ``(..., *state_shape)``."""
        self.check_parameters(m)
        return self._solve(m, self.right_hand_side(m))

    def _solve(self, m: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return implicit_solve(self.operator, m, b, self.solver, prepared=self.prepared_solve(m))

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return self.observation(m, self.state(m))

    def _apply(self, fn, recurse=True):
        """``.to(device)``, ``.cuda()``, ``.double()`` convert the operator's precomputed tensors too."""
        super()._apply(fn, recurse)
        convert_tensors(self.operator, fn)
        self._prepared = None
        return self


def _same(key: torch.Tensor, m: torch.Tensor) -> bool:
    return (key.shape == m.shape and key.dtype == m.dtype and key.device == m.device
            and bool(torch.equal(key, m)))
