"""Eigenpairs of the Fokker–Planck operator on the GLL grid (MATH.md §4).

The weak form ``K y = λ M y`` with GLL-lumped mass ``M = diag(w·peq)`` is
restricted to the subspace that satisfies the boundary conditions strongly.
The constraint only touches the first and last element, so it is eliminated
there: a basis ``T`` of the constrained subspace that is M-orthonormal and
local turns the pencil into a standard symmetric problem ``A z = λ z`` with
``A = Tᵀ K T`` of bandwidth ``Np - 1``. That banded problem is solved by
shift-invert Lanczos with a banded Cholesky factorisation when only a few
eigenpairs are wanted, and by a dense symmetric solver otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg.lapack import dpbtrf, dpbtrs
from scipy.sparse.linalg import LinearOperator, eigsh

from ._parallel import blas_threads
from .grid import Grid
from .limits import Limit

__all__ = ["Spectrum", "solve_spectrum", "validate_Nv", "nv_limit"]


@dataclass(frozen=True)
class Spectrum:
    """Eigenpairs of ``H0`` for one (peq, D, boundary conditions) triple.

    Attributes
    ----------
    lQ : ndarray, shape (Nv,)
        Eigenvalues in increasing order (units 1/s).
    QxOrig : ndarray, shape (N, Nv)
        Eigenfunctions ``y`` of the pencil, ``yᵀ diag(w·peq) y = 1``.
    Qx : ndarray, shape (N, Nv)
        ``sqrt(peq)·QxOrig``, orthonormal in the ``w`` inner product.
    """

    lQ: np.ndarray
    QxOrig: np.ndarray
    Qx: np.ndarray


def nv_limit(N: int | None = None) -> Limit:
    """The eigenpairs a grid of ``N`` nodes can keep: ``1 <= Nv <= N - 2``.

    The two boundary constraints remove two of the ``N`` degrees of freedom.
    Without ``N`` only the lower bound.
    """
    if N is None:
        return Limit("Nv", int, 1)
    return Limit("Nv", int, 1, int(N) - 2, why="N - 2 for this grid")


def validate_Nv(grid: Grid, Nv: int | None) -> int:
    """``Nv`` as an int in ``[1, N - 2]``; None means ``N - 2``.

    Raises TypeError (not an integer) or InvalidValue (field ``Nv``).
    """
    if Nv is None:
        return grid.N - 2
    return nv_limit(grid.N).check(Nv)


def _stiffness(grid: Grid, peq: np.ndarray, D: float) -> sp.csr_matrix:
    """``K = D Σ_e (D^e)ᵀ diag(w^e peq^e) D^e``, assembled element by element."""
    idx = grid._elem_index
    De = grid.elem_D
    blocks = D * np.einsum("ji,ej,jk->eik", De, grid.elem_w[None, :] * peq[idx], De)
    rows = np.repeat(idx, grid.Np, axis=1).ravel()
    cols = np.tile(idx, (1, grid.Np)).ravel()
    return sp.csr_matrix((blocks.ravel(), (rows, cols)), shape=(grid.N, grid.N))


def _corner_basis(grid: Grid, m: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """M-orthonormal local basis of the Neumann-constrained corner element.

    The wall value is eliminated, ``y_wall = Σ_j c_j y_j`` over the element's
    other nodes, which gives vectors ``e_j + c_j e_wall``. They are
    Gram–Schmidt-orthonormalised in M with the node shared with the next
    element last, so only one vector reaches into the neighbour and the
    band stays ``Np - 1`` wide.

    Returns
    -------
    nodes : ndarray, shape (Np,)
        Global node indices of the element.
    V : ndarray, shape (Np, Np - 1)
        Basis vectors on those nodes; column j belongs to z-index of node
        ``nodes[1 + j]`` (left) or ``nodes[j]`` (right).
    """
    Np = grid.Np
    D0 = grid.elem_D
    if side == "left":
        nodes = np.arange(Np)
        wall, free = 0, np.arange(1, Np)
        order = np.arange(Np - 1)  # shared node (local Np-1) is last already
    else:
        nodes = np.arange(grid.N - Np, grid.N)
        wall, free = Np - 1, np.arange(Np - 1)
        order = np.arange(Np - 2, -1, -1)  # shared node (local 0) last
    c = -D0[wall, free] / D0[wall, wall]
    V = np.zeros((Np, Np - 1))
    V[free, np.arange(Np - 1)] = 1.0
    V[wall, :] = c
    mloc = m[nodes]
    Vo = V[:, order]
    G = Vo.T @ (mloc[:, None] * Vo)
    L = np.linalg.cholesky(G)
    Vo = sla.solve_triangular(L, Vo.T, lower=True).T  # Vo L^{-T}
    V[:, order] = Vo
    return nodes, V


def _basis(grid: Grid, m: np.ndarray, conditions: str) -> sp.csr_matrix:
    """Sparse M-orthonormal basis T (N × (N-2)) of the constrained subspace."""
    N, Np = grid.N, grid.Np
    inner = np.arange(1, N - 1)
    if conditions == "dirichlet":
        return sp.csr_matrix((1.0 / np.sqrt(m[inner]), (inner, inner - 1)), shape=(N, N - 2))
    rows, cols, vals = [], [], []
    lo, hi = Np - 1, N - Np  # nodes strictly inside [lo, hi] are untouched
    mid = np.arange(lo + 1, hi)
    rows.append(mid), cols.append(mid - 1), vals.append(1.0 / np.sqrt(m[mid]))
    for side in ("left", "right"):
        nodes, V = _corner_basis(grid, m, side)
        zcols = (nodes[1:] if side == "left" else nodes[:-1]) - 1
        r, k = np.nonzero(V)
        rows.append(nodes[r]), cols.append(zcols[k]), vals.append(V[r, k])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(N, N - 2))


def _dense_neumann(grid: Grid, K: sp.csr_matrix, m: np.ndarray):
    """Dense Neumann route for grids of one or two elements, where the two corner bases would overlap."""
    T = sla.null_space(grid.Dm.toarray()[[0, -1]])
    A = T.T @ (K @ T)
    B = T.T @ (m[:, None] * T)
    return T, A, B


def solve_spectrum(grid: Grid, peq: np.ndarray, D: float, boundary_conditions: str,
                   Nv: int | None = None) -> Spectrum:
    """The ``Nv`` smallest eigenpairs of the Fokker–Planck operator.

    Parameters
    ----------
    grid : Grid
    peq : ndarray, shape (N,)
        Equilibrium density (positive).
    D : float
        Noise magnitude (> 0).
    boundary_conditions : {'dirichlet', 'neumann'}
        Imposed strongly (MATH.md §4). A boundary mode is accepted for its
        conditions: 'absorbing' = 'dirichlet', 'reflecting' = 'neumann'.
    Nv : int, optional
        Number of eigenpairs, ``1 <= Nv <= N - 2``; default ``N - 2``.

    Returns
    -------
    Spectrum
    """
    Nv = validate_Nv(grid, Nv)
    conditions = _CONDITIONS.get(boundary_conditions) if isinstance(boundary_conditions, str) else None
    if conditions is None:
        raise ValueError("boundary_conditions must be 'dirichlet' or 'neumann' (or a boundary mode, 'absorbing' "
                         f"or 'reflecting'), got {boundary_conditions!r}")
    with blas_threads(1):
        return _solve(grid, peq, D, conditions, Nv)


_CONDITIONS = {"dirichlet": "dirichlet", "neumann": "neumann", "absorbing": "dirichlet", "reflecting": "neumann"}


def _solve(grid: Grid, peq: np.ndarray, D: float, conditions: str, Nv: int) -> Spectrum:
    K = _stiffness(grid, peq, D)
    m = grid.w * peq
    n = grid.N - 2
    if grid.Ne <= 2 and conditions == "neumann":
        T, A, B = _dense_neumann(grid, K, m)
        lQ, z = sla.eigh(A, B, subset_by_index=[0, Nv - 1])
        Y = T @ z
        return _finish(lQ, Y, peq)
    T = _basis(grid, m, conditions)
    A = (T.T @ K @ T).tocsr()
    bw = grid.Np - 1
    if Nv > n // 4 or n <= 300:
        A_dense = A.toarray()
        if Nv == n:
            lQ, z = sla.eigh(A_dense, driver="evd", check_finite=False)
        else:
            lQ, z = sla.eigh(A_dense, subset_by_index=[0, Nv - 1], driver="evr", check_finite=False)
    else:
        band = np.zeros((bw + 1, n))  # lower banded storage: band[d, j] = A[j + d, j]
        for d in range(bw + 1):
            band[d, : n - d] = A.diagonal(-d)
        sigma = -1.0
        shifted = band.copy()
        shifted[0] -= sigma
        chol, info = dpbtrf(shifted, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"stiffness matrix is not positive semi-definite (dpbtrf info {info})")

        def solve(v):
            # LAPACK directly: the scipy wrapper's checks cost more than the solve.
            return dpbtrs(chol, v, lower=1)[0]

        op = LinearOperator((n, n), matvec=solve, dtype=float)
        ncv = min(n, Nv + max(32, Nv // 2))
        lQ, z = eigsh(A, k=Nv, sigma=sigma, OPinv=op, which="LM", ncv=ncv, tol=0,
                      v0=np.ones(n) / np.sqrt(n))
        order = np.argsort(lQ)
        lQ, z = lQ[order], z[:, order]
    Y = T @ z
    return _finish(lQ, Y, peq)


def _finish(lQ: np.ndarray, Y: np.ndarray, peq: np.ndarray) -> Spectrum:
    Y = np.ascontiguousarray(Y)
    return Spectrum(lQ=np.asarray(lQ), QxOrig=Y, Qx=np.sqrt(peq)[:, None] * Y)
