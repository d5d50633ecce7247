"""Neural operators for inverse problems: DeepONet, FNO (neuraloperator), NIO, InversionNet, and the input guard.

Every model maps a batch of measurement matrices ``(B, L, n_boundary, C)`` to a
field ``(B, n, n)`` on the grid; :class:`InputGuard` makes a trained model
refuse input in another format.  For seismic full-waveform inversion,
:class:`InversionNet` (the OpenFWI CNN baseline) and :class:`GatherNIO` (a NIO
whose branch is a CNN over one shot gather) map shot gathers
``(B, n_shots, n_receivers, nt)`` to velocity maps ``(B, nz, nx)``.
``neuraloperator`` (the ``learn`` extra) is imported only when an FNO or a
NIO is built.  See ``docs/cases/calderon_nio.md``.
"""

from physinv.learn.models.deeponet import DeepONet
from physinv.learn.models.fno import BoundaryFNO, neuralop_fno
from physinv.learn.models.guard import InputGuard, InputSpec, InputSpecMismatchError
from physinv.learn.models.inversionnet import InversionNet
from physinv.learn.models.nio import NIO, GatherBranch, GatherNIO

__all__ = ["DeepONet", "BoundaryFNO", "NIO", "GatherNIO", "GatherBranch", "InversionNet", "InputGuard", "InputSpec",
           "InputSpecMismatchError", "neuralop_fno"]
