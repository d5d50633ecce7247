"""The inverse problem: forward model, observations, noise, regularizer (hIPPYlib's Model)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from physinv.core.checks import check_finite
from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.invert.result import SimulatorCalls


class LogParametrization:
    """``kappa = exp(m)``: keeps a positive coefficient positive during the search."""

    name = "log"

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        return torch.exp(m)

    def inverse(self, kappa: torch.Tensor) -> torch.Tensor:
        return torch.log(kappa)


class IdentityParametrization:
    name = "identity"

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        return m

    def inverse(self, kappa: torch.Tensor) -> torch.Tensor:
        return kappa


class SubspaceParametrization:
    """``p(z) = mean + sum_j z_j basis_j``: the parameter restricted to an affine subspace.

    With ``basis`` the scaled anomalies ``(m_j - mean) / sqrt(J - 1)`` of ``J`` prior samples and
    the penalty ``1/2 ||z||^2``, the minimizer of ``1/2 ||(F(p(z)) - d)/sigma||^2 + 1/2 ||z||^2``
    is the MAP estimate under the Gaussian prior with the samples' mean and covariance
    (:func:`sample_subspace`), the prior information ensemble methods use.  ``basis`` has
    shape ``(k, *mean.shape)``; the search variable ``z`` has shape ``(k,)``.
    """

    name = "subspace"

    def __init__(self, mean: torch.Tensor, basis: torch.Tensor):
        if basis.ndim != mean.ndim + 1 or tuple(basis.shape[1:]) != tuple(mean.shape):
            raise ShapeMismatchError(f"basis must have shape (k, *{tuple(mean.shape)}); got {tuple(basis.shape)}")
        check_finite("mean", mean)
        check_finite("basis", basis)
        self.mean, self.basis = mean, basis

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean + torch.tensordot(z.to(self.basis.dtype), self.basis, dims=1)

    def inverse(self, m: torch.Tensor) -> torch.Tensor:
        """Least-squares coordinates of ``m - mean`` in the basis."""
        flat = self.basis.reshape(self.basis.shape[0], -1)
        return torch.linalg.lstsq(flat.T, (m - self.mean).reshape(-1, 1)).solution[:, 0]


def sample_subspace(samples: torch.Tensor) -> SubspaceParametrization:
    """The affine span of prior samples ``(J, ...)``, ``J >= 2``, with the scaled anomalies as basis."""
    if samples.ndim < 2 or samples.shape[0] < 2:
        raise InvalidParameterError(f"need at least 2 samples stacked on axis 0; got shape {tuple(samples.shape)}")
    mean = samples.mean(0)
    return SubspaceParametrization(mean, (samples - mean) / math.sqrt(samples.shape[0] - 1))


@dataclass
class InverseProblem:
    """Find ``m`` from ``d = F(p(m)) + e``, ``e ~ N(0, diag(sigma^2))``.

    The objective at regularization weight ``beta`` is

        J(m) = 1/2 || M (F(p(m)) - d) / sigma ||^2 + beta R(m),

    with ``p`` the parametrization (e.g. ``kappa = exp(m)``), ``R`` the regularizer and ``M`` the
    optional data mask (the entries used).  ``misfit_over_noise(m) = ||B^T M (F - d)/sigma|| / sqrt(N)``
    is 1 in expectation at the truth (``B`` the optional orthonormal basis of the data space the
    model can reach, ``N`` its dimension, or the number of data used); the discrepancy principle
    aims for it.

    Parameters
    ----------
    forward
        The simulator ``p(m) -> predicted data`` (shape of ``data``).
    data
        Observations ``d``.
    noise_std
        ``sigma``: a scalar or a tensor broadcastable to ``data`` (data units).
    regularizer
        Callable ``R(m) -> scalar``.  For the dense Gauss-Newton it may also offer
        ``gradient(m)`` and ``hessian(m)`` (the Hessian of its local quadratic model, e.g.
        lagged diffusivity for TV); otherwise autograd provides them.
    parametrization
        Map from the search variable ``m`` to the simulator's parameter.
    mask
        Boolean tensor of ``data``'s shape: the measurements used (default all).
    projection
        ``(n_used, r)`` orthonormal basis of the whitened data space every prediction lies in;
        the misfit ratio is measured on the projected residual with ``N = r`` (the remaining
        dimensions hold noise no ``m`` can fit).
    jacobian
        Optional ``m -> dF(p(m))/dm`` ``(data.numel(), m.numel())`` for the dense Gauss-Newton
        (e.g. a simulator's adjoint Jacobian); default: autograd.

    Notes
    -----
    ``calls`` counts the simulator calls (forward, adjoint, linearized) made through it.
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    data: torch.Tensor
    noise_std: torch.Tensor | float
    regularizer: Callable[[torch.Tensor], torch.Tensor]
    parametrization: Callable[[torch.Tensor], torch.Tensor] = LogParametrization()
    mask: torch.Tensor | None = None
    projection: torch.Tensor | None = None
    jacobian: Callable[[torch.Tensor], torch.Tensor] | None = None
    calls: SimulatorCalls = field(default_factory=SimulatorCalls, init=False, repr=False)

    def __post_init__(self) -> None:
        check_finite("data", self.data)
        sigma = torch.as_tensor(self.noise_std, dtype=self.data.dtype, device=self.data.device)
        check_finite("noise_std", sigma)
        if bool((sigma <= 0).any()):
            raise InvalidParameterError("noise_std must be > 0 (it weights the misfit)")
        try:
            torch.broadcast_shapes(sigma.shape, self.data.shape)
        except RuntimeError:
            raise ShapeMismatchError(
                f"noise_std shape {tuple(sigma.shape)} does not broadcast to data shape {tuple(self.data.shape)}"
            ) from None
        self.noise_std = sigma
        if self.mask is not None:
            self.mask = torch.as_tensor(self.mask, device=self.data.device)
            if self.mask.dtype != torch.bool or self.mask.shape != self.data.shape:
                raise ShapeMismatchError(
                    f"mask must be a boolean tensor of the data's shape {tuple(self.data.shape)}; got "
                    f"{self.mask.dtype} {tuple(self.mask.shape)}")
            if not bool(self.mask.any()):
                raise InvalidParameterError("mask selects no data; at least one measurement must be used")
        if self.projection is not None:
            used = self.data.numel() if self.mask is None else int(self.mask.sum())
            if self.projection.ndim != 2 or self.projection.shape[0] != used:
                raise ShapeMismatchError(
                    f"projection must be (n_used, r) = ({used}, r); got {tuple(self.projection.shape)}")

    @property
    def num_data(self) -> int:
        """``N``: the dimension the misfit ratio is measured in."""
        if self.projection is not None:
            return self.projection.shape[1]
        return self.data.numel() if self.mask is None else int(self.mask.sum())

    def predict(self, m: torch.Tensor) -> torch.Tensor:
        self.calls.forward += 1
        pred = self.forward(self.parametrization(m))
        if pred.shape != self.data.shape:
            raise ShapeMismatchError(
                f"forward model returned shape {tuple(pred.shape)}; data has shape {tuple(self.data.shape)}"
            )
        return pred

    def _weigh(self, difference: torch.Tensor) -> torch.Tensor:
        r = difference / self.noise_std
        return r if self.mask is None else r[self.mask]

    def weighted_residual(self, m: torch.Tensor) -> torch.Tensor:
        """``M (F(p(m)) - d) / sigma`` (the data's shape, or flat over the masked entries)."""
        return self._weigh(self.predict(m) - self.data)

    def weighted_jacobian(self, m: torch.Tensor) -> torch.Tensor:
        """Dense ``d weighted_residual / dm`` ``(n_used, m.numel())``."""
        self.calls.linearized += 1
        if self.jacobian is None:
            jac = torch.autograd.functional.jacobian(lambda v: self.weighted_residual(v).reshape(-1), m.detach())
            return jac.reshape(-1, m.numel())
        jac = self.jacobian(m.detach()).reshape(self.data.numel(), m.numel())
        weights = torch.broadcast_to(1.0 / self.noise_std, self.data.shape).reshape(-1)
        jac = jac * weights[:, None]
        return jac if self.mask is None else jac[self.mask.reshape(-1)]

    def misfit(self, m: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.weighted_residual(m) ** 2).sum()

    def objective(self, m: torch.Tensor, beta: float) -> torch.Tensor:
        return self.misfit(m) + beta * self.regularizer(m)

    def misfit_ratio(self, residual: torch.Tensor) -> float:
        """``||B^T r|| / sqrt(N)`` of a weighted residual ``r`` (``B`` the projection, if any)."""
        r = residual.detach().reshape(-1)
        if self.projection is not None:
            r = self.projection.T @ r
        return float(r.norm()) / math.sqrt(self.num_data)

    def misfit_over_noise(self, m: torch.Tensor) -> float:
        with torch.no_grad():
            return self.misfit_ratio(self.weighted_residual(m))
