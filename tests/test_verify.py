"""The verify runner on cases beyond the shared ones: several datasamples, every fitted array."""

import json

import numpy as np

from _shared import REFERENCE_DIR
from flowdash.verify import main, run_case


def _write_case(tmp_path, K=2, epochs=2):
    src = np.load(REFERENCE_DIR / "grads_reflecting.npz")
    arrays = {}
    for k in range(K):
        for prefix, trials in (("train", range(4 * k, 4 * k + 3)), ("val", [4 * k + 3])):
            arrays[f"{prefix}{k}_ntrials"] = np.array(len(trials))
            for j, i in enumerate(trials):
                arrays[f"{prefix}{k}_isi_{j}"] = src[f"data_isi_{i}"]
                arrays[f"{prefix}{k}_ids_{j}"] = src[f"data_ids_{i}"]
    case = {
        "name": "two_conditions", "grid": {"Np": 6, "Ne": 8}, "boundary_mode": "reflecting",
        "with_trial_end": True, "Nv": None, "datasamples": K,
        "init_model": {
            "peq_model": {"model": "cos_square", "params": {}},
            "p0_model": {"model": "single_well", "params": {"miu": 4}},
            "D": 0.5,
            "fr_model": [{"model": "linear", "params": {"slope": 10, "bias": 30}}] * 2,
            "params_size": {"peq": K, "p0": 1, "D": 1, "fr": 1},
        },
        "optimizer": "ADAM",
        "opt_options": {"max_epochs": epochs, "mini_batch_number": 1,
                        "params_to_opt": ["F", "F0", "D", "Fr", "C"], "learning_rate": {"alpha": 0.05}},
    }
    path = tmp_path / "two_conditions.json"
    path.write_text(json.dumps(case))
    np.savez(tmp_path / "two_conditions.npz", **arrays)
    return path


def test_several_datasamples_and_all_fitted_arrays(tmp_path):
    out = run_case(_write_case(tmp_path))
    N = 5 * 8 + 1
    assert out["logliks"].shape == out["logliksCV"].shape == (2, 3)
    assert out["results_peq"].shape == (3, 2, N)
    assert out["results_p0"].shape == (3, 1, N)
    assert out["results_D"].shape == (3, 1)
    assert out["results_fr"].shape == (3, 1, N, 2)
    np.testing.assert_array_equal(out["iter_num"], [0, 1, 2])
    assert np.all(np.isfinite(out["logliks"])) and float(out["seconds"]) > 0


def test_cli_writes_the_arrays(tmp_path, capsys):
    case = _write_case(tmp_path, epochs=1)
    assert main([str(case), str(tmp_path / "out.npz")]) == 0
    text = capsys.readouterr().out
    assert "two_conditions: wrote" in text and "(the whole fit, kernels loaded beforehand" in text
    assert set(np.load(tmp_path / "out.npz").files) >= {"logliks", "logliksCV", "results_peq", "seconds"}


def test_cli_reports_a_malformed_case(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main([str(bad), str(tmp_path / "out.npz")]) == 2
    assert "cannot run" in capsys.readouterr().err


def test_seconds_covers_the_work_not_the_kernel_loading(tmp_path, monkeypatch, capsys):
    """`seconds` starts after the numba kernels are loaded, and the CLI says what it covers."""
    import time

    import flowdash.verify as verify

    slow = []
    monkeypatch.setattr(verify, "load_kernels", lambda: (slow.append(1), time.sleep(1.0)))
    out = run_case(REFERENCE_DIR / "grads_reflecting.json")
    assert slow and 0 < float(out["seconds"]) < 1.0
    fit_case = _write_case(tmp_path, epochs=1)
    assert 0 < float(run_case(fit_case)["seconds"]) < 1.0 and len(slow) == 2
    assert main([str(REFERENCE_DIR / "grads_reflecting.json"), str(tmp_path / "g.npz")]) == 0
    assert "(one NLL + gradient call, kernels loaded beforehand" in capsys.readouterr().out


def test_load_kernels_runs():
    from flowdash.verify import load_kernels

    load_kernels()


def test_selection_and_viterbi_cases_say_what_seconds_covers(tmp_path, monkeypatch, capsys):
    """The CLI names what `seconds` covers for every case type; a Viterbi case's kernels
    are loaded (with the case's own model) before its clock starts."""
    import time

    import flowdash.verify as verify

    selection = REFERENCE_DIR / "selection"
    for case, text in (("fc_equilibrium", "(every feature complexity and divergence, data"),
                       ("fca_equilibrium", "(the feature consistency analysis and the case's "
                                           "variants, data"),
                       ("viterbi_absorbing", "(decoding every trial, kernels loaded beforehand")):
        assert main([str(selection / f"{case}.json"), str(tmp_path / "o.npz")]) == 0
        assert text in capsys.readouterr().out, case
    loads = []
    real = verify._load_viterbi_kernels
    monkeypatch.setattr(verify, "_load_viterbi_kernels",
                        lambda *a: (loads.append(a), real(*a), time.sleep(1.0)))
    out = run_case(selection / "viterbi_absorbing.json")
    assert loads and 0 < float(out["seconds"]) < 1.0
