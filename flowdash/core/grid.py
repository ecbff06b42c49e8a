"""Spectral-element grid on Gauss–Lobatto–Legendre (GLL) nodes (MATH.md §3)."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp
from numpy.polynomial import legendre

from .limits import InvalidValue, Limit

__all__ = ["Grid", "gll_nodes", "NP", "NE", "n_nodes", "check_interval"]

# The limits of a grid (the forms and the settings layer use the same).
#: Nodes per element: the GLL element needs both ends and an interior node.
NP = Limit("Np", int, 3)
#: Number of elements.
NE = Limit("Ne", int, 1)


def n_nodes(Np: int, Ne: int) -> int:
    """Nodes of a grid, ``N = (Np - 1) Ne + 1`` (neighbouring elements share an end)."""
    return (int(Np) - 1) * int(Ne) + 1


def check_interval(xbegin: float, xend: float) -> tuple[float, float]:
    """``(xbegin, xend)`` as floats if finite and ``xbegin < xend``.

    Raises TypeError (not numbers) or InvalidValue (field ``xbegin`` when it is not
    finite, else ``xend``).
    """
    try:
        xbegin, xend = float(xbegin), float(xend)
    except (TypeError, ValueError):
        raise TypeError(f"xbegin and xend must be numbers, got {xbegin!r}, {xend!r}") from None
    if not (np.isfinite(xbegin) and np.isfinite(xend) and xbegin < xend):
        raise InvalidValue(
            "xbegin" if not np.isfinite(xbegin) else "xend",
            f"the interval [xbegin, xend] = [{xbegin}, {xend}] is empty or not finite; "
            "need finite xbegin < xend")
    return xbegin, xend


def gll_nodes(Np: int) -> tuple[np.ndarray, np.ndarray]:
    """GLL nodes and weights on the reference element [-1, 1].

    Parameters
    ----------
    Np : int
        Number of nodes (polynomial degree ``Np - 1``), ``Np >= 3``.

    Returns
    -------
    xi : ndarray, shape (Np,)
        ``-1``, the roots of ``P'_{Np-1}`` in increasing order, ``+1``.
    wi : ndarray, shape (Np,)
        Quadrature weights ``2 / ((Np-1) Np P_{Np-1}(xi)^2)``.
    """
    n = Np - 1
    dPn = legendre.legder(np.eye(Np)[n])
    # numpy >= 2.5 returns the roots of a real polynomial as complex numbers;
    # those of P'_n are real and simple, so the imaginary parts are round-off.
    roots = np.sort(np.real(legendre.legroots(dPn)))
    # One Newton step on P'_n polishes the companion-matrix roots to round-off.
    d2Pn = legendre.legder(dPn)
    roots = roots - legendre.legval(roots, dPn) / legendre.legval(roots, d2Pn)
    xi = np.concatenate(([-1.0], roots, [1.0]))
    Pn = legendre.legval(xi, np.eye(Np)[n])
    wi = 2.0 / (n * Np * Pn**2)
    return xi, wi


def _lagrange_derivative(xi: np.ndarray) -> np.ndarray:
    """Derivative matrix of the Lagrange interpolant on nodes ``xi``.

    ``(Dl @ f)_i = d/dxi of the interpolant of f at xi_i``; built from the
    barycentric weights, which is exact for any distinct nodes.
    """
    diff = xi[:, None] - xi[None, :]
    np.fill_diagonal(diff, 1.0)
    bary = 1.0 / np.prod(diff, axis=1)
    Dl = (bary[None, :] / bary[:, None]) / diff
    np.fill_diagonal(Dl, 0.0)
    np.fill_diagonal(Dl, -Dl.sum(axis=1))
    return Dl


def _lagrange_integral(xi: np.ndarray) -> np.ndarray:
    """``I[i, j] = ∫_{-1}^{xi_i} l_j``, l_j the Lagrange basis on ``xi``."""
    Np = xi.size
    V = legendre.legvander(xi, Np - 1)  # V[i, k] = P_k(xi_i)
    # ∫_{-1}^{x} P_k = (P_{k+1} - P_{k-1}) / (2k + 1) for k >= 1, x + 1 for k = 0.
    W = np.empty((Np, Np))
    W[:, 0] = xi + 1.0
    Vp = legendre.legvander(xi, Np)
    for k in range(1, Np):
        W[:, k] = (Vp[:, k + 1] - Vp[:, k - 1]) / (2 * k + 1)
    return W @ np.linalg.inv(V)


class Grid:
    """GLL spectral-element grid on ``[xbegin, xend]``.

    ``Ne`` elements of equal width with ``Np`` nodes each; neighbouring
    elements share their end node, so there are ``N = (Np - 1) Ne + 1`` nodes.

    Parameters
    ----------
    Np : int
        Nodes per element, ``>= 3``.
    Ne : int
        Number of elements, ``>= 1``.
    xbegin, xend : float
        Domain ends, finite, ``xbegin < xend``.

    Attributes
    ----------
    x : ndarray, shape (N,)
        Node positions.
    w : ndarray, shape (N,)
        Quadrature weights: ``∫ g ≈ w @ g(x)``, exact for the element-wise
        interpolant of polynomials of degree ``<= 2 Np - 3``.
    Dm : scipy.sparse.csr_matrix, shape (N, N)
        Differentiation matrix; at a shared node the mean of the left and
        right element derivatives.
    elem_D : ndarray, shape (Np, Np)
        One element's own derivative matrix, in units of 1/x.
    elem_w : ndarray, shape (Np,)
        One element's own quadrature weights.
    """

    def __init__(self, Np: int = 8, Ne: int = 16, xbegin: float = -1.0, xend: float = 1.0):
        self.Np = NP.check(Np)
        self.Ne = NE.check(Ne)
        xbegin, xend = check_interval(xbegin, xend)
        self.xbegin, self.xend = xbegin, xend
        self.N = (self.Np - 1) * self.Ne + 1

        xi, wi = gll_nodes(self.Np)
        half = 0.5 * (xend - xbegin) / self.Ne
        starts = xbegin + 2.0 * half * np.arange(self.Ne)
        # Node index of element e, local node j: e (Np - 1) + j.
        self._elem_index = (np.arange(self.Ne)[:, None] * (self.Np - 1) + np.arange(self.Np)[None, :])
        x = np.empty(self.N)
        x[self._elem_index] = starts[:, None] + half * (xi[None, :] + 1.0)
        x[-1] = xend  # exact ends; shared nodes take the right element's value
        x[0] = xbegin
        self.x = x
        self.elem_w = wi * half
        w = np.zeros(self.N)
        np.add.at(w, self._elem_index, self.elem_w[None, :])
        self.w = w
        self.elem_D = _lagrange_derivative(xi) / half
        self._elem_I = _lagrange_integral(xi) * half
        self._half = half
        for arr in (self.x, self.w, self.elem_w, self.elem_D):
            arr.setflags(write=False)

    def __repr__(self) -> str:
        return f"Grid(Np={self.Np}, Ne={self.Ne}, xbegin={self.xbegin}, xend={self.xend})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Grid) and (self.Np, self.Ne, self.xbegin, self.xend) == (
            other.Np, other.Ne, other.xbegin, other.xend)

    def __hash__(self) -> int:
        return hash((self.Np, self.Ne, self.xbegin, self.xend))

    @property
    def length(self) -> float:
        """Domain length ``xend - xbegin``."""
        return self.xend - self.xbegin

    @cached_property
    def Dm(self) -> sp.csr_matrix:
        Np, Ne = self.Np, self.Ne
        rows, cols, vals = [], [], []
        for e in range(Ne):
            idx = self._elem_index[e]
            scale = np.ones(Np)
            # Shared end nodes average the two one-sided derivatives.
            if e > 0:
                scale[0] = 0.5
            if e < Ne - 1:
                scale[-1] = 0.5
            rows.append(np.repeat(idx, Np))
            cols.append(np.tile(idx, Np))
            vals.append((self.elem_D * scale[:, None]).ravel())
        Dm = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.N, self.N),
        ).tocsr()
        Dm.sum_duplicates()
        return Dm

    @cached_property
    def AD(self) -> np.ndarray:
        """Antiderivative matrix, shape (N, N): ``(AD @ g)_i = ∫_{xbegin}^{x_i} g``.

        Dense; prefer :meth:`antiderivative`, which applies it in O(N Np).
        """
        return self.antiderivative(np.eye(self.N))

    def derivative(self, f: np.ndarray) -> np.ndarray:
        """``Dm @ f`` for ``f`` of shape (N,) or (N, k)."""
        return self.Dm @ f

    def antiderivative(self, g: np.ndarray) -> np.ndarray:
        """Cumulative integral ``∫_{xbegin}^{x_i} g`` of the element-wise interpolant.

        Parameters
        ----------
        g : ndarray, shape (N,) or (N, k)

        Returns
        -------
        ndarray, same shape as ``g``; row 0 is zero.
        """
        g = np.asarray(g, dtype=float)
        flat = g.ndim == 1
        G = g[:, None] if flat else g
        # Local cumulative integrals within each element, then the running
        # total of the complete elements before it.
        local = np.einsum("ij,ejk->eik", self._elem_I, G[self._elem_index])  # (Ne, Np, k)
        offsets = np.concatenate((np.zeros((1, G.shape[1])), np.cumsum(local[:, -1, :], axis=0)[:-1]))
        local += offsets[:, None, :]
        out = np.empty_like(G)
        out[self._elem_index] = local  # a shared node gets its right element's value (same)
        out[self._elem_index[:, -1]] = local[:, -1, :]
        return out[:, 0] if flat else out

    def integrate(self, g: np.ndarray) -> np.ndarray:
        """``w @ g``: the integral over the domain."""
        return self.w @ g
