"""GLL grid: reference nodes, quadrature and calculus exactness, bad input."""

import numpy as np
import pytest

from _shared import REFERENCE_DIR
from flowdash.core.grid import Grid


@pytest.mark.parametrize("case, Np, Ne", [("example1", 8, 256), ("grads_reflecting", 6, 32)])
def test_nodes_and_weights_match_reference(case, Np, Ne):
    ref = np.load(REFERENCE_DIR / f"{case}.npz")
    grid = Grid(Np, Ne)
    np.testing.assert_allclose(grid.x, ref["x"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(grid.w, ref["w"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("Np, Ne, a, b", [(3, 1, -1, 1), (5, 4, 0.0, 2.0), (8, 7, -3.0, 0.5), (11, 2, -1, 1)])
def test_quadrature_exact_to_degree_2Np_minus_3(Np, Ne, a, b):
    grid = Grid(Np, Ne, a, b)
    for p in range(2 * Np - 2):
        exact = (b ** (p + 1) - a ** (p + 1)) / (p + 1)
        assert grid.integrate(grid.x**p) == pytest.approx(exact, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("Np, Ne", [(4, 3), (8, 5)])
def test_derivative_and_antiderivative_exact_on_element_polynomials(Np, Ne):
    grid = Grid(Np, Ne, -0.5, 2.0)
    x = grid.x
    for p in range(Np):
        f = x**p
        np.testing.assert_allclose(grid.derivative(f), p * x ** max(p - 1, 0) if p else 0 * x, atol=1e-10)
        np.testing.assert_allclose(grid.antiderivative(f), (x ** (p + 1) - (-0.5) ** (p + 1)) / (p + 1), atol=1e-12)
    np.testing.assert_allclose(grid.AD @ x**2, grid.antiderivative(x**2), atol=1e-13)
    assert grid.antiderivative(np.ones(grid.N))[0] == 0.0


def test_node_count_and_shared_nodes():
    grid = Grid(6, 10, 0.0, 1.0)
    assert grid.N == 51 and grid.x.shape == (51,)
    assert np.all(np.diff(grid.x) > 0)
    assert grid.x[0] == 0.0 and grid.x[-1] == 1.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(Np=2), "Np must be an integer >= 3, got 2"),
    (dict(Ne=0), "Ne must be an integer >= 1, got 0"),
    (dict(xbegin=1.0, xend=1.0), "empty or not finite"),
    (dict(xbegin=2.0, xend=-1.0), "need finite xbegin < xend"),
    (dict(xbegin=float("nan")), "empty or not finite"),
])
def test_bad_grid_settings_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Grid(**kwargs)


def test_non_integer_sizes_raise_type_error():
    with pytest.raises(TypeError, match="Np must be an integer"):
        Grid(Np=4.5)
    with pytest.raises(TypeError, match="xbegin and xend must be numbers"):
        Grid(xbegin="left")
