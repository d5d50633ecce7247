"""Neural operators for inverse problems: DeepONet, FNO (neuraloperator), NIO, and the input guard.

Every model maps a batch of measurement matrices ``(B, L, n_boundary, C)`` to a
field ``(B, n, n)`` on the grid; :class:`InputGuard` makes a trained model
refuse input in another format.  ``neuraloperator`` (the ``learn`` extra) is
imported only when an FNO or a NIO is built.  See ``docs/calderon_nio.md``.
"""

from physinv.learn.models.deeponet import DeepONet
from physinv.learn.models.fno import BoundaryFNO, neuralop_fno
from physinv.learn.models.guard import InputGuard, InputSpec, InputSpecMismatchError
from physinv.learn.models.nio import NIO

__all__ = ["DeepONet", "BoundaryFNO", "NIO", "InputGuard", "InputSpec", "InputSpecMismatchError", "neuralop_fno"]
