"""Every server-side entry point applies the Model form's caps; request strings are bounded."""
import pytest

from flowdash import jobs, settings
from flowdash.core import grid
from flowdash.core.limits import InvalidValue
from flowdash.names import plot_text, validate_name
from flowdash.pages.model import form
from flowdash.store import open_store
from flowdash.store.base import dumps

SPEC = {"grid": {"Np": 6, "Ne": 8, "xbegin": -1.0, "xend": 1.0}, "boundary_mode": "reflecting",
        "peq_model": {"model": "double_well", "params": {}}, "p0_model": None, "D": 10.0,
        "fr_model": [{"model": "rectified_linear", "params": {"slope": 100, "x_thresh": -1}}]}


def test_form_and_server_caps_are_the_same():
    assert form.MAX_NEURONS == settings.MAX_MODEL_NEURONS == 32   # real populations: the PMd file has 14
    assert form.MAX_N == settings.MAX_GRID_N
    state = form.state_from_spec(dict(SPEC, grid={"Np": 2, "Ne": 8}))
    # one rule: the form's message is the server's, from the core's limit narrowed by the cap
    assert form.parse_form(state)[1][("grid", "Np")] == "must be an integer in [3, 20]"
    assert settings.check_model_spec(dict(SPEC, grid={"Np": 2, "Ne": 8}))["grid.Np"] == \
        "Np must be an integer in [3, 20]"
    assert settings.GRID_LIMITS["Np"].lo == grid.NP.lo and settings.GRID_LIMITS["Ne"].lo == grid.NE.lo
    assert settings.check_model_spec(dict(SPEC, D=0.0))["D"] == "D must be a number > 0"
    flipped = settings.check_model_spec(dict(SPEC, grid={"Np": 6, "Ne": 8, "xbegin": 1.0, "xend": -1.0}))
    assert "need finite xbegin < xend" in flipped["grid"]          # the core's interval rule
    assert settings.check_model_spec(SPEC) == {}
    too_many = dict(SPEC, fr_model=SPEC["fr_model"] * (settings.MAX_MODEL_NEURONS + 1))
    assert "between 1 and 32" in settings.check_model_spec(too_many)["fr_model"]


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "st")
    yield s
    s.close()


def _smuggle(store, name, spec):
    """A spec saved around the checks (an older store, a script writing the store)."""
    store._save_named("model", name, {f"model:{name}": dumps(spec)}, True)


def test_job_layer_refuses_specs_beyond_the_caps(store):
    _smuggle(store, "huge", dict(SPEC, grid={"Np": 8, "Ne": 20000}))
    _smuggle(store, "wide", dict(SPEC, fr_model=SPEC["fr_model"] * 500))
    for model in ("huge", "wide"):
        s, errors = settings.check_generation(
            dict(model=model, n_trials=1, duration=1.0, dt=0.01, val_fraction=0,
                 dataset_name="d"), store)
        assert s is None and "exceeds the caps" in errors["model"]
    store.save_dataset("d", [b"x"], {"n_neurons": 1})
    s, errors = settings.check_fit(dict(dataset="d", init_model="huge", params_to_opt=["F"],
                                        learning_rate={"F": 0.1}, max_epochs=1,
                                        mini_batch_number=1), store)
    assert "Ne must be an integer in [1, 2000]" in errors["init_model"]
    with pytest.raises(settings.SettingsError):
        jobs.submit(store, "fit", dict(dataset="d", init_model="wide", params_to_opt=["F"],
                                       learning_rate={"F": 0.1}, max_epochs=1,
                                       mini_batch_number=1))
    assert store.list_runs() == []            # nothing started, nothing recorded


def test_request_strings_are_bounded(store):
    big = "x" * 20_000_000
    s, errors = settings.check_fit(dict(dataset=big, init_model=big, peq_override=big,
                                        params_to_opt=["F"], learning_rate={"F": 0.1},
                                        max_epochs=1, mini_batch_number=1), store)
    assert s is None and all(len(m) < 1000 for m in errors.values())
    assert "unknown peq model" in errors["peq_override"]
    s, errors = settings.check_generation(dict(model=big, n_trials=1, duration=1.0, dt=0.01,
                                               val_fraction=0, dataset_name=big), store)
    assert "too long" in errors["dataset_name"] and all(len(m) < 1000 for m in errors.values())
    with pytest.raises(ValueError, match="is not a run id"):
        store.request_cancel(big)
    assert jobs.cancel(store, big) is None    # the job layer: no such run, nothing stored
    assert jobs.observe(store, big) is None and store.list_runs() == []


def test_names_and_escaping():
    assert validate_name("  padded  ") == "padded"
    with pytest.raises(ValueError, match="U\\+200D ZERO WIDTH JOINER") as info:
        validate_name("a\u200db")
    assert isinstance(info.value, InvalidValue) and info.value.field == "name"  # not by its text
    for bad in ("", "x" * 81, None):
        with pytest.raises(InvalidValue) as info:
            validate_name(bad, "dataset")
        assert info.value.field == "name"
    assert plot_text('<a href="x">y</a> & <b>') == '&lt;a href="x"&gt;y&lt;/a&gt; &amp; &lt;b&gt;'
