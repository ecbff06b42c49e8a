"""Every model-selection and Viterbi case of the shared reference, through ``python -m flowdash.verify``.

Tolerances are those of ../shared/reference/README.md: FC relative 1e-8 of
the largest entry, divergences relative 1e-8 (FC cases) or 1e-6 of the
largest value (the FCA curve), indices exactly; Viterbi paths must equal the
spec's decoder (the ``*_fixed`` keys).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _shared import REFERENCE_DIR

CASES = sorted((REFERENCE_DIR / "selection").glob("*.json"))
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=CASES, ids=[c.stem for c in CASES])
def case(request, tmp_path_factory):
    path = request.param
    out = tmp_path_factory.mktemp(path.stem) / "out.npz"
    run = subprocess.run([sys.executable, "-m", "flowdash.verify", str(path), str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return json.loads(path.read_text()), np.load(path.with_suffix(".npz")), np.load(out)


def _rel_to_largest(actual, expected):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


def test_cases_are_there():
    assert len(CASES) == 8


def test_selection_case_agrees(case):
    spec, ref, ours = case
    assert float(ours["seconds"]) > 0
    if "viterbi_call" in spec:
        n = int(ref["data_ntrials"])
        for i in range(n):
            np.testing.assert_array_equal(ours[f"state_inds_{i}"], ref[f"state_inds_fixed_{i}"], err_msg=f"trial {i}")
            np.testing.assert_allclose(ours[f"traj_{i}"], ref[f"traj_fixed_{i}"], rtol=0, atol=1e-12)
        return
    if "fca_settings" not in spec:
        assert _rel_to_largest(ours["FC"], ref["FC"]) < 1e-8
        key = "JS_t" if "JS_t" in ref.files else "JS_st"
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-8, atol=0)
        return
    suffixes = [s for s in ("", "_all", "_mirror2") if f"FCs1{s}" in ref.files]
    for s in suffixes:
        assert _rel_to_largest(ours[f"FCs1{s}"], ref[f"FCs1{s}"]) < 1e-8, s
        assert _rel_to_largest(ours[f"FCs2{s}"], ref[f"FCs2{s}"]) < 1e-8, s
        assert _rel_to_largest(ours[f"JS{s}"], ref[f"JS{s}"]) < 1e-6, s
        for key in ("min_inds_1", "min_inds_2", "FC_opt_ind"):
            np.testing.assert_array_equal(ours[key + s], ref[key + s], err_msg=key + s)
        if f"invert{s}" in ref.files:
            assert bool(ours[f"invert{s}"]) == bool(ref[f"invert{s}"]), s
    if "FC_opt_ind_extra" in ref.files:
        np.testing.assert_array_equal(ours["FC_opt_ind_extra"], ref["FC_opt_ind_extra"])
    # The JSON restates the selection; it must be the same as the arrays'.
    assert int(ours["FC_opt_ind"]) == int(spec["FC_opt_ind"])
