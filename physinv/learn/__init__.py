"""Learned components: datasets, trainer with exact resume, DCDM network.

The ``learn`` extra (deepxde, neuraloperator) is imported only by the modules that use it.
"""
