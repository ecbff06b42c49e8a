"""The settings layer (and so every form) accepts exactly what the core accepts.

For every fit and generation setting, values at and around each bound are
checked twice: by ``settings.check_fit`` / ``check_generation`` (what the
pages call) and by the core itself (``fit``, ``simulate``). The settings must
accept a value iff the core does, except where the app caps a resource
(``Limit.within``), and a cap never lets through what the core refuses.
"""
import pytest

from flowdash import jobs, settings
from flowdash.core import fitting, simulation
from flowdash.core.fitting import FitOptions, fit
from flowdash.core.limits import InvalidValue
from flowdash.store import DONE, open_store

SPEC = {"grid": {"Np": 4, "Ne": 4, "xbegin": -1.0, "xend": 1.0},   # N = 13: Nv in [1, 11]
        "boundary_mode": "reflecting",
        "peq_model": {"model": "double_well", "params": {"xmin": 0.6, "xmax": 0.0, "depth": 2}},
        "p0_model": None, "D": 10.0,
        "fr_model": [{"model": "rectified_linear", "params": {"slope": 100, "x_thresh": -1}}]}
# 3 trials, one for validation: 2 training trials, so at most 2 mini-batches
GEN = dict(model="gt", n_trials=3, duration=0.5, dt=1e-3, seed=3, with_trial_end=True,
           val_fraction=0.34, dataset_name="d")
FIT = dict(dataset="d", init_model="gt", optimizer="GD", learning_rate={"F": 0.005},
           params_to_opt=["F"], max_epochs=2, mini_batch_number=1, Nv=None, seed=0,
           snapshot_epochs=[1])
MAX_SEED = settings.MAX_SEED

FIT_PROBES = {
    "max_epochs": [0, 1, 2, 100000, 100001],
    "mini_batch_number": [0, 1, 2, 3],
    "Nv": [0, 1, 2, 11, 12, 13],
    "seed": [-1, 0, MAX_SEED, MAX_SEED + 1],
    "learning_rate": [-1.0, 0.0, 1e-12, 0.005, 1e9],
}
GEN_PROBES = {
    "n_trials": [0, 1, 2, 10000, 10001],
    "duration": [0.0, 1e-4, 1e-3, 0.5],      # with dt = 1e-5
    "dt": [0.0, 1e-7, 1e-6, 1e-3, 0.1, 0.5, 0.6],
    "seed": [-1, 0, MAX_SEED, MAX_SEED + 1],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = open_store(tmp_path_factory.mktemp("limits") / "store")
    s.save_model("gt", SPEC)
    assert jobs.execute(s, jobs.submit(s, "generation", GEN)) == DONE
    yield s
    s.close()


def _core_fit_accepts(store, key, value) -> bool:
    s = dict(FIT)
    if key == "learning_rate":
        s["learning_rate"] = {"F": value}
    else:
        s[key] = value
    train, val, _ = jobs.train_val(store, "d")
    model = jobs.build_model(SPEC)
    try:
        options = FitOptions(optimizer="GD", max_epochs=s["max_epochs"],
                             mini_batch_number=s["mini_batch_number"], params_to_opt=("F",),
                             learning_rate=s["learning_rate"], seed=s["seed"], Nv=s["Nv"])
        fit(model, train[0], val[0], options, on_epoch=lambda rec: True)  # stop after epoch 0
    except InvalidValue as exc:
        assert exc.field.split(":")[0] == key, (key, value, exc.field)
        return False
    return True


def _core_simulate_accepts(key, value) -> bool:
    args = {k: GEN[k] for k in ("n_trials", "duration", "dt", "seed")}
    args[key] = value
    if key == "n_trials":
        args["duration"] = 1e-2    # keep 10001 trials cheap
    if key == "duration":
        args["dt"] = 1e-5
    try:
        simulation.simulate(jobs.build_model(SPEC), **args, with_trial_end=True)
    except InvalidValue as exc:
        assert exc.field == key, (key, value, exc.field)
        return False
    return True


@pytest.mark.parametrize("key, value", [(k, v) for k, vs in FIT_PROBES.items() for v in vs])
def test_fit_form_and_core_agree(store, key, value):
    values = dict(FIT, learning_rate={"F": value}) if key == "learning_rate" else \
        dict(FIT, **{key: value})
    _, errors = settings.check_fit(values, store)
    form_ok = not any(k.split(":")[0] == key for k in errors)
    assert set(errors) <= {key, f"{key}:F"}, errors
    cap = settings.FIT_LIMITS[key]
    core_ok = _core_fit_accepts(store, key, value)
    assert form_ok == (core_ok and cap.allows(value)), (key, value, errors)


@pytest.mark.parametrize("key, value", [(k, v) for k, vs in GEN_PROBES.items() for v in vs])
def test_generation_form_and_core_agree(store, key, value):
    values = dict(GEN, dataset_name="new", **{key: value})
    if key == "n_trials":
        values["duration"] = 1e-2
    if key == "duration":
        values["dt"] = 1e-5
    _, errors = settings.check_generation(values, store)
    form_ok = key not in errors
    assert set(errors) <= {key}, errors
    core_ok = _core_simulate_accepts(key, value)
    assert form_ok == (core_ok and settings.GEN_LIMITS[key].allows(value)), (key, value, errors)


def test_caps_lie_inside_the_core_limits():
    assert set(settings._CORE_LIMITS) == set(settings.core_limits())   # every lazy name exists
    core = {"max_epochs": fitting.EPOCHS, "mini_batch_number": fitting.MINI_BATCHES,
            "seed": fitting.SEED, "learning_rate": fitting.LEARNING_RATE,
            "Nv": settings.nv_limit()}
    for key, limit in core.items():
        cap = settings.FIT_LIMITS[key]
        if cap == limit:
            continue
        assert limit.allows(cap.lo) and (cap.hi is None or limit.allows(cap.hi)), key
    gen = {"n_trials": simulation.N_TRIALS, "duration": simulation.DURATION,
           "seed": simulation.SEED}
    for key, limit in gen.items():
        cap = settings.GEN_LIMITS[key]
        assert limit.allows(cap.lo) and limit.allows(cap.hi), key


def test_a_setting_that_cannot_run_is_never_queued(store):
    for bad in (dict(Nv=12), dict(mini_batch_number=3)):
        with pytest.raises(settings.SettingsError) as info:
            jobs.submit(store, "fit", dict(FIT, **bad))
        assert set(info.value.errors) == set(bad)
    assert store.list_runs("fit") == []


def test_fit_warnings_for_snapshots_beyond_the_last_epoch():
    assert settings.fit_warnings({"max_epochs": 50, "snapshot_epochs": [1, 6, 13, 50]}) == {}
    w = settings.fit_warnings({"max_epochs": 20, "snapshot_epochs": [1, 6, 13, 50, 80]})
    assert w == {"snapshot_epochs": "50, 80 lie beyond the last epoch (20) and will not be drawn"}
