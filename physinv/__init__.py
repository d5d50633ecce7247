"""physinv: PDE inverse problems with differentiable PyTorch simulators.

Layers (imports point downward only): ``cases`` -> ``cli`` -> ``invert`` ->
``learn`` -> ``sims`` -> ``linalg`` -> ``discretize`` -> ``fem`` (optional) ->
``core``.  Importing :mod:`physinv` imports only the core; DOLFINx, deepxde and
neuraloperator are imported where they are used.
"""

__version__ = "0.1.0"
