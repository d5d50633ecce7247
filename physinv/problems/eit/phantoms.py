"""EIT phantoms on the unit disk: a background with 1-4 circular or elliptic inclusions.

A :class:`Phantom` is exact geometry, so it can be sampled on any FEM mesh
(:meth:`Phantom.on_cells`, area fractions from sub-triangle quadrature) and on
the pixel grid of the networks (:func:`pixel_grid`, :meth:`Phantom.on_points`).
The same pixel grid carries every reconstruction for the metrics
(:func:`relative_l2`, :func:`dice`), so Gauss-Newton on the mesh and networks on
the grid are scored identically (:func:`cells_to_pixels`).

Inclusion masks for the Dice coefficient: every inclusion differs from the
background by a factor of at least ``MIN_CONTRAST`` (2), so a pixel counts as
"inclusion" when ``|log(sigma / sigma_bg)| > log(MIN_CONTRAST) / 2``, halfway
(in log) between the background and the weakest inclusion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.discretize.mesh import TriMesh

__all__ = [
    "MIN_CONTRAST",
    "Inclusion",
    "Phantom",
    "cells_to_pixels",
    "dice",
    "draw_phantom",
    "inclusion_mask",
    "mean_scores",
    "pixel_grid",
    "relative_l2",
]

MIN_CONTRAST = 2.0
_MAX_CONTRAST = 5.0


@dataclass(frozen=True)
class Inclusion:
    """Ellipse with centre ``(x, y)``, semi-axes ``a >= b`` (m), rotation ``angle`` (rad), conductivity (S/m)."""

    x: float
    y: float
    a: float
    b: float
    angle: float
    sigma: float

    def contains(self, points: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = points[..., 0] - self.x, points[..., 1] - self.y
        u, v = c * dx + s * dy, -s * dx + c * dy
        return (u / self.a) ** 2 + (v / self.b) ** 2 <= 1.0


@dataclass(frozen=True)
class Phantom:
    """Background conductivity and non-overlapping inclusions (later ones win where they overlap)."""

    background: float
    inclusions: tuple[Inclusion, ...]

    def on_points(self, points: np.ndarray) -> np.ndarray:
        """Conductivity at ``(..., 2)`` points (S/m)."""
        sigma = np.full(points.shape[:-1], float(self.background))
        for inc in self.inclusions:
            sigma = np.where(inc.contains(points), inc.sigma, sigma)
        return sigma

    def on_cells(self, mesh: TriMesh, samples: int = 4) -> np.ndarray:
        """Cell-averaged conductivity ``(n_cells,)`` from ``samples**2`` points per triangle
        (a uniform sub-triangle rule), so inclusion edges are area-weighted."""
        i, j = np.meshgrid(np.arange(samples), np.arange(samples), indexing="ij")
        keep = i + j < samples
        lam1 = (i[keep] + 1.0 / 3.0) / samples
        lam2 = (j[keep] + 1.0 / 3.0) / samples
        upper_i, upper_j = np.meshgrid(np.arange(samples), np.arange(samples), indexing="ij")
        keep_up = upper_i + upper_j < samples - 1
        lam1 = np.concatenate([lam1, (upper_i[keep_up] + 2.0 / 3.0) / samples])
        lam2 = np.concatenate([lam2, (upper_j[keep_up] + 2.0 / 3.0) / samples])
        bary = np.stack([1.0 - lam1 - lam2, lam1, lam2], axis=1)  # (q, 3), equal-area sub-triangles
        points = np.einsum("qk,ekd->eqd", bary, mesh.points[mesh.cells])
        return self.on_points(points).mean(axis=1)


def draw_phantom(rng: np.random.Generator, n_inclusions: int | tuple[int, int] = (1, 4), background: float = 1.0,
                 shapes: str = "mixed", max_radius: float = 0.3, min_radius: float = 0.12) -> Phantom:
    """Random phantom: ``n_inclusions`` (a count or an inclusive range) circles or ellipses.

    Centres keep each inclusion inside the disk of radius 0.9 and 0.05 away from
    the others; semi-axes in ``[min_radius, max_radius]`` (circles: ``a = b``);
    each inclusion is conductive or resistive with equal probability, its
    contrast to the background log-uniform in ``[2, 5]``.
    """
    low, high = (n_inclusions, n_inclusions) if np.isscalar(n_inclusions) else n_inclusions
    if not 1 <= low <= high <= 4:
        raise InvalidParameterError(f"n_inclusions must be within 1..4; got {n_inclusions}")
    if shapes not in ("mixed", "circles", "ellipses"):
        raise InvalidParameterError(f"shapes must be 'mixed', 'circles' or 'ellipses'; got {shapes!r}")
    if not 0 < min_radius <= max_radius < 0.9:
        raise InvalidParameterError(f"need 0 < min_radius <= max_radius < 0.9; got {min_radius}, {max_radius}")
    count = int(rng.integers(low, high + 1))
    inclusions: list[Inclusion] = []
    while len(inclusions) < count:
        for _attempt in range(200):
            ellipse = shapes == "ellipses" or (shapes == "mixed" and rng.random() < 0.5)
            a = rng.uniform(min_radius, max_radius)
            b = rng.uniform(min_radius, a) if ellipse else a
            r = math.sqrt(rng.random()) * (0.9 - a)
            phi = rng.uniform(0, 2 * math.pi)
            x, y = r * math.cos(phi), r * math.sin(phi)
            if all(math.hypot(x - o.x, y - o.y) > a + o.a + 0.05 for o in inclusions):
                break
        else:  # no room left: start over with fewer constraints from the same stream
            inclusions.clear()
            continue
        contrast = math.exp(rng.uniform(math.log(MIN_CONTRAST), math.log(_MAX_CONTRAST)))
        sigma = background * (contrast if rng.random() < 0.5 else 1.0 / contrast)
        inclusions.append(Inclusion(x, y, a, b, rng.uniform(0, math.pi), sigma))
    return Phantom(float(background), tuple(inclusions))


def pixel_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(n, n, 2)`` of an ``n x n`` pixel grid on ``[-1, 1]^2`` (``[i, j]`` = row ``i`` from the
    bottom, column ``j`` from the left) and the mask ``(n, n)`` of pixels inside the unit disk."""
    if n < 4:
        raise InvalidParameterError(f"the pixel grid needs n >= 4; got {n}")
    c = -1.0 + (np.arange(n) + 0.5) * 2.0 / n
    yy, xx = np.meshgrid(c, c, indexing="ij")
    centres = np.stack([xx, yy], axis=-1)
    return centres, np.hypot(xx, yy) < 1.0


def cells_to_pixels(mesh: TriMesh, n: int):
    """A map from cell values ``(..., n_cells)`` to the ``n x n`` pixel grid (value of the cell holding
    each pixel centre; centres in the disk but outside the polygonal mesh take the nearest cell)."""
    import matplotlib.tri as mtri

    centres, mask = pixel_grid(n)
    tri = mtri.Triangulation(mesh.points[:, 0], mesh.points[:, 1], mesh.cells)
    owner = np.asarray(tri.get_trifinder()(centres[..., 0].ravel(), centres[..., 1].ravel()))
    missing = owner < 0
    if missing.any():
        centroids = mesh.points[mesh.cells].mean(axis=1)
        d = np.linalg.norm(centres.reshape(-1, 2)[missing][:, None] - centroids[None], axis=-1)
        owner[missing] = d.argmin(axis=1)
    owner = torch.from_numpy(owner.reshape(n, n))

    def to_pixels(values):
        values = torch.as_tensor(values)
        return values[..., owner]

    return to_pixels


def inclusion_mask(sigma, background: float = 1.0) -> torch.Tensor:
    """Pixels (or cells) classified as inclusion: ``|log(sigma / background)| > log(MIN_CONTRAST) / 2``."""
    sigma = torch.as_tensor(sigma)
    return torch.log(sigma.clamp_min(1e-12) / background).abs() > math.log(MIN_CONTRAST) / 2


def dice(pred_mask, true_mask, region=None) -> float:
    """Dice coefficient ``2 |P & T| / (|P| + |T|)`` within ``region`` (1.0 when both are empty)."""
    p, t = torch.as_tensor(pred_mask).bool(), torch.as_tensor(true_mask).bool()
    if region is not None:
        region = torch.as_tensor(region).bool()
        p, t = p & region, t & region
    total = int(p.sum() + t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total


def relative_l2(pred, true, region=None) -> float:
    """``||pred - true|| / ||true||`` over ``region`` (pixels in the disk); equal-area pixels."""
    p, t = torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(true, dtype=torch.float64)
    if region is not None:
        region = torch.as_tensor(region).bool()
        p, t = p[..., region], t[..., region]
    return float(torch.linalg.vector_norm(p - t) / torch.linalg.vector_norm(t))


def mean_scores(pred, true, region=None) -> tuple[float, float]:
    """Mean over the samples (first axis) of :func:`relative_l2` and of :func:`dice` of the inclusion masks."""
    rel = [relative_l2(p, t, region) for p, t in zip(pred, true)]
    dsc = [dice(inclusion_mask(p), inclusion_mask(t), region) for p, t in zip(pred, true)]
    return float(np.mean(rel)), float(np.mean(dsc))
