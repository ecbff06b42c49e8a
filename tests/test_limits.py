"""One rule per setting: the core's limits, and errors that carry their field as data."""
import numpy as np
import pytest

from flowdash.core import fitting, grid, library, model, simulation, spectra
from flowdash.core.fitting import FitOptions, fit
from flowdash.core.grid import Grid
from flowdash.core.limits import InvalidValue, Limit, format_number
from flowdash.core.model import Model
from flowdash.core.spikedata import SpikeData


def test_format_number_reads_like_a_person_writes():
    assert format_number(2**32 - 1) == "4294967295"
    assert format_number(1e-4) == "0.0001"
    assert format_number(1e5) == "100000"
    assert format_number(2.5) == "2.5"
    assert format_number(0.9) == "0.9"


def test_limit_describe_allows_check_within():
    nv = spectra.nv_limit(17)
    assert nv.describe() == "an integer in [1, 15] (N - 2 for this grid)"
    assert nv.allows(1) and nv.allows(15) and not nv.allows(16) and not nv.allows(0)
    assert not nv.allows(2.5) and not nv.allows(float("nan"))
    with pytest.raises(InvalidValue) as info:
        nv.check(16)
    assert info.value.field == "Nv"
    with pytest.raises(TypeError):
        nv.check(True)
    assert Limit("dt", float, 0, 1, lo_open=True, hi_open=True).describe() == "a number in (0, 1)"
    assert Limit("seed", int, 0, 2**32 - 1).describe() == "an integer in [0, 4294967295]"
    capped = grid.NP.within(hi=20)
    assert capped.lo == 3 and capped.hi == 20
    with pytest.raises(ValueError, match="outside Np's limit"):
        grid.NP.within(lo=2)


@pytest.mark.parametrize("call, field", [
    (lambda: Grid(Np=2), "Np"),
    (lambda: Grid(Ne=0), "Ne"),
    (lambda: Grid(xbegin=1.0, xend=0.0), "xend"),
    (lambda: Grid(xbegin=float("nan")), "xbegin"),
    (lambda: FitOptions(optimizer="GD", max_epochs=0, learning_rate={"F": 0.1}), "max_epochs"),
    (lambda: FitOptions(optimizer="GD", mini_batch_number=0, learning_rate={"F": 0.1}), "mini_batch_number"),
    (lambda: FitOptions(optimizer="GD", seed=-1, learning_rate={"F": 0.1}), "seed"),
    (lambda: FitOptions(optimizer="GD", learning_rate={"F": 0.0}), "learning_rate:F"),
    (lambda: FitOptions(optimizer="ADAM", learning_rate={"alpha": -1}), "learning_rate:alpha"),
    (lambda: library.peq_from_library(Grid(4, 2), "double_well", xmin=0.0, xmax=0.0), "xmin"),
    (lambda: library.rate_from_library(np.zeros(3), "peaks", width=[0.0, 1.0]), "width"),
    (lambda: library.peq_from_library(Grid(4, 2), "mixture", theta=2.0), "theta"),
])
def test_core_errors_name_their_field(call, field):
    with pytest.raises(InvalidValue) as info:
        call()
    assert info.value.field == field


def _tiny_model(D=1.0):
    g = Grid(4, 2)
    spec = {"peq_model": {"model": "uniform", "params": {}}, "p0_model": None, "D": D,
            "fr_model": [{"model": "linear", "params": {"slope": 10, "bias": 30}}]}
    return Model.from_spec(spec, g, "reflecting")


def test_model_and_simulation_errors_name_their_field():
    with pytest.raises(InvalidValue) as info:
        _tiny_model(D=0.0)
    assert info.value.field == "D" and not model.D_LIMIT.allows(0.0)
    m = _tiny_model()
    for kwargs, field in (({"n_trials": 0}, "n_trials"), ({"duration": 0.0}, "duration"),
                          ({"dt": 2.0}, "dt"), ({"duration": 1e5, "dt": 1e-6}, "dt"),
                          ({"seed": -1}, "seed")):
        args = dict(n_trials=1, duration=1.0, dt=1e-3, seed=0) | kwargs
        with pytest.raises(InvalidValue) as info:
            simulation.simulate(m, **args)
        assert info.value.field == field, kwargs


def test_dt_limit_is_the_rule_simulate_applies():
    m = _tiny_model()
    lim = simulation.dt_limit(1.0)
    assert lim.allows(0.5) and not lim.allows(1.0) and not lim.allows(1e-9)
    simulation.simulate(m, 1, 1.0, dt=0.5, seed=0)
    with pytest.raises(InvalidValue):
        simulation.simulate(m, 1, 1.0, dt=1.0, seed=0)


def test_fit_refuses_what_its_limits_refuse():
    m = _tiny_model()
    data = SpikeData.from_spike_times([[np.array([0.1, 0.2])], [np.array([0.3])]],
                                      starts=[0.0, 0.0], ends=[0.5, 0.5], with_trial_end=True)
    assert fitting.mini_batch_limit(2).allows(2) and not fitting.mini_batch_limit(2).allows(3)
    with pytest.raises(InvalidValue) as info:
        fit(m, data, None, FitOptions(optimizer="GD", max_epochs=1, mini_batch_number=3,
                                      learning_rate={"F": 0.01}))
    assert info.value.field == "mini_batch_number"
    with pytest.raises(InvalidValue) as info:
        fit(m, data, None, FitOptions(optimizer="GD", max_epochs=1, Nv=m.grid.N - 1,
                                      learning_rate={"F": 0.01}))
    assert info.value.field == "Nv"
    assert spectra.nv_limit(grid.n_nodes(4, 2)).hi == m.grid.N - 2
