"""The inverse problem: forward model, observations, noise, regularizer (hIPPYlib's Model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from physinv.core.checks import check_finite
from physinv.core.errors import InvalidParameterError, ShapeMismatchError


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


@dataclass
class InverseProblem:
    """Find ``m`` from ``d = F(p(m)) + e``, ``e ~ N(0, diag(sigma^2))``.

    The objective at regularization weight ``beta`` is

        J(m) = 1/2 || (F(p(m)) - d) / sigma ||^2 + beta R(m),

    with ``p`` the parametrization (e.g. ``kappa = exp(m)``) and ``R`` the
    regularizer.  ``misfit_over_noise(m) = ||(F - d)/sigma|| / sqrt(N)`` is 1
    in expectation at the truth; the discrepancy principle aims for it.

    Parameters
    ----------
    forward
        The simulator ``kappa -> predicted data`` (shape of ``data``).
    data
        Observations ``d``.
    noise_std
        ``sigma``: a scalar or a tensor broadcastable to ``data`` (data units).
    regularizer
        Callable ``R(m) -> scalar``.
    parametrization
        Map from the search variable ``m`` to the simulator's parameter.
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    data: torch.Tensor
    noise_std: torch.Tensor | float
    regularizer: Callable[[torch.Tensor], torch.Tensor]
    parametrization: Callable[[torch.Tensor], torch.Tensor] = LogParametrization()

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

    @property
    def num_data(self) -> int:
        return self.data.numel()

    def predict(self, m: torch.Tensor) -> torch.Tensor:
        pred = self.forward(self.parametrization(m))
        if pred.shape != self.data.shape:
            raise ShapeMismatchError(
                f"forward model returned shape {tuple(pred.shape)}; data has shape {tuple(self.data.shape)}"
            )
        return pred

    def weighted_residual(self, m: torch.Tensor) -> torch.Tensor:
        return (self.predict(m) - self.data) / self.noise_std

    def misfit(self, m: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.weighted_residual(m) ** 2).sum()

    def objective(self, m: torch.Tensor, beta: float) -> torch.Tensor:
        return self.misfit(m) + beta * self.regularizer(m)

    def misfit_over_noise(self, m: torch.Tensor) -> float:
        with torch.no_grad():
            return float(torch.sqrt(2 * self.misfit(m) / self.num_data))
