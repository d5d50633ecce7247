"""Error classes.  Every message says what was wrong and what is allowed."""


class PhysinvError(Exception):
    """Base class of all physinv errors."""


class InvalidParameterError(PhysinvError, ValueError):
    """A parameter is NaN/Inf, out of its admissible range, or otherwise invalid."""


class MeshError(InvalidParameterError):
    """A mesh that is not a conforming triangle mesh, or a mesh file that cannot be read."""


class ShapeMismatchError(PhysinvError, ValueError):
    """Tensors, grids or meshes whose shapes do not fit together."""


class UnknownNameError(PhysinvError, KeyError):
    """A name (case study, simulator, solver...) that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConvergenceError(PhysinvError, RuntimeError):
    """An iterative solver did not reach its tolerance."""


class DuplicateNameError(PhysinvError, ValueError):
    """A second, different entry registered under a name already taken."""


class MissingExtraError(PhysinvError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class UnstableTimeStepError(PhysinvError, ValueError):
    """A time step violates the stability (CFL) limit of the scheme."""


class SingularMatrixError(InvalidParameterError):
    """A linear system's matrix is singular: usually no Dirichlet condition (a pure Neumann
    problem fixes ``u`` only up to a constant), a zero coefficient, or a node in no element."""
