r"""One quadrature rule for a residual and all its derivatives: exact discrete gradients.

UFL chooses each integral's quadrature degree from an estimate of its
integrand's polynomial degree.  The derivatives of a residual are integrands
of their own, estimated anew: for ``F = exp(m) grad u . grad v dx`` with a P1
control ``m`` UFL integrates ``F`` with degree 3 but ``dF/dm = exp(m) dm grad u
. grad v`` with degree 4, so ``dF/dm`` is not the derivative of the discrete
``F``, and an adjoint gradient disagrees with finite differences of the
forward map at the 1e-4 level.  :func:`pin_quadrature_degree` writes the
degree UFL estimates for each integral of ``F`` into its metadata
(``quadrature_degree``); ``ufl.derivative`` keeps integral metadata, so ``J_u``,
``dF/dm`` and ``dF/du_old`` are integrated by the same rules as ``F`` and the
discrete derivatives are exact.

Each integral keeps its own degree (FFCx would integrate integrals that share
a measure with the largest degree among them): a source term of high degree
does not raise the degree of the Jacobian, so experiments that differ only in
their sources still share one Jacobian.  Polynomial integrands are integrated
exactly either way; for others the forward values differ from FFCx's default
by the quadrature error of the term's own rule.
"""

from __future__ import annotations

__all__ = ["pin_quadrature_degree"]


def _pinned(integral) -> bool:
    degree = integral.metadata().get("quadrature_degree")
    return degree is not None and degree >= 0


def pin_quadrature_degree(form):
    """``form`` with every integral's ``quadrature_degree`` fixed to the degree UFL estimates for it.

    Integrals that already carry a nonnegative ``quadrature_degree`` (the user's choice) are kept.
    """
    import ufl
    from ufl.algorithms.apply_algebra_lowering import apply_algebra_lowering
    from ufl.algorithms.apply_derivatives import apply_derivatives
    from ufl.algorithms.estimate_degrees import estimate_total_polynomial_degree

    integrals = []
    for integral in form.integrals():
        if not _pinned(integral):
            integrand = apply_derivatives(apply_algebra_lowering(integral.integrand()))
            degree = int(estimate_total_polynomial_degree(integrand))
            integral = integral.reconstruct(metadata={**integral.metadata(), "quadrature_degree": degree})
        integrals.append(integral)
    return ufl.Form(integrals)
