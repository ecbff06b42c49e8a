"""Spectral solver: analytic spectra, the banded route against the dense one, Nv checks."""

import numpy as np
import pytest
import scipy.linalg as sla

from flowdash.core.grid import Grid
from flowdash.core.spectra import _stiffness, solve_spectrum


def _uniform(grid):
    return np.full(grid.N, 1.0 / grid.length)


@pytest.mark.parametrize("mode, first_k", [("reflecting", 0), ("absorbing", 1)])
def test_uniform_peq_gives_the_laplacian_spectrum(mode, first_k):
    # H0 with flat peq is -D d²/dx²: eigenvalues D (kπ/L)², k >= 0 (Neumann) or k >= 1 (Dirichlet).
    grid, D = Grid(8, 20, -1.0, 1.0), 0.7
    spec = solve_spectrum(grid, _uniform(grid), D, mode, Nv=6)
    k = np.arange(first_k, first_k + 6)
    np.testing.assert_allclose(spec.lQ, D * (k * np.pi / grid.length) ** 2, rtol=1e-9, atol=1e-9)


def test_ornstein_uhlenbeck_spectrum():
    # peq ∝ exp(-x²/(2s²)) on a wide reflecting domain: λ_k = D k / s².
    s, D = 0.25, 2.0
    grid = Grid(8, 40, -2.5, 2.5)
    peq = np.exp(-grid.x**2 / (2 * s**2))
    peq /= grid.integrate(peq)
    spec = solve_spectrum(grid, peq, D, "reflecting", Nv=5)
    np.testing.assert_allclose(spec.lQ, D * np.arange(5) / s**2, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("mode", ["absorbing", "reflecting"])
def test_banded_lanczos_route_agrees_with_dense_generalised_solve(mode):
    grid = Grid(8, 64)
    peq = np.exp(-3 * (grid.x - 0.2) ** 2 + np.sin(4 * grid.x))
    peq /= grid.integrate(peq)
    D = 1.3
    spec = solve_spectrum(grid, peq, D, mode, Nv=20)  # few pairs of a large grid: shift-invert Lanczos
    K = _stiffness(grid, peq, D).toarray()
    m = grid.w * peq
    T = np.eye(grid.N)[:, 1:-1] if mode == "absorbing" else sla.null_space(grid.Dm.toarray()[[0, -1]])
    lam, z = sla.eigh(T.T @ K @ T, T.T @ (m[:, None] * T), subset_by_index=[0, 19])
    np.testing.assert_allclose(spec.lQ, lam, rtol=1e-9, atol=1e-9 * lam.max())
    Y = T @ z
    overlap = np.abs(np.sum(Y * m[:, None] * spec.QxOrig, axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-8)
    # Strong boundary conditions and normalisation.
    if mode == "absorbing":
        assert np.all(spec.QxOrig[[0, -1]] == 0)
    else:
        np.testing.assert_allclose((grid.Dm @ spec.QxOrig)[[0, -1]], 0, atol=1e-8 * np.abs(grid.Dm @ spec.QxOrig).max())
    np.testing.assert_allclose(np.sum(grid.w[:, None] * spec.Qx**2, axis=0), 1.0, atol=1e-10)


@pytest.mark.parametrize("Ne", [1, 2])
def test_tiny_reflecting_grids(Ne):
    grid = Grid(6, Ne)
    spec = solve_spectrum(grid, _uniform(grid), 1.0, "reflecting")
    assert spec.lQ.shape == (grid.N - 2,)
    assert spec.lQ[0] == pytest.approx(0.0, abs=1e-10)
    assert spec.lQ[1] == pytest.approx((np.pi / 2) ** 2, rel=1e-3)


@pytest.mark.parametrize("Nv, error, message", [
    (0, ValueError, r"Nv must be an integer in \[1, 15\] \(N - 2 for this grid\), got 0"),
    (16, ValueError, r"Nv must be an integer in \[1, 15\] \(N - 2 for this grid\), got 16"),
    (2.5, TypeError, "Nv must be an integer"),
])
def test_bad_Nv(Nv, error, message):
    grid = Grid(5, 4)
    with pytest.raises(error, match=message):
        solve_spectrum(grid, _uniform(grid), 1.0, "absorbing", Nv=Nv)


def test_bad_boundary_conditions():
    grid = Grid(5, 4)
    with pytest.raises(ValueError, match=r"boundary_conditions must be 'dirichlet' or 'neumann' \(or a boundary mode, "
                                         r"'absorbing' or 'reflecting'\), got 'periodic'"):
        solve_spectrum(grid, _uniform(grid), 1.0, "periodic")


@pytest.mark.parametrize("conditions, mode", [("dirichlet", "absorbing"), ("neumann", "reflecting")])
def test_boundary_conditions_and_their_modes_give_one_spectrum(conditions, mode):
    grid = Grid(6, 8)
    peq = np.exp(np.sin(3 * grid.x))
    peq /= grid.integrate(peq)
    a, b = solve_spectrum(grid, peq, 0.9, conditions), solve_spectrum(grid, peq, 0.9, mode)
    np.testing.assert_array_equal(a.lQ, b.lQ)
    np.testing.assert_array_equal(a.QxOrig, b.QxOrig)
